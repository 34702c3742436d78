/* tests/attest/quote/snp_report_test.c: the SEV-SNP report parser, the
 * VCEK extension parser and the key binding, against the public GCP
 * reports of canvasxyz/teekit (tests/vectors/snp/) with the field values
 * the reference's own tests state, and against hand-made reports of each
 * version. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "raloop/attest/quote/snp_cert_table.h"
#include "raloop/attest/quote/snp_report.h"
#include "raloop/attest/quote/snp_vcek.h"
#include "raloop/core/error.h"
#include "raloop/core/file.h"

static uint8_t *load(const char *name, size_t *len) {
  char path[512];
  const char *dir = getenv("RA_VECTORS") ? getenv("RA_VECTORS") : RA_VECTORS_DIR;
  snprintf(path, sizeof path, "%s/snp/%s", dir, name);
  uint8_t *d = NULL;
  assert_int_equal(ra_file_read(path, 1 << 20, &d, len), 0);
  return d;
}

static void hex(const uint8_t *p, size_t n, char *out) {
  for (size_t i = 0; i < n; i++) sprintf(out + 2 * i, "%02x", p[i]);
}

static void test_gcp_fields(void **state) {
  (void)state;
  size_t n;
  uint8_t *b = load("sev-gcp-reportdata.bin", &n);
  assert_int_equal(n, 1184);
  assert_true(ra_snp_report_detect(b, n));
  ra_snp_report r;
  assert_int_equal(ra_snp_report_parse(b, n, &r), 0);
  /* as packages/qvl/test/quote-sev-snp.test.ts states them */
  assert_int_equal(r.version, 5);
  assert_int_equal(r.guest_svn, 0);
  assert_int_equal(r.vmpl, 1);
  assert_int_equal(r.sig_algo, 1);
  assert_false(r.policy & RA_SNP_POLICY_DEBUG);
  assert_int_equal(r.policy & 0xff, 0);
  assert_int_equal((r.policy >> 8) & 0xff, 0);
  char h[200];
  hex(r.measurement, 48, h);
  assert_string_equal(
      h, "b747d55452e0b9e9079770a49e397c5e6d9573581e246da7baac4f28b5cdc5b1b6d19251b8ee600fd16a37"
         "08f58406f3");
  hex(r.report_data, 64, h);
  assert_string_equal(
      h, "32fc4f6c1971cbf91566231f8d6153eeb9d093aa94306cb48d39bcc4861a3d395f149876a37bc91332fe"
         "493f46294fd135d5b95d363ae96352b8c45f906079f5");
  /* and what the bytes say beyond that */
  assert_int_equal(r.policy, 0x30000);
  assert_int_equal(r.platform_info, 0x25);
  assert_int_equal(r.signing_key, RA_SNP_KEY_VCEK);
  assert_true(r.has_cpuid);
  assert_int_equal(r.cpuid_family, 0x19);
  assert_int_equal(ra_snp_report_product(&r), RA_SNP_PRODUCT_MILAN);
  ra_snp_tcb t;
  ra_snp_tcb_decode(r.reported_tcb, RA_SNP_PRODUCT_MILAN, &t);
  assert_int_equal(t.bootloader, 4);
  assert_int_equal(t.tee, 0);
  assert_int_equal(t.snp, 0x1b);
  assert_int_equal(t.microcode, 0xde);
  assert_int_equal(r.current_major, 1);
  assert_int_equal(r.current_minor, 55);
  assert_ptr_equal(r.sig_r, b + 672);
  free(b);

  b = load("sev-gcp.bin", &n);
  assert_int_equal(ra_snp_report_parse(b, n, &r), 0);
  assert_int_equal(r.version, 5);
  assert_int_equal(r.vmpl, 0);
  free(b);
}

static void test_binding_vector(void **state) {
  (void)state;
  /* sev-gcp-x25519-bound.txt: NONCE and X25519_KEY; report_data binds them */
  static const uint8_t nonce[32] = {0xdf, 0x82, 0x30, 0x6f, 0xf3, 0x8a, 0x9d, 0xa0,
                                    0x23, 0x85, 0x4a, 0xf9, 0x47, 0xd0, 0x2a, 0x87,
                                    0x8c, 0xfa, 0xb1, 0xb4, 0x0a, 0x79, 0x38, 0x23,
                                    0xff, 0x41, 0xdc, 0x51, 0x21, 0x3b, 0x96, 0xaa};
  static const uint8_t key[32] = {0x03, 0xa8, 0x10, 0x70, 0x30, 0xfa, 0xbe, 0xac, 0x06, 0xb0, 0xdf,
                                  0x4e, 0xf8, 0x65, 0x76, 0x39, 0x18, 0xb5, 0xe2, 0xa9, 0xfa, 0x03,
                                  0x0e, 0x20, 0x02, 0x5a, 0x43, 0x15, 0xda, 0xb4, 0xb2, 0xa6};
  size_t n;
  uint8_t *b = load("sev-gcp-x25519-bound.bin", &n);
  ra_snp_report r;
  assert_int_equal(ra_snp_report_parse(b, n, &r), 0);
  uint8_t want[64];
  assert_int_equal(ra_snp_binding(nonce, sizeof nonce, key, want), 0);
  assert_memory_equal(want, r.report_data, 64);
  /* order matters: key || nonce is not the binding */
  assert_int_equal(ra_snp_binding(key, sizeof key, nonce, want), 0);
  assert_memory_not_equal(want, r.report_data, 64);
  free(b);
}

static void put_le32(uint8_t *p, uint32_t v) {
  for (int i = 0; i < 4; i++) p[i] = (uint8_t)(v >> (8 * i));
}

static void test_versions(void **state) {
  (void)state;
  uint8_t b[1184];
  ra_snp_report r;
  for (uint32_t v = 0; v <= 7; v++) {
    memset(b, 0, sizeof b);
    put_le32(b, v);
    put_le32(b + 0x34, 1);
    b[0x188] = 0x1a; /* Turin CPUID */
    b[0x1F8] = 0x77; /* launch_mit_vector (v5) */
    int rc = ra_snp_report_parse(b, sizeof b, &r);
    if (v < 2 || v > 5) {
      assert_int_equal(rc, RA_ERR_QUOTE_UNSUPPORTED);
      assert_false(ra_snp_report_detect(b, sizeof b));
      continue;
    }
    assert_int_equal(rc, 0);
    assert_int_equal(r.version, v);
    assert_int_equal(r.has_cpuid, v >= 3);
    assert_int_equal(ra_snp_report_product(&r),
                     v >= 3 ? RA_SNP_PRODUCT_TURIN : RA_SNP_PRODUCT_UNKNOWN);
    assert_int_equal(r.launch_mit_vector, v >= 5 ? 0x77 : 0);
  }
  /* signature algorithm other than 1 */
  memset(b, 0, sizeof b);
  put_le32(b, 2);
  assert_int_equal(ra_snp_report_parse(b, sizeof b, &r), RA_ERR_QUOTE_UNSUPPORTED);
  put_le32(b + 0x34, 2);
  assert_int_equal(ra_snp_report_parse(b, sizeof b, &r), RA_ERR_QUOTE_UNSUPPORTED);
  /* non-zero padding of r or s */
  put_le32(b + 0x34, 1);
  b[672 + 50] = 1;
  assert_int_equal(ra_snp_report_parse(b, sizeof b, &r), RA_ERR_QUOTE_MALFORMED);
  b[672 + 50] = 0;
  b[672 + 72 + 71] = 1;
  assert_int_equal(ra_snp_report_parse(b, sizeof b, &r), RA_ERR_QUOTE_MALFORMED);
  /* Turin TCB layout vs Milan's */
  ra_snp_tcb t;
  ra_snp_tcb_decode(0x1100000004030201ull, RA_SNP_PRODUCT_TURIN, &t);
  assert_int_equal(t.fmc, 1);
  assert_int_equal(t.bootloader, 2);
  assert_int_equal(t.tee, 3);
  assert_int_equal(t.snp, 4);
  assert_int_equal(t.microcode, 0x11);
  ra_snp_tcb_decode(0x1122000000000201ull, RA_SNP_PRODUCT_MILAN, &t);
  assert_int_equal(t.bootloader, 1);
  assert_int_equal(t.tee, 2);
  assert_int_equal(t.snp, 0x22);
  assert_int_equal(t.microcode, 0x11);
}

static void test_truncation_every_length(void **state) {
  (void)state;
  size_t n;
  uint8_t *b = load("sev-gcp.bin", &n);
  ra_snp_report r;
  for (size_t len = 0; len < n; len++) {
    /* a copy of exactly len bytes, so that ASan sees any read past it */
    uint8_t *c = malloc(len ? len : 1);
    memcpy(c, b, len);
    assert_int_equal(ra_snp_report_parse(len ? c : NULL, len, &r), RA_ERR_QUOTE_TRUNCATED);
    assert_false(ra_snp_report_detect(c, len));
    free(c);
  }
  uint8_t *longer = malloc(n + 1);
  memcpy(longer, b, n);
  longer[n] = 0;
  assert_int_equal(ra_snp_report_parse(longer, n + 1, &r), RA_ERR_QUOTE_MALFORMED);
  assert_int_equal(ra_snp_report_parse(b, n, NULL), -EINVAL);
  free(longer);
  free(b);
}

static void test_vcek_extensions(void **state) {
  (void)state;
  size_t n;
  uint8_t *v = load("sev-gcp-vcek.pem", &n), *rep = load("sev-gcp.bin", &n);
  ra_snp_vcek_info info;
  assert_int_equal(ra_snp_vcek_parse(v, strlen((char *)v), &info), 0);
  assert_string_equal(info.product_name, "Milan-B0");
  assert_int_equal(info.product, RA_SNP_PRODUCT_MILAN);
  assert_false(info.is_vlek);
  assert_int_equal(info.hwid_len, 64);
  assert_int_equal(info.tcb.bootloader, 4);
  assert_int_equal(info.tcb.tee, 0);
  assert_int_equal(info.tcb.snp, 0x1b);
  assert_int_equal(info.tcb.microcode, 0xde);
  ra_snp_report r;
  assert_int_equal(ra_snp_report_parse(rep, 1184, &r), 0);
  assert_memory_equal(info.hwid, r.chip_id, 64);
  free(v);
  /* the ASK has none of them */
  uint8_t *chain = load("sev-gcp-cert-chain.pem", &n);
  char *end = strstr((char *)chain, "-----END CERTIFICATE-----");
  assert_non_null(end);
  size_t first = (size_t)(end - (char *)chain) + 25;
  assert_int_equal(ra_snp_vcek_parse(chain, first, &info), -ENOENT);
  /* two certificates are not one */
  assert_int_equal(ra_snp_vcek_parse(chain, n, &info), -EINVAL);
  assert_int_equal(ra_snp_vcek_parse((const uint8_t *)"junk", 4, &info), -EINVAL);
  free(chain);
  free(rep);
}

/* A certificate table as an SNP guest's extended report carries it: VCEK,
 * ASK, ARK (DER here stands for any bytes), GUIDs in RFC byte order, plus
 * one unknown GUID, then the terminator. */
static size_t put_entry(uint8_t *t, int i, const char *guid_hex, uint32_t off, uint32_t len) {
  uint8_t *e = t + 24 * i;
  for (int k = 0; k < 16; k++) sscanf(guid_hex + 2 * k, "%2hhx", &e[k]);
  for (int k = 0; k < 4; k++)
    e[16 + k] = (uint8_t)(off >> (8 * k)), e[20 + k] = (uint8_t)(len >> (8 * k));
  return 24;
}

static void test_cert_table(void **state) {
  (void)state;
  uint8_t t[24 * 5 + 300];
  memset(t, 0, sizeof t);
  uint32_t h = 24 * 5;
  put_entry(t, 0, "63da758de6644564adc5f4b93be8accd", h, 100);       /* VCEK */
  put_entry(t, 1, "4ab7b379bbac4fe4a02f05aef327c782", h + 100, 100); /* ASK */
  put_entry(t, 2,
            "c0b406a4a80349529743"
            "3fb6014cd0ae",
            h + 200, 100);                                   /* ARK */
  put_entry(t, 3, "0102030405060708090a0b0c0d0e0f10", h, 1); /* unknown: skipped */
  for (int i = 0; i < 300; i++) t[h + i] = (uint8_t)(i / 100 + 1);
  ra_snp_cert_table ct;
  assert_int_equal(ra_snp_cert_table_parse(t, sizeof t, &ct), 0);
  assert_int_equal(ct.n_entries, 4);
  assert_ptr_equal(ct.vcek, t + h);
  assert_int_equal(ct.vcek_len, 100);
  assert_ptr_equal(ct.ask, t + h + 100);
  assert_ptr_equal(ct.ark, t + h + 200);
  assert_null(ct.vlek);
  assert_null(ct.crl);
  /* truncated anywhere: refused (no terminator, or data past the end) */
  for (size_t l = 1; l < sizeof t; l++) {
    uint8_t *c = malloc(l);
    memcpy(c, t, l);
    assert_int_equal(ra_snp_cert_table_parse(c, l, &ct), -EINVAL);
    assert_null(ct.vcek);
    free(c);
  }
  assert_int_equal(ra_snp_cert_table_parse(NULL, 0, &ct), 0);
  /* data inside the header, a known GUID twice, an empty entry */
  uint8_t bad[sizeof t];
  memcpy(bad, t, sizeof t);
  put_entry(bad, 0, "63da758de6644564adc5f4b93be8accd", 24, 100);
  assert_int_equal(ra_snp_cert_table_parse(bad, sizeof bad, &ct), -EINVAL);
  memcpy(bad, t, sizeof t);
  put_entry(bad, 1, "63da758de6644564adc5f4b93be8accd", h + 100, 100);
  assert_int_equal(ra_snp_cert_table_parse(bad, sizeof bad, &ct), -EINVAL);
  memcpy(bad, t, sizeof t);
  put_entry(bad, 1, "4ab7b379bbac4fe4a02f05aef327c782", h + 100, 0);
  assert_int_equal(ra_snp_cert_table_parse(bad, sizeof bad, &ct), -EINVAL);
  /* the UEFI mixed-endian GUID form is read as well */
  memcpy(bad, t, sizeof t);
  put_entry(bad, 0, "8d75da6364e66445adc5f4b93be8accd", h, 100);
  assert_int_equal(ra_snp_cert_table_parse(bad, sizeof bad, &ct), 0);
  assert_ptr_equal(ct.vcek, bad + h);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_gcp_fields),      cmocka_unit_test(test_binding_vector),
      cmocka_unit_test(test_versions),        cmocka_unit_test(test_truncation_every_length),
      cmocka_unit_test(test_vcek_extensions), cmocka_unit_test(test_cert_table),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
