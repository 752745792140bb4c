/* pg_array: a one-dimensional array in PostgreSQL's binary format, built
 * to be sent as one binary parameter ($1::bytea[] and the like).
 *
 * Why: a batch of rows goes to the server as one statement (INSERT ...
 * SELECT FROM unnest($1, $2, ...)), one array per column, instead of one
 * statement and one round trip per row. The binary format carries bytes
 * as they are (a bytea needs no escaping, a NUL is a byte like any other)
 * and integers at their width, so nothing is formatted or parsed twice.
 *
 * The format (array_recv() in the server's arrayfuncs.c): dimensions (1),
 * a has-NULLs flag and the element type's OID, then per dimension its
 * length and lower bound (1), then per element its length in bytes (-1:
 * NULL) and its bytes. The server refuses an array whose element OID is
 * not the type the statement casts the parameter to.
 *
 * Lifecycle: pg_array_init(a, PG_OID_...) → pg_array_add*()... →
 * pg_array_finish() → a->data and a->len are the parameter → pg_array_free().
 * An allocation that fails makes the array failed: later adds do nothing
 * and pg_array_finish() says -ENOMEM. Any thread; one array, one thread. */
#ifndef RETRYD_PG_ARRAY_H
#define RETRYD_PG_ARRAY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The element types retryd sends (pg_type.oid, fixed by PostgreSQL). */
#define PG_OID_BYTEA 17u
#define PG_OID_INT8 20u
#define PG_OID_INT2 21u
#define PG_OID_INT4 23u
#define PG_OID_TEXT 25u

typedef struct {
  char *data; /* the header, then the elements */
  size_t len;
  size_t cap;
  uint32_t oid;
  int32_t count;
  bool nulls;
  bool failed;
} pg_array_t;

void pg_array_init(pg_array_t *a, uint32_t element_oid);
/* An element of len bytes; data NULL: SQL NULL. */
void pg_array_add(pg_array_t *a, const void *data, size_t len);
/* A NUL-terminated string (text or bytea), or SQL NULL when s is NULL. */
void pg_array_add_str(pg_array_t *a, const char *s);
/* An integer at the element type's width (int2, int4 or int8). */
void pg_array_add_int(pg_array_t *a, int64_t v);
/* Writes the header: 0, or -ENOMEM when an add failed. */
int pg_array_finish(pg_array_t *a);
void pg_array_free(pg_array_t *a);

#endif
