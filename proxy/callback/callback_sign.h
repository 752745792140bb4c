/* callback_sign: the Standard Webhooks signature of a completion notice.
 *
 * The receiver checks webhook-signature: "v1,<base64 of HMAC-SHA256 over
 * '<webhook-id>.<webhook-timestamp>.<body>'>" with the shared key. The key
 * comes from --callback-secret: "whsec_<base64>" is decoded as the spec
 * says; any other text is used as its bytes. Pure functions; any thread. */
#ifndef RETRYD_CALLBACK_SIGN_H
#define RETRYD_CALLBACK_SIGN_H

#include <stddef.h>
#include <stdint.h>

#define CALLBACK_KEY_MAX 256

typedef struct {
  unsigned char bytes[CALLBACK_KEY_MAX];
  size_t len;
} callback_key_t;

/* 0, or -1 when a whsec_ secret is not base64 or the key is too long. */
int callback_key_parse(const char *secret, callback_key_t *out);

/* "v1," and the base64 signature, NUL-terminated, into out (at least
 * CALLBACK_SIGNATURE_MAX bytes). 0, or -1 when HMAC fails. */
#define CALLBACK_SIGNATURE_MAX 64
int callback_sign(const callback_key_t *key, const char *msg_id, int64_t timestamp,
                  const char *body, size_t body_len, char *out);

#endif
