/* attest/quote/crypto.c: raw ECDSA P-256 and SHA-2 for the checks. */
#include "raloop/attest/quote/crypto_internal.h"

#include <string.h>

#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/err.h>

/* DCAP signatures are raw r||s; OpenSSL verifies DER ECDSA-Sig-Value.
 * Returns the DER length written to der (<= 80), or 0. */
static int raw_sig_to_der(const uint8_t sig[64], uint8_t der[80]) {
  ECDSA_SIG *s = ECDSA_SIG_new();
  BIGNUM *r = BN_bin2bn(sig, 32, NULL), *ss = BN_bin2bn(sig + 32, 32, NULL);
  int dl = 0;
  if (!s || !r || !ss) {
    BN_free(r);
    BN_free(ss);
    ECDSA_SIG_free(s);
    return 0;
  }
  ECDSA_SIG_set0(s, r, ss);
  uint8_t *p = der;
  dl = i2d_ECDSA_SIG(s, NULL);
  if (dl <= 0 || dl > 80)
    dl = 0;
  else
    dl = i2d_ECDSA_SIG(s, &p);
  ECDSA_SIG_free(s);
  return dl > 0 ? dl : 0;
}

bool ra_ecdsa_p256_verify(EVP_PKEY *key, const uint8_t *msg, size_t len, const uint8_t sig[64]) {
  uint8_t der[80];
  bool ok = false;
  int dl = raw_sig_to_der(sig, der);
  EVP_MD_CTX *md = dl ? EVP_MD_CTX_new() : NULL;
  if (md && EVP_DigestVerifyInit(md, NULL, EVP_sha256(), NULL, key) == 1 &&
      EVP_DigestVerify(md, der, (size_t)dl, msg, len) == 1)
    ok = true;
  EVP_MD_CTX_free(md);
  ERR_clear_error();
  return ok;
}

EVP_PKEY *ra_p256_key(const uint8_t xy[64]) {
  uint8_t pt[65];
  EVP_PKEY *k = NULL;
  EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_from_name(NULL, "EC", NULL);
  OSSL_PARAM params[3];
  pt[0] = 0x04; /* uncompressed point */
  memcpy(pt + 1, xy, 64);
  params[0] = OSSL_PARAM_construct_utf8_string(OSSL_PKEY_PARAM_GROUP_NAME, (char *)"prime256v1", 0);
  params[1] = OSSL_PARAM_construct_octet_string(OSSL_PKEY_PARAM_PUB_KEY, pt, sizeof pt);
  params[2] = OSSL_PARAM_construct_end();
  if (!ctx || EVP_PKEY_fromdata_init(ctx) != 1 ||
      EVP_PKEY_fromdata(ctx, &k, EVP_PKEY_PUBLIC_KEY, params) != 1)
    k = NULL;
  EVP_PKEY_CTX_free(ctx);
  ERR_clear_error();
  return k;
}

bool ra_is_p256(EVP_PKEY *k) {
  char g[32];
  size_t gl = 0;
  return k && EVP_PKEY_is_a(k, "EC") &&
         EVP_PKEY_get_utf8_string_param(k, OSSL_PKEY_PARAM_GROUP_NAME, g, sizeof g, &gl) == 1 &&
         !strcmp(g, "prime256v1");
}

bool ra_hash_parts(const EVP_MD *md, const ra_hash_part *parts, size_t n, uint8_t *out) {
  EVP_MD_CTX *ctx = EVP_MD_CTX_new();
  bool ok = ctx && EVP_DigestInit_ex(ctx, md, NULL) == 1;
  for (size_t i = 0; ok && i < n; i++)
    if (parts[i].len) ok = EVP_DigestUpdate(ctx, parts[i].p, parts[i].len) == 1;
  ok = ok && EVP_DigestFinal_ex(ctx, out, NULL) == 1;
  if (!ok) memset(out, 0, (size_t)EVP_MD_get_size(md));
  EVP_MD_CTX_free(ctx);
  ERR_clear_error();
  return ok;
}
