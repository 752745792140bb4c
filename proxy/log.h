/* log: JSON lines on stderr, written by a thread of their own.
 *
 * The loop thread must never block on a write, and stderr can be a slow pipe
 * or a full disk. A log line is built in a small buffer on the caller's
 * thread and handed to the writer thread through a bounded queue; when the
 * queue is full the line is dropped and counted, and the count is reported
 * in the next line that fits. Any thread may log once log_init() returned;
 * log_close() flushes and joins the writer.
 *
 * Secret header values never reach this module: callers pass only fields
 * that are safe (see headers_is_secret()). */
#ifndef RETRYD_LOG_H
#define RETRYD_LOG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "proxy/buf.h"
#include "proxy/log_level.h"

typedef struct {
  buf_t buf;
  bool active; /* false when the level is filtered out */
  bool broken; /* an append failed: the line is dropped whole, never cut */
} log_line_t;

int log_init(log_level_t level);
void log_close(void);
bool log_enabled(log_level_t level);

void log_begin(log_line_t *l, log_level_t level, const char *msg);
void log_str(log_line_t *l, const char *key, const char *value);
void log_strn(log_line_t *l, const char *key, const char *value, size_t len);
void log_int(log_line_t *l, const char *key, int64_t value);
void log_ms(log_line_t *l, const char *key, double ms);
void log_bool(log_line_t *l, const char *key, bool value);
void log_end(log_line_t *l);

/* One-call form for a message with no fields. */
void log_msg(log_level_t level, const char *msg);

#endif
