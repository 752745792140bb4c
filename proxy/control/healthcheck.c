#include "proxy/control/healthcheck.h"

#include <arpa/inet.h>
#include <curl/curl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>

/* The answer's body is not needed: the status says it all. */
static size_t healthcheck_discard(char *p, size_t size, size_t n, void *userp) {
  (void)p;
  (void)userp;
  return size * n;
}

int healthcheck_run(const config_t *cfg) {
  char host[INET6_ADDRSTRLEN + 2] = "127.0.0.1";
  int port = 0;
  if (cfg->listen_addr.ss_family == AF_INET6) {
    const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)&cfg->listen_addr;
    char ip[INET6_ADDRSTRLEN];
    if (IN6_IS_ADDR_UNSPECIFIED(&a->sin6_addr))
      snprintf(ip, sizeof(ip), "::1");
    else
      inet_ntop(AF_INET6, &a->sin6_addr, ip, sizeof(ip));
    snprintf(host, sizeof(host), "[%s]", ip);
    port = ntohs(a->sin6_port);
  } else {
    const struct sockaddr_in *a = (const struct sockaddr_in *)&cfg->listen_addr;
    if (a->sin_addr.s_addr != htonl(INADDR_ANY))
      inet_ntop(AF_INET, &a->sin_addr, host, sizeof(host));
    port = ntohs(a->sin_port);
  }
  char url[128];
  snprintf(url, sizeof(url), "http://%s:%d/_retryd/health", host, port);
  if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
    return 1;
  CURL *e = curl_easy_init();
  long status = 0;
  CURLcode rc = CURLE_FAILED_INIT;
  if (e != NULL) {
    curl_easy_setopt(e, CURLOPT_URL, url);
    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, 5000L);
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_PROXY, ""); /* never through an HTTP_PROXY */
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, healthcheck_discard);
    rc = curl_easy_perform(e);
    if (rc == CURLE_OK)
      curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &status);
    curl_easy_cleanup(e);
  }
  curl_global_cleanup();
  if (rc != CURLE_OK) {
    fprintf(stderr, "retryd healthcheck: %s: %s\n", url, curl_easy_strerror(rc));
    return 1;
  }
  if (status != 200) {
    fprintf(stderr, "retryd healthcheck: %s answered %ld\n", url, status);
    return 1;
  }
  return 0;
}
