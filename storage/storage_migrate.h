/* storage_migrate: moves a queue from one backend to another (`retryd
 * migrate FROM TO`), so switching from the SQLite file to PostgreSQL never
 * means abandoning what is queued.
 *
 * What moves: every unfinished request (queued; inflight ones, left by a
 * retryd that stopped, arrive queued and due at once) and every dead one,
 * each with its id (status URLs keep working), attempts, times, last status
 * and error, and Idempotency-Key. Completed and cancelled requests stay
 * where they were: their final answers were there to read, and expire with
 * --keep-completed. The source is changed only as a retryd start would
 * change it (inflight rows queued again). A request whose id, or whose
 * Idempotency-Key twin, is already in the destination is skipped, so a
 * migration cut short is simply run again.
 *
 * Run it with no retryd on FROM (a SQLite file in use is refused anyway).
 * Blocking; not for the loop thread. */
#ifndef RETRYD_STORAGE_MIGRATE_H
#define RETRYD_STORAGE_MIGRATE_H

#include <stddef.h>
#include <stdint.h>

typedef struct {
  int64_t moved;   /* inserted into the destination */
  int64_t skipped; /* already there (same id) */
} storage_migrate_result_t;

/* 0, or a negative errno with one line in err. */
int storage_migrate(const char *from, const char *to, storage_migrate_result_t *out, char *err,
                    size_t errlen);

#endif
