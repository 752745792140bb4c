/* resolver: an upstream host's addresses, looked up on a thread of its own
 * that nobody ever waits for.
 *
 * Design note. getaddrinfo() blocks, for as long as the resolver takes: a
 * DNS server that does not answer holds it for the resolver's timeouts
 * (seconds, and more with several servers). libuv's uv_getaddrinfo runs it
 * on the loop's shared four-thread pool, where stalled lookups queue up and
 * the loop cannot end until every one has returned: a DNS outage kept
 * retryd from exiting on SIGTERM. Here each lookup runs on a detached
 * thread, one at a time per resolver (callers wait for the lookup in
 * flight, see upstream_h1.c), and resolver_close() abandons a lookup still
 * running: its thread frees what it found when it returns, and the loop
 * does not wait for it.
 *
 * Lifecycle: resolver_init() on the loop thread, resolver_start() for each
 * lookup (the callback runs on the loop thread), resolver_close() with a
 * close callback (the resolver's memory may go after it). */
#ifndef RETRYD_RESOLVER_H
#define RETRYD_RESOLVER_H

#include <netdb.h>
#include <stdbool.h>
#include <uv.h>

typedef struct resolver_s resolver_t;
typedef struct resolver_job_s resolver_job_t;

/* status: 0, or getaddrinfo's EAI_* code (resolver_strerror says it). res
 * is the caller's to free with freeaddrinfo() (NULL on failure). */
typedef void (*resolver_done_cb)(resolver_t *r, int status, struct addrinfo *res);

struct resolver_s {
  uv_async_t async; /* the thread's "done" reaches the loop here */
  resolver_done_cb done;
  resolver_job_t *job; /* the lookup in flight, or NULL */
  void *data;          /* the owner's */
};

int resolver_init(resolver_t *r, uv_loop_t *loop, resolver_done_cb done);
/* Looks up host:port (TCP). UV_EBUSY while a lookup is in flight. */
int resolver_start(resolver_t *r, const char *host, const char *port);
bool resolver_busy(const resolver_t *r);
const char *resolver_strerror(int status);
/* Abandons a lookup in flight and closes the handle. */
void resolver_close(resolver_t *r, uv_close_cb cb);

#endif
