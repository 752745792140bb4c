#include "storage/postgres/pg_listen.h"

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/eventfd.h>
#include <unistd.h>
#include <uv.h>

#include "storage/postgres/pg_conn.h"

/* How long the thread sleeps between tries while the database is down (the
 * tries themselves keep pg_conn's backoff), and the longest poll: a bound
 * on noticing a connection that died without a word. */
#define PG_LISTEN_DOWN_WAIT_MS 1000
#define PG_LISTEN_POLL_MS 10000
/* NOTIFY payloads are shorter than 8000 bytes. */
#define PG_LISTEN_PAYLOAD_MAX 8192

struct pg_listen_s {
  pg_conn_t *c;
  char listen_sql[96];
  pg_payload_cb on_payload;
  void *arg;
  uv_thread_t thread;
  int stop_fd; /* an eventfd: readable once stop was asked */
  atomic_bool stopping;
};

static int pg_listen_session(pg_conn_t *c, void *arg) {
  pg_listen_t *l = arg;
  return pg_conn_exec(c, l->listen_sql);
}

/* Waits until fd (when >= 0) is readable, stop is asked, or ms passed. */
static void pg_listen_wait(pg_listen_t *l, int fd, int ms) {
  struct pollfd fds[2] = {{.fd = l->stop_fd, .events = POLLIN}, {.fd = fd, .events = POLLIN}};
  (void)poll(fds, fd >= 0 ? 2 : 1, ms);
}

static void pg_listen_main(void *arg) {
  pg_listen_t *l = arg;
  pthread_setname_np(pthread_self(), "retryd-listen");
  bool listening = false;
  char *payload = malloc(PG_LISTEN_PAYLOAD_MAX);
  while (payload != NULL && !atomic_load(&l->stopping)) {
    if (!pg_conn_ready(l->c)) {
      listening = false;
      pg_listen_wait(l, -1, PG_LISTEN_DOWN_WAIT_MS);
      continue;
    }
    if (!listening) {
      listening = true;
      l->on_payload(l->arg, NULL);
    }
    pg_listen_wait(l, pg_conn_socket(l->c), PG_LISTEN_POLL_MS);
    int rc;
    while (!atomic_load(&l->stopping) &&
           (rc = pg_conn_next_notification(l->c, payload, PG_LISTEN_PAYLOAD_MAX)) == 1)
      l->on_payload(l->arg, payload);
  }
  free(payload);
}

int pg_listen_start(pg_listen_t **out, const char *url, const char *channel,
                    pg_payload_cb on_payload, void *arg) {
  *out = NULL;
  pg_listen_t *l = calloc(1, sizeof(*l));
  if (l == NULL)
    return -ENOMEM;
  snprintf(l->listen_sql, sizeof(l->listen_sql), "LISTEN %s", channel);
  l->on_payload = on_payload;
  l->arg = arg;
  atomic_init(&l->stopping, false);
  l->stop_fd = eventfd(0, EFD_CLOEXEC);
  if (l->stop_fd < 0) {
    free(l);
    return -errno;
  }
  /* The thread connects: the database may be down now, and a connect may
   * take up to its timeout. */
  if (pg_conn_open_later(&l->c, url, pg_listen_session, l) != 0) {
    close(l->stop_fd);
    free(l);
    return -ENOMEM;
  }
  int rc = uv_thread_create(&l->thread, pg_listen_main, l);
  if (rc != 0) {
    pg_conn_close(l->c);
    close(l->stop_fd);
    free(l);
    return rc;
  }
  *out = l;
  return 0;
}

void pg_listen_stop(pg_listen_t *l) {
  if (l == NULL)
    return;
  atomic_store(&l->stopping, true);
  uint64_t one = 1;
  (void)!write(l->stop_fd, &one, sizeof(one));
  uv_thread_join(&l->thread);
  pg_conn_close(l->c);
  close(l->stop_fd);
  free(l);
}
