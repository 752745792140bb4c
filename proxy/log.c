#include "proxy/log.h"

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <uv.h>

#include "lib/list.h"

/* One log line is at most this long; longer values are cut by buf's cap. */
#define LOG_LINE_MAX (16 * 1024)
/* A value is cut to this many bytes, so a few fields always fit a line. */
#define LOG_VALUE_MAX 1024
/* Lines waiting for the writer; past this they are dropped, not buffered. */
#define LOG_QUEUE_MAX (1024 * 1024)

typedef struct {
  list_t link; /* in L.queue, or in the writer's batch */
  size_t len;
  char data[];
} log_entry_t;

static struct {
  bool running;
  log_level_t level;
  uv_thread_t thread;
  uv_mutex_t mu;
  uv_cond_t cond;
  list_t queue; /* lines for the writer, oldest first; under mu */
  size_t queued_bytes;
  uint64_t dropped;
  bool stopping;
} L = {.level = LOG_INFO};

static const char *level_names[] = {"debug", "info", "warn", "error"};

static void log_write_all(const char *p, size_t len) {
  while (len > 0) {
    ssize_t n = write(STDERR_FILENO, p, len);
    if (n < 0) {
      if (errno == EINTR)
        continue;
      return; /* nowhere left to report a failing stderr */
    }
    p += n;
    len -= (size_t)n;
  }
}

static void log_thread_main(void *arg) {
  (void)arg;
  uv_mutex_lock(&L.mu);
  for (;;) {
    while (list_empty(&L.queue) && !L.stopping)
      uv_cond_wait(&L.cond, &L.mu);
    list_t batch;
    list_move_all(&L.queue, &batch);
    L.queued_bytes = 0;
    bool stop = L.stopping;
    uv_mutex_unlock(&L.mu);
    list_foreach_safe(l, &batch) {
      log_entry_t *e = list_entry(l, log_entry_t, link);
      log_write_all(e->data, e->len);
      free(e);
    }
    if (stop)
      return;
    uv_mutex_lock(&L.mu);
  }
}

int log_init(log_level_t level) {
  L.level = level;
  list_init(&L.queue);
  if (uv_mutex_init(&L.mu) != 0 || uv_cond_init(&L.cond) != 0)
    return -ENOMEM;
  int rc = uv_thread_create(&L.thread, log_thread_main, NULL);
  if (rc != 0)
    return rc;
  L.running = true;
  return 0;
}

void log_close(void) {
  if (!L.running)
    return;
  uv_mutex_lock(&L.mu);
  L.stopping = true;
  uv_cond_signal(&L.cond);
  uv_mutex_unlock(&L.mu);
  uv_thread_join(&L.thread);
  uv_cond_destroy(&L.cond);
  uv_mutex_destroy(&L.mu);
  L.running = false;
  L.stopping = false;
}

bool log_enabled(log_level_t level) {
  return level >= L.level;
}

/* Notes a failed append: the line would no longer be one JSON object. */
static void log_put(log_line_t *l, int rc) {
  if (rc != 0)
    l->broken = true;
}

void log_begin(log_line_t *l, log_level_t level, const char *msg) {
  l->active = log_enabled(level);
  l->broken = false;
  buf_init(&l->buf, LOG_LINE_MAX);
  if (!l->active)
    return;
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  struct tm tm;
  gmtime_r(&ts.tv_sec, &tm);
  log_put(l, buf_printf(&l->buf,
                        "{\"ts\":\"%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ\",\"level\":\"%s\",\"msg\":\"",
                        tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min,
                        tm.tm_sec, ts.tv_nsec / 1000000, level_names[level]));
  log_put(l, buf_append_json_escaped(&l->buf, msg, strlen(msg)));
  log_put(l, buf_append(&l->buf, "\"", 1));
}

void log_strn(log_line_t *l, const char *key, const char *value, size_t len) {
  if (!l->active)
    return;
  if (len > LOG_VALUE_MAX)
    len = LOG_VALUE_MAX;
  log_put(l, buf_printf(&l->buf, ",\"%s\":\"", key));
  log_put(l, buf_append_json_escaped(&l->buf, value, len));
  log_put(l, buf_append(&l->buf, "\"", 1));
}

void log_str(log_line_t *l, const char *key, const char *value) {
  if (value == NULL) {
    if (l->active)
      log_put(l, buf_printf(&l->buf, ",\"%s\":null", key));
    return;
  }
  log_strn(l, key, value, strlen(value));
}

void log_int(log_line_t *l, const char *key, int64_t value) {
  if (l->active)
    log_put(l, buf_printf(&l->buf, ",\"%s\":%" PRId64, key, value));
}

void log_ms(log_line_t *l, const char *key, double ms) {
  if (l->active)
    log_put(l, buf_printf(&l->buf, ",\"%s\":%.3f", key, ms));
}

void log_bool(log_line_t *l, const char *key, bool value) {
  if (l->active)
    log_put(l, buf_printf(&l->buf, ",\"%s\":%s", key, value ? "true" : "false"));
}

void log_end(log_line_t *l) {
  if (!l->active) {
    buf_free(&l->buf);
    return;
  }
  if (!L.running) {
    /* Before start-up completes (or after shutdown) there is no loop to
     * protect: write directly. */
    log_put(l, buf_append(&l->buf, "}\n", 2));
    if (!l->broken)
      log_write_all(l->buf.data, l->buf.len);
    buf_free(&l->buf);
    return;
  }
  uv_mutex_lock(&L.mu);
  uint64_t dropped = L.dropped;
  uv_mutex_unlock(&L.mu);
  if (dropped > 0)
    log_put(l, buf_printf(&l->buf, ",\"log_lines_dropped\":%" PRIu64, dropped));
  /* A line over its cap is dropped whole rather than cut into invalid JSON. */
  log_put(l, buf_append(&l->buf, "}\n", 2));
  bool fits = !l->broken;
  log_entry_t *e = fits ? malloc(sizeof(*e) + l->buf.len) : NULL;
  if (e != NULL) {
    e->len = l->buf.len;
    memcpy(e->data, l->buf.data, l->buf.len);
  }
  buf_free(&l->buf);
  uv_mutex_lock(&L.mu);
  if (e == NULL || L.queued_bytes + e->len > LOG_QUEUE_MAX) {
    L.dropped++;
    free(e);
  } else {
    L.dropped -= dropped;
    list_insert_tail(&L.queue, &e->link);
    L.queued_bytes += e->len;
    uv_cond_signal(&L.cond);
  }
  uv_mutex_unlock(&L.mu);
}

void log_msg(log_level_t level, const char *msg) {
  log_line_t l;
  log_begin(&l, level, msg);
  log_end(&l);
}
