/* config: every option of retryd, from flags and RETRYD_* environment.
 *
 * config_load() fills a config_t from the environment first and the command
 * line second (a flag wins), validating each value strictly. On a bad value
 * it writes one line naming the option into err and returns CONFIG_ERROR, so
 * main() can print it and exit 2. The struct also carries the internal
 * limits (header caps, write watermarks) so no limit is a magic number in the
 * middle of the code. Called once, before the loop starts; read-only after. */
#ifndef RETRYD_CONFIG_H
#define RETRYD_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

enum { CONFIG_OK = 0, CONFIG_ERROR = 2, CONFIG_EXIT = 1 /* --help / --version printed */ };

#include "proxy/log_level.h"

typedef struct {
  /* --retry-on: a status code c is retryable when status[c] is set. */
  bool status[600];
  bool network;
} retry_on_t;

/* --rate-limit N/DUR: at most n sends per period_ms (n 0: no limit). */
typedef struct {
  uint64_t n;
  uint64_t period_ms;
} rate_limit_t;

typedef struct {
  char upstream[2048];   /* origin plus optional path prefix, no trailing '/' */
  char listen_text[300]; /* as given, for logs */
  struct sockaddr_storage listen_addr;
  char db_path[4096];
  uint64_t retry_interval_ms;
  retry_on_t retry_on;
  uint64_t max_attempts; /* 0: no limit */
  uint64_t max_age_ms;
  uint64_t retry_concurrency;
  uint64_t upstream_timeout_ms;
  uint64_t max_body;
  uint64_t max_queue;
  uint64_t claim_lease_ms; /* shared storage: an unrenewed claim's life */
  uint64_t keep_completed_ms;
  uint64_t max_wait_ms;
  char upstream_ca[4096]; /* empty: system CAs */
  bool upstream_http2;    /* https:// through libcurl (HTTP/2 by ALPN), not the own client */
  uint64_t max_connections;
  char admin_token[256]; /* empty: no token needed */
  char read_token[256];  /* empty: none; a token that may only read the control API */
  bool metrics_open;     /* GET /_retryd/metrics needs no token, whatever is set */
  log_level_t log_level;
  uint64_t log_summary_interval_ms; /* how often retries are summed up at info */
  uint64_t client_timeout_ms;       /* headers must arrive, and a body keep flowing, within this */
  uint64_t client_body_timeout_ms;  /* a whole request body must arrive within this */
  uint64_t keepalive_timeout_ms;    /* idle keep-alive connections are closed after this */
  uint64_t shutdown_timeout_ms;     /* SIGTERM: how long requests in flight may take */
  bool route_pause;                 /* pause the route on capacity signals (--route-pause) */
  rate_limit_t rate_limit;          /* toward the upstream: --rate-limit N/DUR */
  char config_file[4096];           /* --config: the routes file (proxy/routes_file.h); "": none */
  char callback_url[2048];          /* --callback-url: notices of requests without their own; "" */
  char callback_secret[512];        /* --callback-secret: signs notices; "": unsigned */
  char callback_allow[4096];        /* --callback-allow: origins notices may go to; "": loopback */

  /* Internal limits, not options (documented in the README). */
  size_t max_header_bytes;          /* request line plus headers: 431 past it */
  size_t max_response_header_bytes; /* upstream answer's head: 502 past it */
  size_t write_high_water;          /* bytes queued to a client before the upstream is paused */
  size_t callback_body_max; /* a final answer's body this size or less rides in its notice */
} config_t;

void config_defaults(config_t *cfg);
/* CONFIG_OK, CONFIG_EXIT (help/version written to stdout) or CONFIG_ERROR with err set. */
int config_load(config_t *cfg, int argc, char **argv, char *err, size_t errlen);
/* Parses one option by its long name (without "--"); for tests and env. */
int config_set(config_t *cfg, const char *name, const char *value, char *err, size_t errlen);
void config_usage(void);
/* Calls fn with the name (len bytes, not NUL-terminated) of each variable
 * of envp that starts with RETRYD_ but is no option's RETRYD_<NAME> form:
 * a typo would otherwise be ignored without a word. Never the value, which
 * may be a token. main() logs each as a warning once the log is up. */
void config_each_unknown_env(char *const *envp, void (*fn)(const char *name, size_t len, void *arg),
                             void *arg);

#endif
