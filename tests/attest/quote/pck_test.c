/* tests/attest/pck_test.c: the PCK SGX extension parser on the extensions
 * of real PCK certificates (from the sample quotes), truncated, and with
 * fields missing or duplicated. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <openssl/bio.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "raloop/attest/quote/pck.h"

/* The extension value (DER SEQUENCE) of a PEM certificate file. */
static uint8_t *ext_of(const char *name, size_t *len) {
  const char *dir = getenv("RA_VECTORS");
  char path[1024];
  snprintf(path, sizeof path, "%s/quotes/%s", dir ? dir : RA_VECTORS_DIR, name);
  FILE *f = fopen(path, "r");
  if (!f) fail_msg("cannot open %s", path);
  X509 *x = PEM_read_X509(f, NULL, NULL, NULL);
  fclose(f);
  assert_non_null(x);
  ASN1_OBJECT *oid = OBJ_txt2obj(RA_PCK_SGX_EXT_OID, 1);
  int idx = X509_get_ext_by_OBJ(x, oid, -1);
  assert_true(idx >= 0);
  ASN1_OCTET_STRING *os = X509_EXTENSION_get_data(X509_get_ext(x, idx));
  *len = (size_t)ASN1_STRING_length(os);
  uint8_t *b = malloc(*len);
  memcpy(b, ASN1_STRING_get0_data(os), *len);
  ASN1_OBJECT_free(oid);
  X509_free(x);
  return b;
}

static void test_sample_pck(void **state) {
  size_t len;
  uint8_t *e = ext_of("sgx-collateral/pckCert.pem", &len);
  ra_pck_info p;
  assert_int_equal(ra_pck_parse_ext(e, len, &p), 0);
  static const uint8_t fmspc[6] = {0x00, 0x70, 0x7f, 0x00, 0x00, 0x00};
  assert_memory_equal(p.fmspc, fmspc, 6);
  assert_int_equal(p.pcesvn, 3);
  assert_int_equal(p.pceid[0], 0);
  assert_int_equal(p.pceid[1], 0);
  assert_int_equal(p.sgx_type, 0);
  assert_int_equal(p.cpusvn[1], 3);
  assert_memory_equal(p.tcb_comp_svn, p.cpusvn, 16); /* Intel's sample: same values */
  assert_false(p.has_platform_instance_id);

  /* every truncation is refused, never read past */
  for (size_t n = 0; n < len; n++) {
    uint8_t *c = malloc(n ? n : 1);
    memcpy(c, e, n);
    assert_int_equal(ra_pck_parse_ext(c, n, &p), -EBADMSG);
    free(c);
  }
  /* trailing bytes after the SEQUENCE */
  uint8_t *c = malloc(len + 1);
  memcpy(c, e, len);
  c[len] = 0;
  assert_int_equal(ra_pck_parse_ext(c, len + 1, &p), -EBADMSG);
  free(c);
  free(e);
}

/* Rewrites the last byte of the OID of top-level field `which` (1..5) to
 * 0x7f, making the field unknown (so missing). */
static void test_missing_fields(void **state) {
  size_t len;
  uint8_t *e = ext_of("tdx-collateral/pckCert.pem", &len);
  ra_pck_info p;
  assert_int_equal(ra_pck_parse_ext(e, len, &p), 0);
  static const uint8_t oid[] = {0x06, 0x0a, 0x2a, 0x86, 0x48, 0x86, 0xf8, 0x4d, 0x01, 0x0d, 0x01};
  for (int which = 1; which <= 5; which++) {
    uint8_t *c = malloc(len);
    memcpy(c, e, len);
    int found = 0;
    for (size_t i = 0; i + sizeof oid < len; i++)
      if (!memcmp(c + i, oid, sizeof oid) && c[i + sizeof oid] == which) {
        c[i + sizeof oid] = 0x7f;
        found = 1;
        break;
      }
    assert_true(found);
    assert_int_equal(ra_pck_parse_ext(c, len, &p), -EBADMSG);
    free(c);
  }
  /* a TCB component OID turned into a duplicate of another */
  static const uint8_t comp[] = {0x06, 0x0b, 0x2a, 0x86, 0x48, 0x86, 0xf8,
                                 0x4d, 0x01, 0x0d, 0x01, 0x02, 0x02};
  uint8_t *c = malloc(len);
  memcpy(c, e, len);
  uint8_t *at = memmem(c, len, comp, sizeof comp);
  assert_non_null(at);
  at[sizeof comp - 1] = 0x01; /* comp 02 -> comp 01 again */
  assert_int_equal(ra_pck_parse_ext(c, len, &p), -EBADMSG);
  free(c);
  free(e);
  assert_int_equal(ra_pck_parse_ext(NULL, 0, &p), -EBADMSG);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_sample_pck),
      cmocka_unit_test(test_missing_fields),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
