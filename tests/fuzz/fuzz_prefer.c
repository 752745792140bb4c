/* Fuzz target: the Prefer request header (RFC 7240), proxy/queue/prefer.c.
 *
 * The input is one header value as a client could send it. prefer_parse()
 * must never read past the value's NUL, whatever the quoting, and whatever it
 * makes of the value must stay inside the contract of prefer_t: no wait, or a
 * wait of 0 .. one year (what enqueue then caps with --max-wait). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "proxy/queue/prefer.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  /* A heap copy with its NUL right after the bytes, so an over-read is an
   * ASan report instead of a silent look at the next input. */
  char *value = malloc(size + 1);
  if (value == NULL)
    return 0;
  memcpy(value, data, size);
  value[size] = '\0';
  prefer_t p;
  prefer_parse(value, &p);
  if (p.wait_s < -1 || p.wait_s > 86400 * 365)
    abort();
  free(value);
  return 0;
}
