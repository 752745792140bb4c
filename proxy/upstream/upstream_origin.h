/* upstream_origin: where a plain-http upstream is — host, port, the Host
 * field's value, the path prefix — and its addresses, looked up off the
 * loop and kept for a minute (as curl keeps its DNS cache), so new
 * connections rarely wait for a lookup. A literal IP address is never
 * looked up. Loop thread. */
#ifndef RETRYD_UPSTREAM_ORIGIN_H
#define RETRYD_UPSTREAM_ORIGIN_H

#include <netdb.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

#define UPSTREAM_ORIGIN_MAX_ADDRS 8
/* How long looked-up addresses are trusted. */
#define UPSTREAM_ORIGIN_DNS_TTL_MS 60000

typedef struct {
  char host[256];      /* a name, or an address without IPv6 brackets */
  char port[8];
  char authority[272]; /* host[:port], the Host field sent upstream */
  char prefix[2048];   /* goes before every target: "" or "/api" */
  struct sockaddr_storage addrs[UPSTREAM_ORIGIN_MAX_ADDRS];
  int naddrs;
  bool literal;        /* host is an IP address: addrs never expire */
  bool tls;            /* https:// */
  uint64_t learned_at; /* uv_now() of the lookup */
} upstream_origin_t;

/* Splits "http[s]://host[:port][/prefix]" as config.c normalised it.
 * 0, or -1 when it is not such a URL. */
int upstream_origin_parse(upstream_origin_t *o, const char *url);
/* Whether addrs may be used now without a lookup. */
bool upstream_origin_fresh(const upstream_origin_t *o, uint64_t now_ms);
/* Keeps a lookup's TCP addresses. Returns how many were kept. */
int upstream_origin_learn(upstream_origin_t *o, const struct addrinfo *res, uint64_t now_ms);

#endif
