#include "proxy/http/server.h"

#include <netinet/in.h>
#include <stdio.h>
#include <string.h>

#include "proxy/http/http_conn.h"
#include "proxy/log.h"

/* The kernel's accept queue; connections past --max-connections wait here. */
#define SERVER_BACKLOG 4096

static void server_accept_one(server_t *srv) {
  int rc = http_conn_start(&srv->owner, (uv_stream_t *)&srv->listener);
  if (rc != 0 && rc != UV_EAGAIN) {
    log_line_t l;
    log_begin(&l, LOG_WARN, "accept failed");
    log_str(&l, "error", uv_strerror(rc));
    log_end(&l);
  }
}

static void server_connection_cb(uv_stream_t *listener, int status) {
  server_t *srv = listener->data;
  if (status < 0) {
    log_line_t l;
    log_begin(&l, LOG_WARN, "accept failed");
    log_str(&l, "error", uv_strerror(status));
    log_end(&l);
    return;
  }
  if (srv->draining)
    return;
  if (srv->owner.nconns >= srv->owner.cfg->max_connections) {
    /* Not accepting makes libuv stop watching the socket until we do, so
     * the connection waits in the backlog (see server_conn_closed). Closing
     * an idle keep-alive connection makes room for it as soon as that close
     * completes; otherwise it waits for a busy one to finish. */
    srv->accept_waiting = true;
    http_conn_reclaim_idle(&srv->owner);
    return;
  }
  server_accept_one(srv);
}

static void server_conn_closed(http_conn_owner_t *owner);
static void server_listener_closed(uv_handle_t *h);

int server_start(server_t *srv, uv_loop_t *loop, const config_t *cfg, struct app_s *app,
                 http_dispatch_fn dispatch, uint64_t *rejected) {
  memset(srv, 0, sizeof(*srv));
  srv->owner.loop = loop;
  srv->owner.cfg = cfg;
  srv->owner.app = app;
  srv->owner.dispatch = dispatch;
  srv->owner.rejected = rejected;
  srv->owner.closed = server_conn_closed;
  list_init(&srv->owner.conns);
  list_init(&srv->owner.idle);
  int rc = uv_tcp_init(loop, &srv->listener);
  if (rc != 0)
    return rc;
  srv->listener.data = srv;
  rc = uv_tcp_bind(&srv->listener, (const struct sockaddr *)&cfg->listen_addr, 0);
  if (rc == 0)
    rc = uv_listen((uv_stream_t *)&srv->listener, SERVER_BACKLOG, server_connection_cb);
  if (rc != 0) {
    /* A failed start leaves nothing open. */
    uv_close((uv_handle_t *)&srv->listener, server_listener_closed);
    return rc;
  }
  srv->listening = true;
  struct sockaddr_storage ss;
  int len = sizeof(ss);
  char host[64] = "?";
  int port = 0;
  if (uv_tcp_getsockname(&srv->listener, (struct sockaddr *)&ss, &len) == 0) {
    if (ss.ss_family == AF_INET6) {
      uv_ip6_name((struct sockaddr_in6 *)&ss, host, sizeof(host));
      port = ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
    } else {
      uv_ip4_name((struct sockaddr_in *)&ss, host, sizeof(host));
      port = ntohs(((struct sockaddr_in *)&ss)->sin_port);
    }
  }
  char addr[96];
  snprintf(addr, sizeof(addr), ss.ss_family == AF_INET6 ? "[%s]:%d" : "%s:%d", host, port);
  log_line_t l;
  log_begin(&l, LOG_INFO, "listening");
  log_str(&l, "addr", addr);
  log_end(&l);
  return 0;
}

bool server_addr_is_loopback(const struct sockaddr_storage *addr) {
  if (addr->ss_family == AF_INET) {
    const struct sockaddr_in *a = (const struct sockaddr_in *)addr;
    return (ntohl(a->sin_addr.s_addr) >> 24) == 127;
  }
  if (addr->ss_family == AF_INET6) {
    const struct in6_addr *a = &((const struct sockaddr_in6 *)addr)->sin6_addr;
    if (IN6_IS_ADDR_LOOPBACK(a))
      return true;
    return IN6_IS_ADDR_V4MAPPED(a) && a->s6_addr[12] == 127;
  }
  return false;
}

static void server_listener_closed(uv_handle_t *h) {
  (void)h;
}

static void server_check_drained(server_t *srv) {
  if (srv->draining && srv->owner.nconns == 0 && srv->on_drained != NULL) {
    void (*cb)(server_t *) = srv->on_drained;
    srv->on_drained = NULL;
    cb(srv);
  }
}

/* One connection fewer: a client waiting in the backlog may come in. */
static void server_conn_closed(http_conn_owner_t *owner) {
  server_t *srv = (server_t *)owner; /* owner is its first member */
  if (srv->accept_waiting && !srv->draining && owner->nconns < owner->cfg->max_connections) {
    srv->accept_waiting = false;
    server_accept_one(srv);
  }
  server_check_drained(srv);
}

void server_drain(server_t *srv, void (*on_drained)(server_t *srv)) {
  srv->draining = true;
  srv->on_drained = on_drained;
  if (srv->listening) {
    srv->listening = false;
    uv_close((uv_handle_t *)&srv->listener, server_listener_closed);
  }
  http_conn_drain_all(&srv->owner);
  server_check_drained(srv);
}

void server_close_all(server_t *srv) {
  http_conn_close_all(&srv->owner);
}
