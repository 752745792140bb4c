#include "proxy/queue/prefer.h"

#include <string.h>
#include <strings.h>

#include "proxy/http/headers.h"
#include "proxy/units.h"

void prefer_parse(const char *value, prefer_t *out) {
  out->respond_async = false;
  out->wait_s = -1;
  if (value == NULL)
    return;
  const char *start;
  size_t len;
  while (headers_list_next(&value, &start, &len)) {
    /* One preference: token [= value] [; params], params ignored. */
    const char *semi = memchr(start, ';', len);
    if (semi != NULL)
      len = (size_t)(semi - start);
    while (len > 0 && (start[len - 1] == ' ' || start[len - 1] == '\t'))
      len--;
    char item[64];
    if (len == 0 || len >= sizeof(item))
      continue;
    memcpy(item, start, len);
    item[len] = '\0';
    if (strcasecmp(item, "respond-async") == 0) {
      out->respond_async = true;
    } else if (strncasecmp(item, "wait", 4) == 0) {
      const char *v = item + 4;
      while (*v == ' ')
        v++;
      if (*v++ != '=')
        continue;
      while (*v == ' ')
        v++;
      if (*v == '"')
        v++;
      char num[24];
      size_t n = strcspn(v, "\" ");
      if (n == 0 || n >= sizeof(num))
        continue;
      memcpy(num, v, n);
      num[n] = '\0';
      uint64_t secs;
      if (units_parse_uint(num, &secs) == 0)
        out->wait_s = secs > 86400 * 365 ? 86400 * 365 : (int64_t)secs;
    }
  }
}
