/* response_head: an upstream answer's status, reason and header fields.
 *
 * Filled piece by piece by answer_parser.c, whichever upstream client
 * received the answer; complete once the final (non-1xx) head passed its
 * checks. The fields are capped (max_response_header_bytes). Loop thread. */
#ifndef RETRYD_RESPONSE_HEAD_H
#define RETRYD_RESPONSE_HEAD_H

#include <stdbool.h>
#include <stddef.h>

#include "proxy/buf.h"
#include "proxy/http/headers.h"

typedef struct {
  int status;
  char reason[128];
  headers_t fields;
  bool complete; /* the final head is in */
} response_head_t;

void response_head_init(response_head_t *h, size_t max_bytes);
void response_head_free(response_head_t *h);
/* Empty again for the next answer, keeping its memory. */
void response_head_reset(response_head_t *h);

/* The fields as "Name: value\r\n" lines, minus hop-by-hop ones, for
 * storing an answer. */
int response_head_serialize(const response_head_t *h, buf_t *out) BUF_MUST_CHECK;
/* Copies stored "Name: value\r\n" lines to out without the fields that
 * frame a body (Content-Length, Transfer-Encoding): whoever sends the
 * stored body frames it anew. */
int response_head_copy_unframed(const char *lines, size_t len, buf_t *out) BUF_MUST_CHECK;

#endif
