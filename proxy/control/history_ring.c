#include "proxy/control/history_ring.h"

#include <string.h>

void history_ring_init(history_ring_t *r) { memset(r, 0, sizeof(*r)); }

void history_ring_push(history_ring_t *r, const history_sample_t *s) {
  r->slots[r->next] = *s;
  r->next = (r->next + 1) % HISTORY_SLOTS;
  if (r->count < HISTORY_SLOTS)
    r->count++;
}

size_t history_ring_len(const history_ring_t *r) { return r->count; }

const history_sample_t *history_ring_at(const history_ring_t *r, size_t i) {
  /* The oldest sample sits at next once the ring has wrapped, at 0 before. */
  size_t oldest = r->count < HISTORY_SLOTS ? 0 : r->next;
  return &r->slots[(oldest + i) % HISTORY_SLOTS];
}
