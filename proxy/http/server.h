/* server: the listening socket, the connection cap and graceful shutdown.
 *
 * At --max-connections a new connection first takes the place of the idle
 * keep-alive connection that has been idle longest (closed for it, as
 * nginx and HAProxy do); when every connection is busy the server stops
 * accepting: libuv leaves the next connection in the kernel's backlog until
 * one closes, so clients wait instead of being refused. server_drain()
 * stops listening, closes idle connections and lets each busy one finish
 * its answer; on_drained runs when the last one is gone. Loop thread only. */
#ifndef RETRYD_SERVER_H
#define RETRYD_SERVER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "proxy/config.h"
#include "proxy/http/http_conn.h"

typedef struct server_s {
  /* Its connections: http_conn links, counts and lists them here, and
   * reports each close (owner.closed). The first member, so that a
   * callback handed the owner finds its server. */
  http_conn_owner_t owner;
  uv_tcp_t listener;
  bool listening;
  bool accept_waiting; /* a connection waits in the backlog for a free slot */
  bool draining;
  void (*on_drained)(struct server_s *srv);
} server_t;

/* Binds and listens; the bound address is logged ("listening"). 0, or a
 * UV_E* code with nothing left open. */
int server_start(server_t *srv, uv_loop_t *loop, const config_t *cfg, struct app_s *app,
                 http_dispatch_fn dispatch, uint64_t *rejected);
/* on_drained may be NULL: before any connection, draining only closes the
 * listener (how main undoes a start that failed after the server's). */
void server_drain(server_t *srv, void (*on_drained)(server_t *srv));
void server_close_all(server_t *srv);

/* True when addr is a loopback address (127.0.0.0/8, ::1, or ::ffff:127.x),
 * which only this machine can reach; false for 0.0.0.0, :: and the rest. */
bool server_addr_is_loopback(const struct sockaddr_storage *addr);

#endif
