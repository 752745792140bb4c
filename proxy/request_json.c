#include "proxy/request_json.h"

#include <string.h>
#include <time.h>

int request_json_time(buf_t *out, int64_t unix_ms) {
  if (unix_ms <= 0)
    return buf_append_str(out, "null");
  time_t secs = (time_t)(unix_ms / 1000);
  struct tm tm;
  gmtime_r(&secs, &tm);
  return buf_printf(out, "\"%04d-%02d-%02dT%02d:%02d:%02d.%03dZ\"", tm.tm_year + 1900,
                    tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                    (int)(unix_ms % 1000));
}

static int json_string_or_null(buf_t *out, const char *s) {
  if (s == NULL)
    return buf_append_str(out, "null");
  int rc = buf_append(out, "\"", 1);
  if (rc == 0)
    rc = buf_append_json_escaped(out, s, strlen(s));
  if (rc == 0)
    rc = buf_append(out, "\"", 1);
  return rc;
}

static int json_int_or_null(buf_t *out, int v) {
  return v > 0 ? buf_printf(out, "%d", v) : buf_append_str(out, "null");
}

/* The fields both forms share, after the opening brace. */
static int request_json_common(buf_t *out, const stored_request_t *r) {
  int rc = buf_printf(out, "\"id\":\"%s\",\"state\":\"%s\",\"attempts\":%lld,\"last_status\":",
                      r->id, rq_state_name(r->state), (long long)r->attempts);
  if (rc == 0)
    rc = json_int_or_null(out, r->last_status);
  if (rc == 0)
    rc = buf_append_str(out, ",\"last_error\":");
  if (rc == 0)
    rc = json_string_or_null(out, r->last_error);
  if (rc == 0)
    rc = buf_append_str(out, ",\"next_attempt_at\":");
  if (rc == 0)
    rc = request_json_time(out, r->state == RQ_QUEUED ? r->next_attempt_at : 0);
  return rc;
}

int request_json_accepted(buf_t *out, const stored_request_t *r) {
  int rc = buf_append_str(out, "{");
  if (rc == 0)
    rc = request_json_common(out, r);
  if (rc == 0)
    rc = buf_printf(out, ",\"status_url\":\"/_retryd/requests/%s\"}\n", r->id);
  return rc;
}

int request_json_status(buf_t *out, const stored_request_t *r) {
  int rc = buf_append_str(out, "{");
  if (rc == 0)
    rc = request_json_common(out, r);
  if (rc == 0)
    rc = buf_append_str(out, ",\"method\":");
  if (rc == 0)
    rc = json_string_or_null(out, r->method);
  if (rc == 0)
    rc = buf_append_str(out, ",\"path\":");
  if (rc == 0)
    rc = json_string_or_null(out, r->target);
  if (rc == 0)
    rc = buf_append_str(out, ",\"created_at\":");
  if (rc == 0)
    rc = request_json_time(out, r->created_at);
  if (rc == 0)
    rc = buf_append_str(out, ",\"updated_at\":");
  if (rc == 0)
    rc = request_json_time(out, r->updated_at);
  if (rc == 0)
    rc = buf_append_str(out, ",\"response_status\":");
  if (rc == 0)
    rc = json_int_or_null(out, r->response_status);
  if (rc == 0)
    rc = buf_printf(out, ",\"status_url\":\"/_retryd/requests/%s\"}\n", r->id);
  return rc;
}
