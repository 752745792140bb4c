#include "proxy/buf.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void buf_init(buf_t *b, size_t max) {
  b->data = NULL;
  b->len = 0;
  b->cap = 0;
  b->max = max;
}

void buf_free(buf_t *b) {
  free(b->data);
  b->data = NULL;
  b->len = 0;
  b->cap = 0;
}

void buf_reset(buf_t *b) {
  b->len = 0;
}

static int buf_reserve(buf_t *b, size_t extra) {
  if (extra > b->max || b->len > b->max - extra)
    return -E2BIG;
  size_t need = b->len + extra;
  if (need + 1 <= b->cap)
    return 0;
  size_t ncap = b->cap ? b->cap : 256;
  while (ncap < need + 1)
    ncap *= 2;
  /* +1 keeps room for a NUL so text users can treat data as a C string. */
  if (ncap > b->max + 1)
    ncap = b->max + 1;
  char *p = realloc(b->data, ncap);
  if (p == NULL)
    return -ENOMEM;
  b->data = p;
  b->cap = ncap;
  return 0;
}

int buf_append(buf_t *b, const void *data, size_t len) {
  if (len == 0)
    return 0;
  int rc = buf_reserve(b, len);
  if (rc != 0)
    return rc;
  memcpy(b->data + b->len, data, len);
  b->len += len;
  b->data[b->len] = '\0';
  return 0;
}

int buf_append_str(buf_t *b, const char *s) {
  return buf_append(b, s, strlen(s));
}

int buf_append_uint(buf_t *b, uint64_t n) {
  char tmp[20];
  size_t k = sizeof(tmp);
  do {
    tmp[--k] = (char)('0' + n % 10);
    n /= 10;
  } while (n > 0);
  return buf_append(b, tmp + k, sizeof(tmp) - k);
}

int buf_append_int(buf_t *b, int64_t n) {
  if (n >= 0)
    return buf_append_uint(b, (uint64_t)n);
  int rc = buf_append(b, "-", 1);
  /* Negated in unsigned arithmetic: INT64_MIN has no positive twin. */
  return rc ? rc : buf_append_uint(b, (uint64_t)0 - (uint64_t)n);
}

int buf_append_field(buf_t *b, const char *name, const char *value) {
  size_t nl = strlen(name), vl = strlen(value);
  int rc = buf_reserve(b, nl + vl + 4);
  if (rc != 0)
    return rc;
  char *p = b->data + b->len;
  memcpy(p, name, nl);
  p += nl;
  *p++ = ':';
  *p++ = ' ';
  memcpy(p, value, vl);
  p += vl;
  *p++ = '\r';
  *p++ = '\n';
  *p = '\0';
  b->len += nl + vl + 4;
  return 0;
}

int buf_printf(buf_t *b, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  va_list ap2;
  va_copy(ap2, ap);
  /* One pass when the text fits the room already allocated (the usual
   * case); formatting twice (measure, then print) cost as much again. */
  size_t room = b->cap > b->len ? b->cap - b->len : 0;
  int n = vsnprintf(room ? b->data + b->len : NULL, room, fmt, ap);
  va_end(ap);
  int rc = -EINVAL;
  if (n >= 0 && (size_t)n < room) {
    if ((size_t)n > b->max - b->len || b->len > b->max) {
      b->data[b->len] = '\0'; /* over the cap: leave the buffer as it was */
      rc = -E2BIG;
    } else {
      b->len += (size_t)n;
      rc = 0;
    }
  } else if (n >= 0) {
    if (room)
      b->data[b->len] = '\0';
    rc = buf_reserve(b, (size_t)n);
    if (rc == 0) {
      vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap2);
      b->len += (size_t)n;
    }
  }
  va_end(ap2);
  return rc;
}

int buf_append_json_escaped(buf_t *b, const char *s, size_t len) {
  static const char hex[] = "0123456789abcdef";
  for (size_t i = 0; i < len; i++) {
    unsigned char c = (unsigned char)s[i];
    char esc[7];
    size_t n = 0;
    if (c == '"' || c == '\\') {
      esc[0] = '\\';
      esc[1] = (char)c;
      n = 2;
    } else if (c == '\n') {
      memcpy(esc, "\\n", 2);
      n = 2;
    } else if (c == '\r') {
      memcpy(esc, "\\r", 2);
      n = 2;
    } else if (c == '\t') {
      memcpy(esc, "\\t", 2);
      n = 2;
    } else if (c < 0x20 || c == 0x7f) {
      memcpy(esc, "\\u00", 4);
      esc[4] = hex[c >> 4];
      esc[5] = hex[c & 0xf];
      n = 6;
    } else if (c >= 0x80) {
      /* Bytes from the network are not guaranteed UTF-8; escaping them as
       * code points keeps every log line valid JSON. */
      memcpy(esc, "\\u00", 4);
      esc[4] = hex[c >> 4];
      esc[5] = hex[c & 0xf];
      n = 6;
    } else {
      esc[0] = (char)c;
      n = 1;
    }
    int rc = buf_append(b, esc, n);
    if (rc != 0)
      return rc;
  }
  return 0;
}

void buf_consume(buf_t *b, size_t n) {
  if (n >= b->len) {
    b->len = 0;
    return;
  }
  memmove(b->data, b->data + n, b->len - n);
  b->len -= n;
}

char *buf_steal(buf_t *b) {
  char *p = b->data;
  b->data = NULL;
  b->len = 0;
  b->cap = 0;
  return p;
}
