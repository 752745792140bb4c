/* deadline_header: Retryd-Deadline, the time after which a stored request
 * is worthless (a bot for a meeting that is over) and is given up, never
 * sent again.
 *
 * The value is an HTTP-date (IMF-fixdate, RFC 850 or asctime) or a number
 * of seconds from when retryd received the request. A value that is
 * neither, or a time already past, is the client's mistake: answered 400
 * (bad_deadline) and neither forwarded nor stored. Pure functions; any
 * thread. */
#ifndef RETRYD_DEADLINE_HEADER_H
#define RETRYD_DEADLINE_HEADER_H

#include <stdbool.h>
#include <stdint.h>

/* *at_ms gets the deadline in Unix ms (0 when value is NULL: none). 0, or
 * -EINVAL (not a date nor seconds) or -ERANGE (already past, or beyond
 * what a time can hold); why gets a sentence for the client. */
int deadline_header_parse(const char *value, int64_t now_ms, int64_t *at_ms, const char **why);

/* The next attempt of a row with deadline deadline_ms (0: none) planned at
 * next_ms: never later than the deadline, so that a row that cannot be
 * delivered in time dies at its deadline, not at the next interval. */
int64_t deadline_header_clamp(int64_t next_ms, int64_t deadline_ms);

/* The last_error of a row given up at its deadline (the claim says the
 * same in storage). */
#define DEADLINE_HEADER_GAVE_UP "deadline: not delivered by its Retryd-Deadline"

#endif
