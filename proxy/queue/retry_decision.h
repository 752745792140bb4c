/* retry_decision: what an attempt's ending means, decided in one place for
 * the first attempt (forward.c) and every retry (attempt.c).
 *
 * An attempt ends with an answer's head or none, and the answer whole or
 * cut. The table (DESIGN.md, --retry-on):
 *   a final status, whole          -> DECISION_FINAL
 *   a retryable status, whole or cut -> DECISION_RETRY_ANSWER (it was that
 *                                     answer, whatever became of its body)
 *   a final status, then cut        -> DECISION_BROKEN_FINAL: the upstream
 *                                     acted on the request, so it is never
 *                                     sent again (that could do it twice)
 *   no answer (refused, reset, TLS, DNS, timeout, a malformed head)
 *                                   -> DECISION_RETRY_NO_ANSWER when
 *                                     the route's retry-on has network, else
 *                                     DECISION_FAIL_NO_ANSWER
 * The words for what happened live here too, so both callers say the same.
 * Pure functions; any thread. */
#ifndef RETRYD_RETRY_DECISION_H
#define RETRYD_RETRY_DECISION_H

#include <stdbool.h>

#include "proxy/config.h"

typedef enum {
  DECISION_FINAL,
  DECISION_RETRY_ANSWER,
  DECISION_BROKEN_FINAL,
  DECISION_RETRY_NO_ANSWER,
  DECISION_FAIL_NO_ANSWER,
} retry_decision_t;

typedef enum {
  ENDED_WHOLE,   /* the answer came whole */
  ENDED_BROKEN,  /* the transfer failed (before or after a head) */
  ENDED_TIMEOUT, /* --upstream-timeout ran out (before or after a head) */
} attempt_end_t;

/* status: the final head's status, 0 when no head came. */
retry_decision_t retry_decide(const retry_on_t *on, int status, attempt_end_t end);
/* Whether an answer with this status is retryable: decided at its head,
 * before its body is read (a retryable one is not relayed). */
bool retry_decide_status_retryable(const retry_on_t *on, int status);
/* What to say when the timeout ended an attempt: before or after a head. */
const char *retry_decision_timeout_text(bool head_came);

#endif
