#include "proxy/callback/callback_sign.h"

#include <ctype.h>
#include <inttypes.h>
#include <stdbool.h>
#include <openssl/evp.h>
#include <openssl/core_names.h>
#include <openssl/params.h>
#include <stdio.h>
#include <string.h>

#define WHSEC_PREFIX "whsec_"

/* Standard base64: alphabet characters, then at most two '=' ending it, in
 * whole groups of four (EVP_DecodeBlock alone would take "====" or
 * spaces). */
static bool callback_is_base64(const char *s, size_t n) {
  size_t pad = 0;
  while (pad < n && pad < 2 && s[n - 1 - pad] == '=')
    pad++;
  if (n == 0 || n % 4 != 0 || n == pad || (n - pad) % 4 == 1)
    return false;
  for (size_t i = 0; i < n - pad; i++)
    if (!isalnum((unsigned char)s[i]) && s[i] != '+' && s[i] != '/')
      return false;
  return true;
}

int callback_key_parse(const char *secret, callback_key_t *out) {
  size_t plen = strlen(WHSEC_PREFIX);
  memset(out, 0, sizeof(*out));
  if (strncmp(secret, WHSEC_PREFIX, plen) != 0) {
    size_t n = strlen(secret);
    if (n > sizeof(out->bytes))
      return -1;
    memcpy(out->bytes, secret, n);
    out->len = n;
    return 0;
  }
  const char *b64 = secret + plen;
  size_t n = strlen(b64);
  if (!callback_is_base64(b64, n))
    return -1;
  /* EVP_DecodeBlock wants whole 4-character groups and writes 3 bytes for
   * each; padding is counted back off below. */
  if (n == 0 || n % 4 != 0 || n / 4 * 3 > sizeof(out->bytes))
    return -1;
  int got = EVP_DecodeBlock(out->bytes, (const unsigned char *)b64, (int)n);
  if (got < 0)
    return -1;
  size_t pad = (b64[n - 1] == '=') + (b64[n - 2] == '=');
  out->len = (size_t)got - pad;
  return out->len > 0 ? 0 : -1;
}

int callback_sign(const callback_key_t *key, const char *msg_id, int64_t timestamp,
                  const char *body, size_t body_len, char *out) {
  char prefix[160];
  int plen = snprintf(prefix, sizeof(prefix), "%s.%" PRId64 ".", msg_id, timestamp);
  if (plen < 0 || (size_t)plen >= sizeof(prefix))
    return -1;
  /* OpenSSL 3's MAC interface: the HMAC_CTX calls are deprecated. */
  EVP_MAC *hmac = EVP_MAC_fetch(NULL, "HMAC", NULL);
  EVP_MAC_CTX *ctx = hmac ? EVP_MAC_CTX_new(hmac) : NULL;
  char digest[] = "SHA256";
  OSSL_PARAM params[] = {OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, digest, 0),
                         OSSL_PARAM_construct_end()};
  unsigned char mac[EVP_MAX_MD_SIZE];
  size_t mlen = 0;
  int ok = ctx != NULL && EVP_MAC_init(ctx, key->bytes, key->len, params) == 1 &&
           EVP_MAC_update(ctx, (const unsigned char *)prefix, (size_t)plen) == 1 &&
           EVP_MAC_update(ctx, (const unsigned char *)body, body_len) == 1 &&
           EVP_MAC_final(ctx, mac, &mlen, sizeof(mac)) == 1;
  EVP_MAC_CTX_free(ctx);
  EVP_MAC_free(hmac);
  if (!ok || mlen != 32)
    return -1;
  memcpy(out, "v1,", 3);
  EVP_EncodeBlock((unsigned char *)out + 3, mac, (int)mlen); /* 44 chars and a NUL */
  return 0;
}
