#include "storage/postgres/pg_callbacks.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const struct {
  const char *name;
  const char *sql;
} pg_callback_statements[] = {
    /* The request and its answer are joined once the notices are leased;
     * the answer's body only when it fits the notice ($4). */
    {"callbacks_due",
     "WITH due AS (SELECT seq FROM retryd_callbacks WHERE state = 0 AND next_attempt_at <= $1 "
     "ORDER BY next_attempt_at, seq LIMIT $2 FOR UPDATE SKIP LOCKED), "
     "leased AS (UPDATE retryd_callbacks c SET next_attempt_at = $3 FROM due "
     "WHERE c.seq = due.seq RETURNING c.*) "
     "SELECT l.seq, l.request_id, l.url, l.request_state, l.attempts, l.final_status, l.sends, "
     "l.created_at, r.method, r.target, r.last_error, r.response_status, r.response_headers, "
     "CASE WHEN octet_length(a.body) <= $4 THEN a.body END, "
     "coalesce(octet_length(a.body), 0)::int8 "
     "FROM leased l LEFT JOIN retryd_requests r ON r.id = l.request_id "
     "LEFT JOIN retryd_answers a ON a.seq = r.seq ORDER BY l.seq"},
    {"callbacks_finish",
     "UPDATE retryd_callbacks SET state = $2, next_attempt_at = $3, updated_at = $4, "
     "sends = sends + 1, last_error = $5 WHERE seq = $1 AND state = 0"},
    {"callbacks_next_due", "SELECT min(next_attempt_at) FROM retryd_callbacks WHERE state = 0"},
    {"callbacks_count", "SELECT state::int8, count(*)::int8 FROM retryd_callbacks GROUP BY state"},
    {"callbacks_purge",
     "WITH p AS (SELECT seq FROM retryd_callbacks WHERE state > 0 AND updated_at < $1 "
     "ORDER BY updated_at LIMIT $2 FOR UPDATE SKIP LOCKED) "
     "DELETE FROM retryd_callbacks c USING p WHERE c.seq = p.seq"},
};

#define PG_CALLBACK_NSTATEMENTS (sizeof(pg_callback_statements) / sizeof(pg_callback_statements[0]))

int pg_callbacks_prepare(pg_conn_t *c) {
  int rc = 0;
  for (size_t i = 0; i < PG_CALLBACK_NSTATEMENTS && rc == 0; i++)
    rc = pg_conn_prepare(c, pg_callback_statements[i].name, pg_callback_statements[i].sql);
  return rc;
}

/* Up to 5 integer parameters, as text. */
typedef struct {
  char num[5][24];
  const char *v[5];
  int n;
} pg_cb_params_t;

static void pg_cb_int(pg_cb_params_t *p, int64_t x) {
  snprintf(p->num[p->n], sizeof(p->num[p->n]), "%lld", (long long)x);
  p->v[p->n] = p->num[p->n];
  p->n++;
}

static int pg_cb_read(const pg_result_t *r, int row, storage_callback_t *o) {
  memset(o, 0, sizeof(*o));
  o->seq = pg_result_int(r, row, 0);
  char *id = pg_result_dup(r, row, 1, NULL);
  snprintf(o->request_id, sizeof(o->request_id), "%s", id != NULL ? id : "");
  free(id);
  o->url = pg_result_dup(r, row, 2, NULL);
  o->request_state = (rq_state_t)pg_result_int(r, row, 3);
  o->attempts = pg_result_int(r, row, 4);
  o->final_status = (int)pg_result_int(r, row, 5);
  o->sends = pg_result_int(r, row, 6);
  o->created_at = pg_result_int(r, row, 7);
  o->method = pg_result_dup(r, row, 8, NULL);
  o->target = pg_result_dup(r, row, 9, NULL);
  o->last_error = pg_result_dup(r, row, 10, NULL);
  o->response_status = (int)pg_result_int(r, row, 11);
  o->has_answer = !pg_result_null(r, row, 11);
  o->response_headers = pg_result_dup(r, row, 12, &o->response_headers_len);
  o->response_body = pg_result_dup(r, row, 13, &o->response_body_len);
  if (o->response_body == NULL)
    o->response_body_len = (size_t)pg_result_int(r, row, 14);
  bool lost = o->url == NULL || (!pg_result_null(r, row, 13) && o->response_body == NULL) ||
              (!pg_result_null(r, row, 12) && o->response_headers == NULL);
  if (lost) {
    storage_callback_free(o);
    return -ENOMEM;
  }
  return 0;
}

int pg_callbacks_due(pg_conn_t *c, int64_t now, int64_t lease_until, size_t body_cap, size_t limit,
                     storage_callback_t *out) {
  pg_cb_params_t p = {.n = 0};
  pg_cb_int(&p, now);
  pg_cb_int(&p, (int64_t)limit);
  pg_cb_int(&p, lease_until);
  pg_cb_int(&p, (int64_t)body_cap);
  pg_result_t *r;
  int rc = pg_conn_run(c, "callbacks_due", p.n, p.v, NULL, NULL, &r);
  if (rc != 0)
    return rc;
  int n = 0, rows = pg_result_rows(r);
  for (; n < rows && (size_t)n < limit; n++) {
    rc = pg_cb_read(r, n, &out[n]);
    if (rc != 0) {
      while (n > 0)
        storage_callback_free(&out[--n]);
      pg_result_free(r);
      return rc;
    }
  }
  pg_result_free(r);
  return n;
}

int pg_callbacks_finish(pg_conn_t *c, int64_t seq, int64_t now, callback_state_t state,
                        int64_t next_at, const char *error) {
  pg_cb_params_t p = {.n = 0};
  pg_cb_int(&p, seq);
  pg_cb_int(&p, (int64_t)state);
  pg_cb_int(&p, next_at);
  pg_cb_int(&p, now);
  const char *v[5] = {p.v[0], p.v[1], state == CALLBACK_PENDING ? p.v[2] : NULL, p.v[3], error};
  pg_result_t *r;
  int rc = pg_conn_run(c, "callbacks_finish", 5, v, NULL, NULL, &r);
  if (rc == 0)
    pg_result_free(r);
  return rc;
}

int64_t pg_callbacks_next_due(pg_conn_t *c) {
  pg_result_t *r;
  if (pg_conn_run(c, "callbacks_next_due", 0, NULL, NULL, NULL, &r) != 0)
    return 0;
  int64_t v = pg_result_rows(r) > 0 ? pg_result_int(r, 0, 0) : 0;
  pg_result_free(r);
  return v;
}

int pg_callbacks_count(pg_conn_t *c, int64_t *counts) {
  memset(counts, 0, sizeof(int64_t) * CALLBACK_NSTATES);
  pg_result_t *r;
  int rc = pg_conn_run(c, "callbacks_count", 0, NULL, NULL, NULL, &r);
  if (rc != 0)
    return rc;
  for (int i = 0; i < pg_result_rows(r); i++) {
    int64_t s = pg_result_int(r, i, 0);
    if (s >= 0 && s < CALLBACK_NSTATES)
      counts[s] = pg_result_int(r, i, 1);
  }
  pg_result_free(r);
  return 0;
}

int64_t pg_callbacks_purge(pg_conn_t *c, int64_t cutoff, int64_t limit) {
  pg_cb_params_t p = {.n = 0};
  pg_cb_int(&p, cutoff);
  pg_cb_int(&p, limit);
  pg_result_t *r;
  int rc = pg_conn_run(c, "callbacks_purge", p.n, p.v, NULL, NULL, &r);
  if (rc != 0)
    return rc;
  int64_t n = pg_result_changed(r);
  pg_result_free(r);
  return n;
}
