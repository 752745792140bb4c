/* healthcheck: `retryd healthcheck`, for container HEALTHCHECKs.
 *
 * A short-lived process that reads the same configuration (flags and
 * RETRYD_* environment), asks the running retryd's GET /_retryd/health on
 * its --listen address (a wildcard address is reached on loopback), and
 * exits 0 on 200, 1 otherwise. Needs no shell or tools in the image.
 * Blocking is fine here: this process has no loop. */
#ifndef RETRYD_HEALTHCHECK_H
#define RETRYD_HEALTHCHECK_H

#include "proxy/config.h"

int healthcheck_run(const config_t *cfg);

#endif
