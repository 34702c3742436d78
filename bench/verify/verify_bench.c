/* bench/verify/verify_bench.c: ra-verify-bench, the cost of one quote
 * verification with Intel collateral, by kind of reuse (issue 11, 18).
 *
 *   ra-verify-bench QUOTE COLLATERAL.json AT_UNIX N [ACCEPT_ALL]
 *
 * Prints one line per mode (median, min, max over N, in microseconds):
 *  cold:     a verifier that keeps decoded CA certificates only
 *            (RA_VERIFIER_CACHE_CA_ONLY; pinned root and PCK CA decoded
 *            once per verifier) and one parsed collateral (its body
 *            signatures, issuer path and CRL signatures checked once, as
 *            collateral is per FMSPC and fetched once): the quote is new
 *            bytes each time, its PCK leaf decoded, its path validated and
 *            every quote signature checked anew: a quote of a platform
 *            this client never saw (issue 18's "cold", <= 300 us);
 *  coldest:  no certificate cache (RA_VERIFIER_NO_CERT_CACHE) and the
 *            collateral parsed from its bytes each time (issue 11's "cold");
 *  warm:     the same verifier and collateral again (PCK path memoised;
 *            QE report signature remembered for the same PCK
 *            certificate and bytes; the quote signature checked every time);
 *  vcache:   a hit in a verified-quote cache (ra_vcache): no signature at
 *            all, the per-session checks only.
 * Reported, not a timed test; use callgrind for instruction counts on a
 * shared machine (bench/README.md). */
#include "raloop/attest/quote/vcache.h"
#include "raloop/attest/quote/verify.h"
#include "raloop/core/file.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now_us(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec * 1e6 + (double)ts.tv_nsec / 1e3;
}

static int cmp_double(const void *x, const void *y) {
  double a = *(const double *)x, b = *(const double *)y;
  return (a > b) - (a < b);
}

static void report(const char *mode, double *t, long n) {
  qsort(t, (size_t)n, sizeof *t, cmp_double);
  printf("%-8s n=%-6ld median %8.1f us  min %8.1f us  max %8.1f us\n", mode, n, t[n / 2], t[0],
         t[n - 1]);
}

int main(int argc, char **argv) {
  if (argc < 5) {
    fprintf(stderr, "usage: ra-verify-bench QUOTE COLLATERAL.json AT_UNIX N [MODE]\n"
                    "  MODE: all (default), cold, coldest, warm, vcache\n");
    return 2;
  }
  const char *mode = argc > 5 ? argv[5] : "all";
  uint8_t *q = NULL, *cb = NULL, *copy = NULL;
  size_t ql = 0, cl = 0;
  long n = atol(argv[4]);
  ra_policy pol = {.signature_only = true,
                   .accept_tcb = ~0u /* every status Intel's rules may give this sample */};
  ra_verify_opts o = {.at = (time_t)atoll(argv[3])};
  ra_verdict vd;
  ra_collateral *coll = NULL;
  ra_verifier *v = NULL;
  int rc = 1;
  double *t = calloc(n > 0 ? (size_t)n : 1, sizeof *t);
  if (n <= 0 || !t || ra_file_read(argv[1], 1u << 20, &q, &ql) ||
      ra_file_read(argv[2], 64u << 20, &cb, &cl) || !(copy = malloc(ql)) ||
      ra_collateral_parse_json((const char *)cb, cl, &coll)) {
    fprintf(stderr, "ra-verify-bench: cannot read the quote or the collateral\n");
    goto out;
  }
  o.collateral = coll;
  bool all = !strcmp(mode, "all");

  if (all || !strcmp(mode, "cold")) {
    if (ra_verifier_new(RA_VERIFIER_CACHE_CA_ONLY, &v)) goto out;
    /* the first quote decodes the CA and checks the collateral once */
    if (ra_verify_quote(v, q, ql, &o, &pol, &vd)) {
      fprintf(stderr, "ra-verify-bench: the quote does not verify: %s\n", vd.msg);
      goto out;
    }
    for (long i = 0; i < n; i++) {
      memcpy(copy, q, ql);
      double t0 = now_us();
      if (ra_verify_quote(v, copy, ql, &o, &pol, &vd)) goto out;
      t[i] = now_us() - t0;
    }
    report("cold", t, n);
    ra_verifier_free(v);
    v = NULL;
  }
  if (all || !strcmp(mode, "coldest")) {
    if (ra_verifier_new(RA_VERIFIER_NO_CERT_CACHE, &v)) goto out;
    for (long i = 0; i < n; i++) {
      ra_collateral *fresh = NULL;
      ra_verify_opts f = o;
      memcpy(copy, q, ql);
      double t0 = now_us();
      if (ra_collateral_parse_json((const char *)cb, cl, &fresh)) goto out;
      f.collateral = fresh;
      int r = ra_verify_quote(v, copy, ql, &f, &pol, &vd);
      ra_collateral_free(fresh);
      if (r) goto out;
      t[i] = now_us() - t0;
    }
    report("coldest", t, n);
    ra_verifier_free(v);
    v = NULL;
  }
  if (all || !strcmp(mode, "warm")) {
    if (ra_verifier_new(0, &v) || ra_verify_quote(v, q, ql, &o, &pol, &vd)) goto out;
    for (long i = 0; i < n; i++) {
      memcpy(copy, q, ql);
      double t0 = now_us();
      if (ra_verify_quote(v, copy, ql, &o, &pol, &vd)) goto out;
      t[i] = now_us() - t0;
    }
    report("warm", t, n);
    ra_verifier_free(v);
    v = NULL;
  }
  if (all || !strcmp(mode, "vcache")) {
    ra_vcache *vc = NULL;
    if (ra_verifier_new(0, &v) || ra_vcache_new(64, &vc)) goto out;
    if (ra_vcache_verify(vc, v, q, ql, &o, &pol, &vd)) {
      ra_vcache_free(vc);
      goto out;
    }
    for (long i = 0; i < n; i++) {
      memcpy(copy, q, ql);
      double t0 = now_us();
      int r = ra_vcache_verify(vc, v, copy, ql, &o, &pol, &vd);
      t[i] = now_us() - t0;
      if (r) break;
    }
    ra_vcache_stats st;
    ra_vcache_get_stats(vc, &st);
    ra_vcache_free(vc);
    report("vcache", t, n);
    printf("         (hits %llu, misses %llu)\n", (unsigned long long)st.hits,
           (unsigned long long)st.misses);
  }
  rc = 0;
out:
  ra_verifier_free(v);
  ra_collateral_free(coll);
  free(t);
  free(q);
  free(cb);
  free(copy);
  return rc;
}
