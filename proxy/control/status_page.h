/* status_page: the on-call HTML status page at GET /_retryd/
 * (docs/status-page.md shows it).
 *
 * Static: no data in the page itself (so it needs no token), no external
 * asset (inline CSS, JS and SVG), no build step. Its script reads
 * /_retryd/stats, /settings, /history and the queued, dead and cancelled
 * listings every 2 s, and /_retryd/requests/<id> (and /response) for the
 * detail view at #<id>. With a token set it asks for one (read or admin)
 * and keeps it in sessionStorage; retry and cancel ask for the admin token
 * when the one it holds is refused. */
#ifndef RETRYD_STATUS_PAGE_H
#define RETRYD_STATUS_PAGE_H

#include <stddef.h>

extern const char status_page_html[];
extern const size_t status_page_html_len;

#endif
