#include "proxy/upstream/upstream_tls.h"

#include <arpa/inet.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct upstream_tls_ctx_s {
  SSL_CTX *ssl_ctx;
  char host[256];
  bool host_is_ip;
  SSL_SESSION *session; /* the newest resumable session, for new connections */
};

struct upstream_tls_s {
  upstream_tls_ctx_t *ctx;
  SSL *ssl;
  BIO *in;  /* what the socket gave, for OpenSSL to read */
  BIO *out; /* what OpenSSL wrote, for the socket */
  bool ready;
  char error[256];
};

/* OpenSSL hands over each session the server issued (TLS 1.3 sends them
 * after the handshake): the newest is kept for the next connection. */
static int tls_new_session_cb(SSL *ssl, SSL_SESSION *session) {
  upstream_tls_ctx_t *ctx = SSL_CTX_get_app_data(SSL_get_SSL_CTX(ssl));
  if (ctx->session != NULL)
    SSL_SESSION_free(ctx->session);
  ctx->session = session;
  return 1; /* kept: OpenSSL must not free it */
}

static void tls_ctx_error(char *err, size_t errlen, const char *what) {
  char reason[200];
  ERR_error_string_n(ERR_get_error(), reason, sizeof(reason));
  snprintf(err, errlen, "%s: %s", what, reason);
}

X509_STORE *upstream_tls_ca_store(const char *ca_file, char *err, size_t errlen) {
  /* One bundle file, not OpenSSL's default paths: those also search a
   * hashed directory at each verification, file I/O on the loop for every
   * handshake with an unknown issuer. */
  const char *bundle = ca_file;
  if (bundle[0] == '\0') {
    bundle = getenv(X509_get_default_cert_file_env());
    if (bundle == NULL || bundle[0] == '\0')
      bundle = X509_get_default_cert_file();
  }
  X509_STORE *store = X509_STORE_new();
  if (store == NULL || X509_STORE_load_file(store, bundle) != 1) {
    tls_ctx_error(err, errlen,
                  ca_file[0] ? "--upstream-ca could not be loaded"
                             : "the system CA bundle could not be loaded");
    X509_STORE_free(store);
    return NULL;
  }
  return store;
}

upstream_tls_ctx_t *upstream_tls_ctx_new(const char *host, const char *ca_file, char *err,
                                         size_t errlen) {
  upstream_tls_ctx_t *ctx = calloc(1, sizeof(*ctx));
  if (ctx == NULL) {
    snprintf(err, errlen, "out of memory");
    return NULL;
  }
  snprintf(ctx->host, sizeof(ctx->host), "%s", host);
  unsigned char addr[16];
  ctx->host_is_ip = inet_pton(AF_INET, host, addr) == 1 || inet_pton(AF_INET6, host, addr) == 1;
  ctx->ssl_ctx = SSL_CTX_new(TLS_client_method());
  if (ctx->ssl_ctx == NULL) {
    tls_ctx_error(err, errlen, "TLS set-up failed");
    goto fail;
  }
  SSL_CTX *c = ctx->ssl_ctx;
  SSL_CTX_set_app_data(c, ctx);
  SSL_CTX_set_min_proto_version(c, TLS1_2_VERSION);
  SSL_CTX_set_verify(c, SSL_VERIFY_PEER, NULL);
  X509_STORE *store = upstream_tls_ca_store(ca_file, err, errlen);
  if (store == NULL)
    goto fail;
  SSL_CTX_set_cert_store(c, store); /* the context owns it now */
  static const unsigned char alpn[] = "\x08http/1.1";
  SSL_CTX_set_alpn_protos(c, alpn, sizeof(alpn) - 1);
  SSL_CTX_set_session_cache_mode(c, SSL_SESS_CACHE_CLIENT | SSL_SESS_CACHE_NO_INTERNAL_STORE);
  SSL_CTX_sess_set_new_cb(c, tls_new_session_cb);
  return ctx;
fail:
  upstream_tls_ctx_free(ctx);
  return NULL;
}

void upstream_tls_ctx_free(upstream_tls_ctx_t *ctx) {
  if (ctx == NULL)
    return;
  if (ctx->session != NULL)
    SSL_SESSION_free(ctx->session);
  SSL_CTX_free(ctx->ssl_ctx);
  free(ctx);
}

/* The peer's name or address, as the certificate must show it. */
static int tls_expect_peer(upstream_tls_t *t) {
  upstream_tls_ctx_t *ctx = t->ctx;
  if (ctx->host_is_ip)
    return X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(t->ssl), ctx->host) == 1 ? 0 : -1;
  if (SSL_set_tlsext_host_name(t->ssl, ctx->host) != 1 || SSL_set1_host(t->ssl, ctx->host) != 1)
    return -1;
  SSL_set_hostflags(t->ssl, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
  return 0;
}

upstream_tls_t *upstream_tls_new(upstream_tls_ctx_t *ctx) {
  upstream_tls_t *t = calloc(1, sizeof(*t));
  if (t == NULL)
    return NULL;
  t->ctx = ctx;
  t->ssl = SSL_new(ctx->ssl_ctx);
  t->in = BIO_new(BIO_s_mem());
  t->out = BIO_new(BIO_s_mem());
  if (t->ssl == NULL || t->in == NULL || t->out == NULL) {
    BIO_free(t->in);
    BIO_free(t->out);
    SSL_free(t->ssl);
    free(t);
    return NULL;
  }
  /* An empty input means "more to come", never end of stream: the socket
   * says when the stream ends. */
  BIO_set_mem_eof_return(t->in, -1);
  SSL_set_bio(t->ssl, t->in, t->out);
  SSL_set_connect_state(t->ssl);
  if (tls_expect_peer(t) != 0 || (ctx->session != NULL && SSL_set_session(t->ssl, ctx->session) != 1)) {
    upstream_tls_free(t);
    return NULL;
  }
  return t;
}

void upstream_tls_free(upstream_tls_t *t) {
  if (t == NULL)
    return;
  SSL_free(t->ssl); /* frees both BIOs */
  free(t);
}

int upstream_tls_feed(upstream_tls_t *t, const char *data, size_t len) {
  size_t written = 0;
  return len == 0 || BIO_write_ex(t->in, data, len, &written) == 1 ? 0 : -1;
}

/* Maps OpenSSL's verdict on a call that did not succeed. */
static tls_result_t tls_outcome(upstream_tls_t *t, int ret, const char *what) {
  switch (SSL_get_error(t->ssl, ret)) {
  case SSL_ERROR_WANT_READ:
  case SSL_ERROR_WANT_WRITE: /* the output is a memory buffer: never full */
    return TLS_WANT;
  case SSL_ERROR_ZERO_RETURN:
    return TLS_CLOSED;
  default:
    break;
  }
  long verify = SSL_get_verify_result(t->ssl);
  if (!t->ready && verify != X509_V_OK) {
    snprintf(t->error, sizeof(t->error), "%s: the upstream's certificate was refused: %s", what,
             X509_verify_cert_error_string(verify));
  } else {
    char reason[200];
    unsigned long e = ERR_get_error();
    if (e != 0)
      ERR_error_string_n(e, reason, sizeof(reason));
    else
      snprintf(reason, sizeof(reason), "the connection broke");
    snprintf(t->error, sizeof(t->error), "%s: %s", what, reason);
  }
  ERR_clear_error();
  return TLS_ERROR;
}

tls_result_t upstream_tls_handshake(upstream_tls_t *t) {
  if (t->ready)
    return TLS_OK;
  ERR_clear_error();
  int ret = SSL_do_handshake(t->ssl);
  if (ret == 1) {
    t->ready = true;
    return TLS_OK;
  }
  return tls_outcome(t, ret, "TLS handshake with the upstream failed");
}

bool upstream_tls_ready(const upstream_tls_t *t) {
  return t->ready;
}

tls_result_t upstream_tls_read(upstream_tls_t *t, char *out, size_t cap, size_t *n) {
  ERR_clear_error();
  if (SSL_read_ex(t->ssl, out, cap, n) == 1)
    return TLS_OK;
  *n = 0;
  return tls_outcome(t, 0, "TLS error from the upstream");
}

bool upstream_tls_has_plaintext(const upstream_tls_t *t) {
  return SSL_pending(t->ssl) > 0;
}

int upstream_tls_write(upstream_tls_t *t, const char *data, size_t len) {
  size_t written = 0;
  ERR_clear_error();
  if (len == 0)
    return 0;
  if (SSL_write_ex(t->ssl, data, len, &written) == 1 && written == len)
    return 0;
  tls_outcome(t, 0, "TLS error toward the upstream");
  return -1;
}

int upstream_tls_take_out(upstream_tls_t *t, buf_t *out) {
  char *data = NULL;
  long len = BIO_get_mem_data(t->out, &data);
  if (len <= 0)
    return 0;
  if (buf_append(out, data, (size_t)len) != 0)
    return -1;
  (void)BIO_reset(t->out);
  return 0;
}

const char *upstream_tls_error(const upstream_tls_t *t) {
  return t->error[0] ? t->error : "TLS error";
}
