#include "proxy/http/request_parser.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

/* Bytes a header field costs beyond its name and value (": " and CRLF),
 * so many tiny fields also hit the header cap. */
#define RP_FIELD_OVERHEAD 4

/* Why llhttp_execute() returned HPE_PAUSED. */
enum { RP_PAUSE_NONE, RP_PAUSE_HEAD, RP_PAUSE_TRAILERS, RP_PAUSE_COMPLETE };

static llhttp_settings_t rp_settings;
static bool rp_settings_ready;

static request_parser_t *rp_of(llhttp_t *l) {
  return l->data;
}

static int rp_reject(request_parser_t *p, int status, const char *code, const char *message) {
  p->status = status;
  p->code = code;
  p->message = message;
  return HPE_USER;
}

static int rp_count(request_parser_t *p, size_t len) {
  p->header_bytes += len;
  if (p->header_bytes > p->cfg->max_header_bytes)
    return rp_reject(p, 431, "headers_too_large",
                     "the request line and headers exceed the 64KiB limit");
  return 0;
}

/* Checks that the bytes from pos on continue "\r\n" where crlf_left bytes
 * of it are still expected; false on a mismatch. llhttp 8 skips the two
 * bytes after chunk data without looking at them. */
static bool rp_check_crlf(request_parser_t *p, const char *pos) {
  while (p->crlf_left > 0 && pos < p->feed_end) {
    char want = p->crlf_left == 2 ? '\r' : '\n';
    if (*pos++ != want)
      return false;
    p->crlf_left--;
  }
  return true;
}

/* ---- llhttp callbacks ------------------------------------------------ */

static int rp_on_message_begin(llhttp_t *l) {
  rp_of(l)->in_message = true;
  return 0;
}

static int rp_on_url(llhttp_t *l, const char *at, size_t len) {
  request_parser_t *p = rp_of(l);
  if (rp_count(p, len) != 0)
    return HPE_USER;
  if (buf_append(&p->req->target, at, len) != 0)
    return rp_reject(p, 431, "headers_too_large", "the request target is too long");
  return 0;
}

/* Fields after the head are trailers, kept apart until they are checked. */
static headers_t *rp_fields(request_parser_t *p) {
  return p->head_done ? &p->req->trailers : &p->req->headers;
}

static int rp_on_header_field(llhttp_t *l, const char *at, size_t len) {
  request_parser_t *p = rp_of(l);
  if (rp_count(p, len) != 0)
    return HPE_USER;
  if (headers_name_piece(rp_fields(p), at, len) != 0)
    return rp_reject(p, 431, "headers_too_large", "the request headers are too large");
  return 0;
}

static int rp_on_header_value(llhttp_t *l, const char *at, size_t len) {
  request_parser_t *p = rp_of(l);
  if (rp_count(p, len) != 0)
    return HPE_USER;
  if (headers_value_piece(rp_fields(p), at, len) != 0)
    return rp_reject(p, 431, "headers_too_large", "the request headers are too large");
  return 0;
}

static int rp_on_header_value_complete(llhttp_t *l) {
  return rp_count(rp_of(l), RP_FIELD_OVERHEAD);
}

/* Pauses so that feed() learns where the head ends and checks it there. */
static int rp_on_headers_complete(llhttp_t *l) {
  request_parser_t *p = rp_of(l);
  p->head_done = true;
  /* Taken now: a Connection field in a trailer must not change it. */
  p->keep_alive = llhttp_should_keep_alive(l) != 0;
  p->pause = RP_PAUSE_HEAD;
  return HPE_PAUSED;
}

/* The last chunk (size 0) is followed by the trailer section: pause so
 * that feed() knows where it starts. */
static int rp_on_chunk_header(llhttp_t *l) {
  request_parser_t *p = rp_of(l);
  if (l->content_length != 0)
    return 0;
  p->in_trailers = true;
  p->pause = RP_PAUSE_TRAILERS;
  return HPE_PAUSED;
}

static int rp_on_body(llhttp_t *l, const char *at, size_t len) {
  request_parser_t *p = rp_of(l);
  if ((l->flags & F_CHUNKED) && l->content_length == 0) {
    /* This piece ends a chunk: its CRLF must follow. */
    p->crlf_left = 2;
    if (!rp_check_crlf(p, at + len))
      return rp_reject(p, 400, "bad_request", "chunk data not followed by CRLF");
  }
  if (buf_append(&p->req->body, at, len) != 0)
    return rp_reject(p, 413, "body_too_large", "the request body exceeds --max-body");
  return 0;
}

/* Pauses so that one request is handled at a time. */
static int rp_on_message_complete(llhttp_t *l) {
  request_parser_t *p = rp_of(l);
  p->pause = RP_PAUSE_COMPLETE;
  return HPE_PAUSED;
}

static void rp_settings_init(void) {
  if (rp_settings_ready)
    return;
  llhttp_settings_init(&rp_settings);
  rp_settings.on_message_begin = rp_on_message_begin;
  rp_settings.on_url = rp_on_url;
  rp_settings.on_header_field = rp_on_header_field;
  rp_settings.on_header_value = rp_on_header_value;
  rp_settings.on_header_value_complete = rp_on_header_value_complete;
  rp_settings.on_headers_complete = rp_on_headers_complete;
  rp_settings.on_chunk_header = rp_on_chunk_header;
  rp_settings.on_body = rp_on_body;
  rp_settings.on_message_complete = rp_on_message_complete;
  rp_settings_ready = true;
}

/* ---- checks ---------------------------------------------------------- */

/* An obs-fold (RFC 9112 5.2) is a line break followed by a blank. In a head
 * or trailer section every line break ends a line, and a line never starts
 * with a blank, so this finds every fold, whatever llhttp made of it.
 * prev_lf carries a line break at the end of one read into the next. */
static bool rp_fold_in(request_parser_t *p, const char *s, const char *end) {
  if (s == end)
    return false;
  if (p->prev_lf && (*s == ' ' || *s == '\t'))
    return true;
  while ((s = memchr(s, '\n', (size_t)(end - s))) != NULL) {
    if (++s == end) {
      p->prev_lf = true;
      return false;
    }
    if (*s == ' ' || *s == '\t')
      return true;
  }
  p->prev_lf = false;
  return false;
}

/* RFC 9110 5.6.2: a field name is a token. */
static bool rp_is_tchar(unsigned char ch) {
  return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
         (ch != 0 && strchr("!#$%&'*+-.^_`|~", ch) != NULL);
}

/* llhttp 8 accepts a space before the colon; that has been used to smuggle
 * requests past proxies, so every name must be a token and every value
 * plain field content (RFC 9110 5.5: visible bytes, SP and HTAB; no CR, LF
 * or NUL). */
static bool rp_fields_are_clean(const headers_t *h) {
  for (size_t i = 0; i < h->count; i++) {
    const unsigned char *n = (const unsigned char *)headers_name(h, i);
    if (*n == '\0')
      return false;
    for (; *n; n++)
      if (!rp_is_tchar(*n))
        return false;
    /* The value is NUL-terminated by us: a NUL inside ends it early. */
    size_t stored = (i + 1 < h->count ? h->items[i + 1].name : h->data.len) - h->items[i].value;
    const unsigned char *v = (const unsigned char *)headers_value(h, i);
    size_t vlen = strlen((const char *)v);
    if (vlen + 1 != stored)
      return false;
    for (; *v; v++)
      if ((*v < 0x20 && *v != '\t') || *v == 0x7f)
        return false;
  }
  return true;
}

/* RFC 9112 3.2 / RFC 3986: a target is visible ASCII; anything else is
 * percent-encoded by the client. llhttp 8 lets bytes 0x80-0xFF through. */
static bool rp_target_is_visible_ascii(const buf_t *t) {
  for (size_t i = 0; i < t->len; i++) {
    unsigned char ch = (unsigned char)t->data[i];
    if (ch <= 0x20 || ch >= 0x7f)
      return false;
  }
  return true;
}

static request_parser_result_t rp_refuse(request_parser_t *p, int status, const char *code,
                                         const char *message) {
  rp_reject(p, status, code, message);
  return RP_ERROR;
}

/* Everything llhttp leaves to the application about a head: clean fields,
 * the target, Host, framing, and what retryd does not support. */
static request_parser_result_t rp_check_head(request_parser_t *p) {
  request_t *r = p->req;
  llhttp_t *l = &p->llhttp;
  const headers_t *h = &r->headers;
  if (headers_end(&r->headers) != 0)
    return rp_refuse(p, 431, "headers_too_large", "the request headers are too large");
  r->method_id = llhttp_get_method(l);
  const char *method = llhttp_method_name((llhttp_method_t)r->method_id);
  size_t mlen = strnlen(method, sizeof(r->method) - 1);
  memcpy(r->method, method, mlen);
  r->method[mlen] = '\0';
  r->is_head = r->method_id == HTTP_HEAD;
  r->http_major = llhttp_get_http_major(l);
  r->http_minor = llhttp_get_http_minor(l);
  if (r->http_major != 1)
    return rp_refuse(p, 400, "bad_request", "only HTTP/1.x is accepted");
  if (!rp_fields_are_clean(h))
    return rp_refuse(p, 400, "bad_request", "malformed header field");
  if (r->method_id == HTTP_CONNECT)
    return rp_refuse(p, 400, "bad_request", "CONNECT is not supported");
  if (r->target.len == 0 || r->target.data[0] != '/')
    return rp_refuse(p, 400, "bad_request",
                     "only origin-form request targets (starting with '/') are accepted");
  if (!rp_target_is_visible_ascii(&r->target))
    return rp_refuse(p, 400, "bad_request",
                     "the request target holds a byte that is not visible ASCII "
                     "(percent-encode it)");
  size_t hosts = headers_count_named(h, "host");
  if (hosts > 1 || (hosts == 0 && r->http_minor >= 1))
    return rp_refuse(p, 400, "bad_request", "an HTTP/1.1 request needs exactly one Host header");
  size_t cls = headers_count_named(h, "content-length");
  const char *te = headers_get(h, "transfer-encoding");
  if (cls > 1)
    return rp_refuse(p, 400, "bad_request", "more than one Content-Length header");
  if (te != NULL && cls > 0)
    return rp_refuse(p, 400, "bad_request", "both Content-Length and Transfer-Encoding");
  if (te != NULL &&
      (headers_count_named(h, "transfer-encoding") > 1 || strcasecmp(te, "chunked") != 0))
    return rp_refuse(p, 400, "bad_request", "the only accepted Transfer-Encoding is chunked");
  r->has_body = te != NULL || cls > 0;
  if (cls > 0 && l->content_length > p->cfg->max_body)
    return rp_refuse(p, 413, "body_too_large", "the request body exceeds --max-body");
  const char *expect = headers_get(h, "expect");
  if (expect != NULL) {
    if (strcasecmp(expect, "100-continue") != 0)
      return rp_refuse(p, 417, "expectation_failed", "only Expect: 100-continue is supported");
    p->expect_continue = r->http_minor >= 1 && r->has_body;
  }
  return RP_HEAD;
}

/* Trailer fields get the head's checks; those a trailer must never carry
 * (headers_is_head_only(), and whatever the head's Connection names) are
 * dropped, the rest join the head: the body goes upstream with a
 * Content-Length, so there is no trailer section to put them in. */
static request_parser_result_t rp_merge_trailers(request_parser_t *p) {
  request_t *r = p->req;
  headers_t *t = &r->trailers;
  if (headers_end(t) != 0)
    return rp_refuse(p, 431, "headers_too_large", "the request trailers are too large");
  if (!rp_fields_are_clean(t))
    return rp_refuse(p, 400, "bad_request", "malformed trailer field");
  /* Kept as an offset: each field added may move the head's buffer. */
  const char *names = headers_connection_names(&r->headers);
  size_t names_at = names != NULL ? (size_t)(names - r->headers.data.data) : 0;
  for (size_t i = 0; i < t->count; i++) {
    const char *name = headers_name(t, i), *value = headers_value(t, i);
    const char *connection = names != NULL ? r->headers.data.data + names_at : NULL;
    if (headers_is_hop_by_hop(name, connection) || headers_is_head_only(name))
      continue;
    if (headers_add(&r->headers, name, strlen(name), value, strlen(value)) != 0)
      return rp_refuse(p, 431, "headers_too_large", "the request headers are too large");
  }
  return RP_COMPLETE;
}

/* ---- feeding --------------------------------------------------------- */

void request_parser_init(request_parser_t *p, request_t *req, const config_t *cfg) {
  rp_settings_init();
  memset(p, 0, sizeof(*p));
  llhttp_init(&p->llhttp, HTTP_REQUEST, &rp_settings);
  p->llhttp.data = p;
  p->req = req;
  p->cfg = cfg;
  p->scanning = true;
}

static request_parser_result_t rp_llhttp_error(request_parser_t *p) {
  if (p->status != 0)
    return RP_ERROR; /* one of ours, already said */
  snprintf(p->reason, sizeof(p->reason), "malformed request: %s",
           llhttp_get_error_reason(&p->llhttp));
  return rp_refuse(p, 400, "bad_request", p->reason);
}

/* One llhttp_execute() up to its next pause; RP_MORE with p->pause set to
 * RP_PAUSE_TRAILERS means "go on from *used". */
static request_parser_result_t rp_step(request_parser_t *p, const char *data, size_t len,
                                       size_t *used) {
  *used = len;
  p->feed_end = data + len;
  p->pause = RP_PAUSE_NONE;
  if (!rp_check_crlf(p, data))
    return rp_refuse(p, 400, "bad_request", "chunk data not followed by CRLF");
  llhttp_errno_t err = llhttp_execute(&p->llhttp, data, len);
  if (err != HPE_OK && err != HPE_PAUSED)
    return rp_llhttp_error(p);
  const char *end = err == HPE_PAUSED ? llhttp_get_error_pos(&p->llhttp) : data + len;
  *used = (size_t)(end - data);
  p->req->bytes_in += *used;
  if (p->scanning && rp_fold_in(p, data, end))
    return rp_refuse(p, 400, "bad_request", "obs-fold (a header line continued) is not accepted");
  switch (p->pause) {
  case RP_PAUSE_HEAD:
    llhttp_resume(&p->llhttp);
    p->scanning = false;
    return rp_check_head(p);
  case RP_PAUSE_TRAILERS:
    llhttp_resume(&p->llhttp);
    /* A trailer line never starts with a blank either. */
    p->scanning = true;
    p->prev_lf = true;
    return RP_MORE;
  case RP_PAUSE_COMPLETE:
    /* Stays paused until request_parser_next(). */
    p->complete = true;
    p->scanning = false;
    p->req->keep_alive = p->keep_alive;
    return p->in_trailers ? rp_merge_trailers(p) : RP_COMPLETE;
  default:
    return RP_MORE;
  }
}

request_parser_result_t request_parser_feed(request_parser_t *p, const char *data, size_t len,
                                            size_t *used) {
  *used = 0;
  if (p->status != 0) {
    *used = len;
    return RP_ERROR;
  }
  if (p->complete)
    return RP_COMPLETE; /* request_parser_next() was not called */
  for (;;) {
    size_t n;
    request_parser_result_t res = rp_step(p, data + *used, len - *used, &n);
    *used += n;
    if (res == RP_ERROR)
      *used = len;
    if (res != RP_MORE || p->pause != RP_PAUSE_TRAILERS)
      return res;
  }
}

void request_parser_next(request_parser_t *p) {
  /* A fresh llhttp, not a resumed one: resumed after an Upgrade request,
   * or after a Connection: close that came in a trailer (and so was not
   * taken), llhttp would parse nothing more and drop what follows. */
  llhttp_reset(&p->llhttp);
  p->complete = false;
  p->header_bytes = 0;
  p->in_message = false;
  p->head_done = false;
  p->in_trailers = false;
  p->keep_alive = false;
  p->expect_continue = false;
  p->scanning = true;
  p->prev_lf = false;
  p->crlf_left = 0;
  p->pause = RP_PAUSE_NONE;
}
