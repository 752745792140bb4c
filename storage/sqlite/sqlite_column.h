/* sqlite_column: a result column as an owned copy.
 *
 * sqlite_column_dup() copies column col of the current row of st into a
 * malloc'd, NUL-terminated buffer (text and blobs alike: a blob may hold
 * NULs, so *len, when asked for, says how many bytes there are). SQL NULL
 * gives NULL with *len 0; so does a failed allocation, which the caller
 * tells apart by the column's type when it matters. */
#ifndef RETRYD_SQLITE_COLUMN_H
#define RETRYD_SQLITE_COLUMN_H

#include <stddef.h>

typedef struct sqlite3_stmt sqlite3_stmt;

char *sqlite_column_dup(sqlite3_stmt *st, int col, size_t *len);

#endif
