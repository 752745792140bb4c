#include "proxy/queue/route.h"

#include <stdio.h>
#include <time.h>

#include "proxy/log.h"
#include "proxy/queue/retry_policy.h"

void route_init_default(route_t *r, const config_t *cfg, int64_t now) {
  snprintf(r->name, sizeof(r->name), "default");
  flow_policy_t p = {
      .pause = cfg->route_pause,
      .interval_ms = (int64_t)cfg->retry_interval_ms,
      .limit = (int64_t)cfg->rate_limit.n,
      .period_ms = (int64_t)cfg->rate_limit.period_ms,
      /* Without a limit, a ramp ends once it allows every retry slot
       * twice over per interval. */
      .ramp_ceiling = (int64_t)cfg->retry_concurrency * 2,
      .max_pause_ms = (int64_t)cfg->max_age_ms,
  };
  flow_init(&r->flow, &p, now);
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

void route_note(route_t *r, int status, bool retryable, const char *retry_after, bool probe,
                int64_t now) {
  int64_t wait = retry_after != NULL ? retry_policy_parse_retry_after(retry_after, now) : -1;
  flow_change_t c = flow_note(&r->flow, status, retryable, wait >= 0 ? now + wait : 0, probe, now);
  if (c == FLOW_NO_CHANGE)
    return;
  log_line_t l;
  if (c == FLOW_PAUSED_NOW) {
    log_begin(&l, LOG_WARN, "route paused: the upstream is out of capacity");
    log_str(&l, "route", r->name);
    log_int(&l, "upstream_status", status);
    route_log_time(&l, "until", r->flow.paused_until);
  } else {
    log_begin(&l, LOG_INFO, "route resumed: its probe got a final answer");
    log_str(&l, "route", r->name);
    log_int(&l, "upstream_status", status);
    log_int(&l, "held", (int64_t)r->flow.held);
  }
  log_end(&l);
}
