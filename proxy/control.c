#include "proxy/control.h"

#include <string.h>

static bool control_path_is(const request_t *req, const char *path) {
  size_t plen = strcspn(req->target.data, "?");
  return plen == strlen(path) && memcmp(req->target.data, path, plen) == 0;
}

void control_handle(struct app_s *app, http_conn_t *c, request_t *req) {
  (void)app;
  if (control_path_is(req, "/_retryd/health")) {
    if (strcmp(req->method, "GET") != 0 && strcmp(req->method, "HEAD") != 0) {
      http_conn_error(c, 405, "method_not_allowed", "use GET");
      return;
    }
    static const char body[] = "{\"status\":\"ok\"}\n";
    http_conn_respond(c, 200, "Cache-Control: no-store\r\n", "application/json", body,
                      sizeof(body) - 1);
    return;
  }
  http_conn_error(c, 404, "not_found", "no such control endpoint");
}
