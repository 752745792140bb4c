#include "proxy/http/headers.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

void headers_init(headers_t *h, size_t max_bytes) {
  buf_init(&h->data, max_bytes);
  h->items = NULL;
  h->count = 0;
  h->alloc = 0;
  h->state = 0;
}

void headers_free(headers_t *h) {
  buf_free(&h->data);
  free(h->items);
  h->items = NULL;
  h->count = h->alloc = 0;
  h->state = 0;
}

void headers_reset(headers_t *h) {
  buf_reset(&h->data);
  h->count = 0;
  h->state = 0;
}

static int headers_push(headers_t *h) {
  if (h->count == h->alloc) {
    size_t n = h->alloc ? h->alloc * 2 : 16;
    header_t *p = realloc(h->items, n * sizeof(*p));
    if (p == NULL)
      return -ENOMEM;
    h->items = p;
    h->alloc = n;
  }
  h->items[h->count].name = (uint32_t)h->data.len;
  h->items[h->count].value = (uint32_t)h->data.len;
  h->count++;
  return 0;
}

int headers_name_piece(headers_t *h, const char *p, size_t len) {
  int rc;
  if (h->state != 1) {
    if (h->state == 2 && (rc = buf_append(&h->data, "", 1)) != 0)
      return rc;
    /* The NUL that ends a name is added when its value starts. */
    if ((rc = headers_push(h)) != 0)
      return rc;
    h->state = 1;
  }
  return buf_append(&h->data, p, len);
}

int headers_value_piece(headers_t *h, const char *p, size_t len) {
  int rc;
  if (h->state != 2) {
    if (h->state != 1)
      return -EINVAL; /* a value without a name */
    if ((rc = buf_append(&h->data, "", 1)) != 0)
      return rc;
    h->items[h->count - 1].value = (uint32_t)h->data.len;
    h->state = 2;
  }
  return buf_append(&h->data, p, len);
}

int headers_end(headers_t *h) {
  int rc = 0;
  if (h->state == 1) /* a name with an empty value */
    rc = headers_value_piece(h, "", 0);
  if (rc == 0 && h->state == 2)
    rc = buf_append(&h->data, "", 1);
  h->state = 0;
  return rc;
}

int headers_add(headers_t *h, const char *name, size_t nlen, const char *value, size_t vlen) {
  int rc = headers_name_piece(h, name, nlen);
  if (rc == 0)
    rc = headers_value_piece(h, value, vlen);
  if (rc == 0)
    rc = headers_end(h);
  return rc;
}

/* A name's length without strlen: its value starts right after its NUL
 * (headers_value_piece). Comparing lengths first spares most strcasecmp
 * calls, which profiling showed as the biggest cost of a lookup. */
static inline bool headers_name_is(const headers_t *h, size_t i, const char *name, size_t nlen) {
  const header_t *it = &h->items[i];
  return it->value - it->name == nlen + 1 && strcasecmp(h->data.data + it->name, name) == 0;
}

const char *headers_get(const headers_t *h, const char *name) {
  size_t nlen = strlen(name);
  for (size_t i = 0; i < h->count; i++)
    if (headers_name_is(h, i, name, nlen))
      return headers_value(h, i);
  return NULL;
}

size_t headers_count_named(const headers_t *h, const char *name) {
  size_t nlen = strlen(name);
  size_t n = 0;
  for (size_t i = 0; i < h->count; i++)
    if (headers_name_is(h, i, name, nlen))
      n++;
  return n;
}

bool headers_list_next(const char **cursor, const char **item, size_t *len) {
  const char *p = *cursor;
  while (*p == ' ' || *p == '\t' || *p == ',')
    p++;
  if (*p == '\0') {
    *cursor = p;
    return false;
  }
  const char *start = p;
  while (*p != '\0' && *p != ',')
    p++;
  const char *end = p;
  while (end > start && (end[-1] == ' ' || end[-1] == '\t'))
    end--;
  *item = start;
  *len = (size_t)(end - start);
  *cursor = p;
  return true;
}

bool headers_list_has_token(const char *list, const char *token) {
  size_t tlen = strlen(token), len;
  const char *item;
  while (headers_list_next(&list, &item, &len))
    if (len == tlen && strncasecmp(item, token, tlen) == 0)
      return true;
  return false;
}

bool headers_is_hop_by_hop(const char *name, const char *connection) {
  static const struct {
    const char *name;
    size_t len;
  } fixed[] = {
      {"connection", 10},          {"keep-alive", 10}, {"proxy-connection", 16},
      {"te", 2},                   {"trailer", 7},     {"transfer-encoding", 17},
      {"upgrade", 7},              {"proxy-authorization", 19},
      {"proxy-authenticate", 18},
  };
  /* Every fixed name starts with c, k, p, t or u: most fields (Host,
   * Accept, Date, Server...) are told apart by one byte, the rest mostly
   * by their length. */
  switch (name[0] | 0x20) {
  case 'c':
  case 'k':
  case 'p':
  case 't':
  case 'u': {
    size_t len = strlen(name);
    for (size_t i = 0; i < sizeof(fixed) / sizeof(fixed[0]); i++)
      if (fixed[i].len == len && strcasecmp(name, fixed[i].name) == 0)
        return true;
    break;
  }
  default:
    break;
  }
  return connection != NULL && headers_list_has_token(connection, name);
}

const char *headers_connection_names(const headers_t *h) {
  const char *connection = headers_get(h, "connection");
  if (connection == NULL)
    return NULL;
  const char *cursor = connection, *item;
  size_t len;
  while (headers_list_next(&cursor, &item, &len))
    if (len != 10 || strncasecmp(item, "keep-alive", 10) != 0)
      return connection;
  return NULL;
}

bool headers_is_secret(const char *name) {
  static const char *const secret[] = {
      "authorization", "proxy-authorization", "cookie", "set-cookie", "x-api-key",
      "x-retryd-token",
  };
  for (size_t i = 0; i < sizeof(secret) / sizeof(secret[0]); i++)
    if (strcasecmp(name, secret[i]) == 0)
      return true;
  return false;
}

bool headers_is_retryd_own(const char *name) {
  /* Checked for every forwarded field: one byte tells most apart. */
  switch (name[0] | 0x20) {
  case 'r':
    return strncasecmp(name, "retryd-", 7) == 0;
  case 'x':
    return strcasecmp(name, "x-retryd-token") == 0;
  default:
    return false;
  }
}

bool headers_is_head_only(const char *name) {
  static const char *const head_only[] = {
      "content-length", "transfer-encoding", "trailer", "host", "max-forwards",
      "expect", "range", "if-match", "if-none-match", "if-modified-since",
      "if-unmodified-since", "if-range", "cache-control", "pragma", "content-type",
      "content-encoding", "content-range", "prefer", "idempotency-key",
  };
  for (size_t i = 0; i < sizeof(head_only) / sizeof(head_only[0]); i++)
    if (strcasecmp(name, head_only[i]) == 0)
      return true;
  return headers_is_secret(name) || headers_is_retryd_own(name);
}
