/* request: one client request as retryd received it, complete with its body.
 *
 * Filled by http_conn from the parser, read by the router and its handlers.
 * Every part has a cap from the config (target and headers share
 * max_header_bytes; the body has max_body), so a request costs bounded
 * memory. Owned by its connection; valid from dispatch until the response
 * is finished or aborted. Loop thread only. */
#ifndef RETRYD_REQUEST_H
#define RETRYD_REQUEST_H

#include <stdbool.h>
#include <stdint.h>

#include "proxy/buf.h"
#include "proxy/config.h"
#include "proxy/http/headers.h"

typedef struct request_s {
  char method[24];
  int method_id;  /* llhttp_method_t */
  buf_t target;   /* origin-form: path and query */
  headers_t headers;
  headers_t trailers; /* a chunked body's trailer fields, until they are checked and
                         merged into headers (request_parser) */
  buf_t body;
  bool has_body;  /* Content-Length or Transfer-Encoding was sent, even for 0 bytes */
  bool is_head;
  uint8_t http_major, http_minor;
  bool keep_alive;
  uint64_t started_ns;   /* first byte seen */
  uint64_t bytes_in;     /* request line, headers and body as received */
} request_t;

void request_init(request_t *r, const config_t *cfg);
void request_reset(request_t *r);
void request_free(request_t *r);

#endif
