/* storage_backend: what a place that keeps the retry queue must do.
 *
 * The store (storage/store.h: the storage thread, group commit) drives a
 * backend through this table and knows nothing else of it; a backend is a
 * folder of its own below storage/ (storage/sqlite/ is the first). Adding
 * one: implement every operation below, declare its open function at the
 * end of this file, give it a scheme in storage/storage_location.c, and
 * open it in storage_backend_open().
 *
 * Threading: a backend is used by one thread at a time (the storage thread
 * in retryd, the test in unit tests) and never by the loop thread, so its
 * calls may block.
 *
 * Transactions: the store opens one with begin(), runs a batch of
 * operations in it and ends it with commit() or rollback(). durable says
 * whether the commit must wait until what it wrote survives a power cut
 * (every acknowledged change does); a batch of reads and claims passes
 * false, and the next durable commit carries its writes along. Outside a
 * transaction only probe(), purge_finished(), housekeep(), flows(), and,
 * after every commit or rollback, next_due() and unfinished() are called.
 *
 * Errors are the negative errno values of storage/stored_request.h. */
#ifndef RETRYD_STORAGE_BACKEND_H
#define RETRYD_STORAGE_BACKEND_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "storage/storage_filter.h"
#include "storage/stored_request.h"

typedef struct storage_backend_s storage_backend_t;

/* What a shared backend hears of the changes other processes made to the
 * queue (storage_params_t.notify): told so the scheduler and the clients
 * holding with Prefer: wait need not poll. */
typedef enum {
  STORAGE_NOTICE_DUE,    /* queued rows become due at at_ms */
  STORAGE_NOTICE_ENDED,  /* row id was completed, given up (dead) or cancelled */
  STORAGE_NOTICE_MISSED, /* notices may have been lost: look at everything again */
} storage_notice_kind_t;

typedef struct {
  storage_notice_kind_t kind;
  int64_t at_ms;
  char id[40];
} storage_notice_t;

/* What the user asked of any backend. */
typedef struct {
  int64_t max_queue; /* unfinished rows at most: --max-queue */
  /* Shared backends: how long a replica's claim on a row holds without
   * renewal (--claim-lease); once it ran out, any replica retries the row.
   * 0: the default, 30 s. */
  int64_t lease_ms;
  /* Shared backends: called with each change another process made, from a
   * thread of the backend's own, at any time between open and close (NULL:
   * nobody listens). */
  void (*notify)(void *arg, const storage_notice_t *n);
  void *notify_arg;
} storage_params_t;

/* One flow of unfinished rows (flows()): a route, or one partition of a
 * route's rate limit (stored_request_t.flow says how it is named). */
typedef struct {
  char name[STORAGE_FLOW_MAX];
  int64_t queued;
  int64_t inflight;
  int64_t next_due; /* the earliest next attempt of its queued rows; 0: none queued */
} storage_flow_t;

/* Set by the backend at open, read-only afterwards. */
typedef struct {
  /* Requests left inflight by a crash, queued again at open. */
  int64_t recovered;
  /* Whether purged space goes back to the file system (reclaim()). */
  bool reclaims_space;
  /* How long converting older storage so it can reclaim space took at
   * open, or -1 when there was nothing to convert. */
  int64_t converted_ms;
  /* How often housekeep() wants to run while the store is idle (0: never). */
  int64_t housekeep_ms;
  /* Shared backends: others add and free rows, and this process may miss
   * word of some (a replica died before it told, a notice was lost), so its
   * scheduler looks for due rows at least this often (0: it knows every
   * change, and waits for the next one it knows of). */
  int64_t poll_ms;
  /* Shared backends: this process's name among the replicas (in leases,
   * notices and metrics labels); "" for a backend of one process. */
  char replica[96];
} storage_info_t;

typedef struct {
  const char *name; /* for logs: "sqlite" */
  void (*close)(storage_backend_t *b);

  int (*begin)(storage_backend_t *b, bool durable);
  /* *synced: whether this commit made writes durable (a durable commit
   * that changed nothing did not; health needs to know). */
  int (*commit)(storage_backend_t *b, bool *synced);
  /* Ends the open transaction keeping nothing of it, also after a commit
   * that failed: once it returns, nothing of that transaction may come
   * back, not even when the process dies next (a 503 means "not stored"),
   * and unfinished() counts what is stored. */
  void (*rollback)(storage_backend_t *b);
  /* A small durable write of the backend's own, outside any transaction:
   * 0 when it reached stable storage. Tells health when no client writes. */
  int (*probe)(storage_backend_t *b);

  /* Inserts r (id, state, method, target, headers, body, key, attempts,
   * times, last status and error, deadline, body hash, last answer). On -EEXIST, *existing is the
   * row that holds the key. */
  int (*insert)(storage_backend_t *b, const stored_request_t *r, stored_request_t *existing);
  /* Inserts rows[0] to rows[n-1] in this order, each with the outcome n
   * calls of insert() in turn would give it: results[i] is 0, -EEXIST
   * with existing[i] the row that holds the key (also when an earlier row
   * of the same call took it), -EDQUOT once --max-queue is reached, or an
   * error. A refusal spoils neither the other rows nor the transaction.
   * existing[] has n entries, zeroed by the caller. The store hands a
   * batch's consecutive inserts over at once, so that a backend for which
   * every statement is a round trip can store them with one;
   * storage_backend_insert_each() is the plain loop over insert(). */
  void (*insert_many)(storage_backend_t *b, const stored_request_t *const *rows, size_t n,
                      int *results, stored_request_t *existing);
  /* The unfinished (queued or inflight) row with this key, method and
   * target, without payloads. */
  int (*find_idempotent)(storage_backend_t *b, const char *key, const char *method,
                         const char *target, stored_request_t *out);
  /* The most recent completed row with this key, method and target (an
   * Idempotency-Key repeat after completion gets its answer replayed),
   * without payloads; -ENOENT when none is left. */
  int (*find_completed)(storage_backend_t *b, const char *key, const char *method,
                        const char *target, stored_request_t *out);
  /* with_payload: also the request's headers and body and the stored answer. */
  int (*get)(storage_backend_t *b, const char *id, bool with_payload, stored_request_t *out);
  /* queued → cancelled. -EPERM (with *out filled) when not queued. */
  int (*cancel)(storage_backend_t *b, const char *id, int64_t now, stored_request_t *out);
  /* queued or dead → queued, due now; a dead row's age starts again and
   * its deadline is lifted (an operator's retry says it is still worth sending). */
  int (*retry_now)(storage_backend_t *b, const char *id, int64_t now, stored_request_t *out);
  /* Claims up to limit rows due at now (earliest due first, then oldest)
   * as inflight, with payloads, counting the attempt; a due row older than
   * max_age_ms, or whose deadline_at is at or before now, is made dead
   * instead (*dead_out counts them; last_error says "deadline: ..." for
   * the latter). flow NULL:
   * rows of any flow; else only the rows of that flow, found through an
   * index of their own, so a claim for one flow never walks another's
   * rows (and buries only its own). Returns the number claimed. */
  int (*claim)(storage_backend_t *b, int64_t now, const char *flow, int64_t max_age_ms,
               size_t limit, stored_request_t *out, int64_t *dead_out);
  /* Records an attempt's outcome on an inflight row. */
  int (*finish)(storage_backend_t *b, const char *id, int64_t now, const attempt_outcome_t *o);

  /* Deletes up to limit finished rows (completed, dead, cancelled) last
   * changed before cutoff, the oldest first, so their credentials do not
   * linger. Returns how many, or an error. */
  int64_t (*purge)(storage_backend_t *b, int64_t cutoff, int64_t limit);
  /* Gives up to limit units of freed space back to the file system (a
   * backend's own unit: pages for SQLite), keeping what it would soon
   * reuse. Returns how many, fewer than limit when nothing more is worth
   * giving back, or an error. */
  int64_t (*reclaim)(storage_backend_t *b, int64_t limit);
  /* After the last slice of a purge that changed something, outside a
   * transaction: lets what was deleted leave any log the backend keeps. */
  void (*purge_finished)(storage_backend_t *b);

  int (*counts)(storage_backend_t *b, queue_counts_t *out);
  /* Rows in state (any state when state < 0), oldest first, after the row
   * with sequence number after_seq; *last_seq gets the last row's. */
  int (*list)(storage_backend_t *b, int state, int64_t after_seq, size_t limit,
              stored_request_t *out, int64_t *last_seq);
  /* Rows that match f, oldest first, after page->after_seq: at most limit
   * of them, found among the next scan rows (of f's state when it names
   * exactly one, through the state index; else of any), so that a filter
   * matching few rows of a big table never walks it in one call. The page
   * is full (limit rows: page->last_seq is the last one's) or the scan ran
   * out (page->last_seq is the last row read), and page->more says whether
   * rows after last_seq remain to be read; a page may hold fewer than
   * limit rows, even none, while more is set. Rows without payloads. */
  int (*list_filtered)(storage_backend_t *b, const storage_filter_t *f, size_t scan, size_t limit,
                       stored_request_t *out, storage_page_t *page);
  /* One step of a bulk action: among the same rows list_filtered() would
   * read (those of f in the states op may change), changes at most limit,
   * each as retry_now() or cancel() would, and puts them, as they are
   * after the change (without payloads), in out. Returns how many it
   * changed, or an error (as with any operation of a batch, what it
   * changed before the error stays unless the batch's commit fails). A
   * retry revives a dead row only while --max-queue leaves room: at the
   * first dead row without room it stops, sets page->full and clears
   * page->more. */
  int (*bulk)(storage_backend_t *b, storage_bulk_t op, const storage_filter_t *f, int64_t now,
              size_t scan, size_t limit, stored_request_t *out, storage_page_t *page);
  /* The distinct flows among unfinished (queued or inflight) rows, ordered
   * by name (bytewise), at most cap of them into out: each with its queued
   * and inflight rows and the earliest next attempt of its queued ones (0:
   * none queued). Returns how many, or an error. Called outside a
   * transaction or inside, like counts(). Its cost grows with the queue:
   * it reads the index entry of every unfinished row (of every queued
   * row's in the per-flow due index, and every inflight row), so callers
   * ask it at start-up, at a shared queue's poll, and for stats only when
   * routes are configured, never per request. */
  int (*flows)(storage_backend_t *b, storage_flow_t *out, size_t cap);
  /* Earliest next attempt among queued rows, 0 when none. */
  int64_t (*next_due)(storage_backend_t *b);
  /* The same within one flow, through its index (a shared backend counts
   * too when another replica's claim on one of its rows runs out): asked
   * after a claim of that flow, in its transaction, so the scheduler knows
   * when the flow has rows due next without reading every flow. 0: none,
   * or the backend could not tell. */
  int64_t (*flow_next_due)(storage_backend_t *b, const char *flow);
  /* Unfinished rows (queued + inflight), as --max-queue counts them. */
  int64_t (*unfinished)(storage_backend_t *b);
  /* Periodic work of the backend's own, outside a transaction, about every
   * info.housekeep_ms (a shared backend renews its claims). May be NULL. */
  void (*housekeep)(storage_backend_t *b);

  /* Completion notices (all three NULL: the backend keeps none, and
   * Retryd-Callback is refused). The backend queues a notice itself, in the
   * same transaction, whenever a row with a callback_url ends (completed,
   * dead, cancelled; also inserted already dead), so a crash never loses
   * one. */
  /* Up to limit pending notices due at now, earliest first, with their
   * request's answer (its body only when at most body_cap bytes). Reads
   * only: a notice stays due until callback_finish() says otherwise.
   * Returns how many, or an error. */
  int (*callback_due)(storage_backend_t *b, int64_t now, size_t body_cap, size_t limit,
                      storage_callback_t *out);
  /* Records one delivery attempt of notice seq: state CALLBACK_PENDING
   * (due again at next_at), CALLBACK_DELIVERED or CALLBACK_FAILED; error
   * is what went wrong (NULL: nothing). */
  int (*callback_finish)(storage_backend_t *b, int64_t seq, int64_t now, callback_state_t state,
                         int64_t next_at, const char *error);
  /* Earliest next attempt of a pending notice, 0 when none. */
  int64_t (*callback_next_due)(storage_backend_t *b);
} storage_backend_ops_t;

/* Every backend's object starts with this (h2o's "super" pattern). */
struct storage_backend_s {
  const storage_backend_ops_t *ops;
  storage_info_t info;
};

/* Opens the backend that location names (storage/storage_location.h),
 * creating, locking, migrating and recovering it. err gets one line on
 * failure. */
int storage_backend_open(storage_backend_t **out, const char *location,
                         const storage_params_t *params, char *err, size_t errlen);

/* insert_many() as n calls of insert(), for backends whose statements
 * cost no round trip (SQLite's run in the process). */
void storage_backend_insert_each(storage_backend_t *b, const stored_request_t *const *rows,
                                 size_t n, int *results, stored_request_t *existing);

/* The backends, each in its folder; storage_backend_open() picks one. */

/* storage/sqlite/: the file at path, created 0600 if missing. */
int sqlite_backend_open(storage_backend_t **out, const char *path, const storage_params_t *params,
                        char *err, size_t errlen);
/* storage/postgres/: the database at url (libpq's URI), shared by replicas. */
int postgres_backend_open(storage_backend_t **out, const char *url, const storage_params_t *params,
                          char *err, size_t errlen);

#endif
