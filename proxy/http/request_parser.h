/* request_parser: a client's bytes in, one checked request_t at a time out.
 *
 * Design note. llhttp parses (no lenient flag), and this module adds every
 * check llhttp 8 leaves to its user, so that what reaches a handler is
 * unambiguous: obs-fold in any form, field names that are not tokens,
 * control bytes in values, a target that is not origin-form or holds a byte
 * outside visible ASCII, Host, Content-Length/Transfer-Encoding mixes, the
 * CRLF after chunk data, the caps on target, head, trailers and body, and
 * trailer fields (checked like head fields; those that must never come from
 * a trailer are dropped, the rest merged into the head). It owns no socket,
 * timer or loop: http_conn feeds it what it reads and acts on what it
 * returns, and tests/fuzz/fuzz_request.c feeds it arbitrary bytes the same
 * way, so the fuzzer tests the code every client request goes through.
 *
 * Obs-fold is found in the bytes, not in llhttp's callbacks: llhttp 8 takes
 * a fold after an empty value as the value itself, and a fold of blanks
 * leaves no trace. The parser pauses where the head ends and where the
 * trailer section starts and ends, so it knows exactly which bytes belong
 * to a head or trailer section; there, a line break followed by a blank is
 * an obs-fold, wherever the reads were cut.
 *
 * An Upgrade request is not acted on (retryd does not tunnel; RFC 9110 7.8
 * lets a server ignore Upgrade): it is a request like any other, and every
 * request after it is parsed afresh.
 *
 * Lifecycle: request_parser_init() with the request it fills → feed bytes
 * (RP_HEAD once the head is checked, RP_COMPLETE once the request is) → the
 * owner handles the request → request_reset() and request_parser_next() →
 * the next request. RP_ERROR is final: answer it and close (llhttp errors
 * are sticky, and framing is in doubt). One owner, any thread. */
#ifndef RETRYD_REQUEST_PARSER_H
#define RETRYD_REQUEST_PARSER_H

#include <llhttp.h>
#include <stdbool.h>
#include <stddef.h>

#include "proxy/config.h"
#include "proxy/http/request.h"

typedef enum {
  RP_MORE,     /* every byte consumed; the request is not complete yet */
  RP_HEAD,     /* the head is complete and passed its checks; feed the rest */
  RP_COMPLETE, /* the request is complete; bytes after it belong to the next */
  RP_ERROR,    /* refused: status, code and message say why */
} request_parser_result_t;

/* The fields are the parser's own; read them through the functions below. */
typedef struct {
  llhttp_t llhttp;
  request_t *req;
  const config_t *cfg;
  size_t header_bytes;  /* target, head and trailer bytes so far (shared cap) */
  bool in_message;      /* a request has begun */
  bool head_done;
  bool in_trailers;     /* the last chunk was seen: fields are trailers */
  bool keep_alive;      /* from the head alone: a trailer cannot change it */
  bool expect_continue; /* the client waits for 100 Continue */
  bool complete;        /* paused after a complete request */
  bool scanning;        /* inside a head or trailer section */
  bool prev_lf;         /* the last scanned byte was a line feed */
  int crlf_left;        /* bytes of the CRLF after chunk data still to check */
  const char *feed_end;
  int pause;            /* why llhttp paused (RP_PAUSE_*) */
  int status;
  const char *code;
  const char *message;
  char reason[160];     /* a message built from llhttp's error reason */
} request_parser_t;

void request_parser_init(request_parser_t *p, request_t *req, const config_t *cfg);
/* Parses from data; *used is how many bytes were taken (all of them for
 * RP_MORE and RP_ERROR). Those bytes are counted in req->bytes_in. */
request_parser_result_t request_parser_feed(request_parser_t *p, const char *data, size_t len,
                                            size_t *used);
/* After RP_COMPLETE and request_reset(): ready for the next request. */
void request_parser_next(request_parser_t *p);

/* A request has begun (its first byte was parsed). */
static inline bool request_parser_in_message(const request_parser_t *p) {
  return p->in_message;
}
/* The head of the current request is complete and checked. */
static inline bool request_parser_head_done(const request_parser_t *p) {
  return p->head_done;
}
/* After RP_HEAD: the client sent Expect: 100-continue and waits for it. */
static inline bool request_parser_expects_continue(const request_parser_t *p) {
  return p->expect_continue;
}
/* After RP_ERROR: the status (400, 413, 417, 431), the JSON error code and
 * a message for the client. */
static inline int request_parser_status(const request_parser_t *p) {
  return p->status;
}
static inline const char *request_parser_code(const request_parser_t *p) {
  return p->code;
}
static inline const char *request_parser_message(const request_parser_t *p) {
  return p->message;
}

#endif
