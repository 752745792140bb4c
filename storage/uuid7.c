#include "storage/uuid7.h"

#include <stdio.h>
#include <string.h>
#include <sys/random.h>

static struct {
  bool seeded;
  uint64_t s[2]; /* xorshift128+ state */
  uint64_t last_ms;
  uint16_t counter; /* the 12-bit rand_a field, increasing within one ms */
} G;

static uint64_t uuid7_next(void) {
  uint64_t a = G.s[0];
  const uint64_t b = G.s[1];
  G.s[0] = b;
  a ^= a << 23;
  a ^= a >> 17;
  a ^= b ^ (b >> 26);
  G.s[1] = a;
  return a + b;
}

static void uuid7_seed(void) {
  uint64_t seed[2] = {0x9e3779b97f4a7c15ull, 0xbf58476d1ce4e5b9ull};
  /* getrandom() on /dev/urandom's pool does not block once the pool is up,
   * which it is long before a daemon starts. */
  if (getrandom(seed, sizeof(seed), GRND_NONBLOCK) != (ssize_t)sizeof(seed)) {
    FILE *f = fopen("/dev/urandom", "rb");
    if (f != NULL) {
      if (fread(seed, sizeof(seed), 1, f) != 1)
        seed[0] ^= (uint64_t)(uintptr_t)&seed;
      fclose(f);
    }
  }
  G.s[0] = seed[0] | 1;
  G.s[1] = seed[1];
  G.seeded = true;
}

void uuid7_init(void) {
  if (!G.seeded)
    uuid7_seed();
}

void uuid7_generate(char out[UUID7_STRLEN + 1], uint64_t unix_ms) {
  if (!G.seeded)
    uuid7_seed();
  if (unix_ms > G.last_ms) {
    G.last_ms = unix_ms;
    G.counter = (uint16_t)(uuid7_next() & 0x3ff); /* room to count up */
  } else {
    unix_ms = G.last_ms; /* the clock stepped back: stay ordered */
    if (++G.counter > 0xfff) {
      G.last_ms = ++unix_ms;
      G.counter = 0;
    }
  }
  uint8_t b[16];
  for (int i = 0; i < 6; i++)
    b[i] = (uint8_t)(unix_ms >> (40 - 8 * i));
  b[6] = (uint8_t)(0x70 | ((G.counter >> 8) & 0x0f));
  b[7] = (uint8_t)(G.counter & 0xff);
  uint64_t r = uuid7_next();
  for (int i = 8; i < 16; i++)
    b[i] = (uint8_t)(r >> (8 * (i - 8)));
  b[8] = (uint8_t)(0x80 | (b[8] & 0x3f)); /* variant 10 */
  static const char hex[] = "0123456789abcdef";
  int o = 0;
  for (int i = 0; i < 16; i++) {
    if (i == 4 || i == 6 || i == 8 || i == 10)
      out[o++] = '-';
    out[o++] = hex[b[i] >> 4];
    out[o++] = hex[b[i] & 0xf];
  }
  out[o] = '\0';
}

bool uuid7_is_valid(const char *s) {
  if (strlen(s) != UUID7_STRLEN)
    return false;
  for (int i = 0; i < UUID7_STRLEN; i++) {
    char c = s[i];
    bool dash = i == 8 || i == 13 || i == 18 || i == 23;
    if (dash ? c != '-' : !((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f')))
      return false;
  }
  return true;
}
