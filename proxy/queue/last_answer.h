/* last_answer: what a stored request keeps of the last retryable answer
 * the upstream gave it, so that GET /_retryd/requests/<id> can say why it
 * waits (Recall's 507 says in its body that the bot pool is empty).
 *
 * Kept: three header fields that say when and what (Retry-After,
 * Content-Type, Date; never a credential) and the first
 * LAST_ANSWER_BODY_MAX bytes of the body. The status is the row's
 * last_status. Shown as {"status","headers","body"}: header values that
 * are credentials would be "[redacted]" (none is kept), the body escaped
 * byte for byte. Lifecycle: last_answer_init → keep_head / keep_body ... →
 * last_answer_reset (reuse) → last_answer_free. Loop thread. */
#ifndef RETRYD_LAST_ANSWER_H
#define RETRYD_LAST_ANSWER_H

#include <stdbool.h>
#include <stddef.h>

#include "proxy/buf.h"
#include "proxy/http/headers.h"

#define LAST_ANSWER_BODY_MAX 4096
/* The kept fields' lines at most: a longer value is left out. */
#define LAST_ANSWER_HEADERS_MAX 1024

/* The longest last_answer_json() can be: every byte escaped as \u00XX,
 * plus the names and punctuation. */
#define LAST_ANSWER_JSON_MAX (6 * (LAST_ANSWER_BODY_MAX + LAST_ANSWER_HEADERS_MAX) + 256)

typedef struct {
  buf_t headers; /* "Name: value\r\n" lines */
  buf_t body;    /* its first LAST_ANSWER_BODY_MAX bytes */
  bool kept;     /* an answer's head was kept */
} last_answer_t;

void last_answer_init(last_answer_t *a);
void last_answer_reset(last_answer_t *a);
void last_answer_free(last_answer_t *a);
/* Keeps the answer's fields that say when and what; drops the body kept
 * before. */
void last_answer_keep_head(last_answer_t *a, const headers_t *fields);
/* Keeps what still fits of a piece of the body. */
void last_answer_keep_body(last_answer_t *a, const char *data, size_t len);

/* {"status":S,"headers":{...},"body":"..."}, or null when there is none
 * (headers NULL). */
int last_answer_json(buf_t *out, int status, const char *headers, size_t headers_len,
                     const char *body, size_t body_len) BUF_MUST_CHECK;

#endif
