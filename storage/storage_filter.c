#include "storage/storage_filter.h"

#include <string.h>

#include "storage/stored_request.h"

void storage_filter_init(storage_filter_t *f) {
  memset(f, 0, sizeof(*f));
  f->created_from = INT64_MIN;
  f->created_until = INT64_MAX;
}

int storage_states_single(unsigned states) {
  for (int s = 0; s < RQ_NSTATES; s++)
    if (states == (1u << s))
      return s;
  return -1;
}

bool storage_filter_is_state_only(const storage_filter_t *f) {
  return (f->states == 0 || storage_states_single(f->states) >= 0) && f->method == NULL &&
         f->path_prefix == NULL && f->idempotency_key == NULL && f->last_status == 0 &&
         f->created_from == INT64_MIN && f->created_until == INT64_MAX;
}

unsigned storage_bulk_states(storage_bulk_t op) {
  return op == STORAGE_BULK_CANCEL ? 1u << RQ_QUEUED : (1u << RQ_QUEUED) | (1u << RQ_DEAD);
}

void storage_page_end(storage_page_t *page, size_t n, size_t limit, int64_t last_row_seq,
                      int64_t window_end) {
  if (n == limit && n > 0) {
    page->last_seq = last_row_seq;
    page->more = true;
  } else if (window_end != INT64_MAX) {
    page->last_seq = window_end;
    page->more = true;
  } else {
    page->last_seq = n > 0 ? last_row_seq : page->after_seq;
    page->more = false;
  }
}
