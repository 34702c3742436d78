/* tests/tls/certgen.h: self-signed P-256 certificates made in memory for
 * tests and fuzz targets (no key is ever committed). Header-only. */
#ifndef RA_TESTS_TLS_CERTGEN_H
#define RA_TESTS_TLS_CERTGEN_H

#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

typedef struct test_cert {
  X509 *cert;
  EVP_PKEY *key;
} test_cert;

/* cn also goes in a DNS SAN (and "IP:127.0.0.1" is added), valid from
 * not_before_days to not_after_days around now. */
static inline bool test_cert_make(test_cert *tc, const char *cn, long not_before_days,
                                  long not_after_days) {
  memset(tc, 0, sizeof *tc);
  EVP_PKEY *k = EVP_EC_gen("P-256");
  X509 *x = X509_new();
  if (!k || !x) goto fail;
  X509_set_version(x, 2);
  ASN1_INTEGER_set(X509_get_serialNumber(x), (long)(random() & 0x7fffffff) + 1);
  X509_gmtime_adj(X509_getm_notBefore(x), not_before_days * 86400L);
  X509_gmtime_adj(X509_getm_notAfter(x), not_after_days * 86400L);
  X509_set_pubkey(x, k);
  X509_NAME *n = X509_get_subject_name(x);
  X509_NAME_add_entry_by_txt(n, "CN", MBSTRING_ASC, (const unsigned char *)cn, -1, -1, 0);
  X509_set_issuer_name(x, n);
  char san[300];
  snprintf(san, sizeof san, "DNS:%s,IP:127.0.0.1", cn);
  X509V3_CTX v3;
  X509V3_set_ctx_nodb(&v3);
  X509V3_set_ctx(&v3, x, x, NULL, NULL, 0);
  X509_EXTENSION *ext = X509V3_EXT_conf_nid(NULL, &v3, NID_subject_alt_name, san);
  if (!ext) goto fail;
  X509_add_ext(x, ext, -1);
  X509_EXTENSION_free(ext);
  if (!X509_sign(x, k, EVP_sha256())) goto fail;
  tc->cert = x;
  tc->key = k;
  return true;
fail:
  X509_free(x);
  EVP_PKEY_free(k);
  return false;
}

static inline void test_cert_free(test_cert *tc) {
  X509_free(tc->cert);
  EVP_PKEY_free(tc->key);
  memset(tc, 0, sizeof *tc);
}

/* Writes the certificate (PEM) to path; false on error. */
static inline bool test_cert_write(const test_cert *tc, const char *cert_path,
                                   const char *key_path) {
  FILE *f = fopen(cert_path, "w");
  if (!f) return false;
  bool ok = PEM_write_X509(f, tc->cert) == 1;
  fclose(f);
  if (!ok || !key_path) return ok;
  f = fopen(key_path, "w");
  if (!f) return false;
  ok = PEM_write_PrivateKey(f, tc->key, NULL, NULL, 0, NULL, NULL) == 1;
  fclose(f);
  return ok;
}

#endif
