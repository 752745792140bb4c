/* request_filter: which stored requests a listing or a bulk action of the
 * control API means, read from the query string of its target.
 *
 * Parameters (each value percent-decoded; `+` stays a plus sign):
 *   state=S[,S...]    one or more states; may repeat (the union)
 *   method=M          exactly this method (case-sensitive, as HTTP says)
 *   path_prefix=/P    the stored target starts with these bytes, as the
 *                     upstream got it; never a '?' (query values are
 *                     secret: a prefix into them would let a reader guess
 *                     them a byte at a time)
 *   idempotency_key=K exactly this Idempotency-Key
 *   last_status=N     the last upstream status the row got (100..599)
 *   created_after=T   created at or after T; created_before=T: before T.
 *                     T is RFC 3339 (2026-12-03T10:00:00Z, an offset, a
 *                     fraction) or Unix seconds (digits only)
 * and, for a listing, limit and cursor; for a bulk action, all=true.
 * Anything else, a value that does not parse, or a parameter other than
 * state given twice is refused, naming the parameter, so that a typo never
 * widens a bulk action. Pure; any thread. */
#ifndef RETRYD_REQUEST_FILTER_H
#define RETRYD_REQUEST_FILTER_H

#include <stdbool.h>
#include <stdint.h>

#include "storage/storage_filter.h"

typedef enum {
  REQUEST_FILTER_LISTING, /* limit and cursor allowed */
  REQUEST_FILTER_BULK,    /* all allowed */
} request_filter_use_t;

typedef struct {
  storage_filter_t filter; /* its strings point into strings */
  bool has_filter;         /* any condition was given */
  bool all;                /* all=true */
  uint64_t limit;          /* 0: not given */
  uint64_t cursor;         /* 0: not given */
  char *strings;           /* owned: the decoded values */
  /* On error: the parameter at fault (client bytes, to be escaped) and
   * what is wrong with it. */
  char param[48];
  const char *message;
} request_filter_t;

/* Reads target's query. 0, -EINVAL (param and message say why) or
 * -ENOMEM. Free with request_filter_free() either way. */
int request_filter_parse(request_filter_t *rf, const char *target, request_filter_use_t use);
void request_filter_free(request_filter_t *rf);

/* "2026-12-03T10:00:00Z", "...+01:00", "....123Z", or Unix seconds, to Unix
 * ms; -EINVAL when it is neither. */
int request_filter_parse_time(const char *s, int64_t *out_ms);

#endif
