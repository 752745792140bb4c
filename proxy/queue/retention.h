/* retention: finished rows are deleted once --keep-completed has passed,
 * and the file gives the space back.
 *
 * A timer starts a purge every half retention period (between 1 s and
 * 1 min), unless the last one is still going. A purge is a series of
 * slices, each a short transaction of its own on the storage thread
 * (store.h, STORE_PURGE): completed, dead and cancelled rows last changed
 * before the cutoff are deleted oldest first — their stored headers carry
 * credentials, zeroed as they go — then free pages beyond a quarter of the
 * file are given back (incremental vacuum), and the last slice checkpoints
 * the WAL with TRUNCATE, so the file tracks its live data and what was
 * deleted leaves the log. The next slice is submitted when
 * the last one is back, so the commits of clients go between them and
 * none waits for more than one slice. One log line per purge that did
 * anything. Loop thread. */
#ifndef RETRYD_RETENTION_H
#define RETRYD_RETENTION_H

struct app_s;

void retention_start(struct app_s *app);
void retention_stop(struct app_s *app);

#endif
