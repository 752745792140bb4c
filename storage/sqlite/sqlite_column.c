#include "storage/sqlite/sqlite_column.h"

#include <sqlite3.h>
#include <stdlib.h>
#include <string.h>

char *sqlite_column_dup(sqlite3_stmt *st, int col, size_t *len) {
  if (len)
    *len = 0;
  if (sqlite3_column_type(st, col) == SQLITE_NULL)
    return NULL;
  const void *p = sqlite3_column_blob(st, col);
  size_t n = (size_t)sqlite3_column_bytes(st, col);
  char *s = malloc(n + 1);
  if (s == NULL)
    return NULL;
  if (n > 0)
    memcpy(s, p, n);
  s[n] = '\0';
  if (len)
    *len = n;
  return s;
}
