/* apps/quote/snp.c: ra-quote for AMD SEV-SNP reports.
 *
 *   ra-quote show REPORT [--json]
 *   ra-quote verify REPORT --vcek PEM [--ask PEM] [--ark PEM] [--cert-table FILE] [--crl FILE]...
 *            [--trust-snp-sim DIR] [--at TIME] [--snp-measurement HEX]...
 *            [--snp-host-data HEX] [--snp-family-id HEX] [--snp-image-id HEX]
 *            [--report-data HEX] [--snp-max-vmpl N] [--snp-min-tcb BL:TEE:SNP:UCODE[:FMC]]
 *            [--x25519 HEX --nonce HEX] [--allow-debug] [--allow-migration-agent]
 *            [--no-smt] [--json]
 *
 * Each --snp-measurement is one accepted set (any-of); the other expected
 * fields apply to every set (or make one set on their own). Without any
 * of them (and no --x25519) the report's signature chain and guest policy
 * are verified and the measurements only shown (signature_only). The JSON
 * has the TDX verdict's top-level fields: valid, tee ("SEV-SNP"), error,
 * error_code, message, checks. */
#include "apps/quote/snp.h"
#include "apps/quote/out.h"
#include "apps/quote/util.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "apps/common/json.h"
#include "apps/common/policy_flags.h"
#include "raloop/attest/quote/hexb64.h"
#include "raloop/attest/quote/snp_cert_table.h"
#include "raloop/attest/quote/snp_sim.h"
#include "raloop/attest/quote/snp_verify.h"
#include "raloop/core/error.h"
#include "raloop/core/file.h"

#define MAX_SETS 16
#define MAX_CRLS 8

typedef struct snp_args {
  const char *file, *vcek, *ask, *ark, *sim_dir, *cert_table;
  const char *crls[MAX_CRLS];
  int n_crls;
  time_t at;
  bool json, force, snp_only_flag;
  long bench_n;
  ra_snp_expect common; /* fields every set compares */
  uint8_t meas[MAX_SETS][48];
  int n_meas;
  ra_snp_policy pol;
  uint8_t x25519[32], nonce[256];
  bool has_x25519, has_nonce;
} snp_args;

/* 0 parsed; 1 not an SNP option; -1 a bad value (message printed) */
static int parse_opt(snp_args *a, const char *f, const char *v, int *used) {
  *used = 2;
  if (!strcmp(f, "--vcek"))
    a->vcek = v, a->snp_only_flag = true;
  else if (!strcmp(f, "--ask") || !strcmp(f, "--cert-chain"))
    a->ask = v, a->snp_only_flag = true;
  else if (!strcmp(f, "--ark"))
    a->ark = v, a->snp_only_flag = true;
  else if (!strcmp(f, "--trust-snp-sim"))
    a->sim_dir = v, a->snp_only_flag = true;
  else if (!strcmp(f, "--cert-table"))
    a->cert_table = v, a->snp_only_flag = true;
  else if (!strcmp(f, "--crl")) {
    if (a->n_crls == MAX_CRLS) return fprintf(stderr, "ra-quote: too many --crl\n"), -1;
    a->crls[a->n_crls++] = v;
  } else if (!strcmp(f, "--at")) {
    if (!v || policy_flags_parse_time(v, &a->at))
      return fprintf(stderr, "ra-quote: --at: bad time\n"), -1;
  } else if (!strcmp(f, "--snp-measurement")) {
    a->snp_only_flag = true;
    if (a->n_meas == MAX_SETS) return fprintf(stderr, "ra-quote: too many --snp-measurement\n"), -1;
    if (quote_hexarg(f, v, a->meas[a->n_meas], 48)) return -1;
    a->n_meas++;
  } else if (!strcmp(f, "--snp-host-data")) {
    a->snp_only_flag = true;
    a->common.has |= RA_SNP_HOST_DATA;
    if (quote_hexarg(f, v, a->common.host_data, 32)) return -1;
  } else if (!strcmp(f, "--snp-family-id")) {
    a->snp_only_flag = true;
    a->common.has |= RA_SNP_FAMILY_ID;
    if (quote_hexarg(f, v, a->common.family_id, 16)) return -1;
  } else if (!strcmp(f, "--snp-image-id")) {
    a->snp_only_flag = true;
    a->common.has |= RA_SNP_IMAGE_ID;
    if (quote_hexarg(f, v, a->common.image_id, 16)) return -1;
  } else if (!strcmp(f, "--report-data")) {
    a->common.has |= RA_SNP_REPORT_DATA;
    if (quote_hexarg(f, v, a->common.report_data, 64)) return -1;
  } else if (!strcmp(f, "--snp-max-vmpl")) {
    a->snp_only_flag = true;
    char *e;
    unsigned long n = v ? strtoul(v, &e, 10) : 0;
    if (!v || *e || !*v || n > 3)
      return fprintf(stderr, "ra-quote: --snp-max-vmpl wants 0..3\n"), -1;
    a->pol.check_vmpl = true;
    a->pol.max_vmpl = (uint32_t)n;
  } else if (!strcmp(f, "--snp-min-tcb")) {
    a->snp_only_flag = true;
    unsigned bl, tee, snp, uc, fmc = 0;
    int k = v ? sscanf(v, "%u:%u:%u:%u:%u", &bl, &tee, &snp, &uc, &fmc) : 0;
    if ((k != 4 && k != 5) || bl > 255 || tee > 255 || snp > 255 || uc > 255 || fmc > 255)
      return fprintf(stderr, "ra-quote: --snp-min-tcb wants BL:TEE:SNP:UCODE[:FMC]\n"), -1;
    a->pol.check_min_tcb = true;
    a->pol.min_tcb = (ra_snp_tcb){.bootloader = (uint8_t)bl,
                                  .tee = (uint8_t)tee,
                                  .snp = (uint8_t)snp,
                                  .microcode = (uint8_t)uc,
                                  .fmc = (uint8_t)fmc};
  } else if (!strcmp(f, "-n")) {
    char *e;
    a->bench_n = v ? strtol(v, &e, 10) : 0;
    if (!v || *e || a->bench_n <= 0 || a->bench_n > 10000000)
      return fprintf(stderr, "ra-quote: -n wants a count\n"), -1;
  } else if (!strcmp(f, "--x25519")) {
    if (quote_hexarg(f, v, a->x25519, 32)) return -1;
    a->has_x25519 = true;
  } else if (!strcmp(f, "--nonce")) {
    size_t n = v ? strlen(v) / 2 : 0;
    if (!v || strlen(v) % 2 || n > sizeof a->nonce || quote_hexarg(f, v, a->nonce, n)) return -1;
    a->pol.nonce_len = n;
    a->has_nonce = true;
  } else {
    *used = 1;
    if (!strcmp(f, "--json"))
      a->json = true;
    else if (!strcmp(f, "--snp"))
      a->force = a->snp_only_flag = true;
    else if (!strcmp(f, "--allow-debug"))
      a->pol.allow_debug = true;
    else if (!strcmp(f, "--allow-migration-agent"))
      a->pol.allow_migration_agent = true, a->snp_only_flag = true;
    else if (!strcmp(f, "--no-smt"))
      a->pol.require_no_smt = true, a->snp_only_flag = true;
    else
      return 1;
    return 0;
  }
  if (!v) {
    fprintf(stderr, "ra-quote: %s wants a value\n", f);
    return -1;
  }
  return 0;
}

static int load_report(const char *path, uint8_t **out, size_t *len, bool quiet) {
  uint8_t *raw;
  size_t n;
  int rc = quote_read(path, 1u << 20, quiet, &raw, &n);
  return rc ? rc : quote_decode(path, raw, n, quiet, out, len);
}

static int read_opt(const char *path, uint8_t **out, size_t *len) {
  return path ? quote_read(path, 1u << 20, false, out, len) : 0;
}

/* ---- output: text lines or compact JSON -------------------------------- */

static void o_hex64(qout *o, const char *k, uint64_t v) {
  char b[24];
  snprintf(b, sizeof b, "0x%016llx", (unsigned long long)v);
  qo_str(o, k, b);
}
static void o_tcb(qout *o, const char *k, const ra_snp_tcb *t, bool fmc) {
  qo_open(o, k);
  qo_uint(o, "bootloader", t->bootloader);
  qo_uint(o, "tee", t->tee);
  qo_uint(o, "snp", t->snp);
  qo_uint(o, "microcode", t->microcode);
  if (fmc) qo_uint(o, "fmc", t->fmc);
  qo_close(o);
}

static const char *key_name(ra_snp_signing_key k) {
  return k == RA_SNP_KEY_VCEK ? "VCEK" : k == RA_SNP_KEY_VLEK ? "VLEK" : "none";
}

/* the report's fields (from the verdict, which copies them) */
static void show_report(qout *o, const ra_snp_verdict *vd) {
  bool turin = vd->product == RA_SNP_PRODUCT_TURIN;
  qo_open(o, "report");
  qo_uint(o, "version", vd->version);
  qo_str(o, "product", ra_snp_product_name(vd->product));
  qo_uint(o, "guest_svn", vd->guest_svn);
  o_hex64(o, "policy", vd->policy);
  qo_bool(o, "debug", vd->debug);
  qo_bool(o, "migrate_ma", (vd->policy & RA_SNP_POLICY_MIGRATE_MA) != 0);
  qo_bool(o, "smt_allowed", (vd->policy & RA_SNP_POLICY_SMT) != 0);
  qo_uint(o, "vmpl", vd->vmpl);
  o_hex64(o, "platform_info", vd->platform_info);
  qo_str(o, "signing_key", key_name(vd->signing_key));
  qo_hex(o, "measurement", vd->measurement, 48);
  qo_hex(o, "host_data", vd->host_data, 32);
  qo_hex(o, "report_data", vd->report_data, 64);
  qo_hex(o, "family_id", vd->family_id, 16);
  qo_hex(o, "image_id", vd->image_id, 16);
  qo_hex(o, "id_key_digest", vd->id_key_digest, 48);
  qo_hex(o, "author_key_digest", vd->author_key_digest, 48);
  qo_hex(o, "chip_id", vd->chip_id, 64);
  o_tcb(o, "reported_tcb", &vd->reported_tcb, turin);
  o_tcb(o, "current_tcb", &vd->current_tcb, turin);
  o_tcb(o, "committed_tcb", &vd->committed_tcb, turin);
  o_tcb(o, "launch_tcb", &vd->launch_tcb, turin);
  qo_close(o);
}

static void print_verdict(qout *o, const ra_snp_verdict *vd, bool sig_only, const char *file) {
  qo_open(o, NULL);
  if (!o->json) printf("%s: %s\n", file, vd->err == 0 ? "VALID" : "INVALID");
  qo_bool(o, "valid", vd->err == 0);
  qo_str(o, "tee", vd->tee);
  qo_str(o, "error", ra_err_name(vd->err));
  qo_uint(o, "error_code", vd->err ? (unsigned long)(RA_ERR_BASE - vd->err) : 0);
  qo_str(o, "message", vd->msg);
  qo_str(o, "failed_check", vd->failed >= 0 ? ra_snp_check_name((ra_snp_check)vd->failed) : "none");
  qo_time(o, "verified_at", vd->at);
  qo_str(o, "policy",
        sig_only ? "signature chain and guest policy only (no measurements checked)"
                 : "measurements/binding");
  qo_open(o, "checks");
  for (int i = 0; i < RA_SNP_CHECK__COUNT; i++)
    qo_str(o, ra_snp_check_name((ra_snp_check)i), ra_check_status_name(vd->checks[i]));
  qo_close(o);
  if (vd->parsed) show_report(o, vd);
  if (vd->has_vcek) {
    qo_open(o, "vcek");
    qo_str(o, "kind", vd->vcek.is_vlek ? "VLEK" : "VCEK");
    qo_str(o, "product_name", vd->vcek.product_name);
    o_tcb(o, "tcb", &vd->vcek.tcb, vd->vcek.has_fmc);
    if (vd->vcek.hwid_len) qo_hex(o, "hwid", vd->vcek.hwid, vd->vcek.hwid_len);
    if (vd->vcek.is_vlek) qo_str(o, "csp_id", vd->vcek.csp_id);
    if (vd->vcek_not_before) qo_time(o, "not_before", vd->vcek_not_before);
    if (vd->vcek_not_after) qo_time(o, "not_after", vd->vcek_not_after);
    qo_close(o);
  }
  if (vd->checks[RA_SNP_CHECK_CHAIN] == RA_CHECK_PASS) {
    qo_open(o, "chain");
    qo_str(o, "root", vd->ark_subject);
    qo_hex(o, "root_sha256", vd->ark_sha256, 32);
    qo_bool(o, "ask_builtin", vd->ask_builtin);
    qo_uint(o, "crls_applied", (unsigned long)vd->crls_applied);
    qo_close(o);
  }
  if (vd->matched_set >= 0) qo_uint(o, "matched_set", (unsigned long)vd->matched_set);
  qo_close(o);
  if (o->json) putchar('\n');
}

static int do_show(const snp_args *a, const uint8_t *rep, size_t len) {
  ra_snp_report r;
  int rc = ra_snp_report_parse(rep, len, &r);
  qout o;
  qo_init(&o, a->json, true);
  if (rc) {
    if (a->json) {
      json_begin(&o.j, NULL, '{');
      json_string(&o.j, "tee", RA_SNP_TEE_NAME);
      json_string(&o.j, "error", ra_err_name(rc));
      json_string(&o.j, "message", ra_strerror(rc));
      json_end(&o.j);
      putchar('\n');
    } else {
      fprintf(stderr, "ra-quote: %s: %s\n", a->file, ra_strerror(rc));
    }
    return 1;
  }
  /* the verdict copies and decodes the fields: a signature-only run with
   * whatever certificates were given (none: the chain step fails, which
   * show does not report) */
  ra_snp_verifier *v = NULL;
  ra_snp_verdict vd;
  ra_snp_policy pol = {.signature_only = true, .allow_debug = true, .allow_migration_agent = true};
  ra_snp_verify_opts vo = {.at = a->at};
  if (ra_snp_verifier_new(0, &v)) return 2;
  ra_snp_verify(v, rep, len, &vo, &pol, &vd);
  ra_snp_verifier_free(v);
  qo_open(&o, NULL);
  qo_str(&o, "tee", RA_SNP_TEE_NAME);
  show_report(&o, &vd);
  qo_close(&o);
  if (a->json) putchar('\n');
  return 0;
}

/* ---- bench ---- */

/* The same verification n times: coldest (a new verifier each time: AMD's
 * roots decoded anew, then every certificate of the report), cold (one
 * verifier without its cache: every certificate decoded and the path
 * validated each time, as TDX's "cold"), and warm (one verifier: it keeps
 * the decoded certificates and the validated path, so the report
 * signature, the extension match and the policy remain). */
static int run_bench(ra_snp_verifier *v, const uint8_t *rep, size_t len,
                     const ra_snp_verify_opts *o, const ra_snp_policy *pol, long n,
                     const char *sim_dir) {
  double *t = calloc((size_t)n, sizeof *t);
  uint8_t *copy = malloc(len);
  if (!t || !copy) {
    free(t);
    free(copy);
    return 2;
  }
  ra_snp_verdict vd;
  double t0 = quote_now_us();
  int rc = ra_snp_verify(v, rep, len, o, pol, &vd);
  printf("SEV-SNP report, first verification in process: %.1f us (%s)\n", quote_now_us() - t0,
         ra_err_name(vd.err));
  if (rc) {
    printf("report does not verify: %s: %s\n", ra_snp_check_name((ra_snp_check)vd.failed), vd.msg);
    free(t);
    free(copy);
    return 1;
  }
  char ark[4096] = "";
  if (sim_dir) snprintf(ark, sizeof ark, "%s/%s", sim_dir, RA_SNP_SIM_ARK_FILE);
  for (long i = 0; i < n; i++) {
    ra_snp_verifier *c;
    memcpy(copy, rep, len);
    t0 = quote_now_us();
    if (ra_snp_verifier_new(0, &c)) break;
    if (sim_dir) ra_snp_verifier_add_ark_file(c, ark);
    rc |= ra_snp_verify(c, copy, len, o, pol, &vd);
    ra_snp_verifier_free(c);
    t[i] = quote_now_us() - t0;
  }
  quote_bench_stats("coldest (new verifier: roots + chain decoded)", t, n);
  ra_snp_verifier *nc;
  if (!ra_snp_verifier_new(RA_SNP_VERIFIER_NO_CACHE, &nc)) {
    if (sim_dir) ra_snp_verifier_add_ark_file(nc, ark);
    for (long i = 0; i < n; i++) {
      memcpy(copy, rep, len);
      t0 = quote_now_us();
      rc |= ra_snp_verify(nc, copy, len, o, pol, &vd);
      t[i] = quote_now_us() - t0;
    }
    ra_snp_verifier_free(nc);
    quote_bench_stats("cold (certificates decoded, roots pinned)", t, n);
  }
  for (long i = 0; i < n; i++) {
    memcpy(copy, rep, len);
    t0 = quote_now_us();
    rc |= ra_snp_verify(v, copy, len, o, pol, &vd);
    t[i] = quote_now_us() - t0;
  }
  quote_bench_stats("warm (chain decoded and validated before)", t, n);
  free(t);
  free(copy);
  return rc ? 1 : 0;
}

static int do_verify(snp_args *a, const uint8_t *rep, size_t len, long bench) {
  if (!a->vcek && !a->cert_table) {
    fprintf(stderr,
            "ra-quote: verify of an SEV-SNP report needs --vcek PEM (or --cert-table FILE)\n");
    return 2;
  }
  if (a->has_x25519 != a->has_nonce) {
    fprintf(stderr, "ra-quote: --x25519 and --nonce go together\n");
    return 2;
  }
  uint8_t *vcek = NULL, *ask = NULL, *ark = NULL, *table = NULL;
  size_t vl = 0, sl = 0, rl = 0, tl = 0;
  ra_snp_verifier *v = NULL;
  ra_snp_cert_table ct;
  memset(&ct, 0, sizeof ct);
  int rc = 2;
  if (read_opt(a->vcek, &vcek, &vl) || read_opt(a->ask, &ask, &sl) || read_opt(a->ark, &ark, &rl) ||
      read_opt(a->cert_table, &table, &tl))
    goto out;
  if (table && ra_snp_cert_table_parse(table, tl, &ct)) {
    fprintf(stderr, "ra-quote: %s: not an SEV-SNP certificate table\n", a->cert_table);
    goto out;
  }
  if (ra_snp_verifier_new(0, &v)) goto out;
  if (ct.crl && ra_snp_verifier_add_crl(v, ct.crl, ct.crl_len) < 0) {
    fprintf(stderr, "ra-quote: %s: its CRL does not parse\n", a->cert_table);
    goto out;
  }
  if (a->sim_dir) {
    /* trust the simulated ARK only because the user named the sim */
    char p[4096];
    snprintf(p, sizeof p, "%s/%s", a->sim_dir, RA_SNP_SIM_ARK_FILE);
    int n = ra_snp_verifier_add_ark_file(v, p);
    if (n < 0) {
      fprintf(stderr, "ra-quote: %s: %s\n", p,
              n == -EINVAL ? "not a self-signed CA" : strerror(-n));
      goto out;
    }
  }
  for (int i = 0; i < a->n_crls; i++) {
    int n = ra_snp_verifier_add_crl_file(v, a->crls[i]);
    if (n < 0) {
      fprintf(stderr, "ra-quote: %s: %s\n", a->crls[i], n == -EINVAL ? "not a CRL" : strerror(-n));
      goto out;
    }
  }
  ra_snp_expect sets[MAX_SETS];
  int n_sets = 0;
  for (int i = 0; i < a->n_meas; i++) {
    sets[n_sets] = a->common;
    sets[n_sets].has |= RA_SNP_MEASUREMENT;
    memcpy(sets[n_sets].measurement, a->meas[i], 48);
    n_sets++;
  }
  if (!n_sets && a->common.has) sets[n_sets++] = a->common;
  a->pol.sets = n_sets ? sets : NULL;
  a->pol.n_sets = (size_t)n_sets;
  if (a->has_x25519) {
    a->pol.x25519_pub = a->x25519;
    a->pol.nonce = a->nonce;
  }
  a->pol.signature_only = !n_sets && !a->has_x25519;
  /* the options given win over the table's entries */
  ra_snp_verify_opts o = {.at = a->at,
                          .vcek = vcek,
                          .vcek_len = vl,
                          .ask = ask,
                          .ask_len = sl,
                          .ark = ark,
                          .ark_len = rl};
  if (!o.vcek) {
    o.vcek = ct.vcek ? ct.vcek : ct.vlek;
    o.vcek_len = ct.vcek ? ct.vcek_len : ct.vlek_len;
    if (ct.vcek && ct.vlek) {
      /* both: the one the report says signed it */
      ra_snp_report r;
      if (ra_snp_report_parse(rep, len, &r) == 0 && r.signing_key == RA_SNP_KEY_VLEK)
        o.vcek = ct.vlek, o.vcek_len = ct.vlek_len;
    }
  }
  if (!o.ask) o.ask = ct.ask, o.ask_len = ct.ask_len;
  if (!o.ark) o.ark = ct.ark, o.ark_len = ct.ark_len;
  ra_snp_verdict vd;
  if (bench > 0) {
    rc = run_bench(v, rep, len, &o, &a->pol, bench, a->sim_dir);
    goto out;
  }
  int vrc = ra_snp_verify(v, rep, len, &o, &a->pol, &vd);
  qout op;
  qo_init(&op, a->json, true);
  print_verdict(&op, &vd, a->pol.signature_only, a->file);
  rc = vrc == 0 ? 0 : 1;
out:
  ra_snp_verifier_free(v);
  free(vcek);
  free(ask);
  free(ark);
  free(table);
  return rc;
}

int ra_quote_snp(int argc, char **argv, int mode) {
  bool verify = mode != RA_QUOTE_SNP_SHOW;
  snp_args *a = calloc(1, sizeof *a);
  if (!a) return 2;
  a->bench_n = 1000;
  int rc = -1;
  bool bad = false, unknown = false;
  for (int i = 0; i < argc; i++) {
    const char *f = argv[i];
    if (f[0] == '-' && f[1]) {
      int used = 1;
      int p = parse_opt(a, f, i + 1 < argc ? argv[i + 1] : NULL, &used);
      if (p < 0) bad = true;
      if (p > 0)
        unknown = true;
      else
        i += used - 1;
    } else if (!a->file) {
      a->file = f;
    } else {
      unknown = true;
    }
  }
  uint8_t *rep = NULL;
  size_t len = 0;
  /* standard input can be read once: there an SNP option decides */
  bool is_snp = a->file && strcmp(a->file, "-") != 0 &&
                load_report(a->file, &rep, &len, true) == 0 && ra_snp_report_detect(rep, len);
  if (!is_snp && !a->snp_only_flag) goto done; /* an Intel quote: not ours */
  rc = 2;
  if (bad) goto done;
  if (unknown || !a->file) {
    fprintf(stderr,
            "ra-quote: usage: ra-quote %s REPORT --vcek PEM [--ask PEM] [--ark PEM] [--cert-table "
            "FILE]\n"
            "  [--crl FILE]... [--trust-snp-sim DIR] [--at TIME] [--snp-measurement HEX]... "
            "[--snp-host-data HEX]\n"
            "  [--snp-family-id HEX] [--snp-image-id HEX] [--report-data HEX] [--snp-max-vmpl N]\n"
            "  [--snp-min-tcb BL:TEE:SNP:UCODE[:FMC]] [--x25519 HEX --nonce HEX] [--allow-debug]\n"
            "  [--allow-migration-agent] [--no-smt] [--json]\n",
            verify ? "verify" : "show");
    goto done;
  }
  if (!rep && load_report(a->file, &rep, &len, false)) goto done;
  rc = mode == RA_QUOTE_SNP_SHOW
           ? do_show(a, rep, len)
           : do_verify(a, rep, len, mode == RA_QUOTE_SNP_BENCH ? a->bench_n : 0);
done:
  free(rep);
  free(a);
  return rc;
}

int ra_quote_snp_sim(int argc, char **argv) {
  bool snp = false;
  for (int i = 0; i < argc; i++) snp |= !strcmp(argv[i], "--snp");
  if (!snp) return -1;
  const char *dir = NULL, *outf = NULL;
  uint8_t rd[64];
  bool have_rd = false;
  ra_snp_sim_guest g;
  ra_snp_sim_guest_default(&g);
  for (int i = 0; i < argc; i++) {
    const char *f = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
    if (!strcmp(f, "--snp")) continue;
    if (!strcmp(f, "--debug")) {
      g.policy |= RA_SNP_POLICY_DEBUG;
      continue;
    }
    if (!v) goto usage;
    i++;
    if (!strcmp(f, "--dir"))
      dir = v;
    else if (!strcmp(f, "--out"))
      outf = v;
    else if (!strcmp(f, "--report-data")) {
      if (quote_hexarg(f, v, rd, 64)) return 2;
      have_rd = true;
    } else if (!strcmp(f, "--measurement")) {
      if (quote_hexarg(f, v, g.measurement, 48)) return 2;
    } else if (!strcmp(f, "--host-data")) {
      if (quote_hexarg(f, v, g.host_data, 32)) return 2;
    } else if (!strcmp(f, "--vmpl")) {
      g.vmpl = (uint32_t)strtoul(v, NULL, 10);
    } else {
      goto usage;
    }
  }
  if (!dir || !outf || !have_rd) goto usage;
  ra_snp_sim *sim;
  int rc = ra_snp_sim_open(dir, &sim);
  if (rc) {
    fprintf(stderr, "ra-quote: %s: %s\n", dir, strerror(-rc));
    return 2;
  }
  uint8_t rep[RA_SNP_REPORT_LEN];
  rc = ra_snp_sim_report(sim, &g, rd, rep);
  bool ok = !rc && quote_write_file(outf, rep, sizeof rep);
  if (ok)
    fprintf(stderr,
            "SIMULATED SEV-SNP: proves nothing about this machine. Verify with:\n"
            "  ra-quote verify %s --vcek %s --ask %s --trust-snp-sim %s\n",
            outf, ra_snp_sim_vcek_path(sim), ra_snp_sim_chain_path(sim), dir);
  else
    fprintf(stderr, "ra-quote: %s: cannot write the report\n", outf);
  ra_snp_sim_free(sim);
  return ok ? 0 : 2;
usage:
  fprintf(stderr,
          "usage: ra-quote sim --snp --dir DIR --report-data HEX --out FILE [--debug] [--vmpl N]\n"
          "       [--measurement HEX] [--host-data HEX]\n");
  return 2;
}
