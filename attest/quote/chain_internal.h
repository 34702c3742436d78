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
  /* certs[i]'s DER, encoded once when pinned: ra_roots_find_der (every
   * quote's chain) compares bytes instead of encoding each root again. */
  struct ra_root_der {
    uint8_t *p;
    size_t len;
  } *der;
} ra_roots;

/* Returns 0 or -ENOMEM (r is then half made: ra_roots_clear it). */
int ra_roots_init(ra_roots *r);
void ra_roots_clear(ra_roots *r);

/* Pins every certificate in data (PEM or DER), each of which must be a
 * self-signed CA certificate, else -EINVAL and none is added. Returns the
 * number added, -EINVAL, -ENOMEM. */
int ra_roots_add(ra_roots *r, const uint8_t *data, size_t len);

/* Paths validated before, for a verifier whose certificate cache is on
 * (warm): the validated chain of exactly these certificate objects (the
 * cache hands out the same object for the same DER bytes, and the memo
 * holds a reference to each, so an address is never reused while it is
 * here), valid for a time inside the window where every certificate of the
 * path is valid (notBefore <= at < notAfter, as X509_verify_cert), and
 * only while the pinned roots are the ones it was validated with. A hit
 * skips X509_verify_cert (its signatures and path building), nothing else:
 * the shape, on-path and pinned-root checks run again. */
#define RA_CHAIN_MEMO 4
typedef struct ra_chain_memo {
  struct ra_chain_memo_entry {
    STACK_OF(X509) * certs;     /* the input, references of its own */
    X509 *leaf;
    STACK_OF(X509) * validated; /* leaf first, root last */
    time_t valid_from, valid_to; /* valid_from <= at < valid_to */
    int n_roots;                /* the pinned roots it was validated with */
  } e[RA_CHAIN_MEMO];
  unsigned next;
  /* The CA halves of those paths (PCK CA -> root, by the CA object): a new
   * leaf under a CA validated before is checked alone (its signature,
   * validity and extensions, with that CA as the anchor) and the CA's path
   * is reused while `at` is inside its window and the roots are the same;
   * never for paths with name or policy constraints (which would bear on
   * the leaf). "Decode the pinned root and intermediates once per
   * verifier" (issue 18). */
  struct ra_ca_memo_entry {
    X509 *ca;                  /* a reference of its own */
    STACK_OF(X509) * path;     /* ca first, root last */
    time_t valid_from, valid_to;
    int n_roots;
    /* the root as the verdict names it, and the windows of the path
     * (ra_chain_check_leaf records them without computing them again) */
    char root_subject[128];
    uint8_t root_sha256[32];
    time_t nb[2], na[2];
  } ca[RA_CHAIN_MEMO];
  unsigned ca_next;
  /* PCK leaves read by der.c whose signature by a CA verified (a pure
   * fact of the leaf's bytes and the CA's key): by the leaf's exact DER
   * and the CA object. Kept only when `remember` is asked (a verifier with
   * the whole cache on: a platform's later quotes skip that ECDSA
   * verification; its time checks run every time). */
  struct ra_leaf_memo_entry {
    uint8_t *der;
    size_t len;
    X509 *ca; /* a reference of its own; NULL: empty */
  } leaves[RA_CHAIN_MEMO];
  unsigned leaves_next;
} ra_chain_memo;

void ra_chain_memo_clear(ra_chain_memo *m);

/* Verifies the path leaf -> ... -> pinned root at time `at` (certs holds the
 * leaf and the rest of the chain as given) and Intel's shape leaf -> CA ->
 * root. Records RA_CHECK_CHAIN, chain_len and the root in vd. Returns the
 * validated chain (leaf first, root last; the caller frees it with
 * sk_X509_pop_free), or NULL after recording the failure. memo (may be
 * NULL): validated paths to reuse and to remember (see ra_chain_memo). */
STACK_OF(X509) * ra_chain_check(const ra_roots *r, ra_chain_memo *memo, STACK_OF(X509) * certs,
                                X509 *leaf, time_t at, ra_verdict *vd);

/* Whether x (by its DER) is one of the pinned roots. */
bool ra_roots_has(const ra_roots *r, X509 *x);

/* A new reference to the pinned root whose DER is exactly der[0..len),
 * NULL when none is. */
X509 *ra_roots_find_der(const ra_roots *r, const uint8_t *der, size_t len);

/* RA_CHECK_CHAIN for a PCK leaf read by der.c (der_internal.h) under ca,
 * a PCK CA whose validated path to root (a pinned root) memo holds for
 * `at` (ca_memo, filled by ra_chain_check): what the full check asks of
 * the leaf (its signature by ca, its validity, the issuer, Intel's shape;
 * the leaf reader checked the rest), without decoding it. der[0..len) is
 * the leaf's DER (leaf was read from it); remember: keep the verified
 * signature in m->leaves, and skip verifying it when found there. Returns the CA
 * path (ca, root: the caller frees it with sk_X509_pop_free) after
 * recording the pass, chain_len, the root and the windows in vd; NULL when
 * something does not fit, with nothing recorded: the caller then runs
 * ra_chain_check, which names the failure. */
struct ra_pck_leaf;
STACK_OF(X509) * ra_chain_check_leaf(const ra_roots *r, ra_chain_memo *m, X509 *ca, X509 *root,
                                     const uint8_t *der, size_t len,
                                     const struct ra_pck_leaf *leaf, time_t at, bool remember,
                                     ra_verdict *vd);

/* The issuer chain of a signed collateral body (TCB info, QE identity):
 * leaf (the signing certificate, an end entity) -> pinned root at `at`.
 * Failures are recorded under chk as RA_ERR_COLLATERAL_SIGNATURE; `what`
 * names the body. Returns the validated chain (caller frees) or NULL. */
STACK_OF(X509) * ra_chain_check_signer(const ra_roots *r, STACK_OF(X509) * certs, X509 *leaf,
                                       time_t at, ra_check chk, const char *what,
                                       ra_verdict *vd);

#endif
