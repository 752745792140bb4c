/* uuid7: time-ordered identifiers for stored requests (RFC 9562 UUIDv7).
 *
 * 48 bits of Unix milliseconds, then 74 random bits, so ids sort by creation
 * time and cannot be guessed. Random bits come from a generator seeded once
 * from getrandom(); within one millisecond a counter keeps ids increasing.
 * Loop thread only (not thread-safe). */
#ifndef RETRYD_UUID7_H
#define RETRYD_UUID7_H

#include <stdbool.h>
#include <stdint.h>

#define UUID7_STRLEN 36

/* Seeds the generator; call once before the loop runs (it may read
 * /dev/urandom). uuid7_generate() seeds on first use otherwise. */
void uuid7_init(void);
/* Writes 36 characters and a NUL into out. */
void uuid7_generate(char out[UUID7_STRLEN + 1], uint64_t unix_ms);
/* True for the 36-character lowercase hex-and-dashes form. */
bool uuid7_is_valid(const char *s);

#endif
