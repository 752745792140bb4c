#include "proxy/queue/route.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "proxy/log.h"
#include "proxy/queue/retry_policy.h"

void route_init_default(route_t *r, const config_t *cfg) {
  route_init_named(r, cfg, "default", 0);
  r->is_default = true;
}

void route_init_named(route_t *r, const config_t *cfg, const char *name, int line) {
  memset(r, 0, sizeof(*r));
  snprintf(r->name, sizeof(r->name), "%s", name);
  r->line = line;
  snprintf(r->upstream_url, sizeof(r->upstream_url), "%s", cfg->upstream);
  retry_policy_from_config(&r->retry, cfg);
  snprintf(r->callback_url, sizeof(r->callback_url), "%s", cfg->callback_url);
  route_set_flow(r, cfg->route_pause, &cfg->rate_limit, (int64_t)cfg->retry_concurrency);
}

void route_set_flow(route_t *r, bool pause, const rate_limit_t *limit, int64_t retry_concurrency) {
  flow_policy_t p = {
      .pause = pause,
      .interval_ms = r->retry.interval_ms,
      .limit = (int64_t)limit->n,
      .period_ms = (int64_t)limit->period_ms,
      /* Without a limit, a ramp ends once it allows every retry slot
       * twice over per interval. */
      .ramp_ceiling = retry_concurrency * 2,
      .max_pause_ms = r->retry.max_age_ms,
  };
  r->flow_policy = p;
}

static bool route_methods_has(const route_methods_t *m, const char *method) {
  if (m->n == 0)
    return true;
  for (size_t i = 0; i < m->n; i++) {
    if (strcmp(m->name[i], method) == 0)
      return true;
  }
  return false;
}

bool route_matches(const route_t *r, const char *method, const char *target, route_header_fn header,
                   void *arg) {
  if (!route_methods_has(&r->methods, method))
    return false;
  if (r->path_prefix_len > 0) {
    if (strncmp(target, r->path_prefix, r->path_prefix_len) != 0)
      return false;
    char next = target[r->path_prefix_len];
    if (r->path_prefix[r->path_prefix_len - 1] != '/' && next != '\0' && next != '/' && next != '?')
      return false;
  }
  if (r->header[0] != '\0') {
    const char *v = header(arg, r->header);
    if (v == NULL || (r->header_value[0] != '\0' && strcmp(v, r->header_value) != 0))
      return false;
  }
  return true;
}

route_t *route_match(route_t *routes, size_t n, route_t *dflt, const char *method,
                     const char *target, route_header_fn header, void *arg) {
  for (size_t i = 0; i < n; i++) {
    if (route_matches(&routes[i], method, target, header, arg))
      return &routes[i];
  }
  return dflt;
}

const char *route_stored_header(void *arg, const char *name) {
  route_stored_headers_t *h = arg;
  size_t nlen = strlen(name);
  const char *p = h->lines, *end = h->lines + h->len;
  while (p < end) {
    const char *eol = memchr(p, '\n', (size_t)(end - p));
    const char *line_end = eol ? eol : end;
    const char *colon = memchr(p, ':', (size_t)(line_end - p));
    if (colon != NULL && (size_t)(colon - p) == nlen && strncasecmp(p, name, nlen) == 0) {
      const char *v = colon + 1, *ve = line_end;
      while (v < ve && (*v == ' ' || *v == '\t'))
        v++;
      while (ve > v && (ve[-1] == '\r' || ve[-1] == ' ' || ve[-1] == '\t'))
        ve--;
      size_t len = (size_t)(ve - v);
      if (len >= sizeof(h->value))
        len = sizeof(h->value) - 1;
      memcpy(h->value, v, len);
      h->value[len] = '\0';
      return h->value;
    }
    p = line_end + 1;
  }
  return NULL;
}

/* FNV-1a: the partition's key is a hash, so the header's value (an API
 * key) never reaches the database's flow column, a log or a metric. */
static uint64_t route_hash(const char *s) {
  uint64_t h = 0xcbf29ce484222325ull;
  for (; *s; s++) {
    h ^= (unsigned char)*s;
    h *= 0x100000001b3ull;
  }
  return h;
}

void route_flow_key(const route_t *r, const char *partition_value, char *key, size_t keylen) {
  if (r->is_default)
    snprintf(key, keylen, "%s", "");
  else if (r->partition_by[0] == '\0' || partition_value == NULL)
    snprintf(key, keylen, "%s", r->name);
  else
    snprintf(key, keylen, "%s#%016llx", r->name, (unsigned long long)route_hash(partition_value));
}

void route_name_of_flow(const char *key, char *name, size_t namelen) {
  size_t n = strcspn(key, "#");
  if (n >= namelen)
    n = namelen - 1;
  memcpy(name, key, n);
  name[n] = '\0';
}

bool route_stores_method(const route_t *r, const char *method) {
  return route_methods_has(&r->stored_methods, method);
}

const char *route_upstream_target(const route_t *r, const char *target, char **owned) {
  *owned = NULL;
  if (r->strip_len == 0 || strncmp(target, r->strip, r->strip_len) != 0)
    return target;
  /* "/eu/" + "v1/bot": keep the slash; "/eu" + "/v1/bot": the rest;
   * "/eu" + "?x" or "": a '/' before it; "/eu" + "rope": not a segment,
   * sent as it is. */
  const char *rest = target + r->strip_len;
  if (r->strip[r->strip_len - 1] == '/')
    return rest - 1;
  if (*rest == '/')
    return rest;
  if (*rest != '\0' && *rest != '?')
    return target;
  size_t n = strlen(rest);
  *owned = malloc(n + 2);
  if (*owned == NULL)
    return NULL;
  (*owned)[0] = '/';
  memcpy(*owned + 1, rest, n + 1);
  return *owned;
}

static void route_log_time(log_line_t *l, const char *key, int64_t ms) {
  char buf[64];
  time_t s = (time_t)(ms / 1000);
  struct tm tm;
  gmtime_r(&s, &tm);
  snprintf(buf, sizeof(buf), "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900,
           tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, (int)(ms % 1000));
  log_str(l, key, buf);
}

void route_note(const route_t *r, route_flow_t *flow, const char *key, int status, bool retryable,
                const char *retry_after, bool probe, int64_t now) {
  int64_t wait = retry_after != NULL ? retry_policy_parse_retry_after(retry_after, now) : -1;
  flow_change_t c = flow_note(flow, status, retryable, wait >= 0 ? now + wait : 0, probe, now);
  if (c == FLOW_NO_CHANGE || c == FLOW_OPENED_NOW)
    return;
  log_line_t l;
  if (c == FLOW_PAUSED_NOW) {
    log_begin(&l, LOG_WARN, "route paused: the upstream is out of capacity");
    log_str(&l, "route", r->name);
    if (strchr(key, '#') != NULL)
      log_str(&l, "flow", key);
    log_int(&l, "upstream_status", status);
    route_log_time(&l, "until", flow->paused_until);
  } else {
    log_begin(&l, LOG_INFO, "route resumed: its probe got a final answer");
    log_str(&l, "route", r->name);
    if (strchr(key, '#') != NULL)
      log_str(&l, "flow", key);
    log_int(&l, "upstream_status", status);
    log_int(&l, "held", (int64_t)flow->held);
  }
  log_end(&l);
}
