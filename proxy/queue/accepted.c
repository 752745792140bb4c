#include "proxy/queue/accepted.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "proxy/app.h"
#include "proxy/queue/request_json.h"

static int64_t seconds_until(int64_t at_ms) {
  int64_t d = at_ms - store_now_ms();
  int64_t s = (d + 999) / 1000;
  return s < 1 ? 1 : s;
}

void accepted_reply(http_conn_t *c, const stored_request_t *rq, const char *applied) {
  buf_t body, extra;
  /* The 202 carries the last error (up to a head's worth, escaped). */
  buf_init(&body, 16 * 1024 + 6 * (rq->last_error ? strlen(rq->last_error) : 0));
  buf_init(&extra, 1024);
  int rc = request_json_accepted(&body, rq);
  rc = rc ? rc : buf_append_str(&extra, "Location: /_retryd/requests/");
  rc = rc ? rc : buf_append_str(&extra, rq->id);
  rc = rc ? rc : buf_append(&extra, "\r\n", 2);
  if (rq->state == RQ_QUEUED) {
    rc = rc ? rc : buf_append_str(&extra, "Retry-After: ");
    rc = rc ? rc : buf_append_int(&extra, seconds_until(rq->next_attempt_at));
    rc = rc ? rc : buf_append(&extra, "\r\n", 2);
  }
  if (applied != NULL)
    rc = rc ? rc : buf_append_field(&extra, "Preference-Applied", applied);
  http_conn_note_status(c, 202, rq->last_status);
  if (rc != 0) /* stored all the same: the id is what the client needs */
    http_conn_error(c, 500, "internal", "the request was stored, but its 202 could not be built");
  else
    http_conn_respond(c, 202, extra.data, "application/json", body.data, body.len);
  buf_free(&body);
  buf_free(&extra);
}

void accepted_unavailable(struct app_s *app, http_conn_t *c, int err) {
  char extra[64];
  app->stats.rejected++;
  snprintf(extra, sizeof(extra), "Retry-After: %llu\r\n",
           (unsigned long long)((app->cfg->retry_interval_ms + 999) / 1000));
  const char *code = err == -EDQUOT ? "queue_full" : "queue_unavailable";
  /* Not stored means never stored: a row whose commit failed cannot come
   * back after a crash (store.c overwrites what it left in the WAL), so the
   * client may send the request again without risking a second delivery. */
  const char *msg = err == -EDQUOT ? "the queue holds --max-queue requests; try again later"
                    : err == -ENOSPC
                        ? "the request was not stored (the disk is full); send it again later"
                        : "the request was not stored; send it again later";
  buf_t body;
  buf_init(&body, 1024);
  if (buf_printf(&body, "{\"error\":\"%s\",\"message\":\"%s\"}\n", code, msg) != 0)
    http_conn_error(c, 503, code, msg); /* out of memory: its own small body */
  else
    http_conn_respond(c, 503, extra, "application/json", body.data, body.len);
  buf_free(&body);
}
