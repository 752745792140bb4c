/* pg_callbacks: the completion notices' table in PostgreSQL (schema step
 * 5), for postgres_backend.c: what sqlite_callbacks.h is for SQLite, on
 * the backend's connection and inside its transaction.
 *
 * Shared by replicas: reading due notices leases them (their next attempt
 * moves to lease_until, FOR UPDATE SKIP LOCKED), so two replicas never send
 * one notice at once; one whose sender died is due again once its lease
 * ran out. Errors are storage/stored_request.h's. Storage thread. */
#ifndef RETRYD_PG_CALLBACKS_H
#define RETRYD_PG_CALLBACKS_H

#include <stddef.h>
#include <stdint.h>

#include "storage/postgres/pg_conn.h"
#include "storage/stored_request.h"

/* Prepares the statements on a new session. */
int pg_callbacks_prepare(pg_conn_t *c);
int pg_callbacks_due(pg_conn_t *c, int64_t now, int64_t lease_until, size_t body_cap, size_t limit,
                     storage_callback_t *out);
int pg_callbacks_finish(pg_conn_t *c, int64_t seq, int64_t now, callback_state_t state,
                        int64_t next_at, const char *error);
int64_t pg_callbacks_next_due(pg_conn_t *c);
int pg_callbacks_count(pg_conn_t *c, int64_t *counts);
int64_t pg_callbacks_purge(pg_conn_t *c, int64_t cutoff, int64_t limit);

#endif
