#include "proxy/response_head.h"

#include <string.h>
#include <strings.h>

void response_head_init(response_head_t *h, size_t max_bytes) {
  memset(h, 0, sizeof(*h));
  headers_init(&h->fields, max_bytes);
}

void response_head_free(response_head_t *h) {
  headers_free(&h->fields);
}

void response_head_reset(response_head_t *h) {
  h->status = 0;
  h->reason[0] = '\0';
  h->complete = false;
  headers_reset(&h->fields);
}

/* "HTTP/1.1 200 OK" or "HTTP/2 200". */
static int response_head_status(response_head_t *h, const char *line, size_t len) {
  const char *sp = memchr(line, ' ', len);
  if (sp == NULL || (size_t)(line + len - sp) < 4)
    return -1;
  int code = 0;
  for (int i = 1; i <= 3; i++) {
    char d = sp[i];
    if (d < '0' || d > '9')
      return -1;
    code = code * 10 + (d - '0');
  }
  h->status = code;
  const char *r = sp + 4;
  const char *end = line + len;
  while (end > r && (end[-1] == '\r' || end[-1] == '\n' || end[-1] == ' '))
    end--;
  while (r < end && *r == ' ')
    r++;
  size_t rlen = (size_t)(end - r);
  if (rlen >= sizeof(h->reason))
    rlen = sizeof(h->reason) - 1;
  memcpy(h->reason, r, rlen);
  h->reason[rlen] = '\0';
  headers_reset(&h->fields);
  return 0;
}

head_result_t response_head_line(response_head_t *h, const char *line, size_t len) {
  if (h->complete)
    return HEAD_MORE; /* trailers */
  if (len >= 5 && memcmp(line, "HTTP/", 5) == 0)
    return response_head_status(h, line, len) == 0 ? HEAD_MORE : HEAD_ERROR;
  if (len <= 2 && (len == 0 || line[0] == '\r' || line[0] == '\n')) {
    if (h->status == 0)
      return HEAD_ERROR;
    if (h->status < 200)
      return HEAD_MORE; /* an interim answer (103): the final one follows */
    h->complete = true;
    return HEAD_COMPLETE;
  }
  const char *colon = memchr(line, ':', len);
  if (colon == NULL || colon == line)
    return HEAD_MORE; /* not a field (an obs-fold continuation): dropped */
  const char *v = colon + 1;
  const char *end = line + len;
  while (end > v && (end[-1] == '\r' || end[-1] == '\n' || end[-1] == ' ' || end[-1] == '\t'))
    end--;
  while (v < end && (*v == ' ' || *v == '\t'))
    v++;
  if (headers_add(&h->fields, line, (size_t)(colon - line), v, (size_t)(end - v)) != 0)
    return HEAD_ERROR;
  return HEAD_MORE;
}

int response_head_serialize(const response_head_t *h, buf_t *out) {
  const headers_t *f = &h->fields;
  const char *connection = headers_connection_names(f);
  int rc = 0;
  for (size_t i = 0; rc == 0 && i < f->count; i++) {
    if (headers_is_hop_by_hop(headers_name(f, i), connection))
      continue;
    rc = buf_append_field(out, headers_name(f, i), headers_value(f, i));
  }
  return rc;
}

int response_head_copy_unframed(const char *lines, size_t len, buf_t *out) {
  const char *p = lines, *end = lines + len;
  int rc = 0;
  while (rc == 0 && p < end) {
    const char *eol = memchr(p, '\n', (size_t)(end - p));
    size_t l = eol ? (size_t)(eol - p) + 1 : (size_t)(end - p);
    bool framing = (l > 15 && strncasecmp(p, "content-length:", 15) == 0) ||
                   (l > 18 && strncasecmp(p, "transfer-encoding:", 18) == 0);
    if (!framing)
      rc = buf_append(out, p, l);
    p += l;
  }
  return rc;
}
