/* attest/quote/qe_internal.h: the quoting enclave's report inside a quote:
 * signed by the PCK key, binding the attestation key, not from a debug QE.
 * (QE identity evaluation against Intel's collateral belongs next to these,
 * in a module of its own.) Private to attest/quote. */
#ifndef RA_ATTEST_QE_INTERNAL_H
#define RA_ATTEST_QE_INTERNAL_H

#include <openssl/x509.h>

#include "raloop/attest/quote/verify.h"

/* Records RA_CHECK_QE_SIG: the QE report verifies with the leaf's P-256 key. */
void ra_qe_check_signature(const ra_quote *q, X509 *pck_leaf, ra_verdict *vd);

/* Records RA_CHECK_QE_DATA: report_data == SHA-256(attestation key || QE
 * auth data) || 0^32, and the QE is not a debug enclave. */
void ra_qe_check_report_data(const ra_quote *q, ra_verdict *vd);

#endif
