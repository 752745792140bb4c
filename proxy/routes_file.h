/* routes_file: the routes of a --config file, read at start-up.
 *
 * The format is libconfig's (Debian's libconfig): typed values, comments,
 * and every setting's line known, so a mistake is reported as
 * FILE:LINE: route "NAME": FIELD: what is wrong. One list, `routes`, of
 * groups; every field but `name` is optional, and a route's policy starts
 * from the command line's:
 *
 *   routes = (
 *     { name = "recall-bots";            # [A-Za-z0-9_.-], unique
 *       methods = [ "POST" ];            # match: any of these (default: all)
 *       path_prefix = "/api/v1/bot/";    # match: the path starts with it
 *       header = "X-Region: eu";         # match: header present (and equal)
 *       upstream = "https://us-east-1.recall.ai";  # default: --upstream
 *       strip_prefix = false;            # send the path without path_prefix
 *       retry_on = "5xx,429,network";    # as --retry-on
 *       retry_interval = "30s";          # as --retry-interval
 *       backoff = "fixed";               # or "exponential" (with jitter)
 *       backoff_cap = "10m";             # exponential: the longest wait
 *       max_attempts = 0;  max_age = "24h";
 *       store_methods = [ "POST" ];      # stored when retryable (default: all)
 *       in_path_retries = 2;             # a method not stored: tries first
 *       in_path_delay = "500ms";
 *       rate_limit = "120/1m";           # as --rate-limit, for this route
 *       rate_limit_by = "Authorization"; # one limit per value of the header
 *       pause = true; }                  # as --route-pause, for this route
 *   );
 *
 * Unknown fields are errors (a typo would otherwise be ignored). Called
 * once, before the loop starts. */
#ifndef RETRYD_ROUTES_FILE_H
#define RETRYD_ROUTES_FILE_H

#include <stddef.h>

#include "proxy/config.h"
#include "proxy/queue/route_table.h"

#define ROUTES_FILE_MAX 64

/* Reads cfg->config_file into t's routes (t initialised by
 * route_table_init). CONFIG_OK, or CONFIG_ERROR with one line in err. */
int routes_file_load(route_table_t *t, const config_t *cfg, char *err, size_t errlen);

#endif
