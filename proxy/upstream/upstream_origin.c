#include "proxy/upstream/upstream_origin.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>

static int copy_span(char *out, size_t outlen, const char *p, size_t len) {
  if (len >= outlen)
    return -1;
  memcpy(out, p, len);
  out[len] = '\0';
  return 0;
}

int upstream_origin_parse(upstream_origin_t *o, const char *url) {
  memset(o, 0, sizeof(*o));
  const char *auth, *default_port;
  if (strncmp(url, "http://", 7) == 0) {
    auth = url + 7;
    default_port = "80";
  } else if (strncmp(url, "https://", 8) == 0) {
    auth = url + 8;
    default_port = "443";
    o->tls = true;
  } else {
    return -1;
  }
  const char *slash = strchr(auth, '/');
  size_t alen = slash ? (size_t)(slash - auth) : strlen(auth);
  if (alen == 0 || copy_span(o->prefix, sizeof(o->prefix), slash ? slash : "",
                             slash ? strlen(slash) : 0) != 0)
    return -1;
  const char *host = auth, *host_end, *port = NULL;
  if (auth[0] == '[') { /* [IPv6] */
    host = auth + 1;
    host_end = memchr(auth, ']', alen);
    if (host_end == NULL)
      return -1;
    if (host_end + 1 < auth + alen) {
      if (host_end[1] != ':')
        return -1;
      port = host_end + 2;
    }
  } else {
    host_end = memchr(auth, ':', alen);
    if (host_end != NULL)
      port = host_end + 1;
    else
      host_end = auth + alen;
  }
  size_t plen = port ? (size_t)(auth + alen - port) : 0;
  if (copy_span(o->host, sizeof(o->host), host, (size_t)(host_end - host)) != 0 ||
      o->host[0] == '\0' ||
      copy_span(o->port, sizeof(o->port), port ? port : default_port,
                port ? plen : strlen(default_port)) != 0)
    return -1;
  /* curl leaves the default port out of Host; so does retryd. */
  if (port != NULL && strcmp(o->port, default_port) == 0)
    alen = (size_t)(port - 1 - auth);
  if (copy_span(o->authority, sizeof(o->authority), auth, alen) != 0)
    return -1;

  unsigned long pn = 0;
  for (const char *d = o->port; *d; d++) {
    if (*d < '0' || *d > '9')
      return -1;
    pn = pn * 10 + (unsigned long)(*d - '0');
  }
  if (pn == 0 || pn > 65535)
    return -1;
  struct sockaddr_in *v4 = (struct sockaddr_in *)&o->addrs[0];
  struct sockaddr_in6 *v6 = (struct sockaddr_in6 *)&o->addrs[0];
  if (inet_pton(AF_INET, o->host, &v4->sin_addr) == 1) {
    v4->sin_family = AF_INET;
    v4->sin_port = htons((uint16_t)pn);
    o->literal = true;
    o->naddrs = 1;
  } else if (inet_pton(AF_INET6, o->host, &v6->sin6_addr) == 1) {
    v6->sin6_family = AF_INET6;
    v6->sin6_port = htons((uint16_t)pn);
    o->literal = true;
    o->naddrs = 1;
  }
  return 0;
}

bool upstream_origin_fresh(const upstream_origin_t *o, uint64_t now_ms) {
  if (o->literal)
    return true;
  return o->naddrs > 0 && now_ms - o->learned_at < UPSTREAM_ORIGIN_DNS_TTL_MS;
}

int upstream_origin_learn(upstream_origin_t *o, const struct addrinfo *res, uint64_t now_ms) {
  int n = 0;
  for (const struct addrinfo *ai = res; ai != NULL && n < UPSTREAM_ORIGIN_MAX_ADDRS;
       ai = ai->ai_next) {
    if ((ai->ai_family != AF_INET && ai->ai_family != AF_INET6) ||
        ai->ai_addrlen > sizeof(o->addrs[0]))
      continue;
    memcpy(&o->addrs[n++], ai->ai_addr, ai->ai_addrlen);
  }
  if (n > 0) {
    o->naddrs = n;
    o->learned_at = now_ms;
  }
  return n;
}
