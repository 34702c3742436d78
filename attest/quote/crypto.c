/* attest/quote/crypto.c: raw ECDSA P-256 and SHA-2 for the checks.
 *
 * Keys that arrive as raw points (a quote's attestation key, a PCK leaf's
 * key read by der.c) are verified through the EC_KEY/ECDSA_do_verify API,
 * deprecated in OpenSSL 3 but still there: building a provider EVP_PKEY from
 * a point costs ~190 k instructions in 3.0 (a keymgmt fetch, parameter
 * parsing, a new group), an EC_KEY on a shared group ~15 k, and the
 * verification itself is the same ECDSA_do_verify either way. This is the
 * only file that uses it. */
#define OPENSSL_SUPPRESS_DEPRECATED 1
#include "raloop/attest/quote/crypto_internal.h"

#include <errno.h>
#include <pthread.h>
#include <string.h>

#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/ecdsa.h>
#include <openssl/err.h>
#include <openssl/obj_mac.h>

/* OpenSSL 3.0 fetches the implementation behind EVP_sha256() & co. on every
 * EVP_DigestInit_ex / EVP_DigestVerifyInit (~90 k instructions: a lock, a
 * name lookup); fetched once per process here (never freed: the process
 * keeps them), and the shared P-256 group made once. */
static struct {
  pthread_once_t once;
  EVP_MD *sha256, *sha384, *sha512;
  EC_GROUP *p256;
} prefetched = {PTHREAD_ONCE_INIT, NULL, NULL, NULL, NULL};

static void prefetch(void) {
  prefetched.sha256 = EVP_MD_fetch(NULL, "SHA256", NULL);
  prefetched.sha384 = EVP_MD_fetch(NULL, "SHA384", NULL);
  prefetched.sha512 = EVP_MD_fetch(NULL, "SHA512", NULL);
  prefetched.p256 = EC_GROUP_new_by_curve_name(NID_X9_62_prime256v1);
  ERR_clear_error();
}

/* The fetched implementation of md when there is one, else md itself. */
static const EVP_MD *fetched_md(const EVP_MD *md) {
  const EVP_MD *f = NULL;
  pthread_once(&prefetched.once, prefetch);
  if (md == EVP_sha256()) f = prefetched.sha256;
  else if (md == EVP_sha384()) f = prefetched.sha384;
  else if (md == EVP_sha512()) f = prefetched.sha512;
  return f ? f : md;
}

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
  if (md && EVP_DigestVerifyInit(md, NULL, fetched_md(EVP_sha256()), NULL, key) == 1 &&
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

/* An EC_KEY for the point x||y on the shared P-256 group; NULL when the
 * point is not on the curve (EC_POINT_oct2point checks it, as
 * EVP_PKEY_fromdata does). */
static EC_KEY *p256_ec_key(const uint8_t xy[64]) {
  uint8_t pt[65];
  pthread_once(&prefetched.once, prefetch);
  if (!prefetched.p256) return NULL;
  EC_KEY *k = EC_KEY_new();
  EC_POINT *p = EC_POINT_new(prefetched.p256);
  pt[0] = 0x04; /* uncompressed point */
  memcpy(pt + 1, xy, 64);
  bool ok = k && p && EC_KEY_set_group(k, prefetched.p256) == 1 &&
            EC_POINT_oct2point(prefetched.p256, p, pt, sizeof pt, NULL) == 1 &&
            EC_KEY_set_public_key(k, p) == 1;
  EC_POINT_free(p);
  if (!ok) {
    EC_KEY_free(k);
    k = NULL;
  }
  return k;
}

/* r||s as an ECDSA_SIG; NULL on ENOMEM. */
static ECDSA_SIG *raw_sig(const uint8_t sig[64]) {
  ECDSA_SIG *s = ECDSA_SIG_new();
  BIGNUM *r = BN_bin2bn(sig, 32, NULL), *ss = BN_bin2bn(sig + 32, 32, NULL);
  if (!s || !r || !ss || ECDSA_SIG_set0(s, r, ss) != 1) {
    BN_free(r);
    BN_free(ss);
    ECDSA_SIG_free(s);
    return NULL;
  }
  return s;
}

int ra_ecdsa_p256_verify_xy(const uint8_t xy[64], const uint8_t *msg, size_t len,
                            const uint8_t sig[64]) {
  uint8_t h[32];
  ra_hash_part part = {msg, len};
  EC_KEY *k = p256_ec_key(xy);
  ECDSA_SIG *s = k ? raw_sig(sig) : NULL;
  int rc = !k ? -EINVAL
           : s && ra_hash_parts(EVP_sha256(), &part, 1, h) && ECDSA_do_verify(h, 32, s, k) == 1
               ? 1
               : 0;
  ECDSA_SIG_free(s);
  EC_KEY_free(k);
  ERR_clear_error();
  return rc;
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
  bool ok = ctx && EVP_DigestInit_ex(ctx, fetched_md(md), NULL) == 1;
  for (size_t i = 0; ok && i < n; i++)
    if (parts[i].len) ok = EVP_DigestUpdate(ctx, parts[i].p, parts[i].len) == 1;
  ok = ok && EVP_DigestFinal_ex(ctx, out, NULL) == 1;
  if (!ok) memset(out, 0, (size_t)EVP_MD_get_size(md));
  EVP_MD_CTX_free(ctx);
  ERR_clear_error();
  return ok;
}
