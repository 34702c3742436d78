/* ra-quote: inspect, verify, simulate and benchmark DCAP quotes.
 *
 *   ra-quote show FILE [--collateral PATH [--at TIME] [--root PEM]...] [--json]
 *   ra-quote verify FILE [options] [--collateral PATH ...] [--json]
 *   ra-quote sim --dir DIR --report-data HEX --out FILE [--debug] [--collateral-out FILE]
 *   ra-quote bench FILE [-n N] [verify options]
 *   ra-quote collateral FILE --pccs URL --out FILE.json [--cache DIR] (collateral.c)
 *
 * FILE may be binary, hex or base64 ("-" = stdin). Exit status: 0 valid
 * (or done), 1 invalid quote, 2 usage error or unreadable input. */
#include <errno.h>
#include <getopt.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "apps/common/json.h"
#include "apps/common/policy_flags.h"
#include "apps/quote/collateral.h"
#include "apps/quote/out.h"
#include "apps/quote/snp.h"
#include "apps/quote/util.h"
#include "raloop/attest/quote/collateral.h"
#include "raloop/attest/quote/dstack.h"
#include "raloop/attest/quote/eventlog.h"
#include "raloop/attest/quote/hexb64.h"
#include "raloop/core/file.h"
#include "raloop/core/log.h"
#include "raloop/attest/quote/quote.h"
#include "raloop/attest/quote/sim.h"
#include "raloop/attest/quote/verify.h"

#define EXIT_INVALID 1
#define EXIT_USAGE   2

static void usage(FILE *f) {
  fputs(
      "usage:\n"
      "  ra-quote show FILE [--collateral PATH [--at TIME] [--root PEM]...] [--json]\n"
      "  ra-quote verify FILE [--root PEM]... [--pck-chain PEM] [--crl FILE]... [--at ISO-8601]\n"
      "           [--mrtd HEX] [--rtmr0..3 HEX] [--report-data HEX] [--mr-config-id HEX]\n"
      "           [--mr-owner HEX] [--mr-owner-config HEX] [--xfam HEX] [--td-attributes HEX]\n"
      "           [--mr-enclave HEX] [--mr-signer HEX] [--isv-prod-id N] [--min-isv-svn N]\n"
      "           [--x25519 HEX [--binding-val HEX] [--binding-iat HEX]] [--allow-debug]\n"
      "           [--collateral PATH] [--accept-tcb LIST] [--allow-advisory ID]...\n"
      "           [--allow-expired-collateral] [--require-sept-ve-disable]\n"
      "           [--allow-mr-servicetd] [--json]\n"
      "           [--event-log FILE [--app-id HEX] [--compose-hash HEX]]\n"
      "  ra-quote sim --dir DIR --report-data HEX --out FILE [--debug] [--collateral-out FILE]\n"
      "  ra-quote bench FILE [-n N] [verify options]\n"
      "  ra-quote collateral FILE --pccs URL --out FILE.json [--cache DIR | --no-cache]\n"
      "           [--root-crl-url URL] [--ca-file PEM] [--timeout MS] [--at ISO-8601]\n"
      "FILE may be binary, hex or base64; '-' reads stdin. --root replaces the default\n"
      "pinned Intel SGX Root CA. Without measurement, binding options the verdict covers\n"
      "the signature chain only (and says so). Without --collateral (a dcap-qvl JSON\n"
      "document or a directory of PCS responses) the TCB is not evaluated (and it says\n"
      "so); with it, CRLs are required and the TCB status must be accepted (--accept-tcb\n"
      "UpToDate,SWHardeningNeeded,...; default UpToDate).\n"
      "--event-log FILE (dstack's event log: the JSON array, or a GetQuote/Info answer)\n"
      "replays RTMR0-3 and compares them with the quote's, then --app-id and\n"
      "--compose-hash pin the events of that name. FILE of verify may also be a\n"
      "GetQuote answer (JSON with a hex \"quote\").\n"
      "exit: 0 valid (and the TCB status accepted), 1 invalid, 2 usage error or\n"
      "unreadable input\n",
      f);
}

/* Reads FILE and decodes hex/base64 when it is text. */
static int load_quote(const char *path, uint8_t **q, size_t *qlen) {
  uint8_t *raw;
  size_t n;
  int rc = quote_read(path, 64u << 20, false, &raw, &n);
  if (rc) return rc;
  /* a dstack GetQuote answer: {"quote": hex, ...} */
  size_t skip = 0;
  while (skip < n && (raw[skip] == ' ' || raw[skip] == '\n' || raw[skip] == '\r' || raw[skip] == '\t'))
    skip++;
  if (skip < n && raw[skip] == '{') {
    rc = ra_dstack_quote_from_json((const char *)raw, n, q, qlen);
    free(raw);
    if (rc) fprintf(stderr, "ra-quote: %s: JSON without a hex \"quote\"\n", path);
    return rc;
  }
  return quote_decode(path, raw, n, false, q, qlen);
}

static void show_sgx_report(qout *o, const char *k, const ra_sgx_report *r) {
  qo_open(o, k);
  qo_hex(o, "cpu_svn", r->cpu_svn, 16);
  qo_uint(o, "misc_select", r->misc_select);
  qo_hex(o, "isv_ext_prod_id", r->isv_ext_prod_id, 16);
  qo_hex(o, "attributes", r->attributes, 16);
  qo_hex(o, "mr_enclave", r->mr_enclave, 32);
  qo_hex(o, "mr_signer", r->mr_signer, 32);
  qo_hex(o, "config_id", r->config_id, 64);
  qo_uint(o, "isv_prod_id", r->isv_prod_id);
  qo_uint(o, "isv_svn", r->isv_svn);
  qo_uint(o, "config_svn", r->config_svn);
  qo_hex(o, "isv_family_id", r->isv_family_id, 16);
  qo_hex(o, "report_data", r->report_data, 64);
  qo_close(o);
}

static void show_quote(qout *o, const ra_quote *q) {
  qo_open(o, "header");
  qo_uint(o, "version", q->version);
  qo_uint(o, "att_key_type", q->att_key_type);
  qo_str(o, "tee_type", q->tee_type == RA_TEE_TDX ? "TDX" : "SGX");
  qo_uint(o, "qe_svn", q->qe_svn);
  qo_uint(o, "pce_svn", q->pce_svn);
  qo_hex(o, "qe_vendor_id", q->qe_vendor_id, 16);
  qo_hex(o, "user_data", q->user_data, 20);
  qo_close(o);
  qo_uint(o, "body_type", q->body_type);
  qo_bool(o, "debug", ra_quote_is_debug(q));
  if (q->body_type == RA_BODY_SGX) {
    show_sgx_report(o, "enclave_report", &q->enclave);
  } else {
    const ra_td_report *t = &q->td;
    char k[8];
    qo_open(o, "td_report");
    qo_hex(o, "tee_tcb_svn", t->tee_tcb_svn, 16);
    qo_hex(o, "mr_seam", t->mr_seam, 48);
    qo_hex(o, "mr_signer_seam", t->mr_signer_seam, 48);
    qo_hex(o, "seam_attributes", t->seam_attributes, 8);
    qo_hex(o, "td_attributes", t->td_attributes, 8);
    qo_hex(o, "xfam", t->xfam, 8);
    qo_hex(o, "mrtd", t->mrtd, 48);
    qo_hex(o, "mr_config_id", t->mr_config_id, 48);
    qo_hex(o, "mr_owner", t->mr_owner, 48);
    qo_hex(o, "mr_owner_config", t->mr_owner_config, 48);
    for (int i = 0; i < 4; i++) {
      snprintf(k, sizeof k, "rtmr%d", i);
      qo_hex(o, k, t->rtmr[i], 48);
    }
    qo_hex(o, "report_data", t->report_data, 64);
    qo_hex(o, "tee_tcb_svn2", t->tee_tcb_svn2, 16);
    qo_hex(o, "mr_servicetd", t->mr_servicetd, 48);
    qo_close(o);
  }
  qo_open(o, "signature_data");
  qo_uint(o, "length", q->sig_data.len);
  qo_hex(o, "quote_signature", q->signature, 64);
  qo_hex(o, "attestation_key", q->att_key, 64);
  qo_uint(o, "cert_data_type", q->outer_cert_type);
  show_sgx_report(o, "qe_report", &q->qe_report);
  qo_hex(o, "qe_report_signature", q->qe_report_sig, 64);
  qo_hex(o, "qe_auth_data", q->qe_auth_data.bytes, q->qe_auth_data.len);
  qo_uint(o, "pck_cert_data_type", q->cert_type);
  qo_uint(o, "pck_cert_data_length", q->cert_data.len);
  qo_close(o);
  qo_uint(o, "quote_length", q->quote_len);
  qo_uint(o, "trailing_bytes", q->trailing);
}

/* The platform as the PCK certificate and the collateral see it: FMSPC,
 * SVNs and, with collateral, the matched TCB level. vd comes from a
 * verification (its signature checks are not what show reports). */
static void show_platform(qout *o, const ra_verdict *vd, bool with_coll) {
  if (!vd->has_pck) return;
  qo_open(o, "platform");
  qo_hex(o, "fmspc", vd->pck.fmspc, 6);
  qo_hex(o, "pce_id", vd->pck.pceid, 2);
  qo_uint(o, "pcesvn", vd->pck.pcesvn);
  qo_hex(o, "cpusvn", vd->pck.cpusvn, 16);
  qo_hex(o, "sgx_tcb_components", vd->pck.tcb_comp_svn, 16);
  if (!with_coll) {
    qo_str(o, "tcb", "not evaluated (no --collateral)");
  } else if (vd->tcb_level >= 0) {
    qo_uint(o, "tcb_level", (unsigned long)vd->tcb_level);
    qo_str(o, "tcb_level_status", ra_tcb_status_name(vd->platform_status));
    qo_time(o, "tcb_date", vd->tcb_date);
    if (vd->module_status) qo_str(o, "tdx_module_status", ra_tcb_status_name(vd->module_status));
    if (vd->qe_status) qo_str(o, "qe_status", ra_tcb_status_name(vd->qe_status));
    qo_str(o, "tcb_status", ra_tcb_status_name(vd->tcb_status));
  } else {
    qo_str(o, "tcb_level", vd->checks[RA_CHECK_TCB] == RA_CHECK_FAIL ? "none matches (NotSupported)"
                                                                     : "not evaluated");
    if (vd->err) qo_str(o, "why", vd->msg);
  }
  qo_close(o);
}

static int cmd_show(int argc, char **argv) {
  bool json = false;
  const char *file = NULL;
  policy_flags pf;
  policy_flags_init(&pf, POLICY_FLAGS_BASIC | POLICY_FLAGS_QUOTE | POLICY_FLAGS_COLLATERAL);
  for (int i = 0; i < argc; i++) {
    int k;
    if (!strcmp(argv[i], "--json"))
      json = true;
    else if ((!strcmp(argv[i], "--collateral") || !strcmp(argv[i], "--at") ||
              !strcmp(argv[i], "--root")) &&
             (k = policy_flags_parse(&pf, argv[i], i + 1 < argc ? argv[i + 1] : NULL)) > 0)
      i += k - 1;
    else if (!file && (argv[i][0] != '-' || !strcmp(argv[i], "-")))
      file = argv[i];
    else {
      usage(stderr);
      return EXIT_USAGE;
    }
  }
  if (!file) {
    usage(stderr);
    return EXIT_USAGE;
  }
  uint8_t *buf;
  size_t len;
  if (load_quote(file, &buf, &len)) return EXIT_USAGE;
  ra_quote q;
  int rc = ra_quote_parse(buf, len, &q);
  qout o;
  qo_init(&o, json, false);
  if (rc) {
    if (json) {
      json_begin(&o.j, NULL, '{');
      json_string(&o.j, "error", ra_err_name(rc));
      json_string(&o.j, "message", ra_strerror(rc));
      json_end(&o.j);
      putchar('\n');
    } else
      fprintf(stderr, "ra-quote: %s: %s\n", file, ra_strerror(rc));
    free(buf);
    return EXIT_INVALID;
  }
  /* the PCK facts (and the TCB level) come from a verification */
  ra_verifier *v = NULL;
  ra_collateral *coll = NULL;
  ra_verdict vd;
  memset(&vd, 0, sizeof vd);
  int lrc = policy_flags_load_collateral(&pf, &coll);
  if (lrc) {
    fprintf(stderr, "ra-quote: %s: %s\n", pf.collateral, ra_strerror(lrc));
    free(buf);
    return EXIT_USAGE;
  }
  if (!ra_verifier_new(pf.n_roots ? RA_VERIFIER_NO_DEFAULT_ROOT : 0, &v)) {
    for (size_t i = 0; i < pf.n_roots; i++) ra_verifier_add_root_file(v, pf.roots[i]);
    ra_policy pol = {.signature_only = true, .allow_debug = true, .allow_mr_servicetd = true,
                     .accept_tcb = ~0u};
    ra_verify_opts vo = {.at = pf.at, .collateral = coll};
    ra_verify_quote(v, buf, len, &vo, &pol, &vd);
  }
  qo_open(&o, NULL);
  show_quote(&o, &q);
  show_platform(&o, &vd, coll != NULL);
  qo_close(&o);
  if (json) putchar('\n');
  ra_verifier_free(v);
  ra_collateral_free(coll);
  free(buf);
  return 0;
}

/* ---- verify ---- */

typedef struct vargs {
  const char *file;
  policy_flags pf; /* the policy flags (apps/common/policy_flags.h) */
  bool json;
  long iterations;
  /* dstack: replay this event log, pin these events */
  const char *event_log;
  bool has_app_id, has_compose_hash;
  uint8_t app_id[64], compose_hash[64];
  size_t app_id_len, compose_hash_len;
} vargs;

/* Says what was wrong with a policy flag, in ra-quote's words. */
static void report_flag_error(const policy_flags *pf) {
  const char *name = pf->error_flag;
  if (!strncmp(name, "--rtmr", 6)) name = "--rtmrN";
  if (pf->error == POLICY_FLAG_BAD_HEX)
    fprintf(stderr, "ra-quote: %s wants %zu bytes of hex\n", name, pf->error_bytes);
  else if (pf->error == POLICY_FLAG_BAD_HEX_VAR)
    fprintf(stderr, "ra-quote: %s wants hex (at most %zu bytes)\n", name, pf->error_bytes);
  else if (pf->error == POLICY_FLAG_BAD_TIME)
    fprintf(stderr, "ra-quote: --at wants YYYY-MM-DD[THH:MM:SS[Z]] or @unix\n");
  else if (pf->error == POLICY_FLAG_BAD_STATUS)
    fprintf(stderr, "ra-quote: --accept-tcb wants a comma-separated list of UpToDate, "
                    "SWHardeningNeeded, ConfigurationNeeded, ConfigurationAndSWHardeningNeeded, "
                    "OutOfDate, OutOfDateConfigurationNeeded\n");
}

enum {
  O_JSON = 256,
  O_EVENT_LOG,
  O_APP_ID,
  O_COMPOSE_HASH,
  O_POLICY = 512 /* + index in the policy flag table */
};

/* getopt_long's table: the policy flags of the groups ra-quote takes, and
 * --json. */
static void verify_options(const policy_flags *pf, struct option *opts, size_t cap) {
  size_t n, k = 0;
  const policy_flag *t = policy_flags_table(&n);
  for (size_t i = 0; i < n && k + 5 < cap; i++)
    if (t[i].group & pf->groups)
      opts[k++] = (struct option){t[i].name + 2, t[i].has_value, 0, O_POLICY + (int)i};
  opts[k++] = (struct option){"json", 0, 0, O_JSON};
  opts[k++] = (struct option){"event-log", 1, 0, O_EVENT_LOG};
  opts[k++] = (struct option){"app-id", 1, 0, O_APP_ID};
  opts[k++] = (struct option){"compose-hash", 1, 0, O_COMPOSE_HASH};
  opts[k] = (struct option){0, 0, 0, 0};
}

/* HEX of 1..64 bytes into out. */
static int hex_var(const char *name, const char *v, uint8_t out[64], size_t *len) {
  size_t l = strlen(v);
  if (!l || l % 2 || l > 128 || ra_hex_decode_exact(v, l, out, l / 2)) {
    fprintf(stderr, "ra-quote: %s wants hex (1 to 64 bytes)\n", name);
    return -1;
  }
  *len = l / 2;
  return 0;
}

static int parse_verify_args(int argc, char **argv, vargs *a, bool bench) {
  struct option opts[64];
  size_t n_flags;
  const policy_flag *table = policy_flags_table(&n_flags);
  int c;
  char *end;
  optind = 1;
  opterr = 0;
  memset(a, 0, sizeof *a);
  policy_flags_init(&a->pf, POLICY_FLAGS_BASIC | POLICY_FLAGS_QUOTE | POLICY_FLAGS_COLLATERAL);
  verify_options(&a->pf, opts, sizeof opts / sizeof *opts);
  a->iterations = 1000;
  while ((c = getopt_long(argc, argv, bench ? "n:" : "", opts, NULL)) != -1) {
    if (c == 'n') {
      a->iterations = strtol(optarg, &end, 10);
      if (*end || a->iterations < 1 || a->iterations > 10000000) return -1;
    } else if (c == O_JSON) {
      a->json = true;
    } else if (c == O_EVENT_LOG && !bench) {
      a->event_log = optarg;
    } else if (c == O_APP_ID && !bench) {
      if (hex_var("--app-id", optarg, a->app_id, &a->app_id_len)) return -1;
      a->has_app_id = true;
    } else if (c == O_COMPOSE_HASH && !bench) {
      if (hex_var("--compose-hash", optarg, a->compose_hash, &a->compose_hash_len)) return -1;
      a->has_compose_hash = true;
    } else if (c >= O_POLICY && c < O_POLICY + (int)n_flags) {
      if (policy_flags_apply(&a->pf, &table[c - O_POLICY], optarg)) {
        report_flag_error(&a->pf);
        return -1;
      }
    } else {
      return -1;
    }
  }
  if (optind != argc - 1) return -1;
  if ((a->has_app_id || a->has_compose_hash) && !a->event_log) {
    fprintf(stderr, "ra-quote: --app-id and --compose-hash need --event-log\n");
    return -1;
  }
  a->file = argv[optind];
  return 0;
}

/* Builds the verifier, policy and options from the arguments. */
typedef struct vctx {
  ra_verifier *v;
  ra_policy pol;
  ra_verify_opts opts;
  uint8_t *chain;
  ra_collateral *coll;
} vctx;

static int setup(vargs *a, vctx *c) {
  policy_flags *pf = &a->pf;
  size_t n;
  memset(c, 0, sizeof *c);
  if (ra_verifier_new(pf->n_roots ? RA_VERIFIER_NO_DEFAULT_ROOT : 0, &c->v)) return -1;
  for (size_t i = 0; i < pf->n_roots; i++)
    if (ra_verifier_add_root_file(c->v, pf->roots[i]) <= 0) {
      fprintf(stderr, "ra-quote: %s: no certificate\n", pf->roots[i]);
      return -1;
    }
  for (size_t i = 0; i < pf->n_crls; i++)
    if (ra_verifier_add_crl_file(c->v, pf->crls[i]) <= 0) {
      fprintf(stderr, "ra-quote: %s: no CRL\n", pf->crls[i]);
      return -1;
    }
  if (pf->pck_chain) {
    if (ra_file_read(pf->pck_chain, 64u << 20, &c->chain, &n)) {
      fprintf(stderr, "ra-quote: %s: unreadable\n", pf->pck_chain);
      return -1;
    }
    c->opts.pck_chain = c->chain;
    c->opts.pck_chain_len = n;
  }
  c->opts.at = pf->at;
  int rc = policy_flags_load_collateral(pf, &c->coll);
  if (rc) {
    fprintf(stderr, "ra-quote: %s: %s\n", pf->collateral, ra_strerror(rc));
    return -1;
  }
  c->opts.collateral = c->coll;
  policy_flags_collateral_policy(pf, &c->pol);
  /* --report-data is recorded for both kinds; it stays with the SGX set
     * only if no TDX-only option was given, and the reverse. */
  if (pf->tdx.has & ~(uint32_t)RA_TDX_REPORT_DATA && !(pf->sgx.has & ~(uint32_t)RA_SGX_REPORT_DATA))
    pf->sgx.has = 0;
  if (pf->sgx.has & ~(uint32_t)RA_SGX_REPORT_DATA && !(pf->tdx.has & ~(uint32_t)RA_TDX_REPORT_DATA))
    pf->tdx.has = 0;
  if (pf->tdx.has) {
    c->pol.tdx = &pf->tdx;
    c->pol.n_tdx = 1;
  }
  if (pf->sgx.has) {
    c->pol.sgx = &pf->sgx;
    c->pol.n_sgx = 1;
  }
  if (pf->has_x25519) {
    c->pol.x25519_pub = pf->x25519;
    c->pol.binding_val = pf->has_bval ? pf->bval : NULL;
    c->pol.binding_val_len = pf->bval_len;
    c->pol.binding_iat = pf->has_biat ? pf->biat : NULL;
    c->pol.binding_iat_len = pf->biat_len;
  }
  c->pol.allow_debug = pf->allow_debug;
  c->pol.signature_only = !pf->tdx.has && !pf->sgx.has && !pf->has_x25519;
  return 0;
}

static void teardown(vctx *c) {
  ra_verifier_free(c->v);
  ra_collateral_free(c->coll);
  free(c->chain);
}

/* The dstack event log's verdict (--event-log). */
typedef struct dres {
  bool used;
  int rc;         /* 0: replay matched and the pins held */
  char msg[512];  /* why not, or what matched */
  bool have_id;
  ra_dstack_identity id;
  ra_eventlog *log;
} dres;

static void print_dstack(qout *o, const dres *d) {
  qo_open(o, "event_log");
  qo_bool(o, "valid", d->rc == 0);
  qo_str(o, "message", d->msg);
  if (d->log) qo_uint(o, "events", (unsigned long)ra_eventlog_count(d->log));
  if (d->have_id) {
    const ra_dstack_identity *id = &d->id;
    if (id->has_app_id) qo_hex(o, "app_id", id->app_id, id->app_id_len);
    if (id->has_compose_hash) qo_hex(o, "compose_hash", id->compose_hash, id->compose_hash_len);
    if (id->has_instance_id) qo_hex(o, "instance_id", id->instance_id, id->instance_id_len);
    if (id->has_os_image_hash) qo_hex(o, "os_image_hash", id->os_image_hash, id->os_image_hash_len);
    if (id->has_key_provider) qo_str(o, "key_provider", id->key_provider);
  }
  if (d->log) {
    /* the names of dstack's runtime events (RTMR3), in order */
    size_t n = ra_eventlog_count(d->log);
    if (o->json) {
      json_begin(&o->j, "runtime_events", '[');
      for (size_t i = 0; i < n; i++) {
        const ra_evlog_event *e = ra_eventlog_event(d->log, i);
        if (e->event_type == RA_DSTACK_RUNTIME_EVENT) json_string(&o->j, NULL, e->name);
      }
      json_end(&o->j);
    } else {
      char names[2048] = "";
      size_t off = 0;
      for (size_t i = 0; i < n && off < sizeof names - 1; i++) {
        const ra_evlog_event *e = ra_eventlog_event(d->log, i);
        if (e->event_type != RA_DSTACK_RUNTIME_EVENT) continue;
        int w = snprintf(names + off, sizeof names - off, "%s%s", off ? "," : "", e->name);
        if (w < 0) break;
        off += (size_t)w;
      }
      if (off >= sizeof names) off = sizeof names - 1;
      qo_str(o, "runtime_events", off ? names : "none");
    }
  }
  qo_close(o);
}

static void print_verdict(qout *o, const ra_verdict *vd, const ra_policy *pol, const char *file,
                          const dres *d) {
  bool valid = vd->err == 0 && (!d || !d->used || d->rc == 0);
  qo_open(o, NULL);
  if (!o->json) printf("%s: %s\n", file, valid ? "VALID" : "INVALID");
  qo_bool(o, "valid", valid);
  qo_str(o, "error", ra_err_name(vd->err)); /* "OK" when valid */
  /* the old enum's number (1..27), as scripts have always read it */
  qo_uint(o, "error_code", vd->err ? (unsigned long)(RA_ERR_BASE - vd->err) : 0);
  qo_str(o, "message", vd->msg);
  /* the TCB verdict at the top level: Intel's status and advisories, or
     * plainly that there was none */
  if (vd->tcb_evaluated) {
    qo_str(o, "tcb_status", ra_tcb_status_name(vd->tcb_status));
    if (o->json) {
      json_begin(&o->j, "advisory_ids", '[');
      for (int i = 0; i < vd->n_advisory_ids; i++) json_string(&o->j, NULL, vd->advisory_ids[i]);
      json_end(&o->j);
    } else {
      char adv[RA_MAX_ADVISORIES * 33 + 1] = "";
      size_t off = 0;
      for (int i = 0; i < vd->n_advisory_ids; i++)
        off += (size_t)snprintf(adv + off, sizeof adv - off, "%s%s", i ? "," : "",
                                vd->advisory_ids[i]);
      qo_str(o, "advisory_ids", vd->n_advisory_ids ? adv : "none");
    }
  } else {
    qo_str(o, "tcb_status", "not evaluated");
    qo_str(o, "tcb", "signatures only: TCB not evaluated");
  }
  if (vd->checks[RA_CHECK_PARSE] == RA_CHECK_PASS) {
    qo_str(o, "tee", vd->tee_type == RA_TEE_TDX ? "TDX" : "SGX");
    qo_uint(o, "version", vd->version);
    qo_bool(o, "debug", vd->debug);
  }
  qo_time(o, "verified_at", vd->at);
  qo_str(o, "policy",
        pol->signature_only ? "signature chain only (no measurements checked)"
                            : "measurements/binding");
  qo_open(o, "checks");
  for (int i = 0; i < RA_CHECK__COUNT; i++)
    qo_str(o, ra_check_name(i), ra_check_status_name(vd->checks[i]));
  qo_close(o);
  if (vd->chain_len) {
    qo_open(o, "chain");
    qo_uint(o, "length", (unsigned long)vd->chain_len);
    qo_str(o, "root", vd->root_subject);
    qo_hex(o, "root_sha256", vd->root_sha256, 32);
    qo_bool(o, "from_quote", vd->chain_from_quote);
    qo_uint(o, "crls_applied", (unsigned long)vd->crls_applied);
    qo_close(o);
  }
  if (vd->has_pck) {
    qo_open(o, "pck");
    qo_time(o, "not_before", vd->pck_not_before);
    qo_time(o, "not_after", vd->pck_not_after);
    qo_hex(o, "fmspc", vd->pck.fmspc, 6);
    qo_hex(o, "pce_id", vd->pck.pceid, 2);
    qo_uint(o, "pcesvn", vd->pck.pcesvn);
    qo_hex(o, "cpusvn", vd->pck.cpusvn, 16);
    qo_hex(o, "tcb_components", vd->pck.tcb_comp_svn, 16);
    qo_hex(o, "ppid", vd->pck.ppid, 16);
    qo_uint(o, "sgx_type", (unsigned long)vd->pck.sgx_type);
    if (vd->pck.has_platform_instance_id)
      qo_hex(o, "platform_instance_id", vd->pck.platform_instance_id, 16);
    qo_close(o);
  }
  if (vd->tcb_evaluated) {
    qo_open(o, "collateral");
    if (vd->tcb_level >= 0) qo_uint(o, "tcb_level", (unsigned long)vd->tcb_level);
    qo_str(o, "platform_status", ra_tcb_status_name(vd->platform_status));
    if (vd->module_status) qo_str(o, "tdx_module_status", ra_tcb_status_name(vd->module_status));
    qo_str(o, "qe_status", ra_tcb_status_name(vd->qe_status));
    if (vd->tcb_date) qo_time(o, "tcb_date", vd->tcb_date);
    if (vd->qe_tcb_date) qo_time(o, "qe_tcb_date", vd->qe_tcb_date);
    qo_uint(o, "tcb_evaluation_data_number", (unsigned long)vd->tcb_eval_number);
    if (vd->collateral_expiry) qo_time(o, "expires", vd->collateral_expiry);
    qo_bool(o, "expired_allowed", vd->collateral_expired);
    qo_close(o);
  }
  if (vd->matched_set >= 0) qo_uint(o, "matched_set", (unsigned long)vd->matched_set);
  if (d && d->used) print_dstack(o, d);
  qo_close(o);
  if (o->json) putchar('\n');
}

/* Reads and replays --event-log against the quote, then checks the pins.
 * Returns -1 (said on stderr) when the file is unreadable or no event
 * log; otherwise fills *d (d->rc != 0: the replay or a pin failed). */
static char g_reason[256];
static void catch_reason(ra_log_level level, const char *msg, void *ud) {
  (void)level;
  (void)ud;
  snprintf(g_reason, sizeof g_reason, "%s", msg);
}

static int load_event_log(const vargs *a, const uint8_t *quote, size_t qlen, dres *d) {
  uint8_t *raw;
  size_t n;
  d->used = true;
  int rc = ra_file_read(a->event_log, RA_EVENTLOG_MAX, &raw, &n);
  if (rc) {
    fprintf(stderr, "ra-quote: %s: %s\n", a->event_log, strerror(-rc));
    return -1;
  }
  /* the parser says why at debug level: caught here and said plainly */
  g_reason[0] = 0;
  ra_log_level lvl = ra_log_get_level();
  ra_log_set_sink(catch_reason, NULL);
  ra_log_set_level(RA_LOG_DEBUG);
  rc = ra_eventlog_parse((const char *)raw, n, &d->log);
  ra_log_set_level(lvl);
  ra_log_set_sink(NULL, NULL);
  free(raw);
  if (rc) {
    fprintf(stderr, "ra-quote: %s: %s\n", a->event_log, g_reason[0] ? g_reason : ra_strerror(rc));
    return -1;
  }
  ra_quote q;
  if (ra_quote_parse(quote, qlen, &q)) {
    d->rc = RA_ERR_QUOTE_MALFORMED;
    snprintf(d->msg, sizeof d->msg, "the quote does not parse: no RTMRs to replay against");
    return 0;
  }
  ra_eventlog_verdict evd;
  d->rc = ra_eventlog_check(d->log, &q, &evd);
  snprintf(d->msg, sizeof d->msg, "%s", evd.msg);
  if (d->rc) return 0;
  d->have_id = ra_dstack_identity_from(d->log, &q, &d->id) == 0;
  if (!d->have_id) {
    d->rc = -EINVAL;
    snprintf(d->msg, sizeof d->msg, "an identity event's payload is too long");
    return 0;
  }
  struct {
    bool want, has;
    const uint8_t *exp, *got;
    size_t exp_len, got_len;
    const char *name;
  } pins[2] = {
      {a->has_app_id, d->id.has_app_id, a->app_id, d->id.app_id, a->app_id_len, d->id.app_id_len,
       "app-id"},
      {a->has_compose_hash, d->id.has_compose_hash, a->compose_hash, d->id.compose_hash,
       a->compose_hash_len, d->id.compose_hash_len, "compose-hash"},
  };
  for (int i = 0; i < 2; i++) {
    if (!pins[i].want) continue;
    if (!pins[i].has) {
      d->rc = RA_ERR_MEASUREMENT;
      snprintf(d->msg, sizeof d->msg, "no %s event before system-ready", pins[i].name);
      return 0;
    }
    if (pins[i].exp_len != pins[i].got_len || memcmp(pins[i].exp, pins[i].got, pins[i].got_len)) {
      char h[129];
      ra_hex_encode(pins[i].got, pins[i].got_len, h);
      d->rc = RA_ERR_MEASUREMENT;
      snprintf(d->msg, sizeof d->msg, "%s mismatch: the event log says %s", pins[i].name, h);
      return 0;
    }
  }
  if (a->has_app_id || a->has_compose_hash) {
    size_t l = strlen(d->msg);
    snprintf(d->msg + l, sizeof d->msg - l, "; %s%s%s pinned and matched",
             a->has_app_id ? "app-id" : "", a->has_app_id && a->has_compose_hash ? ", " : "",
             a->has_compose_hash ? "compose-hash" : "");
  }
  return 0;
}

static int cmd_verify(int argc, char **argv) {
  vargs a;
  vctx c;
  uint8_t *buf;
  size_t len;
  ra_verdict vd;
  if (parse_verify_args(argc, argv, &a, false)) {
    usage(stderr);
    return EXIT_USAGE;
  }
  if (load_quote(a.file, &buf, &len)) return EXIT_USAGE;
  if (setup(&a, &c)) {
    teardown(&c);
    free(buf);
    return EXIT_USAGE;
  }
  dres d = {0};
  if (a.event_log && load_event_log(&a, buf, len, &d)) {
    ra_eventlog_free(d.log);
    teardown(&c);
    free(buf);
    return EXIT_USAGE;
  }
  int rc = ra_verify_quote(c.v, buf, len, &c.opts, &c.pol, &vd);
  qout o;
  qo_init(&o, a.json, false);
  print_verdict(&o, &vd, &c.pol, a.file, &d);
  ra_eventlog_free(d.log);
  teardown(&c);
  free(buf);
  return rc == 0 && d.rc == 0 ? 0 : EXIT_INVALID;
}

/* ---- sim ---- */

static int cmd_sim(int argc, char **argv) {
  const char *dir = NULL, *outf = NULL, *rd = NULL, *coll_out = NULL;
  bool debug = false;
  for (int i = 0; i < argc; i++) {
    if (!strcmp(argv[i], "--dir") && i + 1 < argc)
      dir = argv[++i];
    else if (!strcmp(argv[i], "--out") && i + 1 < argc)
      outf = argv[++i];
    else if (!strcmp(argv[i], "--report-data") && i + 1 < argc)
      rd = argv[++i];
    else if (!strcmp(argv[i], "--collateral-out") && i + 1 < argc)
      coll_out = argv[++i];
    else if (!strcmp(argv[i], "--debug"))
      debug = true;
    else {
      usage(stderr);
      return EXIT_USAGE;
    }
  }
  uint8_t report_data[64];
  if (!dir || !outf || !rd || quote_hexarg("--report-data", rd, report_data, 64)) {
    usage(stderr);
    return EXIT_USAGE;
  }
  ra_sim *sim;
  int rc = ra_sim_open(dir, &sim);
  if (rc) {
    fprintf(stderr, "ra-quote: sim %s: %s\n", dir, strerror(-rc));
    return EXIT_USAGE;
  }
  ra_sim_td td;
  ra_sim_td_default(&td);
  if (debug) td.td_attributes |= 1;
  uint8_t *q;
  size_t qlen;
  rc = ra_sim_quote(sim, &td, report_data, &q, &qlen);
  if (rc) {
    fprintf(stderr, "ra-quote: sim quote: %s\n", strerror(-rc));
    ra_sim_free(sim);
    return EXIT_USAGE;
  }
  bool ok = quote_write_file(outf, q, qlen);
  free(q);
  if (!ok) {
    fprintf(stderr, "ra-quote: %s: cannot write\n", outf);
    ra_sim_free(sim);
    return EXIT_USAGE;
  }
  if (coll_out) {
    char *cj = NULL;
    size_t cl = 0;
    rc = ra_sim_collateral_json(sim, NULL, &cj, &cl);
    bool cok = !rc && quote_write_file(coll_out, cj, cl);
    free(cj);
    if (!cok) {
      fprintf(stderr, "ra-quote: %s: cannot write the collateral\n", coll_out);
      ra_sim_free(sim);
      return EXIT_USAGE;
    }
    printf("simulated collateral (TCB info, QE identity, CRLs; valid 30 days) written to %s\n",
           coll_out);
  }
  printf("simulated TDX quote (%zu bytes) written to %s\n"
         "SIMULATED: proves nothing about this machine. Pin the root to verify it:\n"
         "root: %s\n",
         qlen, outf, ra_sim_root_pem_path(sim));
  ra_sim_free(sim);
  return 0;
}

/* ---- bench ---- */

static int cmd_bench(int argc, char **argv) {
  vargs a;
  vctx c;
  uint8_t *buf, *copy;
  size_t len;
  ra_verdict vd;
  if (parse_verify_args(argc, argv, &a, true)) {
    usage(stderr);
    return EXIT_USAGE;
  }
  if (load_quote(a.file, &buf, &len)) return EXIT_USAGE;
  double *t = calloc((size_t)a.iterations, sizeof *t);
  copy = malloc(len);
  memset(&c, 0, sizeof c);
  if (!t || !copy || setup(&a, &c)) {
    teardown(&c);
    free(t);
    free(copy);
    free(buf);
    return EXIT_USAGE;
  }
  /* the very first verification in the process (OpenSSL's lazy init included) */
  double t0 = quote_now_us();
  int rc = ra_verify_quote(c.v, buf, len, &c.opts, &c.pol, &vd);
  printf("first verification in process: %.1f us (%s)\n", quote_now_us() - t0,
         ra_err_name(vd.err));
  if (rc) {
    printf("quote does not verify: %s\n", vd.msg);
    teardown(&c);
    free(t);
    free(copy);
    free(buf);
    return EXIT_INVALID;
  }
  /* cold: each verification starts from fresh quote bytes (a new copy):
     * parse, decode every certificate, chain, both signatures, policy; the
     * verifier's pinned roots are reused, as a client would. */
  ra_verifier *cold;
  if (ra_verifier_new(RA_VERIFIER_NO_CERT_CACHE | (a.pf.n_roots ? RA_VERIFIER_NO_DEFAULT_ROOT : 0),
                      &cold)) {
    teardown(&c);
    free(t);
    free(copy);
    free(buf);
    return EXIT_USAGE;
  }
  for (size_t k = 0; k < a.pf.n_roots; k++) ra_verifier_add_root_file(cold, a.pf.roots[k]);
  /* with collateral, cold also parses it anew each time (from its bytes,
     * read once: the file system is not what is measured) */
  uint8_t *cbytes = NULL;
  size_t clen = 0;
  if (a.pf.collateral) (void)ra_file_read(a.pf.collateral, 64u << 20, &cbytes, &clen);
  for (long i = 0; i < a.iterations; i++) {
    ra_verify_opts o = c.opts;
    ra_collateral *fresh = NULL;
    memcpy(copy, buf, len);
    t0 = quote_now_us();
    if (a.pf.collateral) {
      rc |= cbytes ? ra_collateral_parse_json((const char *)cbytes, clen, &fresh)
                   : ra_collateral_load(a.pf.collateral, &fresh);
      o.collateral = fresh;
    }
    rc |= ra_verify_quote(cold, copy, len, &o, &c.pol, &vd);
    ra_collateral_free(fresh);
    t[i] = quote_now_us() - t0;
  }
  free(cbytes);
  ra_verifier_free(cold);
  quote_bench_stats(a.pf.collateral ? "cold (certs decoded, collateral parsed+checked)"
                        : "cold (certificates decoded, roots pinned)",
        t, a.iterations);
  /* and with a new verifier each time (root parsed anew) */
  for (long i = 0; i < a.iterations; i++) {
    ra_verifier *v2;
    t0 = quote_now_us();
    if (ra_verifier_new(a.pf.n_roots ? RA_VERIFIER_NO_DEFAULT_ROOT : 0, &v2)) break;
    for (size_t k = 0; k < a.pf.n_roots; k++) ra_verifier_add_root_file(v2, a.pf.roots[k]);
    rc |= ra_verify_quote(v2, buf, len, &c.opts, &c.pol, &vd);
    ra_verifier_free(v2);
    t[i] = quote_now_us() - t0;
  }
  quote_bench_stats(a.pf.collateral ? "new verifier each time (collateral parsed before)"
                        : "coldest (new verifier each time)",
        t, a.iterations);
  /* warm: same verifier, its certificate cache holds this chain */
  for (long i = 0; i < a.iterations; i++) {
    memcpy(copy, buf, len);
    t0 = quote_now_us();
    rc |= ra_verify_quote(c.v, copy, len, &c.opts, &c.pol, &vd);
    t[i] = quote_now_us() - t0;
  }
  quote_bench_stats(a.pf.collateral ? "warm (chain+collateral parsed before)"
                        : "warm (chain decoded before; sigs rechecked)",
        t, a.iterations);
  teardown(&c);
  free(t);
  free(copy);
  free(buf);
  return rc ? EXIT_INVALID : 0;
}

int main(int argc, char **argv) {
  if (argc < 2) {
    usage(stderr);
    return EXIT_USAGE;
  }
  if (!strcmp(argv[1], "show") || !strcmp(argv[1], "verify") || !strcmp(argv[1], "bench")) {
    /* AMD SEV-SNP reports (apps/quote/snp.c); -1: an Intel quote */
    int snp = ra_quote_snp(argc - 2, argv + 2,
                           !strcmp(argv[1], "show")     ? RA_QUOTE_SNP_SHOW
                           : !strcmp(argv[1], "verify") ? RA_QUOTE_SNP_VERIFY
                                                        : RA_QUOTE_SNP_BENCH);
    if (snp >= 0) return snp;
  }
  if (!strcmp(argv[1], "show")) return cmd_show(argc - 2, argv + 2);
  if (!strcmp(argv[1], "verify")) return cmd_verify(argc - 1, argv + 1);
  if (!strcmp(argv[1], "sim")) {
    int snp = ra_quote_snp_sim(argc - 2, argv + 2); /* --snp: apps/quote/snp.c */
    if (snp >= 0) return snp;
    return cmd_sim(argc - 2, argv + 2);
  }
  if (!strcmp(argv[1], "bench")) return cmd_bench(argc - 1, argv + 1);
  if (!strcmp(argv[1], "collateral")) return cmd_collateral(argc - 2, argv + 2);
  if (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help")) {
    usage(stdout);
    return 0;
  }
  usage(stderr);
  return EXIT_USAGE;
}
