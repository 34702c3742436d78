/* attest/quote/crypto_internal.h: the primitives the checks are built
 * from, on OpenSSL alone (libraloop-attest links nothing else): raw ECDSA
 * P-256 as DCAP quotes carry it, SHA-2 over concatenated parts, constant-time
 * comparison. Private to attest/quote. */
#ifndef RA_ATTEST_CRYPTO_INTERNAL_H
#define RA_ATTEST_CRYPTO_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>

/* Whether a raw r||s P-256 signature over SHA-256(msg) verifies with key. */
bool ra_ecdsa_p256_verify(EVP_PKEY *key, const uint8_t *msg, size_t len, const uint8_t sig[64]);

/* The public key x||y as an EVP_PKEY (caller frees), NULL when the point is
 * not on P-256. */
EVP_PKEY *ra_p256_key(const uint8_t xy[64]);

/* The same for a key given as its raw point x||y (a quote's attestation
 * key, a PCK leaf's key read by der.c), without building an EVP_PKEY:
 * 1 verifies, 0 does not, -EINVAL the point is not on P-256. */
int ra_ecdsa_p256_verify_xy(const uint8_t xy[64], const uint8_t *msg, size_t len,
                            const uint8_t sig[64]);

/* Whether k is an EC key on P-256 (what a PCK leaf must carry). */
bool ra_is_p256(EVP_PKEY *k);

/* One part of a message to hash; empty parts (len 0, p may be NULL) are
 * skipped. */
typedef struct ra_hash_part {
  const uint8_t *p;
  size_t len;
} ra_hash_part;

/* out = md(parts[0] || ... || parts[n-1]); out holds EVP_MD_get_size(md).
 * False on an OpenSSL failure (out is then zeroed, matching nothing real). */
bool ra_hash_parts(const EVP_MD *md, const ra_hash_part *parts, size_t n, uint8_t *out);

/* Constant-time: measurements and bindings are compared without leaking
 * where they differ. */
static inline bool ra_ct_equal(const uint8_t *a, const uint8_t *b, size_t n) {
  return CRYPTO_memcmp(a, b, n) == 0;
}

#endif
