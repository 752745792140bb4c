#include "proxy/callback/callback_url.h"

#include <ctype.h>
#include <curl/curl.h>
#include <stdio.h>
#include <string.h>

#include "proxy/callback/callback_sign.h"

/* curl's URL parser, as config.c uses it for --upstream: one reading of a
 * URL for retryd and for the client that sends. */
typedef struct {
  char *scheme, *host, *port, *path, *query, *fragment, *user, *password;
} url_parts_t;

static void url_parts_free(url_parts_t *p) {
  curl_free(p->scheme);
  curl_free(p->host);
  curl_free(p->port);
  curl_free(p->path);
  curl_free(p->query);
  curl_free(p->fragment);
  curl_free(p->user);
  curl_free(p->password);
}

static int url_parts_read(const char *url, url_parts_t *p) {
  memset(p, 0, sizeof(*p));
  CURLU *u = curl_url();
  if (u == NULL)
    return -1;
  int rc = curl_url_set(u, CURLUPART_URL, url, 0) == CURLUE_OK ? 0 : -1;
  if (rc == 0) {
    curl_url_get(u, CURLUPART_SCHEME, &p->scheme, 0);
    curl_url_get(u, CURLUPART_HOST, &p->host, 0);
    curl_url_get(u, CURLUPART_PORT, &p->port, CURLU_DEFAULT_PORT);
    curl_url_get(u, CURLUPART_PATH, &p->path, 0);
    curl_url_get(u, CURLUPART_QUERY, &p->query, 0);
    curl_url_get(u, CURLUPART_FRAGMENT, &p->fragment, 0);
    curl_url_get(u, CURLUPART_USER, &p->user, 0);
    curl_url_get(u, CURLUPART_PASSWORD, &p->password, 0);
  }
  curl_url_cleanup(u);
  return rc;
}

static bool callback_host_is_loopback(const char *host) {
  return strcmp(host, "127.0.0.1") == 0 || strcmp(host, "localhost") == 0 ||
         strcmp(host, "[::1]") == 0;
}

int callback_url_parse(const char *url, callback_url_t *out, char *why, size_t whylen) {
  url_parts_t p;
  int rc = -1;
  if (strlen(url) >= CALLBACK_URL_MAX) {
    snprintf(why, whylen, "the callback URL is longer than %d bytes", CALLBACK_URL_MAX - 1);
    return -1;
  }
  if (url_parts_read(url, &p) != 0) {
    snprintf(why, whylen, "the callback URL is not a URL (want http://HOST[:PORT]/PATH)");
    goto done;
  }
  if (p.scheme == NULL || (strcmp(p.scheme, "http") != 0 && strcmp(p.scheme, "https") != 0)) {
    snprintf(why, whylen, "the callback URL's scheme must be http or https");
    goto done;
  }
  if (p.host == NULL || p.host[0] == '\0' || p.port == NULL) {
    snprintf(why, whylen, "the callback URL has no host");
    goto done;
  }
  if (p.user != NULL || p.password != NULL || p.fragment != NULL) {
    snprintf(why, whylen, "the callback URL may have no user, password or fragment");
    goto done;
  }
  for (char *h = p.host; *h; h++)
    *h = (char)tolower((unsigned char)*h);
  int n = snprintf(out->origin, sizeof(out->origin), "%s://%s:%s", p.scheme, p.host, p.port);
  int m = snprintf(out->target, sizeof(out->target), "%s%s%s", p.path ? p.path : "/",
                   p.query ? "?" : "", p.query ? p.query : "");
  if (n < 0 || (size_t)n >= sizeof(out->origin) || m < 0 || (size_t)m >= sizeof(out->target)) {
    snprintf(why, whylen, "the callback URL is too long");
    goto done;
  }
  out->loopback = callback_host_is_loopback(p.host);
  rc = 0;
done:
  url_parts_free(&p);
  return rc;
}

/* Calls fn with each origin of allow, normalised; stops at the first that
 * fn answers true for, or that does not parse (*bad set). */
static bool callback_allow_each(const char *allow, bool (*fn)(const callback_url_t *, const void *),
                                const void *arg, bool *bad) {
  *bad = false;
  const char *p = allow;
  while (*p != '\0') {
    size_t len = strcspn(p, ",");
    char item[CALLBACK_URL_MAX];
    while (len > 0 && *p == ' ') {
      p++;
      len--;
    }
    while (len > 0 && p[len - 1] == ' ')
      len--;
    callback_url_t u;
    char why[160];
    if (len == 0 || len >= sizeof(item)) {
      *bad = true;
      return false;
    }
    memcpy(item, p, len);
    item[len] = '\0';
    if (callback_url_parse(item, &u, why, sizeof(why)) != 0 || strcmp(u.target, "/") != 0) {
      *bad = true;
      return false;
    }
    if (fn(&u, arg))
      return true;
    p += strcspn(p, ",");
    if (*p == ',' && *++p == '\0') {
      *bad = true; /* a trailing comma: an empty origin */
      return false;
    }
  }
  return false;
}

static bool callback_same_origin(const callback_url_t *allowed, const void *arg) {
  return strcmp(allowed->origin, ((const callback_url_t *)arg)->origin) == 0;
}

bool callback_url_allowed(const callback_url_t *url, const char *allow) {
  if (allow[0] == '\0')
    return url->loopback;
  bool bad;
  return callback_allow_each(allow, callback_same_origin, url, &bad);
}

static bool callback_never(const callback_url_t *u, const void *arg) {
  (void)u;
  (void)arg;
  return false;
}

int callback_url_check_config(const char *allow, const char *url, const char *secret, char *err,
                              size_t errlen) {
  bool bad;
  callback_allow_each(allow, callback_never, NULL, &bad);
  if (bad) {
    snprintf(err, errlen,
             "--callback-allow: want a comma-separated list of origins "
             "(http[s]://HOST[:PORT], no path)");
    return -1;
  }
  if (url[0] != '\0') {
    callback_url_t u;
    char why[200];
    if (callback_url_parse(url, &u, why, sizeof(why)) != 0) {
      snprintf(err, errlen, "--callback-url: %s", why);
      return -1;
    }
    if (!callback_url_allowed(&u, allow)) {
      snprintf(err, errlen, "--callback-url: its origin %s is not in --callback-allow%s", u.origin,
               allow[0] == '\0' ? " (default: loopback only)" : "");
      return -1;
    }
  }
  callback_key_t key;
  if (secret[0] != '\0' && callback_key_parse(secret, &key) != 0) {
    snprintf(err, errlen,
             "--callback-secret: a whsec_ secret must be valid base64 after whsec_ "
             "(at most 64 bytes of key)");
    return -1;
  }
  return 0;
}
