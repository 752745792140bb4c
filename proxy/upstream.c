#include "proxy/upstream.h"

#include <stdbool.h>
#include <stdlib.h>
#include <unistd.h>

#include "proxy/log.h"

/* Reset easy handles kept for reuse; more are freed. */
#define UPSTREAM_POOL_MAX 256
/* Idle upstream connections kept open for reuse. */
#define UPSTREAM_MAX_IDLE_CONNECTIONS 1024

/* One per upstream socket, kept from its first transfer until curl closes
 * it (CURLOPT_CLOSESOCKETFUNCTION), not per transfer: uv_poll_init_socket,
 * uv_poll_start and uv_close each cost epoll_ctl calls (and an ioctl), and
 * a kept-alive connection is reused by transfer after transfer. */
typedef struct {
  uv_poll_t poll;
  curl_socket_t fd;
  int events;  /* what the poll handle watches now */
  bool active; /* curl wants events (between its POLL_IN/OUT and REMOVE) */
} upstream_socket_t;

typedef struct {
  upstream_done_cb cb;
  void *ctx;
} upstream_xfer_t;

static struct {
  uv_loop_t *loop;
  const config_t *cfg;
  CURLM *multi;
  uv_timer_t timer;
  CURL *pool[UPSTREAM_POOL_MAX];
  size_t npool;
  upstream_socket_t **socks; /* by fd */
  size_t nsocks;
  bool ready;
} U;

static upstream_socket_t *upstream_socket_get(curl_socket_t fd) {
  return fd >= 0 && (size_t)fd < U.nsocks ? U.socks[fd] : NULL;
}

static int upstream_socket_put(curl_socket_t fd, upstream_socket_t *s) {
  if ((size_t)fd >= U.nsocks) {
    size_t n = U.nsocks ? U.nsocks : 64;
    while (n <= (size_t)fd)
      n *= 2;
    upstream_socket_t **p = realloc(U.socks, n * sizeof(*p));
    if (p == NULL)
      return -1;
    for (size_t i = U.nsocks; i < n; i++)
      p[i] = NULL;
    U.socks = p;
    U.nsocks = n;
  }
  U.socks[fd] = s;
  return 0;
}

static void upstream_check_done(void) {
  CURLMsg *msg;
  int left;
  while ((msg = curl_multi_info_read(U.multi, &left)) != NULL) {
    if (msg->msg != CURLMSG_DONE)
      continue;
    CURL *easy = msg->easy_handle;
    CURLcode result = msg->data.result;
    upstream_xfer_t *x = NULL;
    curl_easy_getinfo(easy, CURLINFO_PRIVATE, (char **)&x);
    curl_multi_remove_handle(U.multi, easy);
    if (x != NULL) {
      upstream_xfer_t done = *x;
      free(x);
      curl_easy_setopt(easy, CURLOPT_PRIVATE, NULL);
      done.cb(done.ctx, result);
    }
  }
}

static void upstream_action(curl_socket_t fd, int flags) {
  int running;
  curl_multi_socket_action(U.multi, fd, flags, &running);
  upstream_check_done();
}

static void upstream_poll_cb(uv_poll_t *p, int status, int events) {
  upstream_socket_t *s = p->data;
  if (!s->active) {
    /* An idle kept-alive connection stirred (the upstream closed it, most
     * likely): stop watching; curl's check before reuse will see it. */
    uv_poll_stop(&s->poll);
    s->events = 0;
    return;
  }
  int flags = 0;
  if (status < 0)
    flags = CURL_CSELECT_ERR;
  if (events & UV_READABLE)
    flags |= CURL_CSELECT_IN;
  if (events & UV_WRITABLE)
    flags |= CURL_CSELECT_OUT;
  upstream_action(s->fd, flags);
}

static void upstream_timer_cb(uv_timer_t *t) {
  (void)t;
  upstream_action(CURL_SOCKET_TIMEOUT, 0);
}

static void upstream_poll_closed(uv_handle_t *h) {
  free(h->data);
}

static int upstream_socket_cb(CURL *easy, curl_socket_t fd, int what, void *userp, void *socketp) {
  (void)easy;
  (void)userp;
  (void)socketp;
  upstream_socket_t *s = upstream_socket_get(fd);
  if (what == CURL_POLL_REMOVE) {
    if (s != NULL) {
      s->active = false;
      /* Readable interest stays on (no epoll_ctl now, none at the next
       * transfer); writable would fire at once, so it goes. */
      if (s->events & UV_WRITABLE) {
        uv_poll_stop(&s->poll);
        s->events = 0;
      }
    }
    return 0;
  }
  if (s == NULL) {
    s = malloc(sizeof(*s));
    if (s == NULL)
      return -1;
    s->fd = fd;
    s->events = 0;
    if (uv_poll_init_socket(U.loop, &s->poll, fd) != 0) {
      free(s);
      return -1;
    }
    s->poll.data = s;
    if (upstream_socket_put(fd, s) != 0) {
      uv_close((uv_handle_t *)&s->poll, upstream_poll_closed);
      return -1;
    }
  }
  s->active = true;
  int events = 0;
  if (what == CURL_POLL_IN || what == CURL_POLL_INOUT)
    events |= UV_READABLE;
  if (what == CURL_POLL_OUT || what == CURL_POLL_INOUT)
    events |= UV_WRITABLE;
  if (events != s->events) {
    uv_poll_start(&s->poll, events, upstream_poll_cb);
    s->events = events;
  }
  return 0;
}

/* curl is done with a socket: its poll handle goes first (uv_close stops
 * it at once), then the descriptor. */
static int upstream_close_socket_cb(void *clientp, curl_socket_t fd) {
  (void)clientp;
  upstream_socket_t *s = upstream_socket_get(fd);
  if (s != NULL) {
    U.socks[fd] = NULL;
    uv_close((uv_handle_t *)&s->poll, upstream_poll_closed);
  }
  return close(fd);
}

static int upstream_timer_set_cb(CURLM *multi, long timeout_ms, void *userp) {
  (void)multi;
  (void)userp;
  if (timeout_ms < 0) {
    uv_timer_stop(&U.timer);
  } else {
    /* 0 means "now"; acting now would re-enter curl from its callback. */
    uv_timer_start(&U.timer, upstream_timer_cb, timeout_ms == 0 ? 1 : (uint64_t)timeout_ms, 0);
  }
  return 0;
}

int upstream_init(uv_loop_t *loop, const config_t *cfg) {
  if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
    return UV_ENOMEM;
  U.loop = loop;
  U.cfg = cfg;
  U.multi = curl_multi_init();
  if (U.multi == NULL)
    return UV_ENOMEM;
  uv_timer_init(loop, &U.timer);
  curl_multi_setopt(U.multi, CURLMOPT_SOCKETFUNCTION, upstream_socket_cb);
  curl_multi_setopt(U.multi, CURLMOPT_TIMERFUNCTION, upstream_timer_set_cb);
  curl_multi_setopt(U.multi, CURLMOPT_PIPELINING, (long)CURLPIPE_MULTIPLEX);
  curl_multi_setopt(U.multi, CURLMOPT_MAXCONNECTS, (long)UPSTREAM_MAX_IDLE_CONNECTIONS);
  U.ready = true;
  return 0;
}

static void upstream_timer_closed(uv_handle_t *h) {
  (void)h;
}

void upstream_close(void) {
  if (!U.ready)
    return;
  for (size_t i = 0; i < U.npool; i++)
    curl_easy_cleanup(U.pool[i]);
  U.npool = 0;
  /* Closing the cached connections calls the close-socket callback,
   * which closes their poll handles; any left are closed here. */
  curl_multi_cleanup(U.multi);
  U.multi = NULL;
  for (size_t i = 0; i < U.nsocks; i++)
    if (U.socks[i] != NULL)
      uv_close((uv_handle_t *)&U.socks[i]->poll, upstream_poll_closed);
  free(U.socks);
  U.socks = NULL;
  U.nsocks = 0;
  uv_close((uv_handle_t *)&U.timer, upstream_timer_closed);
  curl_global_cleanup();
  U.ready = false;
}

static void upstream_set_fixed_options(CURL *easy) {
  const config_t *cfg = U.cfg;
  curl_easy_setopt(easy, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(easy, CURLOPT_PROTOCOLS_STR, "http,https");
  curl_easy_setopt(easy, CURLOPT_FOLLOWLOCATION, 0L);
  curl_easy_setopt(easy, CURLOPT_PATH_AS_IS, 1L);
  curl_easy_setopt(easy, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_2TLS);
  curl_easy_setopt(easy, CURLOPT_HTTP_CONTENT_DECODING, 0L);
  curl_easy_setopt(easy, CURLOPT_SSL_VERIFYPEER, 1L);
  curl_easy_setopt(easy, CURLOPT_SSL_VERIFYHOST, 2L);
  if (cfg->upstream_ca[0] != '\0')
    curl_easy_setopt(easy, CURLOPT_CAINFO, cfg->upstream_ca);
  curl_easy_setopt(easy, CURLOPT_CONNECTTIMEOUT_MS, (long)cfg->upstream_timeout_ms);
  curl_easy_setopt(easy, CURLOPT_TCP_KEEPALIVE, 1L);
  /* Only ever the configured upstream, never through a proxy named in the
   * environment (invariant 5); it also spares curl a getenv() per request. */
  curl_easy_setopt(easy, CURLOPT_PROXY, "");
  /* And no no_proxy/NO_PROXY lookup in the environment per transfer. */
  curl_easy_setopt(easy, CURLOPT_NOPROXY, "*");
  curl_easy_setopt(easy, CURLOPT_CLOSESOCKETFUNCTION, upstream_close_socket_cb);
}

/* Back to a clean slate for the next request without curl_easy_reset():
 * only the options a request sets are cleared; the fixed ones stay. */
static void upstream_clear_request_options(CURL *easy) {
  curl_easy_setopt(easy, CURLOPT_HTTPHEADER, NULL);
  curl_easy_setopt(easy, CURLOPT_CUSTOMREQUEST, NULL);
  curl_easy_setopt(easy, CURLOPT_POSTFIELDS, NULL);
  curl_easy_setopt(easy, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)-1);
  curl_easy_setopt(easy, CURLOPT_HTTPGET, 1L); /* also clears NOBODY and POST */
  curl_easy_setopt(easy, CURLOPT_HEADERFUNCTION, NULL);
  curl_easy_setopt(easy, CURLOPT_HEADERDATA, NULL);
  curl_easy_setopt(easy, CURLOPT_WRITEFUNCTION, NULL);
  curl_easy_setopt(easy, CURLOPT_WRITEDATA, NULL);
  curl_easy_setopt(easy, CURLOPT_ERRORBUFFER, NULL);
  curl_easy_setopt(easy, CURLOPT_PRIVATE, NULL);
}

CURL *upstream_easy(void) {
  CURL *easy;
  if (U.npool > 0) {
    easy = U.pool[--U.npool];
  } else {
    easy = curl_easy_init();
    if (easy == NULL)
      return NULL;
    upstream_set_fixed_options(easy);
  }
  return easy;
}

void upstream_release(CURL *easy) {
  if (easy == NULL)
    return;
  if (U.npool < UPSTREAM_POOL_MAX) {
    upstream_clear_request_options(easy);
    U.pool[U.npool++] = easy;
  } else {
    curl_easy_cleanup(easy);
  }
}

int upstream_start(CURL *easy, upstream_done_cb cb, void *ctx) {
  upstream_xfer_t *x = malloc(sizeof(*x));
  if (x == NULL)
    return UV_ENOMEM;
  x->cb = cb;
  x->ctx = ctx;
  curl_easy_setopt(easy, CURLOPT_PRIVATE, (char *)x);
  if (curl_multi_add_handle(U.multi, easy) != CURLM_OK) {
    curl_easy_setopt(easy, CURLOPT_PRIVATE, NULL);
    free(x);
    return UV_EINVAL;
  }
  return 0;
}

void upstream_cancel(CURL *easy) {
  if (easy == NULL)
    return;
  upstream_xfer_t *x = NULL;
  curl_easy_getinfo(easy, CURLINFO_PRIVATE, (char **)&x);
  curl_multi_remove_handle(U.multi, easy);
  curl_easy_setopt(easy, CURLOPT_PRIVATE, NULL);
  free(x);
}

void upstream_unpause(CURL *easy) {
  curl_easy_pause(easy, CURLPAUSE_CONT);
  /* Unpausing can deliver buffered data and even finish the transfer. */
  upstream_check_done();
}
