/* storage_location: what --db names, told apart by its scheme.
 *
 *   PATH          a SQLite file (the default: retryd.db)
 *   sqlite:PATH   the same, said explicitly
 *   SCHEME://...  a backend reached by URL; none is built in yet, so it is
 *                 refused by name, like any unknown scheme
 *
 * A plain path may contain a colon ("./a:b" or "/data/a:b" are paths):
 * only a leading name of letters followed by "://", or exactly "sqlite:",
 * is read as a scheme. Pure functions, shared by the option check
 * (proxy/config.c: a bad --db is a configuration error, exit 2) and by
 * storage_backend_open(). */
#ifndef RETRYD_STORAGE_LOCATION_H
#define RETRYD_STORAGE_LOCATION_H

#include <stddef.h>

typedef enum {
  STORAGE_SQLITE,
} storage_kind_t;

typedef struct {
  storage_kind_t kind;
  const char *path; /* STORAGE_SQLITE: points into the text parsed */
} storage_location_t;

/* 0, or -EINVAL with one line in err (without the option's name). */
int storage_location_parse(const char *text, storage_location_t *out, char *err, size_t errlen);

#endif
