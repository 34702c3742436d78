/* attest/quote/crypto.c: raw ECDSA P-256 and SHA-2 for the checks. */
#include "raloop/attest/quote/crypto_internal.h"

#include <string.h>

#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/err.h>

/* DCAP signatures are raw r||s; OpenSSL verifies DER ECDSA-Sig-Value:
 * SEQUENCE { INTEGER r, INTEGER s }, each minimal (leading zero bytes
 * dropped, one 0x00 added when the top bit is set), as i2d_ECDSA_SIG
 * writes it. A zero r or s is INTEGER 0 (OpenSSL then refuses it).
 * Returns the DER length written to der (<= 72). */
static size_t der_int(const uint8_t v[32], uint8_t *out) {
  size_t i = 0;
  while (i < 31 && v[i] == 0) i++;
  size_t n = 32 - i, pad = v[i] & 0x80 ? 1 : 0;
  out[0] = 0x02;
  out[1] = (uint8_t)(n + pad);
  out[2] = 0;
  memcpy(out + 2 + pad, v + i, n);
  return 2 + pad + n;
}

static int raw_sig_to_der(const uint8_t sig[64], uint8_t der[80]) {
  uint8_t body[70];
  size_t n = der_int(sig, body);
  n += der_int(sig + 32, body + n);
  der[0] = 0x30;
  der[1] = (uint8_t)n; /* <= 70: short form */
  memcpy(der + 2, body, n);
  return (int)n + 2;
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
