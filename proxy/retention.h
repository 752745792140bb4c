/* retention: finished rows are deleted once --keep-completed has passed.
 *
 * A timer submits a purge job every half retention period (between 1 s and
 * 1 min). The purge deletes completed, dead and cancelled rows last
 * changed before the cutoff — their stored headers carry credentials — and
 * the storage thread then checkpoints the WAL so the deleted bytes leave
 * the log too (secure_delete zeroes them in the database). Loop thread. */
#ifndef RETRYD_RETENTION_H
#define RETRYD_RETENTION_H

struct app_s;

void retention_start(struct app_s *app);
void retention_stop(struct app_s *app);

#endif
