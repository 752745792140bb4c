/* history_ring: the last hour of the status page's chart, as a fixed ring
 * of HISTORY_SLOTS samples (one per sampling period, a minute).
 *
 * A sample holds what happened during its period: requests stored, stored
 * requests delivered and given up, upstream answers by class, and the
 * queued rows counted at its end. The ring never grows: the sixty-first
 * sample overwrites the first. Pure data, no clock, no allocation; one
 * thread at a time (the loop's, in retryd). */
#ifndef RETRYD_HISTORY_RING_H
#define RETRYD_HISTORY_RING_H

#include <stddef.h>
#include <stdint.h>

#define HISTORY_SLOTS 60

/* Upstream answers by class, and attempts that got no answer. */
enum { HISTORY_2XX, HISTORY_3XX, HISTORY_4XX, HISTORY_5XX, HISTORY_NETWORK, HISTORY_NCLASSES };

typedef struct {
  int64_t at_ms;      /* Unix ms the period began */
  int64_t queued;     /* rows queued at its end; -1: not counted (the store did not answer) */
  uint64_t stored;    /* requests committed to the queue */
  uint64_t delivered; /* stored requests that got their final answer */
  uint64_t dead;      /* stored requests given up */
  uint64_t answers[HISTORY_NCLASSES];
} history_sample_t;

typedef struct {
  history_sample_t slots[HISTORY_SLOTS];
  size_t next;  /* the slot the next push writes */
  size_t count; /* samples held, at most HISTORY_SLOTS */
} history_ring_t;

void history_ring_init(history_ring_t *r);
/* Keeps a copy of s, dropping the oldest sample when the ring is full. */
void history_ring_push(history_ring_t *r, const history_sample_t *s);
size_t history_ring_len(const history_ring_t *r);
/* The i-th sample held, oldest first (i < history_ring_len()). */
const history_sample_t *history_ring_at(const history_ring_t *r, size_t i);

#endif
