#include "proxy/queue/request_json.h"

#include <string.h>
#include <time.h>

#include "proxy/queue/last_answer.h"

/* n as exactly width digits (zero-padded). */
static void put_digits(char *out, unsigned n, int width) {
  for (int i = width - 1; i >= 0; i--) {
    out[i] = (char)('0' + n % 10);
    n /= 10;
  }
}

int request_json_time(buf_t *out, int64_t unix_ms) {
  if (unix_ms <= 0)
    return buf_append_str(out, "null");
  time_t secs = (time_t)(unix_ms / 1000);
  struct tm tm;
  gmtime_r(&secs, &tm);
  /* "YYYY-MM-DDTHH:MM:SS.mmmZ" with quotes, written by hand: printf was a
   * tenth of an accepted request's instructions. */
  char t[] = "\"0000-00-00T00:00:00.000Z\"";
  put_digits(t + 1, (unsigned)(tm.tm_year + 1900) % 10000, 4);
  put_digits(t + 6, (unsigned)tm.tm_mon + 1, 2);
  put_digits(t + 9, (unsigned)tm.tm_mday, 2);
  put_digits(t + 12, (unsigned)tm.tm_hour, 2);
  put_digits(t + 15, (unsigned)tm.tm_min, 2);
  put_digits(t + 18, (unsigned)tm.tm_sec, 2);
  put_digits(t + 21, (unsigned)(unix_ms % 1000), 3);
  return buf_append(out, t, sizeof(t) - 1);
}

static int request_json_status_url(buf_t *out, const char *id) {
  int rc = buf_append_str(out, ",\"status_url\":\"/_retryd/requests/");
  if (rc == 0)
    rc = buf_append_str(out, id);
  if (rc == 0)
    rc = buf_append_str(out, "\"}\n");
  return rc;
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

int request_json_target(buf_t *out, const char *target) {
  if (target == NULL)
    return buf_append_str(out, "null");
  size_t plen = strcspn(target, "?");
  int rc = buf_append(out, "\"", 1);
  if (rc == 0)
    rc = buf_append_json_escaped(out, target, plen);
  const char *q = target + plen;
  while (rc == 0 && *q != '\0') {
    /* q is at '?' or '&': a separator, then a name=value pair. */
    rc = buf_append(out, q, 1);
    q++;
    size_t pair = strcspn(q, "&");
    const char *eq = memchr(q, '=', pair);
    /* A bare element may be a token itself (?SECRET): shown like a value. */
    if (rc == 0 && eq != NULL)
      rc = buf_append_json_escaped(out, q, (size_t)(eq - q) + 1);
    if (rc == 0 && pair > 0)
      rc = buf_append_str(out, "[redacted]");
    q += pair;
  }
  if (rc == 0)
    rc = buf_append(out, "\"", 1);
  return rc;
}

const char *request_json_reason(rq_state_t state, const char *last_error) {
  if (state == RQ_CANCELLED)
    return "cancelled";
  if (state != RQ_DEAD)
    return NULL;
  static const struct {
    const char *prefix;
    const char *reason;
  } reasons[] = {
      {"deadline:", "deadline"},
      {"gave up: --max-attempts", "max_attempts"},
      {"gave up: --max-age", "max_age"},
      {"expired:", "max_age"},
  };
  for (size_t i = 0; last_error != NULL && i < sizeof(reasons) / sizeof(reasons[0]); i++) {
    if (strncmp(last_error, reasons[i].prefix, strlen(reasons[i].prefix)) == 0)
      return reasons[i].reason;
  }
  return "gave_up";
}

static int json_int_or_null(buf_t *out, int v) {
  return v > 0 ? buf_append_int(out, v) : buf_append_str(out, "null");
}

/* The fields both forms share, after the opening brace. */
static int request_json_common(buf_t *out, const stored_request_t *r) {
  int rc = buf_append_str(out, "\"id\":\"");
  if (rc == 0)
    rc = buf_append_str(out, r->id);
  if (rc == 0)
    rc = buf_append_str(out, "\",\"state\":\"");
  if (rc == 0)
    rc = buf_append_str(out, rq_state_name(r->state));
  if (rc == 0)
    rc = buf_append_str(out, "\",\"attempts\":");
  if (rc == 0)
    rc = buf_append_int(out, r->attempts);
  if (rc == 0)
    rc = buf_append_str(out, ",\"last_status\":");
  if (rc == 0)
    rc = json_int_or_null(out, r->last_status);
  if (rc == 0)
    rc = buf_append_str(out, ",\"last_error\":");
  if (rc == 0)
    rc = json_string_or_null(out, r->last_error);
  if (rc == 0)
    rc = buf_append_str(out, ",\"reason\":");
  if (rc == 0)
    rc = json_string_or_null(out, request_json_reason(r->state, r->last_error));
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
    rc = request_json_status_url(out, r->id);
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
    rc = request_json_target(out, r->target);
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
    rc = buf_append_str(out, ",\"deadline_at\":");
  if (rc == 0)
    rc = request_json_time(out, r->deadline_at);
  if (rc == 0)
    rc = buf_append_str(out, ",\"last_answer\":");
  if (rc == 0)
    rc = last_answer_json(out, r->last_status, r->last_answer_headers, r->last_answer_headers_len,
                          r->last_answer_body, r->last_answer_body_len);
  if (rc == 0)
    rc = request_json_status_url(out, r->id);
  return rc;
}
