/* tests/attest/quote_test.c: the DCAP quote parser and input decoding, on
 * the public sample quotes of tests/vectors/quotes. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "raloop/attest/quote/hexb64.h"
#include "raloop/attest/quote/quote.h"

static uint8_t *load(const char *name, size_t *len) {
  const char *dir = getenv("RA_VECTORS");
  char path[1024];
  snprintf(path, sizeof path, "%s/quotes/%s", dir ? dir : RA_VECTORS_DIR, name);
  FILE *f = fopen(path, "rb");
  if (!f) fail_msg("cannot open %s", path);
  fseek(f, 0, SEEK_END);
  long n = ftell(f);
  fseek(f, 0, SEEK_SET);
  uint8_t *b = malloc((size_t)n);
  assert_non_null(b);
  assert_int_equal(fread(b, 1, (size_t)n, f), (size_t)n);
  fclose(f);
  *len = (size_t)n;
  return b;
}

static void hex_eq(const uint8_t *p, size_t n, const char *want) {
  char buf[256];
  assert_non_null(p);
  ra_hex_encode(p, n, buf);
  assert_string_equal(buf, want);
}

static const char *const VECTORS[] = {
    "tdx-v4-tappd.dat",         "tdx-v4-phala.dat",      "tdx-v5-trustee.dat",
    "sgx-occlum.dat",           "sgx-tlsn-quotedev.dat", "tdx-collateral/quote.dat",
    "sgx-collateral/quote.dat",
};

static void test_tappd_fields(void **state) {
  size_t len;
  uint8_t *b = load("tdx-v4-tappd.dat", &len);
  ra_quote q;
  assert_int_equal(ra_quote_parse(b, len, &q), 0);
  assert_int_equal(q.version, 4);
  assert_int_equal(q.att_key_type, 2);
  assert_int_equal(q.tee_type, RA_TEE_TDX);
  assert_int_equal(q.body_type, RA_BODY_TD10);
  assert_int_equal(q.body.len, 584);
  assert_ptr_equal(q.body.bytes, b + 48); /* zero-copy */
  assert_int_equal(q.signed_data.len, 48 + 584);
  hex_eq(q.qe_vendor_id, 16, "939a7233f79c4ca9940a0db3957f0607");
  hex_eq(q.td.mrtd, 48,
         "c68518a0ebb42136c12b2275164f8c72f25fa9a34392228687ed6e9caeb9c0f1dbd895e9cf475121c029dc47e"
         "70e91fd");
  hex_eq(q.td.report_data, 64,
         "7668c6b4eafb62301c72714ecc7d90ce9a0e04b52dc117720df2047b0a59f1dbd937243eef1410a3cdc524aad"
         "66d4554b4f18b54da2fc0608dac40d6dea5f1d4");
  hex_eq(q.td.tee_tcb_svn, 16, "05010200000000000000000000000000");
  assert_ptr_equal(ra_quote_report_data(&q), q.td.report_data);
  assert_null(q.td.tee_tcb_svn2);
  assert_null(q.td.mr_servicetd);
  assert_false(ra_quote_is_debug(&q));
  assert_int_equal(q.outer_cert_type, RA_CERT_QE_REPORT);
  assert_int_equal(q.cert_type, RA_CERT_PCK_CHAIN);
  assert_true(q.cert_data.len > 1000);
  assert_memory_equal(q.cert_data.bytes, "-----BEGIN CERTIFICATE-----", 27);
  assert_true(q.qe_auth_data.len > 0);
  assert_true(q.quote_len <= len);
  assert_int_equal(q.quote_len + q.trailing, len);
  free(b);
}

static void test_v5_td15(void **state) {
  size_t len;
  uint8_t *b = load("tdx-v5-trustee.dat", &len);
  ra_quote q;
  assert_int_equal(ra_quote_parse(b, len, &q), 0);
  assert_int_equal(q.version, 5);
  assert_int_equal(q.body_type, RA_BODY_TD15);
  assert_int_equal(q.body.len, 648);
  assert_ptr_equal(q.body.bytes, b + 48 + 6);
  /* v5 signs the body descriptor too */
  assert_int_equal(q.signed_data.len, 48 + 6 + 648);
  assert_ptr_equal(q.td.tee_tcb_svn2, b + 54 + 584);
  assert_ptr_equal(q.td.mr_servicetd, b + 54 + 600);
  assert_ptr_equal(q.td.report_data, b + 54 + 520);
  assert_int_equal(q.cert_type, RA_CERT_PCK_CHAIN);
  free(b);
}

static void test_sgx_fields(void **state) {
  size_t len;
  uint8_t *b = load("sgx-occlum.dat", &len);
  ra_quote q;
  assert_int_equal(ra_quote_parse(b, len, &q), 0);
  assert_int_equal(q.version, 3);
  assert_int_equal(q.tee_type, RA_TEE_SGX);
  assert_int_equal(q.body_type, RA_BODY_SGX);
  assert_int_equal(q.enclave.isv_prod_id, 4000);
  assert_int_equal(q.enclave.isv_svn, 5000);
  assert_int_equal(q.enclave.attributes[0], 0x85);
  assert_false(ra_quote_is_debug(&q));
  char h[65];
  ra_hex_encode(q.enclave.mr_enclave, 32, h);
  assert_memory_equal(h, "9c90fd81", 8);
  assert_string_equal(h + 58, "301e2c");
  assert_int_equal(q.outer_cert_type, RA_CERT_PCK_CHAIN);
  assert_int_equal(q.cert_type, RA_CERT_PCK_CHAIN);
  free(b);

  b = load("sgx-tlsn-quotedev.dat", &len);
  assert_int_equal(ra_quote_parse(b, len, &q), 0);
  assert_int_equal(q.enclave.attributes[0], 0x05);
  assert_false(ra_quote_is_debug(&q));
  free(b);
}

static void test_collateral_quotes(void **state) {
  size_t len;
  uint8_t *b = load("tdx-collateral/quote.dat", &len);
  ra_quote q;
  assert_int_equal(ra_quote_parse(b, len, &q), 0);
  assert_int_equal(q.cert_type, RA_CERT_PCK_CHAIN);
  assert_int_equal(q.cert_data.bytes[0], 0x30); /* DER, not PEM */
  static const uint8_t zero[48];
  assert_memory_equal(q.td.mrtd, zero, 48);
  free(b);

  b = load("sgx-collateral/quote.dat", &len);
  assert_int_equal(ra_quote_parse(b, len, &q), 0);
  assert_true(q.cert_type >= 1 && q.cert_type <= 3); /* PPID only, no chain */
  free(b);
}

/* Every prefix shorter than the quote is truncated; every prefix at least
 * as long parses. Each prefix lives in a heap block of exactly its size so
 * that ASan catches any read past it. */
static void test_truncation_every_length(void **state) {
  for (size_t v = 0; v < sizeof VECTORS / sizeof *VECTORS; v++) {
    size_t len;
    uint8_t *b = load(VECTORS[v], &len);
    ra_quote q;
    assert_int_equal(ra_quote_parse(b, len, &q), 0);
    size_t qlen = q.quote_len;
    for (size_t n = 0; n <= len; n++) {
      uint8_t *c = malloc(n ? n : 1);
      memcpy(c, b, n);
      int rc = ra_quote_parse(n ? c : NULL, n, &q);
      if (n < qlen) {
        if (rc != RA_ERR_QUOTE_TRUNCATED) fail_msg("%s: length %zu: rc %d", VECTORS[v], n, rc);
      } else {
        assert_int_equal(rc, 0);
        assert_int_equal(q.trailing, n - qlen);
      }
      free(c);
    }
    free(b);
  }
}

static void test_padding_tolerated(void **state) {
  size_t len;
  uint8_t *b = load("tdx-v4-phala.dat", &len);
  uint8_t *p = calloc(1, len + 100);
  memcpy(p, b, len);
  ra_quote q;
  assert_int_equal(ra_quote_parse(p, len + 100, &q), 0);
  assert_int_equal(q.trailing, len + 100 - q.quote_len);
  free(p);
  free(b);
}

static void put32(uint8_t *p, uint32_t v) {
  p[0] = (uint8_t)v;
  p[1] = (uint8_t)(v >> 8);
  p[2] = (uint8_t)(v >> 16);
  p[3] = (uint8_t)(v >> 24);
}

static void test_garbled_lengths(void **state) {
  size_t len;
  uint8_t *b = load("tdx-v4-tappd.dat", &len);
  ra_quote q;
  assert_int_equal(ra_quote_parse(b, len, &q), 0);
  size_t sig_len_off = 48 + 584, type6_size_off = sig_len_off + 4 + 128 + 2;
  size_t auth_len_off = type6_size_off + 4 + 384 + 64;
  size_t inner_size_off = auth_len_off + 2 + q.qe_auth_data.len + 2;
  uint8_t *c = malloc(len);

  /* signature_data_len beyond the buffer: truncation */
  memcpy(c, b, len);
  put32(c + sig_len_off, 0xffffffffu);
  assert_int_equal(ra_quote_parse(c, len, &q), RA_ERR_QUOTE_TRUNCATED);
  /* signature_data_len too small for its contents: malformed */
  memcpy(c, b, len);
  put32(c + sig_len_off, 200);
  assert_int_equal(ra_quote_parse(c, len, &q), RA_ERR_QUOTE_MALFORMED);
  /* type-6 size larger than the signature data */
  memcpy(c, b, len);
  put32(c + type6_size_off, 0x7fffffffu);
  assert_int_equal(ra_quote_parse(c, len, &q), RA_ERR_QUOTE_MALFORMED);
  /* QE auth data length past the type-6 region */
  memcpy(c, b, len);
  c[auth_len_off] = 0xff;
  c[auth_len_off + 1] = 0xff;
  assert_int_equal(ra_quote_parse(c, len, &q), RA_ERR_QUOTE_MALFORMED);
  /* nested chain size off by one either way */
  memcpy(c, b, len);
  assert_int_equal(c[inner_size_off - 2], 5);
  uint32_t inner = (uint32_t)c[inner_size_off] | (uint32_t)c[inner_size_off + 1] << 8 |
                   (uint32_t)c[inner_size_off + 2] << 16 | (uint32_t)c[inner_size_off + 3] << 24;
  put32(c + inner_size_off, inner + 1);
  assert_int_equal(ra_quote_parse(c, len, &q), RA_ERR_QUOTE_MALFORMED);
  put32(c + inner_size_off, inner - 1);
  assert_int_equal(ra_quote_parse(c, len, &q), RA_ERR_QUOTE_MALFORMED);
  /* outer certification data type other than 6 */
  memcpy(c, b, len);
  c[type6_size_off - 2] = 5;
  assert_int_equal(ra_quote_parse(c, len, &q), RA_ERR_QUOTE_UNSUPPORTED);
  /* unsupported version, key type, TEE type */
  memcpy(c, b, len);
  c[0] = 6;
  assert_int_equal(ra_quote_parse(c, len, &q), RA_ERR_QUOTE_UNSUPPORTED);
  memcpy(c, b, len);
  c[2] = 3; /* ECDSA P-384 */
  assert_int_equal(ra_quote_parse(c, len, &q), RA_ERR_QUOTE_UNSUPPORTED);
  memcpy(c, b, len);
  c[4] = 0x82;
  assert_int_equal(ra_quote_parse(c, len, &q), RA_ERR_QUOTE_UNSUPPORTED);
  /* v3 claiming TDX */
  memcpy(c, b, len);
  c[0] = 3;
  assert_int_equal(ra_quote_parse(c, len, &q), RA_ERR_QUOTE_UNSUPPORTED);
  free(c);
  free(b);

  /* v5: body type / size mismatch */
  b = load("tdx-v5-trustee.dat", &len);
  c = malloc(len);
  memcpy(c, b, len);
  c[48] = 2; /* TD 1.0 type with a 648-byte size */
  assert_int_equal(ra_quote_parse(c, len, &q), RA_ERR_QUOTE_MALFORMED);
  memcpy(c, b, len);
  c[48] = 9;
  assert_int_equal(ra_quote_parse(c, len, &q), RA_ERR_QUOTE_UNSUPPORTED);
  memcpy(c, b, len);
  put32(c + 50, 0xfffffff0u);
  assert_int_equal(ra_quote_parse(c, len, &q), RA_ERR_QUOTE_MALFORMED);
  free(c);
  free(b);
}

/* Random corruption never crashes or reads out of bounds (ASan run). */
static void test_random_garbage(void **state) {
  size_t len;
  uint8_t *b = load("tdx-v4-tappd.dat", &len);
  uint32_t seed = 12345;
  for (int i = 0; i < 20000; i++) {
    uint8_t *c = malloc(len);
    memcpy(c, b, len);
    for (int k = 0; k < 4; k++) {
      seed = seed * 1103515245u + 12345u;
      size_t at = (seed >> 8) % len;
      seed = seed * 1103515245u + 12345u;
      c[at] = (uint8_t)(seed >> 16);
    }
    seed = seed * 1103515245u + 12345u;
    size_t n = (seed >> 4) % (len + 1);
    ra_quote q;
    int rc = ra_quote_parse(c, n, &q);
    assert_true(rc == 0 || rc == RA_ERR_QUOTE_TRUNCATED || rc == RA_ERR_QUOTE_MALFORMED ||
                rc == RA_ERR_QUOTE_UNSUPPORTED);
    if (rc == 0) assert_true(q.quote_len <= n);
    free(c);
  }
  free(b);
}

static void test_strerror(void **state) {
  assert_non_null(strstr(ra_strerror(RA_ERR_QUOTE_TRUNCATED), "truncated"));
  assert_non_null(strstr(ra_strerror(RA_ERR_QUOTE_MALFORMED), "malformed"));
  assert_non_null(strstr(ra_strerror(RA_ERR_QUOTE_UNSUPPORTED), "unsupported"));
}

/* Input encodings: the same quote as binary, hex (with 0x, newlines) and
 * base64 (standard and URL-safe) decodes to the same bytes. */
static void test_encodings(void **state) {
  size_t len, n;
  uint8_t *b = load("sgx-occlum.dat", &len), *d;
  ra_encoding enc;

  assert_int_equal(ra_decode_auto(b, len, &d, &n, &enc), 0);
  assert_int_equal(enc, RA_ENC_BINARY);
  assert_int_equal(n, len);
  assert_memory_equal(d, b, len);
  free(d);

  char *hex = malloc(2 * len + 16);
  strcpy(hex, "0x");
  ra_hex_encode(b, len, hex + 2);
  strcat(hex, "\n");
  assert_int_equal(ra_decode_auto((uint8_t *)hex, strlen(hex), &d, &n, &enc), 0);
  assert_int_equal(enc, RA_ENC_HEX);
  assert_int_equal(n, len);
  assert_memory_equal(d, b, len);
  free(d);
  free(hex);

  static const char A[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  char *b64 = malloc(len * 2 + 8);
  size_t o = 0, i;
  for (i = 0; i + 2 < len; i += 3) {
    uint32_t v = (uint32_t)b[i] << 16 | (uint32_t)b[i + 1] << 8 | b[i + 2];
    b64[o++] = A[v >> 18];
    b64[o++] = A[(v >> 12) & 63];
    b64[o++] = A[(v >> 6) & 63];
    b64[o++] = A[v & 63];
    if ((o % 77) == 76) b64[o++] = '\n';
  }
  if (len - i == 1) {
    uint32_t v = (uint32_t)b[i] << 16;
    b64[o++] = A[v >> 18];
    b64[o++] = A[(v >> 12) & 63];
    b64[o++] = '=';
    b64[o++] = '=';
  } else if (len - i == 2) {
    uint32_t v = (uint32_t)b[i] << 16 | (uint32_t)b[i + 1] << 8;
    b64[o++] = A[v >> 18];
    b64[o++] = A[(v >> 12) & 63];
    b64[o++] = A[(v >> 6) & 63];
    b64[o++] = '=';
  }
  assert_int_equal(ra_decode_auto((uint8_t *)b64, o, &d, &n, &enc), 0);
  assert_int_equal(enc, RA_ENC_BASE64);
  assert_int_equal(n, len);
  assert_memory_equal(d, b, len);
  free(d);
  for (size_t k = 0; k < o; k++) b64[k] = b64[k] == '+' ? '-' : b64[k] == '/' ? '_' : b64[k];
  assert_int_equal(ra_decode_auto((uint8_t *)b64, o, &d, &n, &enc), 0);
  assert_int_equal(n, len);
  assert_memory_equal(d, b, len);
  free(d);
  free(b64);
  free(b);

  uint8_t out[4];
  assert_int_equal(ra_hex_decode_exact("deadBEEF", 8, out, 4), 0);
  assert_int_equal(out[3], 0xef);
  assert_int_equal(ra_hex_decode_exact("deadbeef0", 9, out, 4), -EINVAL);
  assert_int_equal(ra_hex_decode_exact("deadbeeg", 8, out, 4), -EINVAL);
  assert_int_equal(ra_detect_encoding((const uint8_t *)"", 0), RA_ENC_BINARY);
  assert_int_equal(ra_detect_encoding((const uint8_t *)"abc", 3), RA_ENC_BASE64);
  assert_int_equal(ra_detect_encoding((const uint8_t *)"abcd", 4), RA_ENC_HEX);
  assert_int_equal(ra_detect_encoding((const uint8_t *)"a\x01", 2), RA_ENC_BINARY);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_tappd_fields),
      cmocka_unit_test(test_v5_td15),
      cmocka_unit_test(test_sgx_fields),
      cmocka_unit_test(test_collateral_quotes),
      cmocka_unit_test(test_truncation_every_length),
      cmocka_unit_test(test_padding_tolerated),
      cmocka_unit_test(test_garbled_lengths),
      cmocka_unit_test(test_random_garbage),
      cmocka_unit_test(test_strerror),
      cmocka_unit_test(test_encodings),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
