#include "proxy/routes_file.h"

#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* libconfig names its handle config_t, as retryd names its options: its
 * header is read with the name moved aside. */
#define config_t libconfig_t
#include <libconfig.h>
#undef config_t

#include "proxy/callback/callback_url.h"
#include "proxy/units.h"

typedef struct {
  const char *file;
  char *err;
  size_t errlen;
} rf_ctx_t;

static int rf_fail(rf_ctx_t *x, const config_setting_t *s, const char *route, const char *field,
                   const char *fmt, ...) __attribute__((format(printf, 5, 6)));

static int rf_fail(rf_ctx_t *x, const config_setting_t *s, const char *route, const char *field,
                   const char *fmt, ...) {
  char msg[600];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof(msg), fmt, ap);
  va_end(ap);
  int line = s ? config_setting_source_line(s) : 0;
  if (route != NULL && route[0] != '\0')
    snprintf(x->err, x->errlen, "%s:%d: route \"%s\": %s: %s", x->file, line, route, field, msg);
  else if (field != NULL)
    snprintf(x->err, x->errlen, "%s:%d: %s: %s", x->file, line, field, msg);
  else
    snprintf(x->err, x->errlen, "%s:%d: %s", x->file, line, msg);
  return CONFIG_ERROR;
}

/* A scalar as text, for the options' own parsers: strings as they are,
 * numbers in decimal, booleans as on/off. */
static int rf_scalar(const config_setting_t *s, char *out, size_t outlen) {
  switch (config_setting_type(s)) {
  case CONFIG_TYPE_STRING:
    snprintf(out, outlen, "%s", config_setting_get_string(s));
    return 0;
  case CONFIG_TYPE_INT:
  case CONFIG_TYPE_INT64:
    snprintf(out, outlen, "%lld", config_setting_get_int64(s));
    return 0;
  case CONFIG_TYPE_BOOL:
    snprintf(out, outlen, "%s", config_setting_get_bool(s) ? "on" : "off");
    return 0;
  default:
    return -1;
  }
}

/* Applies one setting through the command line's parser of option opt,
 * on scratch: the file accepts exactly what the flag does. */
static int rf_option(rf_ctx_t *x, config_t *scratch, const config_setting_t *s, const char *route,
                     const char *field, const char *opt) {
  char value[2048], why[700];
  if (rf_scalar(s, value, sizeof(value)) != 0)
    return rf_fail(x, s, route, field, "must be a string or a number");
  if (config_set(scratch, opt, value, why, sizeof(why)) != CONFIG_OK) {
    const char *msg = strstr(why, ": ");
    return rf_fail(x, s, route, field, "%s", msg ? msg + 2 : why);
  }
  return CONFIG_OK;
}

static bool rf_token_char(char c) {
  return isalnum((unsigned char)c) || strchr("!#$%&'*+-.^_`|~", c) != NULL;
}

static bool rf_is_token(const char *s, size_t max) {
  size_t n = strlen(s);
  if (n == 0 || n >= max)
    return false;
  for (size_t i = 0; i < n; i++) {
    if (!rf_token_char(s[i]))
      return false;
  }
  return true;
}

static int rf_methods(rf_ctx_t *x, const config_setting_t *s, const char *route, const char *field,
                      route_methods_t *out) {
  if (!config_setting_is_array(s) && !config_setting_is_list(s))
    return rf_fail(x, s, route, field, "must be a list of methods, e.g. [ \"POST\" ]");
  int n = config_setting_length(s);
  if (n == 0 || n > ROUTE_METHODS_MAX)
    return rf_fail(x, s, route, field, "must name 1 to %d methods", ROUTE_METHODS_MAX);
  out->n = 0;
  for (int i = 0; i < n; i++) {
    const char *m = config_setting_get_string_elem(s, i);
    if (m == NULL || !rf_is_token(m, ROUTE_METHOD_LEN))
      return rf_fail(x, s, route, field, "element %d is not an HTTP method", i + 1);
    for (const char *p = m; *p; p++) {
      if (islower((unsigned char)*p))
        return rf_fail(x, s, route, field, "'%s': methods are case-sensitive, upper case", m);
    }
    snprintf(out->name[out->n++], ROUTE_METHOD_LEN, "%s", m);
  }
  return CONFIG_OK;
}

static const char *rf_string(rf_ctx_t *x, const config_setting_t *s, const char *route,
                             const char *field, int *rc) {
  const char *v = config_setting_get_string(s);
  if (v == NULL)
    *rc = rf_fail(x, s, route, field, "must be a string");
  return v;
}

static int rf_header(rf_ctx_t *x, const config_setting_t *s, route_t *r) {
  int rc = CONFIG_OK;
  const char *v = rf_string(x, s, r->name, "header", &rc);
  if (v == NULL)
    return rc;
  const char *colon = strchr(v, ':');
  size_t nlen = colon ? (size_t)(colon - v) : strlen(v);
  char name[ROUTE_HEADER_NAME_MAX];
  if (nlen == 0 || nlen >= sizeof(name))
    return rf_fail(x, s, r->name, "header", "must be \"Name\" or \"Name: value\"");
  memcpy(name, v, nlen);
  name[nlen] = '\0';
  if (!rf_is_token(name, sizeof(name)))
    return rf_fail(x, s, r->name, "header", "'%s' is not a header name", name);
  snprintf(r->header, sizeof(r->header), "%s", name);
  if (colon != NULL) {
    const char *val = colon + 1;
    while (*val == ' ' || *val == '\t')
      val++;
    if (strlen(val) >= sizeof(r->header_value))
      return rf_fail(x, s, r->name, "header", "the value is longer than %zu bytes",
                     sizeof(r->header_value) - 1);
    snprintf(r->header_value, sizeof(r->header_value), "%s", val);
  }
  return CONFIG_OK;
}

/* The options a route's settings go through, on a scratch copy of the
 * command line's. */
static const struct {
  const char *field;
  const char *opt;
} rf_options[] = {
    {"upstream", "upstream"},
    {"retry_on", "retry-on"},
    {"retry_interval", "retry-interval"},
    {"max_attempts", "max-attempts"},
    {"max_age", "max-age"},
    {"rate_limit", "rate-limit"},
    {"pause", "route-pause"},
    {"callback_url", "callback-url"},
};

static int rf_route_field(rf_ctx_t *x, config_t *scratch, const config_setting_t *s, route_t *r,
                          bool *exponential, uint64_t *cap_ms, bool *strip_all) {
  const char *f = config_setting_name(s);
  int rc = CONFIG_OK;
  for (size_t i = 0; i < sizeof(rf_options) / sizeof(rf_options[0]); i++) {
    if (strcmp(f, rf_options[i].field) == 0)
      return rf_option(x, scratch, s, r->name, f, rf_options[i].opt);
  }
  if (strcmp(f, "name") == 0)
    return CONFIG_OK; /* read first */
  if (strcmp(f, "methods") == 0)
    return rf_methods(x, s, r->name, f, &r->methods);
  if (strcmp(f, "store_methods") == 0)
    return rf_methods(x, s, r->name, f, &r->stored_methods);
  if (strcmp(f, "header") == 0)
    return rf_header(x, s, r);
  if (strcmp(f, "path_prefix") == 0) {
    const char *v = rf_string(x, s, r->name, f, &rc);
    if (v == NULL)
      return rc;
    if (v[0] != '/' || strlen(v) >= sizeof(r->path_prefix))
      return rf_fail(x, s, r->name, f, "must start with '/' and be shorter than %zu bytes",
                     sizeof(r->path_prefix));
    snprintf(r->path_prefix, sizeof(r->path_prefix), "%s", v);
    r->path_prefix_len = strlen(v);
    return CONFIG_OK;
  }
  if (strcmp(f, "strip_prefix") == 0) {
    /* true: the path prefix; a string: that leading part of it (checked
     * against the prefix once every field is read). */
    if (config_setting_type(s) == CONFIG_TYPE_BOOL) {
      *strip_all = config_setting_get_bool(s);
      return CONFIG_OK;
    }
    const char *v = config_setting_get_string(s);
    if (v == NULL || v[0] != '/' || strlen(v) >= sizeof(r->strip))
      return rf_fail(x, s, r->name, f, "must be true, false, or a leading part of path_prefix");
    snprintf(r->strip, sizeof(r->strip), "%s", v);
    r->strip_len = strlen(v);
    return CONFIG_OK;
  }
  if (strcmp(f, "backoff") == 0) {
    const char *v = rf_string(x, s, r->name, f, &rc);
    if (v == NULL)
      return rc;
    if (strcmp(v, "fixed") != 0 && strcmp(v, "exponential") != 0)
      return rf_fail(x, s, r->name, f, "'%s' is not \"fixed\" or \"exponential\"", v);
    *exponential = strcmp(v, "exponential") == 0;
    return CONFIG_OK;
  }
  if (strcmp(f, "backoff_cap") == 0 || strcmp(f, "in_path_delay") == 0) {
    const char *v = rf_string(x, s, r->name, f, &rc);
    uint64_t ms;
    if (v == NULL)
      return rc;
    if (units_parse_duration_ms(v, &ms) != 0 || (ms == 0 && f[0] == 'b'))
      return rf_fail(x, s, r->name, f, "'%s' is not a duration (e.g. 250ms, 30s, 5m)", v);
    if (f[0] == 'b')
      *cap_ms = ms;
    else
      r->in_path_delay_ms = (int64_t)ms;
    return CONFIG_OK;
  }
  if (strcmp(f, "in_path_retries") == 0) {
    if (config_setting_type(s) != CONFIG_TYPE_INT)
      return rf_fail(x, s, r->name, f, "must be a number from 0 to 10");
    int n = config_setting_get_int(s);
    if (n < 0 || n > 10)
      return rf_fail(x, s, r->name, f, "must be a number from 0 to 10");
    r->in_path_retries = n;
    return CONFIG_OK;
  }
  if (strcmp(f, "rate_limit_by") == 0) {
    const char *v = rf_string(x, s, r->name, f, &rc);
    if (v == NULL)
      return rc;
    if (!rf_is_token(v, sizeof(r->partition_by)))
      return rf_fail(x, s, r->name, f, "'%s' is not a header name", v);
    snprintf(r->partition_by, sizeof(r->partition_by), "%s", v);
    return CONFIG_OK;
  }
  return rf_fail(x, s, r->name, f, "unknown field (see the README's routes file)");
}

static int rf_route(rf_ctx_t *x, const config_t *cfg, const config_setting_t *g, route_t *r,
                    const route_t *before, size_t nbefore) {
  if (!config_setting_is_group(g))
    return rf_fail(x, g, NULL, "routes", "each route must be a group { name = ...; ... }");
  const config_setting_t *ns = config_setting_get_member(g, "name");
  if (ns == NULL)
    return rf_fail(x, g, NULL, "routes", "a route has no name");
  const char *name = config_setting_get_string(ns);
  if (name == NULL || name[0] == '\0' || strlen(name) >= ROUTE_NAME_MAX ||
      strcmp(name, "default") == 0)
    return rf_fail(x, ns, NULL, "name",
                   "must be 1 to %d characters of A-Z a-z 0-9 _ . - (and not \"default\")",
                   ROUTE_NAME_MAX - 1);
  for (const char *p = name; *p; p++) {
    if (!isalnum((unsigned char)*p) && strchr("_.-", *p) == NULL)
      return rf_fail(x, ns, NULL, "name", "'%s': only A-Z a-z 0-9 _ . - are allowed", name);
  }
  for (size_t i = 0; i < nbefore; i++) {
    if (strcmp(before[i].name, name) == 0)
      return rf_fail(x, ns, NULL, "name", "'%s' is also the name of the route at line %d", name,
                     before[i].line);
  }
  route_init_named(r, cfg, name, config_setting_source_line(g));
  config_t *scratch = malloc(sizeof(*scratch));
  if (scratch == NULL)
    return rf_fail(x, g, name, "route", "out of memory");
  *scratch = *cfg;
  bool exponential = false, strip_all = false;
  uint64_t cap_ms = 0;
  int rc = CONFIG_OK;
  for (int i = 0; rc == CONFIG_OK && i < config_setting_length(g); i++)
    rc = rf_route_field(x, scratch, config_setting_get_elem(g, (unsigned)i), r, &exponential,
                        &cap_ms, &strip_all);
  const config_setting_t *strip = config_setting_get_member(g, "strip_prefix");
  if (rc == CONFIG_OK && strip_all) {
    if (r->path_prefix_len == 0)
      rc = rf_fail(x, strip, name, "strip_prefix", "the route has no path_prefix to strip");
    snprintf(r->strip, sizeof(r->strip), "%s", r->path_prefix);
    r->strip_len = r->path_prefix_len;
  } else if (rc == CONFIG_OK && r->strip_len > 0 &&
             (r->strip_len > r->path_prefix_len ||
              strncmp(r->strip, r->path_prefix, r->strip_len) != 0))
    rc = rf_fail(x, strip, name, "strip_prefix", "'%s' is not a leading part of path_prefix",
                 r->strip);
  if (rc == CONFIG_OK && strcmp(scratch->callback_url, cfg->callback_url) != 0) {
    /* The same rules as --callback-url: an allowed origin. */
    char why[512];
    if (callback_url_check_config(cfg->callback_allow, scratch->callback_url, cfg->callback_secret,
                                  why, sizeof(why)) != 0)
      rc =
          rf_fail(x, config_setting_get_member(g, "callback_url"), name, "callback_url", "%s", why);
    snprintf(r->callback_url, sizeof(r->callback_url), "%s", scratch->callback_url);
  }
  if (rc == CONFIG_OK) {
    snprintf(r->upstream_url, sizeof(r->upstream_url), "%s", scratch->upstream);
    retry_policy_from_config(&r->retry, scratch);
    r->retry.exponential = exponential;
    r->retry.backoff_cap_ms = cap_ms > 0 ? (int64_t)cap_ms : 32 * r->retry.interval_ms;
    if (r->retry.backoff_cap_ms < r->retry.interval_ms)
      rc = rf_fail(x, config_setting_get_member(g, "backoff_cap"), name, "backoff_cap",
                   "must not be shorter than retry_interval");
    route_set_flow(r, scratch->route_pause, &scratch->rate_limit,
                   (int64_t)scratch->retry_concurrency);
    if (rc == CONFIG_OK && r->partition_by[0] != '\0' && r->flow_policy.limit == 0 &&
        !r->flow_policy.pause)
      rc = rf_fail(x, config_setting_get_member(g, "rate_limit_by"), name, "rate_limit_by",
                   "partitions a rate limit or a pause, and this route has neither");
  }
  free(scratch);
  return rc;
}

int routes_file_load(route_table_t *t, const config_t *cfg, char *err, size_t errlen) {
  rf_ctx_t x = {.file = cfg->config_file, .err = err, .errlen = errlen};
  libconfig_t lc;
  config_init(&lc);
  int rc = CONFIG_OK;
  if (config_read_file(&lc, cfg->config_file) != CONFIG_TRUE) {
    if (config_error_type(&lc) == CONFIG_ERR_FILE_IO)
      snprintf(err, errlen, "--config: cannot read %s", cfg->config_file);
    else
      snprintf(err, errlen, "%s:%d: %s", config_error_file(&lc) ? config_error_file(&lc) : x.file,
               config_error_line(&lc), config_error_text(&lc));
    config_destroy(&lc);
    return CONFIG_ERROR;
  }
  config_setting_t *root = config_root_setting(&lc);
  for (int i = 0; rc == CONFIG_OK && i < config_setting_length(root); i++) {
    config_setting_t *s = config_setting_get_elem(root, (unsigned)i);
    if (strcmp(config_setting_name(s), "routes") != 0)
      rc = rf_fail(&x, s, NULL, config_setting_name(s), "unknown setting (the file has `routes`)");
  }
  config_setting_t *routes = rc == CONFIG_OK ? config_lookup(&lc, "routes") : NULL;
  if (rc == CONFIG_OK && routes == NULL)
    rc = rf_fail(&x, NULL, NULL, NULL, "no `routes = ( ... );` list");
  if (rc == CONFIG_OK && !config_setting_is_list(routes))
    rc = rf_fail(&x, routes, NULL, "routes", "must be a list: routes = ( { ... }, { ... } );");
  int n = rc == CONFIG_OK ? config_setting_length(routes) : 0;
  if (rc == CONFIG_OK && n > ROUTES_FILE_MAX)
    rc = rf_fail(&x, routes, NULL, "routes", "more than %d routes", ROUTES_FILE_MAX);
  route_t *list = rc == CONFIG_OK && n > 0 ? calloc((size_t)n, sizeof(route_t)) : NULL;
  if (rc == CONFIG_OK && n > 0 && list == NULL)
    rc = rf_fail(&x, routes, NULL, "routes", "out of memory");
  for (int i = 0; rc == CONFIG_OK && i < n; i++)
    rc = rf_route(&x, cfg, config_setting_get_elem(routes, (unsigned)i), &list[i], list, (size_t)i);
  config_destroy(&lc);
  if (rc != CONFIG_OK) {
    free(list);
    return rc;
  }
  free(t->routes);
  t->routes = list;
  t->n = (size_t)n;
  return CONFIG_OK;
}
