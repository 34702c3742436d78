/* tests/attest/quote/collateral_test.c: Intel collateral (TCB info, QE
 * identity, TDX module identity, CRLs) on real samples at fixed times, and
 * every refusal on collateral the simulated TEE signs (forged as needed).
 * Expected statuses are Intel's QVL rules; where @phala/dcap-qvl or teekit
 * differ, the comment at the sample says why (tests/attest/dcap_qvl_check.js
 * runs dcap-qvl itself on the same samples). */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <jansson.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "raloop/attest/quote/collateral.h"
#include "raloop/attest/quote/hexb64.h"
#include "raloop/attest/quote/sim.h"
#include "raloop/attest/quote/verify.h"

/* ---- helpers ---- */

static const char *vdir(void) {
  const char *d = getenv("RA_VECTORS");
  return d ? d : RA_VECTORS_DIR;
}

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

static uint8_t *vload(const char *name, size_t *len) {
  char p[1024];
  snprintf(p, sizeof p, "%s/%s", vdir(), name);
  return load_path(p, len);
}

static void write_file(const char *path, const void *p, size_t n) {
  FILE *f = fopen(path, "wb");
  assert_non_null(f);
  assert_int_equal(fwrite(p, 1, n, f), n);
  fclose(f);
}

static time_t iso(const char *s) {
  struct tm tm = {0};
  assert_non_null(strptime(s, "%Y-%m-%dT%H:%M:%SZ", &tm));
  return timegm(&tm);
}

#define assert_err(got, want)                                                                      \
  do {                                                                                             \
    int g_ = (got), w_ = (want);                                                                   \
    if (g_ != w_) fail_msg("got %s, want %s", ra_err_name(g_), ra_err_name(w_));                   \
  } while (0)

/* Every status but Revoked/NotSupported: to read the status a sample gets. */
#define ACCEPT_ALL                                                                                 \
  (RA_TCB_ACCEPT(RA_TCB_UP_TO_DATE) | RA_TCB_ACCEPT(RA_TCB_SW_HARDENING_NEEDED) |                  \
   RA_TCB_ACCEPT(RA_TCB_CONFIGURATION_NEEDED) |                                                    \
   RA_TCB_ACCEPT(RA_TCB_CONFIGURATION_AND_SW_HARDENING_NEEDED) | RA_TCB_ACCEPT(RA_TCB_OUT_OF_DATE) | \
   RA_TCB_ACCEPT(RA_TCB_OUT_OF_DATE_CONFIGURATION_NEEDED))

static int verify_coll(ra_verifier *v, const uint8_t *q, size_t len, ra_collateral *c, time_t at,
                       const ra_policy *pol, ra_verdict *vd) {
  ra_verify_opts o = {.at = at, .collateral = c};
  int rc = ra_verify_quote(v, q, len, &o, pol, vd);
  assert_int_equal(rc == 0, vd->err == 0);
  return vd->err;
}

static bool has_adv(const ra_verdict *vd, const char *id) {
  for (int i = 0; i < vd->n_advisory_ids; i++)
    if (!strcmp(vd->advisory_ids[i], id)) return true;
  return false;
}

/* ---- Phala dcap-qvl's samples with real Intel collateral ---- */

typedef struct phala_case {
  const char *name;
  const char *at; /* inside the collateral's window */
  int err_default;          /* default policy (UpToDate only) */
  int err_all;              /* every non-revoked status accepted */
  ra_tcb_status status;
  int n_adv;
} phala_case;

static void test_phala_samples(void **state) {
  (void)state;
  static const phala_case cases[] = {
      /* UpToDate; dcap-qvl: UpToDate */
      {"tdx_quote", "2025-07-01T00:00:00Z", 0, 0, RA_TCB_UP_TO_DATE, 0},
      /* level 1 of FMSPC 00906ED50000: ConfigurationAndSWHardeningNeeded,
       * INTEL-SA-00289 and -00615; dcap-qvl: the same */
      {"sgx_quote", "2025-07-01T00:00:00Z", RA_ERR_TCB_STATUS, 0,
       RA_TCB_CONFIGURATION_AND_SW_HARDENING_NEEDED, 2},
      /* the PCK's SGX component 8 is 3, every TCB level of FMSPC
       * 90C06F000000 wants 5: no level matches, NotSupported; dcap-qvl: "No
       * matching TCB level found" (an error, not a status) */
      {"tdx_quote_outdated", "2026-03-01T00:00:00Z", RA_ERR_TCB_NOT_SUPPORTED,
       RA_ERR_TCB_NOT_SUPPORTED, RA_TCB_NOT_SUPPORTED, 0},
  };
  ra_verifier *v;
  assert_int_equal(ra_verifier_new(0, &v), 0);
  for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
    const phala_case *k = &cases[i];
    char p[512];
    size_t len;
    snprintf(p, sizeof p, "collateral/phala/%s", k->name);
    uint8_t *q = vload(p, &len);
    ra_collateral *c;
    snprintf(p, sizeof p, "%s/collateral/phala/%s_collateral.json", vdir(), k->name);
    assert_int_equal(ra_collateral_load(p, &c), 0);
    ra_policy def = {.signature_only = true}, all = {.signature_only = true, .accept_tcb = ACCEPT_ALL};
    ra_verdict vd;
    if (verify_coll(v, q, len, c, iso(k->at), &def, &vd) != k->err_default)
      fail_msg("%s: %s (%s)", k->name, ra_err_name(vd.err), vd.msg);
    assert_int_equal(verify_coll(v, q, len, c, iso(k->at), &all, &vd), k->err_all);
    assert_true(vd.tcb_evaluated);
    assert_int_equal(vd.tcb_status, k->status);
    assert_int_equal(vd.n_advisory_ids, k->n_adv);
    assert_int_equal(vd.checks[RA_CHECK_CRL], RA_CHECK_PASS);
    assert_int_equal(vd.crls_applied, 2);
    assert_int_equal(vd.checks[RA_CHECK_COLLATERAL], RA_CHECK_PASS);
    assert_int_equal(vd.qe_status, RA_TCB_UP_TO_DATE);
    assert_true(vd.collateral_expiry > iso(k->at));
    assert_false(vd.collateral_expired);
    free(q);
    ra_collateral_free(c);
  }
  ra_verifier_free(v);
}

/* The SGX sample's advisories, policy by policy; and its collateral after
 * nextUpdate. */
static void test_phala_policy(void **state) {
  (void)state;
  ra_verifier *v;
  ra_collateral *c;
  char p[512];
  size_t len;
  ra_verdict vd;
  assert_int_equal(ra_verifier_new(0, &v), 0);
  uint8_t *q = vload("collateral/phala/sgx_quote", &len);
  snprintf(p, sizeof p, "%s/collateral/phala/sgx_quote_collateral.json", vdir());
  assert_int_equal(ra_collateral_load(p, &c), 0);
  time_t at = iso("2025-07-01T00:00:00Z");
  const char *both[] = {"INTEL-SA-00289", "INTEL-SA-00615"}, *one[] = {"INTEL-SA-00615"};
  ra_policy pol = {.signature_only = true, .allowed_advisories = both, .n_allowed_advisories = 2};
  assert_err(verify_coll(v, q, len, c, at, &pol, &vd), 0);
  assert_true(has_adv(&vd, "INTEL-SA-00289") && has_adv(&vd, "INTEL-SA-00615"));
  pol.allowed_advisories = one;
  pol.n_allowed_advisories = 1;
  assert_err(verify_coll(v, q, len, c, at, &pol, &vd), RA_ERR_TCB_STATUS);
  assert_non_null(strstr(vd.msg, "INTEL-SA-00289"));
  ra_policy acc = {.signature_only = true,
                   .accept_tcb = RA_TCB_ACCEPT(RA_TCB_CONFIGURATION_AND_SW_HARDENING_NEEDED)};
  assert_err(verify_coll(v, q, len, c, at, &acc, &vd), 0);
  /* after nextUpdate (2025-07-19): the CRLs expire first (2025-07-?) or
   * the TCB info: refused either way; allowed by name, and it says so */
  time_t late = iso("2025-08-15T00:00:00Z");
  int e = verify_coll(v, q, len, c, late, &acc, &vd);
  assert_int_equal(e, RA_ERR_CRL_EXPIRED); /* the CRLs are checked first */
  acc.allow_expired_collateral = true;
  assert_err(verify_coll(v, q, len, c, late, &acc, &vd), 0);
  assert_true(vd.collateral_expired);
  /* before issueDate: never allowed (here the CRLs, before their
   * thisUpdate, refuse it first: the TCB info's issueDate is not reached) */
  e = verify_coll(v, q, len, c, iso("2025-06-01T00:00:00Z"), &acc, &vd);
  assert_int_equal(e, RA_ERR_CRL_EXPIRED);
  free(q);
  ra_collateral_free(c);
  ra_verifier_free(v);
}

/* The notAfter of the first certificate of a PEM chain. */
static time_t pem_not_after(const char *pem) {
  BIO *b = BIO_new_mem_buf(pem, -1);
  X509 *x = PEM_read_bio_X509(b, NULL, NULL, NULL);
  struct tm tm;
  assert_non_null(x);
  assert_int_equal(ASN1_TIME_to_tm(X509_get0_notAfter(x), &tm), 1);
  X509_free(x);
  BIO_free(b);
  return timegm(&tm);
}

/* Warm (one verifier with its caches, one collateral with its memoised
 * paths and signatures, the Intel root supplied by the verifier) says what
 * cold (a new verifier without cache, the collateral parsed anew) says, at
 * times around the TCB signing certificate's notAfter and with a verifier
 * that pins another root than the one the collateral carries. */
static void test_phala_warm_matches_cold(void **state) {
  (void)state;
  static const char *const names[] = {"tdx_quote", "sgx_quote"};
  for (size_t i = 0; i < 2; i++) {
    char p[512], rp[512];
    size_t len, jl;
    snprintf(p, sizeof p, "collateral/phala/%s", names[i]);
    uint8_t *q = vload(p, &len);
    snprintf(p, sizeof p, "collateral/phala/%s_collateral.json", names[i]);
    char *j = (char *)vload(p, &jl);
    json_t *d = json_loads(j, 0, NULL);
    assert_non_null(d);
    time_t na = pem_not_after(json_string_value(json_object_get(d, "tcb_info_issuer_chain")));
    json_decref(d);
    ra_verifier *warm;
    ra_collateral *c;
    assert_int_equal(ra_verifier_new(0, &warm), 0);
    assert_int_equal(ra_collateral_parse_json(j, jl, &c), 0);
    ra_policy pol = {.signature_only = true, .accept_tcb = ACCEPT_ALL,
                     .allow_expired_collateral = true};
    time_t good = iso("2025-07-01T00:00:00Z");
    const time_t at[] = {good, na - 1, na, na + 1, good, na};
    for (size_t k = 0; k < sizeof at / sizeof *at; k++) {
      ra_verdict vw, vc;
      ra_verifier *cold;
      ra_collateral *fresh;
      assert_err(verify_coll(warm, q, len, c, good, &pol, &vw), 0);
      assert_int_equal(ra_verifier_new(RA_VERIFIER_NO_CERT_CACHE, &cold), 0);
      assert_int_equal(ra_collateral_parse_json(j, jl, &fresh), 0);
      int w = verify_coll(warm, q, len, c, at[k], &pol, &vw);
      int cc = verify_coll(cold, q, len, fresh, at[k], &pol, &vc);
      if (w != cc)
        fail_msg("%s at %lld: warm %s, cold %s (%s)", names[i], (long long)at[k], ra_err_name(w),
                 ra_err_name(cc), vc.msg);
      assert_memory_equal(vw.checks, vc.checks, sizeof vw.checks);
      assert_int_equal(vw.tcb_status, vc.tcb_status);
      ra_collateral_free(fresh);
      ra_verifier_free(cold);
    }
    /* the Intel root left undecoded at parse: a verifier pinning only
     * another root (Intel's look-alike test root) decodes it and refuses */
    ra_verifier *other;
    ra_collateral *fresh;
    ra_verdict vo, vf;
    snprintf(rp, sizeof rp, "%s/quotes/tdx-collateral/trustedRootCaCert.pem", vdir());
    assert_int_equal(ra_verifier_new(RA_VERIFIER_NO_DEFAULT_ROOT, &other), 0);
    assert_int_equal(ra_verifier_add_root_file(other, rp), 1);
    assert_int_equal(ra_collateral_parse_json(j, jl, &fresh), 0);
    assert_int_not_equal(verify_coll(other, q, len, fresh, good, &pol, &vf), 0);
    assert_int_equal(vf.checks[RA_CHECK_COLLATERAL], RA_CHECK_FAIL);
    assert_int_not_equal(verify_coll(other, q, len, c, good, &pol, &vo), 0);
    assert_memory_equal(vo.checks, vf.checks, sizeof vo.checks);
    /* and the collateral still serves the Intel verifier afterwards */
    assert_err(verify_coll(warm, q, len, fresh, good, &pol, &vf), 0);
    ra_collateral_free(fresh);
    ra_verifier_free(other);
    ra_collateral_free(c);
    ra_verifier_free(warm);
    free(j);
    free(q);
  }
}

/* ---- teekit's TCB infos (Intel-signed, other FMSPCs) ---- */

/* A directory of PCS responses for one FMSPC: teekit's TCB info as PCS
 * served it, with the TCB signing chain, QE identity and CRLs of Phala's
 * samples (the only public signed ones: June 2025, so the verification at
 * teekit's time 2025-09-29 runs with allow_expired_collateral). */
static void make_pcs_dir(const char *dir, const char *tcb_file, const char *phala_json) {
  size_t n;
  char p[1024];
  mkdir(dir, 0700);
  snprintf(p, sizeof p, "collateral/teekit/%s", tcb_file);
  uint8_t *t = vload(p, &n);
  snprintf(p, sizeof p, "%s/tcb.json", dir);
  write_file(p, t, n);
  free(t);
  snprintf(p, sizeof p, "%s/collateral/phala/%s", vdir(), phala_json);
  json_t *d = json_load_file(p, 0, NULL);
  assert_non_null(d);
  const char *chain = json_string_value(json_object_get(d, "tcb_info_issuer_chain"));
  snprintf(p, sizeof p, "%s/tcb_info_issuer_chain.pem", dir);
  write_file(p, chain, strlen(chain));
  const char *qe = json_string_value(json_object_get(d, "qe_identity"));
  const char *qs = json_string_value(json_object_get(d, "qe_identity_signature"));
  char *doc = malloc(strlen(qe) + strlen(qs) + 64);
  sprintf(doc, "{\"enclaveIdentity\":%s,\"signature\":\"%s\"}", qe, qs);
  snprintf(p, sizeof p, "%s/qe_identity.json", dir);
  write_file(p, doc, strlen(doc));
  free(doc);
  const char *crls[2][2] = {{"root_ca_crl", "root_ca_crl.der"}, {"pck_crl", "pck_crl.der"}};
  for (int i = 0; i < 2; i++) {
    const char *h = json_string_value(json_object_get(d, crls[i][0]));
    uint8_t *der = malloc(strlen(h) / 2);
    assert_int_equal(ra_hex_decode_exact(h, strlen(h), der, strlen(h) / 2), 0);
    snprintf(p, sizeof p, "%s/%s", dir, crls[i][1]);
    write_file(p, der, strlen(h) / 2);
    free(der);
  }
  json_decref(d);
}

typedef struct teekit_case {
  const char *quote, *tcb_file, *phala;
  int err;
  ra_tcb_status status;
} teekit_case;

static void test_teekit_tcb_infos(void **state) {
  (void)state;
  static const teekit_case cases[] = {
      /* teekit: UpToDate; here too */
      {"tdx-v4-phala.dat", "tcbInfo-tdx-b0c06f000000.json", "tdx_quote_collateral.json", 0,
       RA_TCB_UP_TO_DATE},
      /* PCK SGX components 02 02 02 02 03 01 00 03: component 8 (3) is
       * below every level's 5, NotSupported by Intel's rules. teekit's own
       * check ignores the PCK's SGX SVNs for TDX and would call it
       * UpToDate. */
      {"tdx-v4-tappd.dat", "tcbInfo-tdx-b0c06f000000.json", "tdx_quote_collateral.json",
       RA_ERR_TCB_NOT_SUPPORTED, RA_TCB_NOT_SUPPORTED},
      /* components 01 01 02 02 ...: below every level; teekit says
       * UpToDate for the same reason */
      {"tdx-v5-trustee.dat", "tcbInfo-tdx-90c06f000000.json", "tdx_quote_collateral.json",
       RA_ERR_TCB_NOT_SUPPORTED, RA_TCB_NOT_SUPPORTED},
      /* teekit: SWHardeningNeeded; here too (INTEL-SA-00334, -00615) */
      {"sgx-tlsn-quotedev.dat", "tcbInfo-sgx-00906ed50000.json", "sgx_quote_collateral.json", 0,
       RA_TCB_SW_HARDENING_NEEDED},
      /* its PCK hangs under the PCK Processor CA, whose CRL none of the
       * public samples carry: the CRLs do not cover the chain, refused
       * (fail closed) before any TCB evaluation. teekit: OutOfDate. */
      {"sgx-occlum.dat", "tcbInfo-sgx-30606a000000.json", "sgx_quote_collateral.json",
       RA_ERR_CRL_MISSING, RA_TCB_NONE},
  };
  char tmp[] = "/tmp/ra-coll-teekit-XXXXXX";
  assert_non_null(mkdtemp(tmp));
  ra_verifier *v;
  assert_int_equal(ra_verifier_new(0, &v), 0);
  for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
    const teekit_case *k = &cases[i];
    char dir[600], p[600];
    snprintf(dir, sizeof dir, "%s/%zu", tmp, i);
    make_pcs_dir(dir, k->tcb_file, k->phala);
    ra_collateral *c;
    int rc = ra_collateral_load(dir, &c);
    if (rc) fail_msg("%s: %s", dir, ra_err_name(rc));
    snprintf(p, sizeof p, "quotes/%s", k->quote);
    size_t len;
    uint8_t *q = vload(p, &len);
    ra_policy pol = {.signature_only = true,
                     .accept_tcb = ACCEPT_ALL,
                     .allow_expired_collateral = true,
                     .allow_mr_servicetd = true};
    ra_verdict vd;
    if (verify_coll(v, q, len, c, iso("2025-09-29T23:00:00Z"), &pol, &vd) != k->err)
      fail_msg("%s: %s (%s)", k->quote, ra_err_name(vd.err), vd.msg);
    assert_int_equal(vd.tcb_status, k->status);
    if (!k->err) assert_true(vd.collateral_expired);
    free(q);
    ra_collateral_free(c);
  }
  ra_verifier_free(v);
  char cmd[128];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmp);
  assert_int_equal(system(cmd), 0);
}

/* ---- the simulated TEE's collateral: every refusal ---- */

static char sim_dir[256];

static int sim_setup(void **state) {
  snprintf(sim_dir, sizeof sim_dir, "/tmp/ra-coll-test-XXXXXX");
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

static uint8_t *sim_quote_td(ra_sim *sim, const ra_sim_td *td, size_t *len) {
  static const uint8_t rd[64];
  uint8_t *q;
  assert_int_equal(ra_sim_quote(sim, td, rd, &q, len), 0);
  return q;
}

static ra_collateral *sim_coll(ra_sim *sim, const ra_sim_collateral_opts *o) {
  char *j;
  size_t n;
  ra_collateral *c;
  assert_int_equal(ra_sim_collateral_json(sim, o, &j, &n), 0);
  assert_int_equal(ra_collateral_parse_json(j, n, &c), 0);
  free(j);
  return c;
}

/* s with the nth (0-based; -1: last) occurrence of from replaced by to. */
static char *replace(const char *s, const char *from, const char *to, int nth) {
  const char *hit = NULL, *p = s;
  int k = 0;
  while ((p = strstr(p, from))) {
    if (nth < 0 || k++ == nth) hit = p;
    if (nth >= 0 && hit) break;
    p++;
  }
  assert_non_null(hit);
  size_t a = (size_t)(hit - s), fl = strlen(from), tl = strlen(to);
  char *out = malloc(strlen(s) - fl + tl + 1);
  memcpy(out, s, a);
  memcpy(out + a, to, tl);
  strcpy(out + a + tl, hit + fl);
  return out;
}

/* The sim's collateral document with one field's string changed (not
 * re-signed): from -> to, or (from NULL) the character at flip. */
static ra_collateral *tampered(ra_sim *sim, const char *field, const char *from, const char *to,
                               size_t flip, int *rc) {
  char *j;
  size_t n;
  assert_int_equal(ra_sim_collateral_json(sim, NULL, &j, &n), 0);
  json_t *d = json_loads(j, 0, NULL);
  free(j);
  char *s;
  if (from) {
    s = replace(json_string_value(json_object_get(d, field)), from, to, 0);
  } else {
    s = strdup(json_string_value(json_object_get(d, field)));
    s[flip] = s[flip] == '1' ? '2' : '1';
  }
  json_object_set_new(d, field, json_string(s));
  free(s);
  j = json_dumps(d, 0);
  json_decref(d);
  ra_collateral *c = NULL;
  *rc = ra_collateral_parse_json(j, strlen(j), &c);
  free(j);
  return c;
}

static void test_sim_up_to_date(void **state) {
  ra_sim *sim = *state;
  ra_verifier *v = sim_verifier(sim);
  size_t len;
  uint8_t *q = sim_quote_td(sim, NULL, &len);
  ra_collateral *c = sim_coll(sim, NULL);
  ra_policy pol = {.signature_only = true};
  ra_verdict vd;
  assert_err(verify_coll(v, q, len, c, 0, &pol, &vd), 0);
  assert_int_equal(vd.tcb_status, RA_TCB_UP_TO_DATE);
  assert_int_equal(vd.module_status, RA_TCB_UP_TO_DATE);
  assert_int_equal(vd.qe_status, RA_TCB_UP_TO_DATE);
  assert_int_equal(vd.tcb_level, 0);
  assert_int_equal(vd.crls_applied, 2);
  for (int k = RA_CHECK_COLLATERAL; k <= RA_CHECK_TD_ATTRIBUTES; k++)
    assert_int_equal(vd.checks[k], RA_CHECK_PASS);
  ra_collateral_info info;
  ra_collateral_get_info(c, &info);
  assert_string_equal(info.tcb_id, "TDX");
  assert_int_equal(info.tcb_info_version, 3);
  /* without collateral: signatures only, TCB not evaluated */
  assert_err(verify_coll(v, q, len, NULL, 0, &pol, &vd), 0);
  assert_false(vd.tcb_evaluated);
  assert_int_equal(vd.checks[RA_CHECK_TCB], RA_CHECK_SKIPPED);
  assert_int_equal(vd.checks[RA_CHECK_CRL], RA_CHECK_SKIPPED);
  /* warm: the same collateral again (memoised body signatures, issuer
   * paths and CRL signatures) */
  assert_err(verify_coll(v, q, len, c, 0, &pol, &vd), 0);
  assert_int_equal(vd.tcb_status, RA_TCB_UP_TO_DATE);
  /* the memo never outlives its conditions: a verifier that does not pin
   * the sim root, a time after the signing certificate's notAfter */
  ra_verifier *intel;
  assert_int_equal(ra_verifier_new(0, &intel), 0);
  assert_int_not_equal(verify_coll(intel, q, len, c, 0, &pol, &vd), 0);
  assert_int_equal(vd.checks[RA_CHECK_COLLATERAL], RA_CHECK_FAIL);
  ra_verifier_free(intel);
  pol.allow_expired_collateral = true;
  assert_int_not_equal(verify_coll(v, q, len, c, time(NULL) + 11 * 366 * 86400L, &pol, &vd), 0);
  assert_int_equal(vd.checks[RA_CHECK_COLLATERAL], RA_CHECK_FAIL);
  pol.allow_expired_collateral = false;
  assert_err(verify_coll(v, q, len, c, 0, &pol, &vd), 0);
  ra_collateral_free(c);
  free(q);
  ra_verifier_free(v);
}

/* A current CRL of "Some Other CA" (DER, malloc'd). */
static uint8_t *unrelated_crl(size_t *len) {
  EVP_PKEY *k = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
  X509_CRL *crl = X509_CRL_new();
  X509_NAME *n = X509_NAME_new();
  ASN1_TIME *t = ASN1_TIME_new();
  X509_NAME_add_entry_by_txt(n, "CN", MBSTRING_ASC, (const unsigned char *)"Some Other CA", -1, -1,
                             0);
  X509_CRL_set_version(crl, 1);
  X509_CRL_set_issuer_name(crl, n);
  ASN1_TIME_set(t, time(NULL) - 86400);
  X509_CRL_set1_lastUpdate(crl, t);
  ASN1_TIME_set(t, time(NULL) + 86400);
  X509_CRL_set1_nextUpdate(crl, t);
  assert_true(X509_CRL_sign(crl, k, EVP_sha256()) > 0);
  int l = i2d_X509_CRL(crl, NULL);
  uint8_t *der = malloc((size_t)l), *w = der;
  i2d_X509_CRL(crl, &w);
  *len = (size_t)l;
  ASN1_TIME_free(t);
  X509_NAME_free(n);
  X509_CRL_free(crl);
  EVP_PKEY_free(k);
  return der;
}

static void test_sim_tampered(void **state) {
  ra_sim *sim = *state;
  ra_verifier *v = sim_verifier(sim);
  size_t len;
  uint8_t *q = sim_quote_td(sim, NULL, &len);
  ra_policy pol = {.signature_only = true};
  ra_verdict vd;
#define ev17 "\"tcbEvaluationDataNumber\":17"
#define ev18 "\"tcbEvaluationDataNumber\":18"
  static const struct {
    const char *field, *from, *to;
    size_t flip;
  } t[] = {
      /* a body that still parses, a hex digit of the signatures */
      {"tcb_info", ev17, ev18, 0},
      {"tcb_info_signature", NULL, NULL, 10},
      {"qe_identity", ev17, ev18, 0},
      {"qe_identity_signature", NULL, NULL, 70},
  };
#undef ev17
#undef ev18
  for (size_t i = 0; i < sizeof t / sizeof *t; i++) {
    int rc;
    ra_collateral *c = tampered(sim, t[i].field, t[i].from, t[i].to, t[i].flip, &rc);
    if (rc) fail_msg("%s: tampered copy does not parse (%s)", t[i].field, ra_err_name(rc));
    if (verify_coll(v, q, len, c, 0, &pol, &vd) != RA_ERR_COLLATERAL_SIGNATURE)
      fail_msg("%s tampered: %s (%s)", t[i].field, ra_err_name(vd.err), vd.msg);
    assert_int_equal(vd.checks[RA_CHECK_COLLATERAL], RA_CHECK_FAIL);
    assert_int_equal(vd.tcb_status, RA_TCB_NONE);
    ra_collateral_free(c);
  }
  /* signed with another key than the signing certificate's */
  EVP_PKEY *k = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
  ra_sim_collateral_opts o = {.tcb_signing_key = k};
  ra_collateral *c = sim_coll(sim, &o);
  assert_err(verify_coll(v, q, len, c, 0, &pol, &vd), RA_ERR_COLLATERAL_SIGNATURE);
  ra_collateral_free(c);
  EVP_PKEY_free(k);
  /* a collateral of another sim (same names, other keys): its CRLs name
   * this chain's CAs but are not signed by them */
  char other_dir[300];
  snprintf(other_dir, sizeof other_dir, "%s/other", sim_dir);
  ra_sim *other;
  assert_int_equal(ra_sim_open(other_dir, &other), 0);
  c = sim_coll(other, NULL);
  assert_err(verify_coll(v, q, len, c, 0, &pol, &vd), RA_ERR_CRL_SIGNATURE);
  ra_collateral_free(c);
  /* CRLs of a CA that is not in the chain cover none of it: no longer a
   * pass, with or without collateral */
  uint8_t *crl;
  size_t cl;
  crl = unrelated_crl(&cl);
  assert_int_equal(ra_verifier_add_crl(v, crl, cl), 1);
  assert_err(verify_coll(v, q, len, NULL, 0, &pol, &vd), RA_ERR_CRL_MISSING);
  assert_int_equal(vd.checks[RA_CHECK_CRL], RA_CHECK_FAIL);
  assert_int_equal(vd.crls_applied, 0);
  free(crl);
  ra_sim_free(other);
  free(q);
  ra_verifier_free(v);
}

/* Bodies of the sim's, edited, re-signed by the sim: each a refusal. */
static void test_sim_forged_bodies(void **state) {
  ra_sim *sim = *state;
  ra_verifier *v = sim_verifier(sim);
  size_t len;
  uint8_t *q = sim_quote_td(sim, NULL, &len);
  time_t now = time(NULL), is = now - 86400, nx = now + 29 * 86400;
  char *tcb = ra_sim_tcb_info_body(is, nx), *qe = ra_sim_qe_identity_body(is, nx);
  ra_policy pol = {.signature_only = true};
  ra_verdict vd;
  const char *z48 = "000000000000000000000000000000000000000000000000"
                    "000000000000000000000000000000000000000000000000";
  char other48[97];
  memset(other48, 'A', 96);
  other48[96] = '\0';
  char mrs_from[80], mrs_to[80];
  snprintf(mrs_from, sizeof mrs_from, "\"mrsigner\":\"DC9E2A7C");
  snprintf(mrs_to, sizeof mrs_to, "\"mrsigner\":\"DC9E2A7D");
  char *qe8 = replace(qe, "\"isvsvn\":4", "\"isvsvn\":8", 0);
  struct {
    const char *what;
    char *tcb, *qe;
    int err;
    ra_tcb_status st;
  } f[] = {
      {"wrong FMSPC", replace(tcb, "\"fmspc\":\"B0C06F000000\"", "\"fmspc\":\"B0C06F000001\"", 0),
       NULL, RA_ERR_COLLATERAL_MISMATCH, RA_TCB_NONE},
      {"wrong PCE ID", replace(tcb, "\"pceId\":\"0000\"", "\"pceId\":\"0001\"", 0), NULL,
       RA_ERR_COLLATERAL_MISMATCH, RA_TCB_NONE},
      {"SGX TCB info for a TDX quote", replace(tcb, "\"id\":\"TDX\"", "\"id\":\"SGX\"", 0), NULL,
       RA_ERR_COLLATERAL_MISMATCH, RA_TCB_NONE},
      {"QE identity of another MRSIGNER", NULL, replace(qe, mrs_from, mrs_to, 0),
       RA_ERR_QE_IDENTITY, RA_TCB_NONE},
      {"QE identity of another ISVPRODID", NULL, replace(qe, "\"isvprodid\":2", "\"isvprodid\":3", 0),
       RA_ERR_QE_IDENTITY, RA_TCB_NONE},
      {"QE identity of SGX", NULL, replace(qe, "\"id\":\"TD_QE\"", "\"id\":\"QE\"", 0),
       RA_ERR_COLLATERAL_MISMATCH, RA_TCB_NONE},
      /* TDX_01's MRSIGNERSEAM (the last mrsigner of the TCB info) */
      {"TDX module MRSIGNERSEAM", replace(tcb, z48, other48, 1), NULL, RA_ERR_TDX_MODULE,
       RA_TCB_NONE},
      {"TDX module SEAM attributes",
       replace(tcb, "\"attributes\":\"0000000000000000\"", "\"attributes\":\"0100000000000000\"", 1),
       NULL, RA_ERR_TDX_MODULE, RA_TCB_NONE},
      {"no TDX_01 identity", replace(tcb, "\"id\":\"TDX_01\"", "\"id\":\"TDX_02\"", 0), NULL,
       RA_ERR_TDX_MODULE, RA_TCB_NONE},
      /* the sim's own level now wants PCESVN 12: the OutOfDate level with
       * INTEL-SA-00106/00115 matches */
      {"platform OutOfDate", replace(tcb, "\"pcesvn\":11", "\"pcesvn\":12", 0), NULL,
       RA_ERR_TCB_STATUS, RA_TCB_OUT_OF_DATE},
      {"platform Revoked", replace(tcb, "\"tcbStatus\":\"UpToDate\"},{\"tcb\":{\"sgx",
                                   "\"tcbStatus\":\"Revoked\"},{\"tcb\":{\"sgx", 0),
       NULL, RA_ERR_TCB_REVOKED, RA_TCB_REVOKED},
      /* module SVN 5 >= TDX_01 level isvsvn 4 no more: 6 wanted, then 2 ->
       * OutOfDate: the platform (UpToDate) converges to OutOfDate */
      {"TDX module OutOfDate", replace(tcb, "\"isvsvn\":4", "\"isvsvn\":6", 0), NULL,
       RA_ERR_TCB_STATUS, RA_TCB_OUT_OF_DATE},
      /* the QE's ISVSVN 6 below the UpToDate level (8): OutOfDate QE */
      {"QE OutOfDate", NULL, replace(qe, "\"isvsvn\":4", "\"isvsvn\":8", 0), RA_ERR_TCB_STATUS,
       RA_TCB_OUT_OF_DATE},
      /* the QE's ISVSVN 6 below every level (8, 7): Revoked */
      {"QE revoked", NULL, replace(qe8, "\"isvsvn\":2", "\"isvsvn\":7", 0), RA_ERR_TCB_REVOKED,
       RA_TCB_REVOKED},
  };
  for (size_t i = 0; i < sizeof f / sizeof *f; i++) {
    ra_sim_collateral_opts o = {.tcb_info = f[i].tcb, .qe_identity = f[i].qe};
    ra_collateral *c = sim_coll(sim, &o);
    if (verify_coll(v, q, len, c, 0, &pol, &vd) != f[i].err)
      fail_msg("%s: %s (%s)", f[i].what, ra_err_name(vd.err), vd.msg);
    if (vd.tcb_status != f[i].st)
      fail_msg("%s: status %s", f[i].what, ra_tcb_status_name(vd.tcb_status));
    ra_collateral_free(c);
    free(f[i].tcb);
    free(f[i].qe);
  }
  /* Intel's convergence, not the worst of the two: a ConfigurationNeeded
   * platform with an OutOfDate QE is OutOfDateConfigurationNeeded
   * (dcap-qvl's merge takes the more severe status, OutOfDate; no public
   * sample has this combination) */
  {
    char *cfg = replace(tcb, "\"tcbStatus\":\"UpToDate\"},{\"tcb\":{\"sgx",
                        "\"tcbStatus\":\"ConfigurationNeeded\"},{\"tcb\":{\"sgx", 0);
    char *qe_old = replace(qe, "\"isvsvn\":4", "\"isvsvn\":8", 0);
    ra_sim_collateral_opts o = {.tcb_info = cfg, .qe_identity = qe_old};
    ra_collateral *c = sim_coll(sim, &o);
    ra_policy all = {.signature_only = true, .accept_tcb = ACCEPT_ALL};
    assert_err(verify_coll(v, q, len, c, 0, &all, &vd), 0);
    assert_int_equal(vd.platform_status, RA_TCB_CONFIGURATION_NEEDED);
    assert_int_equal(vd.qe_status, RA_TCB_OUT_OF_DATE);
    assert_int_equal(vd.tcb_status, RA_TCB_OUT_OF_DATE_CONFIGURATION_NEEDED);
    assert_true(has_adv(&vd, "INTEL-SA-00615"));
    ra_collateral_free(c);
    free(cfg);
    free(qe_old);
  }
  /* the OutOfDate platform level, accepted by its advisories or by name */
  char *old = replace(tcb, "\"pcesvn\":11", "\"pcesvn\":12", 0);
  ra_sim_collateral_opts o = {.tcb_info = old};
  ra_collateral *c = sim_coll(sim, &o);
  const char *adv[] = {"INTEL-SA-00106", "INTEL-SA-00115"};
  ra_policy ap = {.signature_only = true, .allowed_advisories = adv, .n_allowed_advisories = 2};
  assert_err(verify_coll(v, q, len, c, 0, &ap, &vd), 0);
  assert_int_equal(vd.n_advisory_ids, 2);
  assert_int_equal(vd.tcb_level, 1);
  ap.n_allowed_advisories = 1;
  assert_err(verify_coll(v, q, len, c, 0, &ap, &vd), RA_ERR_TCB_STATUS);
  ra_policy byname = {.signature_only = true, .accept_tcb = RA_TCB_ACCEPT(RA_TCB_OUT_OF_DATE)};
  assert_err(verify_coll(v, q, len, c, 0, &byname, &vd), 0);
  ra_collateral_free(c);
  free(old);
  /* a level nobody reaches: NotSupported */
  char *hi = replace(tcb, "\"pcesvn\":5", "\"pcesvn\":99", 0), *hi2 = replace(hi, "\"pcesvn\":11", "\"pcesvn\":99", 0);
  o.tcb_info = hi2;
  c = sim_coll(sim, &o);
  assert_err(verify_coll(v, q, len, c, 0, &ap, &vd), RA_ERR_TCB_NOT_SUPPORTED);
  assert_int_equal(vd.tcb_status, RA_TCB_NOT_SUPPORTED);
  assert_int_equal(vd.checks[RA_CHECK_TCB], RA_CHECK_FAIL);
  ra_collateral_free(c);
  free(hi);
  free(hi2);
  free(tcb);
  free(qe);
  free(qe8);
  free(q);
  ra_verifier_free(v);
}

/* tee_tcb_svn: module major version 0 (tdxModule, bytes 0-1 compared),
 * a version without identity, a module SVN below TDX_01's levels. */
static void test_sim_module_versions(void **state) {
  ra_sim *sim = *state;
  ra_verifier *v = sim_verifier(sim);
  ra_collateral *c = sim_coll(sim, NULL);
  ra_policy pol = {.signature_only = true};
  ra_verdict vd;
  ra_sim_td td;
  size_t len;
  uint8_t *q;

  ra_sim_td_default(&td);
  td.tee_tcb_svn[1] = 0; /* version 0: tdxModule, no module status */
  q = sim_quote_td(sim, &td, &len);
  assert_err(verify_coll(v, q, len, c, 0, &pol, &vd), 0);
  assert_int_equal(vd.module_status, RA_TCB_NONE);
  free(q);

  td.tee_tcb_svn[1] = 2; /* TDX_02: not in the TCB info */
  q = sim_quote_td(sim, &td, &len);
  assert_err(verify_coll(v, q, len, c, 0, &pol, &vd), RA_ERR_TDX_MODULE);
  free(q);

  td.tee_tcb_svn[1] = 1;
  td.tee_tcb_svn[0] = 3; /* TDX_01: 3 < 4, >= 2: OutOfDate */
  q = sim_quote_td(sim, &td, &len);
  assert_err(verify_coll(v, q, len, c, 0, &pol, &vd), RA_ERR_TCB_STATUS);
  assert_int_equal(vd.module_status, RA_TCB_OUT_OF_DATE);
  assert_int_equal(vd.platform_status, RA_TCB_UP_TO_DATE);
  assert_int_equal(vd.tcb_status, RA_TCB_OUT_OF_DATE);
  free(q);

  td.tee_tcb_svn[0] = 1; /* below every TDX_01 level */
  q = sim_quote_td(sim, &td, &len);
  assert_err(verify_coll(v, q, len, c, 0, &pol, &vd), RA_ERR_TCB_NOT_SUPPORTED);
  free(q);

  td.tee_tcb_svn[0] = 5;
  td.tee_tcb_svn[2] = 1; /* byte 2 below the level's 2: no level with it, the old one wants 0 */
  q = sim_quote_td(sim, &td, &len);
  assert_err(verify_coll(v, q, len, c, 0, &pol, &vd), RA_ERR_TCB_STATUS);
  assert_int_equal(vd.platform_status, RA_TCB_OUT_OF_DATE);
  free(q);
  ra_collateral_free(c);
  ra_verifier_free(v);
}

static void test_sim_expired_and_revoked(void **state) {
  ra_sim *sim = *state;
  ra_verifier *v = sim_verifier(sim);
  size_t len;
  uint8_t *q = sim_quote_td(sim, NULL, &len);
  ra_policy pol = {.signature_only = true};
  ra_verdict vd;
  time_t now = time(NULL);
  /* TCB info past nextUpdate, the rest current */
  char *old = ra_sim_tcb_info_body(now - 40 * 86400, now - 10 * 86400);
  ra_sim_collateral_opts o = {.tcb_info = old};
  ra_collateral *c = sim_coll(sim, &o);
  assert_err(verify_coll(v, q, len, c, 0, &pol, &vd), RA_ERR_COLLATERAL_EXPIRED);
  assert_true(vd.collateral_expiry == now - 10 * 86400);
  pol.allow_expired_collateral = true;
  assert_err(verify_coll(v, q, len, c, 0, &pol, &vd), 0);
  assert_true(vd.collateral_expired);
  pol.allow_expired_collateral = false;
  ra_collateral_free(c);
  free(old);
  /* everything past nextUpdate: the CRLs are checked first */
  ra_sim_collateral_opts o2 = {.issue_date = now - 40 * 86400, .next_update = now - 10 * 86400};
  c = sim_coll(sim, &o2);
  assert_err(verify_coll(v, q, len, c, 0, &pol, &vd), RA_ERR_CRL_EXPIRED);
  pol.allow_expired_collateral = true;
  assert_err(verify_coll(v, q, len, c, 0, &pol, &vd), 0);
  assert_true(vd.collateral_expired);
  pol.allow_expired_collateral = false;
  ra_collateral_free(c);
  /* not yet valid: never allowed */
  ra_sim_collateral_opts o3 = {.issue_date = now + 86400, .next_update = now + 10 * 86400};
  c = sim_coll(sim, &o3);
  pol.allow_expired_collateral = true;
  /* (the CRLs, issued with it, refuse first: the TCB info's own issueDate
   * check is not what fails here) */
  assert_err(verify_coll(v, q, len, c, 0, &pol, &vd), RA_ERR_CRL_EXPIRED);
  pol.allow_expired_collateral = false;
  ra_collateral_free(c);
  /* a PCK CRL that revokes the PCK */
  ra_sim_collateral_opts o4 = {.revoke_pck = 1};
  c = sim_coll(sim, &o4);
  assert_err(verify_coll(v, q, len, c, 0, &pol, &vd), RA_ERR_CERT_REVOKED);
  assert_int_equal(vd.checks[RA_CHECK_CRL], RA_CHECK_FAIL);
  ra_collateral_free(c);
  free(q);
  ra_verifier_free(v);
}

static void test_td_attributes(void **state) {
  ra_sim *sim = *state;
  ra_verifier *v = sim_verifier(sim);
  ra_policy pol = {.signature_only = true, .require_sept_ve_disable = true};
  ra_verdict vd;
  ra_sim_td td;
  size_t len;
  ra_sim_td_default(&td);
  uint8_t *q = sim_quote_td(sim, &td, &len);
  assert_err(verify_coll(v, q, len, NULL, 0, &pol, &vd), 0);
  free(q);
  td.td_attributes &= ~(1ull << 28);
  q = sim_quote_td(sim, &td, &len);
  assert_err(verify_coll(v, q, len, NULL, 0, &pol, &vd), RA_ERR_TD_ATTRIBUTES);
  pol.require_sept_ve_disable = false;
  assert_err(verify_coll(v, q, len, NULL, 0, &pol, &vd), 0);
  free(q);
  int reserved[] = {8, 27, 29, 32, 62};
  for (size_t i = 0; i < sizeof reserved / sizeof *reserved; i++) {
    ra_sim_td_default(&td);
    td.td_attributes |= 1ull << reserved[i];
    q = sim_quote_td(sim, &td, &len);
    if (verify_coll(v, q, len, NULL, 0, &pol, &vd) != RA_ERR_TD_ATTRIBUTES)
      fail_msg("reserved bit %d: %s", reserved[i], ra_err_name(vd.err));
    free(q);
  }
  ra_verifier_free(v);
}

static void test_parse_errors(void **state) {
  (void)state;
  ra_collateral *c = (ra_collateral *)1;
  static const char *const bad[] = {
      "", "{", "[]", "{}", "{\"tcb_info\":\"{}\"}", "null",
      "{\"tcb_info\":\"x\",\"tcb_info_signature\":\"00\"}",
  };
  for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
    assert_err(ra_collateral_parse_json(bad[i], strlen(bad[i]), &c), RA_ERR_COLLATERAL_PARSE);
    assert_null(c);
  }
  assert_int_equal(ra_collateral_load("/nonexistent/x.json", &c), -ENOENT);
  /* a directory without the files */
  assert_err(ra_collateral_load("/", &c), RA_ERR_COLLATERAL_PARSE);
  ra_collateral_free(NULL);
  assert_string_equal(ra_tcb_status_name(RA_TCB_OUT_OF_DATE_CONFIGURATION_NEEDED),
                      "OutOfDateConfigurationNeeded");
  ra_tcb_status st;
  assert_int_equal(ra_tcb_status_from_name("SWHardeningNeeded", &st), 0);
  assert_int_equal(st, RA_TCB_SW_HARDENING_NEEDED);
  assert_int_equal(ra_tcb_status_from_name("None", &st), -EINVAL);
  assert_string_equal(ra_check_name(RA_CHECK_TCB_STATUS), "tcb_status");
  assert_string_equal(ra_err_name(RA_ERR_CRL_MISSING), "RA_ERR_CRL_MISSING");
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_phala_samples),
      cmocka_unit_test(test_phala_policy),
      cmocka_unit_test(test_phala_warm_matches_cold),
      cmocka_unit_test(test_teekit_tcb_infos),
      cmocka_unit_test(test_parse_errors),
      cmocka_unit_test_setup_teardown(test_sim_up_to_date, sim_setup, sim_teardown),
      cmocka_unit_test_setup_teardown(test_sim_tampered, sim_setup, sim_teardown),
      cmocka_unit_test_setup_teardown(test_sim_forged_bodies, sim_setup, sim_teardown),
      cmocka_unit_test_setup_teardown(test_sim_module_versions, sim_setup, sim_teardown),
      cmocka_unit_test_setup_teardown(test_sim_expired_and_revoked, sim_setup, sim_teardown),
      cmocka_unit_test_setup_teardown(test_td_attributes, sim_setup, sim_teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
