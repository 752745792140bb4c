#include "proxy/upstream_request.h"

#include <string.h>
#include <strings.h>

int upstream_request_headers(const headers_t *client, buf_t *out) {
  const char *connection = headers_get(client, "connection");
  int rc = 0;
  for (size_t i = 0; rc == 0 && i < client->count; i++) {
    const char *name = headers_name(client, i);
    if (headers_is_hop_by_hop(name, connection) || strcasecmp(name, "host") == 0 ||
        strcasecmp(name, "content-length") == 0 || strcasecmp(name, "expect") == 0)
      continue;
    rc = buf_append_field(out, name, headers_value(client, i));
  }
  return rc;
}

static int slist_add(struct curl_slist **list, const char *line) {
  struct curl_slist *n = curl_slist_append(*list, line);
  if (n == NULL)
    return -1;
  *list = n;
  return 0;
}

/* Whether the stored lines hold a field with this name. */
static bool has_field(const char *lines, size_t len, const char *name) {
  size_t nlen = strlen(name);
  const char *p = lines, *end = lines + len;
  while (p < end) {
    const char *eol = memchr(p, '\n', (size_t)(end - p));
    if (eol == NULL)
      eol = end;
    if ((size_t)(eol - p) > nlen && p[nlen] == ':' && strncasecmp(p, name, nlen) == 0)
      return true;
    p = eol + 1;
  }
  return false;
}

static int upstream_request_slist(const upstream_request_t *r, struct curl_slist **list) {
  buf_t line;
  buf_init(&line, r->headers_len + 2);
  const char *p = r->headers, *end = r->headers + r->headers_len;
  int rc = 0;
  while (rc == 0 && p < end) {
    const char *eol = memchr(p, '\n', (size_t)(end - p));
    size_t len = eol ? (size_t)(eol - p) : (size_t)(end - p);
    size_t l = len;
    if (l > 0 && p[l - 1] == '\r')
      l--;
    buf_reset(&line);
    rc = buf_append(&line, p, l);
    /* "Name:" with nothing after it would delete curl's own field; curl
     * sends an empty value for "Name;". */
    if (rc == 0 && line.len > 0 && line.data[line.len - 1] == ':')
      line.data[line.len - 1] = ';';
    else if (rc == 0 && line.len > 1 && line.data[line.len - 1] == ' ' &&
             line.data[line.len - 2] == ':') {
      line.data[line.len - 2] = ';';
      line.len--;
      line.data[line.len] = '\0';
    }
    if (rc == 0 && line.len > 0)
      rc = slist_add(list, line.data);
    p += len + 1;
  }
  buf_free(&line);
  /* Empty overrides stop curl adding defaults the client did not send. */
  if (rc == 0)
    rc = slist_add(list, "Expect:");
  if (rc == 0 && !has_field(r->headers, r->headers_len, "accept"))
    rc = slist_add(list, "Accept:");
  if (rc == 0 && !has_field(r->headers, r->headers_len, "content-type"))
    rc = slist_add(list, "Content-Type:");
  return rc;
}

int upstream_request_setup(CURL *e, const char *upstream, const upstream_request_t *r,
                           struct curl_slist **slist, buf_t *url) {
  if (buf_append_str(url, upstream) != 0 || buf_append_str(url, r->target) != 0)
    return -1;
  if (upstream_request_slist(r, slist) != 0)
    return -1;
  curl_easy_setopt(e, CURLOPT_URL, url->data);
  curl_easy_setopt(e, CURLOPT_HTTPHEADER, *slist);
  if (strcmp(r->method, "HEAD") == 0) {
    curl_easy_setopt(e, CURLOPT_NOBODY, 1L);
  } else if (r->body != NULL) {
    curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)r->body_len);
    curl_easy_setopt(e, CURLOPT_POSTFIELDS, r->body);
    if (strcmp(r->method, "POST") != 0)
      curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, r->method);
  } else if (strcmp(r->method, "GET") != 0) {
    curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, r->method);
  }
  return 0;
}
