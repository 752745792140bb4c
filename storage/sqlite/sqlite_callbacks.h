/* sqlite_callbacks: the completion notices' table in SQLite (schema step 4),
 * as plain synchronous calls on the queue's connection.
 *
 * The notices are queued by triggers when a request ends (schema.c says
 * why); this module reads the due ones with their request's answer,
 * records each delivery attempt, counts them, and purges old finished
 * ones. It owns its prepared statements, not the connection; used by the
 * thread that uses the queue, inside the caller's transaction. Errors are
 * storage/stored_request.h's. */
#ifndef RETRYD_SQLITE_CALLBACKS_H
#define RETRYD_SQLITE_CALLBACKS_H

#include <stddef.h>
#include <stdint.h>

#include "storage/stored_request.h"

typedef struct sqlite3 sqlite3;
typedef struct sqlite_callbacks_s sqlite_callbacks_t;

/* NULL when the statements cannot be prepared (out of memory). */
sqlite_callbacks_t *sqlite_callbacks_open(sqlite3 *db);
void sqlite_callbacks_close(sqlite_callbacks_t *c);

int sqlite_callbacks_due(sqlite_callbacks_t *c, int64_t now, size_t body_cap, size_t limit,
                         storage_callback_t *out);
int sqlite_callbacks_finish(sqlite_callbacks_t *c, int64_t seq, int64_t now, callback_state_t state,
                            int64_t next_at, const char *error);
int64_t sqlite_callbacks_next_due(sqlite_callbacks_t *c);
/* Fills counts[CALLBACK_NSTATES]. */
int sqlite_callbacks_count(sqlite_callbacks_t *c, int64_t *counts);
/* Deletes up to limit delivered or failed notices last changed before
 * cutoff. Returns how many, or an error. */
int64_t sqlite_callbacks_purge(sqlite_callbacks_t *c, int64_t cutoff, int64_t limit);

#endif
