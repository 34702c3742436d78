/* apps/common/policy_flags.c: the programs' verification-policy flags. */
#include "apps/common/policy_flags.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "raloop/attest/quote/hexb64.h"

enum {
  F_ROOT, F_MRTD, F_RTMR0, F_RTMR1, F_RTMR2, F_RTMR3, F_REPORT_DATA, F_ALLOW_DEBUG,
  F_TRUST_SIM, F_NO_BINDING, F_ANY_MEASUREMENT,
  F_PCK_CHAIN, F_CRL, F_AT, F_MR_CONFIG_ID, F_MR_OWNER, F_MR_OWNER_CONFIG, F_XFAM,
  F_TD_ATTRIBUTES, F_MR_ENCLAVE, F_MR_SIGNER, F_ISV_PROD_ID, F_MIN_ISV_SVN, F_X25519,
  F_BINDING_VAL, F_BINDING_IAT,
  F_COLLATERAL, F_ACCEPT_TCB, F_ALLOW_ADVISORY, F_ALLOW_EXPIRED, F_REQUIRE_SEPT_VE,
  F_ALLOW_SERVICETD, F_PCCS, F_COLLATERAL_CACHE, F_NO_COLLATERAL_CACHE, F_CA_FILE,
  F_APP_ID, F_COMPOSE_HASH,
  F_SNP_MEASUREMENT, F_SNP_HOST_DATA, F_TRUST_SNP_SIM, F_SNP_ARK,
};

#define B POLICY_FLAGS_BASIC
#define T POLICY_FLAGS_TUNNEL
#define Q POLICY_FLAGS_QUOTE
#define C POLICY_FLAGS_COLLATERAL
#define P POLICY_FLAGS_PCCS
#define D POLICY_FLAGS_DSTACK
#define S POLICY_FLAGS_SNP
static const policy_flag TABLE[] = {
    {"--root", true, B, F_ROOT},
    {"--mrtd", true, B, F_MRTD},
    {"--rtmr0", true, B, F_RTMR0},
    {"--rtmr1", true, B, F_RTMR1},
    {"--rtmr2", true, B, F_RTMR2},
    {"--rtmr3", true, B, F_RTMR3},
    {"--report-data", true, B, F_REPORT_DATA},
    {"--allow-debug", false, B, F_ALLOW_DEBUG},
    {"--trust-sim", true, T, F_TRUST_SIM},
    {"--no-binding", false, T, F_NO_BINDING},
    {"--any-measurement-insecure", false, T, F_ANY_MEASUREMENT},
    {"--pck-chain", true, Q, F_PCK_CHAIN},
    {"--crl", true, Q, F_CRL},
    {"--at", true, Q, F_AT},
    {"--mr-config-id", true, Q, F_MR_CONFIG_ID},
    {"--mr-owner", true, Q, F_MR_OWNER},
    {"--mr-owner-config", true, Q, F_MR_OWNER_CONFIG},
    {"--xfam", true, Q, F_XFAM},
    {"--td-attributes", true, Q, F_TD_ATTRIBUTES},
    {"--mr-enclave", true, Q, F_MR_ENCLAVE},
    {"--mr-signer", true, Q, F_MR_SIGNER},
    {"--isv-prod-id", true, Q, F_ISV_PROD_ID},
    {"--min-isv-svn", true, Q, F_MIN_ISV_SVN},
    {"--x25519", true, Q, F_X25519},
    {"--binding-val", true, Q, F_BINDING_VAL},
    {"--binding-iat", true, Q, F_BINDING_IAT},
    {"--collateral", true, C, F_COLLATERAL},
    {"--accept-tcb", true, C, F_ACCEPT_TCB},
    {"--allow-advisory", true, C, F_ALLOW_ADVISORY},
    {"--allow-expired-collateral", false, C, F_ALLOW_EXPIRED},
    {"--require-sept-ve-disable", false, C, F_REQUIRE_SEPT_VE},
    {"--allow-mr-servicetd", false, C, F_ALLOW_SERVICETD},
    {"--pccs", true, P, F_PCCS},
    {"--collateral-cache", true, P, F_COLLATERAL_CACHE},
    {"--no-collateral-cache", false, P, F_NO_COLLATERAL_CACHE},
    {"--ca-file", true, P, F_CA_FILE},
    {"--app-id", true, D, F_APP_ID},
    {"--compose-hash", true, D, F_COMPOSE_HASH},
    {"--sev-measurement", true, S, F_SNP_MEASUREMENT},
    {"--snp-measurement", true, S, F_SNP_MEASUREMENT},
    {"--sev-host-data", true, S, F_SNP_HOST_DATA},
    {"--snp-host-data", true, S, F_SNP_HOST_DATA},
    {"--trust-snp-sim", true, S, F_TRUST_SNP_SIM},
    {"--snp-ark", true, S, F_SNP_ARK},
};
#undef B
#undef T
#undef Q
#undef C
#undef P
#undef D
#undef S

void policy_flags_init(policy_flags *pf, unsigned groups) {
  memset(pf, 0, sizeof *pf);
  pf->groups = groups;
}

const policy_flag *policy_flags_table(size_t *n) {
  *n = sizeof TABLE / sizeof *TABLE;
  return TABLE;
}

const policy_flag *policy_flags_find(const policy_flags *pf, const char *arg) {
  size_t skip = 0;
  if (pf->prefix) { /* "--client-mrtd" is the table's "--mrtd" */
    size_t n = strlen(pf->prefix);
    if (strncmp(arg, pf->prefix, n) != 0) return NULL;
    arg += n;
    skip = 2;
  }
  for (size_t i = 0; i < sizeof TABLE / sizeof *TABLE; i++)
    if ((TABLE[i].group & pf->groups) && !strcmp(arg, TABLE[i].name + skip)) return &TABLE[i];
  return NULL;
}

static int fail(policy_flags *pf, const policy_flag *f, policy_flag_error e, size_t bytes) {
  pf->error = e;
  pf->error_flag = f->name;
  if (pf->prefix) {
    snprintf(pf->error_flag_buf, sizeof pf->error_flag_buf, "%s%s", pf->prefix, f->name + 2);
    pf->error_flag = pf->error_flag_buf;
  }
  pf->error_bytes = bytes;
  return -1;
}

/* Exactly n bytes of hex into out. */
static int hex_exact(policy_flags *pf, const policy_flag *f, const char *v, uint8_t *out,
                     size_t n) {
  if (ra_hex_decode_exact(v, strlen(v), out, n)) return fail(pf, f, POLICY_FLAG_BAD_HEX, n);
  return 0;
}

/* At most max bytes of hex into out, *len set. */
static int hex_var(policy_flags *pf, const policy_flag *f, const char *v, uint8_t *out, size_t max,
                   size_t *len) {
  size_t n = strlen(v);
  if (n % 2 || n / 2 > max || ra_hex_decode_exact(v, n, out, n / 2))
    return fail(pf, f, POLICY_FLAG_BAD_HEX_VAR, max);
  *len = n / 2;
  return 0;
}

/* An integer 0..65535 (C syntax: decimal, 0x.., 0..). */
static int u16_arg(policy_flags *pf, const policy_flag *f, const char *v, uint16_t *out) {
  char *end;
  long n = strtol(v, &end, 0);
  *out = (uint16_t)n;
  return *end || n < 0 || n > 0xffff ? fail(pf, f, POLICY_FLAG_BAD_NUMBER, 0) : 0;
}

static int add_path(policy_flags *pf, const policy_flag *f, const char **list, size_t *n,
                    size_t max, const char *v) {
  if (*n == max) return fail(pf, f, POLICY_FLAG_TOO_MANY, 0);
  list[(*n)++] = v;
  return 0;
}

int policy_flags_parse_time(const char *s, time_t *t) {
  static const char *const fmts[] = {"%Y-%m-%dT%H:%M:%SZ", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M:%S",
                                     "%Y-%m-%d"};
  if (s[0] == '@') {
    char *e;
    long long v = strtoll(s + 1, &e, 10);
    if (*e || v <= 0) return -1;
    *t = (time_t)v;
    return 0;
  }
  for (size_t i = 0; i < sizeof fmts / sizeof *fmts; i++) {
    struct tm tm;
    memset(&tm, 0, sizeof tm);
    const char *e = strptime(s, fmts[i], &tm);
    if (e && !*e) {
      *t = timegm(&tm);
      return 0;
    }
  }
  return -1;
}

/* The TDX measurement flags: one table of (flag, field, size, bit). */
static int apply_tdx(policy_flags *pf, const policy_flag *f, const char *v) {
  ra_tdx_expect *x = &pf->tdx;
  uint8_t *field;
  size_t n = 48;
  uint32_t bit;
  switch (f->id) {
  case F_MRTD: field = x->mrtd, bit = RA_TDX_MRTD; break;
  case F_RTMR0: case F_RTMR1: case F_RTMR2: case F_RTMR3:
    field = x->rtmr[f->id - F_RTMR0], bit = RA_TDX_RTMR0 << (f->id - F_RTMR0);
    break;
  case F_MR_CONFIG_ID: field = x->mr_config_id, bit = RA_TDX_MR_CONFIG_ID; break;
  case F_MR_OWNER: field = x->mr_owner, bit = RA_TDX_MR_OWNER; break;
  case F_MR_OWNER_CONFIG: field = x->mr_owner_config, bit = RA_TDX_MR_OWNER_CONFIG; break;
  case F_XFAM: field = x->xfam, n = 8, bit = RA_TDX_XFAM; break;
  default: field = x->td_attributes, n = 8, bit = RA_TDX_TD_ATTRIBUTES; break;
  }
  x->has |= bit;
  return hex_exact(pf, f, v, field, n);
}

int policy_flags_apply(policy_flags *pf, const policy_flag *f, const char *v) {
  if (f->has_value && !v) return fail(pf, f, POLICY_FLAG_NO_VALUE, 0);
  pf->any = true;
  switch (f->id) {
  case F_APP_ID: /* an empty pin would match nothing: refused */
    pf->has_app_id = true;
    if (!*v) return fail(pf, f, POLICY_FLAG_BAD_HEX_VAR, sizeof pf->app_id);
    return hex_var(pf, f, v, pf->app_id, sizeof pf->app_id, &pf->app_id_len);
  case F_COMPOSE_HASH:
    pf->has_compose_hash = true;
    if (!*v) return fail(pf, f, POLICY_FLAG_BAD_HEX_VAR, sizeof pf->compose_hash);
    return hex_var(pf, f, v, pf->compose_hash, sizeof pf->compose_hash, &pf->compose_hash_len);
  case F_ROOT: {
    size_t max = pf->max_roots ? pf->max_roots : POLICY_FLAGS_MAX_ROOTS;
    return add_path(pf, f, pf->roots, &pf->n_roots, max, v);
  }
  case F_CRL: return add_path(pf, f, pf->crls, &pf->n_crls, POLICY_FLAGS_MAX_CRLS, v);
  case F_PCK_CHAIN: pf->pck_chain = v; return 0;
  case F_TRUST_SIM: pf->trust_sim_dir = v; return 0;
  case F_SNP_MEASUREMENT:
    pf->any_snp = true;
    if (pf->n_snp_measurements == POLICY_FLAGS_MAX_SNP_SETS) return fail(pf, f, POLICY_FLAG_TOO_MANY, 0);
    if (hex_exact(pf, f, v, pf->snp_measurements[pf->n_snp_measurements], 48)) return -1;
    pf->n_snp_measurements++;
    return 0;
  case F_SNP_HOST_DATA:
    pf->any_snp = pf->has_snp_host_data = true;
    return hex_exact(pf, f, v, pf->snp_host_data, 32);
  case F_TRUST_SNP_SIM: pf->any_snp = true; pf->trust_snp_sim_dir = v; return 0;
  case F_SNP_ARK:
    pf->any_snp = true;
    return add_path(pf, f, pf->snp_arks, &pf->n_snp_arks, POLICY_FLAGS_MAX_SNP_ARKS, v);
  case F_AT: return policy_flags_parse_time(v, &pf->at) ? fail(pf, f, POLICY_FLAG_BAD_TIME, 0) : 0;
  case F_ALLOW_DEBUG: pf->allow_debug = true; return 0;
  case F_COLLATERAL: pf->collateral = v; return 0;
  case F_ACCEPT_TCB:
    return policy_flags_parse_statuses(v, &pf->accept_tcb) ? fail(pf, f, POLICY_FLAG_BAD_STATUS, 0)
                                                          : 0;
  case F_ALLOW_ADVISORY:
    return add_path(pf, f, pf->advisories, &pf->n_advisories, POLICY_FLAGS_MAX_ADVISORIES, v);
  case F_ALLOW_EXPIRED: pf->allow_expired_collateral = true; return 0;
  case F_REQUIRE_SEPT_VE: pf->require_sept_ve_disable = true; return 0;
  case F_ALLOW_SERVICETD: pf->allow_mr_servicetd = true; return 0;
  case F_PCCS: pf->pccs = v; return 0;
  case F_COLLATERAL_CACHE: pf->collateral_cache = v; return 0;
  case F_NO_COLLATERAL_CACHE: pf->no_collateral_cache = true; return 0;
  case F_CA_FILE: pf->ca_file = v; return 0;
  case F_NO_BINDING: pf->no_binding = true; return 0;
  case F_ANY_MEASUREMENT: pf->any_measurement = true; return 0;
  case F_REPORT_DATA:
    pf->tdx.has |= RA_TDX_REPORT_DATA;
    pf->sgx.has |= RA_SGX_REPORT_DATA;
    if (hex_exact(pf, f, v, pf->tdx.report_data, 64)) return -1;
    memcpy(pf->sgx.report_data, pf->tdx.report_data, 64);
    return 0;
  case F_MR_ENCLAVE:
    pf->sgx.has |= RA_SGX_MR_ENCLAVE;
    return hex_exact(pf, f, v, pf->sgx.mr_enclave, 32);
  case F_MR_SIGNER:
    pf->sgx.has |= RA_SGX_MR_SIGNER;
    return hex_exact(pf, f, v, pf->sgx.mr_signer, 32);
  case F_ISV_PROD_ID:
    pf->sgx.has |= RA_SGX_ISV_PROD_ID;
    return u16_arg(pf, f, v, &pf->sgx.isv_prod_id);
  case F_MIN_ISV_SVN:
    pf->sgx.has |= RA_SGX_MIN_ISV_SVN;
    return u16_arg(pf, f, v, &pf->sgx.min_isv_svn);
  case F_X25519:
    pf->has_x25519 = true;
    return hex_exact(pf, f, v, pf->x25519, 32);
  case F_BINDING_VAL:
    pf->has_bval = true;
    return hex_var(pf, f, v, pf->bval, sizeof pf->bval, &pf->bval_len);
  case F_BINDING_IAT:
    pf->has_biat = true;
    return hex_var(pf, f, v, pf->biat, sizeof pf->biat, &pf->biat_len);
  default: return apply_tdx(pf, f, v);
  }
}

int policy_flags_parse(policy_flags *pf, const char *arg, const char *next) {
  const policy_flag *f = policy_flags_find(pf, arg);
  if (!f) return 0;
  if (policy_flags_apply(pf, f, f->has_value ? next : NULL)) return -1;
  return f->has_value ? 2 : 1;
}

int policy_flags_parse_statuses(const char *s, unsigned *bits) {
  char buf[256];
  unsigned b = 0;
  if (strlen(s) >= sizeof buf) return -1;
  memcpy(buf, s, strlen(s) + 1);
  for (char *save = NULL, *t = strtok_r(buf, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
    ra_tcb_status st;
    /* Revoked and NotSupported are never accepted: naming them is an error */
    if (ra_tcb_status_from_name(t, &st) || st == RA_TCB_REVOKED || st == RA_TCB_NOT_SUPPORTED)
      return -1;
    b |= RA_TCB_ACCEPT(st);
  }
  if (!b) return -1;
  *bits = b;
  return 0;
}

void policy_flags_collateral_policy(const policy_flags *pf, ra_policy *pol) {
  pol->accept_tcb = pf->accept_tcb;
  pol->allowed_advisories = pf->n_advisories ? pf->advisories : NULL;
  pol->n_allowed_advisories = pf->n_advisories;
  pol->allow_expired_collateral = pf->allow_expired_collateral;
  pol->require_sept_ve_disable = pf->require_sept_ve_disable;
  pol->allow_mr_servicetd = pf->allow_mr_servicetd;
}

int policy_flags_load_collateral(const policy_flags *pf, ra_collateral **out) {
  *out = NULL;
  return pf->collateral ? ra_collateral_load(pf->collateral, out) : 0;
}

const char *policy_flags_check_collateral(const policy_flags *pf) {
  if (pf->pccs && pf->collateral) return "--pccs and --collateral exclude each other";
  if (!pf->pccs && (pf->collateral_cache || pf->no_collateral_cache || pf->ca_file))
    return "--collateral-cache, --no-collateral-cache and --ca-file need --pccs";
  return NULL;
}

size_t policy_flags_snp_policy(const policy_flags *pf, ra_snp_expect *sets, ra_snp_policy *pol) {
  memset(pol, 0, sizeof *pol);
  size_t n = 0;
  for (size_t i = 0; i < pf->n_snp_measurements; i++, n++) {
    memset(&sets[n], 0, sizeof sets[n]);
    sets[n].has = RA_SNP_MEASUREMENT;
    memcpy(sets[n].measurement, pf->snp_measurements[i], 48);
  }
  if (pf->has_snp_host_data && n == 0) {
    memset(&sets[0], 0, sizeof sets[0]);
    n = 1;
  }
  for (size_t i = 0; pf->has_snp_host_data && i < n; i++) {
    sets[i].has |= RA_SNP_HOST_DATA;
    memcpy(sets[i].host_data, pf->snp_host_data, 32);
  }
  pol->sets = n ? sets : NULL;
  pol->n_sets = n;
  pol->allow_debug = pf->allow_debug;
  return n;
}
