#include "proxy/upstream/response_head.h"

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
