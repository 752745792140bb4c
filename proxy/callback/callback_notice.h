/* callback_notice: the JSON body of a completion notice.
 *
 * Standard Webhooks' shape: {"type", "timestamp", "data"}. type is
 * "request.completed", "request.dead" or "request.cancelled"; data holds the
 * request's id, state, attempts, final status (null: none), method and path
 * (query values redacted, as in listings), last_error, and — once completed
 * — the final answer: status, header fields as [name, value] pairs, and its
 * body inline when it is at most a cap (64 KiB, config.h callback_body_max) (as a
 * string when it is UTF-8 text, else as body_base64), with response_url
 * (/_retryd/requests/<id>/response) to fetch it whole either way. Pure;
 * any thread. */
#ifndef RETRYD_CALLBACK_NOTICE_H
#define RETRYD_CALLBACK_NOTICE_H

#include "proxy/buf.h"
#include "storage/stored_request.h"

/* Appends n's body to out: 0, or a buf error (out then holds part of it). */
int callback_notice_json(buf_t *out, const storage_callback_t *n) BUF_MUST_CHECK;

#endif
