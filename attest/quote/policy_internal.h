/* attest/quote/policy_internal.h: the caller's policy applied to a quote
 * whose signatures were checked: debug, measurement sets, X25519 key
 * binding, the callback. Each records its RA_CHECK_* in vd. Private to
 * attest/quote. */
#ifndef RA_ATTEST_POLICY_INTERNAL_H
#define RA_ATTEST_POLICY_INTERNAL_H

#include "raloop/attest/quote/verify.h"

void ra_policy_check_debug(const ra_quote *q, const ra_policy *pol, ra_verdict *vd);
/* RA_CHECK_TD_ATTRIBUTES (TDX; skipped for SGX): reserved bits refused,
 * SEPT_VE_DISABLE when required, MR_SERVICETD zero on TD 1.5 unless
 * allowed. */
void ra_policy_check_td_attributes(const ra_quote *q, const ra_policy *pol, ra_verdict *vd);
void ra_policy_check_measurements(const ra_quote *q, const ra_policy *pol, ra_verdict *vd);
void ra_policy_check_binding(const ra_quote *q, const ra_policy *pol, ra_verdict *vd);
/* Refuses a policy under which neither measurements nor binding ran and
 * that has no callback and is not signature_only: it would accept any
 * quote by mistake. Run after the two checks above. */
void ra_policy_check_not_empty(const ra_policy *pol, ra_verdict *vd);
/* Runs the callback when every other check passed. */
void ra_policy_run_callback(const ra_quote *q, const ra_policy *pol, ra_verdict *vd);

#endif
