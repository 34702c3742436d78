/* attest/quote/crl_internal.h: the verifier's CRL set: loaded all or
 * nothing, applied to a validated chain at a given time. Private to
 * attest/quote. */
#ifndef RA_ATTEST_CRL_INTERNAL_H
#define RA_ATTEST_CRL_INTERNAL_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include <openssl/x509.h>

#include "raloop/attest/quote/verify.h"

typedef struct ra_crl_set {
  STACK_OF(X509_CRL) * crls;
} ra_crl_set;

/* Returns 0 or -ENOMEM. */
int ra_crl_set_init(ra_crl_set *s);
void ra_crl_set_clear(ra_crl_set *s);

/* Adds the CRLs in data (DER: exactly one; PEM: one or more, every block a
 * CRL that parses), or none: -EINVAL. Returns the number added, -EINVAL,
 * -ENOMEM. */
int ra_crl_set_add(ra_crl_set *s, const uint8_t *data, size_t len);

/* Applies every CRL whose issuer is in the validated chain: its signature
 * by that issuer, its validity at `at`, then revocation of the certificates
 * that issuer signed. Records RA_CHECK_CRL and crls_applied in vd. */
void ra_crl_set_apply(const ra_crl_set *s, STACK_OF(X509) * chain, time_t at, ra_verdict *vd);

#endif
