#include "storage/postgres/pg_array.h"

#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

/* ndim, flags, element OID, then one dimension's length and lower bound. */
#define PG_ARRAY_HEADER 20
#define PG_ARRAY_FIRST_CAP 4096

static void pg_put32(char *p, uint32_t v) {
  p[0] = (char)(v >> 24);
  p[1] = (char)(v >> 16);
  p[2] = (char)(v >> 8);
  p[3] = (char)v;
}

void pg_array_init(pg_array_t *a, uint32_t element_oid) {
  memset(a, 0, sizeof(*a));
  a->oid = element_oid;
  a->len = PG_ARRAY_HEADER; /* written by pg_array_finish() */
}

/* Room for n more bytes, or failed. */
static bool pg_array_reserve(pg_array_t *a, size_t n) {
  if (a->failed)
    return false;
  if (a->len + n <= a->cap)
    return true;
  size_t cap = a->cap > 0 ? a->cap : PG_ARRAY_FIRST_CAP;
  while (cap < a->len + n && cap <= SIZE_MAX / 2)
    cap *= 2;
  char *data = cap >= a->len + n ? realloc(a->data, cap) : NULL;
  if (data == NULL) {
    a->failed = true;
    return false;
  }
  a->data = data;
  a->cap = cap;
  return true;
}

void pg_array_add(pg_array_t *a, const void *data, size_t len) {
  /* An element's length is an int32 on the wire. */
  if (len > INT32_MAX || a->count == INT32_MAX) {
    a->failed = true;
    return;
  }
  if (!pg_array_reserve(a, 4 + (data != NULL ? len : 0)))
    return;
  pg_put32(a->data + a->len, data != NULL ? (uint32_t)len : UINT32_MAX); /* -1: NULL */
  a->len += 4;
  if (data != NULL) {
    memcpy(a->data + a->len, data, len);
    a->len += len;
  } else {
    a->nulls = true;
  }
  a->count++;
}

void pg_array_add_str(pg_array_t *a, const char *s) {
  pg_array_add(a, s, s != NULL ? strlen(s) : 0);
}

/* Network byte order, at the width of the element type. */
void pg_array_add_int(pg_array_t *a, int64_t v) {
  size_t width = a->oid == PG_OID_INT2 ? 2 : a->oid == PG_OID_INT4 ? 4 : 8;
  char buf[8];
  uint64_t u = (uint64_t)v;
  for (size_t i = 0; i < width; i++)
    buf[i] = (char)(u >> (8 * (width - 1 - i)));
  pg_array_add(a, buf, width);
}

int pg_array_finish(pg_array_t *a) {
  if (!pg_array_reserve(a, 0) || a->failed)
    return -ENOMEM;
  pg_put32(a->data + 0, 1);
  pg_put32(a->data + 4, a->nulls ? 1 : 0);
  pg_put32(a->data + 8, a->oid);
  pg_put32(a->data + 12, (uint32_t)a->count);
  pg_put32(a->data + 16, 1);
  return 0;
}

void pg_array_free(pg_array_t *a) {
  free(a->data);
  memset(a, 0, sizeof(*a));
}
