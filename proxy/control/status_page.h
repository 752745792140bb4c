/* status_page: the one-screen HTML status page at GET /_retryd/.
 *
 * Static: no data in the page itself (so it needs no token), no external
 * assets, no build step. Its script reads /_retryd/stats and
 * /_retryd/requests every 2 s; with --admin-token set it asks for the
 * token once and keeps it in sessionStorage. */
#ifndef RETRYD_STATUS_PAGE_H
#define RETRYD_STATUS_PAGE_H

#include <stddef.h>

extern const char status_page_html[];
extern const size_t status_page_html_len;

#endif
