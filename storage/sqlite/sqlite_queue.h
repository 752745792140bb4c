/* sqlite_queue: the retry queue's rows in SQLite, as plain synchronous calls.
 *
 * This module is the only one that speaks SQL; sqlite_backend.c puts it
 * behind the storage interface (storage/storage_backend.h), and the unit
 * tests use it directly for what only SQLite has (pages, the WAL). It owns
 * one connection and its prepared statements; it is used by exactly one
 * thread at a time (the storage thread in retryd, the test in unit tests),
 * and never by the loop. Transactions are the caller's: the store wraps a
 * batch of calls in one BEGIN IMMEDIATE ... COMMIT (group commit).
 *
 * A row is one stored request (storage/stored_request.h, which also lists
 * the errors returned here). Headers are kept as they go upstream,
 * credentials included: this file is the only place they live, created
 * 0600, with secure_delete on for every table but the one of final
 * answers' bodies, which may be big and carry no request's credentials. */
#ifndef RETRYD_SQLITE_QUEUE_H
#define RETRYD_SQLITE_QUEUE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "storage/storage_backend.h"
#include "storage/stored_request.h"

typedef struct sqlite3 sqlite3;
typedef struct sqlite_queue_s sqlite_queue_t;

/* Opens (creating 0600 if missing), locks, migrates, and returns rows left
 * inflight by a crash to queued. err gets a one-line reason on failure. */
int sqlite_queue_open(sqlite_queue_t **out, const char *path, int64_t max_queue, char *err,
                      size_t errlen);
void sqlite_queue_close(sqlite_queue_t *q);
sqlite3 *sqlite_queue_handle(sqlite_queue_t *q);
/* Rows that were inflight at open time and went back to queued. */
int64_t sqlite_queue_recovered(const sqlite_queue_t *q);

/* durable: the next commits wait for the disk (synchronous=FULL); else
 * they do not (NORMAL), for batches whose loss a crash makes harmless. */
int sqlite_queue_set_durable(sqlite_queue_t *q, bool durable);
int sqlite_queue_begin(sqlite_queue_t *q);
int sqlite_queue_commit(sqlite_queue_t *q);
void sqlite_queue_rollback(sqlite_queue_t *q);
/* Pages written to the WAL by commits so far: a commit that moved it wrote,
 * and with durable on it also synced what it wrote. */
int64_t sqlite_queue_pages_written(sqlite_queue_t *q);
/* A small durable write in a transaction of its own (a counter in a row of
 * its own): 0 when it reached the disk. Outside a transaction. Its pages go
 * where the next commit's go, so it also overwrites what a failed commit
 * left in the WAL after the last good one. */
int sqlite_queue_probe(sqlite_queue_t *q);

/* Inserts r (id, state, method, target, headers, body, key, attempts,
 * times, last status/error). On -EEXIST, existing is filled with the row
 * that holds the key. */
int sqlite_queue_insert(sqlite_queue_t *q, const stored_request_t *r, stored_request_t *existing);
/* The unfinished (queued or inflight) row with this key, method and target. */
int sqlite_queue_find_idempotent(sqlite_queue_t *q, const char *key, const char *method,
                                 const char *target, stored_request_t *out);
/* The latest completed row with this key, method and target, brief. */
int sqlite_queue_find_completed(sqlite_queue_t *q, const char *key, const char *method,
                                const char *target, stored_request_t *out);
/* with_payload: also the request's headers and body and the stored answer. */
int sqlite_queue_get(sqlite_queue_t *q, const char *id, bool with_payload, stored_request_t *out);
/* queued → cancelled. -EPERM (with out filled) when not queued. */
int sqlite_queue_cancel(sqlite_queue_t *q, const char *id, int64_t now, stored_request_t *out);
/* queued or dead → queued with next_attempt_at = now; a dead row's age
 * starts again (created_at = now). */
int sqlite_queue_retry_now(sqlite_queue_t *q, const char *id, int64_t now, stored_request_t *out);
/* Claims up to limit rows due at now (earliest due first, then oldest) as
 * inflight, with payloads; a due row older than max_age_ms is made dead
 * instead (*dead_out counts them). flow NULL: any flow's rows; else only
 * that flow's, through its index (requests_flow_due). Returns the number
 * claimed. */
int sqlite_queue_claim(sqlite_queue_t *q, int64_t now, const char *flow, int64_t max_age_ms,
                       size_t limit, stored_request_t *out, int64_t *dead_out);
/* Records an attempt's outcome on an inflight row. */
int sqlite_queue_finish(sqlite_queue_t *q, const char *id, int64_t now, const attempt_outcome_t *o);
/* Earliest next_attempt_at among queued rows, 0 when none. */
int64_t sqlite_queue_next_due(sqlite_queue_t *q);
/* The same within one flow (0: none). */
int64_t sqlite_queue_flow_next_due(sqlite_queue_t *q, const char *flow);
/* Deletes up to limit finished rows (completed, dead, cancelled) last
 * changed before cutoff, the oldest first. Returns how many, or an error.
 * A row is zeroed where it lay (secure_delete: its credentials); its final
 * answer, in a table of its own, is freed without being read, and its
 * pages keep their bytes until reused or given back (sqlite_queue_vacuum()). */
int64_t sqlite_queue_purge(sqlite_queue_t *q, int64_t cutoff, int64_t limit);
/* Pages on the free list, and in the file (free ones included). */
int64_t sqlite_queue_free_pages(sqlite_queue_t *q);
int64_t sqlite_queue_pages(sqlite_queue_t *q);
/* Gives up to pages free pages back to the file system (incremental
 * vacuum: live pages at the end of the file move into free ones, the end
 * is cut off at the next checkpoint). Returns how many left the free list
 * (fewer than asked: it is empty now), 0 when none are free or the file
 * cannot (see sqlite_queue_reclaims_space()), or an error. In the caller's
 * transaction or its own. */
int64_t sqlite_queue_vacuum(sqlite_queue_t *q, int64_t pages);
/* Whether the file has incremental auto-vacuum (every file retryd creates;
 * an older file is converted at open, which may fail on a full disk). */
bool sqlite_queue_reclaims_space(const sqlite_queue_t *q);
/* How long converting an older file to incremental auto-vacuum took at
 * open, or -1 when there was nothing to convert. */
int64_t sqlite_queue_converted_ms(const sqlite_queue_t *q);
/* Moves the WAL into the database and truncates it, so purged secrets do
 * not linger in the log. Outside a transaction. */
int sqlite_queue_checkpoint(sqlite_queue_t *q);
int sqlite_queue_counts(sqlite_queue_t *q, queue_counts_t *out);
/* Rows in state (or any state when state < 0), oldest first, after the row
 * with sequence number after_seq; *last_seq gets the last row's. */
/* storage_backend.h: list_filtered() and bulk(). */
int sqlite_queue_list_filtered(sqlite_queue_t *q, const storage_filter_t *f, size_t scan,
                               size_t limit, stored_request_t *out, storage_page_t *page);
int sqlite_queue_bulk(sqlite_queue_t *q, storage_bulk_t op, const storage_filter_t *f, int64_t now,
                      size_t scan, size_t limit, stored_request_t *out, storage_page_t *page);
int sqlite_queue_list(sqlite_queue_t *q, int state, int64_t after_seq, size_t limit,
                      stored_request_t *out, int64_t *last_seq);
/* The flows of unfinished rows, ordered by name, at most cap of them
 * (storage_backend.h, flows()). Returns how many, or an error. */
int sqlite_queue_flows(sqlite_queue_t *q, storage_flow_t *out, size_t cap);
/* Unfinished rows (queued + inflight) as the --max-queue check counts them. */
int64_t sqlite_queue_unfinished(const sqlite_queue_t *q);
/* Counts them again from the table (after a rolled-back batch). */
void sqlite_queue_recount(sqlite_queue_t *q);

#endif
