/* tests/attest/verify_test.c: DCAP verification and policy.
 *
 * The public sample quotes with the verdicts of vectors/quotes/README.md;
 * one flipped bit in every region, each with its specific error code;
 * truncation; look-alike roots; validity windows; CRLs (revocation, forged,
 * expired; DER and PEM); debug refusal; measurement, binding and callback
 * policy. Quotes we need but no vector provides (debug TD, bound keys, an
 * SGX debug enclave) come from the simulated TEE, whose PCK key also signs
 * an SGX v3 quote assembled here. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <openssl/bio.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <sodium.h>

#include "raloop/attest/quote/hexb64.h"
#include "raloop/attest/quote/quote.h"
#include "raloop/attest/quote/sim.h"
#include "raloop/attest/quote/verify.h"

/* ---- helpers ---- */

static uint8_t *load_path(const char *path, size_t *len) {
  FILE *f = fopen(path, "rb");
  if (!f) fail_msg("cannot open %s", path);
  fseek(f, 0, SEEK_END);
  long n = ftell(f);
  fseek(f, 0, SEEK_SET);
  uint8_t *b = malloc((size_t)n + 1);
  assert_non_null(b);
  assert_int_equal(fread(b, 1, (size_t)n, f), (size_t)n);
  fclose(f);
  b[n] = 0;
  *len = (size_t)n;
  return b;
}

static const char *vdir(void) {
  const char *d = getenv("RA_VECTORS");
  return d ? d : RA_VECTORS_DIR;
}

static uint8_t *load(const char *name, size_t *len) {
  char path[1024];
  snprintf(path, sizeof path, "%s/quotes/%s", vdir(), name);
  return load_path(path, len);
}

static void vpath(char *out, size_t n, const char *name) {
  snprintf(out, n, "%s/quotes/%s", vdir(), name);
}

static time_t ymd(int y, int m, int d) {
  struct tm tm = {.tm_year = y - 1900, .tm_mon = m - 1, .tm_mday = d};
  return timegm(&tm);
}

/* allow_mr_servicetd: tdx-v5-trustee.dat binds a service TD (MR_SERVICETD
 * non-zero), which the TD attribute rules (issue 11) refuse by default;
 * test_vectors_valid_now checks that refusal. */
static const ra_policy SIG_ONLY = {.signature_only = true, .allow_mr_servicetd = true};

static int verify(ra_verifier *v, const uint8_t *q, size_t len, time_t at,
                            const ra_policy *pol, ra_verdict *vd) {
  ra_verdict tmp;
  ra_verify_opts o = {.at = at};
  if (!vd) vd = &tmp;
  int rc = ra_verify_quote(v, q, len, &o, pol ? pol : &SIG_ONLY, vd);
  assert_int_equal(rc == 0, vd->err == 0);
  if (rc) assert_int_equal(rc, -EACCES);
  return vd->err;
}

#define assert_err(got, want)                                                                      \
  do {                                                                                             \
    int g_ = (got), w_ = (want);                                                         \
    if (g_ != w_) fail_msg("got %s, want %s", ra_err_name(g_), ra_err_name(w_));     \
  } while (0)

static ra_verifier *intel(void) {
  ra_verifier *v;
  assert_int_equal(ra_verifier_new(0, &v), 0);
  return v;
}

static ra_verifier *pinned(const char *root_name) {
  ra_verifier *v;
  char p[1024];
  vpath(p, sizeof p, root_name);
  assert_int_equal(ra_verifier_new(RA_VERIFIER_NO_DEFAULT_ROOT, &v), 0);
  assert_int_equal(ra_verifier_add_root_file(v, p), 1);
  return v;
}

/* ---- the vectors and their verdicts ---- */

static void test_vectors_valid_now(void **state) {
  static const char *const valid[] = {"tdx-v4-tappd.dat", "tdx-v4-phala.dat", "tdx-v5-trustee.dat",
                                      "sgx-occlum.dat", "sgx-tlsn-quotedev.dat"};
  ra_verifier *v = intel();
  for (size_t i = 0; i < sizeof valid / sizeof *valid; i++) {
    size_t len;
    uint8_t *b = load(valid[i], &len);
    ra_verdict vd;
    if (verify(v, b, len, 0, NULL, &vd) != 0)
      fail_msg("%s: %s: %s", valid[i], ra_err_name(vd.err), vd.msg);
    for (int c = 0; c < RA_CHECK__COUNT; c++) {
      ra_check_status want = RA_CHECK_PASS;
      if (c == RA_CHECK_CRL || c == RA_CHECK_MEASUREMENTS || c == RA_CHECK_BINDING ||
          c == RA_CHECK_CALLBACK || c == RA_CHECK_COLLATERAL || c == RA_CHECK_QE_IDENTITY ||
          c == RA_CHECK_TCB || c == RA_CHECK_TCB_STATUS ||
          (c == RA_CHECK_TD_ATTRIBUTES && vd.tee_type == RA_TEE_SGX))
        want = RA_CHECK_SKIPPED;
      if (vd.checks[c] != want)
        fail_msg("%s: check %s is %s", valid[i], ra_check_name(c),
                 ra_check_status_name(vd.checks[c]));
    }
    assert_true(vd.has_pck);
    assert_false(vd.tcb_evaluated); /* signatures only: TCB not evaluated */
    assert_int_equal(vd.tcb_status, RA_TCB_NONE);
    assert_true(vd.chain_from_quote);
    assert_int_equal(vd.chain_len, 3);
    assert_string_equal(vd.root_subject,
                        "/CN=Intel SGX Root CA/O=Intel Corporation/L=Santa Clara/ST=CA/C=US");
    char fp[65];
    ra_hex_encode(vd.root_sha256, 32, fp);
    assert_string_equal(fp, "44a0196b2b99f889b8e149e95b807a350e7424964399e885a7cbb8ccfab674d3");
    assert_false(vd.debug);
    free(b);
  }
  /* the TD attribute rules: trustee's TD 1.5 report binds a service TD */
  {
    size_t len;
    uint8_t *b = load("tdx-v5-trustee.dat", &len);
    ra_policy strict = {.signature_only = true};
    ra_verdict vd;
    assert_err(verify(v, b, len, 0, &strict, &vd), RA_ERR_TD_ATTRIBUTES);
    assert_int_equal(vd.checks[RA_CHECK_TD_ATTRIBUTES], RA_CHECK_FAIL);
    free(b);
  }
  ra_verifier_free(v);
}

static void test_tappd_verdict_details(void **state) {
  ra_verifier *v = intel();
  size_t len;
  uint8_t *b = load("tdx-v4-tappd.dat", &len);
  ra_verdict vd;
  assert_err(verify(v, b, len, 0, NULL, &vd), 0);
  static const uint8_t fmspc[6] = {0xb0, 0xc0, 0x6f, 0, 0, 0};
  assert_memory_equal(vd.pck.fmspc, fmspc, 6);
  assert_int_equal(vd.pck.pcesvn, 11);
  assert_int_equal(vd.tee_type, RA_TEE_TDX);
  assert_int_equal(vd.version, 4);
  struct tm tm;
  gmtime_r(&vd.pck_not_before, &tm);
  assert_int_equal(tm.tm_year + 1900, 2024);
  assert_int_equal(tm.tm_mon + 1, 8);
  assert_int_equal(tm.tm_mday, 2);
  gmtime_r(&vd.pck_not_after, &tm);
  assert_int_equal(tm.tm_year + 1900, 2031);
  assert_string_equal(vd.msg, "valid (signatures only: TCB not evaluated)");
  assert_string_equal(ra_err_name(RA_ERR_CERT_REVOKED), "RA_ERR_CERT_REVOKED");
  free(b);
  ra_verifier_free(v);
}

static void test_validity_windows(void **state) {
  ra_verifier *v = intel();
  size_t len;
  uint8_t *b = load("tdx-v4-tappd.dat", &len); /* PCK leaf 2024-08-02 .. 2031-08-02 */
  assert_err(verify(v, b, len, ymd(2024, 8, 1), NULL, NULL), RA_ERR_CERT_NOT_YET_VALID);
  assert_err(verify(v, b, len, ymd(2024, 8, 3), NULL, NULL), 0);
  assert_err(verify(v, b, len, ymd(2031, 8, 1), NULL, NULL), 0);
  assert_err(verify(v, b, len, ymd(2031, 8, 3), NULL, NULL), RA_ERR_CERT_EXPIRED);
  free(b);
  b = load("tdx-v4-phala.dat", &len); /* 2025-02-06 .. 2032-02-06 */
  assert_err(verify(v, b, len, ymd(2025, 2, 5), NULL, NULL), RA_ERR_CERT_NOT_YET_VALID);
  assert_err(verify(v, b, len, ymd(2032, 2, 7), NULL, NULL), RA_ERR_CERT_EXPIRED);
  free(b);
  b = load("tdx-v5-trustee.dat", &len); /* 2024-03-18 .. 2031-03-18 */
  assert_err(verify(v, b, len, ymd(2024, 3, 17), NULL, NULL), RA_ERR_CERT_NOT_YET_VALID);
  assert_err(verify(v, b, len, ymd(2031, 3, 19), NULL, NULL), RA_ERR_CERT_EXPIRED);
  free(b);
  ra_verifier_free(v);
}

/* A verifier with its cache on reuses the PCK paths it validated: at every
 * time around the validity edges (and after a root is pinned) it says what
 * a verifier that validates every path anew says. */
static void test_warm_paths_match_cold(void **state) {
  ra_verifier *warm = intel(), *cold;
  assert_int_equal(ra_verifier_new(RA_VERIFIER_NO_CERT_CACHE, &cold), 0);
  size_t len;
  uint8_t *b = load("tdx-v4-tappd.dat", &len);
  ra_verdict vd, vc;
  assert_err(verify(warm, b, len, ymd(2025, 1, 1), NULL, &vd), 0);
  time_t nb = vd.pck_not_before, na = vd.pck_not_after;
  assert_true(nb > 0 && na > nb);
  const time_t at[] = {nb - 1, nb, nb + 1, na - 1, na, na + 1, ymd(2025, 1, 1), na, nb - 1};
  for (size_t i = 0; i < sizeof at / sizeof *at; i++) {
    /* the memo holds the path validated at a good time */
    assert_err(verify(warm, b, len, ymd(2025, 1, 1), NULL, NULL), 0);
    int w = verify(warm, b, len, at[i], NULL, &vd), c = verify(cold, b, len, at[i], NULL, &vc);
    if (w != c) fail_msg("at %lld: warm %s, cold %s", (long long)at[i], ra_err_name(w), ra_err_name(c));
    assert_memory_equal(vd.checks, vc.checks, sizeof vd.checks);
  }
  assert_err(verify(warm, b, len, nb, NULL, NULL), 0);
  assert_err(verify(warm, b, len, na, NULL, NULL), RA_ERR_CERT_EXPIRED);
  assert_err(verify(warm, b, len, nb - 1, NULL, NULL), RA_ERR_CERT_NOT_YET_VALID);
  /* a root pinned since: validated again, same verdict */
  char p[1024];
  vpath(p, sizeof p, "tdx-collateral/trustedRootCaCert.pem");
  assert_int_equal(ra_verifier_add_root_file(warm, p), 1);
  assert_err(verify(warm, b, len, ymd(2025, 1, 1), NULL, &vd), 0);
  assert_string_equal(vd.root_subject,
                      "/CN=Intel SGX Root CA/O=Intel Corporation/L=Santa Clara/ST=CA/C=US");
  free(b);
  ra_verifier_free(warm);
  ra_verifier_free(cold);
}

/* A verifier that keeps decoded CAs only (RA_VERIFIER_CACHE_CA_ONLY)
 * checks a new leaf alone under a PCK CA whose path it validated before:
 * for leaves of three platforms (one CA), at times around every edge, and
 * for a leaf whose signature is broken, it says what a verifier that
 * validates every path anew says, with the same window. */
static void test_ca_paths_match_cold(void **state) {
  ra_verifier *ca, *cold;
  assert_int_equal(ra_verifier_new(RA_VERIFIER_CACHE_CA_ONLY, &ca), 0);
  assert_int_equal(ra_verifier_new(RA_VERIFIER_NO_CERT_CACHE, &cold), 0);
  static const char *const files[] = {"tdx-v4-tappd.dat", "tdx-v4-phala.dat", "tdx-v5-trustee.dat"};
  for (int round = 0; round < 2; round++)
    for (size_t f = 0; f < 3; f++) {
      size_t len;
      uint8_t *b = load(files[f], &len);
      ra_verdict vd, vc;
      assert_err(verify(ca, b, len, ymd(2025, 6, 1), NULL, &vd), 0);
      time_t nb = vd.pck_not_before, na = vd.pck_not_after;
      const time_t at[] = {nb - 1, nb, na - 1, na, ymd(2025, 6, 1), ymd(2040, 1, 1), ymd(2010, 1, 1)};
      for (size_t i = 0; i < sizeof at / sizeof *at; i++) {
        assert_err(verify(ca, b, len, ymd(2025, 6, 1), NULL, NULL), 0); /* CA path known */
        int w = verify(ca, b, len, at[i], NULL, &vd), c = verify(cold, b, len, at[i], NULL, &vc);
        if (w != c)
          fail_msg("%s at %lld: CA-only %s, cold %s", files[f], (long long)at[i], ra_err_name(w),
                   ra_err_name(c));
        assert_memory_equal(vd.checks, vc.checks, sizeof vd.checks);
        assert_int_equal(vd.valid_from, vc.valid_from);
        assert_int_equal(vd.valid_until, vc.valid_until);
        assert_int_equal(vd.chain_len, vc.chain_len);
        assert_memory_equal(vd.root_sha256, vc.root_sha256, 32);
      }
      /* the leaf's signature broken (a base64 digit of its last line) */
      if (f == 0) {
        uint8_t *bad = malloc(len);
        memcpy(bad, b, len);
        uint8_t *end = memmem(bad, len, "-----END CERTIFICATE-----", 25);
        assert_non_null(end);
        end[-20] = end[-20] == 'A' ? 'B' : 'A';
        int w = verify(ca, bad, len, ymd(2025, 6, 1), NULL, &vd);
        int c = verify(cold, bad, len, ymd(2025, 6, 1), NULL, &vc);
        assert_int_not_equal(w, 0);
        if (w != c) fail_msg("broken leaf: CA-only %s, cold %s", ra_err_name(w), ra_err_name(c));
        assert_memory_equal(vd.checks, vc.checks, sizeof vd.checks);
        free(bad);
      }
      free(b);
    }
  ra_verifier_free(ca);
  ra_verifier_free(cold);
}

/* A warm verifier remembers QE report signatures it verified (same PCK
 * certificate, same report and signature bytes): a quote whose QE report
 * signature or QE report differs in one byte from a remembered one is
 * still refused, as a cold verifier refuses it. */
static void test_warm_qe_signature_memo(void **state) {
  ra_verifier *warm = intel(), *cold;
  assert_int_equal(ra_verifier_new(RA_VERIFIER_NO_CERT_CACHE, &cold), 0);
  size_t len;
  uint8_t *b = load("tdx-v4-tappd.dat", &len);
  ra_quote q;
  assert_int_equal(ra_quote_parse(b, len, &q), 0);
  size_t sig_at = (size_t)(q.qe_report_sig - b), rep_at = (size_t)(q.qe_report.raw - b);
  ra_verdict vd, vc;
  assert_err(verify(warm, b, len, ymd(2025, 1, 1), NULL, &vd), 0); /* remembered */
  assert_err(verify(warm, b, len, ymd(2025, 1, 1), NULL, &vd), 0);
  const size_t flips[] = {sig_at, sig_at + 63, rep_at + 10, rep_at + 383};
  for (size_t i = 0; i < sizeof flips / sizeof *flips; i++) {
    uint8_t *bad = malloc(len);
    memcpy(bad, b, len);
    bad[flips[i]] ^= 0x01;
    int w = verify(warm, bad, len, ymd(2025, 1, 1), NULL, &vd);
    int c = verify(cold, bad, len, ymd(2025, 1, 1), NULL, &vc);
    assert_int_not_equal(w, 0);
    if (w != c) fail_msg("flip at %zu: warm %s, cold %s", flips[i], ra_err_name(w), ra_err_name(c));
    assert_int_equal(vd.checks[RA_CHECK_QE_SIG], RA_CHECK_FAIL);
    assert_memory_equal(vd.checks, vc.checks, sizeof vd.checks);
    free(bad);
  }
  /* and the remembered one still passes */
  assert_err(verify(warm, b, len, ymd(2025, 1, 1), NULL, &vd), 0);
  assert_int_equal(vd.checks[RA_CHECK_QE_SIG], RA_CHECK_PASS);
  free(b);
  ra_verifier_free(warm);
  ra_verifier_free(cold);
}

/* Intel's TDX sample: DER chain, root first, to a look-alike test root. */
static void test_tdx_collateral(void **state) {
  size_t len;
  uint8_t *b = load("tdx-collateral/quote.dat", &len);
  ra_verifier *v = intel();
  ra_verdict vd;
  assert_err(verify(v, b, len, 0, NULL, &vd), RA_ERR_ROOT_UNTRUSTED);
  assert_int_equal(vd.checks[RA_CHECK_CHAIN], RA_CHECK_FAIL);
  /* everything but the trust anchor is sound */
  assert_int_equal(vd.checks[RA_CHECK_QE_SIG], RA_CHECK_PASS);
  assert_int_equal(vd.checks[RA_CHECK_QUOTE_SIG], RA_CHECK_PASS);
  ra_verifier_free(v);

  /* pinning both roots: the embedded (test) root now is pinned */
  char p[1024];
  vpath(p, sizeof p, "tdx-collateral/trustedRootCaCert.pem");
  v = intel();
  assert_int_equal(ra_verifier_add_root_file(v, p), 1);
  assert_err(verify(v, b, len, 0, NULL, &vd), 0);
  ra_verifier_free(v);

  v = pinned("tdx-collateral/trustedRootCaCert.pem");
  assert_err(verify(v, b, len, 0, NULL, &vd), 0);
  assert_true(vd.chain_from_quote);
  assert_int_equal(vd.chain_len, 3);
  /* Intel's sample CRLs (DER) verify against the chain and revoke nothing */
  vpath(p, sizeof p, "tdx-collateral/rootCaCrl.der");
  assert_int_equal(ra_verifier_add_crl_file(v, p), 1);
  vpath(p, sizeof p, "tdx-collateral/intermediateCaCrl.der");
  assert_int_equal(ra_verifier_add_crl_file(v, p), 1);
  assert_err(verify(v, b, len, 0, NULL, &vd), 0);
  assert_int_equal(vd.crls_applied, 2);
  assert_int_equal(vd.checks[RA_CHECK_CRL], RA_CHECK_PASS);
  /* the SGX sample's real-Intel-named root does not pin this one */
  ra_verifier_free(v);
  v = pinned("sgx-collateral/trustedRootCaCert.pem");
  assert_err(verify(v, b, len, 0, NULL, NULL), RA_ERR_ROOT_UNTRUSTED);
  ra_verifier_free(v);
  free(b);
}

static uint8_t *sgx_collateral_chain(size_t *len) {
  size_t a, c;
  uint8_t *leaf = load("sgx-collateral/pckCert.pem", &a),
          *rest = load("sgx-collateral/pckSignChain.pem", &c);
  uint8_t *all = malloc(a + c + 1);
  memcpy(all, rest, c); /* any order: intermediate and root first */
  all[c] = '\n';
  memcpy(all + c + 1, leaf, a);
  free(leaf);
  free(rest);
  *len = a + c + 1;
  return all;
}

/* Intel's SGX sample: no chain inside; the caller supplies it. */
static void test_sgx_collateral(void **state) {
  size_t len, clen;
  uint8_t *b = load("sgx-collateral/quote.dat", &len), *chain = sgx_collateral_chain(&clen);
  ra_verifier *v = pinned("sgx-collateral/trustedRootCaCert.pem");
  ra_verify_opts o = {.at = ymd(2025, 6, 1)};
  ra_verdict vd;

  assert_int_equal(ra_verify_quote(v, b, len, &o, &SIG_ONLY, &vd), -EACCES);
  assert_err(vd.err, RA_ERR_NO_PCK_CHAIN);

  o.pck_chain = chain;
  o.pck_chain_len = clen;
  assert_int_equal(ra_verify_quote(v, b, len, &o, &SIG_ONLY, &vd), 0);
  assert_false(vd.chain_from_quote);
  assert_int_equal(vd.version, 3);
  assert_int_equal(vd.tee_type, RA_TEE_SGX);

  /* now: its PCK leaf expired 2026-09-05 */
  o.at = 0;
  ra_verify_quote(v, b, len, &o, &SIG_ONLY, &vd);
  assert_err(vd.err, RA_ERR_CERT_EXPIRED);
  o.at = ymd(2026, 9, 4);
  ra_verify_quote(v, b, len, &o, &SIG_ONLY, &vd);
  assert_err(vd.err, 0);
  o.at = ymd(2026, 9, 6);
  ra_verify_quote(v, b, len, &o, &SIG_ONLY, &vd);
  assert_err(vd.err, RA_ERR_CERT_EXPIRED);

  /* its sample CRLs, PEM and DER */
  char p[1024];
  o.at = ymd(2025, 6, 1);
  vpath(p, sizeof p, "sgx-collateral/rootCaCrl.pem");
  assert_int_equal(ra_verifier_add_crl_file(v, p), 1);
  vpath(p, sizeof p, "sgx-collateral/intermediateCaCrl.der");
  assert_int_equal(ra_verifier_add_crl_file(v, p), 1);
  ra_verify_quote(v, b, len, &o, &SIG_ONLY, &vd);
  assert_err(vd.err, 0);
  assert_int_equal(vd.crls_applied, 2);
  ra_verifier_free(v);

  /* with the default (real Intel) root: the look-alike is refused */
  v = intel();
  ra_verify_quote(v, b, len, &o, &SIG_ONLY, &vd);
  assert_err(vd.err, RA_ERR_ROOT_UNTRUSTED);
  ra_verifier_free(v);

  /* a supplied chain that does not parse */
  v = pinned("sgx-collateral/trustedRootCaCert.pem");
  o.pck_chain = (const uint8_t *)"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n";
  o.pck_chain_len = strlen((const char *)o.pck_chain);
  ra_verify_quote(v, b, len, &o, &SIG_ONLY, &vd);
  assert_err(vd.err, RA_ERR_CERT_PARSE);
  ra_verifier_free(v);
  free(chain);
  free(b);
}

/* A chain supplied without its root, or with only the leaf. */
static void test_partial_chains(void **state) {
  size_t len;
  uint8_t *b = load("tdx-v4-tappd.dat", &len);
  ra_quote q;
  assert_int_equal(ra_quote_parse(b, len, &q), 0);
  const char *pem = (const char *)q.cert_data.bytes;
  const char *second = strstr(pem + 1, "-----BEGIN CERTIFICATE-----");
  const char *third = strstr(second + 1, "-----BEGIN CERTIFICATE-----");
  assert_non_null(third);
  ra_verifier *v = intel();
  ra_verify_opts o = {0};
  ra_verdict vd;
  o.pck_chain = (const uint8_t *)pem;
  o.pck_chain_len = (size_t)(third - pem); /* leaf + intermediate */
  assert_int_equal(ra_verify_quote(v, b, len, &o, &SIG_ONLY, &vd), 0);
  assert_false(vd.chain_from_quote);
  assert_int_equal(vd.chain_len, 3);
  o.pck_chain_len = (size_t)(second - pem); /* leaf only */
  ra_verify_quote(v, b, len, &o, &SIG_ONLY, &vd);
  assert_err(vd.err, RA_ERR_ROOT_UNTRUSTED);
  /* two unrelated leaves: not one path */
  size_t l2;
  uint8_t *other = load("sgx-collateral/pckCert.pem", &l2);
  char *two = malloc((size_t)(second - pem) + l2);
  memcpy(two, pem, (size_t)(second - pem));
  memcpy(two + (second - pem), other, l2);
  o.pck_chain = (const uint8_t *)two;
  o.pck_chain_len = (size_t)(second - pem) + l2;
  ra_verify_quote(v, b, len, &o, &SIG_ONLY, &vd);
  assert_err(vd.err, RA_ERR_CHAIN_BROKEN);
  /* the sample's leaf as the only cert: wrong key for the QE report too */
  o.pck_chain = other;
  o.pck_chain_len = l2;
  ra_verify_quote(v, b, len, &o, &SIG_ONLY, &vd);
  assert_err(vd.err, RA_ERR_ROOT_UNTRUSTED);
  assert_int_equal(vd.checks[RA_CHECK_QE_SIG], RA_CHECK_FAIL);
  free(two);
  free(other);
  ra_verifier_free(v);
  free(b);
}

/* ---- flipped bits ---- */

typedef struct region {
  const char *name;
  size_t off, len;
  int want;
} region;

/* Flips bit (i % 8) of every byte of each region, expecting the region's
 * error code. */
static void flip_regions(ra_verifier *v, const uint8_t *b, size_t len, time_t at, const region *r,
                         size_t nr) {
  uint8_t *c = malloc(len);
  for (size_t k = 0; k < nr; k++) {
    for (size_t i = r[k].off; i < r[k].off + r[k].len; i++) {
      memcpy(c, b, len);
      c[i] ^= (uint8_t)(1u << (i % 8));
      ra_verdict vd;
      int e = verify(v, c, len, at, NULL, &vd);
      if (e != r[k].want)
        fail_msg("%s byte %zu: got %s (%s), want %s", r[k].name, i - r[k].off,
                 ra_err_name(e), vd.msg, ra_err_name(r[k].want));
    }
  }
  free(c);
}

static void quote_regions(const uint8_t *b, const ra_quote *q, region *r, size_t *n) {
  size_t k = 0;
#define OFF(p) ((size_t)((const uint8_t *)(p)-b))
  r[k++] = (region){"header qe_svn/pce_svn", 8, 4, RA_ERR_QUOTE_SIGNATURE};
  r[k++] = (region){"header qe_vendor_id", 12, 16, RA_ERR_QE_VENDOR};
  r[k++] = (region){"header user_data", 28, 20, RA_ERR_QUOTE_SIGNATURE};
  r[k++] = (region){"body", OFF(q->body.bytes), q->body.len, RA_ERR_QUOTE_SIGNATURE};
  r[k++] = (region){"quote signature", OFF(q->signature), 64, RA_ERR_QUOTE_SIGNATURE};
  r[k++] = (region){"attestation key", OFF(q->att_key), 64, RA_ERR_QE_REPORT_DATA};
  r[k++] = (region){"QE report", OFF(q->qe_report.raw), 384, RA_ERR_QE_REPORT_SIGNATURE};
  r[k++] = (region){"QE report signature", OFF(q->qe_report_sig), 64, RA_ERR_QE_REPORT_SIGNATURE};
  r[k++] =
      (region){"QE auth data", OFF(q->qe_auth_data.bytes), q->qe_auth_data.len, RA_ERR_QE_REPORT_DATA};
#undef OFF
  *n = k;
}

static void flip_quote(const char *name, ra_verifier *v, time_t at) {
  size_t len, n;
  uint8_t *b = load(name, &len);
  ra_quote q;
  region r[16];
  assert_int_equal(ra_quote_parse(b, len, &q), 0);
  assert_err(verify(v, b, len, at, NULL, NULL), 0);
  quote_regions(b, &q, r, &n);
  flip_regions(v, b, len, at, r, n);
  /* version, key type, TEE type: refused as a format error, whatever it becomes */
  uint8_t *c = malloc(len);
  for (size_t i = 0; i < 8; i++) {
    memcpy(c, b, len);
    c[i] ^= (uint8_t)(1u << (i % 8));
    int e = verify(v, c, len, at, NULL, NULL);
    assert_true(e == RA_ERR_QUOTE_UNSUPPORTED || e == RA_ERR_QUOTE_MALFORMED ||
                e == RA_ERR_QUOTE_TRUNCATED);
  }
  free(c);
  free(b);
}

static void test_flip_tdx_v4(void **state) {
  ra_verifier *v = intel();
  flip_quote("tdx-v4-tappd.dat", v, 0);
  ra_verifier_free(v);
}

static void test_flip_tdx_v5(void **state) {
  ra_verifier *v = intel();
  flip_quote("tdx-v5-trustee.dat", v, 0);
  /* the v5 body descriptor is signed too; changing it breaks the parse */
  size_t len;
  uint8_t *b = load("tdx-v5-trustee.dat", &len);
  b[48] ^= 1; /* body type 3 -> 2 with size 648 */
  assert_err(verify(v, b, len, 0, NULL, NULL), RA_ERR_QUOTE_MALFORMED);
  free(b);
  ra_verifier_free(v);
}

static void test_flip_sgx_v3(void **state) {
  ra_verifier *v = intel();
  flip_quote("sgx-occlum.dat", v, 0);
  ra_verifier_free(v);
}

static void test_flip_tdx_collateral(void **state) {
  ra_verifier *v = pinned("tdx-collateral/trustedRootCaCert.pem");
  flip_quote("tdx-collateral/quote.dat", v, 0);
  ra_verifier_free(v);
}

/* Which certificate a DER blob is: 0 leaf, 1 intermediate, 2 root. */
static int cert_role(const uint8_t *der, size_t len) {
  const uint8_t *p = der;
  X509 *x = d2i_X509(NULL, &p, (long)len);
  assert_non_null(x);
  char cn[256];
  X509_NAME_oneline(X509_get_subject_name(x), cn, sizeof cn);
  int role = X509_check_issued(x, x) == X509_V_OK ? 2 : strstr(cn, "PCK Certificate") ? 0 : 1;
  X509_free(x);
  return role;
}

static const int CERT_FLIP_WANT[3] = {RA_ERR_CHAIN_SIGNATURE, RA_ERR_CHAIN_SIGNATURE,
                                                RA_ERR_ROOT_UNTRUSTED};

/* DER chain (Intel's TDX sample): flip a TBS byte (serial number) and a
 * signature byte of each certificate. */
static void test_flip_der_chain(void **state) {
  size_t len;
  uint8_t *b = load("tdx-collateral/quote.dat", &len);
  ra_quote q;
  assert_int_equal(ra_quote_parse(b, len, &q), 0);
  ra_verifier *v = pinned("tdx-collateral/trustedRootCaCert.pem");
  size_t off = (size_t)(q.cert_data.bytes - b), end = off + q.cert_data.len;
  int seen[3] = {0};
  while (off < end && b[off] == 0x30) {
    assert_int_equal(b[off + 1], 0x82);
    size_t clen = 4 + ((size_t)b[off + 2] << 8 | b[off + 3]);
    int role = cert_role(b + off, clen);
    seen[role]++;
    size_t at[2] = {off + 15, off + clen - 2};
    for (int k = 0; k < 2; k++) {
      uint8_t *c = malloc(len);
      memcpy(c, b, len);
      c[at[k]] ^= 1;
      ra_verdict vd;
      int e = verify(v, c, len, 0, NULL, &vd);
      if (e != CERT_FLIP_WANT[role])
        fail_msg("cert role %d byte %zu: got %s (%s)", role, at[k] - off, ra_err_name(e),
                 vd.msg);
      free(c);
    }
    off += clen;
  }
  assert_int_equal(seen[0], 1);
  assert_int_equal(seen[1], 1);
  assert_int_equal(seen[2], 1);
  ra_verifier_free(v);
  free(b);
}

static int b64v(int c) {
  static const char A[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  const char *p = c ? strchr(A, c) : NULL;
  return p ? (int)(p - A) : -1;
}

/* Flips bit 0 of DER byte `idx` of the PEM body starting at `body` (base64,
 * 4-char groups, newlines between), in place. */
static void pem_flip(char *body, size_t idx) {
  static const char A[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  size_t group = idx / 3, g = 0;
  char *p = body;
  char *pos[4];
  for (;;) {
    int n = 0;
    while (n < 4) {
      if (*p == '\n' || *p == '\r') {
        p++;
        continue;
      }
      pos[n++] = p++;
    }
    if (g++ == group) break;
  }
  uint32_t v = 0;
  int pads = 0;
  for (int i = 0; i < 4; i++) {
    int x = *pos[i] == '=' ? (pads++, 0) : b64v(*pos[i]);
    assert_true(x >= 0);
    v = v << 6 | (uint32_t)x;
  }
  assert_true((int)(idx % 3) < 3 - pads);
  v ^= 1u << (8 * (2 - idx % 3));
  for (int i = 0; i < 4 - pads; i++) *pos[i] = A[(v >> (18 - 6 * i)) & 63];
}

static size_t pem_der_len(const char *body, const char *stop) {
  size_t chars = 0, pads = 0;
  for (const char *p = body; p < stop; p++) {
    if (*p == '=')
      pads++;
    else if (b64v(*p) >= 0)
      chars++;
  }
  return (chars + pads) / 4 * 3 - pads;
}

static void pem_block_der(const char *body, const char *stop, uint8_t **der, size_t *len) {
  uint8_t *out;
  size_t n;
  assert_int_equal(ra_decode_auto((const uint8_t *)body, (size_t)(stop - body), &out, &n, NULL), 0);
  *der = out;
  *len = n;
}

/* PEM chains (every real quote): flip a TBS byte and a signature byte of
 * each certificate; then every byte of the chain text (nothing may verify
 * unless the byte was only whitespace/padding). */
static void flip_pem_chain(const char *name) {
  size_t len;
  uint8_t *b = load(name, &len);
  ra_quote q;
  assert_int_equal(ra_quote_parse(b, len, &q), 0);
  ra_verifier *v = intel();
  char *start = (char *)b + (q.cert_data.bytes - b), *end = start + q.cert_data.len;
  int seen[3] = {0};
  for (char *blk = start;
       (blk = memmem(blk, (size_t)(end - blk), "-----BEGIN CERTIFICATE-----", 27));) {
    char *body = blk + 27;
    while (*body == '\n' || *body == '\r') body++;
    char *stop = memmem(body, (size_t)(end - body), "-----END", 8);
    assert_non_null(stop);
    uint8_t *der;
    size_t dlen;
    pem_block_der(body, stop, &der, &dlen);
    assert_int_equal(dlen, pem_der_len(body, stop));
    int role = cert_role(der, dlen);
    seen[role]++;
    free(der);
    size_t at[2] = {15, dlen - 2};
    for (int k = 0; k < 2; k++) {
      uint8_t *c = malloc(len);
      memcpy(c, b, len);
      pem_flip((char *)c + (body - (char *)b), at[k]);
      ra_verdict vd;
      int e = verify(v, c, len, 0, NULL, &vd);
      if (e != CERT_FLIP_WANT[role])
        fail_msg("%s cert role %d DER byte %zu: got %s (%s)", name, role, at[k],
                 ra_err_name(e), vd.msg);
      free(c);
    }
    blk = stop;
  }
  assert_int_equal(seen[0], 1);
  assert_int_equal(seen[1], 1);
  assert_int_equal(seen[2], 1);

  /* every byte of the text */
  uint8_t *c = malloc(len);
  for (char *p = start; p < end; p++) {
    size_t i = (size_t)((uint8_t *)p - b);
    if (*p == '\n' || *p == '\r' || *p == '\0') continue;
    memcpy(c, b, len);
    c[i] ^= 1;
    ra_verdict vd;
    int e = verify(v, c, len, 0, NULL, &vd);
    if (e == 0) {
      /* only acceptable if the certificate bytes are unchanged: the
             * unused low bits of the last base64 digit before '=' */
      char *bstart = p, *bend = p;
      while (bstart > start && bstart[-1] != '\n') bstart--;
      while (bend < end && *bend != '\n') bend++;
      uint8_t *d1, *d2;
      size_t n1, n2;
      pem_block_der(bstart, bend, &d1, &n1);
      pem_block_der((char *)c + (bstart - (char *)b), (char *)c + (bend - (char *)b), &d2, &n2);
      if (n1 != n2 || memcmp(d1, d2, n1) || !memchr(bstart, '=', (size_t)(bend - bstart)))
        fail_msg("%s: flipped chain byte %zu ('%c') still verifies", name, i, *p);
      free(d1);
      free(d2);
    }
  }
  free(c);
  ra_verifier_free(v);
  free(b);
}

static void test_flip_pem_chain(void **state) {
  flip_pem_chain("tdx-v4-tappd.dat");
  flip_pem_chain("sgx-tlsn-quotedev.dat");
}

static void test_truncation_verdicts(void **state) {
  size_t len;
  uint8_t *b = load("tdx-v4-phala.dat", &len);
  ra_quote q;
  assert_int_equal(ra_quote_parse(b, len, &q), 0);
  ra_verifier *v = intel();
  for (size_t n = 0; n <= len; n++) {
    uint8_t *c = malloc(n ? n : 1);
    memcpy(c, b, n);
    int e = verify(v, c, n, 0, NULL, NULL);
    if (n < q.quote_len) {
      if (e != RA_ERR_QUOTE_TRUNCATED) fail_msg("length %zu: %s", n, ra_err_name(e));
    } else {
      assert_err(e, 0);
    }
    free(c);
  }
  ra_verifier_free(v);
  free(b);
}

/* ---- roots, CRLs ---- */

static void test_intel_root_compiled_in(void **state) {
  const uint8_t *p;
  BIO *bio = BIO_new_mem_buf(ra_intel_sgx_root_ca_pem, -1);
  X509 *x = PEM_read_bio_X509(bio, NULL, NULL, NULL);
  BIO_free(bio);
  assert_non_null(x);
  uint8_t md[32];
  unsigned mdl = 0;
  assert_int_equal(X509_digest(x, EVP_sha256(), md, &mdl), 1);
  char hex[65];
  ra_hex_encode(md, 32, hex);
  assert_string_equal(hex, "44a0196b2b99f889b8e149e95b807a350e7424964399e885a7cbb8ccfab674d3");
  X509_free(x);
  (void)p;

  ra_verifier *v;
  assert_int_equal(ra_verifier_new(RA_VERIFIER_NO_DEFAULT_ROOT, &v), 0);
  size_t len;
  uint8_t *b = load("tdx-v4-tappd.dat", &len);
  assert_err(verify(v, b, len, 0, NULL, NULL), RA_ERR_ROOT_UNTRUSTED); /* nothing pinned */
  assert_int_equal(ra_verifier_add_root(v, (const uint8_t *)"garbage", 7), -EINVAL);
  assert_int_equal(ra_verifier_add_root(v, (const uint8_t *)ra_intel_sgx_root_ca_pem,
                                        strlen(ra_intel_sgx_root_ca_pem)),
                   1);
  assert_err(verify(v, b, len, 0, NULL, NULL), 0);
  assert_int_equal(ra_verifier_add_crl(v, (const uint8_t *)"garbage", 7), -EINVAL);
  assert_int_equal(ra_verifier_add_crl(v, NULL, 0), -EINVAL);
  assert_true(ra_verifier_add_root_file(v, "/nonexistent/root.pem") < 0);
  ra_verifier_free(v);
  free(b);
}

/* A CRL naming `issuer` but signed by a key of our own. */
static uint8_t *forged_crl(const X509_NAME *issuer, time_t last, time_t next, size_t *len) {
  EVP_PKEY *k = EVP_EC_gen("P-256");
  X509_CRL *crl = X509_CRL_new();
  assert_non_null(k);
  assert_non_null(crl);
  X509_CRL_set_version(crl, 1);
  X509_CRL_set_issuer_name(crl, issuer);
  ASN1_TIME *t1 = ASN1_TIME_set(NULL, last), *t2 = ASN1_TIME_set(NULL, next);
  X509_CRL_set1_lastUpdate(crl, t1);
  X509_CRL_set1_nextUpdate(crl, t2);
  assert_true(X509_CRL_sign(crl, k, EVP_sha256()) > 0);
  uint8_t *der = NULL;
  int n = i2d_X509_CRL(crl, &der);
  assert_true(n > 0);
  uint8_t *out = malloc((size_t)n);
  memcpy(out, der, (size_t)n);
  OPENSSL_free(der);
  ASN1_TIME_free(t1);
  ASN1_TIME_free(t2);
  X509_CRL_free(crl);
  EVP_PKEY_free(k);
  *len = (size_t)n;
  return out;
}

static X509 *pem_cert(const char *name) {
  size_t len;
  uint8_t *b = load(name, &len);
  BIO *bio = BIO_new_mem_buf(b, (int)len);
  X509 *x = PEM_read_bio_X509(bio, NULL, NULL, NULL);
  BIO_free(bio);
  free(b);
  assert_non_null(x);
  return x;
}

static void test_forged_crl_intel_names(void **state) {
  size_t len, clen, flen;
  uint8_t *b = load("sgx-collateral/quote.dat", &len), *chain = sgx_collateral_chain(&clen);
  X509 *leaf = pem_cert("sgx-collateral/pckCert.pem");
  ra_verifier *v = pinned("sgx-collateral/trustedRootCaCert.pem");
  ra_verify_opts o = {.at = ymd(2025, 6, 1), .pck_chain = chain, .pck_chain_len = clen};
  ra_verdict vd;
  /* issuer name of the PCK leaf = "Intel SGX PCK Processor CA" */
  uint8_t *crl = forged_crl(X509_get_issuer_name(leaf), ymd(2025, 1, 1), ymd(2026, 1, 1), &flen);
  assert_int_equal(ra_verifier_add_crl(v, crl, flen), 1);
  ra_verify_quote(v, b, len, &o, &SIG_ONLY, &vd);
  assert_err(vd.err, RA_ERR_CRL_SIGNATURE);
  assert_int_equal(vd.checks[RA_CHECK_CRL], RA_CHECK_FAIL);
  assert_int_equal(vd.checks[RA_CHECK_CHAIN], RA_CHECK_PASS);
  ra_verifier_free(v);
  free(crl);

  /* a CRL of an unrelated CA is not applied, and CRLs that cover no CA of
   * the chain are a failure (issue 11; this used to pass with crls_applied 0) */
  X509_NAME *other = X509_NAME_new();
  X509_NAME_add_entry_by_txt(other, "CN", MBSTRING_ASC, (const unsigned char *)"Some Other CA", -1,
                             -1, 0);
  crl = forged_crl(other, ymd(2025, 1, 1), ymd(2026, 1, 1), &flen);
  v = pinned("sgx-collateral/trustedRootCaCert.pem");
  assert_int_equal(ra_verifier_add_crl(v, crl, flen), 1);
  ra_verify_quote(v, b, len, &o, &SIG_ONLY, &vd);
  assert_err(vd.err, RA_ERR_CRL_MISSING);
  assert_int_equal(vd.checks[RA_CHECK_CRL], RA_CHECK_FAIL);
  assert_int_equal(vd.crls_applied, 0);
  ra_verifier_free(v);
  X509_NAME_free(other);
  free(crl);

  /* Intel's genuine sample CRL, outside its window (2019-09-05 .. 2029-09-05) */
  char p[1024];
  vpath(p, sizeof p, "sgx-collateral/intermediateCaCrl.pem");
  v = pinned("sgx-collateral/trustedRootCaCert.pem");
  assert_int_equal(ra_verifier_add_crl_file(v, p), 1);
  o.at = ymd(2019, 9, 4);
  ra_verify_quote(v, b, len, &o, &SIG_ONLY, &vd);
  assert_err(vd.err, RA_ERR_CERT_NOT_YET_VALID); /* the leaf is younger still */
  ra_verifier_free(v);

  X509_free(leaf);
  free(chain);
  free(b);
}

/* ---- the simulated TEE: CRLs, debug, binding ---- */

static char sim_dir[256];

static int sim_setup(void **state) {
  snprintf(sim_dir, sizeof sim_dir, "/tmp/ra-verify-test-XXXXXX");
  if (!mkdtemp(sim_dir)) return -1;
  ra_sim *sim;
  if (ra_sim_open(sim_dir, &sim)) return -1;
  *state = sim;
  return 0;
}

static int sim_teardown(void **state) {
  char cmd[512];
  ra_sim_free(*state);
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", sim_dir);
  return system(cmd) == 0 ? 0 : -1;
}

static ra_verifier *sim_verifier(ra_sim *sim) {
  ra_verifier *v;
  assert_int_equal(ra_verifier_new(RA_VERIFIER_NO_DEFAULT_ROOT, &v), 0);
  assert_int_equal(ra_verifier_add_root_file(v, ra_sim_root_pem_path(sim)), 1);
  return v;
}

static uint8_t *sim_quote(ra_sim *sim, const ra_sim_td *td, const uint8_t rd[64], size_t *len) {
  uint8_t *q;
  assert_int_equal(ra_sim_quote(sim, td, rd, &q, len), 0);
  return q;
}

static void test_sim_roots(void **state) {
  ra_sim *sim = *state;
  static const uint8_t rd[64];
  size_t len;
  uint8_t *q = sim_quote(sim, NULL, rd, &len);
  ra_verifier *v = intel();
  assert_err(verify(v, q, len, 0, NULL, NULL), RA_ERR_ROOT_UNTRUSTED);
  ra_verifier_free(v);
  v = sim_verifier(sim);
  ra_verdict vd;
  assert_err(verify(v, q, len, 0, NULL, &vd), 0);
  assert_true(vd.has_pck);
  ra_verifier_free(v);
  free(q);
}

static uint8_t *to_pem_crl(const uint8_t *der, size_t len, size_t *out_len) {
  const uint8_t *p = der;
  X509_CRL *crl = d2i_X509_CRL(NULL, &p, (long)len);
  assert_non_null(crl);
  BIO *bio = BIO_new(BIO_s_mem());
  assert_int_equal(PEM_write_bio_X509_CRL(bio, crl), 1);
  char *data;
  long n = BIO_get_mem_data(bio, &data);
  uint8_t *out = malloc((size_t)n);
  memcpy(out, data, (size_t)n);
  *out_len = (size_t)n;
  BIO_free(bio);
  X509_CRL_free(crl);
  return out;
}

static void test_sim_crls(void **state) {
  ra_sim *sim = *state;
  static const uint8_t rd[64];
  size_t len, l0, l1, lp;
  uint8_t *q = sim_quote(sim, NULL, rd, &len), *c0, *c1, *pem;
  ra_verdict vd;

  /* CRLs that revoke nothing, DER and PEM: applied, pass */
  assert_int_equal(ra_sim_crl(sim, 0, 0, &c0, &l0), 0);
  assert_int_equal(ra_sim_crl(sim, 1, 0, &c1, &l1), 0);
  ra_verifier *v = sim_verifier(sim);
  assert_int_equal(ra_verifier_add_crl(v, c0, l0), 1);
  pem = to_pem_crl(c1, l1, &lp);
  assert_int_equal(ra_verifier_add_crl(v, pem, lp), 1);
  assert_err(verify(v, q, len, 0, NULL, &vd), 0);
  assert_int_equal(vd.crls_applied, 2);
  /* outside their window (now-1d .. now+30d) */
  assert_err(verify(v, q, len, time(NULL) + 60 * 86400, NULL, &vd), RA_ERR_CRL_EXPIRED);
  ra_verifier_free(v);
  free(pem);
  free(c0);
  free(c1);

  /* the PCK leaf revoked by the intermediate's CRL (PEM) */
  assert_int_equal(ra_sim_crl(sim, 1, 1, &c1, &l1), 0);
  pem = to_pem_crl(c1, l1, &lp);
  v = sim_verifier(sim);
  assert_int_equal(ra_verifier_add_crl(v, pem, lp), 1);
  assert_err(verify(v, q, len, 0, NULL, &vd), RA_ERR_CERT_REVOKED);
  assert_non_null(strstr(vd.msg, "PCK Certificate"));
  assert_int_equal(vd.checks[RA_CHECK_CRL], RA_CHECK_FAIL);
  ra_verifier_free(v);
  free(pem);
  free(c1);

  /* the intermediate revoked by the root's CRL (DER) */
  assert_int_equal(ra_sim_crl(sim, 0, 1, &c0, &l0), 0);
  v = sim_verifier(sim);
  assert_int_equal(ra_verifier_add_crl(v, c0, l0), 1);
  assert_err(verify(v, q, len, 0, NULL, &vd), RA_ERR_CERT_REVOKED);
  assert_non_null(strstr(vd.msg, "Platform CA"));
  ra_verifier_free(v);
  free(c0);

  /* a forged CRL naming the sim intermediate, signed by another key */
  ra_quote pq;
  assert_int_equal(ra_quote_parse(q, len, &pq), 0);
  BIO *bio = BIO_new_mem_buf(pq.cert_data.bytes, (int)pq.cert_data.len);
  X509 *leaf = PEM_read_bio_X509(bio, NULL, NULL, NULL);
  BIO_free(bio);
  assert_non_null(leaf);
  uint8_t *forged =
      forged_crl(X509_get_issuer_name(leaf), time(NULL) - 86400, time(NULL) + 86400, &l0);
  v = sim_verifier(sim);
  assert_int_equal(ra_verifier_add_crl(v, forged, l0), 1);
  assert_err(verify(v, q, len, 0, NULL, &vd), RA_ERR_CRL_SIGNATURE);
  ra_verifier_free(v);
  free(forged);
  X509_free(leaf);
  free(q);
}

static void test_sim_debug_td(void **state) {
  ra_sim *sim = *state;
  static const uint8_t rd[64];
  ra_sim_td td;
  ra_sim_td_default(&td);
  td.td_attributes |= 1;
  size_t len;
  uint8_t *q = sim_quote(sim, &td, rd, &len);
  ra_verifier *v = sim_verifier(sim);
  ra_verdict vd;
  assert_err(verify(v, q, len, 0, NULL, &vd), RA_ERR_DEBUG);
  assert_true(vd.debug);
  assert_int_equal(vd.checks[RA_CHECK_QUOTE_SIG], RA_CHECK_PASS);
  ra_policy p = {.signature_only = true, .allow_debug = true};
  assert_err(verify(v, q, len, 0, &p, &vd), 0);
  ra_verifier_free(v);
  free(q);
}

static void test_sim_tdx_binding(void **state) {
  ra_sim *sim = *state;
  uint8_t pub[32], other[32], rd[64], val[16], iat[8];
  randombytes_buf(pub, sizeof pub);
  randombytes_buf(other, sizeof other);
  randombytes_buf(val, sizeof val);
  randombytes_buf(iat, sizeof iat);
  assert_int_equal(ra_sim_tdx_binding(val, sizeof val, iat, sizeof iat, pub, rd), 0);
  size_t len;
  uint8_t *q = sim_quote(sim, NULL, rd, &len);
  ra_verifier *v = sim_verifier(sim);
  ra_verdict vd;
  ra_policy p = {.x25519_pub = pub,
                 .binding_val = val,
                 .binding_val_len = sizeof val,
                 .binding_iat = iat,
                 .binding_iat_len = sizeof iat};
  assert_err(verify(v, q, len, 0, &p, &vd), 0);
  assert_int_equal(vd.checks[RA_CHECK_BINDING], RA_CHECK_PASS);
  p.x25519_pub = other;
  assert_err(verify(v, q, len, 0, &p, &vd), RA_ERR_BINDING);
  p.x25519_pub = pub;
  p.binding_iat_len = 7;
  assert_err(verify(v, q, len, 0, &p, &vd), RA_ERR_BINDING);
  p.binding_iat_len = sizeof iat;
  p.binding_iat = NULL; /* no verifier_data.iat: refused, as the reference client does */
  assert_err(verify(v, q, len, 0, &p, &vd), RA_ERR_BINDING);
  assert_non_null(strstr(vd.msg, "verifier_data"));
  p.binding_iat = iat;
  val[0] ^= 1;
  assert_err(verify(v, q, len, 0, &p, &vd), RA_ERR_BINDING);
  val[0] ^= 1;

  /* binding plus measurements of the default sim TD */
  ra_sim_td td;
  ra_sim_td_default(&td);
  ra_tdx_expect e = {.has = RA_TDX_MRTD | RA_TDX_RTMR0 | RA_TDX_RTMR3};
  memcpy(e.mrtd, td.mrtd, 48);
  memcpy(e.rtmr[0], td.rtmr[0], 48);
  memcpy(e.rtmr[3], td.rtmr[3], 48);
  p.tdx = &e;
  p.n_tdx = 1;
  assert_err(verify(v, q, len, 0, &p, &vd), 0);
  e.rtmr[3][47] ^= 1;
  assert_err(verify(v, q, len, 0, &p, &vd), RA_ERR_MEASUREMENT);
  ra_verifier_free(v);
  free(q);
}

/* Callback: called last, only for otherwise valid quotes. */
static int cb_calls;
static int cb_refuse(const ra_quote *q, ra_verdict *vd, void *ud) {
  cb_calls++;
  snprintf(vd->msg, sizeof vd->msg, "not on the allow-list (%s)", (const char *)ud);
  return -1;
}
static int cb_accept(const ra_quote *q, ra_verdict *vd, void *ud) {
  cb_calls++;
  return q->body_type == RA_BODY_TD10 ? 0 : -1;
}

static void test_callback(void **state) {
  size_t len;
  uint8_t *b = load("tdx-v4-tappd.dat", &len);
  ra_verifier *v = intel();
  ra_verdict vd;
  ra_policy p = {.callback = cb_accept};
  cb_calls = 0;
  assert_err(verify(v, b, len, 0, &p, &vd), 0);
  assert_int_equal(vd.checks[RA_CHECK_CALLBACK], RA_CHECK_PASS);
  assert_string_equal(vd.msg, "valid (signatures only: TCB not evaluated)");
  p.callback = cb_refuse;
  p.callback_ud = (void *)"x";
  assert_err(verify(v, b, len, 0, &p, &vd), RA_ERR_CALLBACK);
  assert_string_equal(vd.msg, "not on the allow-list (x)");
  assert_int_equal(cb_calls, 2);
  b[100] ^= 1; /* bad signature: the callback is not consulted */
  assert_err(verify(v, b, len, 0, &p, &vd), RA_ERR_QUOTE_SIGNATURE);
  assert_int_equal(cb_calls, 2);
  assert_int_equal(vd.checks[RA_CHECK_CALLBACK], RA_CHECK_NOT_RUN);
  ra_verifier_free(v);
  free(b);
}

/* ---- measurement policy ---- */

static void test_policy_empty_refused(void **state) {
  size_t len;
  uint8_t *b = load("tdx-v4-tappd.dat", &len);
  ra_verifier *v = intel();
  ra_verdict vd;
  ra_policy empty = {0};
  assert_err(verify(v, b, len, 0, &empty, &vd), RA_ERR_POLICY_EMPTY);
  /* the signatures were still checked and pass */
  assert_int_equal(vd.checks[RA_CHECK_QUOTE_SIG], RA_CHECK_PASS);
  /* allow_debug alone checks nothing */
  ra_policy dbg = {.allow_debug = true};
  assert_err(verify(v, b, len, 0, &dbg, &vd), RA_ERR_POLICY_EMPTY);
  /* a set that compares nothing */
  ra_tdx_expect none = {0};
  ra_policy p = {.tdx = &none, .n_tdx = 1};
  assert_err(verify(v, b, len, 0, &p, &vd), RA_ERR_POLICY_EMPTY);
  ra_sgx_expect snone = {0};
  ra_policy ps = {.sgx = &snone, .n_sgx = 1};
  assert_err(verify(v, b, len, 0, &ps, &vd), RA_ERR_POLICY_EMPTY);
  /* no policy at all */
  ra_verify_opts o = {0};
  assert_int_equal(ra_verify_quote(v, b, len, &o, NULL, &vd), -EINVAL);
  ra_verifier_free(v);
  free(b);
}

static void test_policy_tdx_measurements(void **state) {
  size_t len;
  uint8_t *b = load("tdx-v4-tappd.dat", &len);
  ra_quote q;
  assert_int_equal(ra_quote_parse(b, len, &q), 0);
  ra_verifier *v = intel();
  ra_verdict vd;
  ra_tdx_expect sets[2];
  memset(sets, 0, sizeof sets);
  ra_tdx_expect *good = &sets[1], *bad = &sets[0];
  good->has = RA_TDX_MRTD | RA_TDX_RTMR0 | RA_TDX_RTMR1 | RA_TDX_RTMR2 | RA_TDX_RTMR3 |
              RA_TDX_REPORT_DATA | RA_TDX_MR_CONFIG_ID | RA_TDX_MR_OWNER | RA_TDX_MR_OWNER_CONFIG |
              RA_TDX_XFAM | RA_TDX_TD_ATTRIBUTES;
  assert_int_equal(ra_hex_decode_exact("c68518a0ebb42136c12b2275164f8c72f25fa9a34392228687ed6e9caeb"
                                       "9c0f1dbd895e9cf475121c029dc47e70e91fd",
                                       96, good->mrtd, 48),
                   0);
  for (int i = 0; i < 4; i++) memcpy(good->rtmr[i], q.td.rtmr[i], 48);
  assert_int_equal(
      ra_hex_decode_exact("7668c6b4eafb62301c72714ecc7d90ce9a0e04b52dc117720df2047b0a59f1dbd937243e"
                          "ef1410a3cdc524aad66d4554b4f18b54da2fc0608dac40d6dea5f1d4",
                          128, good->report_data, 64),
      0);
  memcpy(good->mr_config_id, q.td.mr_config_id, 48);
  memcpy(good->mr_owner, q.td.mr_owner, 48);
  memcpy(good->mr_owner_config, q.td.mr_owner_config, 48);
  memcpy(good->xfam, q.td.xfam, 8);
  memcpy(good->td_attributes, q.td.td_attributes, 8);

  ra_policy p = {.tdx = good, .n_tdx = 1};
  assert_err(verify(v, b, len, 0, &p, &vd), 0);
  assert_int_equal(vd.matched_set, 0);
  assert_int_equal(vd.checks[RA_CHECK_MEASUREMENTS], RA_CHECK_PASS);

  /* each field, when wrong, is a mismatch */
  static const uint32_t fields[] = {
      RA_TDX_MRTD,         RA_TDX_RTMR0,        RA_TDX_RTMR1,
      RA_TDX_RTMR2,        RA_TDX_RTMR3,        RA_TDX_REPORT_DATA,
      RA_TDX_MR_CONFIG_ID, RA_TDX_MR_OWNER,     RA_TDX_MR_OWNER_CONFIG,
      RA_TDX_XFAM,         RA_TDX_TD_ATTRIBUTES};
  for (size_t f = 0; f < sizeof fields / sizeof *fields; f++) {
    ra_tdx_expect e = *good;
    uint8_t *field = fields[f] == RA_TDX_MRTD              ? e.mrtd
                     : fields[f] == RA_TDX_REPORT_DATA     ? e.report_data
                     : fields[f] == RA_TDX_MR_CONFIG_ID    ? e.mr_config_id
                     : fields[f] == RA_TDX_MR_OWNER        ? e.mr_owner
                     : fields[f] == RA_TDX_MR_OWNER_CONFIG ? e.mr_owner_config
                     : fields[f] == RA_TDX_XFAM            ? e.xfam
                     : fields[f] == RA_TDX_TD_ATTRIBUTES   ? e.td_attributes
                                                           : e.rtmr[f - 1];
    field[0] ^= 0x80;
    ra_policy pf = {.tdx = &e, .n_tdx = 1};
    if (verify(v, b, len, 0, &pf, &vd) != RA_ERR_MEASUREMENT) fail_msg("field %zu not compared", f);
    /* and ignored when its bit is clear */
    e.has &= ~fields[f];
    assert_err(verify(v, b, len, 0, &pf, &vd), 0);
  }

  /* any-of: first set wrong, second right */
  *bad = *good;
  bad->mrtd[0] ^= 1;
  ra_policy any = {.tdx = sets, .n_tdx = 2};
  assert_err(verify(v, b, len, 0, &any, &vd), 0);
  assert_int_equal(vd.matched_set, 1);
  any.n_tdx = 1;
  assert_err(verify(v, b, len, 0, &any, &vd), RA_ERR_MEASUREMENT);
  assert_int_equal(vd.matched_set, -1);

  /* a TDX quote against SGX-only measurements */
  ra_sgx_expect s = {.has = RA_SGX_MR_ENCLAVE};
  ra_policy ps = {.sgx = &s, .n_sgx = 1};
  assert_err(verify(v, b, len, 0, &ps, &vd), RA_ERR_MEASUREMENT);
  ra_verifier_free(v);
  free(b);
}

static void test_policy_sgx_measurements(void **state) {
  size_t len;
  uint8_t *b = load("sgx-occlum.dat", &len);
  ra_quote q;
  assert_int_equal(ra_quote_parse(b, len, &q), 0);
  ra_verifier *v = intel();
  ra_verdict vd;
  ra_sgx_expect e = {.has = RA_SGX_MR_ENCLAVE | RA_SGX_MR_SIGNER | RA_SGX_ISV_PROD_ID |
                            RA_SGX_MIN_ISV_SVN,
                     .isv_prod_id = 4000,
                     .min_isv_svn = 5000};
  memcpy(e.mr_enclave, q.enclave.mr_enclave, 32);
  memcpy(e.mr_signer, q.enclave.mr_signer, 32);
  ra_policy p = {.sgx = &e, .n_sgx = 1};
  assert_err(verify(v, b, len, 0, &p, &vd), 0);
  e.min_isv_svn = 4999;
  assert_err(verify(v, b, len, 0, &p, &vd), 0);
  e.min_isv_svn = 5001;
  assert_err(verify(v, b, len, 0, &p, &vd), RA_ERR_MEASUREMENT);
  e.min_isv_svn = 5000;
  e.isv_prod_id = 4001;
  assert_err(verify(v, b, len, 0, &p, &vd), RA_ERR_MEASUREMENT);
  e.isv_prod_id = 4000;
  e.mr_signer[31] ^= 1;
  assert_err(verify(v, b, len, 0, &p, &vd), RA_ERR_MEASUREMENT);
  e.mr_signer[31] ^= 1;
  e.mr_enclave[0] ^= 1;
  assert_err(verify(v, b, len, 0, &p, &vd), RA_ERR_MEASUREMENT);
  /* an SGX quote against TDX-only measurements */
  ra_tdx_expect t = {.has = RA_TDX_MRTD};
  ra_policy pt = {.tdx = &t, .n_tdx = 1};
  assert_err(verify(v, b, len, 0, &pt, &vd), RA_ERR_MEASUREMENT);
  /* a binding that the sample's all-zero report_data cannot satisfy */
  uint8_t pub[32] = {1};
  ra_policy pb = {.x25519_pub = pub};
  assert_err(verify(v, b, len, 0, &pb, &vd), RA_ERR_BINDING);
  ra_verifier_free(v);
  free(b);
}

/* ---- an SGX v3 quote signed with the sim's PCK key ---- */

static EVP_PKEY *sim_leaf_key(ra_sim *sim, X509 *leaf) {
  char path[512];
  snprintf(path, sizeof path, "%s/sim-hierarchy.pem", ra_sim_dir(sim));
  FILE *f = fopen(path, "r");
  assert_non_null(f);
  EVP_PKEY *k, *found = NULL;
  /* the bundle interleaves keys and certificates: take every key */
  size_t len;
  fclose(f);
  uint8_t *all = load_path(path, &len);
  const char *p = (const char *)all;
  while ((p = strstr(p, "-----BEGIN PRIVATE KEY-----"))) {
    BIO *bio = BIO_new_mem_buf(p, (int)strlen(p));
    k = PEM_read_bio_PrivateKey(bio, NULL, NULL, NULL);
    BIO_free(bio);
    if (k && X509_check_private_key(leaf, k) == 1 && !found)
      found = k;
    else
      EVP_PKEY_free(k);
    p++;
  }
  free(all);
  assert_non_null(found);
  return found;
}

static void sign_raw(EVP_PKEY *k, const uint8_t *msg, size_t len, uint8_t out[64]) {
  EVP_MD_CTX *md = EVP_MD_CTX_new();
  uint8_t der[80];
  size_t dl = sizeof der;
  assert_int_equal(EVP_DigestSignInit(md, NULL, EVP_sha256(), NULL, k), 1);
  assert_int_equal(EVP_DigestSign(md, der, &dl, msg, len), 1);
  EVP_MD_CTX_free(md);
  const uint8_t *p = der;
  ECDSA_SIG *s = d2i_ECDSA_SIG(NULL, &p, (long)dl);
  assert_non_null(s);
  BN_bn2binpad(ECDSA_SIG_get0_r(s), out, 32);
  BN_bn2binpad(ECDSA_SIG_get0_s(s), out + 32, 32);
  ECDSA_SIG_free(s);
}

/* SGX v3: header | body | sig_len | sig | att key | QE report | QE sig |
 * auth | cert data type 5 (the sim's PEM chain). */
static uint8_t *make_sgx_quote(ra_sim *sim, uint8_t attr0, const uint8_t rd[64], size_t *out_len) {
  size_t olen, clen;
  uint8_t *occ = load("sgx-occlum.dat", &olen);
  ra_quote oq;
  assert_int_equal(ra_quote_parse(occ, olen, &oq), 0);
  uint8_t *chain = load_path(ra_sim_chain_pem_path(sim), &clen);
  BIO *bio = BIO_new_mem_buf(chain, (int)clen);
  X509 *leaf = PEM_read_bio_X509(bio, NULL, NULL, NULL);
  BIO_free(bio);
  assert_non_null(leaf);
  EVP_PKEY *pck = sim_leaf_key(sim, leaf), *att = EVP_EC_gen("P-256");
  assert_non_null(att);

  static const uint8_t auth[32] = {1, 2, 3};
  size_t sig_len = 64 + 64 + 384 + 64 + 2 + sizeof auth + 2 + 4 + clen + 1;
  size_t len = 48 + 384 + 4 + sig_len;
  uint8_t *q = calloc(1, len), *p = q;
  memcpy(p, occ, 48 + 384);
  p[48 + 48] = attr0;
  memcpy(p + 48 + 320, rd, 64);
  p += 48 + 384;
  p[0] = (uint8_t)sig_len;
  p[1] = (uint8_t)(sig_len >> 8);
  p[2] = 0;
  p[3] = 0;
  uint8_t *sig = p + 4, *attkey = sig + 64, *qe = attkey + 64, *qesig = qe + 384, *a = qesig + 64;
  uint8_t pt[65];
  size_t ptl = sizeof pt;
  assert_int_equal(EVP_PKEY_get_octet_string_param(att, "encoded-pub-key", pt, sizeof pt, &ptl), 1);
  assert_int_equal(ptl, 65);
  memcpy(attkey, pt + 1, 64);
  memcpy(qe, oq.qe_report.raw, 384);
  a[0] = sizeof auth;
  a[1] = 0;
  memcpy(a + 2, auth, sizeof auth);
  crypto_hash_sha256_state h;
  crypto_hash_sha256_init(&h);
  crypto_hash_sha256_update(&h, attkey, 64);
  crypto_hash_sha256_update(&h, auth, sizeof auth);
  crypto_hash_sha256_final(&h, qe + 320);
  memset(qe + 352, 0, 32);
  uint8_t *cd = a + 2 + sizeof auth;
  cd[0] = 5;
  cd[1] = 0;
  uint32_t cl = (uint32_t)clen + 1;
  cd[2] = (uint8_t)cl;
  cd[3] = (uint8_t)(cl >> 8);
  cd[4] = 0;
  cd[5] = 0;
  memcpy(cd + 6, chain, clen); /* + NUL, as Intel's QE writes it */
  sign_raw(pck, qe, 384, qesig);
  sign_raw(att, q, 48 + 384, sig);
  EVP_PKEY_free(pck);
  EVP_PKEY_free(att);
  X509_free(leaf);
  free(chain);
  free(occ);
  *out_len = len;
  return q;
}

static void test_sim_sgx_debug_and_binding(void **state) {
  ra_sim *sim = *state;
  uint8_t pub[32], rd[64] = {0};
  randombytes_buf(pub, sizeof pub);
  crypto_hash_sha256(rd, pub, 32);
  size_t len;
  ra_verifier *v = sim_verifier(sim);
  ra_verdict vd;

  /* production enclave (attributes 0x05), key bound */
  uint8_t *q = make_sgx_quote(sim, 0x05, rd, &len);
  ra_policy p = {.x25519_pub = pub};
  assert_err(verify(v, q, len, 0, &p, &vd), 0);
  assert_int_equal(vd.tee_type, RA_TEE_SGX);
  assert_int_equal(vd.checks[RA_CHECK_BINDING], RA_CHECK_PASS);
  pub[0] ^= 1;
  assert_err(verify(v, q, len, 0, &p, &vd), RA_ERR_BINDING);
  pub[0] ^= 1;
  free(q);

  /* the binding wants the upper 32 bytes zero */
  rd[63] = 1;
  q = make_sgx_quote(sim, 0x05, rd, &len);
  assert_err(verify(v, q, len, 0, &p, &vd), RA_ERR_BINDING);
  rd[63] = 0;
  free(q);

  /* debug enclave (attributes bit 1) */
  q = make_sgx_quote(sim, 0x07, rd, &len);
  assert_err(verify(v, q, len, 0, &p, &vd), RA_ERR_DEBUG);
  assert_true(vd.debug);
  p.allow_debug = true;
  assert_err(verify(v, q, len, 0, &p, &vd), 0);
  free(q);
  ra_verifier_free(v);
}

/* ---- security review regressions (chain shape, CRLs, policy, TUD, ECDSA) ----
 *
 * Quotes rebuilt from a sim quote with certificates of our own making,
 * issued with the sim hierarchy's keys: what an issuer could produce by
 * mistake, or an attacker holding a PCK key. */

typedef struct hier {
  EVP_PKEY *root_key, *ica_key, *pck_key, *att_key;
  X509 *root, *ica, *pck;
} hier;

static void hier_load(ra_sim *sim, hier *h) {
  char path[512];
  size_t len;
  snprintf(path, sizeof path, "%s/sim-hierarchy.pem", ra_sim_dir(sim));
  uint8_t *all = load_path(path, &len);
  BIO *b = BIO_new_mem_buf(all, (int)len);
  h->root_key = PEM_read_bio_PrivateKey(b, NULL, NULL, NULL);
  h->root = PEM_read_bio_X509(b, NULL, NULL, NULL);
  h->ica_key = PEM_read_bio_PrivateKey(b, NULL, NULL, NULL);
  h->ica = PEM_read_bio_X509(b, NULL, NULL, NULL);
  h->pck_key = PEM_read_bio_PrivateKey(b, NULL, NULL, NULL);
  h->pck = PEM_read_bio_X509(b, NULL, NULL, NULL);
  h->att_key = PEM_read_bio_PrivateKey(b, NULL, NULL, NULL);
  BIO_free(b);
  free(all);
  assert_non_null(h->att_key);
}

static void hier_free(hier *h) {
  EVP_PKEY_free(h->root_key);
  EVP_PKEY_free(h->ica_key);
  EVP_PKEY_free(h->pck_key);
  EVP_PKEY_free(h->att_key);
  X509_free(h->root);
  X509_free(h->ica);
  X509_free(h->pck);
}

static void add_ext(X509 *c, X509 *iss, int nid, const char *val) {
  X509V3_CTX ctx;
  X509V3_set_ctx_nodb(&ctx);
  X509V3_set_ctx(&ctx, iss, c, NULL, NULL, 0);
  X509_EXTENSION *e = X509V3_EXT_conf_nid(NULL, &ctx, nid, val);
  assert_non_null(e);
  assert_int_equal(X509_add_ext(c, e, -1), 1);
  X509_EXTENSION_free(e);
}

/* A certificate for key issued by issuer (signed with issuer_key), with
 * basicConstraints bc and keyUsage ku when not NULL, and the SGX extension
 * of sgx_from when not NULL. */
static X509 *issue(const char *cn, EVP_PKEY *key, X509 *issuer, EVP_PKEY *issuer_key,
                   const char *bc, const char *ku, X509 *sgx_from) {
  static long serial = 1000;
  X509 *c = X509_new();
  X509_NAME *n = X509_NAME_new();
  X509_NAME_add_entry_by_txt(n, "CN", MBSTRING_ASC, (const unsigned char *)cn, -1, -1, 0);
  X509_set_version(c, 2);
  ASN1_INTEGER_set(X509_get_serialNumber(c), serial++);
  X509_set_subject_name(c, n);
  X509_set_issuer_name(c, X509_get_subject_name(issuer));
  X509_gmtime_adj(X509_getm_notBefore(c), -86400L);
  X509_gmtime_adj(X509_getm_notAfter(c), 365 * 86400L);
  X509_set_pubkey(c, key);
  add_ext(c, issuer, NID_subject_key_identifier, "hash");
  add_ext(c, issuer, NID_authority_key_identifier, "keyid:always");
  if (bc) add_ext(c, issuer, NID_basic_constraints, bc);
  if (ku) add_ext(c, issuer, NID_key_usage, ku);
  if (sgx_from) {
    ASN1_OBJECT *o = OBJ_txt2obj(RA_PCK_SGX_EXT_OID, 1);
    int idx = X509_get_ext_by_OBJ(sgx_from, o, -1);
    assert_true(idx >= 0);
    assert_int_equal(X509_add_ext(c, X509_get_ext(sgx_from, idx), -1), 1);
    ASN1_OBJECT_free(o);
  }
  assert_true(X509_sign(c, issuer_key, EVP_sha256()) > 0);
  X509_NAME_free(n);
  return c;
}

#define LEAF_BC "critical,CA:FALSE"
#define LEAF_KU "critical,digitalSignature,nonRepudiation"
#define CA_KU   "critical,keyCertSign,cRLSign"

/* PEM of xs[0..n), NUL-terminated as Intel's QE writes it. */
static uint8_t *pem_chain(X509 *const *xs, int n, size_t *len) {
  BIO *b = BIO_new(BIO_s_mem());
  for (int i = 0; i < n; i++) assert_int_equal(PEM_write_bio_X509(b, xs[i]), 1);
  char *d;
  long dl = BIO_get_mem_data(b, &d);
  uint8_t *out = malloc((size_t)dl + 1);
  memcpy(out, d, (size_t)dl);
  out[dl] = 0;
  *len = (size_t)dl + 1;
  BIO_free(b);
  return out;
}

static void le16(uint8_t *p, size_t v) {
  p[0] = (uint8_t)v;
  p[1] = (uint8_t)(v >> 8);
}
static void le32(uint8_t *p, size_t v) {
  le16(p, v);
  le16(p + 2, v >> 16);
}

/* The TDX v4 sim quote q0 rebuilt around another PCK chain: its header,
 * body, quote signature and QE auth data kept; the QE report re-signed by
 * qe_key; att_xy (when not NULL) as the attestation key, which the QE
 * report then binds. */
static uint8_t *requote(const uint8_t *q0, size_t l0, const uint8_t *chain, size_t clen,
                        EVP_PKEY *qe_key, const uint8_t *att_xy, size_t *out_len) {
  ra_quote q;
  assert_int_equal(ra_quote_parse(q0, l0, &q), 0);
  assert_int_equal(q.version, 4);
  size_t auth = q.qe_auth_data.len, cert6 = 384 + 64 + 2 + auth + 6 + clen,
         sig = 64 + 64 + 6 + cert6, len = 48 + 584 + 4 + sig;
  uint8_t *o = calloc(1, len), *p = o;
  memcpy(p, q0, 48 + 584);
  p += 48 + 584;
  le32(p, sig);
  p += 4;
  memcpy(p, q.signature, 64);
  p += 64;
  uint8_t *ak = p;
  memcpy(ak, att_xy ? att_xy : q.att_key, 64);
  p += 64;
  le16(p, 6);
  le32(p + 2, cert6);
  p += 6;
  uint8_t *qe = p;
  memcpy(qe, q.qe_report.raw, 384);
  if (att_xy) {
    crypto_hash_sha256_state h;
    crypto_hash_sha256_init(&h);
    crypto_hash_sha256_update(&h, ak, 64);
    crypto_hash_sha256_update(&h, q.qe_auth_data.bytes, auth);
    crypto_hash_sha256_final(&h, qe + 320);
    memset(qe + 352, 0, 32);
  }
  p += 384;
  sign_raw(qe_key, qe, 384, p);
  p += 64;
  le16(p, auth);
  memcpy(p + 2, q.qe_auth_data.bytes, auth);
  p += 2 + auth;
  le16(p, 5);
  le32(p + 2, clen);
  p += 6;
  memcpy(p, chain, clen);
  p += clen;
  assert_int_equal((size_t)(p - o), len);
  *out_len = len;
  return o;
}

/* Verifies the sim quote q0 rebuilt around chain xs[0..n) (the QE report
 * signed by qe_key) against the sim root. */
static int verify_chain(ra_sim *sim, const uint8_t *q0, size_t l0, X509 *const *xs, int n,
                                  EVP_PKEY *qe_key, ra_verdict *vd) {
  size_t clen, len;
  uint8_t *chain = pem_chain(xs, n, &clen), *q = requote(q0, l0, chain, clen, qe_key, NULL, &len);
  ra_verifier *v = sim_verifier(sim);
  int e = verify(v, q, len, 0, NULL, vd);
  ra_verifier_free(v);
  free(q);
  free(chain);
  return e;
}

static void test_sec_chain_shape(void **state) {
  ra_sim *sim = *state;
  static const uint8_t rd[64];
  hier h;
  hier_load(sim, &h);
  size_t l0;
  uint8_t *q0 = sim_quote(sim, NULL, rd, &l0);
  ra_verdict vd;
  EVP_PKEY *k = EVP_EC_gen("P-256"), *k2 = EVP_EC_gen("P-256");

  /* control: the sim's own chain, rebuilt by the helpers, is valid */
  X509 *ok[] = {h.pck, h.ica, h.root};
  assert_err(verify_chain(sim, q0, l0, ok, 3, h.pck_key, &vd), 0);
  /* and a fresh leaf issued the way the sim issues its own */
  X509 *fresh = issue("PCK fresh", k, h.ica, h.ica_key, LEAF_BC, LEAF_KU, h.pck);
  X509 *c0[] = {fresh, h.ica, h.root};
  assert_err(verify_chain(sim, q0, l0, c0, 3, k, &vd), 0);

  /* a PCK leaf hung directly under the root: not Intel's shape */
  X509 *direct = issue("PCK direct", k, h.root, h.root_key, LEAF_BC, LEAF_KU, h.pck);
  X509 *c1[] = {direct, h.root};
  assert_err(verify_chain(sim, q0, l0, c1, 2, k, &vd), RA_ERR_CHAIN_INVALID);

  /* a PCK "leaf" that is a CA */
  X509 *caleaf = issue("PCK CA", k, h.ica, h.ica_key, "critical,CA:TRUE,pathlen:0",
                       CA_KU ",digitalSignature", h.pck);
  X509 *c2[] = {caleaf, h.ica, h.root};
  assert_err(verify_chain(sim, q0, l0, c2, 3, k, &vd), RA_ERR_CHAIN_INVALID);

  /* a leaf whose key usage does not allow signatures */
  X509 *kaleaf = issue("PCK KA", k, h.ica, h.ica_key, LEAF_BC, "critical,keyAgreement", h.pck);
  X509 *c3[] = {kaleaf, h.ica, h.root};
  assert_err(verify_chain(sim, q0, l0, c3, 3, k, &vd), RA_ERR_CHAIN_INVALID);

  /* an intermediate without basicConstraints (keyCertSign only): not a CA */
  X509 *nobc = issue("CA without BC", k2, h.root, h.root_key, NULL, CA_KU, NULL);
  X509 *l4 = issue("PCK under no-BC", k, nobc, k2, LEAF_BC, LEAF_KU, h.pck);
  X509 *c4[] = {l4, nobc, h.root};
  assert_err(verify_chain(sim, q0, l0, c4, 3, k, &vd), RA_ERR_CHAIN_INVALID);
  /* RFC 5280 (X509_V_FLAG_X509_STRICT): a CA certificate has critical
   * basicConstraints and a keyUsage; this one has neither */
  X509 *lax = issue("lax CA", k2, h.root, h.root_key, "CA:TRUE", NULL, NULL);
  X509 *l4b = issue("PCK under lax CA", k, lax, k2, LEAF_BC, LEAF_KU, h.pck);
  X509 *c4b[] = {l4b, lax, h.root};
  assert_err(verify_chain(sim, q0, l0, c4b, 3, k, &vd), RA_ERR_CHAIN_INVALID);

  /* a sub-CA under the intermediate (pathlen 0) */
  X509 *sub = issue("sub CA", k2, h.ica, h.ica_key, "critical,CA:TRUE", CA_KU, NULL);
  X509 *l5 = issue("PCK under sub", k, sub, k2, LEAF_BC, LEAF_KU, h.pck);
  X509 *c5[] = {l5, sub, h.ica, h.root};
  assert_err(verify_chain(sim, q0, l0, c5, 4, k, &vd), RA_ERR_CHAIN_INVALID);

  /* a stolen PCK key issuing a PCK certificate of its own */
  X509 *l6 = issue("PCK by PCK", k, h.pck, h.pck_key, LEAF_BC, LEAF_KU, h.pck);
  /* (the PCK certificate cannot sign certificates, so it issued nothing:
   * two leaves) */
  X509 *c6[] = {l6, h.pck, h.ica, h.root};
  assert_err(verify_chain(sim, q0, l0, c6, 4, k, &vd), RA_ERR_CHAIN_BROKEN);

  X509 *all[] = {fresh, direct, caleaf, kaleaf, nobc, l4, lax, l4b, sub, l5, l6};
  for (size_t i = 0; i < sizeof all / sizeof *all; i++) X509_free(all[i]);
  EVP_PKEY_free(k);
  EVP_PKEY_free(k2);
  hier_free(&h);
  free(q0);
}

static uint8_t *make_crl(X509 *issuer, EVP_PKEY *key, const ASN1_TIME *last, const ASN1_TIME *next,
                         X509 *revoked, size_t *len) {
  X509_CRL *crl = X509_CRL_new();
  X509_CRL_set_version(crl, 1);
  X509_CRL_set_issuer_name(crl, X509_get_subject_name(issuer));
  if (last) assert_int_equal(X509_CRL_set1_lastUpdate(crl, last), 1);
  if (next) assert_int_equal(X509_CRL_set1_nextUpdate(crl, next), 1);
  if (revoked) {
    X509_REVOKED *r = X509_REVOKED_new();
    ASN1_TIME *t = ASN1_TIME_set(NULL, time(NULL) - 3600);
    X509_REVOKED_set_serialNumber(r, X509_get_serialNumber(revoked));
    X509_REVOKED_set_revocationDate(r, t);
    X509_CRL_add0_revoked(crl, r);
    ASN1_TIME_free(t);
  }
  assert_true(X509_CRL_sign(crl, key, EVP_sha256()) > 0);
  uint8_t *der = NULL;
  int n = i2d_X509_CRL(crl, &der);
  assert_true(n > 0);
  uint8_t *out = malloc((size_t)n);
  memcpy(out, der, (size_t)n);
  OPENSSL_free(der);
  X509_CRL_free(crl);
  *len = (size_t)n;
  return out;
}

/* A CRL file is all or nothing: one that does not parse is an error, not
 * silently left out (with every revocation it lists). */
static void test_sec_crl_all_or_nothing(void **state) {
  ra_sim *sim = *state;
  static const uint8_t rd[64];
  size_t len, l1, lp;
  uint8_t *q = sim_quote(sim, NULL, rd, &len), *c1;
  ra_verdict vd;
  assert_int_equal(ra_sim_crl(sim, 1, 1, &c1, &l1), 0); /* revokes the PCK leaf */
  uint8_t *pem = to_pem_crl(c1, l1, &lp);
  static const char junk[] = "-----BEGIN X509 CRL-----\nMIIBIjAN\n-----END X509 CRL-----\n";
  static const char cert[] = "-----BEGIN CERTIFICATE-----\nMIIBIjAN\n-----END CERTIFICATE-----\n";
  uint8_t *buf = malloc(2 * lp + l1 + sizeof junk + sizeof cert);
  ra_verifier *v = sim_verifier(sim);

  /* the revoking CRL, then a garbled one */
  memcpy(buf, pem, lp);
  memcpy(buf + lp, junk, sizeof junk - 1);
  assert_int_equal(ra_verifier_add_crl(v, buf, lp + sizeof junk - 1), -EINVAL);
  /* a garbled one, then the revoking CRL */
  memcpy(buf, junk, sizeof junk - 1);
  memcpy(buf + sizeof junk - 1, pem, lp);
  assert_int_equal(ra_verifier_add_crl(v, buf, lp + sizeof junk - 1), -EINVAL);
  /* a CRL file that also holds a certificate: not a CRL file */
  memcpy(buf, pem, lp);
  memcpy(buf + lp, cert, sizeof cert - 1);
  assert_int_equal(ra_verifier_add_crl(v, buf, lp + sizeof cert - 1), -EINVAL);
  /* DER with bytes after the CRL */
  memcpy(buf, c1, l1);
  memcpy(buf + l1, "junk", 4);
  assert_int_equal(ra_verifier_add_crl(v, buf, l1 + 4), -EINVAL);
  /* nothing was added by the refused calls */
  assert_err(verify(v, q, len, 0, NULL, &vd), 0);
  assert_int_equal(vd.crls_applied, 0);
  /* two good CRLs in one PEM file: both */
  memcpy(buf, pem, lp);
  memcpy(buf + lp, pem, lp);
  assert_int_equal(ra_verifier_add_crl(v, buf, 2 * lp), 2);
  assert_err(verify(v, q, len, 0, NULL, &vd), RA_ERR_CERT_REVOKED);
  ra_verifier_free(v);
  free(buf);
  free(pem);
  free(c1);
  free(q);
}

static void test_sec_crl_times_and_issuer(void **state) {
  ra_sim *sim = *state;
  static const uint8_t rd[64];
  hier h;
  hier_load(sim, &h);
  size_t len, cl;
  uint8_t *q = sim_quote(sim, NULL, rd, &len), *crl;
  ra_verdict vd;
  ASN1_TIME *last = ASN1_TIME_set(NULL, time(NULL) - 86400),
            *next = ASN1_TIME_set(NULL, time(NULL) + 86400);

  /* control: the intermediate's CRL with both times; alone it leaves the
   * root uncovered (issue 11: that used to pass), with the root's it passes */
  ra_verifier *v = sim_verifier(sim);
  crl = make_crl(h.ica, h.ica_key, last, next, NULL, &cl);
  assert_int_equal(ra_verifier_add_crl(v, crl, cl), 1);
  assert_err(verify(v, q, len, 0, NULL, &vd), RA_ERR_CRL_MISSING);
  assert_int_equal(vd.crls_applied, 1);
  free(crl);
  crl = make_crl(h.root, h.root_key, last, next, NULL, &cl);
  assert_int_equal(ra_verifier_add_crl(v, crl, cl), 1);
  assert_err(verify(v, q, len, 0, NULL, &vd), 0);
  assert_int_equal(vd.crls_applied, 2);
  ra_verifier_free(v);
  free(crl);

  /* no nextUpdate: it could be replayed forever */
  v = sim_verifier(sim);
  crl = make_crl(h.ica, h.ica_key, last, NULL, NULL, &cl);
  assert_int_equal(ra_verifier_add_crl(v, crl, cl), 1);
  assert_err(verify(v, q, len, 0, NULL, &vd), RA_ERR_CRL_EXPIRED);
  ra_verifier_free(v);
  free(crl);

  /* a thisUpdate OpenSSL cannot read: X509_cmp_time says 0 (error) */
  ASN1_TIME *bad = ASN1_STRING_type_new(V_ASN1_GENERALIZEDTIME);
  assert_int_equal(ASN1_STRING_set(bad, "2025xx01000000Z", -1), 1);
  crl = make_crl(h.ica, h.ica_key, bad, next, NULL, &cl);
  v = sim_verifier(sim);
  int rc = ra_verifier_add_crl(v, crl, cl);
  if (rc == 1) /* accepted by d2i: then the verification must refuse it */
    assert_err(verify(v, q, len, 0, NULL, &vd), RA_ERR_CRL_EXPIRED);
  else
    assert_int_equal(rc, -EINVAL);
  ra_verifier_free(v);
  free(crl);
  ASN1_TIME_free(bad);

  /* a CA whose key usage excludes cRLSign: its CRLs are not CRLs */
  EVP_PKEY *k = EVP_EC_gen("P-256"), *k2 = EVP_EC_gen("P-256");
  X509 *ca = issue("CA no cRLSign", k2, h.root, h.root_key, "critical,CA:TRUE,pathlen:0",
                   "critical,keyCertSign", NULL);
  X509 *leaf = issue("PCK", k, ca, k2, LEAF_BC, LEAF_KU, h.pck);
  X509 *c[] = {leaf, ca, h.root};
  size_t chl, ql;
  uint8_t *chain = pem_chain(c, 3, &chl), *q2 = requote(q, len, chain, chl, k, NULL, &ql);
  v = sim_verifier(sim);
  assert_err(verify(v, q2, ql, 0, NULL, &vd), 0); /* control */
  crl = make_crl(ca, k2, last, next, NULL, &cl);
  assert_int_equal(ra_verifier_add_crl(v, crl, cl), 1);
  assert_err(verify(v, q2, ql, 0, NULL, &vd), RA_ERR_CRL_SIGNATURE);
  ra_verifier_free(v);
  free(crl);
  free(chain);
  free(q2);
  X509_free(ca);
  X509_free(leaf);
  EVP_PKEY_free(k);
  EVP_PKEY_free(k2);

  ASN1_TIME_free(last);
  ASN1_TIME_free(next);
  hier_free(&h);
  free(q);
}

/* A count of measurement sets without the array is refused, not a crash. */
static void test_sec_policy_null_sets(void **state) {
  ra_sim *sim = *state;
  static const uint8_t rd[64];
  size_t len;
  uint8_t *q = sim_quote(sim, NULL, rd, &len);
  ra_verifier *v = sim_verifier(sim);
  ra_verdict vd;
  ra_policy p1 = {.n_tdx = 1};
  assert_err(verify(v, q, len, 0, &p1, &vd), RA_ERR_POLICY_EMPTY);
  ra_sgx_expect s = {.has = RA_SGX_MR_ENCLAVE};
  ra_policy p2 = {.n_tdx = 2, .sgx = &s, .n_sgx = 1};
  assert_err(verify(v, q, len, 0, &p2, &vd), RA_ERR_POLICY_EMPTY);
  ra_policy p3 = {.n_sgx = 1, .signature_only = true};
  assert_err(verify(v, q, len, 0, &p3, &vd), RA_ERR_POLICY_EMPTY);
  ra_verifier_free(v);
  free(q);
}

/* TD attributes bits 7:0 (TUD: DEBUG and the TDX 1.5 profiling bits 4-6)
 * all mean "TD under debug". */
static void test_sec_tud_bits(void **state) {
  ra_sim *sim = *state;
  static const uint8_t rd[64];
  ra_verifier *v = sim_verifier(sim);
  ra_verdict vd;
  ra_policy dbg = {.signature_only = true, .allow_debug = true};
  for (int bit = 1; bit < 8; bit++) {
    ra_sim_td td;
    ra_sim_td_default(&td);
    td.td_attributes |= 1ull << bit;
    size_t len;
    uint8_t *q = sim_quote(sim, &td, rd, &len);
    if (verify(v, q, len, 0, NULL, &vd) != RA_ERR_DEBUG) fail_msg("TUD bit %d not refused", bit);
    assert_true(vd.debug);
    assert_err(verify(v, q, len, 0, &dbg, &vd), 0);
    free(q);
  }
  /* bits above the TUD group (here PKS, bit 30) are not debug */
  ra_sim_td td;
  ra_sim_td_default(&td);
  td.td_attributes |= 1ull << 30;
  size_t len;
  uint8_t *q = sim_quote(sim, &td, rd, &len);
  assert_err(verify(v, q, len, 0, NULL, &vd), 0);
  free(q);
  ra_verifier_free(v);
}

/* Raw r||s edge cases and attestation keys off the curve. */
static void test_sec_ecdsa_edges(void **state) {
  ra_sim *sim = *state;
  static const uint8_t rd[64];
  /* the order n of P-256 and the field prime p */
  static const uint8_t n[32] = {0xff, 0xff, 0xff, 0xff, 0x00, 0x00, 0x00, 0x00, 0xff, 0xff, 0xff,
                                0xff, 0xff, 0xff, 0xff, 0xff, 0xbc, 0xe6, 0xfa, 0xad, 0xa7, 0x17,
                                0x9e, 0x84, 0xf3, 0xb9, 0xca, 0xc2, 0xfc, 0x63, 0x25, 0x51};
  static const uint8_t prime[32] = {0xff, 0xff, 0xff, 0xff, 0x00, 0x00, 0x00, 0x01, 0,    0,   0,
                                    0,    0,    0,    0,    0,    0,    0,    0,    0,    0,   0,
                                    0,    0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff};
  hier h;
  hier_load(sim, &h);
  size_t len;
  uint8_t *q = sim_quote(sim, NULL, rd, &len), *c = malloc(len);
  ra_quote pq;
  assert_int_equal(ra_quote_parse(q, len, &pq), 0);
  size_t so = (size_t)(pq.signature - q);
  ra_verifier *v = sim_verifier(sim);
  ra_verdict vd;
  for (int t = 0; t < 6; t++) {
    memcpy(c, q, len);
    uint8_t *r = c + so, *s = c + so + 32;
    switch (t) {
    case 0:
      memset(r, 0, 32);
      break; /* r = 0 */
    case 1:
      memset(s, 0, 32);
      break; /* s = 0 */
    case 2:
      memcpy(r, n, 32);
      break; /* r = n */
    case 3:
      memcpy(s, n, 32);
      break; /* s = n */
    case 4:
      memset(r, 0xff, 64);
      break; /* r, s > n */
    case 5:
      memset(r, 0, 64);
      break; /* both zero */
    }
    if (verify(v, c, len, 0, NULL, &vd) != RA_ERR_QUOTE_SIGNATURE)
      fail_msg("signature case %d: %s", t, ra_err_name(vd.err));
  }
  /* keys the QE report binds but that are no P-256 points */
  uint8_t keys[4][64] = {{0}};
  keys[1][31] = 1; /* (0, 1) */
  keys[1][63] = 1;
  memcpy(keys[2], prime, 32); /* x = p */
  keys[2][63] = 2;
  memset(keys[3], 0xff, 64);
  size_t cl;
  X509 *xs[] = {h.pck, h.ica, h.root};
  uint8_t *chain = pem_chain(xs, 3, &cl);
  for (int t = 0; t < 4; t++) {
    size_t ql;
    uint8_t *q2 = requote(q, len, chain, cl, h.pck_key, keys[t], &ql);
    if (verify(v, q2, ql, 0, NULL, &vd) != RA_ERR_ATT_KEY)
      fail_msg("attestation key case %d: %s", t, ra_err_name(vd.err));
    assert_int_equal(vd.checks[RA_CHECK_QE_DATA], RA_CHECK_PASS);
    free(q2);
  }
  free(chain);
  ra_verifier_free(v);
  hier_free(&h);
  free(c);
  free(q);
}

/* A QE report from a debug quoting enclave, properly signed by the PCK key:
 * refused, allow_debug or not (that is about the application). */
static void test_sec_debug_qe(void **state) {
  ra_sim *sim = *state;
  static const uint8_t rd[64];
  hier h;
  hier_load(sim, &h);
  size_t len, cl, ql;
  uint8_t *q = sim_quote(sim, NULL, rd, &len);
  ra_quote pq;
  assert_int_equal(ra_quote_parse(q, len, &pq), 0);
  q[(size_t)(pq.qe_report.attributes - q)] |= 0x02;
  X509 *xs[] = {h.pck, h.ica, h.root};
  uint8_t *chain = pem_chain(xs, 3, &cl), *q2 = requote(q, len, chain, cl, h.pck_key, NULL, &ql);
  ra_verifier *v = sim_verifier(sim);
  ra_verdict vd;
  assert_err(verify(v, q2, ql, 0, NULL, &vd), RA_ERR_QE_DEBUG);
  assert_int_equal(vd.checks[RA_CHECK_QE_SIG], RA_CHECK_PASS);
  assert_int_equal(vd.checks[RA_CHECK_QE_DATA], RA_CHECK_FAIL);
  ra_policy dbg = {.signature_only = true, .allow_debug = true};
  assert_err(verify(v, q2, ql, 0, &dbg, &vd), RA_ERR_QE_DEBUG);
  assert_string_equal(ra_err_name(RA_ERR_QE_DEBUG), "RA_ERR_QE_DEBUG");
  /* control: the same rebuild without the debug bit */
  q[(size_t)(pq.qe_report.attributes - q)] &= (uint8_t)~0x02;
  free(q2);
  q2 = requote(q, len, chain, cl, h.pck_key, NULL, &ql);
  assert_err(verify(v, q2, ql, 0, NULL, &vd), 0);
  ra_verifier_free(v);
  free(q2);
  free(chain);
  hier_free(&h);
  free(q);
}

/* Only self-signed CA certificates can be pinned; a file that holds more
 * (a chain pinned by mistake) pins nothing. */
static void test_sec_roots_only_self_signed_cas(void **state) {
  ra_sim *sim = *state;
  static const uint8_t rd[64];
  hier h;
  hier_load(sim, &h);
  size_t len, cl;
  uint8_t *q = sim_quote(sim, NULL, rd, &len), *pem;
  ra_verifier *v;
  ra_verdict vd;
  assert_int_equal(ra_verifier_new(RA_VERIFIER_NO_DEFAULT_ROOT, &v), 0);
  /* the sim's chain file: leaf, intermediate, root */
  assert_int_equal(ra_verifier_add_root_file(v, ra_sim_chain_pem_path(sim)), -EINVAL);
  assert_err(verify(v, q, len, 0, NULL, &vd), RA_ERR_ROOT_UNTRUSTED); /* none was pinned */
  X509 *ica[] = {h.ica};
  pem = pem_chain(ica, 1, &cl);
  assert_int_equal(ra_verifier_add_root(v, pem, cl), -EINVAL);
  free(pem);
  /* self-signed, but not a CA */
  EVP_PKEY *k = EVP_EC_gen("P-256");
  X509 *ee = X509_new();
  X509_NAME *n = X509_NAME_new();
  X509_NAME_add_entry_by_txt(n, "CN", MBSTRING_ASC, (const unsigned char *)"self EE", -1, -1, 0);
  X509_set_version(ee, 2);
  ASN1_INTEGER_set(X509_get_serialNumber(ee), 7);
  X509_set_subject_name(ee, n);
  X509_set_issuer_name(ee, n);
  X509_gmtime_adj(X509_getm_notBefore(ee), -86400L);
  X509_gmtime_adj(X509_getm_notAfter(ee), 86400L);
  X509_set_pubkey(ee, k);
  add_ext(ee, ee, NID_basic_constraints, "critical,CA:FALSE");
  assert_true(X509_sign(ee, k, EVP_sha256()) > 0);
  X509 *one[] = {ee};
  pem = pem_chain(one, 1, &cl);
  assert_int_equal(ra_verifier_add_root(v, pem, cl), -EINVAL);
  free(pem);
  /* the sim root with its self-signature broken (last DER byte) */
  uint8_t *der = NULL;
  int dl = i2d_X509(h.root, &der);
  assert_true(dl > 0);
  der[dl - 1] ^= 1;
  assert_int_equal(ra_verifier_add_root(v, der, (size_t)dl), -EINVAL);
  der[dl - 1] ^= 1;
  assert_int_equal(ra_verifier_add_root(v, der, (size_t)dl), 1);
  assert_err(verify(v, q, len, 0, NULL, &vd), 0);
  OPENSSL_free(der);
  X509_NAME_free(n);
  X509_free(ee);
  EVP_PKEY_free(k);
  ra_verifier_free(v);
  hier_free(&h);
  free(q);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_vectors_valid_now),
      cmocka_unit_test(test_tappd_verdict_details),
      cmocka_unit_test(test_validity_windows),
      cmocka_unit_test(test_warm_paths_match_cold),
      cmocka_unit_test(test_ca_paths_match_cold),
      cmocka_unit_test(test_warm_qe_signature_memo),
      cmocka_unit_test(test_tdx_collateral),
      cmocka_unit_test(test_sgx_collateral),
      cmocka_unit_test(test_partial_chains),
      cmocka_unit_test(test_flip_tdx_v4),
      cmocka_unit_test(test_flip_tdx_v5),
      cmocka_unit_test(test_flip_sgx_v3),
      cmocka_unit_test(test_flip_tdx_collateral),
      cmocka_unit_test(test_flip_der_chain),
      cmocka_unit_test(test_flip_pem_chain),
      cmocka_unit_test(test_truncation_verdicts),
      cmocka_unit_test(test_intel_root_compiled_in),
      cmocka_unit_test(test_forged_crl_intel_names),
      cmocka_unit_test(test_callback),
      cmocka_unit_test(test_policy_empty_refused),
      cmocka_unit_test(test_policy_tdx_measurements),
      cmocka_unit_test(test_policy_sgx_measurements),
      cmocka_unit_test_setup_teardown(test_sim_roots, sim_setup, sim_teardown),
      cmocka_unit_test_setup_teardown(test_sim_crls, sim_setup, sim_teardown),
      cmocka_unit_test_setup_teardown(test_sim_debug_td, sim_setup, sim_teardown),
      cmocka_unit_test_setup_teardown(test_sim_tdx_binding, sim_setup, sim_teardown),
      cmocka_unit_test_setup_teardown(test_sim_sgx_debug_and_binding, sim_setup, sim_teardown),
      cmocka_unit_test_setup_teardown(test_sec_chain_shape, sim_setup, sim_teardown),
      cmocka_unit_test_setup_teardown(test_sec_crl_all_or_nothing, sim_setup, sim_teardown),
      cmocka_unit_test_setup_teardown(test_sec_crl_times_and_issuer, sim_setup, sim_teardown),
      cmocka_unit_test_setup_teardown(test_sec_policy_null_sets, sim_setup, sim_teardown),
      cmocka_unit_test_setup_teardown(test_sec_tud_bits, sim_setup, sim_teardown),
      cmocka_unit_test_setup_teardown(test_sec_ecdsa_edges, sim_setup, sim_teardown),
      cmocka_unit_test_setup_teardown(test_sec_debug_qe, sim_setup, sim_teardown),
      cmocka_unit_test_setup_teardown(test_sec_roots_only_self_signed_cas, sim_setup, sim_teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
