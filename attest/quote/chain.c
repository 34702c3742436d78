/* attest/quote/chain.c: pinned roots, and the PCK chain to one of them. */
#include "raloop/attest/quote/chain_internal.h"

#include "raloop/attest/quote/crypto_internal.h"
#include "raloop/attest/quote/der_internal.h"

#include "raloop/attest/quote/verdict_internal.h"
#include "raloop/attest/quote/x509_internal.h"

#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/x509v3.h>

int ra_roots_init(ra_roots *r) {
  r->store = X509_STORE_new();
  r->certs = sk_X509_new_null();
  r->der = NULL;
  return r->store && r->certs ? 0 : -ENOMEM;
}

void ra_roots_clear(ra_roots *r) {
  for (int i = 0; r->der && i < sk_X509_num(r->certs); i++) OPENSSL_free(r->der[i].p);
  free(r->der);
  X509_STORE_free(r->store);
  sk_X509_pop_free(r->certs, X509_free);
  r->store = NULL;
  r->certs = NULL;
  r->der = NULL;
}

/* Only self-signed CA certificates are roots: pinning a chain file or a
 * leaf by mistake is an error, not a store holding what only looks like
 * trust anchors. */
static bool all_self_signed_cas(STACK_OF(X509) * certs) {
  for (int i = 0; i < sk_X509_num(certs); i++) {
    X509 *x = sk_X509_value(certs, i);
    if (X509_check_ca(x) != 1 || X509_self_signed(x, 1) != 1) return false;
  }
  return true;
}

int ra_roots_add(ra_roots *r, const uint8_t *data, size_t len) {
  STACK_OF(X509) *certs = ra_certs_parse(NULL, data, len);
  if (!certs) return -EINVAL;
  int n = sk_X509_num(certs), have = sk_X509_num(r->certs);
  if (!all_self_signed_cas(certs)) { /* checked for all before any is added */
    sk_X509_pop_free(certs, X509_free);
    ERR_clear_error();
    return -EINVAL;
  }
  struct ra_root_der *der = realloc(r->der, (size_t)(have + n) * sizeof *der);
  if (!der) {
    sk_X509_pop_free(certs, X509_free);
    return -ENOMEM;
  }
  r->der = der;
  for (int i = 0; i < n; i++) {
    X509 *x = sk_X509_value(certs, i);
    uint8_t *enc = NULL;
    int elen = i2d_X509(x, &enc);
    /* r->certs takes over the stack's reference and the slot is cleared,
     * so that the error path frees only what r->certs does not own; the
     * store takes its own. */
    if (elen <= 0 || !sk_X509_push(r->certs, x)) {
      OPENSSL_free(enc);
      sk_X509_pop_free(certs, X509_free);
      ERR_clear_error();
      return -ENOMEM;
    }
    r->der[have + i] = (struct ra_root_der){enc, (size_t)elen};
    sk_X509_set(certs, i, NULL);
    if (!X509_STORE_add_cert(r->store, x)) {
      (void)sk_X509_pop(r->certs);
      X509_free(x);
      OPENSSL_free(enc);
      sk_X509_pop_free(certs, X509_free);
      ERR_clear_error();
      return -ENOMEM;
    }
  }
  sk_X509_free(certs);
  return n;
}

static bool is_pinned(const ra_roots *r, X509 *x) {
  for (int i = 0; i < sk_X509_num(r->certs); i++)
    if (!X509_cmp(x, sk_X509_value(r->certs, i))) return true;
  return false;
}

bool ra_roots_has(const ra_roots *r, X509 *x) { return x && is_pinned(r, x); }

X509 *ra_roots_find_der(const ra_roots *r, const uint8_t *der, size_t len) {
  for (int i = 0; r && r->certs && i < sk_X509_num(r->certs); i++) {
    X509 *x = sk_X509_value(r->certs, i);
    if (r->der[i].len == len && !memcmp(r->der[i].p, der, len) && X509_up_ref(x)) return x;
  }
  return NULL;
}

/* A root carried in the quote must be one we pinned: a look-alike root
 * (Intel's subject, another key) is refused by name, not silently ignored
 * because the store happened to hold the real one. */
static bool roots_given_are_pinned(const ra_roots *r, STACK_OF(X509) * certs, X509 *leaf,
                                   ra_check chk, int code, ra_verdict *vd) {
  for (int i = 0; i < sk_X509_num(certs); i++) {
    X509 *x = sk_X509_value(certs, i);
    if (x != leaf && ra_cert_self_issued(x) && !is_pinned(r, x)) {
      char s[128];
      ra_cert_subject_line(x, s, sizeof s);
      ra_verdict_fail(vd, chk, code,
                      "the chain's root %s is not a pinned root (same name, other key?)", s);
      return false;
    }
  }
  return true;
}

static int map_x509_error(int e) {
  switch (e) {
  case X509_V_ERR_CERT_HAS_EXPIRED:
    return RA_ERR_CERT_EXPIRED;
  case X509_V_ERR_CERT_NOT_YET_VALID:
    return RA_ERR_CERT_NOT_YET_VALID;
  case X509_V_ERR_CERT_SIGNATURE_FAILURE:
  case X509_V_ERR_UNABLE_TO_DECRYPT_CERT_SIGNATURE:
  case X509_V_ERR_UNABLE_TO_DECODE_ISSUER_PUBLIC_KEY:
    return RA_ERR_CHAIN_SIGNATURE;
  case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT:
  case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY:
  case X509_V_ERR_SELF_SIGNED_CERT_IN_CHAIN:
  case X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT:
  case X509_V_ERR_UNABLE_TO_VERIFY_LEAF_SIGNATURE:
  case X509_V_ERR_CERT_UNTRUSTED:
    return RA_ERR_ROOT_UNTRUSTED;
  default:
    return RA_ERR_CHAIN_INVALID;
  }
}

/* OpenSSL's RFC 5280 path validation from leaf to a pinned root at `at`.
 * Returns the validated chain, or NULL after recording why. */
static STACK_OF(X509) * validate_path(const ra_roots *r, STACK_OF(X509) * certs, X509 *leaf,
                                      time_t at, ra_check chk, const char *what,
                                      ra_verdict *vd) {
  STACK_OF(X509) *chain = NULL;
  X509_STORE_CTX *ctx = X509_STORE_CTX_new();
  if (!ctx || !X509_STORE_CTX_init(ctx, r->store, leaf, certs)) {
    ra_verdict_fail(vd, chk, RA_ERR_INTERNAL, "X509_STORE_CTX_init failed");
    goto out;
  }
  X509_STORE_CTX_set_time(ctx, 0, at);
  X509_STORE_CTX_set_depth(ctx, RA_MAX_CHAIN_CERTS);
  /* strict: a CA must say so in critical basicConstraints (by default
   * OpenSSL takes keyCertSign alone as a CA), key usage present on CAs,
   * key identifiers, no explicit EC parameters. Intel's certificates and
   * the sim's comply. */
  X509_STORE_CTX_set_flags(ctx, X509_V_FLAG_X509_STRICT);
  if (X509_verify_cert(ctx) != 1) {
    int e = X509_STORE_CTX_get_error(ctx), depth = X509_STORE_CTX_get_error_depth(ctx);
    X509 *bad = X509_STORE_CTX_get_current_cert(ctx);
    char s[128] = "?";
    if (bad) ra_cert_subject_line(bad, s, sizeof s);
    ra_verdict_fail(vd, chk, chk == RA_CHECK_CHAIN ? map_x509_error(e) : RA_ERR_COLLATERAL_SIGNATURE,
                    "%s chain: %s (depth %d, %s)", what, X509_verify_cert_error_string(e), depth,
                    s);
    goto out;
  }
  chain = X509_STORE_CTX_get1_chain(ctx);
  if (!chain) ra_verdict_fail(vd, chk, RA_ERR_INTERNAL, "out of memory");
out:
  X509_STORE_CTX_free(ctx);
  return chain;
}

/* Every certificate given must be on the validated path: a stray one (e.g.
 * an altered copy of the root the store then replaced) means the chain is
 * not what it claims to be. */
static bool all_on_path(STACK_OF(X509) * certs, STACK_OF(X509) * chain, ra_verdict *vd) {
  for (int i = 0; i < sk_X509_num(certs); i++) {
    X509 *x = sk_X509_value(certs, i);
    bool on_path = false;
    for (int j = 0; j < sk_X509_num(chain) && !on_path; j++)
      on_path = !X509_cmp(x, sk_X509_value(chain, j));
    if (!on_path) {
      char s[128];
      bool rootlike = !X509_NAME_cmp(X509_get_subject_name(x), X509_get_issuer_name(x));
      ra_cert_subject_line(x, s, sizeof s);
      ra_verdict_fail(vd, RA_CHECK_CHAIN, rootlike ? RA_ERR_ROOT_UNTRUSTED : RA_ERR_CHAIN_BROKEN,
                      "certificate %s is not on the path to the pinned root%s", s,
                      rootlike ? " (not a pinned root)" : "");
      return false;
    }
  }
  return true;
}

/* Intel's shape, and nothing else: PCK leaf -> PCK Platform/Processor CA ->
 * root. The leaf signs QE reports, so it must be an end entity whose key may
 * sign; a CA certificate (or the root itself, or a leaf hung directly under
 * the root) is not a PCK certificate. */
static bool has_pck_shape(STACK_OF(X509) * chain, X509 *leaf, ra_verdict *vd) {
  int n = sk_X509_num(chain);
  uint32_t xf = X509_get_extension_flags(leaf);
  const char *why = n != 3                     ? "the path is not leaf, CA, root"
                    : X509_check_ca(leaf) != 0 ? "the PCK leaf is a CA certificate"
                    : (xf & EXFLAG_KUSAGE) && !(X509_get_key_usage(leaf) & KU_DIGITAL_SIGNATURE)
                        ? "the PCK leaf's key usage excludes digitalSignature"
                        : NULL;
  if (why)
    ra_verdict_fail(vd, RA_CHECK_CHAIN, RA_ERR_CHAIN_INVALID, "PCK chain: %s (%d certificates)",
                    why, n);
  return !why;
}

/* The root a path of len certificates ended at, for the verdict: subject
 * and fingerprint. */
static bool record_root_of(X509 *root, int len, ra_verdict *vd) {
  unsigned mdlen = 0;
  vd->chain_len = len;
  ra_cert_subject_line(root, vd->root_subject, sizeof vd->root_subject);
  if (X509_digest(root, EVP_sha256(), vd->root_sha256, &mdlen) != 1 || mdlen != 32) {
    ra_verdict_fail(vd, RA_CHECK_CHAIN, RA_ERR_INTERNAL, "cannot fingerprint the root");
    return false;
  }
  return true;
}

static bool record_root(STACK_OF(X509) * chain, ra_verdict *vd) {
  int n = sk_X509_num(chain);
  return record_root_of(sk_X509_value(chain, n - 1), n, vd);
}

/* ---- validated paths to reuse (ra_chain_memo) ---- */

static void memo_entry_clear(struct ra_chain_memo_entry *e) {
  sk_X509_pop_free(e->certs, X509_free);
  sk_X509_pop_free(e->validated, X509_free);
  memset(e, 0, sizeof *e);
}

static void ca_entry_clear(struct ra_ca_memo_entry *e) {
  X509_free(e->ca);
  sk_X509_pop_free(e->path, X509_free);
  memset(e, 0, sizeof *e);
}

static void leaf_entry_clear(struct ra_leaf_memo_entry *e) {
  free(e->der);
  X509_free(e->ca);
  memset(e, 0, sizeof *e);
}

void ra_chain_memo_clear(ra_chain_memo *m) {
  for (int i = 0; i < RA_CHAIN_MEMO; i++) {
    memo_entry_clear(&m->e[i]);
    ca_entry_clear(&m->ca[i]);
    leaf_entry_clear(&m->leaves[i]);
  }
  m->next = m->ca_next = m->leaves_next = 0;
}

/* The common window of certificates [from, n) of chain; false when a time
 * cannot be read. */
static bool chain_window(STACK_OF(X509) * chain, int from, time_t *vf, time_t *vt) {
  *vf = 0;
  *vt = (time_t)INT64_MAX;
  for (int i = from; i < sk_X509_num(chain); i++) {
    X509 *x = sk_X509_value(chain, i);
    time_t nb = ra_asn1_time_to_unix(X509_get0_notBefore(x)),
           na = ra_asn1_time_to_unix(X509_get0_notAfter(x));
    if (!nb || !na) return false;
    if (nb > *vf) *vf = nb;
    if (na < *vt) *vt = na;
  }
  return true;
}

/* Extensions of an issuer that constrain what it issues beyond the
 * signature (names, policies): a path with any is never split. */
static bool constrains(X509 *x) {
  static const int nids[] = {NID_name_constraints, NID_policy_constraints, NID_inhibit_any_policy,
                             NID_policy_mappings};
  for (size_t i = 0; i < sizeof nids / sizeof nids[0]; i++)
    if (X509_get_ext_by_NID(x, nids[i], -1) >= 0) return true;
  return false;
}

/* Remembers the CA half (chain[1..]) of a validated PCK path. */
static void ca_memo_put(ra_chain_memo *m, const ra_roots *r, STACK_OF(X509) * chain) {
  time_t vf, vt;
  X509 *ca = sk_X509_num(chain) == 3 ? sk_X509_value(chain, 1) : NULL;
  if (!ca || !chain_window(chain, 1, &vf, &vt)) return;
  for (int i = 1; i < 3; i++)
    if (constrains(sk_X509_value(chain, i))) return;
  for (int i = 0; i < RA_CHAIN_MEMO; i++) /* already there */
    if (m->ca[i].ca == ca && m->ca[i].n_roots == sk_X509_num(r->certs)) return;
  struct ra_ca_memo_entry *e = &m->ca[m->ca_next++ % RA_CHAIN_MEMO];
  ca_entry_clear(e);
  STACK_OF(X509) *path = sk_X509_new_null();
  for (int i = 1; path && i < 3; i++) {
    X509 *x = sk_X509_value(chain, i);
    if (!X509_up_ref(x)) break;
    if (!sk_X509_push(path, x)) {
      X509_free(x);
      break;
    }
  }
  if (!path || sk_X509_num(path) != 2 || !X509_up_ref(ca)) {
    sk_X509_pop_free(path, X509_free);
    return;
  }
  X509 *root = sk_X509_value(path, 1);
  unsigned mdlen = 0;
  if (X509_digest(root, EVP_sha256(), e->root_sha256, &mdlen) != 1 || mdlen != 32) {
    sk_X509_pop_free(path, X509_free);
    X509_free(ca);
    return;
  }
  ra_cert_subject_line(root, e->root_subject, sizeof e->root_subject);
  for (int i = 0; i < 2; i++) {
    X509 *x = sk_X509_value(path, i);
    e->nb[i] = ra_asn1_time_to_unix(X509_get0_notBefore(x));
    e->na[i] = ra_asn1_time_to_unix(X509_get0_notAfter(x));
  }
  e->ca = ca;
  e->path = path;
  e->valid_from = vf;
  e->valid_to = vt;
  e->n_roots = sk_X509_num(r->certs);
}

/* A leaf under a CA whose path was validated before: X509_verify_cert with
 * that CA as the only anchor (the leaf's signature, validity, extensions,
 * strict), then the CA's remembered path appended. NULL when there is no
 * such CA or the leaf does not validate under it (the caller then runs the
 * full validation, which gives the failure its code and message). */
static STACK_OF(X509) * leaf_under_known_ca(const ra_chain_memo *m, const ra_roots *r,
                                           STACK_OF(X509) * certs, X509 *leaf, time_t at) {
  const struct ra_ca_memo_entry *e = NULL;
  for (int i = 0; m && i < RA_CHAIN_MEMO && !e; i++) {
    const struct ra_ca_memo_entry *c = &m->ca[i];
    if (!c->ca || c->n_roots != sk_X509_num(r->certs) || at < c->valid_from || at >= c->valid_to)
      continue;
    for (int j = 0; j < sk_X509_num(certs); j++)
      if (sk_X509_value(certs, j) == c->ca && X509_check_issued(c->ca, leaf) == X509_V_OK) {
        e = c;
        break;
      }
  }
  if (!e) return NULL;
  STACK_OF(X509) *chain = NULL, *got = NULL;
  X509_STORE *st = X509_STORE_new();
  X509_STORE_CTX *ctx = X509_STORE_CTX_new();
  if (!st || !ctx || !X509_STORE_add_cert(st, e->ca) || !X509_STORE_CTX_init(ctx, st, leaf, NULL))
    goto out;
  X509_STORE_CTX_set_time(ctx, 0, at);
  X509_STORE_CTX_set_depth(ctx, RA_MAX_CHAIN_CERTS);
  X509_STORE_CTX_set_flags(ctx, X509_V_FLAG_X509_STRICT | X509_V_FLAG_PARTIAL_CHAIN);
  if (X509_verify_cert(ctx) != 1 || !(got = X509_STORE_CTX_get1_chain(ctx)) ||
      sk_X509_num(got) != 2 || sk_X509_value(got, 0) != leaf || sk_X509_value(got, 1) != e->ca)
    goto out;
  chain = X509_chain_up_ref(got); /* leaf, ca */
  X509 *root = sk_X509_value(e->path, 1);
  if (chain && X509_up_ref(root)) {
    if (!sk_X509_push(chain, root)) {
      X509_free(root);
      sk_X509_pop_free(chain, X509_free);
      chain = NULL;
    }
  } else {
    sk_X509_pop_free(chain, X509_free);
    chain = NULL;
  }
out:
  sk_X509_pop_free(got, X509_free);
  X509_STORE_CTX_free(ctx);
  X509_STORE_free(st);
  ERR_clear_error();
  return chain;
}

static bool same_certs(STACK_OF(X509) * a, STACK_OF(X509) * b) {
  if (sk_X509_num(a) != sk_X509_num(b)) return false;
  for (int i = 0; i < sk_X509_num(a); i++)
    if (sk_X509_value(a, i) != sk_X509_value(b, i)) return false;
  return true;
}

/* The validated path of exactly these objects, when `at` is inside its
 * window and the pinned roots are the same; a new reference, or NULL. */
static STACK_OF(X509) * memo_find(const ra_chain_memo *m, const ra_roots *r,
                                  STACK_OF(X509) * certs, X509 *leaf, time_t at) {
  for (int i = 0; m && i < RA_CHAIN_MEMO; i++) {
    const struct ra_chain_memo_entry *e = &m->e[i];
    if (e->validated && e->leaf == leaf && e->n_roots == sk_X509_num(r->certs) &&
        at >= e->valid_from && at < e->valid_to && same_certs(e->certs, certs))
      return X509_chain_up_ref(e->validated);
  }
  return NULL;
}

/* Remembers a path X509_verify_cert validated at some time; out of memory
 * only means no memo. */
static void memo_put(ra_chain_memo *m, const ra_roots *r, STACK_OF(X509) * certs, X509 *leaf,
                     STACK_OF(X509) * chain) {
  time_t from = 0, to = (time_t)INT64_MAX;
  for (int i = 0; i < sk_X509_num(chain); i++) {
    X509 *x = sk_X509_value(chain, i);
    time_t nb = ra_asn1_time_to_unix(X509_get0_notBefore(x)),
           na = ra_asn1_time_to_unix(X509_get0_notAfter(x));
    if (!nb || !na) return; /* unreadable here: never reuse */
    if (nb > from) from = nb;
    if (na < to) to = na;
  }
  struct ra_chain_memo_entry *e = &m->e[m->next++ % RA_CHAIN_MEMO];
  memo_entry_clear(e);
  e->certs = X509_chain_up_ref(certs);
  e->validated = X509_chain_up_ref(chain);
  if (!e->certs || !e->validated) {
    memo_entry_clear(e);
    return;
  }
  e->leaf = leaf;
  e->valid_from = from;
  e->valid_to = to;
  e->n_roots = sk_X509_num(r->certs);
}

STACK_OF(X509) * ra_chain_check(const ra_roots *r, ra_chain_memo *memo, STACK_OF(X509) * certs,
                                X509 *leaf, time_t at, ra_verdict *vd) {
  STACK_OF(X509) *chain = NULL;
  bool hit = false;
  if (roots_given_are_pinned(r, certs, leaf, RA_CHECK_CHAIN, RA_ERR_ROOT_UNTRUSTED, vd)) {
    chain = memo_find(memo, r, certs, leaf, at);
    hit = chain != NULL;
    if (!chain) chain = leaf_under_known_ca(memo, r, certs, leaf, at);
    if (!chain) {
      chain = validate_path(r, certs, leaf, at, RA_CHECK_CHAIN, "PCK", vd);
      if (chain && memo && sk_X509_num(chain) == 3) ca_memo_put(memo, r, chain);
    }
  }
  if (chain && !(all_on_path(certs, chain, vd) && has_pck_shape(chain, leaf, vd) &&
                 record_root(chain, vd))) {
    sk_X509_pop_free(chain, X509_free);
    chain = NULL;
  }
  if (chain) {
    if (memo && !hit) memo_put(memo, r, certs, leaf, chain);
    for (int i = 0; i < sk_X509_num(chain); i++) {
      X509 *x = sk_X509_value(chain, i);
      ra_verdict_window(vd, ra_asn1_time_to_unix(X509_get0_notBefore(x)),
                        ra_asn1_time_to_unix(X509_get0_notAfter(x)));
    }
    ra_verdict_pass(vd, RA_CHECK_CHAIN);
  }
  ERR_clear_error();
  return chain;
}

STACK_OF(X509) * ra_chain_check_signer(const ra_roots *r, STACK_OF(X509) * certs, X509 *leaf,
                                       time_t at, ra_check chk, const char *what,
                                       ra_verdict *vd) {
  STACK_OF(X509) *chain = NULL;
  if (roots_given_are_pinned(r, certs, leaf, chk, RA_ERR_COLLATERAL_SIGNATURE, vd))
    chain = validate_path(r, certs, leaf, at, chk, what, vd);
  /* a signing certificate is an end entity under the root: leaf, root */
  if (chain && (sk_X509_num(chain) != 2 || X509_check_ca(leaf) != 0)) {
    ra_verdict_fail(vd, chk, RA_ERR_COLLATERAL_SIGNATURE,
                    "%s issuer chain is not signing certificate, root", what);
    sk_X509_pop_free(chain, X509_free);
    chain = NULL;
  }
  ERR_clear_error();
  return chain;
}

/* ---- a PCK leaf read by der.c (no X509 object) ---- */

/* The remembered CA path of ca ending at root, valid at `at` under the
 * same pinned roots; NULL when there is none. */
static const struct ra_ca_memo_entry *ca_path_for(const ra_chain_memo *m, const ra_roots *r,
                                                  X509 *ca, X509 *root, time_t at) {
  for (int i = 0; m && i < RA_CHAIN_MEMO; i++) {
    const struct ra_ca_memo_entry *c = &m->ca[i];
    if (c->ca == ca && c->n_roots == sk_X509_num(r->certs) && at >= c->valid_from &&
        at < c->valid_to && sk_X509_value(c->path, 1) == root)
      return c;
  }
  return NULL;
}

/* What X509_check_issued(ca, leaf) and X509_verify_cert's strict checks of
 * the pair ask, on the bytes der.c read, and no less: the issuer name byte
 * for byte the CA's subject (OpenSSL compares canonical forms, which equal
 * bytes imply), the leaf's authority key id the CA's subject key id, a CA
 * that may sign certificates with a P-256 key, the root's name not the
 * CA's (so no other certificate of the path could have issued the leaf). */
static bool leaf_fits_ca(X509 *ca, X509 *root, const ra_pck_leaf *leaf) {
  const uint8_t *nder = NULL;
  size_t nlen = 0;
  const ASN1_OCTET_STRING *skid = X509_get0_subject_key_id(ca);
  uint32_t xf = X509_get_extension_flags(ca);
  return X509_NAME_get0_der(X509_get_subject_name(ca), &nder, &nlen) == 1 &&
         nlen == leaf->issuer.len && !memcmp(nder, leaf->issuer.p, nlen) && skid &&
         (size_t)ASN1_STRING_length(skid) == leaf->akid.len &&
         !memcmp(ASN1_STRING_get0_data(skid), leaf->akid.p, leaf->akid.len) &&
         !(xf & EXFLAG_INVALID) &&
         (!(xf & EXFLAG_KUSAGE) || (X509_get_key_usage(ca) & KU_KEY_CERT_SIGN)) &&
         X509_NAME_cmp(X509_get_subject_name(root), X509_get_subject_name(ca)) != 0 &&
         ra_is_p256(X509_get0_pubkey(ca));
}

/* Whether the leaf with exactly these bytes verified under ca before. */
static bool leaf_signature_known(const ra_chain_memo *m, X509 *ca, const uint8_t *der,
                                 size_t len) {
  for (int i = 0; i < RA_CHAIN_MEMO; i++) {
    const struct ra_leaf_memo_entry *e = &m->leaves[i];
    if (e->ca == ca && e->len == len && !memcmp(e->der, der, len)) return true;
  }
  return false;
}

/* Remembers a verified leaf signature; out of memory only means no memo. */
static void leaf_signature_put(ra_chain_memo *m, X509 *ca, const uint8_t *der, size_t len) {
  uint8_t *copy = malloc(len);
  if (!copy || !X509_up_ref(ca)) {
    free(copy);
    return;
  }
  struct ra_leaf_memo_entry *e = &m->leaves[m->leaves_next++ % RA_CHAIN_MEMO];
  leaf_entry_clear(e);
  memcpy(copy, der, len);
  e->der = copy;
  e->len = len;
  e->ca = ca;
}

static bool leaf_signed_by(ra_chain_memo *m, X509 *ca, const uint8_t *der, size_t len,
                           const ra_pck_leaf *leaf, bool remember) {
  if (remember && leaf_signature_known(m, ca, der, len)) return true;
  if (!ra_ecdsa_p256_verify(X509_get0_pubkey(ca), leaf->tbs.p, leaf->tbs.len, leaf->sig))
    return false;
  if (remember) leaf_signature_put(m, ca, der, len);
  return true;
}

STACK_OF(X509) * ra_chain_check_leaf(const ra_roots *r, ra_chain_memo *m, X509 *ca, X509 *root,
                                     const uint8_t *der, size_t len, const ra_pck_leaf *leaf,
                                     time_t at, bool remember, ra_verdict *vd) {
  const struct ra_ca_memo_entry *e = ca_path_for(m, r, ca, root, at);
  if (!e || at < leaf->not_before || at >= leaf->not_after || !leaf_fits_ca(ca, root, leaf) ||
      !leaf_signed_by(m, ca, der, len, leaf, remember)) {
    ERR_clear_error();
    return NULL;
  }
  STACK_OF(X509) *path = X509_chain_up_ref(e->path);
  if (!path) {
    ERR_clear_error();
    return NULL;
  }
  /* what record_root and ra_chain_check record, computed when the path
   * was remembered */
  vd->chain_len = 3;
  memcpy(vd->root_subject, e->root_subject, sizeof vd->root_subject);
  memcpy(vd->root_sha256, e->root_sha256, 32);
  ra_verdict_window(vd, leaf->not_before, leaf->not_after);
  for (int i = 0; i < 2; i++) ra_verdict_window(vd, e->nb[i], e->na[i]);
  ra_verdict_pass(vd, RA_CHECK_CHAIN);
  return path;
}
