/* tests/attest/quote/snp_verify_test.c: SEV-SNP verification end to end.
 *
 * Real reports: GCP's (canvasxyz/teekit packages/qvl/test/sampleQuotes,
 * copied to tests/vectors/snp/) with their VCEKs and AMD's Milan chain,
 * verified at a fixed time inside their validity (2026-01-15), and each
 * kind of tampering refused at its step. Simulated reports (snp_sim.h)
 * for what cannot be made from a real one: debug, VMPL, migration agent,
 * SMT, minimum TCB, a VCEK whose SPLs or hwID differ, CRLs, callbacks. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/pem.h>
#include <openssl/x509.h>

#include "raloop/attest/quote/snp_chain.h"
#include "raloop/attest/quote/snp_sim.h"
#include "raloop/attest/quote/snp_verify.h"
#include "raloop/core/error.h"
#include "raloop/core/file.h"

#define AT_GCP ((time_t)1768435200) /* 2026-01-15T00:00:00Z */

static uint8_t *load(const char *name, size_t *len) {
  char path[512];
  const char *dir = getenv("RA_VECTORS") ? getenv("RA_VECTORS") : RA_VECTORS_DIR;
  snprintf(path, sizeof path, "%s/snp/%s", dir, name);
  uint8_t *d = NULL;
  assert_int_equal(ra_file_read(path, 1 << 20, &d, len), 0);
  return d;
}

typedef struct gcp {
  uint8_t *report, *vcek, *chain;
  size_t report_len, vcek_len, chain_len;
} gcp;

static void gcp_load(gcp *g, const char *report, const char *vcek) {
  g->report = load(report, &g->report_len);
  g->vcek = load(vcek, &g->vcek_len);
  g->chain = load("sev-gcp-cert-chain.pem", &g->chain_len);
}

static void gcp_free(gcp *g) {
  free(g->report);
  free(g->vcek);
  free(g->chain);
}

static ra_snp_verify_opts gcp_opts(const gcp *g) {
  ra_snp_verify_opts o = {.at = AT_GCP,
                          .vcek = g->vcek,
                          .vcek_len = g->vcek_len,
                          .ask = g->chain,
                          .ask_len = g->chain_len};
  return o;
}

static const ra_snp_policy k_sig_only = {.signature_only = true};

/* Verifies and asserts the outcome: err 0, or err at step. */
static void expect(ra_snp_verifier *v, const uint8_t *rep, size_t len, const ra_snp_verify_opts *o,
                   const ra_snp_policy *p, int err, int step, ra_snp_verdict *vd) {
  int rc = ra_snp_verify(v, rep, len, o, p, vd);
  if (vd->err != err || vd->failed != step)
    print_message("verdict: %s at %s: %s\n", ra_err_name(vd->err),
                  vd->failed >= 0 ? ra_snp_check_name(vd->failed) : "-", vd->msg);
  assert_int_equal(vd->err, err);
  assert_int_equal(vd->failed, step);
  assert_int_equal(rc, err ? -EACCES : 0);
  assert_string_equal(vd->tee, "SEV-SNP");
}

static void hexs(const uint8_t *p, size_t n, char *out) {
  for (size_t i = 0; i < n; i++) sprintf(out + 2 * i, "%02x", p[i]);
}

static void test_pinned_arks(void **state) {
  (void)state;
  static const struct {
    const char *pem, *sha256;
  } k[] = {
      {ra_amd_ark_milan_pem, "69d063b45344d26a2e94e1f4210de49ef555308287d4c174445c95639a540bcd"},
      {ra_amd_ark_genoa_pem, "4c6598d19c18719c5dfd4a7d335f674e5bfe1d8f800cea2cf270c10d103db2f1"},
      {ra_amd_ark_turin_pem, "1f084161a44bb6d93778a904877d4819cafa5d05ef4193b2ded9dd9c73dd3f6a"},
      {ra_amd_ask_milan_pem, "67d303bd3905fd38db8b20e0793699870e7fa612eaad5dec358293fd8c0bac1b"},
      {ra_amd_ask_genoa_pem, "5464738c1546aed5f2cecf1dc98c5c960a92e8913238a61711bc90ec6e828521"},
      {ra_amd_ask_turin_pem, "5b77ef5fe7a7a004fd9032668fba9d0fda22f88c4442069a479636a6ae3b3185"},
      {ra_amd_asvk_milan_pem, "c5e081f59b7efab1fe2f8b505e159704e72f29cab7ef7cf628a05a42439082f5"},
      {ra_amd_asvk_genoa_pem, "197e610743a917d6b9bb982a5a9226ccc0a15b611be0619e626aca9151457372"},
      {ra_amd_asvk_turin_pem, "104e10a8bd060a3c20a434261a57d0588fd65a88915b4f65b08bdecaf8df1a3c"},
  };
  for (size_t i = 0; i < sizeof k / sizeof k[0]; i++) {
    BIO *b = BIO_new_mem_buf(k[i].pem, -1);
    X509 *x = PEM_read_bio_X509(b, NULL, NULL, NULL);
    assert_non_null(x);
    uint8_t md[32];
    unsigned n = 0;
    assert_true(X509_digest(x, EVP_sha256(), md, &n));
    char h[65];
    hexs(md, 32, h);
    assert_string_equal(h, k[i].sha256);
    X509_free(x);
    BIO_free(b);
  }
  assert_ptr_equal(ra_amd_ark_pem(RA_SNP_PRODUCT_GENOA), ra_amd_ark_genoa_pem);
  assert_null(ra_amd_ark_pem(RA_SNP_PRODUCT_UNKNOWN));
  /* the GCP chain's ARK is the pinned Milan one */
  size_t n;
  uint8_t *chain = load("sev-gcp-cert-chain.pem", &n);
  assert_non_null(strstr(
      (char *)chain, strstr(ra_amd_ark_milan_pem,
                            "MIIGYzCCBBKgAwIBAgIDAQAAMEYGCSqGSIb3DQEBCjA5oA8wDQYJYIZIAWUDBAIC")));
  free(chain);
}

static void test_gcp_valid(void **state) {
  (void)state;
  ra_snp_verifier *v;
  assert_int_equal(ra_snp_verifier_new(0, &v), 0);
  static const char *reports[] = {"sev-gcp.bin", "sev-gcp-reportdata.bin"};
  for (int i = 0; i < 2; i++) {
    gcp g;
    gcp_load(&g, reports[i], "sev-gcp-vcek.pem");
    ra_snp_verify_opts o = gcp_opts(&g);
    ra_snp_verdict vd;
    expect(v, g.report, g.report_len, &o, &k_sig_only, 0, -1, &vd);
    assert_int_equal(vd.checks[RA_SNP_CHECK_CHAIN], RA_CHECK_PASS);
    assert_int_equal(vd.checks[RA_SNP_CHECK_CRL], RA_CHECK_SKIPPED);
    assert_int_equal(vd.checks[RA_SNP_CHECK_VCEK_EXT], RA_CHECK_PASS);
    assert_int_equal(vd.checks[RA_SNP_CHECK_REPORT_SIG], RA_CHECK_PASS);
    assert_int_equal(vd.checks[RA_SNP_CHECK_DEBUG], RA_CHECK_PASS);
    assert_int_equal(vd.checks[RA_SNP_CHECK_MEASUREMENTS], RA_CHECK_SKIPPED);
    assert_int_equal(vd.product, RA_SNP_PRODUCT_MILAN);
    assert_int_equal(vd.version, 5);
    assert_int_equal(vd.vmpl, i == 0 ? 0 : 1);
    assert_int_equal(vd.reported_tcb.snp, 0x1b);
    assert_string_equal(vd.vcek.product_name, "Milan-B0");
    assert_false(vd.ask_builtin);
    assert_non_null(strstr(vd.ark_subject, "ARK-Milan"));
    assert_int_equal(vd.at, AT_GCP);
    /* the VCEK alone: the compiled-in Milan ASK completes the chain */
    o.ask = NULL;
    o.ask_len = 0;
    expect(v, g.report, g.report_len, &o, &k_sig_only, 0, -1, &vd);
    assert_true(vd.ask_builtin);
    /* ASK and ARK given separately, DER or PEM alike */
    char *mid = strstr((char *)g.chain, "-----END CERTIFICATE-----") + 25;
    o.ask = g.chain;
    o.ask_len = (size_t)((uint8_t *)mid - g.chain);
    o.ark = (uint8_t *)mid;
    o.ark_len = g.chain_len - o.ask_len;
    expect(v, g.report, g.report_len, &o, &k_sig_only, 0, -1, &vd);
    /* warm (cached path) and cold verifiers agree, expired or not */
    ra_snp_verifier *cold;
    assert_int_equal(ra_snp_verifier_new(RA_SNP_VERIFIER_NO_CACHE, &cold), 0);
    o = gcp_opts(&g);
    for (int k = 0; k < 2; k++) {
      expect(cold, g.report, g.report_len, &o, &k_sig_only, 0, -1, &vd);
      expect(v, g.report, g.report_len, &o, &k_sig_only, 0, -1, &vd);
    }
    o.at = 2000000000;
    expect(cold, g.report, g.report_len, &o, &k_sig_only, RA_ERR_CERT_EXPIRED, RA_SNP_CHECK_CHAIN,
           &vd);
    expect(v, g.report, g.report_len, &o, &k_sig_only, RA_ERR_CERT_EXPIRED, RA_SNP_CHECK_CHAIN,
           &vd);
    ra_snp_verifier_free(cold);
    gcp_free(&g);
  }
  ra_snp_verifier_free(v);
}

static void test_gcp_policy(void **state) {
  (void)state;
  ra_snp_verifier *v;
  assert_int_equal(ra_snp_verifier_new(0, &v), 0);
  gcp g;
  gcp_load(&g, "sev-gcp-x25519-bound.bin", "sev-gcp-x25519-vcek.pem");
  ra_snp_verify_opts o = gcp_opts(&g);
  static const uint8_t nonce[32] = {0xdf, 0x82, 0x30, 0x6f, 0xf3, 0x8a, 0x9d, 0xa0,
                                    0x23, 0x85, 0x4a, 0xf9, 0x47, 0xd0, 0x2a, 0x87,
                                    0x8c, 0xfa, 0xb1, 0xb4, 0x0a, 0x79, 0x38, 0x23,
                                    0xff, 0x41, 0xdc, 0x51, 0x21, 0x3b, 0x96, 0xaa};
  static const uint8_t key[32] = {0x03, 0xa8, 0x10, 0x70, 0x30, 0xfa, 0xbe, 0xac, 0x06, 0xb0, 0xdf,
                                  0x4e, 0xf8, 0x65, 0x76, 0x39, 0x18, 0xb5, 0xe2, 0xa9, 0xfa, 0x03,
                                  0x0e, 0x20, 0x02, 0x5a, 0x43, 0x15, 0xda, 0xb4, 0xb2, 0xa6};
  ra_snp_verdict vd;
  /* key binding alone identifies the server (as the reference client) */
  ra_snp_policy p = {.x25519_pub = key, .nonce = nonce, .nonce_len = sizeof nonce};
  expect(v, g.report, g.report_len, &o, &p, 0, -1, &vd);
  assert_int_equal(vd.checks[RA_SNP_CHECK_BINDING], RA_CHECK_PASS);
  uint8_t other[32];
  memcpy(other, nonce, 32);
  other[0] ^= 1;
  p.nonce = other;
  expect(v, g.report, g.report_len, &o, &p, RA_ERR_BINDING, RA_SNP_CHECK_BINDING, &vd);
  p.nonce = NULL;
  expect(v, g.report, g.report_len, &o, &p, RA_ERR_BINDING, RA_SNP_CHECK_BINDING, &vd);

  /* measurement sets, any-of */
  ra_snp_expect sets[2];
  memset(sets, 0, sizeof sets);
  sets[0].has = RA_SNP_MEASUREMENT;
  memset(sets[0].measurement, 0x11, 48);
  sets[1].has = RA_SNP_MEASUREMENT | RA_SNP_HOST_DATA;
  memcpy(sets[1].measurement, g.report + 0x90, 48);
  memcpy(sets[1].host_data, g.report + 0xC0, 32);
  ra_snp_policy m = {.sets = sets, .n_sets = 2};
  expect(v, g.report, g.report_len, &o, &m, 0, -1, &vd);
  assert_int_equal(vd.matched_set, 1);
  m.n_sets = 1;
  expect(v, g.report, g.report_len, &o, &m, RA_ERR_MEASUREMENT, RA_SNP_CHECK_MEASUREMENTS, &vd);
  /* VMPL 1 here: refused when at most 0 is accepted */
  m.n_sets = 2;
  m.check_vmpl = true;
  m.max_vmpl = 0;
  expect(v, g.report, g.report_len, &o, &m, RA_ERR_MEASUREMENT, RA_SNP_CHECK_VMPL, &vd);
  m.max_vmpl = 1;
  expect(v, g.report, g.report_len, &o, &m, 0, -1, &vd);
  /* minimum TCB: equal passes, one SPL above refuses */
  m.check_min_tcb = true;
  m.min_tcb = vd.reported_tcb;
  expect(v, g.report, g.report_len, &o, &m, 0, -1, &vd);
  m.min_tcb.snp++;
  expect(v, g.report, g.report_len, &o, &m, RA_ERR_TCB_STATUS, RA_SNP_CHECK_TCB, &vd);
  /* SMT is enabled on GCP's host (allowed by the guest policy) */
  ra_snp_policy s = {.signature_only = true, .require_no_smt = true};
  expect(v, g.report, g.report_len, &o, &s, RA_ERR_TD_ATTRIBUTES, RA_SNP_CHECK_GUEST_POLICY, &vd);
  /* the empty policy */
  ra_snp_policy empty = {0};
  expect(v, g.report, g.report_len, &o, &empty, RA_ERR_POLICY_EMPTY, RA_SNP_CHECK_MEASUREMENTS,
         &vd);
  ra_snp_expect none = {0};
  ra_snp_policy empty_set = {.sets = &none, .n_sets = 1};
  expect(v, g.report, g.report_len, &o, &empty_set, RA_ERR_POLICY_EMPTY, RA_SNP_CHECK_MEASUREMENTS,
         &vd);
  gcp_free(&g);
  ra_snp_verifier_free(v);
}

/* The DER of the first certificate in pem with one bit flipped at off
 * from the end (off 1: the last byte, inside the signature). */
static uint8_t *der_flipped(const uint8_t *pem, size_t len, size_t off, size_t *outlen) {
  BIO *b = BIO_new_mem_buf(pem, (int)len);
  X509 *x = PEM_read_bio_X509(b, NULL, NULL, NULL);
  assert_non_null(x);
  uint8_t *der = NULL;
  int n = i2d_X509(x, &der);
  assert_true(n > 0);
  uint8_t *copy = malloc((size_t)n);
  memcpy(copy, der, (size_t)n);
  copy[(size_t)n - off] ^= 0x01;
  *outlen = (size_t)n;
  OPENSSL_free(der);
  X509_free(x);
  BIO_free(b);
  return copy;
}

static void test_gcp_tampered(void **state) {
  (void)state;
  ra_snp_verifier *v;
  assert_int_equal(ra_snp_verifier_new(0, &v), 0);
  gcp g;
  gcp_load(&g, "sev-gcp.bin", "sev-gcp-vcek.pem");
  ra_snp_verify_opts o = gcp_opts(&g);
  ra_snp_verdict vd;
  uint8_t rep[1184];
  /* one flipped bit in each region of the report */
  static const size_t offs[] = {0x04,  0x30,  0x50,  0x90,  0xC0,
                                0x140, 0x29f, 0x2A0, 0x2E8, 0x2E8 + 47};
  for (size_t i = 0; i < sizeof offs / sizeof offs[0]; i++) {
    memcpy(rep, g.report, sizeof rep);
    rep[offs[i]] ^= 0x01;
    expect(v, rep, sizeof rep, &o, &k_sig_only, RA_ERR_QUOTE_SIGNATURE, RA_SNP_CHECK_REPORT_SIG,
           &vd);
  }
  /* a bit of the chip_id or the reported TCB: the VCEK no longer matches */
  memcpy(rep, g.report, sizeof rep);
  rep[0x1A0] ^= 0x01;
  expect(v, rep, sizeof rep, &o, &k_sig_only, RA_ERR_PCK_EXTENSION, RA_SNP_CHECK_VCEK_EXT, &vd);
  assert_int_equal(vd.checks[RA_SNP_CHECK_REPORT_SIG], RA_CHECK_FAIL);
  memcpy(rep, g.report, sizeof rep);
  rep[0x186] ^= 0x01; /* reported_tcb.snp */
  expect(v, rep, sizeof rep, &o, &k_sig_only, RA_ERR_PCK_EXTENSION, RA_SNP_CHECK_VCEK_EXT, &vd);
  /* the debug bit: refused as debug (and the signature breaks too) */
  memcpy(rep, g.report, sizeof rep);
  rep[0x0A] ^= 0x08; /* policy bit 19 */
  ra_snp_verify(v, rep, sizeof rep, &o, &k_sig_only, &vd);
  assert_int_equal(vd.checks[RA_SNP_CHECK_DEBUG], RA_CHECK_FAIL);
  assert_int_equal(vd.checks[RA_SNP_CHECK_REPORT_SIG], RA_CHECK_FAIL);
  assert_true(vd.debug);

  /* a flipped bit in the signature of each certificate */
  size_t n;
  uint8_t *bad = der_flipped(g.vcek, g.vcek_len, 1, &n);
  o.vcek = bad;
  o.vcek_len = n;
  expect(v, g.report, g.report_len, &o, &k_sig_only, RA_ERR_CHAIN_SIGNATURE, RA_SNP_CHECK_CHAIN,
         &vd);
  free(bad);
  o = gcp_opts(&g);
  char *mid = strstr((char *)g.chain, "-----END CERTIFICATE-----") + 25;
  bad = der_flipped(g.chain, g.chain_len, 1, &n); /* the ASK */
  o.ask = bad;
  o.ask_len = n;
  o.ark = (uint8_t *)mid;
  o.ark_len = g.chain_len - (size_t)((uint8_t *)mid - g.chain);
  expect(v, g.report, g.report_len, &o, &k_sig_only, RA_ERR_CHAIN_SIGNATURE, RA_SNP_CHECK_CHAIN,
         &vd);
  free(bad);
  bad = der_flipped((uint8_t *)mid, o.ark_len, 1, &n); /* the ARK: not the pinned one any more */
  o.ask = g.chain;
  o.ask_len = g.chain_len - o.ark_len;
  o.ark = bad;
  o.ark_len = n;
  expect(v, g.report, g.report_len, &o, &k_sig_only, RA_ERR_ROOT_UNTRUSTED, RA_SNP_CHECK_CHAIN,
         &vd);
  free(bad);

  /* the other sample's VCEK: the same chip at the same TCB, so the same
   * key (a VCEK is derived from both), issued again later: accepted */
  o = gcp_opts(&g);
  size_t vl;
  uint8_t *other = load("sev-gcp-x25519-vcek.pem", &vl);
  o.vcek = other;
  o.vcek_len = vl;
  expect(v, g.report, g.report_len, &o, &k_sig_only, 0, -1, &vd);
  free(other);

  /* a wrong ASK (Genoa's) for a Milan VCEK */
  o = gcp_opts(&g);
  o.ask = (const uint8_t *)ra_amd_ask_genoa_pem;
  o.ask_len = strlen(ra_amd_ask_genoa_pem);
  expect(v, g.report, g.report_len, &o, &k_sig_only, RA_ERR_CHAIN_BROKEN, RA_SNP_CHECK_CHAIN, &vd);
  /* a pinned ARK, but not the one that issued the ASK: refused */
  o = gcp_opts(&g);
  o.ask_len =
      (size_t)((uint8_t *)strstr((char *)g.chain, "-----END CERTIFICATE-----") + 25 - g.chain);
  o.ark = (const uint8_t *)ra_amd_ark_genoa_pem;
  o.ark_len = strlen(ra_amd_ark_genoa_pem);
  expect(v, g.report, g.report_len, &o, &k_sig_only, RA_ERR_CHAIN_BROKEN, RA_SNP_CHECK_CHAIN, &vd);
  /* no VCEK, or not a certificate */
  o = gcp_opts(&g);
  o.vcek = NULL;
  expect(v, g.report, g.report_len, &o, &k_sig_only, RA_ERR_NO_PCK_CHAIN, RA_SNP_CHECK_CHAIN, &vd);
  o.vcek = (const uint8_t *)"nope";
  o.vcek_len = 4;
  expect(v, g.report, g.report_len, &o, &k_sig_only, RA_ERR_CERT_PARSE, RA_SNP_CHECK_CHAIN, &vd);

  /* outside the validity window (VCEK: 2025-12-05 to 2032-12-05) */
  o = gcp_opts(&g);
  o.at = 1735689600; /* 2025-01-01 */
  expect(v, g.report, g.report_len, &o, &k_sig_only, RA_ERR_CERT_NOT_YET_VALID, RA_SNP_CHECK_CHAIN,
         &vd);
  o.at = 2000000000; /* 2033-05-18 */
  expect(v, g.report, g.report_len, &o, &k_sig_only, RA_ERR_CERT_EXPIRED, RA_SNP_CHECK_CHAIN, &vd);

  /* truncated: refused at parse, nothing else runs */
  o = gcp_opts(&g);
  expect(v, g.report, 1183, &o, &k_sig_only, RA_ERR_QUOTE_TRUNCATED, RA_SNP_CHECK_PARSE, &vd);
  assert_int_equal(vd.checks[RA_SNP_CHECK_CHAIN], RA_CHECK_NOT_RUN);
  gcp_free(&g);
  ra_snp_verifier_free(v);

  /* a verifier that pins no AMD root refuses the real report */
  assert_int_equal(ra_snp_verifier_new(RA_SNP_VERIFIER_NO_AMD_ROOTS, &v), 0);
  gcp_load(&g, "sev-gcp.bin", "sev-gcp-vcek.pem");
  o = gcp_opts(&g);
  expect(v, g.report, g.report_len, &o, &k_sig_only, RA_ERR_ROOT_UNTRUSTED, RA_SNP_CHECK_CHAIN,
         &vd);
  o.ask = NULL;
  expect(v, g.report, g.report_len, &o, &k_sig_only, RA_ERR_CHAIN_BROKEN, RA_SNP_CHECK_CHAIN, &vd);
  gcp_free(&g);
  ra_snp_verifier_free(v);
}

/* go-sev-guest's real v2 report (verify/testdata/attestation.bin) with its
 * VCEK: a debug guest, so refused as debug and valid only with allow_debug;
 * virtee/sev's Turin VCEK: 8-byte hwID, FMC SPL, chained through the
 * compiled-in Turin ASK to the pinned Turin ARK. */
static void test_other_vendors(void **state) {
  (void)state;
  ra_snp_verifier *v;
  assert_int_equal(ra_snp_verifier_new(0, &v), 0);
  size_t rl, vl;
  uint8_t *rep = load("go-sev-guest-attestation-v2.bin", &rl),
          *vcek = load("go-sev-guest-vcek.der", &vl);
  ra_snp_verify_opts o = {.at = 1685577600 /* 2023-06-01 */, .vcek = vcek, .vcek_len = vl};
  ra_snp_verdict vd;
  expect(v, rep, rl, &o, &k_sig_only, RA_ERR_DEBUG, RA_SNP_CHECK_DEBUG, &vd);
  assert_int_equal(vd.version, 2);
  assert_true(vd.debug);
  assert_int_equal(vd.checks[RA_SNP_CHECK_REPORT_SIG], RA_CHECK_PASS);
  assert_int_equal(vd.checks[RA_SNP_CHECK_VCEK_EXT], RA_CHECK_PASS);
  assert_int_equal(vd.product, RA_SNP_PRODUCT_MILAN); /* v2 has no CPUID: from the VCEK */
  ra_snp_policy dbg = {.signature_only = true, .allow_debug = true};
  expect(v, rep, rl, &o, &dbg, 0, -1, &vd);
  free(vcek);

  vcek = load("virtee-vcek-turin.der", &vl);
  ra_snp_vcek_info info;
  assert_int_equal(ra_snp_vcek_parse(vcek, vl, &info), 0);
  assert_string_equal(info.product_name, "Turin");
  assert_int_equal(info.product, RA_SNP_PRODUCT_TURIN);
  assert_true(info.has_fmc);
  assert_int_equal(info.hwid_len, 8);
  assert_int_equal(info.tcb.microcode, 9);
  o.vcek = vcek;
  o.vcek_len = vl;
  o.at = 1767225600; /* 2026-01-01 */
  ra_snp_verify(v, rep, rl, &o, &dbg, &vd);
  assert_int_equal(vd.checks[RA_SNP_CHECK_CHAIN], RA_CHECK_PASS);
  assert_true(vd.ask_builtin);
  assert_non_null(strstr(vd.ark_subject, "ARK-Turin"));
  /* a Milan report is not this Turin VCEK's */
  assert_int_equal(vd.checks[RA_SNP_CHECK_VCEK_EXT], RA_CHECK_FAIL);
  assert_int_equal(vd.checks[RA_SNP_CHECK_REPORT_SIG], RA_CHECK_FAIL);
  free(vcek);
  free(rep);
  ra_snp_verifier_free(v);
}

/* ---- the simulated TEE ---------------------------------------------------- */

static char g_tmp[256];
static ra_snp_sim *g_sim;

static int sim_setup(void **state) {
  (void)state;
  snprintf(g_tmp, sizeof g_tmp, "/tmp/ra-snp-test-XXXXXX");
  if (!mkdtemp(g_tmp)) return -1;
  return ra_snp_sim_open(g_tmp, &g_sim);
}

static int sim_teardown(void **state) {
  (void)state;
  ra_snp_sim_free(g_sim);
  char cmd[400];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", g_tmp);
  return system(cmd) == 0 ? 0 : -1;
}

static ra_snp_verifier *sim_verifier(void) {
  ra_snp_verifier *v;
  assert_int_equal(ra_snp_verifier_new(0, &v), 0);
  assert_int_equal(ra_snp_verifier_add_ark_file(v, ra_snp_sim_ark_path(g_sim)), 1);
  return v;
}

static ra_snp_verify_opts sim_opts(void) {
  ra_snp_verify_opts o = {.vcek = (const uint8_t *)ra_snp_sim_vcek_pem(g_sim),
                          .vcek_len = strlen(ra_snp_sim_vcek_pem(g_sim)),
                          .ask = (const uint8_t *)ra_snp_sim_chain_pem(g_sim),
                          .ask_len = strlen(ra_snp_sim_chain_pem(g_sim))};
  return o;
}

static int refuse_cb(const ra_snp_report *r, ra_snp_verdict *vd, void *ud) {
  (void)r;
  (*(int *)ud)++;
  snprintf(vd->msg, sizeof vd->msg, "not today");
  return 1;
}

static void test_sim_round_trip(void **state) {
  (void)state;
  uint8_t key[32], nonce[16], rd[64], rep[1184];
  memset(key, 0x42, sizeof key);
  memset(nonce, 0x07, sizeof nonce);
  assert_int_equal(ra_snp_binding(nonce, sizeof nonce, key, rd), 0);
  assert_int_equal(ra_snp_sim_report(g_sim, NULL, rd, rep), 0);
  ra_snp_report r;
  assert_int_equal(ra_snp_report_parse(rep, sizeof rep, &r), 0);
  assert_memory_equal(r.chip_id, ra_snp_sim_chip_id(g_sim), 64);

  ra_snp_verify_opts o = sim_opts();
  ra_snp_verdict vd;
  ra_snp_expect e = {.has = RA_SNP_MEASUREMENT};
  memset(e.measurement, 0x5e, 48);
  ra_snp_policy p = {.sets = &e,
                     .n_sets = 1,
                     .x25519_pub = key,
                     .nonce = nonce,
                     .nonce_len = sizeof nonce,
                     .check_vmpl = true,
                     .max_vmpl = 0};
  /* AMD's roots only: refused */
  ra_snp_verifier *amd;
  assert_int_equal(ra_snp_verifier_new(0, &amd), 0);
  expect(amd, rep, sizeof rep, &o, &p, RA_ERR_ROOT_UNTRUSTED, RA_SNP_CHECK_CHAIN, &vd);
  ra_snp_verifier_free(amd);

  ra_snp_verifier *v = sim_verifier();
  expect(v, rep, sizeof rep, &o, &p, 0, -1, &vd);
  for (int c = 0; c < RA_SNP_CHECK__COUNT; c++)
    if (c != RA_SNP_CHECK_CRL && c != RA_SNP_CHECK_TCB && c != RA_SNP_CHECK_CALLBACK)
      assert_int_equal(vd.checks[c], RA_CHECK_PASS);
  assert_non_null(strstr(vd.ark_subject, "raloop Simulated ARK"));
  /* and from the files the sim wrote, the VCEK alone + the chain file */
  uint8_t *vc, *ch;
  size_t vl, cl;
  assert_int_equal(ra_file_read(ra_snp_sim_vcek_path(g_sim), 1 << 16, &vc, &vl), 0);
  assert_int_equal(ra_file_read(ra_snp_sim_chain_path(g_sim), 1 << 16, &ch, &cl), 0);
  ra_snp_verify_opts of = {.vcek = vc, .vcek_len = vl, .ask = ch, .ask_len = cl};
  expect(v, rep, sizeof rep, &of, &p, 0, -1, &vd);
  free(vc);
  free(ch);
  /* a second open of the directory loads the same hierarchy */
  ra_snp_sim *again;
  assert_int_equal(ra_snp_sim_open(g_tmp, &again), 0);
  assert_string_equal(ra_snp_sim_vcek_pem(again), ra_snp_sim_vcek_pem(g_sim));
  ra_snp_sim_free(again);
  /* every version 2..5 */
  ra_snp_sim_guest g;
  for (uint32_t ver = 2; ver <= 5; ver++) {
    ra_snp_sim_guest_default(&g);
    g.version = ver;
    assert_int_equal(ra_snp_sim_report(g_sim, &g, rd, rep), 0);
    expect(v, rep, sizeof rep, &o, &p, 0, -1, &vd);
    assert_int_equal(vd.version, ver);
  }
  /* the callback sees a valid report and may refuse it */
  int calls = 0;
  p.callback = refuse_cb;
  p.callback_ud = &calls;
  expect(v, rep, sizeof rep, &o, &p, RA_ERR_CALLBACK, RA_SNP_CHECK_CALLBACK, &vd);
  assert_int_equal(calls, 1);
  assert_string_equal(vd.msg, "not today");
  ra_snp_verifier_free(v);
}

static void test_sim_policy_refusals(void **state) {
  (void)state;
  ra_snp_verifier *v = sim_verifier();
  ra_snp_verify_opts o = sim_opts();
  ra_snp_verdict vd;
  uint8_t rd[64] = {1}, rep[1184];
  ra_snp_sim_guest g;
  ra_snp_policy p = {.signature_only = true, .check_vmpl = true, .max_vmpl = 0};

  ra_snp_sim_guest_default(&g);
  g.policy |= RA_SNP_POLICY_DEBUG;
  assert_int_equal(ra_snp_sim_report(g_sim, &g, rd, rep), 0);
  expect(v, rep, sizeof rep, &o, &p, RA_ERR_DEBUG, RA_SNP_CHECK_DEBUG, &vd);
  assert_true(vd.debug);
  p.allow_debug = true;
  expect(v, rep, sizeof rep, &o, &p, 0, -1, &vd);
  p.allow_debug = false;

  ra_snp_sim_guest_default(&g);
  g.vmpl = 2;
  assert_int_equal(ra_snp_sim_report(g_sim, &g, rd, rep), 0);
  expect(v, rep, sizeof rep, &o, &p, RA_ERR_MEASUREMENT, RA_SNP_CHECK_VMPL, &vd);

  ra_snp_sim_guest_default(&g);
  g.policy |= RA_SNP_POLICY_MIGRATE_MA;
  assert_int_equal(ra_snp_sim_report(g_sim, &g, rd, rep), 0);
  expect(v, rep, sizeof rep, &o, &p, RA_ERR_TD_ATTRIBUTES, RA_SNP_CHECK_GUEST_POLICY, &vd);
  p.allow_migration_agent = true;
  expect(v, rep, sizeof rep, &o, &p, 0, -1, &vd);
  p.allow_migration_agent = false;

  ra_snp_sim_guest_default(&g);
  g.policy &= ~RA_SNP_POLICY_SMT; /* SMT forbidden, but the platform has it */
  assert_int_equal(ra_snp_sim_report(g_sim, &g, rd, rep), 0);
  expect(v, rep, sizeof rep, &o, &p, RA_ERR_TD_ATTRIBUTES, RA_SNP_CHECK_GUEST_POLICY, &vd);
  g.platform_info &= ~RA_SNP_PLATFORM_SMT_EN;
  assert_int_equal(ra_snp_sim_report(g_sim, &g, rd, rep), 0);
  expect(v, rep, sizeof rep, &o, &p, 0, -1, &vd);

  ra_snp_sim_guest_default(&g);
  memset(g.host_data, 0xaa, 32);
  g.guest_svn = 3;
  assert_int_equal(ra_snp_sim_report(g_sim, &g, rd, rep), 0);
  ra_snp_expect e = {.has = RA_SNP_HOST_DATA | RA_SNP_MIN_GUEST_SVN, .min_guest_svn = 3};
  memset(e.host_data, 0xaa, 32);
  ra_snp_policy m = {.sets = &e, .n_sets = 1};
  expect(v, rep, sizeof rep, &o, &m, 0, -1, &vd);
  e.min_guest_svn = 4;
  expect(v, rep, sizeof rep, &o, &m, RA_ERR_MEASUREMENT, RA_SNP_CHECK_MEASUREMENTS, &vd);
  e.min_guest_svn = 3;
  e.has |= RA_SNP_FAMILY_ID;
  e.family_id[0] = 1;
  expect(v, rep, sizeof rep, &o, &m, RA_ERR_MEASUREMENT, RA_SNP_CHECK_MEASUREMENTS, &vd);
  ra_snp_verifier_free(v);
}

static void test_sim_vcek_mismatch(void **state) {
  (void)state;
  ra_snp_verifier *v = sim_verifier();
  ra_snp_verify_opts o = sim_opts();
  ra_snp_verdict vd;
  uint8_t rd[64] = {2}, rep[1184];
  assert_int_equal(ra_snp_sim_report(g_sim, NULL, rd, rep), 0);

  /* SPLs other than the report's reported_tcb */
  ra_snp_tcb t;
  ra_snp_sim_tcb(&t);
  t.microcode++;
  char *pem;
  assert_int_equal(ra_snp_sim_issue_vcek(g_sim, &t, NULL, NULL, 0, 0, &pem), 0);
  o.vcek = (const uint8_t *)pem;
  o.vcek_len = strlen(pem);
  expect(v, rep, sizeof rep, &o, &k_sig_only, RA_ERR_PCK_EXTENSION, RA_SNP_CHECK_VCEK_EXT, &vd);
  assert_int_equal(vd.checks[RA_SNP_CHECK_CHAIN], RA_CHECK_PASS);
  assert_int_equal(vd.checks[RA_SNP_CHECK_REPORT_SIG], RA_CHECK_PASS); /* same key */
  free(pem);

  /* a hwID that is not the report's chip_id */
  uint8_t hw[64];
  memcpy(hw, ra_snp_sim_chip_id(g_sim), 64);
  hw[63] ^= 1;
  assert_int_equal(ra_snp_sim_issue_vcek(g_sim, NULL, hw, NULL, 0, 0, &pem), 0);
  o.vcek = (const uint8_t *)pem;
  o.vcek_len = strlen(pem);
  expect(v, rep, sizeof rep, &o, &k_sig_only, RA_ERR_PCK_EXTENSION, RA_SNP_CHECK_VCEK_EXT, &vd);
  free(pem);

  /* an expired VCEK */
  time_t now = time(NULL);
  assert_int_equal(
      ra_snp_sim_issue_vcek(g_sim, NULL, NULL, NULL, now - 86400 * 10, now - 86400, &pem), 0);
  o.vcek = (const uint8_t *)pem;
  o.vcek_len = strlen(pem);
  expect(v, rep, sizeof rep, &o, &k_sig_only, RA_ERR_CERT_EXPIRED, RA_SNP_CHECK_CHAIN, &vd);
  free(pem);

  /* a VLEK: accepted for a report that says VLEK, not for one that says VCEK */
  assert_int_equal(ra_snp_sim_issue_vcek(g_sim, NULL, NULL, "raloop-test-csp", 0, 0, &pem), 0);
  o.vcek = (const uint8_t *)pem;
  o.vcek_len = strlen(pem);
  expect(v, rep, sizeof rep, &o, &k_sig_only, RA_ERR_PCK_EXTENSION, RA_SNP_CHECK_VCEK_EXT, &vd);
  ra_snp_sim_guest g;
  ra_snp_sim_guest_default(&g);
  g.signing_key = RA_SNP_KEY_VLEK;
  uint8_t vrep[1184];
  assert_int_equal(ra_snp_sim_report(g_sim, &g, rd, vrep), 0);
  expect(v, vrep, sizeof vrep, &o, &k_sig_only, 0, -1, &vd);
  assert_true(vd.vcek.is_vlek);
  assert_string_equal(vd.vcek.csp_id, "raloop-test-csp");
  free(pem);
  /* and the sim's VCEK for the VLEK-signed report */
  o = sim_opts();
  expect(v, vrep, sizeof vrep, &o, &k_sig_only, RA_ERR_PCK_EXTENSION, RA_SNP_CHECK_VCEK_EXT, &vd);
  ra_snp_verifier_free(v);
}

static void test_sim_crl(void **state) {
  (void)state;
  ra_snp_verify_opts o = sim_opts();
  ra_snp_verdict vd;
  uint8_t rd[64] = {3}, rep[1184], *der;
  size_t n;
  assert_int_equal(ra_snp_sim_report(g_sim, NULL, rd, rep), 0);
  time_t now = time(NULL);

  ra_snp_verifier *v = sim_verifier();
  assert_int_equal(ra_snp_sim_crl(g_sim, 0, now - 3600, now + 86400, &der, &n), 0);
  assert_int_equal(ra_snp_verifier_add_crl(v, der, n), 1);
  free(der);
  expect(v, rep, sizeof rep, &o, &k_sig_only, 0, -1, &vd);
  assert_int_equal(vd.checks[RA_SNP_CHECK_CRL], RA_CHECK_PASS);
  assert_int_equal(vd.crls_applied, 1);
  ra_snp_verifier_free(v);

  v = sim_verifier();
  assert_int_equal(ra_snp_sim_crl(g_sim, 1, now - 3600, now + 86400, &der, &n), 0);
  assert_int_equal(ra_snp_verifier_add_crl(v, der, n), 1);
  free(der);
  expect(v, rep, sizeof rep, &o, &k_sig_only, RA_ERR_CERT_REVOKED, RA_SNP_CHECK_CRL, &vd);
  ra_snp_verifier_free(v);

  v = sim_verifier();
  assert_int_equal(ra_snp_sim_crl(g_sim, 0, now - 86400 * 2, now - 86400, &der, &n), 0);
  assert_int_equal(ra_snp_verifier_add_crl(v, der, n), 1);
  free(der);
  expect(v, rep, sizeof rep, &o, &k_sig_only, RA_ERR_CRL_EXPIRED, RA_SNP_CHECK_CRL, &vd);
  ra_snp_verifier_free(v);

  /* a CRL naming the ARK but signed by another key (another sim's ARK of
   * the same name) */
  char dir2[300];
  snprintf(dir2, sizeof dir2, "%s/other", g_tmp);
  ra_snp_sim *other;
  assert_int_equal(ra_snp_sim_open(dir2, &other), 0);
  v = sim_verifier();
  assert_int_equal(ra_snp_sim_crl(other, 0, now - 3600, now + 86400, &der, &n), 0);
  assert_int_equal(ra_snp_verifier_add_crl(v, der, n), 1);
  free(der);
  expect(v, rep, sizeof rep, &o, &k_sig_only, RA_ERR_CRL_SIGNATURE, RA_SNP_CHECK_CRL, &vd);
  /* and its chain is not trusted through our pinned ARK: a "wrong ARK" */
  ra_snp_verify_opts oo = {.vcek = (const uint8_t *)ra_snp_sim_vcek_pem(other),
                           .vcek_len = strlen(ra_snp_sim_vcek_pem(other)),
                           .ask = (const uint8_t *)ra_snp_sim_chain_pem(other),
                           .ask_len = strlen(ra_snp_sim_chain_pem(other))};
  assert_int_equal(ra_snp_sim_report(other, NULL, rd, rep), 0);
  expect(v, rep, sizeof rep, &oo, &k_sig_only, RA_ERR_ROOT_UNTRUSTED, RA_SNP_CHECK_CHAIN, &vd);
  oo.ask_len = (size_t)(strstr((const char *)oo.ask, "-----END CERTIFICATE-----") + 25 -
                        (const char *)oo.ask);
  ra_snp_verify(v, rep, sizeof rep, &oo, &k_sig_only, &vd);
  assert_int_equal(vd.failed, RA_SNP_CHECK_CHAIN);
  assert_int_equal(vd.checks[RA_SNP_CHECK_REPORT_SIG], RA_CHECK_NOT_RUN);
  ra_snp_verifier_free(v);
  ra_snp_sim_free(other);

  /* bad input to add_crl: nothing added */
  v = sim_verifier();
  assert_int_equal(ra_snp_verifier_add_crl(v, (const uint8_t *)"junk", 4), -EINVAL);
  assert_int_equal(ra_snp_verifier_add_ark(v, (const uint8_t *)ra_snp_sim_vcek_pem(g_sim),
                                           strlen(ra_snp_sim_vcek_pem(g_sim))),
                   -EINVAL);
  ra_snp_verifier_free(v);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_pinned_arks),
      cmocka_unit_test(test_gcp_valid),
      cmocka_unit_test(test_gcp_policy),
      cmocka_unit_test(test_gcp_tampered),
      cmocka_unit_test(test_other_vendors),
      cmocka_unit_test(test_sim_round_trip),
      cmocka_unit_test(test_sim_policy_refusals),
      cmocka_unit_test(test_sim_vcek_mismatch),
      cmocka_unit_test(test_sim_crl),
  };
  /* one simulated hierarchy for the group: RSA key generation is the slow part */
  return cmocka_run_group_tests(tests, sim_setup, sim_teardown);
}
