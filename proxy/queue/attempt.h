/* attempt: one retry of a stored request, from claim to outcome.
 *
 * The stored request goes out exactly like its first attempt
 * (upstream.h), to its route's upstream (route_table_route_of_row()). The answer is collected in
 * memory, its body capped at --max-body (a longer body is kept truncated, and last_error says so),
 * because a final answer is stored with the row for GET .../response. The
 * outcome follows its route's retry_policy: a final answer completes the request; a
 * retryable one (or none) queues it again or makes it dead. Loop thread. */
#ifndef RETRYD_ATTEMPT_H
#define RETRYD_ATTEMPT_H

#include <stdbool.h>
#include <uv.h>

#include "lib/list.h"
#include "proxy/buf.h"
#include "proxy/queue/last_answer.h"
#include "proxy/queue/route_table.h"
#include "proxy/upstream/response_head.h"
#include "proxy/upstream/upstream.h"
#include "storage/stored_request.h"
#include "storage/store.h"

struct app_s;
typedef struct attempt_s attempt_t;
typedef void (*attempt_done_cb)(attempt_t *a);

struct attempt_s {
  struct app_s *app;
  stored_request_t rq; /* the claimed row (owned) */
  attempt_outcome_t outcome;
  store_job_t finish; /* records the outcome */
  attempt_done_cb done;
  list_t link;        /* in the scheduler's list */
  bool probe;         /* the route's probe after a pause (route_flow.h) */
  route_t *route;     /* the row's route: its upstream and policy */
  flow_entry_t *flow; /* the flow it was claimed from (busy while the attempt is) */

  /* Private. */
  upstream_xfer_t *xfer;
  response_head_t head;
  buf_t resp_headers;
  buf_t body;
  last_answer_t answer; /* a retryable answer's kept part (the outcome points into it) */
  bool truncated;
  bool cancelled;
  bool finished;
  char error[256];
  uv_timer_t timer;
  uint64_t sent_ns;
  char *target_owned; /* the target without its route's prefix, when made */
};

/* Takes ownership of *rq. done runs once the outcome is known (before it is
 * stored); the caller then submits a->finish and frees with attempt_free(). */
attempt_t *attempt_start(struct app_s *app, stored_request_t *rq, attempt_done_cb done);
/* Shutdown: stops the transfer; the outcome becomes OUTCOME_RELEASE. */
void attempt_cancel(attempt_t *a);
void attempt_free(attempt_t *a);

#endif
