/* schema: the queue's tables and their migrations.
 *
 * The database carries PRAGMA application_id (so retryd never writes into
 * somebody else's SQLite file) and PRAGMA user_version (the schema version).
 * schema_migrate() applies every step from the file's version to the
 * current one inside the caller's transaction; a file from a newer retryd
 * is refused. Storage thread (or a test) only. */
#ifndef RETRYD_SCHEMA_H
#define RETRYD_SCHEMA_H

#include <stddef.h>

#include "storage/stored_request.h"

typedef struct sqlite3 sqlite3;

#define SCHEMA_APPLICATION_ID 0x72747279 /* "rtry" */
#define SCHEMA_VERSION 5

/* The states as the file stores them, for SQL text (the partial indexes
 * and the statements that use them must spell them alike). The numbers are
 * rq_state_t's, pinned here: a file written by one retryd is read by the
 * next. "Finished" is every state from completed on. */
#define SQL_QUEUED "0"
#define SQL_INFLIGHT "1"
#define SQL_COMPLETED "2"
#define SQL_DEAD "3"
#define SQL_FIRST_FINISHED "2"
_Static_assert(RQ_QUEUED == 0 && RQ_INFLIGHT == 1 && RQ_COMPLETED == 2 && RQ_DEAD == 3 &&
                   RQ_CANCELLED == 4 && RQ_NSTATES == 5,
               "the SQLite file stores rq_state_t's numbers: add states, never renumber");

/* Reads only: 0 when the file is new or a retryd database this version
 * can use; -EINVAL (not ours, too new, not a database) or -EIO with err. */
int schema_check_owner(sqlite3 *db, char *err, size_t errlen);
/* 0, or -EINVAL (not ours, or too new) / -EIO with err set. */
int schema_migrate(sqlite3 *db, char *err, size_t errlen);
/* The same, up to version target only (1 to SCHEMA_VERSION): how tests
 * make the file an older retryd left behind. A file already past target
 * is left as it is. */
int schema_migrate_to(sqlite3 *db, int target, char *err, size_t errlen);

#endif
