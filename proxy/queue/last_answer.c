#include "proxy/queue/last_answer.h"

#include <string.h>

/* The fields worth keeping: when to come back, what the body is, when the
 * upstream said it. */
static const char *const kept_fields[] = {"Retry-After", "Content-Type", "Date"};

void last_answer_init(last_answer_t *a) {
  buf_init(&a->headers, LAST_ANSWER_HEADERS_MAX);
  buf_init(&a->body, LAST_ANSWER_BODY_MAX);
  a->kept = false;
}

void last_answer_reset(last_answer_t *a) {
  buf_reset(&a->headers);
  buf_reset(&a->body);
  a->kept = false;
}

void last_answer_free(last_answer_t *a) {
  buf_free(&a->headers);
  buf_free(&a->body);
  a->kept = false;
}

void last_answer_keep_head(last_answer_t *a, const headers_t *fields) {
  last_answer_reset(a);
  a->kept = true;
  for (size_t i = 0; i < sizeof(kept_fields) / sizeof(kept_fields[0]); i++) {
    const char *v = headers_get(fields, kept_fields[i]);
    if (v == NULL)
      continue;
    size_t before = a->headers.len;
    /* A field that does not fit is left out whole, never cut. */
    if (buf_append_field(&a->headers, kept_fields[i], v) != 0) {
      a->headers.len = before;
      if (a->headers.data != NULL)
        a->headers.data[before] = '\0';
    }
  }
}

void last_answer_keep_body(last_answer_t *a, const char *data, size_t len) {
  size_t room = LAST_ANSWER_BODY_MAX - a->body.len;
  if (!a->kept || room == 0 || len == 0)
    return;
  if (buf_append(&a->body, data, len < room ? len : room) != 0)
    return; /* out of memory: less of the body is kept */
}

static int json_headers(buf_t *out, const char *h, size_t len) {
  int rc = buf_append_str(out, "{");
  bool first = true;
  const char *end = h + len;
  while (rc == 0 && h < end) {
    const char *eol = memchr(h, '\r', (size_t)(end - h));
    if (eol == NULL)
      eol = end;
    const char *colon = memchr(h, ':', (size_t)(eol - h));
    if (colon != NULL) {
      const char *v = colon + 1;
      while (v < eol && *v == ' ')
        v++;
      char name[64];
      size_t nlen = (size_t)(colon - h) < sizeof(name) - 1 ? (size_t)(colon - h) : sizeof(name) - 1;
      memcpy(name, h, nlen);
      name[nlen] = '\0';
      if (!first)
        rc = buf_append_str(out, ",");
      first = false;
      if (rc == 0)
        rc = buf_append_str(out, "\"");
      if (rc == 0)
        rc = buf_append_json_escaped(out, h, (size_t)(colon - h));
      if (rc == 0)
        rc = buf_append_str(out, "\":\"");
      if (rc == 0)
        rc = headers_is_secret(name) ? buf_append_str(out, "[redacted]")
                                     : buf_append_json_escaped(out, v, (size_t)(eol - v));
      if (rc == 0)
        rc = buf_append_str(out, "\"");
    }
    h = eol + (eol + 1 < end && eol[1] == '\n' ? 2 : 1);
  }
  if (rc == 0)
    rc = buf_append_str(out, "}");
  return rc;
}

int last_answer_json(buf_t *out, int status, const char *headers, size_t headers_len,
                     const char *body, size_t body_len) {
  if (headers == NULL)
    return buf_append_str(out, "null");
  int rc = buf_append_str(out, "{\"status\":");
  if (rc == 0)
    rc = status > 0 ? buf_append_int(out, status) : buf_append_str(out, "null");
  if (rc == 0)
    rc = buf_append_str(out, ",\"headers\":");
  if (rc == 0)
    rc = json_headers(out, headers, headers_len);
  if (rc == 0)
    rc = buf_append_str(out, ",\"body\":\"");
  if (rc == 0 && body != NULL)
    rc = buf_append_json_escaped(out, body, body_len);
  if (rc == 0)
    rc = buf_append_str(out, "\"}");
  return rc;
}
