/* headers: an ordered list of HTTP header fields with a byte cap, and the
 * rules about which fields a proxy may pass on or show.
 *
 * Names and values are stored NUL-terminated in one capped buffer, so a
 * request's headers cost one allocation however they arrive. The parser
 * feeds names and values in pieces (llhttp span callbacks); a field is
 * complete when the next name starts or headers_end() is called.
 * Not thread-safe: one owner. */
#ifndef RETRYD_HEADERS_H
#define RETRYD_HEADERS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "proxy/buf.h"

typedef struct {
  uint32_t name; /* offsets into data */
  uint32_t value;
} header_t;

typedef struct {
  buf_t data;
  header_t *items;
  size_t count;
  size_t alloc;
  int state; /* 0: none, 1: in name, 2: in value */
} headers_t;

void headers_init(headers_t *h, size_t max_bytes);
void headers_free(headers_t *h);
void headers_reset(headers_t *h);

/* Piecewise building, for parsers. Each returns 0 or -E2BIG past the cap. */
int headers_name_piece(headers_t *h, const char *p, size_t len) BUF_MUST_CHECK;
int headers_value_piece(headers_t *h, const char *p, size_t len) BUF_MUST_CHECK;
int headers_end(headers_t *h) BUF_MUST_CHECK;
/* Whole field at once. */
int headers_add(headers_t *h, const char *name, size_t nlen, const char *value, size_t vlen) BUF_MUST_CHECK;

static inline const char *headers_name(const headers_t *h, size_t i) {
  return h->data.data + h->items[i].name;
}
static inline const char *headers_value(const headers_t *h, size_t i) {
  return h->data.data + h->items[i].value;
}
/* First value of a field (case-insensitive name), or NULL. */
const char *headers_get(const headers_t *h, const char *name);
size_t headers_count_named(const headers_t *h, const char *name);

/* True for fields that describe one connection, never forwarded (RFC 9110
 * 7.6.1): Connection, Keep-Alive, Proxy-Connection, TE, Trailer,
 * Transfer-Encoding, Upgrade, Proxy-Authorization, Proxy-Authenticate, and any
 * field named in the Connection header given as connection (may be NULL). */
bool headers_is_hop_by_hop(const char *name, const char *connection);
/* The Connection field's value when it names fields beyond the fixed
 * hop-by-hop ones, else NULL: what headers_is_hop_by_hop() wants as
 * connection. "Connection: keep-alive", the usual case, names none, and
 * passing NULL spares walking the list once per field. */
const char *headers_connection_names(const headers_t *h);
/* True for fields whose values are credentials and must be shown as
 * "[redacted]" everywhere but the upstream and the database. */
bool headers_is_secret(const char *name);
/* True for retryd's own fields, X-Retryd-Token and any Retryd-*: they are
 * meant for retryd and never forwarded upstream. */
bool headers_is_retryd_own(const char *name);
/* True for fields a request trailer must never carry (RFC 9110 6.5.1): they
 * are needed before the content or decide what retryd does with it —
 * framing (Content-Length, Transfer-Encoding, Trailer), routing (Host,
 * Max-Forwards), credentials (headers_is_secret()), request modifiers
 * (Expect, Range, If-*, Cache-Control, Pragma), the content's format
 * (Content-Type, Content-Encoding, Content-Range), what retryd acts on
 * (Prefer, Idempotency-Key) and retryd's own fields. Hop-by-hop fields are
 * headers_is_hop_by_hop()'s. */
bool headers_is_head_only(const char *name);
/* Walks a comma-separated header value: each call sets *item and *len to
 * the next element with surrounding blanks trimmed and returns true, or
 * returns false at the end. *cursor starts at the value. */
bool headers_list_next(const char **cursor, const char **item, size_t *len);
/* True when list (a comma-separated header value) contains token, ignoring case. */
bool headers_list_has_token(const char *list, const char *token);

#endif
