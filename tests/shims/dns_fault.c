/* dns_fault: an LD_PRELOAD shim that makes name resolution fail the way a
 * DNS outage does, for the tests of retryd's upstream clients.
 *
 * getaddrinfo() is replaced for three reserved test names and passed on
 * to the C library for every other one:
 *   *.dns-stall.test   blocks for RETRYD_TEST_DNS_STALL_MS (default 2000)
 *                      milliseconds, then fails with EAI_AGAIN: a resolver
 *                      that does not answer (the usual outage);
 *   *.nxdomain.test    fails at once with EAI_NONAME;
 *   *.loopback.test    resolves to 127.0.0.1 (a name for TLS tests that
 *                      must not depend on /etc/hosts).
 * Both of retryd's resolvers end in getaddrinfo(): libuv's threadpool for
 * http:// and libcurl's threaded resolver for https://, so one shim covers
 * both clients. Test-only code: never linked into retryd. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <dlfcn.h>
#include <netdb.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

typedef int (*getaddrinfo_fn)(const char *, const char *, const struct addrinfo *,
                              struct addrinfo **);

static int ends_with(const char *s, const char *suffix) {
  size_t n = strlen(s), m = strlen(suffix);
  return n >= m && strcmp(s + n - m, suffix) == 0;
}

static void stall(void) {
  const char *env = getenv("RETRYD_TEST_DNS_STALL_MS");
  long ms = env != NULL ? atol(env) : 2000;
  struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
  while (nanosleep(&ts, &ts) != 0) {
  }
}

int getaddrinfo(const char *node, const char *service, const struct addrinfo *hints,
                struct addrinfo **res) {
  if (node != NULL && ends_with(node, ".dns-stall.test")) {
    stall();
    return EAI_AGAIN;
  }
  if (node != NULL && ends_with(node, ".nxdomain.test"))
    return EAI_NONAME;
  getaddrinfo_fn real = (getaddrinfo_fn)dlsym(RTLD_NEXT, "getaddrinfo");
  if (node != NULL && ends_with(node, ".loopback.test"))
    node = "127.0.0.1";
  return real(node, service, hints, res);
}
