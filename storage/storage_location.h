/* storage_location: what --db names, told apart by its scheme.
 *
 *   PATH          a SQLite file (the default: retryd.db)
 *   sqlite:PATH   the same, said explicitly
 *   postgres://... or postgresql://...
 *                 a PostgreSQL database (libpq's URI, with libpq's
 *                 environment: PGPASSWORD, PGPASSFILE, PGSSLMODE...)
 *   SCHEME://...  any other scheme is refused by name
 *
 * A plain path may contain a colon ("./a:b" or "/data/a:b" are paths):
 * only a leading name of letters followed by "://", or exactly "sqlite:",
 * is read as a scheme. Pure functions, shared by the option check
 * (proxy/config.c: a bad --db is a configuration error, exit 2) and by
 * storage_backend_open(). */
#ifndef RETRYD_STORAGE_LOCATION_H
#define RETRYD_STORAGE_LOCATION_H

#include <stdbool.h>
#include <stddef.h>

typedef enum {
  STORAGE_SQLITE,
  STORAGE_POSTGRES,
} storage_kind_t;

typedef struct {
  storage_kind_t kind;
  /* Points into the text parsed: the file's path (SQLite), or the whole
   * URL (PostgreSQL). */
  const char *path;
} storage_location_t;

/* 0, or -EINVAL with one line in err (without the option's name). */
int storage_location_parse(const char *text, storage_location_t *out, char *err, size_t errlen);

/* Overwrites, in place, the password of a URL's userinfo (scheme://user:
 * PASSWORD@host...) found anywhere in text with '*', keeping its length.
 * main() runs it over its own argv once the options are read, so the
 * password of --db does not stay readable in ps or /proc/PID/cmdline.
 * Returns whether it masked anything. */
bool storage_location_mask_password(char *text);

#endif
