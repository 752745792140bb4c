/* Fuzz target: the upstream's Retry-After header, proxy/queue/retry_policy.c.
 *
 * The input is one header value as an upstream could send it: delay-seconds
 * or an HTTP-date in any of its three forms, or garbage. Whatever it says,
 * the parse is -1 (not a Retry-After) or a wait >= 0, and the delay the
 * scheduler uses stays in the contract: the upstream's wait clamped to
 * 1 s .. --max-age, or --retry-interval when there is none, and the next
 * attempt never later than the request's deadline. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "proxy/config.h"
#include "proxy/queue/retry_policy.h"

/* A fixed "now" (2026-07-14T03:33:20Z) keeps every run reproducible; a date
 * in the past and one in the future are both a few bytes away from it. */
#define FUZZ_NOW_MS INT64_C(1783999999999)

static config_t cfg;

int LLVMFuzzerInitialize(int *argc, char ***argv) {
  (void)argc;
  (void)argv;
  config_defaults(&cfg);
  return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  char *value = malloc(size + 1); /* NUL right after: over-reads show */
  if (value == NULL)
    return 0;
  memcpy(value, data, size);
  value[size] = '\0';

  int64_t wait = retry_policy_parse_retry_after(value, FUZZ_NOW_MS);
  if (wait < -1)
    abort();
  retry_policy_t policy;
  retry_policy_from_config(&policy, &cfg);
  int64_t delay = retry_policy_delay_ms(&policy, 1, value, FUZZ_NOW_MS);
  if (wait < 0 ? delay != (int64_t)cfg.retry_interval_ms
               : (delay < 1000 || delay > (int64_t)cfg.max_age_ms))
    abort();
  int64_t created = FUZZ_NOW_MS - 1000, next = -1;
  if (!retry_policy_next(&policy, 1, created, FUZZ_NOW_MS, value, &next) &&
      (next <= FUZZ_NOW_MS || next > created + (int64_t)cfg.max_age_ms))
    abort();
  free(value);
  return 0;
}
