/* prefer: the parts of RFC 7240's Prefer header that retryd honours.
 *
 * "respond-async" (the default: a stored request is answered 202 at once)
 * and "wait=N" (hold the client up to N seconds for the final answer).
 * Unknown preferences are ignored, as the RFC asks. Pure; any thread. */
#ifndef RETRYD_PREFER_H
#define RETRYD_PREFER_H

#include <stdbool.h>
#include <stdint.h>

typedef struct {
  bool respond_async;
  int64_t wait_s; /* -1: no wait preference */
} prefer_t;

/* value may be NULL. */
void prefer_parse(const char *value, prefer_t *out);

#endif
