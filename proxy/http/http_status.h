/* http_status: reason phrases for the status line retryd writes. */
#ifndef RETRYD_HTTP_STATUS_H
#define RETRYD_HTTP_STATUS_H

/* The standard phrase, or "Unknown" for a code without one (a reason phrase
 * is informative only: RFC 9112 4). Any thread. */
const char *http_status_reason(int status);

#endif
