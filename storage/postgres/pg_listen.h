/* pg_listen: hears what other replicas tell through PostgreSQL's
 * LISTEN/NOTIFY, on a connection and a thread of its own.
 *
 * A listening connection must sit idle to be told anything, and the
 * storage thread's connection is busy with batches or waits on the store's
 * condition variable, not on a socket: so one more connection per replica,
 * read by a thread that polls its socket and nothing else. Payloads are
 * handed to on_payload on that thread, as they come. A connection that
 * broke is made again with pg_conn's backoff; whenever the thread starts
 * listening (the first time, and after every reconnect) it calls
 * on_payload with NULL: notifications may have been missed, look at
 * everything again. pg_listen_stop() returns once the thread has ended;
 * on_payload is never called after it. */
#ifndef RETRYD_PG_LISTEN_H
#define RETRYD_PG_LISTEN_H

typedef struct pg_listen_s pg_listen_t;
typedef void (*pg_payload_cb)(void *arg, const char *payload);

/* Listens on channel (a plain identifier) of the database at url. 0, or a
 * negative errno when the thread cannot start; a database that cannot be
 * reached is not an error here, only retried. */
int pg_listen_start(pg_listen_t **out, const char *url, const char *channel,
                    pg_payload_cb on_payload, void *arg);
void pg_listen_stop(pg_listen_t *l);

#endif
