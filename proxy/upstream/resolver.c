#include "proxy/upstream/resolver.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

struct resolver_job_s {
  resolver_t *owner; /* NULL once abandoned: the thread frees the job */
  char host[256];
  char port[8];
  int status;
  struct addrinfo *res;
  bool finished;
};

/* Guards every job's owner and finished fields, between the lookup threads
 * and the loop; held only for a few stores, never across getaddrinfo(). */
static pthread_mutex_t resolver_mu = PTHREAD_MUTEX_INITIALIZER;

static void *resolver_thread(void *arg) {
  resolver_job_t *job = arg;
  struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};
  struct addrinfo *res = NULL;
  int status = getaddrinfo(job->host, job->port, &hints, &res);
  pthread_mutex_lock(&resolver_mu);
  resolver_t *owner = job->owner;
  if (owner != NULL) {
    job->status = status;
    job->res = status == 0 ? res : NULL;
    job->finished = true;
    /* Under the lock: the owner closes its handle only after it has
     * abandoned the job under this same lock. */
    uv_async_send(&owner->async);
  }
  pthread_mutex_unlock(&resolver_mu);
  if (owner == NULL) {
    if (status == 0)
      freeaddrinfo(res);
    free(job);
  }
  return NULL;
}

static void resolver_async_cb(uv_async_t *a) {
  resolver_t *r = a->data;
  pthread_mutex_lock(&resolver_mu);
  resolver_job_t *job = r->job;
  bool finished = job != NULL && job->finished;
  if (finished)
    r->job = NULL;
  pthread_mutex_unlock(&resolver_mu);
  if (!finished)
    return;
  int status = job->status;
  struct addrinfo *res = job->res;
  free(job);
  r->done(r, status, res);
}

int resolver_init(resolver_t *r, uv_loop_t *loop, resolver_done_cb done) {
  memset(r, 0, sizeof(*r));
  r->done = done;
  int rc = uv_async_init(loop, &r->async, resolver_async_cb);
  r->async.data = r;
  return rc;
}

int resolver_start(resolver_t *r, const char *host, const char *port) {
  if (r->job != NULL)
    return UV_EBUSY;
  resolver_job_t *job = calloc(1, sizeof(*job));
  if (job == NULL)
    return UV_ENOMEM;
  size_t hlen = strlen(host), plen = strlen(port);
  if (hlen >= sizeof(job->host) || plen >= sizeof(job->port)) {
    free(job);
    return UV_EINVAL;
  }
  memcpy(job->host, host, hlen + 1);
  memcpy(job->port, port, plen + 1);
  job->owner = r;
  pthread_attr_t attr;
  pthread_attr_init(&attr);
  pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
  pthread_t t;
  int rc = pthread_create(&t, &attr, resolver_thread, job);
  pthread_attr_destroy(&attr);
  if (rc != 0) {
    free(job);
    return UV_EAGAIN;
  }
  r->job = job;
  return 0;
}

bool resolver_busy(const resolver_t *r) {
  return r->job != NULL;
}

const char *resolver_strerror(int status) {
  return gai_strerror(status);
}

void resolver_close(resolver_t *r, uv_close_cb cb) {
  pthread_mutex_lock(&resolver_mu);
  resolver_job_t *job = r->job;
  r->job = NULL;
  bool finished = job != NULL && job->finished;
  if (job != NULL && !finished)
    job->owner = NULL; /* its thread frees it */
  pthread_mutex_unlock(&resolver_mu);
  if (finished) {
    if (job->res != NULL)
      freeaddrinfo(job->res);
    free(job);
  }
  uv_close((uv_handle_t *)&r->async, cb);
}
