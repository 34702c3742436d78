/* tests/attest/quote/ratls_test.c: RA-TLS certificates (attest/quote/ratls.h)
 * with the simulated TEE: a round trip, and each way a certificate is
 * refused naming its step (tampered extension, a key that is not the bound
 * one, wrong measurements, expired, no extension, untrusted root). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "raloop/attest/quote/provider.h"
#include "raloop/attest/quote/quote.h"
#include "raloop/attest/quote/ratls.h"
#include "raloop/attest/quote/sim.h"
#include "raloop/attest/quote/verify.h"
#include "raloop/core/error.h"
#include "raloop/core/log.h"

static char g_tmp[256];
static ra_quote_provider *g_prov;
static ra_verifier *g_v;

static int setup(void **state) {
  (void)state;
  snprintf(g_tmp, sizeof g_tmp, "/tmp/ra-ratls-test-XXXXXX");
  assert_non_null(mkdtemp(g_tmp));
  assert_int_equal(ra_quote_provider_sim(g_tmp, &g_prov), 0);
  /* the client side pins only the sim's root, as ra-curl --trust-sim */
  assert_int_equal(ra_verifier_new(RA_VERIFIER_NO_DEFAULT_ROOT, &g_v), 0);
  assert_true(ra_verifier_add_root_file(g_v, ra_quote_provider_sim_root(g_prov)) > 0);
  return 0;
}

static int teardown(void **state) {
  (void)state;
  ra_verifier_free(g_v);
  ra_quote_provider_free(g_prov);
  char cmd[400];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", g_tmp);
  return system(cmd) == 0 ? 0 : -1;
}

/* PEM certificate -> DER (malloc'd) */
static uint8_t *pem_to_der(const char *pem, size_t *len) {
  BIO *b = BIO_new_mem_buf(pem, -1);
  X509 *x = PEM_read_bio_X509(b, NULL, NULL, NULL);
  BIO_free(b);
  assert_non_null(x);
  unsigned char *d = NULL;
  int n = i2d_X509(x, &d);
  X509_free(x);
  assert_true(n > 0);
  uint8_t *out = malloc((size_t)n);
  memcpy(out, d, (size_t)n);
  OPENSSL_free(d);
  *len = (size_t)n;
  return out;
}

/* The expected measurements of the sim's default TD. */
static ra_tdx_expect sim_mrtd(uint8_t byte) {
  ra_tdx_expect e;
  memset(&e, 0, sizeof e);
  e.has = RA_TDX_MRTD;
  memset(e.mrtd, byte, sizeof e.mrtd);
  return e;
}

static int verify_pem(const char *pem, const ra_policy *pol, const ra_ratls_verify_opts *ro,
                      ra_ratls_result *res) {
  size_t len;
  uint8_t *der = pem_to_der(pem, &len);
  int rc = ra_ratls_verify_der(g_v, der, len, NULL, pol, ro, res);
  free(der);
  return rc;
}

/* A self-signed certificate of our own making, with an extension whose
 * extnValue is `val` exactly (raw bytes: tests put malformed ones in). */
static X509 *make_cert(EVP_PKEY *key, const char *oid, const uint8_t *val, size_t len, int dup) {
  X509 *x = X509_new();
  X509_set_version(x, X509_VERSION_3);
  ASN1_INTEGER_set(X509_get_serialNumber(x), 7);
  X509_gmtime_adj(X509_getm_notBefore(x), -3600);
  X509_gmtime_adj(X509_getm_notAfter(x), 86400);
  X509_NAME *n = X509_get_subject_name(x);
  X509_NAME_add_entry_by_txt(n, "CN", MBSTRING_ASC, (const unsigned char *)"t", -1, -1, 0);
  X509_set_issuer_name(x, n);
  X509_set_pubkey(x, key);
  for (int i = 0; oid && i <= dup; i++) {
    ASN1_OBJECT *obj = OBJ_txt2obj(oid, 1);
    ASN1_OCTET_STRING *os = ASN1_OCTET_STRING_new();
    ASN1_OCTET_STRING_set(os, val, (int)len);
    X509_EXTENSION *e = X509_EXTENSION_create_by_OBJ(NULL, obj, 0, os);
    assert_non_null(e);
    X509_add_ext(x, e, -1);
    X509_EXTENSION_free(e);
    ASN1_OCTET_STRING_free(os);
    ASN1_OBJECT_free(obj);
  }
  assert_true(X509_sign(x, key, EVP_sha256()) > 0);
  return x;
}

/* DER OCTET STRING(data) */
static uint8_t *octet(const uint8_t *data, size_t len, size_t *outlen) {
  ASN1_OCTET_STRING *os = ASN1_OCTET_STRING_new();
  ASN1_OCTET_STRING_set(os, data, (int)len);
  unsigned char *d = NULL;
  int n = i2d_ASN1_OCTET_STRING(os, &d);
  ASN1_OCTET_STRING_free(os);
  uint8_t *out = malloc((size_t)n);
  memcpy(out, d, (size_t)n);
  OPENSSL_free(d);
  *outlen = (size_t)n;
  return out;
}

/* ---- tests ---------------------------------------------------------------- */

static void test_round_trip(void **state) {
  (void)state;
  const char *names[] = {"localhost", "enclave.test"};
  const uint8_t app_id[20] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20};
  const char *evlog = "[]";
  ra_ratls_cert_opts o = {.common_name = "ratls-test",
                          .dns_names = names,
                          .n_dns_names = 2,
                          .app_id = app_id,
                          .app_id_len = sizeof app_id,
                          .event_log = (const uint8_t *)evlog,
                          .event_log_len = 2};
  ra_ratls_cert c;
  assert_int_equal(ra_ratls_generate(g_prov, &o, &c), 0);
  assert_true(c.bound);
  assert_non_null(strstr(c.cert_pem, "BEGIN CERTIFICATE"));
  assert_non_null(strstr(c.key_pem, "PRIVATE KEY"));

  /* the key given is the certificate's, and the SANs are there */
  BIO *b = BIO_new_mem_buf(c.cert_pem, -1);
  X509 *x = PEM_read_bio_X509(b, NULL, NULL, NULL);
  BIO_free(b);
  b = BIO_new_mem_buf(c.key_pem, -1);
  EVP_PKEY *k = PEM_read_bio_PrivateKey(b, NULL, NULL, NULL);
  BIO_free(b);
  assert_non_null(x);
  assert_non_null(k);
  assert_int_equal(X509_check_private_key(x, k), 1);
  assert_int_equal(X509_check_host(x, "enclave.test", 0, 0, NULL), 1);
  assert_int_equal(EVP_PKEY_get_base_id(k), EVP_PKEY_EC);

  /* extraction: the quote's report_data is SHA-512("ratls-cert:" || SPKI) */
  ra_ratls_ext e;
  assert_int_equal(ra_ratls_parse_x509(x, &e), 0);
  assert_non_null(e.quote);
  assert_int_equal(e.app_id_len, sizeof app_id);
  assert_memory_equal(e.app_id, app_id, sizeof app_id);
  assert_int_equal(e.event_log_len, 2);
  uint8_t rd[64];
  assert_int_equal(ra_ratls_report_data(e.spki, e.spki_len, rd), 0);
  assert_memory_equal(rd, c.report_data, 64);
  ra_quote q;
  assert_int_equal(ra_quote_parse(e.quote, e.quote_len, &q), 0);
  assert_memory_equal(ra_quote_report_data(&q), rd, 64);
  ra_ratls_ext_clear(&e);

  /* accepted with the right MRTD, and with no measurement at all (the
   * binding is the check, as the tunnel's X25519 binding) */
  ra_tdx_expect want = sim_mrtd(0x5d);
  ra_policy pol = {.tdx = &want, .n_tdx = 1};
  ra_ratls_result res;
  int rc = ra_ratls_verify_x509(g_v, x, NULL, &pol, NULL, &res);
  if (rc) fprintf(stderr, "%s\n", res.msg);
  assert_int_equal(rc, 0);
  assert_int_equal(res.step, RA_RATLS_OK);
  assert_true(res.bound);
  assert_true(res.quote_ran);
  assert_int_equal(res.vd.err, 0);
  assert_true(res.has_app_id);
  assert_true(res.has_event_log);
  ra_policy none = {0};
  assert_int_equal(verify_pem(c.cert_pem, &none, NULL, &res), 0);

  /* the caller's callback still runs after the binding */
  X509_free(x);
  EVP_PKEY_free(k);
  ra_ratls_cert_clear(&c);
}

/* Two certificates from the same sim carry different keys and quotes. */
static void test_renewal_is_fresh(void **state) {
  (void)state;
  ra_ratls_cert a, b;
  assert_int_equal(ra_ratls_generate(g_prov, NULL, &a), 0);
  assert_int_equal(ra_ratls_generate(g_prov, NULL, &b), 0);
  assert_string_not_equal(a.key_pem, b.key_pem);
  assert_memory_not_equal(a.report_data, b.report_data, 64);
  ra_ratls_cert_clear(&a);
  ra_ratls_cert_clear(&b);
}

static void test_wrong_measurement(void **state) {
  (void)state;
  ra_ratls_cert c;
  assert_int_equal(ra_ratls_generate(g_prov, NULL, &c), 0);
  ra_tdx_expect want = sim_mrtd(0x11);
  ra_policy pol = {.tdx = &want, .n_tdx = 1};
  ra_ratls_result res;
  assert_int_equal(verify_pem(c.cert_pem, &pol, NULL, &res), -EACCES);
  assert_int_equal(res.step, RA_RATLS_STEP_QUOTE);
  assert_true(res.bound); /* the binding held: the measurement failed */
  assert_int_equal(res.vd.err, RA_ERR_MEASUREMENT);
  assert_non_null(strstr(res.msg, "quote: measurements"));
  ra_ratls_cert_clear(&c);
}

static void test_untrusted_root(void **state) {
  (void)state;
  ra_ratls_cert c;
  assert_int_equal(ra_ratls_generate(g_prov, NULL, &c), 0);
  ra_verifier *intel_only;
  assert_int_equal(ra_verifier_new(0, &intel_only), 0);
  size_t len;
  uint8_t *der = pem_to_der(c.cert_pem, &len);
  ra_policy none = {0};
  ra_ratls_result res;
  assert_int_equal(ra_ratls_verify_der(intel_only, der, len, NULL, &none, NULL, &res), -EACCES);
  assert_int_equal(res.step, RA_RATLS_STEP_QUOTE);
  assert_int_equal(res.vd.err, RA_ERR_ROOT_UNTRUSTED);
  free(der);
  ra_verifier_free(intel_only);
  ra_ratls_cert_clear(&c);
}

static void test_expired_and_not_yet_valid(void **state) {
  (void)state;
  time_t now = time(NULL);
  ra_ratls_cert_opts o = {.not_before = now - 10 * 86400, .not_after = now - 86400};
  ra_ratls_cert c;
  assert_int_equal(ra_ratls_generate(g_prov, &o, &c), 0);
  ra_policy none = {0};
  ra_ratls_result res;
  assert_int_equal(verify_pem(c.cert_pem, &none, NULL, &res), -EACCES);
  assert_int_equal(res.step, RA_RATLS_STEP_VALIDITY);
  assert_false(res.quote_ran);
  assert_non_null(strstr(res.msg, "validity: certificate expired"));
  /* a TLS stack that checked the dates itself may skip them */
  ra_ratls_verify_opts skip = {.skip_validity = true};
  assert_int_equal(verify_pem(c.cert_pem, &none, &skip, &res), 0);
  ra_ratls_cert_clear(&c);

  o.not_before = now + 86400;
  o.not_after = now + 2 * 86400;
  assert_int_equal(ra_ratls_generate(g_prov, &o, &c), 0);
  assert_int_equal(verify_pem(c.cert_pem, &none, NULL, &res), -EACCES);
  assert_int_equal(res.step, RA_RATLS_STEP_VALIDITY);
  assert_non_null(strstr(res.msg, "not valid before"));
  ra_ratls_cert_clear(&c);
}

/* The quote of a good certificate moved into a certificate of another
 * key: refused as "key not bound" though the quote itself is fine. */
static void test_key_not_bound(void **state) {
  (void)state;
  ra_ratls_cert c;
  assert_int_equal(ra_ratls_generate(g_prov, NULL, &c), 0);
  size_t len;
  uint8_t *der = pem_to_der(c.cert_pem, &len);
  ra_ratls_ext e;
  assert_int_equal(ra_ratls_parse_der(der, len, &e), 0);
  size_t vlen;
  uint8_t *val = octet(e.quote, e.quote_len, &vlen);
  EVP_PKEY *other = EVP_EC_gen("P-256");
  X509 *x = make_cert(other, RA_RATLS_OID_QUOTE, val, vlen, 0);
  ra_policy none = {0};
  ra_ratls_result res;
  assert_int_equal(ra_ratls_verify_x509(g_v, x, NULL, &none, NULL, &res), -EACCES);
  assert_int_equal(res.step, RA_RATLS_STEP_KEY_NOT_BOUND);
  assert_false(res.bound);
  assert_non_null(strstr(res.msg, "key not bound"));
  /* skip_binding (for quotes that cannot bind) lets the quote's own checks
   * decide: with a measurement it passes, with none the policy is empty */
  ra_ratls_verify_opts skip = {.skip_binding = true};
  assert_int_equal(ra_ratls_verify_x509(g_v, x, NULL, &none, &skip, &res), -EACCES);
  assert_int_equal(res.step, RA_RATLS_STEP_QUOTE);
  assert_int_equal(res.vd.err, RA_ERR_POLICY_EMPTY);
  ra_tdx_expect want = sim_mrtd(0x5d);
  ra_policy pol = {.tdx = &want, .n_tdx = 1};
  assert_int_equal(ra_ratls_verify_x509(g_v, x, NULL, &pol, &skip, &res), 0);
  X509_free(x);
  EVP_PKEY_free(other);
  free(val);
  free(der);
  ra_ratls_ext_clear(&e);
  ra_ratls_cert_clear(&c);
}

/* Bytes of the quote changed inside the certificate. */
static void test_tampered_extension(void **state) {
  (void)state;
  ra_ratls_cert c;
  assert_int_equal(ra_ratls_generate(g_prov, NULL, &c), 0);
  size_t len;
  uint8_t *der = pem_to_der(c.cert_pem, &len);
  ra_ratls_ext e;
  assert_int_equal(ra_ratls_parse_der(der, len, &e), 0);
  uint8_t *at = memmem(der, len, e.quote, e.quote_len);
  assert_non_null(at);
  ra_policy none = {0};
  ra_ratls_result res;

  /* report_data (TDX v4: header 48 + TD report offset 520) */
  at[48 + 520] ^= 1;
  assert_int_equal(ra_ratls_verify_der(g_v, der, len, NULL, &none, NULL, &res), -EACCES);
  assert_int_equal(res.step, RA_RATLS_STEP_KEY_NOT_BOUND);
  at[48 + 520] ^= 1;
  assert_int_equal(ra_ratls_verify_der(g_v, der, len, NULL, &none, NULL, &res), 0);

  /* MRTD (TD report offset 136): the quote's signature no longer holds */
  at[48 + 136] ^= 1;
  assert_int_equal(ra_ratls_verify_der(g_v, der, len, NULL, &none, NULL, &res), -EACCES);
  assert_int_equal(res.step, RA_RATLS_STEP_QUOTE);
  assert_int_equal(res.vd.err, RA_ERR_QUOTE_SIGNATURE);
  assert_non_null(strstr(res.msg, "quote_signature"));
  at[48 + 136] ^= 1;

  /* the OCTET STRING around the quote: its tag */
  uint8_t *tag = at - 4; /* 04 82 LL LL before a quote of 256..65535 bytes */
  assert_int_equal(tag[0], 0x04);
  tag[0] = 0x0c;
  assert_int_equal(ra_ratls_verify_der(g_v, der, len, NULL, &none, NULL, &res), -EACCES);
  assert_int_equal(res.step, RA_RATLS_STEP_EXTENSION);
  tag[0] = 0x04;

  /* truncated quote: its OCTET STRING made shorter (the certificate then
   * does not parse at all: the lengths around it disagree) */
  tag[3] ^= 0x10;
  assert_int_equal(ra_ratls_verify_der(g_v, der, len, NULL, &none, NULL, &res), -EACCES);
  assert_true(res.step == RA_RATLS_STEP_CERT || res.step == RA_RATLS_STEP_EXTENSION);
  tag[3] ^= 0x10;

  free(der);
  ra_ratls_ext_clear(&e);
  ra_ratls_cert_clear(&c);
}

static void test_no_or_malformed_extension(void **state) {
  (void)state;
  EVP_PKEY *k = EVP_EC_gen("P-256");
  ra_policy none = {0};
  ra_ratls_result res;

  X509 *plain = make_cert(k, NULL, NULL, 0, 0);
  assert_int_equal(ra_ratls_verify_x509(g_v, plain, NULL, &none, NULL, &res), -EACCES);
  assert_int_equal(res.step, RA_RATLS_STEP_NO_QUOTE);
  assert_string_equal(ra_ratls_step_name(res.step), "no quote extension");
  X509_free(plain);

  /* dstack's SCALE attestation only: said so */
  size_t vlen;
  uint8_t *val = octet((const uint8_t *)"\x00\x01", 2, &vlen);
  X509 *scale = make_cert(k, RA_RATLS_OID_ATTESTATION, val, vlen, 0);
  assert_int_equal(ra_ratls_verify_x509(g_v, scale, NULL, &none, NULL, &res), -EACCES);
  assert_int_equal(res.step, RA_RATLS_STEP_NO_QUOTE);
  assert_non_null(strstr(res.msg, "SCALE"));
  X509_free(scale);

  /* the quote extension twice */
  X509 *twice = make_cert(k, RA_RATLS_OID_QUOTE, val, vlen, 1);
  assert_int_equal(ra_ratls_verify_x509(g_v, twice, NULL, &none, NULL, &res), -EACCES);
  assert_int_equal(res.step, RA_RATLS_STEP_EXTENSION);
  X509_free(twice);

  /* raw bytes, not an OCTET STRING */
  X509 *raw = make_cert(k, RA_RATLS_OID_QUOTE, (const uint8_t *)"\x30\x00", 2, 0);
  assert_int_equal(ra_ratls_verify_x509(g_v, raw, NULL, &none, NULL, &res), -EACCES);
  assert_int_equal(res.step, RA_RATLS_STEP_EXTENSION);
  X509_free(raw);

  /* an OCTET STRING with garbage in it: the quote does not parse */
  X509 *junk = make_cert(k, RA_RATLS_OID_QUOTE, val, vlen, 0);
  assert_int_equal(ra_ratls_verify_x509(g_v, junk, NULL, &none, NULL, &res), -EACCES);
  assert_int_equal(res.step, RA_RATLS_STEP_QUOTE);
  assert_true(res.quote_ran);
  X509_free(junk);

  /* not a certificate */
  assert_int_equal(ra_ratls_verify_der(g_v, (const uint8_t *)"\x30\x03\x02\x01\x00", 5, NULL,
                                       &none, NULL, &res),
                   -EACCES);
  assert_int_equal(res.step, RA_RATLS_STEP_CERT);
  free(val);
  EVP_PKEY_free(k);
}

static void test_octet_string_decoder(void **state) {
  (void)state;
  const uint8_t *c;
  size_t n;
  assert_int_equal(ra_ratls_octet_string((const uint8_t *)"\x04\x02hi", 4, &c, &n), 0);
  assert_int_equal(n, 2);
  assert_memory_equal(c, "hi", 2);
  assert_int_equal(ra_ratls_octet_string((const uint8_t *)"\x04\x00", 2, &c, &n), 0);
  assert_int_equal(n, 0);
  /* trailing byte, short, indefinite length, non-minimal lengths */
  assert_int_equal(ra_ratls_octet_string((const uint8_t *)"\x04\x01hi", 4, &c, &n), -EBADMSG);
  assert_int_equal(ra_ratls_octet_string((const uint8_t *)"\x04\x03hi", 4, &c, &n), -EBADMSG);
  assert_int_equal(ra_ratls_octet_string((const uint8_t *)"\x04\x80hi\x00\x00", 6, &c, &n),
                   -EBADMSG);
  assert_int_equal(ra_ratls_octet_string((const uint8_t *)"\x04\x81\x02hi", 5, &c, &n), -EBADMSG);
  assert_int_equal(ra_ratls_octet_string((const uint8_t *)"\x04\x82\x00\x02hi", 6, &c, &n),
                   -EBADMSG);
  assert_int_equal(ra_ratls_octet_string((const uint8_t *)"\x04", 1, &c, &n), -EBADMSG);
  assert_int_equal(ra_ratls_octet_string(NULL, 0, &c, &n), -EBADMSG);
  uint8_t big[3 + 300] = {0x04, 0x82, 0x01, 0x2c};
  assert_int_equal(ra_ratls_octet_string(big, 4 + 300 - 1, &c, &n), -EBADMSG);
  uint8_t big2[4 + 300] = {0x04, 0x82, 0x01, 0x2c};
  assert_int_equal(ra_ratls_octet_string(big2, sizeof big2, &c, &n), 0);
  assert_int_equal(n, 300);
}

/* The file provider cannot bind: the certificate says so and verifiers
 * refuse it unless told to skip the binding. */
static void test_file_provider(void **state) {
  (void)state;
  ra_sim *sim;
  assert_int_equal(ra_sim_open(g_tmp, &sim), 0);
  uint8_t rd[64] = {0}, *quote;
  size_t qlen;
  assert_int_equal(ra_sim_quote(sim, NULL, rd, &quote, &qlen), 0);
  ra_sim_free(sim);
  char path[512];
  snprintf(path, sizeof path, "%s/fixed.quote", g_tmp);
  FILE *f = fopen(path, "wb");
  assert_non_null(f);
  assert_int_equal(fwrite(quote, 1, qlen, f), qlen);
  fclose(f);
  free(quote);
  ra_quote_provider *fp;
  assert_int_equal(ra_quote_provider_file(path, &fp), 0);
  ra_ratls_cert c;
  assert_int_equal(ra_ratls_generate(fp, NULL, &c), 0);
  assert_false(c.bound);
  ra_policy none = {0};
  ra_ratls_result res;
  assert_int_equal(verify_pem(c.cert_pem, &none, NULL, &res), -EACCES);
  assert_int_equal(res.step, RA_RATLS_STEP_KEY_NOT_BOUND);
  ra_tdx_expect want = sim_mrtd(0x5d);
  ra_policy pol = {.tdx = &want, .n_tdx = 1};
  ra_ratls_verify_opts skip = {.skip_binding = true};
  assert_int_equal(verify_pem(c.cert_pem, &pol, &skip, &res), 0);
  assert_false(res.bound);
  ra_ratls_cert_clear(&c);
  ra_quote_provider_free(fp);
}

/* ---- configfs-tsm: a fake kernel tree (as tests/attest/quote/provider_test.c)
 * whose outblob is a FIFO served by a thread answering with a sim quote for
 * the report_data written to inblob. */
typedef struct fake_kernel {
  char entry[512];
  int rc;
} fake_kernel;

static void *fake_kernel_run(void *arg) {
  fake_kernel *k = arg;
  char path[600];
  k->rc = -1;
  snprintf(path, sizeof path, "%s/outblob", k->entry);
  int fd = -1;
  for (int i = 0; i < 5000 && fd < 0; i++) { /* up to 5 s for the reader */
    fd = open(path, O_WRONLY | O_NONBLOCK);
    if (fd < 0) {
      if (errno != ENXIO) return NULL;
      struct timespec ts = {0, 1000000};
      nanosleep(&ts, NULL);
    }
  }
  if (fd < 0) return NULL;
  fcntl(fd, F_SETFL, 0);
  uint8_t rd[64];
  snprintf(path, sizeof path, "%s/inblob", k->entry);
  FILE *f = fopen(path, "rb");
  size_t n = f ? fread(rd, 1, sizeof rd, f) : 0;
  if (f) fclose(f);
  ra_sim *sim;
  uint8_t *q = NULL;
  size_t qlen = 0;
  if (n == 64 && ra_sim_open(g_tmp, &sim) == 0) {
    if (ra_sim_quote(sim, NULL, rd, &q, &qlen) == 0 && write(fd, q, qlen) == (ssize_t)qlen) k->rc = 0;
    ra_sim_free(sim);
  }
  free(q);
  close(fd);
  return NULL;
}

static void put(const char *dir, const char *name, const char *text) {
  char path[600];
  snprintf(path, sizeof path, "%s/%s", dir, name);
  FILE *f = fopen(path, "wb");
  assert_non_null(f);
  fputs(text, f);
  fclose(f);
}

static void test_tsm_provider(void **state) {
  (void)state;
  char root[300], entry[400], fifo[450];
  snprintf(root, sizeof root, "%s/tsm", g_tmp);
  snprintf(entry, sizeof entry, "%s/svc", root);
  snprintf(fifo, sizeof fifo, "%s/outblob", entry);
  assert_int_equal(mkdir(root, 0700), 0);
  assert_int_equal(mkdir(entry, 0700), 0);
  put(entry, "inblob", "");
  put(entry, "generation", "1\n");
  put(entry, "provider", "tdx_guest\n");
  assert_int_equal(mkfifo(fifo, 0600), 0);
  ra_quote_provider *tp;
  assert_int_equal(ra_quote_provider_tsm(root, "svc", &tp), 0);
  fake_kernel k;
  memset(&k, 0, sizeof k);
  snprintf(k.entry, sizeof k.entry, "%s", entry);
  pthread_t th;
  assert_int_equal(pthread_create(&th, NULL, fake_kernel_run, &k), 0);
  ra_ratls_cert c;
  int rc = ra_ratls_generate(tp, NULL, &c);
  pthread_join(th, NULL);
  assert_int_equal(rc, 0);
  assert_int_equal(k.rc, 0);
  assert_true(c.bound);
  ra_tdx_expect want = sim_mrtd(0x5d);
  ra_policy pol = {.tdx = &want, .n_tdx = 1};
  ra_ratls_result res;
  assert_int_equal(verify_pem(c.cert_pem, &pol, NULL, &res), 0);
  assert_true(res.bound);
  ra_ratls_cert_clear(&c);
  ra_quote_provider_free(tp);
}

/* A custom provider without get_report cannot make RA-TLS certificates. */
static int no_get(void *self, const uint8_t pub[32], ra_quote_evidence *ev) {
  (void)self;
  (void)pub;
  (void)ev;
  return -EIO;
}

static void test_custom_provider(void **state) {
  (void)state;
  static const ra_quote_provider_ops ops = {"custom", no_get, NULL};
  ra_quote_provider *cp;
  assert_int_equal(ra_quote_provider_new(&ops, NULL, true, false, &cp), 0);
  ra_ratls_cert c;
  assert_int_equal(ra_ratls_generate(cp, NULL, &c), -ENOTSUP);
  assert_null(c.cert_pem);
  ra_quote_provider_free(cp);
}

static int refuse_cb(const ra_quote *q, ra_verdict *vd, void *ud) {
  (void)q;
  (void)vd;
  (*(int *)ud)++;
  return 1;
}

static void test_callback_and_bad_args(void **state) {
  (void)state;
  ra_ratls_cert c;
  assert_int_equal(ra_ratls_generate(g_prov, NULL, &c), 0);
  int calls = 0;
  ra_policy pol = {.callback = refuse_cb, .callback_ud = &calls};
  ra_ratls_result res;
  assert_int_equal(verify_pem(c.cert_pem, &pol, NULL, &res), -EACCES);
  assert_int_equal(calls, 1);
  assert_int_equal(res.vd.err, RA_ERR_CALLBACK);
  /* the tunnel's binding does not belong in an RA-TLS policy */
  uint8_t pub[32] = {0};
  ra_policy x = {.x25519_pub = pub};
  size_t len;
  uint8_t *der = pem_to_der(c.cert_pem, &len);
  assert_int_equal(ra_ratls_verify_der(g_v, der, len, NULL, &x, NULL, &res), -EINVAL);
  assert_int_equal(ra_ratls_verify_der(NULL, der, len, NULL, &pol, NULL, &res), -EINVAL);
  ra_ratls_cert_clear(&c);
  assert_int_equal(ra_ratls_generate(NULL, NULL, &c), -EINVAL);
  const char *bad[] = {"a,b"};
  ra_ratls_cert_opts o = {.dns_names = bad, .n_dns_names = 1};
  ra_ratls_cert d;
  assert_int_equal(ra_ratls_generate(g_prov, &o, &d), -EINVAL);
  free(der);
  ra_ratls_cert_clear(&c);
}

int main(void) {
  ra_log_set_level(RA_LOG_OFF);
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_round_trip, setup, teardown),
      cmocka_unit_test_setup_teardown(test_renewal_is_fresh, setup, teardown),
      cmocka_unit_test_setup_teardown(test_wrong_measurement, setup, teardown),
      cmocka_unit_test_setup_teardown(test_untrusted_root, setup, teardown),
      cmocka_unit_test_setup_teardown(test_expired_and_not_yet_valid, setup, teardown),
      cmocka_unit_test_setup_teardown(test_key_not_bound, setup, teardown),
      cmocka_unit_test_setup_teardown(test_tampered_extension, setup, teardown),
      cmocka_unit_test_setup_teardown(test_no_or_malformed_extension, setup, teardown),
      cmocka_unit_test(test_octet_string_decoder),
      cmocka_unit_test_setup_teardown(test_file_provider, setup, teardown),
      cmocka_unit_test_setup_teardown(test_callback_and_bad_args, setup, teardown),
      cmocka_unit_test_setup_teardown(test_tsm_provider, setup, teardown),
      cmocka_unit_test_setup_teardown(test_custom_provider, setup, teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
