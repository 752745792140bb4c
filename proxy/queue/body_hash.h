/* body_hash: the SHA-256 of a request body, in lower-case hex, stored with
 * a row that carries an Idempotency-Key: a repeat with the same key and
 * another body is a different request reusing the key (answered 422), not
 * a repeat. Pure; any thread. */
#ifndef RETRYD_BODY_HASH_H
#define RETRYD_BODY_HASH_H

#include <stddef.h>

#define BODY_HASH_HEX_LEN 64

/* out gets 64 hex digits and a NUL; no body hashes as the empty one.
 * 0, or -EIO when OpenSSL failed. */
int body_hash_hex(const char *body, size_t len, char out[BODY_HASH_HEX_LEN + 1]);

#endif
