/* upstream_tls: TLS for retryd's own HTTP/1.1 upstream client, OpenSSL
 * over memory buffers.
 *
 * Design note. OpenSSL never touches the socket: upstream_h1.c reads and
 * writes it with libuv as for plain http, hands the bytes it read to
 * upstream_tls_feed() and sends what upstream_tls_take_out() gives. So the
 * loop never blocks, back-pressure stays the paused parse it already is,
 * and the same llhttp rule reads answers over http and https.
 *
 * The peer is verified as libcurl verifies it: the chain against
 * --upstream-ca or the system CAs, and the name (or IP address) of the
 * upstream URL; SNI carries the name. ALPN offers http/1.1 only (HTTP/2 is
 * libcurl's, --upstream-http2). TLS 1.2 at least. Sessions are resumed on
 * new connections to the same origin.
 *
 * Lifecycle: upstream_tls_ctx_init() once per origin, upstream_tls_new() per
 * connection, upstream_tls_free() when it closes, upstream_tls_ctx_free()
 * last. Loop thread only. */
#ifndef RETRYD_UPSTREAM_TLS_H
#define RETRYD_UPSTREAM_TLS_H

#include <stdbool.h>
#include <stddef.h>

#include "proxy/buf.h"

typedef struct upstream_tls_ctx_s upstream_tls_ctx_t;
typedef struct upstream_tls_s upstream_tls_t;

/* The CAs that verify an upstream: ca_file (--upstream-ca), or "" for the
 * system's bundle (SSL_CERT_FILE, else OpenSSL's default file), read once
 * here. Both https clients use it, so neither reads CA files per
 * connection on the loop. NULL on failure, with err set; free with
 * X509_STORE_free(). */
struct x509_store_st *upstream_tls_ca_store(const char *ca_file, char *err, size_t errlen);

/* host: the name or IP address the certificate must match. ca_file: ""
 * for the system CAs. NULL on failure, with err set. */
upstream_tls_ctx_t *upstream_tls_ctx_new(const char *host, const char *ca_file, char *err,
                                         size_t errlen);
void upstream_tls_ctx_free(upstream_tls_ctx_t *ctx);

/* A client session for one new connection; the ClientHello waits in its
 * output. NULL when out of memory. */
upstream_tls_t *upstream_tls_new(upstream_tls_ctx_t *ctx);
void upstream_tls_free(upstream_tls_t *t);

/* Bytes read from the socket. 0, or -1 when out of memory. */
int upstream_tls_feed(upstream_tls_t *t, const char *data, size_t len);

typedef enum {
  TLS_OK = 0,     /* done (handshake finished / bytes read) */
  TLS_WANT = 1,   /* needs more bytes from the socket */
  TLS_CLOSED = 2, /* the peer ended the session (close_notify) */
  TLS_ERROR = -1, /* failed: upstream_tls_error() says why */
} tls_result_t;

/* Goes on with the handshake; TLS_OK once it is complete. */
tls_result_t upstream_tls_handshake(upstream_tls_t *t);
bool upstream_tls_ready(const upstream_tls_t *t);
/* Plaintext that arrived, up to cap bytes, into out (*n set on TLS_OK). */
tls_result_t upstream_tls_read(upstream_tls_t *t, char *out, size_t cap, size_t *n);
/* Whether decrypted plaintext is already waiting inside the session. */
bool upstream_tls_has_plaintext(const upstream_tls_t *t);
/* Encrypts plaintext into the output. 0, or -1. */
int upstream_tls_write(upstream_tls_t *t, const char *data, size_t len);
/* Moves the bytes to send to the socket (handshake records, encrypted
 * data) to the end of out. 0, or -1 when out is full. */
int upstream_tls_take_out(upstream_tls_t *t, buf_t *out);
/* Why the session failed, for logs and last_error. */
const char *upstream_tls_error(const upstream_tls_t *t);

#endif
