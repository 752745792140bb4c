/* buf: a growable byte buffer with a hard cap.
 *
 * Every buffer that grows from network input is a buf_t with a maximum set
 * at init (STYLE: no buffer without a cap). Appending past the cap fails with
 * -E2BIG and leaves the buffer unchanged, so the caller can answer 413/431.
 * Not thread-safe: one owner at a time. */
#ifndef RETRYD_BUF_H
#define RETRYD_BUF_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

/* What an append returns must be looked at: a buffer that hit its cap
 * holds part of what was meant, and sending it would send half a document
 * (curl marks its dynbuf the same way). */
#define BUF_MUST_CHECK __attribute__((warn_unused_result))

typedef struct {
  char *data;
  size_t len;
  size_t cap; /* allocated */
  size_t max; /* hard limit on len */
} buf_t;

void buf_init(buf_t *b, size_t max);
void buf_free(buf_t *b);
/* Drops the content but keeps the allocation for reuse. */
void buf_reset(buf_t *b);
/* 0, or -E2BIG past the cap, or -ENOMEM. */
int buf_append(buf_t *b, const void *data, size_t len) BUF_MUST_CHECK;
int buf_append_str(buf_t *b, const char *s) BUF_MUST_CHECK;
/* Decimal digits, as printf's %llu / %lld would write them, without its
 * cost (a 202 answer formats several numbers per request). */
int buf_append_uint(buf_t *b, uint64_t n) BUF_MUST_CHECK;
int buf_append_int(buf_t *b, int64_t n) BUF_MUST_CHECK;
/* Appends "name: value\r\n" (one reserve, no printf). */
int buf_append_field(buf_t *b, const char *name, const char *value) BUF_MUST_CHECK;
int buf_printf(buf_t *b, const char *fmt, ...) __attribute__((format(printf, 2, 3))) BUF_MUST_CHECK;
/* Appends s as the inside of a JSON string literal (no quotes). */
int buf_append_json_escaped(buf_t *b, const char *s, size_t len) BUF_MUST_CHECK;
/* Removes the first n bytes. */
void buf_consume(buf_t *b, size_t n);
/* Hands the storage to the caller (who frees it) and resets the buffer. */
char *buf_steal(buf_t *b);

#endif
