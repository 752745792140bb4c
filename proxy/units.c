#include "proxy/units.h"

#include <errno.h>
#include <string.h>

/* Reads the leading digits of s into *out; returns the rest, or NULL when
 * there are no digits or the value overflows. */
static const char *units_digits(const char *s, uint64_t *out) {
  uint64_t v = 0;
  const char *p = s;
  while (*p >= '0' && *p <= '9') {
    uint64_t d = (uint64_t)(*p - '0');
    if (v > (UINT64_MAX - d) / 10)
      return NULL;
    v = v * 10 + d;
    p++;
  }
  if (p == s)
    return NULL;
  *out = v;
  return p;
}

static int units_scale(uint64_t v, uint64_t mult, uint64_t *out) {
  if (mult != 0 && v > UINT64_MAX / mult)
    return -EINVAL;
  *out = v * mult;
  return 0;
}

int units_parse_uint(const char *s, uint64_t *out) {
  uint64_t v;
  const char *rest = units_digits(s, &v);
  if (rest == NULL || *rest != '\0')
    return -EINVAL;
  *out = v;
  return 0;
}

int units_parse_duration_ms(const char *s, uint64_t *out_ms) {
  static const struct {
    const char *unit;
    uint64_t ms;
  } units[] = {{"ms", 1}, {"s", 1000}, {"m", 60000}, {"h", 3600000}};
  uint64_t v;
  const char *rest = units_digits(s, &v);
  if (rest == NULL)
    return -EINVAL;
  for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++)
    if (strcmp(rest, units[i].unit) == 0)
      return units_scale(v, units[i].ms, out_ms);
  return -EINVAL;
}

int units_parse_size(const char *s, uint64_t *out) {
  static const struct {
    const char *unit;
    uint64_t mult;
  } units[] = {{"", 1}, {"B", 1}, {"KiB", 1024}, {"MiB", 1024 * 1024},
               {"GiB", 1024ull * 1024 * 1024}};
  uint64_t v;
  const char *rest = units_digits(s, &v);
  if (rest == NULL)
    return -EINVAL;
  for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++)
    if (strcmp(rest, units[i].unit) == 0)
      return units_scale(v, units[i].mult, out);
  return -EINVAL;
}
