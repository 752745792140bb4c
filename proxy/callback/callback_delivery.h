/* callback_delivery: sends the stored completion notices, durably.
 *
 * Design note. A notice is a row the store committed in the transaction
 * that ended its request (storage/storage_backend.h); this module only
 * reads the due ones and records what each delivery attempt did, so a
 * crash at any point loses no notice: one not yet recorded as delivered is
 * sent again after the restart, with the same webhook-id (receivers dedupe
 * on it; Standard Webhooks promises at-least-once, not exactly-once).
 *
 * Rounds: read up to CALLBACK_BATCH due notices, POST each to its URL
 * through the project's upstream client (an upstream object per notice,
 * for its origin, so http:// and https:// are both the client retryd uses
 * upstream; closed once its attempt is recorded), each within
 * --upstream-timeout, record every outcome, and look again when the next
 * is due, at least every second (a request's end queues its notice without
 * telling this module). A 2xx answer delivers a notice; anything else, or
 * no answer, makes it due again after a backoff (1 s, doubling, at most
 * --retry-interval), until it is older than --max-age: then it is given up
 * (state failed) and logged. Each notice is signed the Standard Webhooks
 * way (callback_sign.h) when --callback-secret is set.
 *
 * Lifecycle: callback_delivery_start() once the store is open (NULL when
 * the store keeps no notices) → callback_delivery_stop() before the store
 * closes: transfers in flight are dropped (their notices stay due), and the
 * object frees itself once its last handle closed and its last storage job
 * came back. Loop thread only. */
#ifndef RETRYD_CALLBACK_DELIVERY_H
#define RETRYD_CALLBACK_DELIVERY_H

struct app_s;
typedef struct callback_delivery_s callback_delivery_t;

/* NULL when the store keeps no notices, or out of memory (logged). */
callback_delivery_t *callback_delivery_start(struct app_s *app);
void callback_delivery_stop(callback_delivery_t *d);

#endif
