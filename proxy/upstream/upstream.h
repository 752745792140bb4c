/* upstream: sending one request to the configured upstream and reading its
 * answer, whatever carries it.
 *
 * Design note. Two clients sit behind this one interface, chosen once at
 * start-up from the upstream's URL and --upstream-http2:
 *  - HTTP/1.1, plain (http://) or over TLS (https://, the default), goes
 *    through retryd's own client (upstream_h1.c, with upstream_tls.c for
 *    OpenSSL) on libuv. Profiling showed about 70% of a proxied request's
 *    instructions inside libcurl's per-transfer work (URL parsing, its
 *    printf, header scans), work a fixed HTTP/1.1 upstream does not need;
 *    the benchmark in bench/ measures the gain.
 *  - HTTP/2 (https:// with --upstream-http2 on) goes through libcurl's
 *    multi interface on the loop (upstream_curl.c), HTTP/2 by ALPN.
 * Both read answers by one rule (answer_parser.c), verify certificates the
 * same way, send the same bytes (method, target, the caller's header lines,
 * Host and Content-Length), keep connections alive, and report the
 * same way, so callers (forward.c, attempt.c) never know which one ran.
 *
 * The caller owns the response_head_t; it is filled in as the answer's
 * head arrives (interim 1xx answers skipped) and ops->head runs once the
 * final head is complete. ops->body gets the body, de-chunked. ops->done
 * runs exactly once unless the transfer is cancelled, after which nothing
 * runs. Loop thread only. */
#ifndef RETRYD_UPSTREAM_H
#define RETRYD_UPSTREAM_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "proxy/config.h"
#include "proxy/upstream/response_head.h"
#include "proxy/stats.h"
#include "proxy/upstream/upstream_types.h"

/* An upstream for url (http:// or https://, as config.c checked it) with
 * the client its scheme and --upstream-http2 choose. Several may live in
 * one process. NULL on failure, with a one-line reason in err. */
upstream_t *upstream_new(uv_loop_t *loop, const config_t *cfg, const char *url, char *err,
                         size_t errlen);
/* Closes every pooled connection; no transfer may be running. The object
 * frees itself once its handles are closed (the loop must run on). */
void upstream_close(upstream_t *u);

/* Starts sending r. r's strings must stay valid until done or cancel.
 * NULL when it could not even start (out of memory). */
upstream_xfer_t *upstream_send(upstream_t *u, const upstream_request_t *r, response_head_t *head,
                               const upstream_ops_t *ops, void *ctx);
/* Counts and logs a resend reported by ops->resent: a network error in
 * stats (with its latency since *sent_ns, which restarts now) and an
 * "upstream_resend" log line. id is the stored request's, or NULL. */
void upstream_note_resent(stats_t *stats, uint64_t *sent_ns, const char *id, const char *method,
                          const char *target, const char *why);
/* Stops a transfer; none of its callbacks runs after this. Never from
 * inside one of its callbacks. */
void upstream_cancel(upstream_xfer_t *x);
/* Goes on after ops->body answered UPSTREAM_PAUSE. Its callbacks may run
 * (and finish the transfer) before this returns. Never from inside one of
 * its callbacks. */
void upstream_resume(upstream_xfer_t *x);

#endif
