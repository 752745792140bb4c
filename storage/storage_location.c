#include "storage/storage_location.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>

#define SQLITE_PREFIX "sqlite:"

/* The length of a URL scheme ("name://") at the start of text, or 0.
 * RFC 3986: a letter, then letters, digits, '+', '-' or '.'. */
static size_t url_scheme_len(const char *text) {
  if (!isalpha((unsigned char)text[0]))
    return 0;
  size_t n = 1;
  while (isalnum((unsigned char)text[n]) || text[n] == '+' || text[n] == '-' || text[n] == '.')
    n++;
  return strncmp(text + n, "://", 3) == 0 ? n : 0;
}

int storage_location_parse(const char *text, storage_location_t *out, char *err, size_t errlen) {
  const char *path = text;
  if (strncmp(text, SQLITE_PREFIX, strlen(SQLITE_PREFIX)) == 0) {
    path = text + strlen(SQLITE_PREFIX);
  } else {
    size_t scheme = url_scheme_len(text);
    if ((scheme == 8 && strncmp(text, "postgres", 8) == 0) ||
        (scheme == 10 && strncmp(text, "postgresql", 10) == 0)) {
      out->kind = STORAGE_POSTGRES;
      out->path = text;
      return 0;
    }
    if (scheme > 0) {
      snprintf(err, errlen,
               "unknown storage scheme \"%.*s\" (a file path, sqlite:PATH or postgres://...)",
               (int)scheme, text);
      return -EINVAL;
    }
  }
  if (path[0] == '\0') {
    snprintf(err, errlen, "empty path (a file path, sqlite:PATH or postgres://...)");
    return -EINVAL;
  }
  out->kind = STORAGE_SQLITE;
  out->path = path;
  return 0;
}

bool storage_location_mask_password(char *text) {
  bool masked = false;
  for (char *p = strstr(text, "://"); p != NULL; p = strstr(p, "://")) {
    char *user = p + 3;
    /* The userinfo ends at the first '@' before the host's '/', '?' or '#'. */
    size_t auth = strcspn(user, "/?#");
    char *at = memchr(user, '@', auth);
    p = user;
    if (at == NULL)
      continue;
    /* The last '@' of the authority ends it: a password may hold '@'. */
    for (char *q = at + 1; q < user + auth; q++)
      if (*q == '@')
        at = q;
    char *colon = memchr(user, ':', (size_t)(at - user));
    if (colon == NULL)
      continue;
    for (char *q = colon + 1; q < at; q++)
      *q = '*';
    masked = masked || at > colon + 1;
    p = at;
  }
  return masked;
}
