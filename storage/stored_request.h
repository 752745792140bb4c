/* stored_request: what the retry queue stores, in no backend's terms.
 *
 * A stored request goes queued → inflight → completed | queued again |
 * dead; queued → cancelled; a dead or queued one may be queued again by
 * hand (retry now). Times are Unix milliseconds (wall clock: rows outlive
 * the process). Headers are "Name: value\r\n" lines, exactly as they go
 * upstream, credentials included: a backend keeps them only where the
 * queue's own data lives.
 *
 * Every storage operation (storage/storage_backend.h, storage/store.h)
 * reports failure as a negative errno value, the same for every backend:
 *   -ENOENT  no such request
 *   -EEXIST  an unfinished request holds the same idempotency key
 *   -EPERM   the request is in the wrong state for the change
 *   -ENOSPC  the storage is full
 *   -EDQUOT  --max-queue reached
 *   -EBUSY   another process holds the storage
 *   -EINVAL  not a retryd queue, or corrupt; or a request's flow is too long
 *   -EIO     anything else */
#ifndef RETRYD_STORED_REQUEST_H
#define RETRYD_STORED_REQUEST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The numbers are part of the stored format (a backend may keep them as
 * they are): never renumber, only add. */
typedef enum {
  RQ_QUEUED = 0,
  RQ_INFLIGHT = 1,
  RQ_COMPLETED = 2,
  RQ_DEAD = 3,
  RQ_CANCELLED = 4,
} rq_state_t;

#define RQ_NSTATES 5

const char *rq_state_name(rq_state_t s);
/* -1 when name is not a state. */
int rq_state_parse(const char *name);

/* The longest flow name a row carries, its terminating NUL included. */
#define STORAGE_FLOW_MAX 128

/* One stored request. Strings are owned (malloc) and freed by
 * stored_request_free(); a 0 time or status means "none". */
typedef struct {
  char id[40];
  rq_state_t state;
  char *method;
  char *target;
  char *headers;
  size_t headers_len;
  char *body;
  size_t body_len;
  char *idempotency_key;
  int64_t attempts;
  int64_t created_at;
  int64_t next_attempt_at;
  int64_t updated_at;
  int last_status;
  char *last_error;
  int response_status;
  char *response_headers;
  size_t response_headers_len;
  char *response_body;
  size_t response_body_len;
  /* Shared backends: which claim of the row this is, a fencing token that
   * only grows (claim() sets it; finish() must be given it back). 0 in a
   * backend that keeps none: one process owns all its rows. */
  int64_t claim_token;
  /* The flow the request is claimed under: its route's name, and for a
   * route whose rate limit is partitioned by a header, '#' and the
   * partition's key (a hash of the header's value, hex); "" for the
   * default route. Owned; NULL on insert means ""; at most
   * STORAGE_FLOW_MAX - 1 bytes (a longer one is -EINVAL). Never NULL in a
   * row a backend returns. */
  char *flow;
  /* Retryd-Deadline: not delivered by then (Unix ms), the row is dead
   * (claim() buries it); 0: none. */
  int64_t deadline_at;
  /* The request body's SHA-256 in lower-case hex (64 characters), so that
   * an Idempotency-Key repeat with another body is told apart; NULL:
   * unknown (a row stored before it was kept). */
  char *body_sha256;
  /* The last retryable answer the upstream gave (its status is
   * last_status): a few of its header fields as "Name: value\r\n" lines,
   * and the first bytes of its body. NULL: none came yet. */
  char *last_answer_headers;
  size_t last_answer_headers_len;
  char *last_answer_body;
  size_t last_answer_body_len;
  /* Where a notice goes when the request ends (Retryd-Callback, or
   * --callback-url); NULL: none. Owned. Stored on insert only: the backend
   * queues the notice (storage_callback_t) in the transaction that ends
   * the row, so no ending is ever without its notice. */
  char *callback_url;
} stored_request_t;

void stored_request_free(stored_request_t *r);

/* What happened to one attempt of an inflight request. */
typedef enum {
  OUTCOME_COMPLETED, /* a final answer: stored with the row */
  OUTCOME_RETRY,     /* retryable: queued again at next_attempt_at */
  OUTCOME_DEAD,      /* retryable, but out of attempts or age */
  OUTCOME_RELEASE,   /* not attempted after all (shutdown): queued as before */
} outcome_t;

typedef struct {
  outcome_t kind;
  /* The claim the attempt ran under (its row's claim_token): a shared
   * backend records the outcome only while that claim still holds. */
  int64_t claim_token;
  int64_t next_attempt_at;
  int last_status;        /* 0: none (network error) */
  const char *last_error; /* NULL: none */
  int response_status;
  const char *response_headers;
  size_t response_headers_len;
  const char *response_body;
  size_t response_body_len;
  /* A retryable answer's kept part (stored_request_t.last_answer_*);
   * NULL headers: no answer this time, the row keeps the one it had. */
  const char *last_answer_headers;
  size_t last_answer_headers_len;
  const char *last_answer_body;
  size_t last_answer_body_len;
} attempt_outcome_t;

/* A completion notice's states (storage_callback_t.state). */
typedef enum {
  CALLBACK_PENDING = 0,
  CALLBACK_DELIVERED = 1,
  CALLBACK_FAILED = 2, /* given up */
} callback_state_t;

#define CALLBACK_NSTATES 3

/* One completion notice due for delivery, with what it tells of its
 * request: queued by the backend in the transaction that ended the
 * request. The request's fields are a snapshot taken at its end; its
 * method, target and answer are read at delivery (NULL once the request
 * was purged). Strings owned; storage_callback_free() frees them. */
typedef struct {
  int64_t seq; /* the notice's own number: stable, part of its webhook-id */
  char request_id[40];
  char *url;
  rq_state_t request_state;
  int64_t attempts;
  int final_status; /* 0: none */
  int64_t sends;    /* delivery attempts so far */
  int64_t created_at;
  char *method;
  char *target;
  char *last_error;
  int response_status;
  char *response_headers;
  size_t response_headers_len;
  /* The answer's body when it is at most the cap the caller asked for
   * (body_cap), else NULL with body_len its full size. */
  char *response_body;
  size_t response_body_len;
  bool has_answer; /* an answer is stored (response_status set) */
} storage_callback_t;

void storage_callback_free(storage_callback_t *c);

typedef struct {
  int64_t count[RQ_NSTATES];
  int64_t oldest_queued_at;            /* 0: none */
  int64_t next_attempt_at;             /* 0: none */
  int64_t callbacks[CALLBACK_NSTATES]; /* notices by state (0 where unsupported) */
} queue_counts_t;

#endif
