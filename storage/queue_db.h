/* queue_db: the retry queue's rows in SQLite, as plain synchronous calls.
 *
 * This module is the only one that speaks SQL. It owns one connection and
 * its prepared statements; it is used by exactly one thread at a time (the
 * storage thread in retryd, the test in unit tests), and never by the loop.
 * Transactions are the caller's: store.c wraps a batch of calls in one
 * BEGIN IMMEDIATE ... COMMIT (group commit).
 *
 * A row is one stored request. States: queued → inflight → completed |
 * queued again | dead; queued → cancelled. Times are Unix milliseconds.
 * Headers are stored as "Name: value\r\n" lines, exactly as they go
 * upstream (credentials included: this file is the only place they live,
 * created 0600, with secure_delete on for every table but the one of final
 * answers' bodies, which may be big and carry no request's credentials). */
#ifndef RETRYD_QUEUE_DB_H
#define RETRYD_QUEUE_DB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct sqlite3 sqlite3;
typedef struct queue_db_s queue_db_t;

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
  int64_t next_attempt_at;
  int last_status;          /* 0: none (network error) */
  const char *last_error;   /* NULL: none */
  int response_status;
  const char *response_headers;
  size_t response_headers_len;
  const char *response_body;
  size_t response_body_len;
} attempt_outcome_t;

typedef struct {
  int64_t count[RQ_NSTATES];
  int64_t oldest_queued_at; /* 0: none */
  int64_t next_attempt_at;  /* 0: none */
} queue_counts_t;

/* Errors are negative errno values: -ENOENT (no such row), -EEXIST (an
 * unfinished row with the same idempotency key), -EPERM (wrong state for
 * the change), -ENOSPC (disk full), -EDQUOT (--max-queue reached), -EBUSY
 * (another process holds the database), -EINVAL (not a retryd database or
 * corrupt), -EIO (anything else). */

/* Opens (creating 0600 if missing), locks, migrates, and returns rows left
 * inflight by a crash to queued. err gets a one-line reason on failure. */
int queue_db_open(queue_db_t **out, const char *path, int64_t max_queue, char *err,
                  size_t errlen);
void queue_db_close(queue_db_t *q);
sqlite3 *queue_db_handle(queue_db_t *q);
/* Rows that were inflight at open time and went back to queued. */
int64_t queue_db_recovered(const queue_db_t *q);

/* durable: the next commits wait for the disk (synchronous=FULL); else
 * they do not (NORMAL), for batches whose loss a crash makes harmless. */
int queue_db_set_durable(queue_db_t *q, bool durable);
int queue_db_begin(queue_db_t *q);
int queue_db_commit(queue_db_t *q);
void queue_db_rollback(queue_db_t *q);
/* Pages written to the WAL by commits so far: a commit that moved it wrote,
 * and with durable on it also synced what it wrote. */
int64_t queue_db_pages_written(queue_db_t *q);
/* A small durable write in a transaction of its own (a counter in a row of
 * its own): 0 when it reached the disk. Outside a transaction. Its pages go
 * where the next commit's go, so it also overwrites what a failed commit
 * left in the WAL after the last good one. */
int queue_db_probe(queue_db_t *q);

/* Inserts r (id, state, method, target, headers, body, key, attempts,
 * times, last status/error). On -EEXIST, existing is filled with the row
 * that holds the key. */
int queue_db_insert(queue_db_t *q, const stored_request_t *r, stored_request_t *existing);
/* The unfinished (queued or inflight) row with this key, method and target. */
int queue_db_find_idempotent(queue_db_t *q, const char *key, const char *method,
                             const char *target, stored_request_t *out);
/* with_payload: also the request's headers and body and the stored answer. */
int queue_db_get(queue_db_t *q, const char *id, bool with_payload, stored_request_t *out);
/* queued → cancelled. -EPERM (with out filled) when not queued. */
int queue_db_cancel(queue_db_t *q, const char *id, int64_t now, stored_request_t *out);
/* queued or dead → queued with next_attempt_at = now; a dead row's age
 * starts again (created_at = now). */
int queue_db_retry_now(queue_db_t *q, const char *id, int64_t now, stored_request_t *out);
/* Claims up to limit rows due at now (earliest due first, then oldest) as
 * inflight, with payloads; a due row older than max_age_ms is made dead
 * instead (*dead_out counts them). Returns the number claimed. */
int queue_db_claim(queue_db_t *q, int64_t now, int64_t max_age_ms, size_t limit,
                   stored_request_t *out, int64_t *dead_out);
/* Records an attempt's outcome on an inflight row. */
int queue_db_finish(queue_db_t *q, const char *id, int64_t now, const attempt_outcome_t *o);
/* Earliest next_attempt_at among queued rows, 0 when none. */
int64_t queue_db_next_due(queue_db_t *q);
/* Deletes up to limit finished rows (completed, dead, cancelled) last
 * changed before cutoff, the oldest first. Returns how many, or an error.
 * A row is zeroed where it lay (secure_delete: its credentials); its final
 * answer, in a table of its own, is freed without being read, and its
 * pages keep their bytes until reused or given back (queue_db_vacuum()). */
int64_t queue_db_purge(queue_db_t *q, int64_t cutoff, int64_t limit);
/* Pages on the free list, and in the file (free ones included). */
int64_t queue_db_free_pages(queue_db_t *q);
int64_t queue_db_pages(queue_db_t *q);
/* Gives up to pages free pages back to the file system (incremental
 * vacuum: live pages at the end of the file move into free ones, the end
 * is cut off at the next checkpoint). Returns how many left the free list
 * (fewer than asked: it is empty now), 0 when none are free or the file
 * cannot (see queue_db_reclaims_space()), or an error. In the caller's
 * transaction or its own. */
int64_t queue_db_vacuum(queue_db_t *q, int64_t pages);
/* Whether the file has incremental auto-vacuum (every file retryd creates;
 * an older file is converted at open, which may fail on a full disk). */
bool queue_db_reclaims_space(const queue_db_t *q);
/* How long converting an older file to incremental auto-vacuum took at
 * open, or -1 when there was nothing to convert. */
int64_t queue_db_converted_ms(const queue_db_t *q);
/* Moves the WAL into the database and truncates it, so purged secrets do
 * not linger in the log. Outside a transaction. */
int queue_db_checkpoint(queue_db_t *q);
int queue_db_counts(queue_db_t *q, queue_counts_t *out);
/* Rows in state (or any state when state < 0), oldest first, after the row
 * with sequence number after_seq; *last_seq gets the last row's. */
int queue_db_list(queue_db_t *q, int state, int64_t after_seq, size_t limit,
                  stored_request_t *out, int64_t *last_seq);
/* Unfinished rows (queued + inflight) as the --max-queue check counts them. */
int64_t queue_db_unfinished(const queue_db_t *q);
/* Counts them again from the table (after a rolled-back batch). */
void queue_db_recount(queue_db_t *q);

#endif
