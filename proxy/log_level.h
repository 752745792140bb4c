/* log_level: how much retryd logs (--log-level), a word shared by the log
 * module, which filters lines by it, and config, which parses it. Types
 * only. */
#ifndef RETRYD_LOG_LEVEL_H
#define RETRYD_LOG_LEVEL_H

typedef enum { LOG_DEBUG = 0, LOG_INFO, LOG_WARN, LOG_ERROR } log_level_t;

#endif
