/* route: where a request goes, under which policy, and how much may be
 * sent there.
 *
 * A route matches requests by method set, path prefix and, optionally, a
 * header; it names its upstream origin (routes with the same origin share
 * one upstream client), its retry policy (retry_policy.h), which methods
 * it stores, and its flow toward the upstream (route_flow.h: the pause on
 * capacity signals and the rate limit). The routes come from a routes file
 * (proxy/routes_file.h), in the file's order: the first that matches takes
 * the request. The default route takes whatever matches none: the
 * command line's --upstream under the command line's policy, as when no
 * file is given.
 *
 * Flows. A route whose rate limit is partitioned by a header (Recall
 * counts per API key) has one flow per value of it: each pauses and paces
 * on its own. A flow is named by its key, stored with each request
 * (storage/stored_request.h `flow`): "" for the default route, the
 * route's name, or name#<hash of the header's value>. The flows live in
 * flow_table.h.
 *
 * What a route does with a request (forward.c, enqueue.c, attempt.c):
 * first attempts ask flow_take_first() before they are sent (a held one is
 * stored and answered 202 at once), the scheduler asks flow_claimable()
 * before it claims, and every attempt's answer goes to route_note(). The
 * one log line when a flow pauses and when it resumes is written here. A
 * method the route does not store gets the retryable answer relayed as it
 * is, after the route's in-path retries. Loop thread. */
#ifndef RETRYD_ROUTE_H
#define RETRYD_ROUTE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "proxy/config.h"
#include "proxy/queue/retry_policy.h"
#include "proxy/queue/route_flow.h"
#include "proxy/upstream/upstream_types.h"

#define ROUTE_NAME_MAX 32
#define ROUTE_METHODS_MAX 16
#define ROUTE_METHOD_LEN 16
#define ROUTE_PATH_MAX 512
#define ROUTE_HEADER_NAME_MAX 64
#define ROUTE_HEADER_VALUE_MAX 256

/* A set of methods; empty: every method. */
typedef struct {
  char name[ROUTE_METHODS_MAX][ROUTE_METHOD_LEN];
  size_t n;
} route_methods_t;

typedef struct route_s {
  char name[ROUTE_NAME_MAX]; /* "default" for the default route */
  bool is_default;
  int line; /* where the routes file defines it (0: the default route) */

  /* What it matches. */
  route_methods_t methods;
  /* "": every path. A prefix that ends in '/' matches every path that
   * starts with it; one that does not matches whole segments: "/eu" takes
   * "/eu", "/eu/..." and "/eu?...", never "/europe". */
  char path_prefix[ROUTE_PATH_MAX];
  size_t path_prefix_len;
  /* The leading part of the path not sent upstream ("": none): the path
   * prefix, or a shorter part of it (its segments, as above). */
  char strip[ROUTE_PATH_MAX];
  size_t strip_len;
  char header[ROUTE_HEADER_NAME_MAX];        /* "": no header condition */
  char header_value[ROUTE_HEADER_VALUE_MAX]; /* "": the header present is enough */

  /* Where it goes. */
  char upstream_url[2048];
  upstream_t *upstream; /* shared by the routes of one origin; set at start */
  bool owns_upstream;   /* the first route of its origin closes it */

  /* Its policy. */
  retry_policy_t retry;
  route_methods_t stored_methods; /* empty: every method is stored */
  int64_t in_path_retries;        /* a method not stored: tries again this often first */
  int64_t in_path_delay_ms;       /* ... this long apart */
  /* Where the completion notice of a stored request without its own
   * Retryd-Callback goes ("": none): --callback-url, or the route's. */
  char callback_url[2048];

  /* Its flow. */
  flow_policy_t flow_policy;
  char partition_by[ROUTE_HEADER_NAME_MAX]; /* "": one flow for the route */
} route_t;

/* The default route from the command line. */
void route_init_default(route_t *r, const config_t *cfg);
/* A route of a routes file before its settings: the command line's policy
 * and flow, its name, no condition. */
void route_init_named(route_t *r, const config_t *cfg, const char *name, int line);
/* Sets the route's flow policy from its retry policy and rate limit
 * (pause: whether capacity signals pause it). */
void route_set_flow(route_t *r, bool pause, const rate_limit_t *limit, int64_t retry_concurrency);

/* Finds a header's value for route_match: NULL when absent. */
typedef const char *(*route_header_fn)(void *arg, const char *name);

/* Whether r takes a request with this method, origin-form target and
 * headers. */
bool route_matches(const route_t *r, const char *method, const char *target, route_header_fn header,
                   void *arg);
/* The first of routes[0..n-1] that takes the request, else dflt. */
route_t *route_match(route_t *routes, size_t n, route_t *dflt, const char *method,
                     const char *target, route_header_fn header, void *arg);
/* route_header_fn over stored header lines ("Name: value\r\n"...); arg
 * is a route_stored_headers_t. The value is copied into its buffer. */
typedef struct {
  const char *lines;
  size_t len;
  char value[ROUTE_HEADER_VALUE_MAX * 4];
} route_stored_headers_t;
const char *route_stored_header(void *arg, const char *name);

/* The flow key of a request r takes (size STORAGE_FLOW_MAX at least):
 * header is the value of r's partition_by header (NULL: absent). */
void route_flow_key(const route_t *r, const char *partition_value, char *key, size_t keylen);
/* The route's name in a flow key ("" for the default route's flows). */
void route_name_of_flow(const char *key, char *name, size_t namelen);

/* Whether r stores a request of this method when it fails. */
bool route_stores_method(const route_t *r, const char *method);
/* The target to send upstream: target without the route's prefix when it
 * strips it (always starting with '/'). Points into target, or is a new
 * string put in *owned for the caller to free (NULL: out of memory). */
const char *route_upstream_target(const route_t *r, const char *target, char **owned);

/* An attempt's answer on a flow of r: status (0: none), whether it is
 * retryable, the answer's Retry-After (NULL: none), and whether it was
 * the probe. key names the flow in the log line. */
void route_note(const route_t *r, route_flow_t *flow, const char *key, int status, bool retryable,
                const char *retry_after, bool probe, int64_t now);

#endif
