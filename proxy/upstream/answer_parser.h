/* answer_parser: the one rule by which retryd reads an upstream's answer,
 * whichever upstream client received it.
 *
 * llhttp in strict mode (no lenient flag, as for clients) plus the field
 * checks of headers.c fill a response_head_t. The http:// client
 * (upstream_h1.c) feeds it every byte of the answer from the socket; the
 * https:// client (upstream_curl.c) feeds it the head lines libcurl hands
 * over, because libcurl's own parse is lenient where retryd is not (it
 * takes "Content-Length: +2", two different lengths, a space before the
 * colon). So an answer one client refuses, the other refuses the same way:
 * a head that breaks the rule is no answer at all (the caller treats it as
 * a network failure), and the caller's head callback only ever sees a head
 * that passed.
 *
 * Lifecycle: answer_parser_start() for each answer, then feeds, on the
 * loop thread. Interim (1xx) answers are skipped; a 101 is refused (retryd
 * does not tunnel). */
#ifndef RETRYD_ANSWER_PARSER_H
#define RETRYD_ANSWER_PARSER_H

#include <llhttp.h>
#include <stdbool.h>
#include <stddef.h>

#include "proxy/upstream/response_head.h"

typedef struct answer_parser_s answer_parser_t;

typedef enum {
  HEAD_MORE = 0,      /* keep feeding lines */
  HEAD_COMPLETE = 1,  /* this line ended the final head */
  HEAD_ERROR = -1,    /* malformed, or over the cap */
} head_result_t;

typedef struct {
  /* The final head is complete and passed every check: 0 to go on, -1 to
   * stop (with p->error set). */
  int (*head)(answer_parser_t *p);
  /* Body bytes (only for a feed of raw bytes): 0 taken, HPE_PAUSED to
   * stop parsing here until resumed, -1 to stop (p->error set). */
  int (*body)(answer_parser_t *p, const char *at, size_t len);
} answer_parser_ops_t;

struct answer_parser_s {
  llhttp_t llhttp;
  const answer_parser_ops_t *ops;
  void *owner;
  response_head_t *head;
  bool is_head;      /* the request was HEAD: the answer has no body */
  bool message_done; /* the final answer ended (parsing paused there) */
  size_t reason_len;
  /* llhttp 8 hands an obs-fold continuation over as one more piece of
   * the value; a legitimate second piece only happens when a raw feed
   * ended inside the value and the next feed goes on with it. */
  bool value_open;
  bool value_cut;
  bool line_mode;    /* fed whole head lines: a value is never cut */
  const char *feed_start, *feed_end;
  char error[256];   /* why the answer was refused, when it was */
};

void answer_parser_start(answer_parser_t *p, response_head_t *head, bool is_head,
                         const answer_parser_ops_t *ops, void *owner);
/* Raw bytes of the answer. Returns HPE_OK (more wanted), HPE_PAUSED (a
 * body callback paused, or the final answer ended: see message_done;
 * llhttp_get_error_pos() tells where), or an error. */
llhttp_errno_t answer_parser_feed(answer_parser_t *p, const char *data, size_t len);
/* One head line as libcurl hands it over ("HTTP/2 200" is read as
 * HTTP/1.1: HTTP/2's framing is nghttp2's business, its fields are ours).
 * Lines after the final head (trailers) are ignored. */
head_result_t answer_parser_head_line(answer_parser_t *p, const char *line, size_t len);
/* Why the answer was refused, for logs and error bodies. */
const char *answer_parser_error(answer_parser_t *p);

#endif
