#include "proxy/config.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <curl/curl.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proxy/callback/callback_url.h"
#include "proxy/units.h"
#include "proxy/version.h"
#include "storage/storage_location.h"

typedef enum {
  OPT_UPSTREAM,
  OPT_LISTEN,
  OPT_PATH,    /* a file path, stored as given */
  OPT_STORAGE, /* where the queue lives: storage/storage_location.h */
  OPT_TEXT,    /* a free string */
  OPT_DURATION,
  OPT_SIZE,
  OPT_COUNT, /* an integer >= min */
  OPT_RETRY_ON,
  OPT_LOG_LEVEL,
  OPT_BOOL, /* on/off, true/false, yes/no, 1/0 */
  OPT_RATE, /* N/DUR, or off */
} opt_kind_t;

typedef struct {
  const char *name;
  opt_kind_t kind;
  size_t offset;
  size_t size;     /* for strings: the field's capacity */
  uint64_t min;    /* for numbers: smallest accepted value */
  const char *arg; /* in --help */
  const char *help;
} opt_t;

#define FIELD(f) offsetof(config_t, f), sizeof(((config_t *)0)->f)

static const opt_t options[] = {
    {"upstream", OPT_UPSTREAM, FIELD(upstream), 0, "URL",
     "origin to forward to, http or https, path prefix allowed (https://us-east-1.recall.ai)"},
    {"listen", OPT_LISTEN, FIELD(listen_text), 0, "HOST:PORT",
     "where clients connect (127.0.0.1:8080)"},
    {"db", OPT_STORAGE, FIELD(db_path), 0, "PATH|URL",
     "the queue: a SQLite file (PATH or sqlite:PATH, created 0600) or a PostgreSQL database "
     "shared by replicas (postgres://user@host:port/db) (retryd.db)"},
    {"claim-lease", OPT_DURATION, FIELD(claim_lease_ms), 1000, "DUR",
     "PostgreSQL: how long a replica's claim on a stored request holds unrenewed; then "
     "another replica retries it (30s)"},
    {"retry-interval", OPT_DURATION, FIELD(retry_interval_ms), 1, "DUR",
     "wait between attempts of a stored request (30s)"},
    {"retry-on", OPT_RETRY_ON, FIELD(retry_on), 0, "LIST",
     "what is retryable: codes, ranges, network; +LIST adds to the default (5xx,429,network)"},
    {"max-attempts", OPT_COUNT, FIELD(max_attempts), 0, "N",
     "attempts before a request is dead, 0 for no limit (0)"},
    {"max-age", OPT_DURATION, FIELD(max_age_ms), 1, "DUR",
     "age after which a request is dead (24h)"},
    {"retry-concurrency", OPT_COUNT, FIELD(retry_concurrency), 1, "N",
     "stored requests in flight upstream at once (16)"},
    {"upstream-timeout", OPT_DURATION, FIELD(upstream_timeout_ms), 1, "DUR",
     "one attempt's limit from connecting to the response headers (60s)"},
    {"max-body", OPT_SIZE, FIELD(max_body), 0, "SIZE", "larger request bodies get 413 (10MiB)"},
    {"max-queue", OPT_COUNT, FIELD(max_queue), 1, "N",
     "stored requests before new ones get 503 (1000000)"},
    {"keep-completed", OPT_DURATION, FIELD(keep_completed_ms), 0, "DUR",
     "how long final answers stay readable (24h)"},
    {"max-wait", OPT_DURATION, FIELD(max_wait_ms), 0, "DUR", "cap on Prefer: wait=N (120s)"},
    {"upstream-ca", OPT_PATH, FIELD(upstream_ca), 0, "FILE",
     "CA bundle that verifies the upstream's certificate (system CAs)"},
    {"upstream-http2", OPT_BOOL, FIELD(upstream_http2), 0, "on|off",
     "https upstream through libcurl, HTTP/2 when the upstream offers it (off: HTTP/1.1, "
     "retryd's own client over TLS)"},
    {"max-connections", OPT_COUNT, FIELD(max_connections), 1, "N",
     "client connections at once; more wait in the accept backlog (10000)"},
    {"admin-token", OPT_TEXT, FIELD(admin_token), 0, "TOKEN",
     "when set, /_retryd/* other than health needs this token (X-Retryd-Token or "
     "Authorization: Bearer), which may do everything (none)"},
    {"read-token", OPT_TEXT, FIELD(read_token), 0, "TOKEN",
     "a token that may only read the control API: requests, answers, listings, stats, "
     "metrics (none)"},
    {"metrics-open", OPT_BOOL, FIELD(metrics_open), 0, "on|off",
     "GET /_retryd/metrics needs no token even when tokens are set (off)"},
    {"log-level", OPT_LOG_LEVEL, FIELD(log_level), 0, "LEVEL",
     "debug, info, warn or error; JSON lines on stderr (info)"},
    {"log-summary-interval", OPT_DURATION, FIELD(log_summary_interval_ms), 1, "DUR",
     "how often one info line sums up the retries, when there were any; each retry's own "
     "line is at debug (60s)"},
    {"client-timeout", OPT_DURATION, FIELD(client_timeout_ms), 1, "DUR",
     "a client must send its headers, and keep a body flowing, within this (10s)"},
    {"client-body-timeout", OPT_DURATION, FIELD(client_body_timeout_ms), 1, "DUR",
     "a request body must be complete within this after its headers (60s)"},
    {"keepalive-timeout", OPT_DURATION, FIELD(keepalive_timeout_ms), 1, "DUR",
     "idle keep-alive client connections are closed after this (60s)"},
    {"route-pause", OPT_BOOL, FIELD(route_pause), 0, "on|off",
     "pause sending upstream after a 507, a 429 or a 503 with Retry-After (on)"},
    {"rate-limit", OPT_RATE, FIELD(rate_limit), 0, "N/DUR",
     "sends upstream at most, first attempts and retries alike (off)"},
    {"config", OPT_PATH, FIELD(config_file), 0, "FILE",
     "routes file: several upstreams, per-route policy and rate limits (none)"},
    {"callback-url", OPT_TEXT, FIELD(callback_url), 0, "URL",
     "where a signed notice goes when a stored request without Retryd-Callback ends (none)"},
    {"callback-secret", OPT_TEXT, FIELD(callback_secret), 0, "SECRET",
     "key that signs completion notices (Standard Webhooks; whsec_<base64> or text) (none: "
     "unsigned)"},
    {"callback-allow", OPT_TEXT, FIELD(callback_allow), 0, "ORIGINS",
     "comma-separated origins completion notices may go to (loopback: http[s]://127.0.0.1, "
     "localhost, [::1], any port)"},
    {"shutdown-timeout", OPT_DURATION, FIELD(shutdown_timeout_ms), 0, "DUR",
     "on SIGTERM, how long requests in flight may still take (20s)"},
};

#define NOPTIONS (sizeof(options) / sizeof(options[0]))

static void config_retry_on_default(retry_on_t *r) {
  memset(r, 0, sizeof(*r));
  for (int c = 500; c < 600; c++)
    r->status[c] = true;
  r->status[429] = true;
  r->network = true;
}

void config_defaults(config_t *cfg) {
  char err[256];
  memset(cfg, 0, sizeof(*cfg));
  /* These literals are valid by construction; config_set validates them. */
  config_set(cfg, "upstream", "https://us-east-1.recall.ai", err, sizeof(err));
  config_set(cfg, "listen", "127.0.0.1:8080", err, sizeof(err));
  snprintf(cfg->db_path, sizeof(cfg->db_path), "retryd.db");
  cfg->retry_interval_ms = 30000;
  config_retry_on_default(&cfg->retry_on);
  cfg->max_attempts = 0;
  cfg->max_age_ms = 24ull * 3600 * 1000;
  cfg->retry_concurrency = 16;
  cfg->upstream_timeout_ms = 60000;
  cfg->max_body = 10 * 1024 * 1024;
  cfg->max_queue = 1000000;
  cfg->claim_lease_ms = 30000;
  cfg->keep_completed_ms = 24ull * 3600 * 1000;
  cfg->max_wait_ms = 120000;
  cfg->max_connections = 10000;
  cfg->log_level = LOG_INFO;
  cfg->log_summary_interval_ms = 60000;
  cfg->client_timeout_ms = 10000;
  cfg->client_body_timeout_ms = 60000;
  cfg->keepalive_timeout_ms = 60000;
  cfg->shutdown_timeout_ms = 20000;
  cfg->route_pause = true;
  cfg->max_header_bytes = 64 * 1024;
  cfg->max_response_header_bytes = 64 * 1024;
  cfg->write_high_water = 256 * 1024;
  cfg->callback_body_max = 64 * 1024;
}

static int config_fail(char *err, size_t errlen, const char *name, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static int config_fail(char *err, size_t errlen, const char *name, const char *fmt, ...) {
  char msg[512];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof(msg), fmt, ap);
  va_end(ap);
  snprintf(err, errlen, "--%s: %s", name, msg);
  return CONFIG_ERROR;
}

static int config_parse_upstream(char *out, size_t outlen, const char *value, char *why,
                                 size_t whylen) {
  int rc = -1;
  char *scheme = NULL, *host = NULL, *port = NULL, *path = NULL, *query = NULL, *fragment = NULL,
       *user = NULL;
  CURLU *u = curl_url();
  if (u == NULL) {
    snprintf(why, whylen, "out of memory");
    return -1;
  }
  if (curl_url_set(u, CURLUPART_URL, value, 0) != CURLUE_OK) {
    snprintf(why, whylen, "'%s' is not a URL (want http://HOST[:PORT][/PREFIX])", value);
    goto done;
  }
  curl_url_get(u, CURLUPART_SCHEME, &scheme, 0);
  curl_url_get(u, CURLUPART_HOST, &host, 0);
  curl_url_get(u, CURLUPART_PORT, &port, 0);
  curl_url_get(u, CURLUPART_PATH, &path, 0);
  curl_url_get(u, CURLUPART_QUERY, &query, 0);
  curl_url_get(u, CURLUPART_FRAGMENT, &fragment, 0);
  curl_url_get(u, CURLUPART_USER, &user, 0);
  if (scheme == NULL || (strcmp(scheme, "http") != 0 && strcmp(scheme, "https") != 0)) {
    snprintf(why, whylen, "'%s': the scheme must be http or https", value);
    goto done;
  }
  if (host == NULL || host[0] == '\0') {
    snprintf(why, whylen, "'%s' has no host", value);
    goto done;
  }
  if (query != NULL || fragment != NULL || user != NULL) {
    snprintf(why, whylen, "'%s': no user, query or fragment allowed", value);
    goto done;
  }
  size_t plen = path ? strlen(path) : 0;
  while (plen > 0 && path[plen - 1] == '/')
    plen--; /* the client's target always starts with '/' */
  int n = snprintf(out, outlen, "%s://%s%s%s%.*s", scheme, host, port ? ":" : "", port ? port : "",
                   (int)plen, path ? path : "");
  if (n < 0 || (size_t)n >= outlen) {
    snprintf(why, whylen, "URL too long");
    goto done;
  }
  rc = 0;
done:
  curl_free(scheme);
  curl_free(host);
  curl_free(port);
  curl_free(path);
  curl_free(query);
  curl_free(fragment);
  curl_free(user);
  curl_url_cleanup(u);
  return rc;
}

static int config_parse_listen(config_t *cfg, const char *value) {
  char host[256];
  const char *colon = strrchr(value, ':');
  if (colon == NULL || colon == value)
    return -1;
  size_t hlen = (size_t)(colon - value);
  if (hlen >= sizeof(host))
    return -1;
  memcpy(host, value, hlen);
  host[hlen] = '\0';
  uint64_t port;
  if (units_parse_uint(colon + 1, &port) != 0 || port > 65535)
    return -1;
  struct sockaddr_storage ss;
  memset(&ss, 0, sizeof(ss));
  if (host[0] == '[' && hlen > 2 && host[hlen - 1] == ']') {
    struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)&ss;
    host[hlen - 1] = '\0';
    if (inet_pton(AF_INET6, host + 1, &a6->sin6_addr) != 1)
      return -1;
    a6->sin6_family = AF_INET6;
    a6->sin6_port = htons((uint16_t)port);
  } else {
    struct sockaddr_in *a4 = (struct sockaddr_in *)&ss;
    /* Only literals: resolving a name here would make the bind address
     * depend on DNS. "localhost" is the one name everybody writes. */
    const char *lit = strcmp(host, "localhost") == 0 ? "127.0.0.1" : host;
    if (inet_pton(AF_INET, lit, &a4->sin_addr) != 1)
      return -1;
    a4->sin_family = AF_INET;
    a4->sin_port = htons((uint16_t)port);
  }
  cfg->listen_addr = ss;
  snprintf(cfg->listen_text, sizeof(cfg->listen_text), "%s", value);
  return 0;
}

static int config_parse_retry_on(retry_on_t *out, const char *value) {
  retry_on_t r;
  memset(&r, 0, sizeof(r));
  const char *p = value;
  if (*p == '+') {
    /* "+409" keeps the default and adds to it. */
    config_retry_on_default(&r);
    p++;
  }
  if (*p == '\0')
    return -1;
  while (*p != '\0') {
    const char *end = strchr(p, ',');
    size_t len = end ? (size_t)(end - p) : strlen(p);
    char item[16];
    if (len == 0 || len >= sizeof(item))
      return -1;
    memcpy(item, p, len);
    item[len] = '\0';
    uint64_t code;
    if (strcmp(item, "network") == 0) {
      r.network = true;
    } else if (len == 3 && item[0] >= '1' && item[0] <= '5' && item[1] == 'x' && item[2] == 'x') {
      int base = (item[0] - '0') * 100;
      for (int c = base; c < base + 100; c++)
        r.status[c] = true;
    } else if (units_parse_uint(item, &code) == 0 && len == 3 && code >= 100 && code <= 599) {
      r.status[code] = true;
    } else {
      return -1;
    }
    p += len;
    if (*p == ',') {
      p++;
      if (*p == '\0')
        return -1;
    }
  }
  /* A 2xx is the answer the client wants: retrying it would resend a
   * request that already succeeded. */
  for (int c = 200; c < 300; c++)
    if (r.status[c])
      return -1;
  *out = r;
  return 0;
}

static const opt_t *config_find(const char *name) {
  for (size_t i = 0; i < NOPTIONS; i++)
    if (strcmp(options[i].name, name) == 0)
      return &options[i];
  return NULL;
}

int config_set(config_t *cfg, const char *name, const char *value, char *err, size_t errlen) {
  const opt_t *o = config_find(name);
  if (o == NULL)
    return config_fail(err, errlen, name, "unknown option (see --help)");
  void *field = (char *)cfg + o->offset;
  char why[600];
  uint64_t v;
  switch (o->kind) {
  case OPT_UPSTREAM:
    if (config_parse_upstream(field, o->size, value, why, sizeof(why)) != 0)
      return config_fail(err, errlen, name, "%s", why);
    return CONFIG_OK;
  case OPT_LISTEN:
    if (config_parse_listen(cfg, value) != 0)
      return config_fail(
          err, errlen, name,
          "'%s' is not HOST:PORT (an IPv4 literal, [IPv6] or localhost; port 0-65535)", value);
    return CONFIG_OK;
  case OPT_STORAGE: {
    storage_location_t loc;
    if (storage_location_parse(value, &loc, why, sizeof(why)) != 0)
      return config_fail(err, errlen, name, "%s", why);
    __attribute__((fallthrough)); /* valid: stored as given */
  }
  case OPT_PATH:
  case OPT_TEXT:
    if (value[0] == '\0' && o->kind == OPT_PATH)
      return config_fail(err, errlen, name, "must not be empty");
    if (strlen(value) >= o->size)
      return config_fail(err, errlen, name, "longer than %zu bytes", o->size - 1);
    memcpy(field, value, strlen(value) + 1);
    return CONFIG_OK;
  case OPT_DURATION:
    if (units_parse_duration_ms(value, &v) != 0)
      return config_fail(err, errlen, name, "'%s' is not a duration (e.g. 250ms, 30s, 5m, 24h)",
                         value);
    if (v < o->min)
      return config_fail(err, errlen, name, "'%s' must be more than 0", value);
    *(uint64_t *)field = v;
    return CONFIG_OK;
  case OPT_SIZE:
    if (units_parse_size(value, &v) != 0)
      return config_fail(err, errlen, name, "'%s' is not a size (e.g. 512, 64KiB, 10MiB)", value);
    if (v > ((uint64_t)1 << 31))
      return config_fail(err, errlen, name, "'%s' is over the 2GiB limit", value);
    *(uint64_t *)field = v;
    return CONFIG_OK;
  case OPT_COUNT:
    if (units_parse_uint(value, &v) != 0 || v > ((uint64_t)1 << 40))
      return config_fail(err, errlen, name, "'%s' is not a whole number", value);
    if (v < o->min)
      return config_fail(err, errlen, name, "'%s' must be at least %llu", value,
                         (unsigned long long)o->min);
    *(uint64_t *)field = v;
    return CONFIG_OK;
  case OPT_RETRY_ON:
    if (config_parse_retry_on(field, value) != 0)
      return config_fail(err, errlen, name,
                         "'%s' is not a list of codes (100-599, not 2xx), ranges (4xx, 5xx) "
                         "and network",
                         value);
    return CONFIG_OK;
  case OPT_LOG_LEVEL: {
    static const char *levels[] = {"debug", "info", "warn", "error"};
    for (int i = 0; i < 4; i++)
      if (strcmp(value, levels[i]) == 0) {
        *(log_level_t *)field = (log_level_t)i;
        return CONFIG_OK;
      }
    return config_fail(err, errlen, name, "'%s' is not one of debug, info, warn, error", value);
  }
  case OPT_BOOL: {
    static const char *yes[] = {"on", "true", "yes", "1"}, *no[] = {"off", "false", "no", "0"};
    for (int i = 0; i < 4; i++) {
      if (strcmp(value, yes[i]) == 0 || strcmp(value, no[i]) == 0) {
        *(bool *)field = strcmp(value, yes[i]) == 0;
        return CONFIG_OK;
      }
    }
    return config_fail(err, errlen, name, "'%s' is not on or off", value);
  }
  case OPT_RATE: {
    rate_limit_t *r = field;
    if (strcmp(value, "off") == 0 || strcmp(value, "0") == 0) {
      r->n = 0;
      r->period_ms = 0;
      return CONFIG_OK;
    }
    const char *slash = strchr(value, '/');
    char n[32];
    uint64_t count, period;
    size_t nl = slash ? (size_t)(slash - value) : 0;
    if (slash == NULL || nl == 0 || nl >= sizeof(n))
      return config_fail(err, errlen, name, "'%s' is not N/DUR (e.g. 120/1m) or off", value);
    memcpy(n, value, nl);
    n[nl] = '\0';
    if (units_parse_uint(n, &count) != 0 || count == 0 || count > ((uint64_t)1 << 30) ||
        units_parse_duration_ms(slash + 1, &period) != 0 || period == 0)
      return config_fail(err, errlen, name, "'%s' is not N/DUR (e.g. 120/1m) or off", value);
    r->n = count;
    r->period_ms = period;
    return CONFIG_OK;
  }
  }
  return config_fail(err, errlen, name, "unhandled option kind");
}

#define CONFIG_ENV_PREFIX "RETRYD_"
#define CONFIG_ENV_TEST_PREFIX "RETRYD_TEST_"

/* The option's environment variable: RETRYD_ and its name in upper case,
 * '-' as '_'. */
static void config_env_name(const opt_t *o, char *var, size_t len) {
  size_t n = (size_t)snprintf(var, len, "%s", CONFIG_ENV_PREFIX);
  for (const char *p = o->name; *p && n + 1 < len; p++)
    var[n++] = *p == '-' ? '_' : (char)toupper((unsigned char)*p);
  var[n] = '\0';
}

void config_each_unknown_env(char *const *envp, void (*fn)(const char *name, size_t len, void *arg),
                             void *arg) {
  size_t plen = strlen(CONFIG_ENV_PREFIX);
  for (char *const *e = envp; *e != NULL; e++) {
    if (strncmp(*e, CONFIG_ENV_PREFIX, plen) != 0)
      continue;
    /* RETRYD_TEST_*: hooks the test suite sets (a shorter history period),
     * read where they are used; not options. */
    if (strncmp(*e, CONFIG_ENV_TEST_PREFIX, strlen(CONFIG_ENV_TEST_PREFIX)) == 0)
      continue;
    size_t len = strcspn(*e, "=");
    bool known = false;
    for (size_t i = 0; i < NOPTIONS && !known; i++) {
      char var[64];
      config_env_name(&options[i], var, sizeof(var));
      known = strlen(var) == len && memcmp(var, *e, len) == 0;
    }
    if (!known)
      fn(*e, len, arg);
  }
}

/* given[i] is true for options set on the command line: their environment
 * value is neither used nor validated. */
static int config_load_env(config_t *cfg, const bool *given, char *err, size_t errlen) {
  for (size_t i = 0; i < NOPTIONS; i++) {
    if (given[i])
      continue;
    char var[64];
    config_env_name(&options[i], var, sizeof(var));
    const char *value = getenv(var);
    if (value == NULL)
      continue;
    char inner[512];
    if (config_set(cfg, options[i].name, value, inner, sizeof(inner)) != CONFIG_OK) {
      snprintf(err, errlen, "%s (from %s)", inner, var);
      return CONFIG_ERROR;
    }
  }
  return CONFIG_OK;
}

void config_usage(void) {
  printf("usage: retryd [OPTION...]\n"
         "       retryd healthcheck [OPTION...]   (exit 0 when the running retryd is healthy)\n\n"
         "An HTTP/1.1 proxy with a durable retry queue, run beside an application.\n"
         "Every option can also be set as RETRYD_<NAME> in the environment\n"
         "(e.g. RETRYD_RETRY_INTERVAL=30s); a flag wins over the environment.\n\n");
  for (size_t i = 0; i < NOPTIONS; i++) {
    char left[64];
    snprintf(left, sizeof(left), "--%s %s", options[i].name, options[i].arg);
    printf("  %-28s %s\n", left, options[i].help);
  }
  printf("  %-28s %s\n  %-28s %s\n", "--help", "this text", "--version", "the version");
}

/* What no single option can check. */
static int config_check_whole(const config_t *cfg, char *err, size_t errlen) {
  /* The same token for both would give the read token's holders every
   * right of the admin token's. */
  if (cfg->read_token[0] != '\0' && strcmp(cfg->read_token, cfg->admin_token) == 0)
    return config_fail(err, errlen, "read-token", "must differ from --admin-token");
  if (callback_url_check_config(cfg->callback_allow, cfg->callback_url, cfg->callback_secret, err,
                                errlen) != 0)
    return CONFIG_ERROR;
  return CONFIG_OK;
}

int config_load(config_t *cfg, int argc, char **argv, char *err, size_t errlen) {
  config_defaults(cfg);
  /* --help and --version win over everything, even a bad environment. */
  for (int i = 1; i < argc; i++) {
    if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
      config_usage();
      return CONFIG_EXIT;
    }
    if (strcmp(argv[i], "--version") == 0) {
      printf("retryd %s (libcurl %s)\n", RETRYD_VERSION,
             curl_version_info(CURLVERSION_NOW)->version);
      return CONFIG_EXIT;
    }
  }
  bool given[NOPTIONS] = {false};
  for (int i = 1; i < argc; i++) {
    for (size_t k = 0; k < NOPTIONS; k++) {
      size_t n = strlen(options[k].name);
      const char *a = argv[i];
      if (strncmp(a, "--", 2) == 0 && strncmp(a + 2, options[k].name, n) == 0 &&
          (a[2 + n] == '\0' || a[2 + n] == '='))
        given[k] = true;
    }
  }
  int rc = config_load_env(cfg, given, err, errlen);
  if (rc != CONFIG_OK)
    return rc;
  for (int i = 1; i < argc; i++) {
    const char *arg = argv[i];
    if (strncmp(arg, "--", 2) != 0) {
      snprintf(err, errlen, "unexpected argument '%s' (options start with --)", arg);
      return CONFIG_ERROR;
    }
    char name[64];
    const char *value;
    const char *eq = strchr(arg + 2, '=');
    size_t nlen = eq ? (size_t)(eq - arg - 2) : strlen(arg + 2);
    if (nlen >= sizeof(name))
      nlen = sizeof(name) - 1;
    memcpy(name, arg + 2, nlen);
    name[nlen] = '\0';
    if (config_find(name) == NULL)
      return config_fail(err, errlen, name, "unknown option (see --help)");
    if (eq != NULL) {
      value = eq + 1;
    } else if (i + 1 < argc) {
      value = argv[++i];
    } else {
      return config_fail(err, errlen, name, "needs a value");
    }
    rc = config_set(cfg, name, value, err, errlen);
    if (rc != CONFIG_OK)
      return rc;
  }
  return config_check_whole(cfg, err, errlen);
}
