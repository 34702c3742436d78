/* attest/quote/snp_internal.h: the pieces of SEV-SNP verification shared
 * between snp_chain.c, snp_vcek.c, snp_policy.c and snp_verify.c. Private
 * to attest/quote. */
#ifndef RA_ATTEST_SNP_INTERNAL_H
#define RA_ATTEST_SNP_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include <openssl/x509.h>

#include "raloop/attest/quote/snp_verify.h"

#define RA_SNP_MAX_CERTS 8

/* Records check c failed; the verdict keeps the first failure's code,
 * step and message only. */
void ra_snp_fail(ra_snp_verdict *vd, ra_snp_check c, int code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static inline void ra_snp_pass(ra_snp_verdict *vd, ra_snp_check c) {
  vd->checks[c] = RA_CHECK_PASS;
}
static inline void ra_snp_skip(ra_snp_verdict *vd, ra_snp_check c) {
  vd->checks[c] = RA_CHECK_SKIPPED;
}

/* Certificates in data: PEM blocks (anything between them ignored) or
 * concatenated DER. NULL when none parse, when a PEM block or the DER does
 * not, past RA_SNP_MAX_CERTS, or on ENOMEM. Caller frees with
 * sk_X509_pop_free(.., X509_free). */
STACK_OF(X509) * ra_snp_certs_parse(const uint8_t *data, size_t len);

/* A path validated before (warm verifications): exactly these certificate
 * objects (the verifier's cache hands out the same object for the same
 * bytes; the memo holds references, so an address is not reused while it
 * is here), for a time inside every certificate's validity, and only while
 * the pinned ARKs are those it was validated with. A hit skips the
 * signatures, CA and validity checks of the path; the choice of ASK and ARK
 * runs again. */
typedef struct ra_snp_chain_memo {
  X509 *vcek, *ask, *ark;
  time_t from, to; /* from <= at <= to */
  int n_arks;
} ra_snp_chain_memo;

/* The pinned ARKs and the known intermediates (ASK/ASVK). */
typedef struct ra_snp_trust {
  STACK_OF(X509) * arks;
  STACK_OF(X509) * inters;
  STACK_OF(X509_CRL) * crls;
  bool memo_off;
  ra_snp_chain_memo memo;
} ra_snp_trust;

void ra_snp_chain_memo_clear(ra_snp_chain_memo *m);

/* Adds the compiled-in AMD ARKs and ASKs/ASVKs. 0, -ENOMEM, -EIO. */
int ra_snp_trust_add_amd(ra_snp_trust *t);
/* ra_snp_verifier_add_ark: every cert self-signed CA or none added. */
int ra_snp_trust_add_arks(ra_snp_trust *t, const uint8_t *data, size_t len);

/* RA_SNP_CHECK_CHAIN: finds the ASK (in given, else the known ones) that
 * issued vcek and the pinned ARK that issued it, checks signatures
 * (RSA-PSS SHA-384 for the ASK and the VCEK, the ARK self-signed), CA
 * flags and validity at `at`. Returns true with new references in *ask
 * and *ark, or false after recording the failure. */
bool ra_snp_chain_check(ra_snp_trust *t, X509 *vcek, STACK_OF(X509) * given, time_t at,
                        ra_snp_verdict *vd, X509 **ask, X509 **ark);

/* RA_SNP_CHECK_CRL over the validated chain. */
void ra_snp_crl_check(const ra_snp_trust *t, X509 *vcek, X509 *ask, X509 *ark, time_t at,
                      ra_snp_verdict *vd);

/* The AMD extensions of x (snp_vcek.h for the returns). */
int ra_snp_vcek_ext(X509 *x, ra_snp_vcek_info *out);

/* RA_SNP_CHECK_VCEK_EXT: info against the report (product, SPLs, hwID,
 * VCEK vs VLEK). */
void ra_snp_vcek_match(const ra_snp_report *r, const ra_snp_vcek_info *info, ra_snp_verdict *vd);

/* The policy checks, debug to callback, in order. */
void ra_snp_policy_apply(const ra_snp_report *r, const ra_snp_policy *pol, ra_snp_verdict *vd);

#endif
