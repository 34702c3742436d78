/* attest/quote/qe_internal.h: the quoting enclave's report inside a quote:
 * signed by the PCK key, binding the attestation key, not from a debug QE.
 * (QE identity evaluation against Intel's collateral belongs next to these,
 * in a module of its own.) Private to attest/quote. */
#ifndef RA_ATTEST_QE_INTERNAL_H
#define RA_ATTEST_QE_INTERNAL_H

#include <stdbool.h>

#include <openssl/x509.h>

#include "raloop/attest/quote/verify.h"

/* QE report signatures verified before, for a verifier whose certificate
 * cache is on (warm): by the PCK certificate object (the cache hands out
 * one object per DER; the memo holds a reference, so the address is never
 * another certificate's) and the exact report and signature bytes. Every
 * quote of a platform carries the same QE report and signature (they bind
 * the attestation key, not the quote), so a new quote of a platform seen
 * before costs one ECDSA verification (its own) instead of two. Only
 * successes are kept; the check is pure (no time, no policy). */
#define RA_QE_SIG_MEMO 4
typedef struct ra_qe_sig_memo {
  struct ra_qe_sig_entry {
    X509 *leaf; /* a reference of its own; NULL: empty, or by_point */
    bool by_point; /* a leaf known by its key's point only (der.c) */
    uint8_t point[64];
    uint8_t report[RA_SGX_REPORT_LEN];
    uint8_t sig[64];
  } e[RA_QE_SIG_MEMO];
  unsigned next;
} ra_qe_sig_memo;
void ra_qe_sig_memo_clear(ra_qe_sig_memo *m);

/* Records RA_CHECK_QE_SIG: the QE report verifies with the leaf's P-256 key
 * (memo may be NULL: verify every time). */
void ra_qe_check_signature(const ra_quote *q, X509 *pck_leaf, ra_qe_sig_memo *memo,
                           ra_verdict *vd);

/* The same for a leaf read by der.c, known by its key's point x||y: true
 * (and RA_CHECK_QE_SIG recorded as passed) when the report verifies;
 * false with nothing recorded (the caller takes the full path). */
bool ra_qe_check_signature_xy(const ra_quote *q, const uint8_t point[64], ra_qe_sig_memo *memo,
                              ra_verdict *vd);

/* Records RA_CHECK_QE_DATA: report_data == SHA-256(attestation key || QE
 * auth data) || 0^32, and the QE is not a debug enclave. */
void ra_qe_check_report_data(const ra_quote *q, ra_verdict *vd);

#endif
