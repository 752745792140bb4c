/* upstream: libcurl's multi interface driven by the libuv loop.
 *
 * Design note. curl tells us which sockets to watch (socket callback) and
 * when to call it back (timer callback); we map each socket to a uv_poll_t
 * and the timer to one uv_timer_t, and call curl_multi_socket_action() from
 * their callbacks. After every action we drain curl_multi_info_read() and
 * report finished transfers. Rules kept from experience: a poll handle is
 * closed at once on CURL_POLL_REMOVE (a deferred close could unregister a
 * recycled fd); a poll error is passed as CURL_CSELECT_ERR; a timeout of 0
 * becomes 1 ms so curl is never called from inside its own callback; easy
 * handles are removed only outside curl callbacks.
 *
 * Easy handles are pooled: upstream_easy() returns a reset handle, and the
 * multi handle keeps the connection cache, so connections (HTTP/1.1
 * keep-alive or one HTTP/2 connection) are reused across requests.
 * Loop thread only. */
#ifndef RETRYD_UPSTREAM_H
#define RETRYD_UPSTREAM_H

#include <curl/curl.h>
#include <uv.h>

#include "proxy/config.h"

/* Called once when a started transfer ends (not after upstream_cancel). */
typedef void (*upstream_done_cb)(void *ctx, CURLcode result);

int upstream_init(uv_loop_t *loop, const config_t *cfg);
/* Closes the multi handle and every handle of ours; no transfer may be running. */
void upstream_close(void);

/* A reset easy handle with retryd's fixed options set (protocols, TLS,
 * no redirects, no signals). Give it back with upstream_release(). */
CURL *upstream_easy(void);
void upstream_release(CURL *easy);

int upstream_start(CURL *easy, upstream_done_cb cb, void *ctx);
/* Stops a transfer without calling its done callback. Never from inside a
 * curl callback. */
void upstream_cancel(CURL *easy);
/* Resumes a transfer paused with CURL_WRITEFUNC_PAUSE. Never from inside a
 * curl callback. */
void upstream_unpause(CURL *easy);

#endif
