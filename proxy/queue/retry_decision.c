#include "proxy/queue/retry_decision.h"

bool retry_decide_status_retryable(const retry_on_t *on, int status) {
  return status >= 100 && status < 600 && on->status[status];
}

retry_decision_t retry_decide(const retry_on_t *on, int status, attempt_end_t end) {
  if (status != 0 && retry_decide_status_retryable(on, status))
    return DECISION_RETRY_ANSWER;
  if (status != 0)
    return end == ENDED_WHOLE ? DECISION_FINAL : DECISION_BROKEN_FINAL;
  return on->network ? DECISION_RETRY_NO_ANSWER : DECISION_FAIL_NO_ANSWER;
}

const char *retry_decision_timeout_text(bool head_came) {
  return head_came ? "the answer's body stalled past --upstream-timeout"
                   : "no answer within --upstream-timeout";
}
