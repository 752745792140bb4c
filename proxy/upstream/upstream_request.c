#include "proxy/upstream/upstream_request.h"

#include <string.h>
#include <strings.h>

int upstream_request_headers(const headers_t *client, buf_t *out) {
  const char *connection = headers_connection_names(client);
  int rc = 0;
  for (size_t i = 0; rc == 0 && i < client->count; i++) {
    const char *name = headers_name(client, i);
    if (headers_is_hop_by_hop(name, connection) || headers_is_retryd_own(name) ||
        strcasecmp(name, "host") == 0 ||
        strcasecmp(name, "content-length") == 0 || strcasecmp(name, "expect") == 0)
      continue;
    rc = buf_append_field(out, name, headers_value(client, i));
  }
  return rc;
}
