/* units: strict parsers for the durations and sizes of the command line.
 *
 * Durations are an integer and a unit: 250ms, 30s, 5m, 24h. Sizes are an
 * integer with an optional binary unit: 512, 64KiB, 10MiB, 1GiB. Anything
 * else (no digits, a sign, spaces, an unknown unit, overflow) is rejected, so
 * a typo stops start-up instead of becoming a surprising limit. Pure
 * functions; any thread. */
#ifndef RETRYD_UNITS_H
#define RETRYD_UNITS_H

#include <stdint.h>

/* 0 and *out_ms set, or -EINVAL. */
int units_parse_duration_ms(const char *s, uint64_t *out_ms);
/* 0 and *out set, or -EINVAL. */
int units_parse_size(const char *s, uint64_t *out);
/* A non-negative decimal integer without sign or spaces: 0 or -EINVAL. */
int units_parse_uint(const char *s, uint64_t *out);

#endif
