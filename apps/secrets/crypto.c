/* apps/secrets/crypto.c: see crypto.h. */
#include "crypto.h"

#include <stdlib.h>
#include <string.h>

#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/kdf.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/sha.h>
#include <openssl/x509.h>

void sec_sha256(const void *d, size_t n, uint8_t out[32]) { SHA256(d, n, out); }

EVP_PKEY *sec_key_gen(void) { return EVP_EC_gen("P-256"); }

EVP_PKEY *sec_key_from_pem(const char *pem) {
  BIO *b = BIO_new_mem_buf(pem, -1);
  if (!b) return NULL;
  EVP_PKEY *k = PEM_read_bio_PrivateKey(b, NULL, NULL, NULL);
  BIO_free(b);
  return k;
}

int sec_spki(EVP_PKEY *k, uint8_t **der, size_t *len) {
  unsigned char *p = NULL;
  int n = i2d_PUBKEY(k, &p);
  if (n <= 0) return -1;
  *der = malloc((size_t)n);
  if (!*der) {
    OPENSSL_free(p);
    return -1;
  }
  memcpy(*der, p, (size_t)n);
  *len = (size_t)n;
  OPENSSL_free(p);
  return 0;
}

int sec_cert_info(const char *pem, uint8_t **spki, size_t *spki_len, uint8_t cert_hash[32]) {
  BIO *b = BIO_new_mem_buf(pem, -1);
  X509 *x = b ? PEM_read_bio_X509(b, NULL, NULL, NULL) : NULL;
  BIO_free(b);
  if (!x) return -1;
  int rc = -1;
  unsigned char *d = NULL;
  int n = i2d_X509(x, &d);
  EVP_PKEY *k = X509_get0_pubkey(x);
  if (n > 0 && k && sec_spki(k, spki, spki_len) == 0) {
    sec_sha256(d, (size_t)n, cert_hash);
    rc = 0;
  }
  OPENSSL_free(d);
  X509_free(x);
  return rc;
}

int sec_sign(EVP_PKEY *k, const uint8_t *msg, size_t len, uint8_t **sig, size_t *sig_len) {
  EVP_MD_CTX *c = EVP_MD_CTX_new();
  size_t n = 0;
  int rc = -1;
  *sig = NULL;
  if (c && EVP_DigestSignInit(c, NULL, EVP_sha256(), NULL, k) == 1 &&
      EVP_DigestSign(c, NULL, &n, msg, len) == 1 && (*sig = malloc(n)) &&
      EVP_DigestSign(c, *sig, &n, msg, len) == 1) {
    *sig_len = n;
    rc = 0;
  }
  if (rc) {
    free(*sig);
    *sig = NULL;
  }
  EVP_MD_CTX_free(c);
  return rc;
}

/* A P-256 public key from DER SPKI, or NULL. */
static EVP_PKEY *p256_pub(const uint8_t *spki, size_t len) {
  const unsigned char *p = spki;
  EVP_PKEY *k = d2i_PUBKEY(NULL, &p, (long)len);
  if (!k) return NULL;
  char grp[32] = "";
  size_t gl = 0;
  if (p != spki + len || !EVP_PKEY_is_a(k, "EC") ||
      !EVP_PKEY_get_utf8_string_param(k, OSSL_PKEY_PARAM_GROUP_NAME, grp, sizeof grp, &gl) ||
      strcmp(grp, "prime256v1")) {
    EVP_PKEY_free(k);
    return NULL;
  }
  return k;
}

bool sec_key_is_p256(const uint8_t *spki, size_t len) {
  EVP_PKEY *k = p256_pub(spki, len);
  EVP_PKEY_free(k);
  return k != NULL;
}

int sec_verify(const uint8_t *spki, size_t spki_len, const uint8_t *msg, size_t len,
               const uint8_t *sig, size_t sig_len) {
  EVP_PKEY *k = p256_pub(spki, spki_len);
  if (!k) return -1;
  EVP_MD_CTX *c = EVP_MD_CTX_new();
  int ok = c && EVP_DigestVerifyInit(c, NULL, EVP_sha256(), NULL, k) == 1 &&
           EVP_DigestVerify(c, sig, sig_len, msg, len) == 1;
  EVP_MD_CTX_free(c);
  EVP_PKEY_free(k);
  return ok ? 0 : -1;
}

void sec_box_clear(sec_box *b) {
  free(b->epk);
  free(b->ct);
  memset(b, 0, sizeof *b);
}

/* ECDH(priv, pub) -> HKDF-SHA256 -> 32 bytes. */
static int derive(EVP_PKEY *priv, EVP_PKEY *pub, const uint8_t id[SEC_ID_BYTES],
                  const uint8_t challenge[SEC_CHALLENGE_BYTES], const char *name, uint8_t key[32]) {
  uint8_t z[66];
  size_t zl = sizeof z;
  int rc = -1;
  EVP_PKEY_CTX *dc = EVP_PKEY_CTX_new(priv, NULL);
  if (!dc || EVP_PKEY_derive_init(dc) != 1 || EVP_PKEY_derive_set_peer(dc, pub) != 1 ||
      EVP_PKEY_derive(dc, z, &zl) != 1) {
    EVP_PKEY_CTX_free(dc);
    return -1;
  }
  EVP_PKEY_CTX_free(dc);
  size_t nl = strlen(name), tl = strlen(SEC_TAG_SECRET) + 1;
  uint8_t info[sizeof SEC_TAG_SECRET + SEC_ID_BYTES + SEC_MAX_NAME];
  if (nl > SEC_MAX_NAME) goto out;
  memcpy(info, SEC_TAG_SECRET, tl);
  memcpy(info + tl, id, SEC_ID_BYTES);
  memcpy(info + tl + SEC_ID_BYTES, name, nl);
  EVP_KDF *kdf = EVP_KDF_fetch(NULL, "HKDF", NULL);
  EVP_KDF_CTX *kc = kdf ? EVP_KDF_CTX_new(kdf) : NULL;
  EVP_KDF_free(kdf);
  if (!kc) goto out;
  OSSL_PARAM ps[] = {
      OSSL_PARAM_construct_utf8_string(OSSL_KDF_PARAM_DIGEST, (char *)"SHA256", 0),
      OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_KEY, z, zl),
      OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_SALT, (void *)challenge,
                                        SEC_CHALLENGE_BYTES),
      OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_INFO, info, tl + SEC_ID_BYTES + nl),
      OSSL_PARAM_construct_end()};
  if (EVP_KDF_derive(kc, key, 32, ps) == 1) rc = 0;
  EVP_KDF_CTX_free(kc);
out:
  OPENSSL_cleanse(z, sizeof z);
  return rc;
}

static int gcm(int enc, const uint8_t key[32], const uint8_t nonce[12], const char *name,
               const uint8_t *in, size_t in_len, uint8_t *out, uint8_t tag[16]) {
  EVP_CIPHER_CTX *c = EVP_CIPHER_CTX_new();
  int n = 0, ok = c && EVP_CipherInit_ex(c, EVP_aes_256_gcm(), NULL, key, nonce, enc) == 1;
  if (ok && !enc) ok = EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_SET_TAG, 16, tag) == 1;
  ok = ok && EVP_CipherUpdate(c, NULL, &n, (const uint8_t *)name, (int)strlen(name)) == 1;
  ok = ok && (in_len == 0 || EVP_CipherUpdate(c, out, &n, in, (int)in_len) == 1);
  ok = ok && EVP_CipherFinal_ex(c, out + (in_len ? (size_t)n : 0), &n) == 1;
  if (ok && enc) ok = EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_GET_TAG, 16, tag) == 1;
  EVP_CIPHER_CTX_free(c);
  return ok ? 0 : -1;
}

int sec_seal(const uint8_t *client_spki, size_t spki_len, const uint8_t id[SEC_ID_BYTES],
             const uint8_t challenge[SEC_CHALLENGE_BYTES], const char *name, const uint8_t *pt,
             size_t pt_len, sec_box *out) {
  memset(out, 0, sizeof *out);
  if (pt_len > (1u << 30)) return -1;
  EVP_PKEY *pub = p256_pub(client_spki, spki_len), *eph = pub ? sec_key_gen() : NULL;
  uint8_t key[32];
  int rc = -1;
  if (!eph || derive(eph, pub, id, challenge, name, key)) goto out;
  if (sec_spki(eph, &out->epk, &out->epk_len)) goto out;
  if (RAND_bytes(out->nonce, sizeof out->nonce) != 1) goto out;
  out->ct = malloc(pt_len + 16);
  if (!out->ct) goto out;
  out->ct_len = pt_len + 16;
  rc = gcm(1, key, out->nonce, name, pt, pt_len, out->ct, out->ct + pt_len);
out:
  OPENSSL_cleanse(key, sizeof key);
  EVP_PKEY_free(pub);
  EVP_PKEY_free(eph);
  if (rc) sec_box_clear(out);
  return rc;
}

int sec_open(EVP_PKEY *k, const uint8_t id[SEC_ID_BYTES],
             const uint8_t challenge[SEC_CHALLENGE_BYTES], const char *name, const sec_box *b,
             uint8_t **pt, size_t *pt_len) {
  if (b->ct_len < 16) return -1;
  EVP_PKEY *epk = p256_pub(b->epk, b->epk_len);
  uint8_t key[32], tag[16];
  int rc = -1;
  size_t n = b->ct_len - 16;
  uint8_t *p = NULL;
  if (!epk || derive(k, epk, id, challenge, name, key)) goto out;
  p = malloc(n + 1);
  if (!p) goto out;
  memcpy(tag, b->ct + n, 16);
  if (gcm(0, key, b->nonce, name, b->ct, n, p, tag)) goto out;
  p[n] = 0;
  *pt = p;
  *pt_len = n;
  p = NULL;
  rc = 0;
out:
  if (p) {
    OPENSSL_cleanse(p, n);
    free(p);
  }
  OPENSSL_cleanse(key, sizeof key);
  EVP_PKEY_free(epk);
  return rc;
}
