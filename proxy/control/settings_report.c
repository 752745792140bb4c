#include "proxy/control/settings_report.h"

#include <stdbool.h>
#include <string.h>

#include "storage/storage_location.h"

/* --retry-on as a list again: a class whose hundred codes are all set is
 * written "5xx", the rest code by code, then "network". */
static int settings_retry_on(buf_t *out, const retry_on_t *r) {
  int rc = buf_append_str(out, "[");
  bool first = true;
  for (int base = 100; rc == 0 && base < 600; base += 100) {
    bool whole = true;
    for (int c = base; c < base + 100; c++)
      whole = whole && r->status[c];
    if (whole) {
      rc = buf_printf(out, "%s\"%dxx\"", first ? "" : ",", base / 100);
      first = false;
      continue;
    }
    for (int c = base; rc == 0 && c < base + 100; c++) {
      if (!r->status[c])
        continue;
      rc = buf_printf(out, "%s\"%d\"", first ? "" : ",", c);
      first = false;
    }
  }
  if (rc == 0 && r->network)
    rc = buf_printf(out, "%s\"network\"", first ? "" : ",");
  if (rc == 0)
    rc = buf_append_str(out, "]");
  return rc;
}

static const char *settings_store_kind(const config_t *cfg) {
  storage_location_t loc;
  char err[256];
  if (storage_location_parse(cfg->db_path, &loc, err, sizeof(err)) != 0)
    return "unknown";
  return loc.kind == STORAGE_POSTGRES ? "postgres" : "sqlite";
}

/* A count where 0 means "no limit": null then. */
static int settings_limit(buf_t *out, const char *name, uint64_t v) {
  return v > 0 ? buf_printf(out, ",\"%s\":%llu", name, (unsigned long long)v)
               : buf_printf(out, ",\"%s\":null", name);
}

int settings_report_json(buf_t *out, const config_t *cfg, size_t routes) {
  int rc = buf_append_str(out, "{\"upstream\":\"");
  if (rc == 0)
    rc = buf_append_json_escaped(out, cfg->upstream, strlen(cfg->upstream));
  if (rc == 0)
    rc = buf_append_str(out, "\",\"listen\":\"");
  if (rc == 0)
    rc = buf_append_json_escaped(out, cfg->listen_text, strlen(cfg->listen_text));
  if (rc == 0)
    rc = buf_printf(out, "\",\"store\":\"%s\",\"retry_interval_ms\":%llu,\"retry_on\":",
                    settings_store_kind(cfg), (unsigned long long)cfg->retry_interval_ms);
  if (rc == 0)
    rc = settings_retry_on(out, &cfg->retry_on);
  if (rc == 0)
    rc = settings_limit(out, "max_attempts", cfg->max_attempts);
  if (rc == 0)
    rc = buf_printf(
        out,
        ",\"max_age_ms\":%llu,\"retry_concurrency\":%llu,\"upstream_timeout_ms\":%llu,"
        "\"max_body\":%llu,\"max_queue\":%llu,\"keep_completed_ms\":%llu,\"max_wait_ms\":%llu,"
        "\"route_pause\":%s,\"rate_limit\":",
        (unsigned long long)cfg->max_age_ms, (unsigned long long)cfg->retry_concurrency,
        (unsigned long long)cfg->upstream_timeout_ms, (unsigned long long)cfg->max_body,
        (unsigned long long)cfg->max_queue, (unsigned long long)cfg->keep_completed_ms,
        (unsigned long long)cfg->max_wait_ms, cfg->route_pause ? "true" : "false");
  if (rc == 0)
    rc = cfg->rate_limit.n > 0 ? buf_printf(out, "{\"limit\":%llu,\"period_ms\":%llu}",
                                            (unsigned long long)cfg->rate_limit.n,
                                            (unsigned long long)cfg->rate_limit.period_ms)
                               : buf_append_str(out, "null");
  if (rc == 0)
    rc = buf_printf(out, ",\"routes\":%zu,\"admin_token\":%s,\"read_token\":%s}\n", routes,
                    cfg->admin_token[0] ? "true" : "false", cfg->read_token[0] ? "true" : "false");
  return rc;
}
