/* storage_filter: which rows a filtered listing or a bulk action takes,
 * and where one bounded step of it stands.
 *
 * The control API builds a storage_filter_t from a query string
 * (proxy/control/request_filter.h); the backends' list_filtered() and
 * bulk() (storage/storage_backend.h) read it, one bounded step at a time,
 * and report where the step ended in a storage_page_t, with the helpers
 * below. Pure data and arithmetic: no backend, no I/O. */
#ifndef RETRYD_STORAGE_FILTER_H
#define RETRYD_STORAGE_FILTER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Which rows a filtered listing or a bulk action looks at (list_filtered(),
 * bulk()): a row matches when it meets every condition set. Made by
 * storage_filter_init() (everything matches); the strings belong to the
 * caller. */
typedef struct {
  unsigned states;             /* bit (1u << state) per state wanted; 0: any state */
  const char *method;          /* NULL: any; else exactly this method */
  const char *path_prefix;     /* NULL: any; else the target starts with these bytes */
  const char *idempotency_key; /* NULL: any; else exactly this key */
  int last_status;             /* 0: any; else the last upstream status the row got */
  int64_t created_from;        /* created_at >= this (Unix ms) */
  int64_t created_until;       /* created_at < this (Unix ms) */
} storage_filter_t;

void storage_filter_init(storage_filter_t *f);
/* Whether f says nothing but, at most, one state: the per-state index then
 * answers a listing page whole (list()). */
bool storage_filter_is_state_only(const storage_filter_t *f);

/* What a bulk action does to each row it matches. */
typedef enum {
  STORAGE_BULK_RETRY,  /* queued or dead -> queued, due now (retry_now()) */
  STORAGE_BULK_CANCEL, /* queued -> cancelled (cancel()) */
} storage_bulk_t;

/* The states a bulk action may change (bits as in storage_filter_t). */
unsigned storage_bulk_states(storage_bulk_t op);

/* Where one bounded step of a filtered listing or a bulk action stands:
 * after_seq in (the row after which it starts: 0 at first, then the last
 * step's last_seq); last_seq and more out. full: a bulk retry stopped at a
 * dead row because --max-queue was reached (more is then false). */
typedef struct {
  int64_t after_seq;
  int64_t last_seq;
  bool more;
  bool full;
} storage_page_t;

/* The state that states names alone, or -1 (none, or several). */
int storage_states_single(unsigned states);
/* Sets page->last_seq and page->more after a step that found n rows (the
 * last one's seq last_row_seq) of at most limit, in a scan that ended at
 * window_end (INT64_MAX: the scan reached the table's end). */
void storage_page_end(storage_page_t *page, size_t n, size_t limit, int64_t last_row_seq,
                      int64_t window_end);

#endif
