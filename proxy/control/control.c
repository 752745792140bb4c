#include "proxy/control/control.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proxy/app.h"
#include "proxy/queue/route_table.h"
#include "proxy/queue/conn_job.h"
#include "proxy/queue/last_answer.h"
#include "proxy/queue/request_json.h"
#include "proxy/upstream/response_head.h"
#include "proxy/queue/scheduler.h"
#include "proxy/control/control_auth.h"
#include "proxy/control/control_wait.h"
#include "proxy/control/history.h"
#include "proxy/control/settings_report.h"
#include "proxy/control/request_filter.h"
#include "proxy/queue/prefer.h"
#include "proxy/control/stats_report.h"
#include "proxy/control/status_page.h"
#include "proxy/units.h"
#include "storage/uuid7.h"

/* A listing page's rows unless limit says (request_filter.c caps it). */
#define CONTROL_LIST_DEFAULT 50
/* A listing's body: rows are small, but a path may be long. */
#define CONTROL_LIST_BODY_MAX (64 * 1024 * 1024)

#define CONTROL_REQUESTS_PREFIX "/_retryd/requests/"

typedef enum { VIEW_STATUS, VIEW_RESPONSE } view_t;

static bool control_path_is(const request_t *req, const char *path) {
  size_t plen = strcspn(req->target.data, "?");
  return plen == strlen(path) && memcmp(req->target.data, path, plen) == 0;
}

static bool control_method_is(const request_t *req, const char *method) {
  return strcmp(req->method, method) == 0;
}

/* 405 names what is allowed (RFC 9110 15.5.6). */
static void control_not_allowed(http_conn_t *c, const char *allow) {
  char extra[96], msg[64];
  snprintf(extra, sizeof(extra), "Allow: %s\r\n", allow);
  snprintf(msg, sizeof(msg), "use %s", allow);
  http_conn_error_with(c, 405, extra, "method_not_allowed", msg);
}

static void control_reply_json(http_conn_t *c, int status, buf_t *body) {
  http_conn_respond(c, status, "Cache-Control: no-store\r\n", "application/json",
                    body->data ? body->data : "", body->len);
}

static void control_health(app_t *app, http_conn_t *c) {
  if (app->store != NULL && store_writable(app->store)) {
    static const char body[] = "{\"status\":\"ok\"}\n";
    http_conn_respond(c, 200, "Cache-Control: no-store\r\n", "application/json", body,
                      sizeof(body) - 1);
  } else {
    static const char body[] = "{\"status\":\"unavailable\",\"message\":\"the queue cannot be "
                               "written\"}\n";
    http_conn_respond(c, 503, "Cache-Control: no-store\r\nRetry-After: 5\r\n", "application/json",
                      body, sizeof(body) - 1);
  }
}

/* Answers a storage error in the control API's terms. */
static void control_store_error(http_conn_t *c, int err, const stored_request_t *rq) {
  if (err == -ENOENT) {
    http_conn_error(c, 404, "not_found", "no stored request has this id");
  } else if (err == -EPERM) {
    char msg[128];
    snprintf(msg, sizeof(msg), "the request is %s", rq ? rq_state_name(rq->state) : "final");
    http_conn_error(c, 409, "not_queued", msg);
  } else if (err == -EDQUOT) {
    http_conn_error(c, 503, "queue_full", "the queue holds --max-queue requests");
  } else {
    http_conn_error(c, 503, "queue_unavailable", "the queue cannot be read or written");
  }
}

/* A read of one stored request: which view, and what the client asked to
 * wait for (Prefer: wait=N; -1: not asked). */
typedef struct {
  view_t view;
  int64_t wait_s; /* capped by --max-wait */
  bool may_hold;  /* false once it was held: then it is answered as it is */
} control_read_t;

static void control_read(app_t *app, http_conn_t *c, const char *id, view_t view, int64_t wait_s,
                         bool may_hold);

/* A long-poll ended (the request did, retryd stops, or the time ran out):
 * the row is read again, and answered as it is now. */
static void control_wait_ended(app_t *app, http_conn_t *c, const char *id, int64_t wait_s,
                               uintptr_t tag) {
  control_read(app, c, id, (view_t)tag, wait_s, false);
}

static void control_answer_response(http_conn_t *c, const stored_request_t *rq,
                                    const char *applied) {
  buf_t extra;
  buf_init(&extra, rq->response_headers_len + 128);
  if (rq->state != RQ_COMPLETED || rq->response_status == 0) {
    char msg[96];
    snprintf(msg, sizeof(msg), "the request is %s, not completed", rq_state_name(rq->state));
    int rc = applied[0] ? buf_append_field(&extra, "Preference-Applied", applied) : 0;
    http_conn_error_with(c, 409, rc == 0 ? extra.data : NULL, "not_completed", msg);
    buf_free(&extra);
    return;
  }
  /* The stored answer, verbatim: status, fields and body. */
  int rc = response_head_copy_unframed(rq->response_headers ? rq->response_headers : "",
                                       rq->response_headers_len, &extra);
  if (rc == 0 && applied[0])
    rc = buf_append_field(&extra, "Preference-Applied", applied);
  if (rc != 0)
    http_conn_error(c, 500, "internal", "the stored answer's fields could not be copied");
  else
    http_conn_respond(c, rq->response_status, extra.data ? extra.data : "", NULL,
                      rq->response_body ? rq->response_body : "", rq->response_body_len);
  buf_free(&extra);
}

static void control_answer_status(app_t *app, http_conn_t *c, const stored_request_t *rq,
                                  const char *applied) {
  buf_t body, extra;
  /* Room for the row's strings JSON-escaped (six bytes each at worst): a
   * path may fill a whole request head. A body that could not be built
   * whole is an error, never a cut document. */
  buf_init(&body, 6 * app->cfg->max_header_bytes + 16 * 1024 + LAST_ANSWER_JSON_MAX);
  buf_init(&extra, 128);
  int rc = buf_append_str(&extra, "Cache-Control: no-store\r\n");
  if (rc == 0 && applied[0])
    rc = buf_append_field(&extra, "Preference-Applied", applied);
  if (rc != 0 || request_json_status(&body, rq) != 0)
    http_conn_error(c, 500, "internal", "the request's status did not fit its buffer");
  else
    http_conn_respond(c, 200, extra.data, "application/json", body.data, body.len);
  buf_free(&body);
  buf_free(&extra);
}

static void control_got(conn_job_t *cj) {
  http_conn_t *c = cj->conn;
  store_job_t *job = &cj->job;
  const control_read_t *rd = cj->data;
  if (c == NULL)
    return;
  if (job->result != 0) {
    control_store_error(c, job->result, &job->rq);
    return;
  }
  const stored_request_t *rq = &job->rq;
  bool unfinished = rq->state == RQ_QUEUED || rq->state == RQ_INFLIGHT;
  if (rd->may_hold && rd->wait_s > 0 && unfinished) {
    uintptr_t tag = (uintptr_t)rd->view;
    if (control_wait_hold(cj->app, c, rq->id, rd->wait_s, control_wait_ended, tag) == 0)
      return; /* answered when the request ends, or the wait does */
  }
  char applied[48] = "";
  if (rd->wait_s >= 0)
    snprintf(applied, sizeof(applied), "wait=%lld", (long long)rd->wait_s);
  if (rd->view == VIEW_RESPONSE)
    control_answer_response(c, rq, applied);
  else
    control_answer_status(cj->app, c, rq, applied);
}

/* A retry or a cancel, committed: answered with the row as it left it. */
static void control_changed(conn_job_t *cj) {
  /* A client held with Prefer: wait for a request cancelled here gets its
   * answer now, not at the end of its wait. */
  if (cj->job.op == STORE_CANCEL && cj->job.result == 0)
    scheduler_row_changed(cj->app->scheduler, &cj->job.rq);
  /* "Try it now" is the operator's word over a paused route's: it probes. */
  if (cj->job.op == STORE_RETRY_NOW && cj->job.result == 0) {
    flow_entry_t *e =
        route_table_flow(cj->app->routes, cj->job.rq.flow ? cj->job.rq.flow : "", store_now_ms());
    if (e != NULL)
      flow_probe_now(&e->flow, store_now_ms());
    scheduler_note_flow_due(cj->app->scheduler, cj->job.rq.flow, store_now_ms());
  }
  scheduler_note_due(cj->app->scheduler, cj->job.next_due);
  control_got(cj);
}

static void control_read(app_t *app, http_conn_t *c, const char *id, view_t view, int64_t wait_s,
                         bool may_hold) {
  conn_job_t *cj = conn_job_new(app, c, STORE_GET, control_got);
  control_read_t *rd = cj ? calloc(1, sizeof(*rd)) : NULL;
  if (rd == NULL) {
    free(cj);
    http_conn_error(c, 503, "queue_unavailable", "out of memory");
    return;
  }
  rd->view = view;
  rd->wait_s = wait_s;
  rd->may_hold = may_hold;
  cj->data = rd;
  cj->free_data = free;
  snprintf(cj->job.id, sizeof(cj->job.id), "%s", id);
  cj->job.with_payload = view == VIEW_RESPONSE;
  conn_job_submit(cj);
}

/* Prefer: wait=N capped by --max-wait; -1 when not asked. */
static int64_t control_wait_asked(app_t *app, const request_t *req) {
  prefer_t prefer;
  prefer_parse(headers_get(&req->headers, "prefer"), &prefer);
  int64_t cap_s = (int64_t)(app->cfg->max_wait_ms / 1000);
  return prefer.wait_s > cap_s ? cap_s : prefer.wait_s;
}

static void control_request(app_t *app, http_conn_t *c, request_t *req) {
  size_t plen = strcspn(req->target.data, "?");
  const char *rest = req->target.data + strlen(CONTROL_REQUESTS_PREFIX);
  size_t rlen = plen - strlen(CONTROL_REQUESTS_PREFIX);
  char id[UUID7_STRLEN + 1];
  view_t view = VIEW_STATUS;
  const char *action = NULL;
  if (rlen >= UUID7_STRLEN) {
    memcpy(id, rest, UUID7_STRLEN);
    id[UUID7_STRLEN] = '\0';
    const char *tail = rest + UUID7_STRLEN;
    size_t tlen = rlen - UUID7_STRLEN;
    if (tlen == 9 && memcmp(tail, "/response", 9) == 0)
      view = VIEW_RESPONSE;
    else if (tlen == 6 && memcmp(tail, "/retry", 6) == 0)
      action = "retry";
    else if (tlen != 0)
      id[0] = '\0';
  } else {
    id[0] = '\0';
  }
  if (id[0] == '\0' || !uuid7_is_valid(id)) {
    http_conn_error(c, 400, "bad_request", "a request id is a lowercase UUID");
    return;
  }
  store_op_t op;
  if (action != NULL) {
    if (!control_method_is(req, "POST")) {
      control_not_allowed(c, "POST");
      return;
    }
    op = STORE_RETRY_NOW;
  } else if (control_method_is(req, "GET") || control_method_is(req, "HEAD")) {
    control_read(app, c, id, view, control_wait_asked(app, req), true);
    return;
  } else if (control_method_is(req, "DELETE") && view == VIEW_STATUS) {
    op = STORE_CANCEL;
  } else {
    control_not_allowed(c, view == VIEW_RESPONSE ? "GET, HEAD" : "GET, HEAD, DELETE");
    return;
  }
  conn_job_t *cj = conn_job_new(app, c, op, control_changed);
  control_read_t *rd = cj ? calloc(1, sizeof(*rd)) : NULL;
  if (rd == NULL) {
    free(cj);
    http_conn_error(c, 503, "queue_unavailable", "out of memory");
    return;
  }
  rd->view = VIEW_STATUS;
  rd->wait_s = -1;
  cj->data = rd;
  cj->free_data = free;
  memcpy(cj->job.id, id, sizeof(id));
  conn_job_submit(cj);
}

/* ---- stats and metrics ------------------------------------------------ */

/* What a stats request asked for, and the stored flows when the routes
 * file gave routes (read first: their queued rows per route). */
#define CONTROL_STATS_FLOWS 1024
typedef struct {
  bool prometheus;
  storage_flow_t *flows; /* NULL: not read */
  size_t nflows;
} control_stats_t;

static void control_stats_free(void *data) {
  control_stats_t *st = data;
  if (st == NULL)
    return;
  free(st->flows);
  free(st);
}

static void control_counted(conn_job_t *cj) {
  http_conn_t *c = cj->conn;
  if (c == NULL)
    return;
  if (cj->job.result < 0) {
    control_store_error(c, cj->job.result, NULL);
    return;
  }
  app_t *app = cj->app;
  control_stats_t *st = cj->data;
  buf_t body;
  buf_init(&body, 256 * 1024);
  stats_report_in_t in = {
      .stats = &app->stats,
      .queue = &cj->job.counts,
      .replica = app->store != NULL ? store_replica(app->store) : NULL,
      .routes = app->routes,
      .flows = st->flows,
      .nflows = st->nflows,
      .now_ms = store_now_ms(),
      .now_ns = uv_hrtime(),
  };
  int rc = st->prometheus ? stats_report_prometheus(&body, &in) : stats_report_json(&body, &in);
  if (rc != 0)
    http_conn_error(c, 500, "internal", "the figures did not fit their buffer");
  else
    http_conn_respond(c, 200, "Cache-Control: no-store\r\n",
                      st->prometheus ? "text/plain; version=0.0.4; charset=utf-8"
                                     : "application/json",
                      body.data, body.len);
  buf_free(&body);
}

static void control_count(app_t *app, http_conn_t *c, control_stats_t *st) {
  conn_job_t *cj = conn_job_new(app, c, STORE_COUNTS, control_counted);
  if (cj == NULL) {
    control_stats_free(st);
    http_conn_error(c, 503, "queue_unavailable", "out of memory");
    return;
  }
  cj->data = st;
  cj->free_data = control_stats_free;
  conn_job_submit(cj);
}

static void control_flows_read(conn_job_t *cj) {
  control_stats_t *st = cj->data;
  if (cj->conn == NULL)
    return;
  if (cj->job.result < 0) {
    control_store_error(cj->conn, cj->job.result, NULL);
    return;
  }
  st->nflows = (size_t)cj->job.result;
  cj->data = NULL; /* moves on to the count */
  control_count(cj->app, cj->conn, st);
}

static void control_stats(app_t *app, http_conn_t *c, bool prometheus) {
  control_stats_t *st = calloc(1, sizeof(*st));
  if (st == NULL) {
    http_conn_error(c, 503, "queue_unavailable", "out of memory");
    return;
  }
  st->prometheus = prometheus;
  if (app->routes->n == 0) {
    control_count(app, c, st);
    return;
  }
  /* Read the flows first: a walk of the unfinished rows' index, paid only
   * where a routes file asks for queued rows per route. */
  st->flows = calloc(CONTROL_STATS_FLOWS, sizeof(storage_flow_t));
  conn_job_t *cj = st->flows ? conn_job_new(app, c, STORE_FLOWS, control_flows_read) : NULL;
  if (cj == NULL) {
    control_stats_free(st);
    http_conn_error(c, 503, "queue_unavailable", "out of memory");
    return;
  }
  cj->data = st;
  cj->free_data = control_stats_free;
  cj->job.flows = st->flows;
  cj->job.limit = CONTROL_STATS_FLOWS;
  conn_job_submit(cj);
}

/* ---- settings and history (the status page's) -------------------------- */

static void control_settings(app_t *app, http_conn_t *c) {
  buf_t body;
  buf_init(&body, 64 * 1024);
  if (settings_report_json(&body, app->cfg, app->routes->n) != 0)
    http_conn_error(c, 500, "internal", "the settings did not fit their buffer");
  else
    control_reply_json(c, 200, &body);
  buf_free(&body);
}

/* The history's samples, and the minute in progress with a fresh count. */
static void control_history_counted(conn_job_t *cj) {
  http_conn_t *c = cj->conn;
  if (c == NULL)
    return;
  history_sample_t current;
  history_current(&cj->app->history, cj->job.result == 0 ? cj->job.counts.count[RQ_QUEUED] : -1,
                  &current);
  buf_t body;
  buf_init(&body, 64 * 1024);
  if (history_json(&body, &cj->app->history, &current) != 0)
    http_conn_error(c, 500, "internal", "the history did not fit its buffer");
  else
    control_reply_json(c, 200, &body);
  buf_free(&body);
}

static void control_history(app_t *app, http_conn_t *c) {
  conn_job_t *cj = conn_job_new(app, c, STORE_COUNTS, control_history_counted);
  if (cj == NULL) {
    http_conn_error(c, 503, "queue_unavailable", "out of memory");
    return;
  }
  conn_job_submit(cj);
}

/* ---- listing ----------------------------------------------------------- */

/* A filtered step reads at most this many rows, so that a filter which
 * matches little of a big queue never holds the store for long; a bulk
 * step changes at most CONTROL_BULK_STEP rows, in a commit of its own. */
#define CONTROL_SCAN_ROWS 5000
#define CONTROL_BULK_STEP 256

/* 400 naming the parameter at fault (its name JSON-escaped: it is the
 * client's). */
static void control_bad_param(http_conn_t *c, const request_filter_t *rf) {
  buf_t body;
  buf_init(&body, 1024);
  int rc = buf_append_str(&body, "{\"error\":\"bad_request\",\"message\":\"");
  if (rc == 0)
    rc = buf_append_json_escaped(&body, rf->message, strlen(rf->message));
  if (rc == 0)
    rc = buf_append_str(&body, "\",\"parameter\":\"");
  if (rc == 0)
    rc = buf_append_json_escaped(&body, rf->param, strlen(rf->param));
  if (rc == 0)
    rc = buf_append_str(&body, "\"}\n");
  if (rc != 0)
    http_conn_error(c, 400, "bad_request", "a parameter is wrong");
  else
    control_reply_json(c, 400, &body);
  buf_free(&body);
}

/* Parses the filter; answers 400 (or 503) and returns false when it is bad. */
static bool control_filter(http_conn_t *c, const request_t *req, request_filter_use_t use,
                           request_filter_t *rf) {
  int rc = request_filter_parse(rf, req->target.data, use);
  if (rc == 0)
    return true;
  if (rc == -EINVAL)
    control_bad_param(c, rf);
  else
    http_conn_error(c, 503, "queue_unavailable", "out of memory");
  request_filter_free(rf);
  return false;
}

static void control_filter_free(void *data) {
  request_filter_t *rf = data;
  if (rf == NULL)
    return;
  request_filter_free(rf);
  free(rf);
}

static void control_listed(conn_job_t *cj) {
  http_conn_t *c = cj->conn;
  store_job_t *job = &cj->job;
  if (c == NULL)
    return;
  if (job->result < 0) {
    control_store_error(c, job->result, NULL);
    return;
  }
  buf_t body;
  buf_init(&body, CONTROL_LIST_BODY_MAX);
  int rc = buf_append_str(&body, "{\"requests\":[");
  for (int i = 0; rc == 0 && i < job->nrows; i++) {
    if (i > 0)
      rc = buf_append(&body, ",", 1);
    if (rc == 0)
      rc = request_json_status(&body, &job->rows[i]);
    if (rc == 0 && body.len > 0 && body.data[body.len - 1] == '\n')
      body.len--; /* one document, not lines */
  }
  /* A plain or one-state listing reads its rows through an index: a page
   * that is not full is the last. A filtered one reads a bounded scan, and
   * says by its cursor whether rows after it remain. */
  bool more = job->op == STORE_LIST_FILTERED ? job->page.more : (size_t)job->nrows == job->limit;
  int64_t last = job->op == STORE_LIST_FILTERED ? job->page.last_seq : job->last_seq;
  if (rc == 0) {
    if (more)
      rc = buf_printf(&body, "],\"next_cursor\":\"%lld\"}\n", (long long)last);
    else
      rc = buf_append_str(&body, "],\"next_cursor\":null}\n");
  }
  if (rc != 0)
    http_conn_error(c, 500, "internal", "the listing did not fit its buffer");
  else
    control_reply_json(c, 200, &body);
  buf_free(&body);
}

static void control_list(app_t *app, http_conn_t *c, request_t *req) {
  request_filter_t *rf = calloc(1, sizeof(*rf));
  if (rf == NULL) {
    http_conn_error(c, 503, "queue_unavailable", "out of memory");
    return;
  }
  if (!control_filter(c, req, REQUEST_FILTER_LISTING, rf)) {
    free(rf);
    return;
  }
  uint64_t limit = rf->limit != 0 ? rf->limit : CONTROL_LIST_DEFAULT;
  bool indexed = storage_filter_is_state_only(&rf->filter);
  conn_job_t *cj = conn_job_new(app, c, indexed ? STORE_LIST : STORE_LIST_FILTERED, control_listed);
  stored_request_t *rows = cj ? calloc(limit, sizeof(*rows)) : NULL;
  if (rows == NULL) {
    free(cj);
    control_filter_free(rf);
    http_conn_error(c, 503, "queue_unavailable", "out of memory");
    return;
  }
  cj->data = rf;
  cj->free_data = control_filter_free;
  cj->job.rows = rows;
  cj->job.limit = limit;
  cj->job.state = rf->filter.states != 0 ? storage_states_single(rf->filter.states) : -1;
  cj->job.after_seq = (int64_t)rf->cursor;
  cj->job.filter = &rf->filter;
  cj->job.scan = CONTROL_SCAN_ROWS;
  cj->job.page.after_seq = (int64_t)rf->cursor;
  conn_job_submit(cj);
}

/* ---- bulk actions -------------------------------------------------------- */

/* A bulk action across its steps: the filter, and what it did so far. */
typedef struct {
  request_filter_t rf;
  storage_bulk_t op;
  int64_t changed;
  int64_t after_seq;
} control_bulk_t;

static void control_bulk_free(void *data) {
  control_bulk_t *bk = data;
  if (bk == NULL)
    return;
  request_filter_free(&bk->rf);
  free(bk);
}

static void control_bulk_step(app_t *app, http_conn_t *c, control_bulk_t *bk);

/* What a step changed, told as the single retry and cancel tell it: a
 * cancelled row's held clients are answered, a retried row's flow is
 * woken (the operator's word over a paused route's: it probes). */
static void control_bulk_tell(app_t *app, const store_job_t *job) {
  int64_t now = store_now_ms();
  for (int i = 0; i < job->nrows; i++) {
    const stored_request_t *rq = &job->rows[i];
    if (job->bulk == STORAGE_BULK_CANCEL) {
      scheduler_row_changed(app->scheduler, rq);
      continue;
    }
    flow_entry_t *e = route_table_flow(app->routes, rq->flow ? rq->flow : "", now);
    if (e != NULL)
      flow_probe_now(&e->flow, now);
    scheduler_note_flow_due(app->scheduler, rq->flow, now);
  }
  scheduler_note_due(app->scheduler, job->next_due);
}

static void control_bulk_answer(http_conn_t *c, const control_bulk_t *bk, bool full) {
  buf_t body;
  buf_init(&body, 512);
  const char *action = bk->op == STORAGE_BULK_RETRY ? "retry" : "cancel";
  int rc = full ? buf_printf(&body,
                             "{\"error\":\"queue_full\",\"message\":\"the queue holds "
                             "--max-queue requests: the retry stopped\",\"action\":\"%s\","
                             "\"changed\":%lld}\n",
                             action, (long long)bk->changed)
                : buf_printf(&body, "{\"action\":\"%s\",\"changed\":%lld}\n", action,
                             (long long)bk->changed);
  if (rc != 0)
    http_conn_error(c, 500, "internal", "the answer did not fit its buffer");
  else
    control_reply_json(c, full ? 503 : 200, &body);
  buf_free(&body);
}

static void control_bulk_stepped(conn_job_t *cj) {
  store_job_t *job = &cj->job;
  control_bulk_t *bk = cj->data;
  if (job->result < 0) {
    if (cj->conn != NULL)
      control_store_error(cj->conn, job->result, NULL);
    return;
  }
  bk->changed += job->result;
  control_bulk_tell(cj->app, job);
  /* A client that went away stops the action after this step: nobody
   * would hear how it ended. */
  if (cj->conn == NULL)
    return;
  if (!job->page.more) {
    control_bulk_answer(cj->conn, bk, job->page.full);
    return;
  }
  bk->after_seq = job->page.last_seq;
  cj->data = NULL; /* moves on to the next step */
  control_bulk_step(cj->app, cj->conn, bk);
}

static void control_bulk_step(app_t *app, http_conn_t *c, control_bulk_t *bk) {
  conn_job_t *cj = conn_job_new(app, c, STORE_BULK, control_bulk_stepped);
  stored_request_t *rows = cj ? calloc(CONTROL_BULK_STEP, sizeof(*rows)) : NULL;
  if (rows == NULL) {
    free(cj);
    control_bulk_free(bk);
    http_conn_error(c, 503, "queue_unavailable", "out of memory");
    return;
  }
  cj->data = bk;
  cj->free_data = control_bulk_free;
  cj->job.rows = rows;
  cj->job.limit = CONTROL_BULK_STEP;
  cj->job.scan = CONTROL_SCAN_ROWS;
  cj->job.bulk = bk->op;
  cj->job.filter = &bk->rf.filter;
  cj->job.page.after_seq = bk->after_seq;
  conn_job_submit(cj);
}

/* POST /_retryd/requests/retry?... and /_retryd/requests/cancel?... */
static void control_bulk(app_t *app, http_conn_t *c, request_t *req, storage_bulk_t op) {
  if (!control_method_is(req, "POST")) {
    control_not_allowed(c, "POST");
    return;
  }
  control_bulk_t *bk = calloc(1, sizeof(*bk));
  if (bk == NULL) {
    http_conn_error(c, 503, "queue_unavailable", "out of memory");
    return;
  }
  if (!control_filter(c, req, REQUEST_FILTER_BULK, &bk->rf)) {
    free(bk);
    return;
  }
  if (!bk->rf.has_filter && !bk->rf.all) {
    control_bulk_free(bk);
    http_conn_error(c, 400, "filter_required",
                    "a bulk action needs a filter (state, method, path_prefix, "
                    "idempotency_key, last_status, created_after, created_before), or all=true "
                    "to act on every request it may change");
    return;
  }
  bk->op = op;
  control_bulk_step(app, c, bk);
}

/* ---- access ------------------------------------------------------------ */

/* control_auth's verdict, answered when it refuses. True when allowed. */
static bool control_allowed(app_t *app, http_conn_t *c, const request_t *req) {
  switch (control_auth_check(app->cfg, req)) {
  case CONTROL_AUTH_ALLOWED:
    return true;
  case CONTROL_AUTH_UNAUTHORIZED:
    http_conn_error_with(c, 401,
                         "WWW-Authenticate: Bearer realm=\"retryd\"\r\n"
                         "WWW-Authenticate: X-Retryd-Token\r\n",
                         "unauthorized",
                         "send a token in X-Retryd-Token or as Authorization: Bearer <token>");
    return false;
  case CONTROL_AUTH_FORBIDDEN:
    http_conn_error(c, 403, "forbidden", control_auth_forbidden_message(app->cfg));
    return false;
  }
  return false;
}

void control_handle(struct app_s *app, http_conn_t *c, request_t *req) {
  bool read_only = control_method_is(req, "GET") || control_method_is(req, "HEAD");
  if (control_path_is(req, "/_retryd/health")) {
    if (!read_only) {
      control_not_allowed(c, "GET, HEAD");
      return;
    }
    control_health(app, c);
    return;
  }
  if (control_path_is(req, "/_retryd/") || control_path_is(req, "/_retryd")) {
    if (!read_only) {
      control_not_allowed(c, "GET, HEAD");
      return;
    }
    http_conn_respond(c, 200, "Cache-Control: no-store\r\n", "text/html; charset=utf-8",
                      status_page_html, status_page_html_len);
    return;
  }
  if (!control_allowed(app, c, req))
    return;
  if (control_path_is(req, "/_retryd/stats") || control_path_is(req, "/_retryd/metrics") ||
      control_path_is(req, "/_retryd/requests") || control_path_is(req, "/_retryd/settings") ||
      control_path_is(req, "/_retryd/history")) {
    if (!read_only) {
      control_not_allowed(c, "GET, HEAD");
      return;
    }
    if (control_path_is(req, "/_retryd/requests"))
      control_list(app, c, req);
    else if (control_path_is(req, "/_retryd/settings"))
      control_settings(app, c);
    else if (control_path_is(req, "/_retryd/history"))
      control_history(app, c);
    else
      control_stats(app, c, control_path_is(req, "/_retryd/metrics"));
    return;
  }
  if (control_path_is(req, "/_retryd/requests/retry") ||
      control_path_is(req, "/_retryd/requests/cancel")) {
    control_bulk(app, c, req,
                 control_path_is(req, "/_retryd/requests/retry") ? STORAGE_BULK_RETRY
                                                                 : STORAGE_BULK_CANCEL);
    return;
  }
  if (strncmp(req->target.data, CONTROL_REQUESTS_PREFIX, strlen(CONTROL_REQUESTS_PREFIX)) == 0 &&
      strcspn(req->target.data, "?") > strlen(CONTROL_REQUESTS_PREFIX)) {
    control_request(app, c, req);
    return;
  }
  http_conn_error(c, 404, "not_found", "no such control endpoint");
}
