/* attest/quote/policy.c: measurement sets, debug, key binding, callback. */
#include "raloop/attest/quote/policy_internal.h"

#include "raloop/attest/quote/crypto_internal.h"
#include "raloop/attest/quote/verdict_internal.h"

#include <stdio.h>
#include <string.h>

void ra_policy_check_debug(const ra_quote *q, const ra_policy *pol, ra_verdict *vd) {
  if (vd->debug && !pol->allow_debug)
    ra_verdict_fail(vd, RA_CHECK_DEBUG, RA_ERR_DEBUG, "%s",
                    q->body_type == RA_BODY_SGX
                        ? "debug enclave (attributes bit 1) refused"
                        : "TD under debug (td_attributes bits 7:0, TUD) refused");
  else
    ra_verdict_pass(vd, RA_CHECK_DEBUG);
}

/* TD attributes (Intel TDX module ABI): bits 7:0 the TUD group (DEBUG and
 * the TDX 1.5 profiling bits: any of them is "TD under debug", refused by
 * the debug check unless allow_debug), 27:8 reserved, 28 SEPT_VE_DISABLE,
 * 29 reserved, 30 PKS, 31 KL, 62:32 reserved, 63 PERFMON. The reserved
 * bits are refused here whatever the policy. (dcap-qvl also refuses TUD
 * bits 7:1 with allow_debug; here they count as debug.) */
#define TD_ATTR_RESERVED  0x7fffffff2fffff00ull
#define TD_ATTR_SEPT_VE_DISABLE (1ull << 28)

void ra_policy_check_td_attributes(const ra_quote *q, const ra_policy *pol, ra_verdict *vd) {
  static const uint8_t zero[48];
  if (q->body_type == RA_BODY_SGX) {
    ra_verdict_skip(vd, RA_CHECK_TD_ATTRIBUTES);
    return;
  }
  uint64_t a = 0;
  for (int i = 7; i >= 0; i--) a = a << 8 | q->td.td_attributes[i];
  if (a & TD_ATTR_RESERVED)
    ra_verdict_fail(vd, RA_CHECK_TD_ATTRIBUTES, RA_ERR_TD_ATTRIBUTES,
                    "TD attributes %016llx set reserved bits (%016llx)", (unsigned long long)a,
                    (unsigned long long)(a & TD_ATTR_RESERVED));
  else if (pol->require_sept_ve_disable && !(a & TD_ATTR_SEPT_VE_DISABLE))
    ra_verdict_fail(vd, RA_CHECK_TD_ATTRIBUTES, RA_ERR_TD_ATTRIBUTES,
                    "SEPT_VE_DISABLE (TD attributes bit 28) is required and not set");
  else if (q->td.mr_servicetd && !pol->allow_mr_servicetd &&
           !ra_ct_equal(q->td.mr_servicetd, zero, 48))
    ra_verdict_fail(vd, RA_CHECK_TD_ATTRIBUTES, RA_ERR_TD_ATTRIBUTES,
                    "MR_SERVICETD is not zero (a service TD is bound) and not allowed");
  else
    ra_verdict_pass(vd, RA_CHECK_TD_ATTRIBUTES);
}

static bool tdx_match(const ra_td_report *t, const ra_tdx_expect *e) {
  if ((e->has & RA_TDX_MRTD) && !ra_ct_equal(t->mrtd, e->mrtd, 48)) return false;
  for (int i = 0; i < 4; i++)
    if ((e->has & (RA_TDX_RTMR0 << i)) && !ra_ct_equal(t->rtmr[i], e->rtmr[i], 48)) return false;
  if ((e->has & RA_TDX_REPORT_DATA) && !ra_ct_equal(t->report_data, e->report_data, 64))
    return false;
  if ((e->has & RA_TDX_MR_CONFIG_ID) && !ra_ct_equal(t->mr_config_id, e->mr_config_id, 48))
    return false;
  if ((e->has & RA_TDX_MR_OWNER) && !ra_ct_equal(t->mr_owner, e->mr_owner, 48)) return false;
  if ((e->has & RA_TDX_MR_OWNER_CONFIG) &&
      !ra_ct_equal(t->mr_owner_config, e->mr_owner_config, 48))
    return false;
  if ((e->has & RA_TDX_XFAM) && !ra_ct_equal(t->xfam, e->xfam, 8)) return false;
  if ((e->has & RA_TDX_TD_ATTRIBUTES) && !ra_ct_equal(t->td_attributes, e->td_attributes, 8))
    return false;
  return true;
}

static bool sgx_match(const ra_sgx_report *r, const ra_sgx_expect *e) {
  if ((e->has & RA_SGX_MR_ENCLAVE) && !ra_ct_equal(r->mr_enclave, e->mr_enclave, 32)) return false;
  if ((e->has & RA_SGX_MR_SIGNER) && !ra_ct_equal(r->mr_signer, e->mr_signer, 32)) return false;
  if ((e->has & RA_SGX_ISV_PROD_ID) && r->isv_prod_id != e->isv_prod_id) return false;
  if ((e->has & RA_SGX_MIN_ISV_SVN) && r->isv_svn < e->min_isv_svn) return false;
  if ((e->has & RA_SGX_REPORT_DATA) && !ra_ct_equal(r->report_data, e->report_data, 64))
    return false;
  return true;
}

/* A count without its array, or a set that compares nothing, is a caller's
 * mistake: refused (not a crash, not an accept-all set). */
static bool sets_well_formed(const ra_policy *pol, ra_verdict *vd) {
  if ((pol->n_tdx && !pol->tdx) || (pol->n_sgx && !pol->sgx)) {
    ra_verdict_fail(vd, RA_CHECK_MEASUREMENTS, RA_ERR_POLICY_EMPTY,
                    "the policy counts measurement sets it does not give");
    return false;
  }
  for (size_t i = 0; i < pol->n_tdx; i++)
    if (!(pol->tdx[i].has & 0x7ffu)) {
      ra_verdict_fail(vd, RA_CHECK_MEASUREMENTS, RA_ERR_POLICY_EMPTY,
                      "TDX measurement set %zu checks nothing", i);
      return false;
    }
  for (size_t i = 0; i < pol->n_sgx; i++)
    if (!(pol->sgx[i].has & 0x1fu)) {
      ra_verdict_fail(vd, RA_CHECK_MEASUREMENTS, RA_ERR_POLICY_EMPTY,
                      "SGX measurement set %zu checks nothing", i);
      return false;
    }
  return true;
}

void ra_policy_check_measurements(const ra_quote *q, const ra_policy *pol, ra_verdict *vd) {
  bool tdx = q->body_type != RA_BODY_SGX;
  size_t n = tdx ? pol->n_tdx : pol->n_sgx;
  if (pol->n_tdx == 0 && pol->n_sgx == 0) {
    ra_verdict_skip(vd, RA_CHECK_MEASUREMENTS);
    return;
  }
  if (!sets_well_formed(pol, vd)) return;
  for (size_t i = 0; i < n; i++) {
    if (tdx ? tdx_match(&q->td, &pol->tdx[i]) : sgx_match(&q->enclave, &pol->sgx[i])) {
      vd->matched_set = (int)i;
      ra_verdict_pass(vd, RA_CHECK_MEASUREMENTS);
      return;
    }
  }
  if (n == 0)
    ra_verdict_fail(vd, RA_CHECK_MEASUREMENTS, RA_ERR_MEASUREMENT,
                    "a %s quote, but the policy lists only %s measurements", tdx ? "TDX" : "SGX",
                    tdx ? "SGX" : "TDX");
  else
    ra_verdict_fail(vd, RA_CHECK_MEASUREMENTS, RA_ERR_MEASUREMENT,
                    "measurements match none of the %zu accepted %s set(s)", n,
                    tdx ? "TDX" : "SGX");
}

/* The report_data that binds the key (PROTOCOL.md §4): TDX
 * SHA-512(val || iat || key), SGX SHA-256(key) || 0^32. */
static bool binding_report_data(const ra_quote *q, const ra_policy *pol, uint8_t want[64]) {
  if (q->body_type != RA_BODY_SGX) {
    ra_hash_part parts[] = {{pol->binding_val, pol->binding_val_len},
                            {pol->binding_iat, pol->binding_iat_len},
                            {pol->x25519_pub, 32}};
    return ra_hash_parts(EVP_sha512(), parts, 3, want);
  }
  ra_hash_part key = {pol->x25519_pub, 32};
  memset(want + 32, 0, 32);
  return ra_hash_parts(EVP_sha256(), &key, 1, want);
}

void ra_policy_check_binding(const ra_quote *q, const ra_policy *pol, ra_verdict *vd) {
  uint8_t want[64];
  bool tdx = q->body_type != RA_BODY_SGX;
  if (!pol->x25519_pub) {
    ra_verdict_skip(vd, RA_CHECK_BINDING);
    return;
  }
  /* as the reference client: no verifier_data, no binding */
  if (tdx && (!pol->binding_val || !pol->binding_iat)) {
    ra_verdict_fail(vd, RA_CHECK_BINDING, RA_ERR_BINDING,
                    "TDX key binding needs verifier_data (val and iat), and there is none");
    return;
  }
  if (!binding_report_data(q, pol, want)) {
    ra_verdict_fail(vd, RA_CHECK_BINDING, RA_ERR_INTERNAL, "cannot hash the key binding");
    return;
  }
  if (!ra_ct_equal(ra_quote_report_data(q), want, 64)) {
    ra_verdict_fail(vd, RA_CHECK_BINDING, RA_ERR_BINDING,
                    "report_data does not bind the X25519 key (%s)",
                    tdx ? "SHA-512(val || iat || key)" : "SHA-256(key) || 0^32");
    return;
  }
  ra_verdict_pass(vd, RA_CHECK_BINDING);
}

void ra_policy_check_not_empty(const ra_policy *pol, ra_verdict *vd) {
  if (vd->checks[RA_CHECK_MEASUREMENTS] == RA_CHECK_SKIPPED &&
      vd->checks[RA_CHECK_BINDING] == RA_CHECK_SKIPPED && !pol->callback && !pol->signature_only)
    ra_verdict_fail(vd, RA_CHECK_MEASUREMENTS, RA_ERR_POLICY_EMPTY,
                    "the policy checks nothing: give measurements, a key binding or a callback "
                    "(or signature_only)");
}

void ra_policy_run_callback(const ra_quote *q, const ra_policy *pol, ra_verdict *vd) {
  if (!pol->callback) {
    ra_verdict_skip(vd, RA_CHECK_CALLBACK);
    return;
  }
  if (vd->err) return; /* the callback sees only quotes that passed everything else */
  /* the callback may write its reason into vd->msg: give it an empty one */
  char saved[sizeof vd->msg];
  memcpy(saved, vd->msg, sizeof saved);
  vd->msg[0] = '\0';
  if (pol->callback(q, vd, pol->callback_ud) != 0) {
    char why[sizeof vd->msg];
    snprintf(why, sizeof why, "%s", vd->msg[0] ? vd->msg : "refused by the policy callback");
    ra_verdict_fail(vd, RA_CHECK_CALLBACK, RA_ERR_CALLBACK, "%s", why);
  } else {
    memcpy(vd->msg, saved, sizeof saved);
    ra_verdict_pass(vd, RA_CHECK_CALLBACK);
  }
}
