/* response_head: an upstream answer's status, reason and header fields.
 *
 * Filled line by line from curl's header callback (response_head_line,
 * https upstreams), or piece by piece from llhttp by upstream_h1.c.
 * Interim answers (1xx) are skipped; trailers after the final head are
 * ignored. The fields are capped (max_response_header_bytes). Loop thread. */
#ifndef RETRYD_RESPONSE_HEAD_H
#define RETRYD_RESPONSE_HEAD_H

#include <stdbool.h>
#include <stddef.h>

#include "proxy/buf.h"
#include "proxy/headers.h"

typedef struct {
  int status;
  char reason[128];
  headers_t fields;
  bool complete; /* the final head is in */
} response_head_t;

typedef enum {
  HEAD_MORE = 0,      /* keep feeding lines */
  HEAD_COMPLETE = 1,  /* this line ended the final head */
  HEAD_ERROR = -1,    /* malformed, or over the cap */
} head_result_t;

void response_head_init(response_head_t *h, size_t max_bytes);
void response_head_free(response_head_t *h);
/* Empty again for the next answer, keeping its memory. */
void response_head_reset(response_head_t *h);
head_result_t response_head_line(response_head_t *h, const char *line, size_t len);

/* The fields as "Name: value\r\n" lines, minus hop-by-hop ones, for
 * storing an answer. */
int response_head_serialize(const response_head_t *h, buf_t *out);
/* Copies stored "Name: value\r\n" lines to out without the fields that
 * frame a body (Content-Length, Transfer-Encoding): whoever sends the
 * stored body frames it anew. */
int response_head_copy_unframed(const char *lines, size_t len, buf_t *out);

#endif
