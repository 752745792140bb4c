/* pg_schema: retryd's tables in a PostgreSQL database, and their upgrades.
 *
 * Every object retryd creates is named retryd_*; nothing else in the
 * database is read, changed or dropped. retryd_schema holds one row, the
 * schema version. pg_schema_migrate() runs in a transaction of its own
 * under a transaction-scoped advisory lock, so replicas starting together
 * apply each step once; a database whose version is newer than this
 * binary's is refused, never rewritten.
 *
 * Counts per state live in retryd_counts, kept by triggers: one row per
 * (replica, state) holding that replica's changes, summed when read, so
 * replicas never wait on one another's counter rows and a listing of a
 * million rows never counts them. Inserts are counted once per statement
 * (a batch of rows inserted together changes each counter row once),
 * state changes and deletes once per row. */
#ifndef RETRYD_PG_SCHEMA_H
#define RETRYD_PG_SCHEMA_H

#include <stddef.h>

#include "storage/postgres/pg_conn.h"

#define PG_SCHEMA_VERSION 6

/* 0, or a negative errno with one line in err. */
int pg_schema_migrate(pg_conn_t *c, char *err, size_t errlen);
/* The same, up to version target only (1 to PG_SCHEMA_VERSION): how tests
 * make the database an older retryd left behind. A database already past
 * target is left as it is. */
int pg_schema_migrate_to(pg_conn_t *c, int target, char *err, size_t errlen);

#endif
