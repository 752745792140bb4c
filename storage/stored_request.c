#include "storage/stored_request.h"

#include <stdlib.h>
#include <string.h>

static const char *const state_names[RQ_NSTATES] = {"queued", "inflight", "completed", "dead",
                                                    "cancelled"};

const char *rq_state_name(rq_state_t s) {
  return (unsigned)s < RQ_NSTATES ? state_names[s] : "unknown";
}

int rq_state_parse(const char *name) {
  for (int i = 0; i < RQ_NSTATES; i++)
    if (strcmp(name, state_names[i]) == 0)
      return i;
  return -1;
}

void stored_request_free(stored_request_t *r) {
  free(r->method);
  free(r->target);
  free(r->headers);
  free(r->body);
  free(r->idempotency_key);
  free(r->last_error);
  free(r->response_headers);
  free(r->response_body);
  free(r->flow);
  free(r->body_sha256);
  free(r->last_answer_headers);
  free(r->last_answer_body);
  free(r->callback_url);
  memset(r, 0, sizeof(*r));
}

void storage_callback_free(storage_callback_t *c) {
  free(c->url);
  free(c->method);
  free(c->target);
  free(c->last_error);
  free(c->response_headers);
  free(c->response_body);
  memset(c, 0, sizeof(*c));
}
