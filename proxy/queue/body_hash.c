#include "proxy/queue/body_hash.h"

#include <errno.h>
#include <openssl/evp.h>

int body_hash_hex(const char *body, size_t len, char out[BODY_HASH_HEX_LEN + 1]) {
  static const char hex[] = "0123456789abcdef";
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int mdlen = 0;
  if (EVP_Digest(body != NULL ? body : "", body != NULL ? len : 0, md, &mdlen, EVP_sha256(),
                 NULL) != 1 ||
      mdlen * 2 != BODY_HASH_HEX_LEN)
    return -EIO;
  for (unsigned int i = 0; i < mdlen; i++) {
    out[2 * i] = hex[md[i] >> 4];
    out[2 * i + 1] = hex[md[i] & 0xf];
  }
  out[BODY_HASH_HEX_LEN] = '\0';
  return 0;
}
