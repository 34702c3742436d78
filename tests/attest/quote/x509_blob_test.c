/* tests/attest/quote/x509_blob_test.c: the one PEM block reader of
 * attest/quote/x509.c behind ra_certs_parse, ra_certs_split and
 * ra_intel_root_der: the three read a blob alike (PEM, DER, padding), and
 * refuse alike (an empty block, an END missing or borrowed from the next
 * block, bad base64, trailing bytes); the compiled-in root's DER is the
 * one its PEM holds. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include <openssl/x509.h>

#include "raloop/attest/quote/verify.h"
#include "raloop/attest/quote/x509_internal.h"

static const char BEGIN[] = "-----BEGIN CERTIFICATE-----";
static const char END[] = "-----END CERTIFICATE-----";

static size_t root_der(uint8_t *out) {
  size_t n = ra_intel_root_der(out, 2048);
  assert_true(n > 100);
  return n;
}

/* Whether parse and split agree on blob: both read `want` certificates
 * (0: both refuse it). */
static void agree(const char *blob, size_t len, int want) {
  STACK_OF(X509) *sk = ra_certs_parse(NULL, (const uint8_t *)blob, len);
  uint8_t *buf = malloc(len + 1);
  ra_der_span spans[RA_MAX_CHAIN_CERTS];
  assert_non_null(buf);
  int n = ra_certs_split((const uint8_t *)blob, len, buf, len, spans, RA_MAX_CHAIN_CERTS);
  if (want) {
    assert_non_null(sk);
    assert_int_equal(sk_X509_num(sk), want);
    assert_int_equal(n, want);
    for (int i = 0; i < n; i++) {
      uint8_t *enc = NULL;
      int elen = i2d_X509(sk_X509_value(sk, i), &enc);
      assert_int_equal((size_t)elen, spans[i].len);
      assert_memory_equal(enc, spans[i].p, spans[i].len);
      OPENSSL_free(enc);
    }
  } else {
    assert_null(sk);
    assert_true(n < 0);
  }
  sk_X509_pop_free(sk, X509_free);
  free(buf);
}

static void test_root_der_is_its_pem(void **state) {
  (void)state;
  uint8_t der[2048];
  size_t n = root_der(der);
  const char *pem = ra_intel_sgx_root_ca_pem;
  STACK_OF(X509) *sk = ra_certs_parse(NULL, (const uint8_t *)pem, strlen(pem));
  assert_non_null(sk);
  uint8_t *enc = NULL;
  int elen = i2d_X509(sk_X509_value(sk, 0), &enc);
  assert_int_equal((size_t)elen, n);
  assert_memory_equal(enc, der, n);
  OPENSSL_free(enc);
  sk_X509_pop_free(sk, X509_free);
  assert_int_equal(ra_intel_root_der(der, 100), 0); /* too small */
}

static void test_blobs_agree(void **state) {
  (void)state;
  const char *pem = ra_intel_sgx_root_ca_pem;
  size_t pl = strlen(pem);
  uint8_t der[2048];
  size_t dl = root_der(der);
  char *b = malloc(3 * pl + dl + 64);
  assert_non_null(b);
  /* PEM, padding, DER, PEM */
  size_t n = 0;
  memcpy(b + n, pem, pl), n += pl;
  memcpy(b + n, "\n\0 \t", 4), n += 4;
  memcpy(b + n, der, dl), n += dl;
  memcpy(b + n, pem, pl), n += pl;
  agree(b, n, 3);
  /* an empty block */
  n = (size_t)sprintf(b, "%s\n%s\n", BEGIN, END);
  agree(b, n, 0);
  /* no END */
  n = pl - strlen(END) - 1;
  memcpy(b, pem, n);
  agree(b, n, 0);
  /* this block's END garbled: the next block's END is not borrowed */
  char *e = strstr(memcpy(b, pem, pl), END);
  e[5] = 'X';
  memcpy(b + pl, pem, pl);
  agree(b, 2 * pl, 0);
  /* bad base64 */
  memcpy(b, pem, pl);
  b[strlen(BEGIN) + 3] = '*';
  agree(b, pl, 0);
  /* trailing bytes after a DER certificate */
  memcpy(b, der, dl);
  b[dl] = 0x30;
  agree(b, dl + 1, 0);
  free(b);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_root_der_is_its_pem),
      cmocka_unit_test(test_blobs_agree),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
