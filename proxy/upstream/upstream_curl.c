/* upstream_curl: the upstream client for https:// upstreams, libcurl's
 * multi interface driven by the libuv loop.
 *
 * Design note. curl tells us which sockets to watch (socket callback) and
 * when to call it back (timer callback); we map each socket to a uv_poll_t
 * and the timer to one uv_timer_t, and call curl_multi_socket_action() from
 * their callbacks. After every action we drain curl_multi_info_read() and
 * report finished transfers. Rules kept from experience: a poll handle is
 * closed at once on CURL_POLL_REMOVE (a deferred close could unregister a
 * recycled fd); a poll error is passed as CURL_CSELECT_ERR; a timeout of 0
 * becomes 1 ms so curl is never called from inside its own callback; easy
 * handles are removed only outside curl callbacks.
 *
 * Easy handles are pooled with their fixed options set, and the multi
 * handle keeps the connection cache, so connections (HTTP/1.1 keep-alive or
 * one HTTP/2 connection) are reused across requests. Loop thread only. */
#include <curl/curl.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <sys/socket.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "proxy/upstream/answer_parser.h"
#include "proxy/buf.h"
#include "proxy/upstream/upstream_tls.h"
#include "proxy/upstream/upstream_backend.h"

/* Reset easy handles kept for reuse; more are freed. */
#define UPSTREAM_POOL_MAX 256
/* Idle upstream connections kept open for reuse. */
#define UPSTREAM_MAX_IDLE_CONNECTIONS 1024

/* One per descriptor curl asks us to watch.
 *
 * A poll handle must never outlive its descriptor: libuv keys watchers by
 * descriptor number, so a handle left on a number the kernel has handed to
 * someone else (an accepted client, say) takes that descriptor's events and
 * the new owner is never read. Curl closes some descriptors without a word
 * to us (its threaded resolver's socketpair), so only a socket curl opened
 * through our CURLOPT_OPENSOCKETFUNCTION, whose close we therefore see in
 * CURLOPT_CLOSESOCKETFUNCTION, keeps its handle between transfers ("owned":
 * uv_poll_init_socket, uv_poll_start and uv_close each cost epoll_ctl calls,
 * and a kept-alive connection serves transfer after transfer). Any other
 * descriptor's handle is closed at once on CURL_POLL_REMOVE. */
typedef struct {
  uv_poll_t poll;
  curl_socket_t fd;
  int events;  /* what the poll handle watches now */
  bool active; /* curl wants events (between its POLL_IN/OUT and REMOVE) */
  bool owned;  /* opened by upstream_open_socket_cb: we see its close */
  struct curl_upstream_s *up;
  bool polling; /* poll handle initialised (an owned socket gets one lazily) */
} upstream_socket_t;

typedef struct curl_upstream_s curl_upstream_t;

/* One transfer: the easy handle and what its callbacks report to; the base
 * (owner, head, ops, ctx) comes first. */
typedef struct {
  upstream_xfer_t super;
  CURL *easy;
  struct curl_slist *slist;
  buf_t url;
  answer_parser_t answer; /* the head lines, read by retryd's rule */
  char error[CURL_ERROR_SIZE]; /* curl's error buffer, or ours */
} curl_xfer_t;

/* One origin's client: the multi handle (with its connection cache), its
 * timer, the pooled easy handles and the watched sockets by descriptor. */
struct curl_upstream_s {
  upstream_t super;
  uv_loop_t *loop;
  const config_t *cfg;
  char url[sizeof(((config_t *)0)->upstream)];
  CURLM *multi;
  uv_timer_t timer;
  CURL *pool[UPSTREAM_POOL_MAX];
  size_t npool;
  upstream_socket_t **socks; /* by fd */
  size_t nsocks;
  X509_STORE *ca_store; /* read once; every connection's context shares it */
};

static upstream_socket_t *upstream_socket_get(curl_upstream_t *u, curl_socket_t fd) {
  return fd >= 0 && (size_t)fd < u->nsocks ? u->socks[fd] : NULL;
}

static int upstream_socket_put(curl_upstream_t *u, curl_socket_t fd, upstream_socket_t *s) {
  if ((size_t)fd >= u->nsocks) {
    size_t n = u->nsocks ? u->nsocks : 64;
    while (n <= (size_t)fd)
      n *= 2;
    upstream_socket_t **p = realloc(u->socks, n * sizeof(*p));
    if (p == NULL)
      return -1;
    for (size_t i = u->nsocks; i < n; i++)
      p[i] = NULL;
    u->socks = p;
    u->nsocks = n;
  }
  u->socks[fd] = s;
  return 0;
}

static void curl_xfer_finish(curl_xfer_t *x, CURLcode result);

static void upstream_check_done(curl_upstream_t *u) {
  CURLMsg *msg;
  int left;
  while ((msg = curl_multi_info_read(u->multi, &left)) != NULL) {
    if (msg->msg != CURLMSG_DONE)
      continue;
    curl_xfer_t *x = NULL;
    curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&x);
    CURLcode result = msg->data.result;
    curl_multi_remove_handle(u->multi, msg->easy_handle);
    if (x != NULL)
      curl_xfer_finish(x, result);
  }
}

static void upstream_action(curl_upstream_t *u, curl_socket_t fd, int flags) {
  int running;
  curl_multi_socket_action(u->multi, fd, flags, &running);
  upstream_check_done(u);
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
  if (status < 0) {
    /* libuv stopped the handle on the error. Not CURL_CSELECT_ERR: curl
     * would fail the transfer without reading what had already arrived (a
     * head and part of a body before a reset), and an answer the upstream
     * gave would look like none and be sent again. Let curl read: it finds
     * the data, then the error. */
    s->events = 0;
    flags = CURL_CSELECT_IN | CURL_CSELECT_OUT;
  }
  if (events & UV_READABLE)
    flags |= CURL_CSELECT_IN;
  if (events & UV_WRITABLE)
    flags |= CURL_CSELECT_OUT;
  upstream_action(s->up, s->fd, flags);
}

static void upstream_timer_cb(uv_timer_t *t) {
  upstream_action(t->data, CURL_SOCKET_TIMEOUT, 0);
}

static void upstream_poll_closed(uv_handle_t *h) {
  free(h->data);
}

/* Forgets fd's entry; its poll handle (if any) stops at once. */
static void upstream_socket_drop(curl_upstream_t *u, curl_socket_t fd) {
  upstream_socket_t *s = upstream_socket_get(u, fd);
  if (s == NULL)
    return;
  u->socks[fd] = NULL;
  if (s->polling)
    uv_close((uv_handle_t *)&s->poll, upstream_poll_closed);
  else
    free(s);
}

static upstream_socket_t *upstream_socket_new(curl_upstream_t *u, curl_socket_t fd, bool owned) {
  upstream_socket_t *s = calloc(1, sizeof(*s));
  if (s == NULL)
    return NULL;
  s->fd = fd;
  s->owned = owned;
  s->up = u;
  if (upstream_socket_put(u, fd, s) != 0) {
    free(s);
    return NULL;
  }
  return s;
}

static int upstream_socket_cb(CURL *easy, curl_socket_t fd, int what, void *userp, void *socketp) {
  (void)easy;
  (void)socketp;
  curl_upstream_t *u = userp;
  upstream_socket_t *s = upstream_socket_get(u, fd);
  if (what == CURL_POLL_REMOVE) {
    if (s != NULL && !s->owned) {
      upstream_socket_drop(u, fd);
    } else if (s != NULL) {
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
  if (s == NULL && (s = upstream_socket_new(u, fd, false)) == NULL)
    return -1;
  if (!s->polling) {
    if (uv_poll_init_socket(u->loop, &s->poll, fd) != 0) {
      u->socks[fd] = NULL;
      free(s);
      return -1;
    }
    s->poll.data = s;
    s->polling = true;
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

/* curl opens every upstream connection here, so the socket is known to be
 * closed through upstream_close_socket_cb. An entry still on this number
 * belonged to a descriptor curl closed on its own before saying
 * CURL_POLL_REMOVE; it goes before the new socket is watched. */
static curl_socket_t upstream_open_socket_cb(void *clientp, curlsocktype purpose,
                                             struct curl_sockaddr *addr) {
  curl_upstream_t *u = clientp;
  if (purpose != CURLSOCKTYPE_IPCXN)
    return CURL_SOCKET_BAD;
  curl_socket_t fd = socket(addr->family, addr->socktype | SOCK_CLOEXEC, addr->protocol);
  if (fd < 0)
    return CURL_SOCKET_BAD;
  upstream_socket_drop(u, fd);
  if (upstream_socket_new(u, fd, true) == NULL) {
    close(fd);
    return CURL_SOCKET_BAD;
  }
  return fd;
}

/* curl is done with a socket: its poll handle goes first (uv_close stops
 * it at once), then the descriptor. */
static int upstream_close_socket_cb(void *clientp, curl_socket_t fd) {
  upstream_socket_drop(clientp, fd);
  return close(fd);
}

static int upstream_timer_set_cb(CURLM *multi, long timeout_ms, void *userp) {
  (void)multi;
  curl_upstream_t *u = userp;
  if (timeout_ms < 0) {
    uv_timer_stop(&u->timer);
  } else {
    /* 0 means "now"; acting now would re-enter curl from its callback. */
    uv_timer_start(&u->timer, upstream_timer_cb, timeout_ms == 0 ? 1 : (uint64_t)timeout_ms, 0);
  }
  return 0;
}

static void curl_upstream_closed(uv_handle_t *h) {
  free(h->data);
}

static upstream_t *curl_create(uv_loop_t *loop, const config_t *cfg, const char *url, char *err,
                               size_t errlen) {
  curl_upstream_t *u = calloc(1, sizeof(*u));
  if (u == NULL || strlen(url) >= sizeof(u->url)) {
    free(u);
    snprintf(err, errlen, "out of memory");
    return NULL;
  }
  /* Reference-counted by libcurl: one per upstream is fine. */
  if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
    free(u);
    snprintf(err, errlen, "libcurl could not start");
    return NULL;
  }
  u->loop = loop;
  u->cfg = cfg;
  memcpy(u->url, url, strlen(url) + 1);
  u->ca_store = upstream_tls_ca_store(cfg->upstream_ca, err, errlen);
  if (u->ca_store == NULL) {
    curl_global_cleanup();
    free(u);
    return NULL;
  }
  u->multi = curl_multi_init();
  if (u->multi == NULL) {
    X509_STORE_free(u->ca_store);
    curl_global_cleanup();
    free(u);
    snprintf(err, errlen, "libcurl could not start");
    return NULL;
  }
  uv_timer_init(loop, &u->timer);
  u->timer.data = u;
  curl_multi_setopt(u->multi, CURLMOPT_SOCKETFUNCTION, upstream_socket_cb);
  curl_multi_setopt(u->multi, CURLMOPT_SOCKETDATA, u);
  curl_multi_setopt(u->multi, CURLMOPT_TIMERFUNCTION, upstream_timer_set_cb);
  curl_multi_setopt(u->multi, CURLMOPT_TIMERDATA, u);
  curl_multi_setopt(u->multi, CURLMOPT_PIPELINING, (long)CURLPIPE_MULTIPLEX);
  curl_multi_setopt(u->multi, CURLMOPT_MAXCONNECTS, (long)UPSTREAM_MAX_IDLE_CONNECTIONS);
  return &u->super;
}

static void curl_close(upstream_t *up) {
  curl_upstream_t *u = (curl_upstream_t *)up;
  for (size_t i = 0; i < u->npool; i++)
    curl_easy_cleanup(u->pool[i]);
  u->npool = 0;
  /* Closing the cached connections calls the close-socket callback,
   * which closes their poll handles; any left are closed here. */
  curl_multi_cleanup(u->multi);
  u->multi = NULL;
  for (size_t i = 0; i < u->nsocks; i++)
    upstream_socket_drop(u, (curl_socket_t)i);
  free(u->socks);
  u->socks = NULL;
  u->nsocks = 0;
  X509_STORE_free(u->ca_store); /* contexts still alive hold their own reference */
  u->ca_store = NULL;
  curl_global_cleanup();
  /* The object goes with its timer, the last handle. */
  uv_close((uv_handle_t *)&u->timer, curl_upstream_closed);
}

/* Each new TLS connection's context gets the CA store read at start-up:
 * libcurl would otherwise read and parse the CA file for every connection,
 * on the loop (CAINFO and CAPATH are unset below so it reads nothing). */
static CURLcode upstream_ssl_ctx_cb(CURL *easy, void *ssl_ctx, void *userp) {
  (void)easy;
  curl_upstream_t *u = userp;
  SSL_CTX_set1_cert_store(ssl_ctx, u->ca_store);
  return CURLE_OK;
}

static void upstream_set_fixed_options(curl_upstream_t *u, CURL *easy) {
  const config_t *cfg = u->cfg;
  curl_easy_setopt(easy, CURLOPT_NOSIGNAL, 1L);
  /* A transfer removed while its name lookup runs (a timeout, a client
   * gone) would otherwise wait on the loop for libcurl's resolver thread to
   * return: seconds, under a DNS outage. Quick exit leaves the thread to
   * finish and free itself. */
  curl_easy_setopt(easy, CURLOPT_QUICK_EXIT, 1L);
  curl_easy_setopt(easy, CURLOPT_PROTOCOLS_STR, "http,https");
  curl_easy_setopt(easy, CURLOPT_FOLLOWLOCATION, 0L);
  curl_easy_setopt(easy, CURLOPT_PATH_AS_IS, 1L);
  curl_easy_setopt(easy, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_2TLS);
  curl_easy_setopt(easy, CURLOPT_HTTP_CONTENT_DECODING, 0L);
  curl_easy_setopt(easy, CURLOPT_SSL_VERIFYPEER, 1L);
  curl_easy_setopt(easy, CURLOPT_SSL_VERIFYHOST, 2L);
  curl_easy_setopt(easy, CURLOPT_CAINFO, NULL);
  curl_easy_setopt(easy, CURLOPT_CAPATH, NULL);
  curl_easy_setopt(easy, CURLOPT_SSL_CTX_FUNCTION, upstream_ssl_ctx_cb);
  curl_easy_setopt(easy, CURLOPT_SSL_CTX_DATA, u);
  curl_easy_setopt(easy, CURLOPT_CONNECTTIMEOUT_MS, (long)cfg->upstream_timeout_ms);
  curl_easy_setopt(easy, CURLOPT_TCP_KEEPALIVE, 1L);
  /* Only ever the configured upstream, never through a proxy named in the
   * environment (invariant 5); it also spares curl a getenv() per request. */
  curl_easy_setopt(easy, CURLOPT_PROXY, "");
  /* And no no_proxy/NO_PROXY lookup in the environment per transfer. */
  curl_easy_setopt(easy, CURLOPT_NOPROXY, "*");
  curl_easy_setopt(easy, CURLOPT_OPENSOCKETFUNCTION, upstream_open_socket_cb);
  curl_easy_setopt(easy, CURLOPT_OPENSOCKETDATA, u);
  curl_easy_setopt(easy, CURLOPT_CLOSESOCKETFUNCTION, upstream_close_socket_cb);
  curl_easy_setopt(easy, CURLOPT_CLOSESOCKETDATA, u);
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

static CURL *upstream_easy(curl_upstream_t *u) {
  CURL *easy;
  if (u->npool > 0) {
    easy = u->pool[--u->npool];
  } else {
    easy = curl_easy_init();
    if (easy == NULL)
      return NULL;
    upstream_set_fixed_options(u, easy);
  }
  return easy;
}

static void upstream_release(curl_upstream_t *u, CURL *easy) {
  if (easy == NULL)
    return;
  if (u->npool < UPSTREAM_POOL_MAX) {
    upstream_clear_request_options(easy);
    u->pool[u->npool++] = easy;
  } else {
    curl_easy_cleanup(easy);
  }
}

/* ---- the request on an easy handle ----------------------------------- */

static int slist_add(struct curl_slist **list, const char *line) {
  struct curl_slist *n = curl_slist_append(*list, line);
  if (n == NULL)
    return -1;
  *list = n;
  return 0;
}

/* Whether the lines hold a field with this name. */
static bool has_field(const char *lines, size_t len, const char *name) {
  size_t nlen = strlen(name);
  const char *p = lines, *end = lines + len;
  while (p < end) {
    const char *eol = memchr(p, '\n', (size_t)(end - p));
    if (eol == NULL)
      eol = end;
    if ((size_t)(eol - p) > nlen && p[nlen] == ':' && strncasecmp(p, name, nlen) == 0)
      return true;
    p = eol + 1;
  }
  return false;
}

static int curl_request_slist(const upstream_request_t *r, struct curl_slist **list) {
  buf_t line;
  buf_init(&line, r->headers_len + 2);
  const char *p = r->headers, *end = r->headers + r->headers_len;
  int rc = 0;
  while (rc == 0 && p < end) {
    const char *eol = memchr(p, '\n', (size_t)(end - p));
    size_t len = eol ? (size_t)(eol - p) : (size_t)(end - p);
    size_t l = len;
    if (l > 0 && p[l - 1] == '\r')
      l--;
    buf_reset(&line);
    rc = buf_append(&line, p, l);
    /* "Name:" with nothing after it would delete curl's own field; curl
     * sends an empty value for "Name;". */
    if (rc == 0 && line.len > 0 && line.data[line.len - 1] == ':')
      line.data[line.len - 1] = ';';
    else if (rc == 0 && line.len > 1 && line.data[line.len - 1] == ' ' &&
             line.data[line.len - 2] == ':') {
      line.data[line.len - 2] = ';';
      line.len--;
      line.data[line.len] = '\0';
    }
    if (rc == 0 && line.len > 0)
      rc = slist_add(list, line.data);
    p += len + 1;
  }
  buf_free(&line);
  /* Empty overrides stop curl adding defaults the client did not send. */
  if (rc == 0)
    rc = slist_add(list, "Expect:");
  if (rc == 0 && !has_field(r->headers, r->headers_len, "accept"))
    rc = slist_add(list, "Accept:");
  if (rc == 0 && !has_field(r->headers, r->headers_len, "content-type"))
    rc = slist_add(list, "Content-Type:");
  return rc;
}

static int curl_request_setup(curl_xfer_t *x, const upstream_request_t *r) {
  CURL *e = x->easy;
  curl_upstream_t *u = (curl_upstream_t *)x->super.owner;
  if (buf_append_str(&x->url, u->url) != 0 || buf_append_str(&x->url, r->target) != 0)
    return -1;
  if (curl_request_slist(r, &x->slist) != 0)
    return -1;
  curl_easy_setopt(e, CURLOPT_URL, x->url.data);
  curl_easy_setopt(e, CURLOPT_HTTPHEADER, x->slist);
  if (strcmp(r->method, "HEAD") == 0) {
    curl_easy_setopt(e, CURLOPT_NOBODY, 1L);
  } else if (r->body != NULL) {
    curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)r->body_len);
    curl_easy_setopt(e, CURLOPT_POSTFIELDS, r->body);
    if (strcmp(r->method, "POST") != 0)
      curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, r->method);
  } else if (strcmp(r->method, "GET") != 0) {
    curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, r->method);
  }
  return 0;
}

/* ---- curl's callbacks, translated ------------------------------------ */

/* The head passed retryd's rule: the caller may act on it. */
static int curl_answer_head(answer_parser_t *p) {
  curl_xfer_t *x = p->owner;
  if (x->super.ops->head(x->super.ctx) != 0) {
    snprintf(p->error, sizeof(p->error), "the answer could not be relayed");
    return -1;
  }
  return 0;
}

/* Never called: libcurl frames the body, only head lines are fed. */
static int curl_answer_body(answer_parser_t *p, const char *at, size_t len) {
  (void)at;
  (void)len;
  snprintf(p->error, sizeof(p->error), "unexpected body bytes in the head");
  return -1;
}

static const answer_parser_ops_t curl_answer_ops = {
    .head = curl_answer_head,
    .body = curl_answer_body,
};

/* Each head line goes through the same parse as an http:// answer's, so a
 * head libcurl would accept but retryd's rule refuses stops the transfer
 * before the caller sees it. */
static size_t curl_header_cb(char *line, size_t size, size_t nitems, void *userp) {
  curl_xfer_t *x = userp;
  size_t len = size * nitems;
  if (answer_parser_head_line(&x->answer, line, len) == HEAD_ERROR) {
    answer_parser_error(&x->answer); /* the reason, kept for curl_xfer_finish */
    return 0;
  }
  return len;
}

static size_t curl_write_cb(char *data, size_t size, size_t nmemb, void *userp) {
  curl_xfer_t *x = userp;
  size_t len = size * nmemb;
  if (len == 0)
    return 0;
  switch (x->super.ops->body(x->super.ctx, data, len)) {
  case UPSTREAM_TAKEN:
    return len;
  case UPSTREAM_PAUSE:
    /* curl keeps this data and hands it over again after the unpause. */
    return CURL_WRITEFUNC_PAUSE;
  default:
    return 0;
  }
}

static void curl_xfer_free(curl_xfer_t *x) {
  upstream_release((curl_upstream_t *)x->super.owner, x->easy);
  curl_slist_free_all(x->slist);
  buf_free(&x->url);
  free(x);
}

static void curl_xfer_finish(curl_xfer_t *x, CURLcode result) {
  const upstream_ops_t *ops = x->super.ops;
  void *ctx = x->super.ctx;
  char error[CURL_ERROR_SIZE];
  /* Our refusal of the head first: curl then writes its own words for
   * the stop ("Failed writing header") into its error buffer. */
  const char *why = x->answer.error[0] ? x->answer.error : x->error[0] ? x->error : curl_easy_strerror(result);
  snprintf(error, sizeof(error), "%s", why);
  curl_xfer_free(x);
  if (result == CURLE_OK)
    ops->done(ctx, UPSTREAM_DONE, NULL);
  else
    ops->done(ctx, result == CURLE_OPERATION_TIMEDOUT ? UPSTREAM_TIMEDOUT : UPSTREAM_FAILED,
              error);
}

static upstream_xfer_t *curl_send(upstream_t *up, const upstream_request_t *r,
                                  response_head_t *head, const upstream_ops_t *ops, void *ctx) {
  curl_upstream_t *u = (curl_upstream_t *)up;
  curl_xfer_t *x = calloc(1, sizeof(*x));
  if (x == NULL)
    return NULL;
  upstream_xfer_init(&x->super, up, head, ops, ctx);
  answer_parser_start(&x->answer, head, strcmp(r->method, "HEAD") == 0, &curl_answer_ops, x);
  buf_init(&x->url, strlen(u->url) + strlen(r->target) + 1);
  x->easy = upstream_easy(u);
  if (x->easy == NULL || curl_request_setup(x, r) != 0) {
    curl_xfer_free(x);
    return NULL;
  }
  CURL *e = x->easy;
  curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, curl_header_cb);
  curl_easy_setopt(e, CURLOPT_HEADERDATA, x);
  curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, curl_write_cb);
  curl_easy_setopt(e, CURLOPT_WRITEDATA, x);
  curl_easy_setopt(e, CURLOPT_ERRORBUFFER, x->error);
  curl_easy_setopt(e, CURLOPT_PRIVATE, (char *)x);
  if (curl_multi_add_handle(u->multi, e) != CURLM_OK) {
    curl_xfer_free(x);
    return NULL;
  }
  return &x->super;
}

static void curl_cancel(upstream_xfer_t *base) {
  curl_xfer_t *x = (curl_xfer_t *)base;
  curl_multi_remove_handle(((curl_upstream_t *)base->owner)->multi, x->easy);
  curl_xfer_free(x);
}

static void curl_resume(upstream_xfer_t *base) {
  curl_xfer_t *x = (curl_xfer_t *)base;
  curl_easy_pause(x->easy, CURLPAUSE_CONT);
  /* Unpausing can deliver buffered data and even finish the transfer. */
  upstream_check_done((curl_upstream_t *)base->owner);
}

const upstream_backend_t upstream_curl_backend = {
    .create = curl_create,
    .close = curl_close,
    .send = curl_send,
    .cancel = curl_cancel,
    .resume = curl_resume,
};
