/* route: where a request goes and how much may be sent there.
 *
 * Today there is one route, the default: every request, to the --upstream
 * origin, under the command line's policy; its flow (route_flow.h) pauses
 * on capacity signals (--route-pause, on by default) and paces sends to
 * --rate-limit. First attempts ask route_take_first() before they are sent
 * (a held one is stored and answered 202 at once), the scheduler asks
 * route_claimable() before it claims, and every attempt's answer goes to
 * route_note(). The one log line when a route pauses and when it resumes
 * is written here. Loop thread. */
#ifndef RETRYD_ROUTE_H
#define RETRYD_ROUTE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "proxy/config.h"
#include "proxy/queue/route_flow.h"

typedef struct route_s {
  char name[32];
  route_flow_t flow;
} route_t;

void route_init_default(route_t *r, const config_t *cfg, int64_t now);

/* An attempt's answer on r: status (0: none), whether it is retryable, the
 * answer's Retry-After (NULL: none), and whether it was the probe. */
void route_note(route_t *r, int status, bool retryable, const char *retry_after, bool probe,
                int64_t now);

#endif
