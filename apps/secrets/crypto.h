/* apps/secrets/crypto.h: the service's signatures and the sealing of a
 * released secret to the client's attested key (OpenSSL).
 *
 * Keys are ECDSA P-256 (what ra_ratls_generate makes); signatures are
 * ECDSA-SHA256, DER. A released secret is encrypted to the client's key:
 * an ephemeral P-256 key, ECDH with the client's key, HKDF-SHA256 (salt =
 * the challenge, info = SEC_TAG_SECRET || id || name) to a 32-byte key,
 * AES-256-GCM with a random 96-bit nonce and the name as associated data.
 * Only the holder of the attested private key (inside the client's TEE) can
 * read it, whatever carries the answer (plain HTTP, a TLS-terminating
 * proxy). */
#ifndef RA_APPS_SECRETS_CRYPTO_H
#define RA_APPS_SECRETS_CRYPTO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <openssl/evp.h>

#include "proto.h"

void sec_sha256(const void *d, size_t n, uint8_t out[32]);

/* A fresh P-256 key. NULL on failure. */
EVP_PKEY *sec_key_gen(void);
/* A private key from PEM (PKCS#8). NULL on failure. */
EVP_PKEY *sec_key_from_pem(const char *pem);
/* The DER SubjectPublicKeyInfo of k, malloc'd. 0 or -1. */
int sec_spki(EVP_PKEY *k, uint8_t **der, size_t *len);
/* The DER SubjectPublicKeyInfo of a certificate (PEM or DER), malloc'd,
 * and SHA-256 of the certificate's DER (the "server binding"). 0 or -1. */
int sec_cert_info(const char *pem, uint8_t **spki, size_t *spki_len, uint8_t cert_hash[32]);

/* Whether spki is a P-256 public key (the only kind the protocol signs
 * and seals with). */
bool sec_key_is_p256(const uint8_t *spki, size_t len);

/* ECDSA-SHA256 over msg; *sig malloc'd (DER). 0 or -1. */
int sec_sign(EVP_PKEY *k, const uint8_t *msg, size_t len, uint8_t **sig, size_t *sig_len);
/* 0 when sig is k's (a P-256 SubjectPublicKeyInfo) over msg; -1 otherwise
 * (also for a key that is not P-256). */
int sec_verify(const uint8_t *spki, size_t spki_len, const uint8_t *msg, size_t len,
               const uint8_t *sig, size_t sig_len);

/* The sealed form of a secret. Owned buffers: sec_box_clear. */
typedef struct sec_box {
  uint8_t *epk; /* ephemeral SubjectPublicKeyInfo (DER) */
  size_t epk_len;
  uint8_t nonce[12];
  uint8_t *ct; /* ciphertext || 16-byte tag */
  size_t ct_len;
} sec_box;

void sec_box_clear(sec_box *b);
int sec_seal(const uint8_t *client_spki, size_t spki_len, const uint8_t id[SEC_ID_BYTES],
             const uint8_t challenge[SEC_CHALLENGE_BYTES], const char *name, const uint8_t *pt,
             size_t pt_len, sec_box *out);
/* *pt malloc'd (NUL-terminated past *pt_len). 0, or -1 (not for this key,
 * tampered). */
int sec_open(EVP_PKEY *k, const uint8_t id[SEC_ID_BYTES],
             const uint8_t challenge[SEC_CHALLENGE_BYTES], const char *name, const sec_box *b,
             uint8_t **pt, size_t *pt_len);

#endif
