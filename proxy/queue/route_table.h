/* route_table: the routes of this process and their flows.
 *
 * The routes are the routes file's, in its order, and the default route
 * after them (route.h). A flow (route.h: one per route, or one per
 * partition of a partitioned one) is made when a request for it is first
 * seen: sent, held, or found stored (a claim, or the scheduler's look at
 * the stored flows); its state is this process's (a replica paces and
 * pauses its own sends). Flows are few (routes times API keys), and
 * bounded: at most ROUTE_TABLE_FLOWS_MAX; past that an idle one (open,
 * nothing due, nothing in flight) is dropped to make room — a dropped flow
 * is one that a new one would equal — and when none is idle, a new
 * partition shares its route's unpartitioned flow. Loop thread. */
#ifndef RETRYD_ROUTE_TABLE_H
#define RETRYD_ROUTE_TABLE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "proxy/queue/route.h"
#include "storage/stored_request.h"

#define ROUTE_TABLE_FLOWS_MAX 4096

typedef struct {
  char key[STORAGE_FLOW_MAX];
  uint64_t hash;
  route_t *route;
  route_flow_t flow;
  /* The earliest next attempt of its queued rows, as far as this process
   * knows (0: none known): the scheduler claims the flow once it is due. */
  int64_t next_due;
  /* A claim or attempts out on it: it is not dropped. */
  int busy;
} flow_entry_t;

typedef struct route_table_s {
  route_t *routes; /* the file's (owned), n of them */
  size_t n;
  route_t dflt;
  flow_entry_t **flows;
  size_t nflows;
  size_t cap;
} route_table_t;

/* The default route from cfg and no other; routes_file_load() adds the
 * file's. */
void route_table_init(route_table_t *t, const config_t *cfg);
void route_table_free(route_table_t *t);

route_t *route_table_named(route_table_t *t, const char *name);
/* The route of a stored row: the one its flow names, or, when the routes
 * changed since it was stored and none has that name, the one its method,
 * target and headers match now. */
route_t *route_table_route_of_row(route_table_t *t, const stored_request_t *row);
/* The flow with key, made (its route from the key's name, the default
 * route's policy when no route has it) when new; NULL only when out of
 * memory. */
flow_entry_t *route_table_flow(route_table_t *t, const char *key, int64_t now);
/* The flow with key when it exists. */
flow_entry_t *route_table_find_flow(route_table_t *t, const char *key);

#endif
