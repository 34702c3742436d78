/* tests/attest/quote/vcache_test.c: the verified-quote cache (vcache.h):
 * a hit gives the verdict of a full verification without one; any byte of
 * the quote, the collateral or the policy changes the key; the entry is
 * never used outside the window of every certificate, CRL, TCB info and QE
 * identity involved (checked against the windows read independently here);
 * the key binding and the callback are re-checked on every hit; the size
 * is bounded (least recently used evicted); failures are not kept. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>
#include <jansson.h>
#include <openssl/x509.h>

#include "raloop/attest/quote/collateral.h"
#include "raloop/attest/quote/hexb64.h"
#include "raloop/attest/quote/sim.h"
#include "raloop/attest/quote/vcache.h"
#include "raloop/attest/quote/verify.h"

static const char *vdir(void) {
  const char *d = getenv("RA_VECTORS");
  return d ? d : RA_VECTORS_DIR;
}

static uint8_t *vload(const char *name, size_t *len) {
  char p[1024];
  snprintf(p, sizeof p, "%s/%s", vdir(), name);
  FILE *f = fopen(p, "rb");
  if (!f) fail_msg("cannot open %s", p);
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

#define assert_err(got, want)                                                                      \
  do {                                                                                             \
    int g_ = (got), w_ = (want);                                                                   \
    if (g_ != w_) fail_msg("got %s, want %s", ra_err_name(g_), ra_err_name(w_));                   \
  } while (0)

/* 2025-07-01T00:00:00Z, inside the Phala sample's collateral window */
#define AT_PHALA ((time_t)1751328000)

typedef struct phala {
  uint8_t *q, *cj;
  size_t ql, cl;
  ra_collateral *c;
  ra_verifier *v;
} phala;

static void phala_load(phala *p) {
  p->q = vload("collateral/phala/tdx_quote", &p->ql);
  p->cj = vload("collateral/phala/tdx_quote_collateral.json", &p->cl);
  assert_int_equal(ra_collateral_parse_json((const char *)p->cj, p->cl, &p->c), 0);
  assert_int_equal(ra_verifier_new(0, &p->v), 0);
}

static void phala_free(phala *p) {
  ra_collateral_free(p->c);
  ra_verifier_free(p->v);
  free(p->q);
  free(p->cj);
}

static ra_vcache_stats stats(ra_vcache *vc) {
  ra_vcache_stats s;
  ra_vcache_get_stats(vc, &s);
  return s;
}

static int vverify(ra_vcache *vc, phala *p, const uint8_t *q, ra_collateral *c, time_t at,
                   const ra_policy *pol, ra_verdict *vd) {
  ra_verify_opts o = {.at = at, .collateral = c};
  int rc = ra_vcache_verify(vc, p->v, q, p->ql, &o, pol, vd);
  assert_int_equal(rc == 0, vd->err == 0);
  return vd->err;
}

#define ACCEPT_ALL (~0u)

/* ---- hit, and what a hit gives ---- */

static void test_hit_same_verdict(void **state) {
  (void)state;
  phala p;
  phala_load(&p);
  ra_vcache *vc;
  ra_verdict full, vd;
  ra_policy pol = {.signature_only = true, .accept_tcb = ACCEPT_ALL};
  ra_verify_opts o = {.at = AT_PHALA, .collateral = p.c};
  assert_int_equal(ra_vcache_new(8, &vc), 0);
  assert_int_equal(ra_verify_quote(p.v, p.q, p.ql, &o, &pol, &full), 0);
  assert_err(vverify(vc, &p, p.q, p.c, AT_PHALA, &pol, &vd), 0);
  assert_int_equal(stats(vc).misses, 1);
  assert_int_equal(stats(vc).hits, 0);
  assert_int_equal(stats(vc).entries, 1);
  /* the same bytes in another buffer, and a collateral parsed anew from
   * the same document: the same key */
  uint8_t *copy = malloc(p.ql);
  memcpy(copy, p.q, p.ql);
  ra_collateral *c2;
  assert_int_equal(ra_collateral_parse_json((const char *)p.cj, p.cl, &c2), 0);
  assert_err(vverify(vc, &p, copy, c2, AT_PHALA + 60, &pol, &vd), 0);
  assert_int_equal(stats(vc).hits, 1);
  assert_int_equal(stats(vc).misses, 1);
  /* the verdict of the full verification, with this call's time */
  assert_int_equal(vd.at, AT_PHALA + 60);
  assert_int_equal(vd.tcb_status, full.tcb_status);
  assert_int_equal(vd.n_advisory_ids, full.n_advisory_ids);
  assert_int_equal(vd.crls_applied, full.crls_applied);
  assert_memory_equal(vd.root_sha256, full.root_sha256, 32);
  assert_int_equal(vd.valid_from, full.valid_from);
  assert_int_equal(vd.valid_until, full.valid_until);
  for (int k = 0; k < RA_CHECK__COUNT; k++) assert_int_equal(vd.checks[k], full.checks[k]);
  ra_collateral_free(c2);
  free(copy);
  ra_vcache_free(vc);
  phala_free(&p);
}

/* ---- any byte change misses ---- */

static void test_miss_on_any_change(void **state) {
  (void)state;
  phala p;
  phala_load(&p);
  ra_vcache *vc;
  ra_verdict vd;
  ra_policy pol = {.signature_only = true, .accept_tcb = ACCEPT_ALL};
  assert_int_equal(ra_vcache_new(16, &vc), 0);
  assert_err(vverify(vc, &p, p.q, p.c, AT_PHALA, &pol, &vd), 0);
  /* the quote: every region (header, body, signature, certification
   * data): a miss, verified anew, refused, and not kept */
  size_t at[] = {10, 48 + 100, 48 + 584 + 4 + 10, p.ql - 200};
  uint8_t *bad = malloc(p.ql);
  for (size_t i = 0; i < sizeof at / sizeof at[0]; i++) {
    memcpy(bad, p.q, p.ql);
    bad[at[i]] ^= 0x01;
    uint64_t m = stats(vc).misses;
    assert_int_not_equal(vverify(vc, &p, bad, p.c, AT_PHALA, &pol, &vd), 0);
    assert_int_equal(stats(vc).misses, m + 1);
    assert_int_equal(stats(vc).entries, 1);
  }
  free(bad);
  /* the collateral: one byte of the TCB info body (no longer verifies) */
  json_t *d = json_loadb((const char *)p.cj, p.cl, 0, NULL);
  char *body = strdup(json_string_value(json_object_get(d, "tcb_info")));
  char *e = strstr(body, "\"tcbEvaluationDataNumber\":");
  assert_non_null(e);
  e += strlen("\"tcbEvaluationDataNumber\":");
  *e = *e == '1' ? '2' : '1';
  json_object_set_new(d, "tcb_info", json_string(body));
  free(body);
  char *j = json_dumps(d, 0);
  json_decref(d);
  ra_collateral *c2;
  assert_int_equal(ra_collateral_parse_json(j, strlen(j), &c2), 0);
  free(j);
  uint64_t m = stats(vc).misses;
  assert_err(vverify(vc, &p, p.q, c2, AT_PHALA, &pol, &vd), RA_ERR_COLLATERAL_SIGNATURE);
  assert_int_equal(stats(vc).misses, m + 1);
  ra_collateral_free(c2);
  /* the same collateral with a CRL written in upper-case hex: the same
   * content to the verifier, but the identity is the bytes as given: a
   * miss that verifies */
  {
    json_t *u = json_loadb((const char *)p.cj, p.cl, 0, NULL);
    char *hex = strdup(json_string_value(json_object_get(u, "pck_crl")));
    for (char *h = hex; *h; h++)
      if (*h >= 'a' && *h <= 'f') *h = (char)(*h - 'a' + 'A');
    json_object_set_new(u, "pck_crl", json_string(hex));
    free(hex);
    char *uj = json_dumps(u, 0);
    json_decref(u);
    ra_collateral *c3;
    assert_int_equal(ra_collateral_parse_json(uj, strlen(uj), &c3), 0);
    free(uj);
    uint64_t m3 = stats(vc).misses;
    assert_err(vverify(vc, &p, p.q, c3, AT_PHALA, &pol, &vd), 0);
    assert_int_equal(stats(vc).misses, m3 + 1);
    ra_collateral_free(c3);
  }
  /* no collateral: another key (signatures only) */
  m = stats(vc).misses;
  assert_err(vverify(vc, &p, p.q, NULL, AT_PHALA, &pol, &vd), 0);
  assert_false(vd.tcb_evaluated);
  assert_int_equal(stats(vc).misses, m + 1);
  /* the policy: every field that decides a verdict */
  static const char *const adv[] = {"INTEL-SA-00615"};
  ra_tdx_expect t = {.has = RA_TDX_MRTD};
  ra_policy variants[6];
  for (int i = 0; i < 6; i++) variants[i] = pol;
  variants[0].accept_tcb = ACCEPT_ALL & ~RA_TCB_ACCEPT(RA_TCB_CONFIGURATION_NEEDED);
  variants[1].allowed_advisories = adv;
  variants[1].n_allowed_advisories = 1;
  variants[2].allow_debug = true;
  variants[3].allow_mr_servicetd = true;
  variants[4].require_sept_ve_disable = true;
  variants[5].tdx = &t; /* MRTD all zero: refused */
  variants[5].n_tdx = 1;
  variants[5].signature_only = false;
  for (int i = 0; i < 6; i++) {
    m = stats(vc).misses;
    uint64_t h = stats(vc).hits;
    (void)vverify(vc, &p, p.q, p.c, AT_PHALA, &variants[i], &vd);
    assert_int_equal(stats(vc).misses, m + 1);
    assert_int_equal(stats(vc).hits, h);
  }
  /* the verifier's configuration: a CRL pinned in it changes the key */
  ra_verifier *v2 = p.v;
  assert_int_equal(ra_verifier_new(0, &p.v), 0);
  json_t *dd = json_loadb((const char *)p.cj, p.cl, 0, NULL);
  const char *hex = json_string_value(json_object_get(dd, "root_ca_crl"));
  size_t hl = strlen(hex);
  uint8_t *der = malloc(hl / 2);
  assert_int_equal(ra_hex_decode_exact(hex, hl, der, hl / 2), 0);
  assert_int_equal(ra_verifier_add_crl(p.v, der, hl / 2), 1);
  free(der);
  json_decref(dd);
  m = stats(vc).misses;
  assert_err(vverify(vc, &p, p.q, p.c, AT_PHALA, &pol, &vd), 0);
  assert_int_equal(stats(vc).misses, m + 1);
  ra_verifier_free(v2);
  ra_vcache_free(vc);
  phala_free(&p);
}

/* ---- the window ---- */

static time_t crl_time(const char *hex, bool next) {
  size_t hl = strlen(hex);
  uint8_t *der = malloc(hl / 2);
  assert_int_equal(ra_hex_decode_exact(hex, hl, der, hl / 2), 0);
  const uint8_t *p = der;
  X509_CRL *crl = d2i_X509_CRL(NULL, &p, (long)(hl / 2));
  assert_non_null(crl);
  struct tm tm;
  assert_int_equal(
      ASN1_TIME_to_tm(next ? X509_CRL_get0_nextUpdate(crl) : X509_CRL_get0_lastUpdate(crl), &tm),
      1);
  X509_CRL_free(crl);
  free(der);
  return timegm(&tm);
}

static void test_window_is_the_earliest(void **state) {
  (void)state;
  phala p;
  phala_load(&p);
  ra_vcache *vc;
  ra_verdict vd;
  ra_policy pol = {.signature_only = true, .accept_tcb = ACCEPT_ALL};
  assert_int_equal(ra_vcache_new(8, &vc), 0);
  assert_err(vverify(vc, &p, p.q, p.c, AT_PHALA, &pol, &vd), 0);
  /* the window read independently: TCB info, QE identity, both CRLs, the
   * PCK leaf (the CAs and the TCB signing certificate last for years) */
  ra_collateral_info ci;
  ra_collateral_get_info(p.c, &ci);
  json_t *d = json_loadb((const char *)p.cj, p.cl, 0, NULL);
  const char *rc = json_string_value(json_object_get(d, "root_ca_crl"));
  const char *pc = json_string_value(json_object_get(d, "pck_crl"));
  time_t until = ci.tcb_info_next_update, from = ci.tcb_info_issue;
  time_t nexts[] = {ci.qe_identity_next_update, crl_time(rc, true), crl_time(pc, true),
                    vd.pck_not_after};
  time_t starts[] = {ci.qe_identity_issue, crl_time(rc, false), crl_time(pc, false),
                     vd.pck_not_before};
  for (int i = 0; i < 4; i++) {
    if (nexts[i] < until) until = nexts[i];
    if (starts[i] > from) from = starts[i];
  }
  json_decref(d);
  assert_int_equal(vd.valid_until, until);
  assert_int_equal(vd.valid_from, from);
  assert_true(vd.valid_until <= vd.collateral_expiry);
  /* the last second inside: a hit */
  assert_err(vverify(vc, &p, p.q, p.c, until - 1, &pol, &vd), 0);
  assert_int_equal(stats(vc).hits, 1);
  /* at the earliest expiry: never used; the entry goes, and the full
   * verification refuses (something expired) */
  assert_int_not_equal(vverify(vc, &p, p.q, p.c, until, &pol, &vd), 0);
  assert_int_equal(stats(vc).hits, 1);
  assert_int_equal(stats(vc).expired, 1);
  assert_int_equal(stats(vc).entries, 0);
  /* and before the latest start: not used either */
  assert_err(vverify(vc, &p, p.q, p.c, AT_PHALA, &pol, &vd), 0);
  assert_int_equal(stats(vc).entries, 1);
  assert_int_not_equal(vverify(vc, &p, p.q, p.c, from - 1, &pol, &vd), 0);
  assert_int_equal(stats(vc).hits, 1);
  assert_int_equal(stats(vc).expired, 2);
  /* collateral accepted past nextUpdate by the policy: no window, not kept */
  ra_policy late = pol;
  late.allow_expired_collateral = true;
  time_t after = ci.tcb_info_next_update + 3600;
  if (after < vd.pck_not_after) {
    ra_verdict v2;
    uint64_t n = stats(vc).entries;
    if (vverify(vc, &p, p.q, p.c, after, &late, &v2) == 0) {
      assert_true(v2.collateral_expired);
      assert_int_equal(v2.valid_until, 0);
      assert_int_equal(stats(vc).entries, n);
    }
  }
  ra_vcache_free(vc);
  phala_free(&p);
}

/* ---- bounded ---- */

static void test_bounded_lru(void **state) {
  (void)state;
  phala p;
  phala_load(&p);
  ra_vcache *vc;
  ra_verdict vd;
  ra_policy pol[3];
  for (int i = 0; i < 3; i++) pol[i] = (ra_policy){.signature_only = true};
  pol[0].accept_tcb = ACCEPT_ALL;
  pol[1].accept_tcb = ACCEPT_ALL & ~RA_TCB_ACCEPT(RA_TCB_REVOKED);
  pol[2].accept_tcb = ACCEPT_ALL & ~RA_TCB_ACCEPT(RA_TCB_NOT_SUPPORTED);
  assert_int_equal(ra_vcache_new(0, &vc), -EINVAL);
  assert_int_equal(ra_vcache_new(2, &vc), 0);
  assert_err(vverify(vc, &p, p.q, p.c, AT_PHALA, &pol[0], &vd), 0);
  assert_err(vverify(vc, &p, p.q, p.c, AT_PHALA, &pol[1], &vd), 0);
  assert_err(vverify(vc, &p, p.q, p.c, AT_PHALA, &pol[0], &vd), 0); /* 0 used last */
  assert_int_equal(stats(vc).hits, 1);
  assert_err(vverify(vc, &p, p.q, p.c, AT_PHALA, &pol[2], &vd), 0); /* evicts 1 */
  assert_int_equal(stats(vc).entries, 2);
  assert_int_equal(stats(vc).evictions, 1);
  assert_err(vverify(vc, &p, p.q, p.c, AT_PHALA, &pol[0], &vd), 0);
  assert_int_equal(stats(vc).hits, 2);
  uint64_t m = stats(vc).misses;
  assert_err(vverify(vc, &p, p.q, p.c, AT_PHALA, &pol[1], &vd), 0);
  assert_int_equal(stats(vc).misses, m + 1);
  ra_vcache_clear(vc);
  assert_int_equal(stats(vc).entries, 0);
  ra_vcache_free(vc);
  phala_free(&p);
}

/* ---- per session: binding and callback on every hit ---- */

static int calls;
static int count_cb(const ra_quote *q, ra_verdict *vd, void *ud) {
  (void)q;
  (void)vd;
  calls++;
  return *(int *)ud;
}

static void test_binding_and_callback_rechecked(void **state) {
  (void)state;
  char dir[] = "/tmp/ra-vcache-test-XXXXXX";
  assert_non_null(mkdtemp(dir));
  ra_sim *sim;
  assert_int_equal(ra_sim_open(dir, &sim), 0);
  ra_verifier *v;
  assert_int_equal(ra_verifier_new(RA_VERIFIER_NO_DEFAULT_ROOT, &v), 0);
  assert_int_equal(ra_verifier_add_root_file(v, ra_sim_root_pem_path(sim)), 1);
  char *j;
  size_t jn;
  ra_collateral *c;
  assert_int_equal(ra_sim_collateral_json(sim, NULL, &j, &jn), 0);
  assert_int_equal(ra_collateral_parse_json(j, jn, &c), 0);
  free(j);
  uint8_t key[32], other[32], rd[64];
  memset(key, 0x11, 32);
  memset(other, 0x22, 32);
  static const uint8_t val[] = "v", iat[] = "1";
  assert_int_equal(ra_sim_tdx_binding(val, 1, iat, 1, key, rd), 0);
  uint8_t *q;
  size_t ql;
  assert_int_equal(ra_sim_quote(sim, NULL, rd, &q, &ql), 0);
  int verdict = 0;
  ra_policy pol = {.x25519_pub = key, .binding_val = val, .binding_val_len = 1,
                   .binding_iat = iat, .binding_iat_len = 1, .callback = count_cb,
                   .callback_ud = &verdict};
  ra_verify_opts o = {.collateral = c};
  ra_vcache *vc;
  ra_verdict vd;
  assert_int_equal(ra_vcache_new(4, &vc), 0);
  assert_int_equal(ra_vcache_verify(vc, v, q, ql, &o, &pol, &vd), 0);
  assert_int_equal(calls, 1);
  assert_int_equal(ra_vcache_verify(vc, v, q, ql, &o, &pol, &vd), 0);
  assert_int_equal(calls, 2); /* the callback runs on a hit too */
  assert_int_equal(stats(vc).hits, 1);
  /* another session's key with the same quote: a hit that refuses */
  pol.x25519_pub = other;
  assert_int_equal(ra_vcache_verify(vc, v, q, ql, &o, &pol, &vd), -EACCES);
  assert_err(vd.err, RA_ERR_BINDING);
  assert_int_equal(vd.checks[RA_CHECK_BINDING], RA_CHECK_FAIL);
  assert_int_equal(stats(vc).hits, 2);
  assert_int_equal(calls, 2); /* the callback sees only quotes that passed */
  /* the callback refusing now: refused, although cached */
  pol.x25519_pub = key;
  verdict = 1;
  assert_int_equal(ra_vcache_verify(vc, v, q, ql, &o, &pol, &vd), -EACCES);
  assert_err(vd.err, RA_ERR_CALLBACK);
  assert_int_equal(calls, 3);
  /* and accepting again: still cached (a refusal by the session's checks
   * does not drop the entry) */
  verdict = 0;
  assert_int_equal(ra_vcache_verify(vc, v, q, ql, &o, &pol, &vd), 0);
  assert_int_equal(stats(vc).hits, 4);
  assert_int_equal(stats(vc).misses, 1);
  /* a failure is not kept: a wrong key on a miss */
  ra_vcache_clear(vc);
  pol.x25519_pub = other;
  assert_int_equal(ra_vcache_verify(vc, v, q, ql, &o, &pol, &vd), -EACCES);
  assert_int_equal(stats(vc).entries, 0);
  ra_vcache_free(vc);
  free(q);
  ra_collateral_free(c);
  ra_verifier_free(v);
  ra_sim_free(sim);
  char cmd[300];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
  assert_int_equal(system(cmd), 0);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_hit_same_verdict),
      cmocka_unit_test(test_miss_on_any_change),
      cmocka_unit_test(test_window_is_the_earliest),
      cmocka_unit_test(test_bounded_lru),
      cmocka_unit_test(test_binding_and_callback_rechecked),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
