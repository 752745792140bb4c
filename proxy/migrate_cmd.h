/* migrate_cmd: `retryd migrate FROM TO`, the command line around
 * storage_migrate() (storage/storage_migrate.h): moves the queued and dead
 * requests of one queue into another, e.g. from the SQLite file to a
 * PostgreSQL database shared by replicas.
 *
 *   retryd migrate retryd.db 'postgres://retryd@db:5432/retryd'
 *
 * Exit 0 with one line saying how many moved; 1 when a queue cannot be
 * opened, read or written (what was committed before stays, and running it
 * again skips it); 2 for bad usage. */
#ifndef RETRYD_MIGRATE_CMD_H
#define RETRYD_MIGRATE_CMD_H

/* argv[0] is "migrate". */
int migrate_cmd_run(int argc, char **argv);

#endif
