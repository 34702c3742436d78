/* tests/apps/policy_flags_test.c: the programs' shared policy-flag parser. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "apps/common/policy_flags.h"

#define HEX48 "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f202122232425262728292a2b2c2d2e2f"
#define HEX64 HEX48 "303132333435363738393a3b3c3d3e3f"

static void test_groups_decide_what_is_a_flag(void **state) {
  (void)state;
  policy_flags pf;
  policy_flags_init(&pf, POLICY_FLAGS_BASIC | POLICY_FLAGS_TUNNEL);
  assert_int_equal(policy_flags_parse(&pf, "--crl", "x"), 0); /* ra-quote's only */
  assert_int_equal(policy_flags_parse(&pf, "--mrtd-x", "x"), 0);
  assert_int_equal(policy_flags_parse(&pf, "--url", NULL), 0);
  assert_int_equal(policy_flags_parse(&pf, "--no-binding", "http://x/"), 1);
  assert_true(pf.no_binding);
  assert_int_equal(policy_flags_parse(&pf, "--trust-sim", "/d"), 2);
  assert_string_equal(pf.trust_sim_dir, "/d");
  policy_flags_init(&pf, POLICY_FLAGS_BASIC | POLICY_FLAGS_QUOTE);
  assert_int_equal(policy_flags_parse(&pf, "--trust-sim", "/d"), 0); /* not ra-quote's */
  assert_int_equal(policy_flags_parse(&pf, "--crl", "c.pem"), 2);
  assert_int_equal(pf.n_crls, 1);
}

static void test_measurements(void **state) {
  (void)state;
  policy_flags pf;
  policy_flags_init(&pf, POLICY_FLAGS_BASIC | POLICY_FLAGS_QUOTE);
  assert_int_equal(policy_flags_parse(&pf, "--mrtd", HEX48), 2);
  assert_int_equal(policy_flags_parse(&pf, "--rtmr2", HEX48), 2);
  assert_int_equal(policy_flags_parse(&pf, "--xfam", "0011223344556677"), 2);
  assert_int_equal(pf.tdx.has, RA_TDX_MRTD | RA_TDX_RTMR2 | RA_TDX_XFAM);
  assert_int_equal(pf.tdx.mrtd[47], 0x2f);
  assert_int_equal(pf.tdx.rtmr[2][1], 0x01);
  assert_int_equal(pf.tdx.xfam[7], 0x77);
  /* report_data applies to either kind of quote */
  assert_int_equal(policy_flags_parse(&pf, "--report-data", HEX64), 2);
  assert_true(pf.tdx.has & RA_TDX_REPORT_DATA);
  assert_true(pf.sgx.has & RA_SGX_REPORT_DATA);
  assert_memory_equal(pf.tdx.report_data, pf.sgx.report_data, 64);
  assert_int_equal(policy_flags_parse(&pf, "--isv-prod-id", "0x10"), 2);
  assert_int_equal(pf.sgx.isv_prod_id, 16);
  assert_int_equal(policy_flags_parse(&pf, "--binding-val", "abcd"), 2);
  assert_int_equal(pf.bval_len, 2);
  assert_true(pf.has_bval);
}

static void test_errors_are_recorded(void **state) {
  (void)state;
  policy_flags pf;
  policy_flags_init(&pf, POLICY_FLAGS_BASIC | POLICY_FLAGS_QUOTE);
  assert_int_equal(policy_flags_parse(&pf, "--mrtd", "00"), -1);
  assert_int_equal(pf.error, POLICY_FLAG_BAD_HEX);
  assert_string_equal(pf.error_flag, "--mrtd");
  assert_int_equal(pf.error_bytes, 48);
  assert_int_equal(policy_flags_parse(&pf, "--report-data", HEX48), -1);
  assert_int_equal(pf.error_bytes, 64);
  assert_int_equal(policy_flags_parse(&pf, "--rtmr1", NULL), -1);
  assert_int_equal(pf.error, POLICY_FLAG_NO_VALUE);
  assert_int_equal(policy_flags_parse(&pf, "--binding-iat", "abc"), -1);
  assert_int_equal(pf.error, POLICY_FLAG_BAD_HEX_VAR);
  assert_int_equal(pf.error_bytes, 256);
  assert_int_equal(policy_flags_parse(&pf, "--min-isv-svn", "65536"), -1);
  assert_int_equal(pf.error, POLICY_FLAG_BAD_NUMBER);
  assert_int_equal(policy_flags_parse(&pf, "--at", "yesterday"), -1);
  assert_int_equal(pf.error, POLICY_FLAG_BAD_TIME);
}

/* ra-hello's client policy: every flag renamed with a prefix, the dstack
 * group, errors named as typed. */
static void test_prefix(void **state) {
  (void)state;
  policy_flags pf;
  policy_flags_init(&pf, POLICY_FLAGS_BASIC | POLICY_FLAGS_TUNNEL | POLICY_FLAGS_DSTACK);
  pf.prefix = "--client-";
  assert_int_equal(policy_flags_parse(&pf, "--mrtd", HEX48), 0); /* the plain name is not a flag now */
  assert_false(pf.any);
  assert_int_equal(policy_flags_parse(&pf, "--client-mrtd", HEX48), 2);
  assert_true(pf.tdx.has & RA_TDX_MRTD);
  assert_int_equal(policy_flags_parse(&pf, "--client-trust-sim", "/tmp/x"), 2);
  assert_string_equal(pf.trust_sim_dir, "/tmp/x");
  assert_int_equal(policy_flags_parse(&pf, "--client-allow-debug", NULL), 1);
  assert_int_equal(policy_flags_parse(&pf, "--client-app-id", "0a0b0c"), 2);
  assert_true(pf.has_app_id);
  assert_int_equal(pf.app_id_len, 3);
  assert_int_equal(policy_flags_parse(&pf, "--client-collateral", "x"), 0); /* group not accepted */
  assert_int_equal(policy_flags_parse(&pf, "--client-rtmr2", "00"), -1);
  assert_string_equal(pf.error_flag, "--client-rtmr2");
  assert_int_equal(policy_flags_parse(&pf, "--client-app-id", ""), -1);
  assert_int_equal(pf.error, POLICY_FLAG_BAD_HEX_VAR);
  assert_true(pf.any);
}

static void test_roots_limit(void **state) {
  (void)state;
  policy_flags pf;
  policy_flags_init(&pf, POLICY_FLAGS_BASIC);
  pf.max_roots = 2;
  assert_int_equal(policy_flags_parse(&pf, "--root", "a"), 2);
  assert_int_equal(policy_flags_parse(&pf, "--root", "b"), 2);
  assert_int_equal(policy_flags_parse(&pf, "--root", "c"), -1);
  assert_int_equal(pf.error, POLICY_FLAG_TOO_MANY);
  assert_int_equal(pf.n_roots, 2);
  assert_string_equal(pf.roots[1], "b");
}

static void test_time(void **state) {
  (void)state;
  time_t t = 0;
  assert_int_equal(policy_flags_parse_time("@1780000000", &t), 0);
  assert_int_equal(t, 1780000000);
  assert_int_equal(policy_flags_parse_time("1970-01-02", &t), 0);
  assert_int_equal(t, 86400);
  assert_int_equal(policy_flags_parse_time("1970-01-01T00:01:00Z", &t), 0);
  assert_int_equal(t, 60);
  assert_int_equal(policy_flags_parse_time("1970-01-01 00:00:02", &t), 0);
  assert_int_equal(t, 2);
  assert_int_equal(policy_flags_parse_time("@0", &t), -1);
  assert_int_equal(policy_flags_parse_time("2026-13-01x", &t), -1);
}

/* The table for getopt_long: every name starts with "--". */
static void test_table(void **state) {
  (void)state;
  size_t n;
  const policy_flag *t = policy_flags_table(&n);
  assert_true(n >= 26);
  for (size_t i = 0; i < n; i++) assert_memory_equal(t[i].name, "--", 2);
}

static void test_collateral_group(void **state) {
  (void)state;
  policy_flags pf;
  policy_flags_init(&pf, POLICY_FLAGS_BASIC | POLICY_FLAGS_TUNNEL);
  assert_int_equal(policy_flags_parse(&pf, "--collateral", "c.json"), 0); /* not asked for */
  policy_flags_init(&pf, POLICY_FLAGS_BASIC | POLICY_FLAGS_COLLATERAL);
  assert_int_equal(policy_flags_parse(&pf, "--collateral", "c.json"), 2);
  assert_string_equal(pf.collateral, "c.json");
  assert_int_equal(policy_flags_parse(&pf, "--accept-tcb", "UpToDate,SWHardeningNeeded"), 2);
  assert_int_equal(pf.accept_tcb,
                   RA_TCB_ACCEPT(RA_TCB_UP_TO_DATE) | RA_TCB_ACCEPT(RA_TCB_SW_HARDENING_NEEDED));
  assert_int_equal(policy_flags_parse(&pf, "--allow-advisory", "INTEL-SA-00615"), 2);
  assert_int_equal(policy_flags_parse(&pf, "--allow-advisory", "INTEL-SA-00289"), 2);
  assert_int_equal(policy_flags_parse(&pf, "--allow-expired-collateral", NULL), 1);
  assert_int_equal(policy_flags_parse(&pf, "--require-sept-ve-disable", NULL), 1);
  assert_int_equal(policy_flags_parse(&pf, "--allow-mr-servicetd", NULL), 1);
  ra_policy pol = {0};
  policy_flags_collateral_policy(&pf, &pol);
  assert_int_equal(pol.n_allowed_advisories, 2);
  assert_string_equal(pol.allowed_advisories[1], "INTEL-SA-00289");
  assert_true(pol.allow_expired_collateral && pol.require_sept_ve_disable &&
              pol.allow_mr_servicetd);
  assert_int_equal(pol.accept_tcb, pf.accept_tcb);
  static const char *const bad[] = {"", ",", "UpToDate,Fine", "Revoked", "NotSupported", "None",
                                    "uptodate"};
  for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
    assert_int_equal(policy_flags_parse(&pf, "--accept-tcb", bad[i]), -1);
    assert_int_equal(pf.error, POLICY_FLAG_BAD_STATUS);
  }
  for (int i = 2; i < POLICY_FLAGS_MAX_ADVISORIES; i++)
    assert_int_equal(policy_flags_parse(&pf, "--allow-advisory", "X"), 2);
  assert_int_equal(policy_flags_parse(&pf, "--allow-advisory", "X"), -1);
  assert_int_equal(pf.error, POLICY_FLAG_TOO_MANY);
}

static void test_pccs_group(void **state) {
  (void)state;
  policy_flags pf;
  policy_flags_init(&pf, POLICY_FLAGS_BASIC | POLICY_FLAGS_COLLATERAL);
  assert_int_equal(policy_flags_parse(&pf, "--pccs", "http://x"), 0); /* not asked for (ra-quote) */
  policy_flags_init(&pf, POLICY_FLAGS_COLLATERAL | POLICY_FLAGS_PCCS);
  assert_null(policy_flags_check_collateral(&pf));
  assert_int_equal(policy_flags_parse(&pf, "--ca-file", "ca.pem"), 2);
  assert_non_null(policy_flags_check_collateral(&pf)); /* needs --pccs */
  assert_int_equal(policy_flags_parse(&pf, "--pccs", "http://127.0.0.1:8081"), 2);
  assert_int_equal(policy_flags_parse(&pf, "--collateral-cache", "/tmp/c"), 2);
  assert_int_equal(policy_flags_parse(&pf, "--no-collateral-cache", NULL), 1);
  assert_string_equal(pf.pccs, "http://127.0.0.1:8081");
  assert_string_equal(pf.collateral_cache, "/tmp/c");
  assert_string_equal(pf.ca_file, "ca.pem");
  assert_true(pf.no_collateral_cache);
  assert_null(policy_flags_check_collateral(&pf));
  assert_int_equal(policy_flags_parse(&pf, "--collateral", "c.json"), 2);
  assert_non_null(policy_flags_check_collateral(&pf)); /* one source or the other */
  assert_int_equal(policy_flags_parse(&pf, "--pccs", NULL), -1);
  assert_int_equal(pf.error, POLICY_FLAG_NO_VALUE);
}

/* The SEV-SNP group (ra-curl): both spellings, any-of measurements with
 * the host_data, size errors, and nothing of it without the group. */
static void test_snp_group(void **state) {
  (void)state;
  policy_flags pf;
  policy_flags_init(&pf, POLICY_FLAGS_BASIC);
  assert_int_equal(policy_flags_parse(&pf, "--sev-measurement", "00"), 0); /* not accepted: not a flag */
  policy_flags_init(&pf, POLICY_FLAGS_BASIC | POLICY_FLAGS_SNP);
  char m1[97], m2[97], hd[65];
  memset(m1, 'a', 96); m1[96] = '\0';
  memset(m2, 'b', 96); m2[96] = '\0';
  memset(hd, '1', 64); hd[64] = '\0';
  assert_int_equal(policy_flags_parse(&pf, "--sev-measurement", m1), 2);
  assert_int_equal(policy_flags_parse(&pf, "--snp-measurement", m2), 2);
  assert_int_equal(policy_flags_parse(&pf, "--sev-host-data", hd), 2);
  assert_int_equal(policy_flags_parse(&pf, "--trust-snp-sim", "/d"), 2);
  assert_int_equal(policy_flags_parse(&pf, "--snp-ark", "/a.pem"), 2);
  assert_int_equal(policy_flags_parse(&pf, "--allow-debug", NULL), 1);
  assert_true(pf.any_snp);
  assert_string_equal(pf.trust_snp_sim_dir, "/d");
  assert_int_equal(pf.n_snp_arks, 1);
  ra_snp_expect sets[POLICY_FLAGS_MAX_SNP_SETS];
  ra_snp_policy pol;
  assert_int_equal(policy_flags_snp_policy(&pf, sets, &pol), 2);
  assert_int_equal(pol.n_sets, 2);
  assert_true(pol.allow_debug);
  assert_int_equal(sets[0].has, RA_SNP_MEASUREMENT | RA_SNP_HOST_DATA);
  assert_int_equal(sets[0].measurement[0], 0xaa);
  assert_int_equal(sets[1].measurement[47], 0xbb);
  assert_int_equal(sets[1].host_data[31], 0x11);
  /* host_data alone: one set */
  policy_flags_init(&pf, POLICY_FLAGS_SNP);
  assert_int_equal(policy_flags_parse(&pf, "--snp-host-data", hd), 2);
  assert_int_equal(policy_flags_snp_policy(&pf, sets, &pol), 1);
  assert_int_equal(sets[0].has, RA_SNP_HOST_DATA);
  /* errors: size, too many */
  assert_int_equal(policy_flags_parse(&pf, "--sev-measurement", "00"), -1);
  assert_int_equal(pf.error, POLICY_FLAG_BAD_HEX);
  assert_int_equal(pf.error_bytes, 48);
  for (int i = 0; i < POLICY_FLAGS_MAX_SNP_SETS; i++)
    assert_int_equal(policy_flags_parse(&pf, "--sev-measurement", m1), 2);
  assert_int_equal(policy_flags_parse(&pf, "--sev-measurement", m1), -1);
  assert_int_equal(pf.error, POLICY_FLAG_TOO_MANY);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_groups_decide_what_is_a_flag),
      cmocka_unit_test(test_snp_group),
      cmocka_unit_test(test_measurements),
      cmocka_unit_test(test_errors_are_recorded),
      cmocka_unit_test(test_prefix),
      cmocka_unit_test(test_roots_limit),
      cmocka_unit_test(test_time),
      cmocka_unit_test(test_table),
      cmocka_unit_test(test_collateral_group),
      cmocka_unit_test(test_pccs_group),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
