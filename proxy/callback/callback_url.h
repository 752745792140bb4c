/* callback_url: where a completion notice may go, and how retryd reaches it.
 *
 * A callback URL is http:// or https://, with a host, an optional port, a
 * path and a query, and no user or fragment. It is sent to only if its
 * origin (scheme, host, port; the default port written out) is allowed:
 * one of --callback-allow's origins, or, with none set, any port of the
 * loopback names (127.0.0.1, localhost, [::1]), so that a client cannot
 * make retryd send requests to anywhere it likes (no SSRF through
 * retryd). Pure functions; any thread. */
#ifndef RETRYD_CALLBACK_URL_H
#define RETRYD_CALLBACK_URL_H

#include <stdbool.h>
#include <stddef.h>

/* The longest callback URL accepted (a header line's worth). */
#define CALLBACK_URL_MAX 2048

typedef struct {
  char origin[CALLBACK_URL_MAX]; /* "scheme://host:port", host in lower case */
  char target[CALLBACK_URL_MAX]; /* "/path?query", at least "/" */
  bool loopback;                 /* host is 127.0.0.1, localhost or [::1] */
} callback_url_t;

/* 0, or -1 with a reason in why. */
int callback_url_parse(const char *url, callback_url_t *out, char *why, size_t whylen);
/* Whether url's origin may be sent to under allow (--callback-allow: a
 * comma-separated list of origins; "" for the loopback default). */
bool callback_url_allowed(const callback_url_t *url, const char *allow);
/* Checks --callback-allow, --callback-url and --callback-secret together:
 * 0, or -1 with a one-line reason naming the option in err. */
int callback_url_check_config(const char *allow, const char *url, const char *secret, char *err,
                              size_t errlen);

#endif
