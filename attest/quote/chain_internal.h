/* attest/quote/chain_internal.h: the pinned roots and the PCK chain check
 * (a path to a pinned root, Intel's shape, validity at a given time).
 * Private to attest/quote. */
#ifndef RA_ATTEST_CHAIN_INTERNAL_H
#define RA_ATTEST_CHAIN_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include <openssl/x509.h>

#include "raloop/attest/quote/verify.h"

/* The pinned roots, parsed once: a store to build paths with, and the
 * same certificates to compare a chain's own root with. */
typedef struct ra_roots {
  X509_STORE *store;
  STACK_OF(X509) * certs;
} ra_roots;

/* Returns 0 or -ENOMEM (r is then half made: ra_roots_clear it). */
int ra_roots_init(ra_roots *r);
void ra_roots_clear(ra_roots *r);

/* Pins every certificate in data (PEM or DER), each of which must be a
 * self-signed CA certificate, else -EINVAL and none is added. Returns the
 * number added, -EINVAL, -ENOMEM. */
int ra_roots_add(ra_roots *r, const uint8_t *data, size_t len);

/* Verifies the path leaf -> ... -> pinned root at time `at` (certs holds the
 * leaf and the rest of the chain as given) and Intel's shape leaf -> CA ->
 * root. Records RA_CHECK_CHAIN, chain_len and the root in vd. Returns the
 * validated chain (leaf first, root last; the caller frees it with
 * sk_X509_pop_free), or NULL after recording the failure. */
STACK_OF(X509) * ra_chain_check(const ra_roots *r, STACK_OF(X509) * certs, X509 *leaf, time_t at,
                                ra_verdict *vd);

/* Whether x (by its DER) is one of the pinned roots. */
bool ra_roots_has(const ra_roots *r, X509 *x);

/* The issuer chain of a signed collateral body (TCB info, QE identity):
 * leaf (the signing certificate, an end entity) -> pinned root at `at`.
 * Failures are recorded under chk as RA_ERR_COLLATERAL_SIGNATURE; `what`
 * names the body. Returns the validated chain (caller frees) or NULL. */
STACK_OF(X509) * ra_chain_check_signer(const ra_roots *r, STACK_OF(X509) * certs, X509 *leaf,
                                       time_t at, ra_check chk, const char *what,
                                       ra_verdict *vd);

#endif
