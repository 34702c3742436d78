/* attest/quote/crl_internal.h: the verifier's CRL set: loaded all or
 * nothing, applied to a validated chain at a given time. Private to
 * attest/quote. */
#ifndef RA_ATTEST_CRL_INTERNAL_H
#define RA_ATTEST_CRL_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include <openssl/x509.h>

#include "raloop/attest/quote/verify.h"

#define RA_CRL_MEMO 8

typedef struct ra_crl_set {
  STACK_OF(X509_CRL) * crls;
  /* CRL signatures verified already, by (CRL, issuer certificate): a
   * verifier reusing its CRLs (or a collateral's) does not check the same
   * signature again for every quote. The issuer is compared by its full
   * DER (X509_cmp), so a look-alike issuer never hits. */
  struct ra_crl_memo {
    const X509_CRL *crl;
    X509 *issuer; /* a reference of its own */
  } memo[RA_CRL_MEMO];
  unsigned memo_next;
} ra_crl_set;

/* Returns 0 or -ENOMEM. */
int ra_crl_set_init(ra_crl_set *s);
void ra_crl_set_clear(ra_crl_set *s);

/* Adds the CRLs in data (DER: exactly one; PEM: one or more, every block a
 * CRL that parses), or none: -EINVAL. Returns the number added, -EINVAL,
 * -ENOMEM. */
int ra_crl_set_add(ra_crl_set *s, const uint8_t *data, size_t len);

/* Applies the CRLs of sets[0..nsets) (NULL entries skipped) whose issuer
 * is in the validated chain (leaf first): its signature by that issuer, its
 * validity at `at` (past nextUpdate accepted when allow_expired, recorded
 * in vd->collateral_expired), then revocation of the certificates that
 * issuer signed. Failures are recorded under check chk; returns false after
 * one. *uncovered: the CAs of the chain (all but the leaf) that no CRL
 * covered. For chk RA_CHECK_CRL it counts vd->crls_applied. */
bool ra_crls_apply(ra_crl_set *const *sets, int nsets, STACK_OF(X509) * chain, time_t at,
                   bool allow_expired, ra_check chk, ra_verdict *vd, int *uncovered);

/* RA_CHECK_CRL for the PCK chain with the verifier's set s and the
 * collateral's (extra, may be NULL): skipped when there are no CRLs and
 * none are required; otherwise passes only when every CA of the chain had
 * a CRL applied (RA_ERR_CRL_MISSING). */
void ra_crl_set_apply(ra_crl_set *s, ra_crl_set *extra, STACK_OF(X509) * chain,
                      time_t at, bool required, bool allow_expired, ra_verdict *vd);

/* A PCK leaf known by its bytes only (der.c): its subject and serial. */
typedef struct ra_crl_leaf {
  const X509_NAME *subject;
  const ASN1_INTEGER *serial;
} ra_crl_leaf;

/* ra_crl_set_apply for such a leaf issued by cas[0] (cas: the PCK CA and
 * the root, every one a CA to cover). A CRL naming the leaf as its issuer
 * fails here (the full path refuses it too, with its own message: callers
 * run ra_crl_set_apply on any failure). */
void ra_crl_set_apply_leaf(ra_crl_set *s, ra_crl_set *extra, STACK_OF(X509) * cas,
                           const ra_crl_leaf *leaf, time_t at, bool required, bool allow_expired,
                           ra_verdict *vd);

#endif
