/* attest/quote/crl.c: the CRL set of a verifier. */
#include "raloop/attest/quote/crl_internal.h"

#include "raloop/attest/quote/verdict_internal.h"
#include "raloop/attest/quote/x509_internal.h"

#include <errno.h>
#include <stdbool.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>

int ra_crl_set_init(ra_crl_set *s) {
  s->crls = sk_X509_CRL_new_null();
  return s->crls ? 0 : -ENOMEM;
}

void ra_crl_set_clear(ra_crl_set *s) {
  for (int i = 0; i < RA_CRL_MEMO; i++) X509_free(s->memo[i].issuer);
  memset(s->memo, 0, sizeof s->memo);
  sk_X509_CRL_pop_free(s->crls, X509_CRL_free);
  s->crls = NULL;
}

static bool is_pem(const uint8_t *p, size_t len) {
  return memmem(p, len, "-----BEGIN ", 11) != NULL;
}

/* Occurrences of s in p[0..len). */
static int count_str(const uint8_t *p, size_t len, const char *s) {
  size_t sl = strlen(s);
  int n = 0;
  const uint8_t *e = p + len, *q;
  while ((q = memmem(p, (size_t)(e - p), s, sl))) {
    n++;
    p = q + sl;
  }
  return n;
}

/* Every PEM block must be a CRL that parses (other PEM blocks are refused
 * too). Returns 0, -EINVAL, -ENOMEM. */
static int parse_pem_crls(const uint8_t *data, size_t len, STACK_OF(X509_CRL) * got) {
  int blocks = count_str(data, len, "-----BEGIN ");
  BIO *b = BIO_new_mem_buf(data, (int)len);
  X509_CRL *c;
  if (!b) return -ENOMEM;
  while ((c = PEM_read_bio_X509_CRL(b, NULL, NULL, NULL))) {
    if (!sk_X509_CRL_push(got, c)) {
      X509_CRL_free(c);
      BIO_free(b);
      return -ENOMEM;
    }
  }
  BIO_free(b);
  if (sk_X509_CRL_num(got) != blocks || count_str(data, len, "-----BEGIN X509 CRL-----") != blocks)
    return -EINVAL;
  return 0;
}

/* Exactly one DER CRL, trailing whitespace/NULs aside. */
static int parse_der_crl(const uint8_t *data, size_t len, STACK_OF(X509_CRL) * got) {
  const uint8_t *p = data;
  X509_CRL *c = d2i_X509_CRL(NULL, &p, (long)len);
  if (!c) return -EINVAL;
  if (!sk_X509_CRL_push(got, c)) {
    X509_CRL_free(c);
    return -ENOMEM;
  }
  /* trailing bytes: not the one DER CRL this claims to be */
  for (; p < data + len; p++)
    if (*p != 0 && *p != ' ' && *p != '\n' && *p != '\r' && *p != '\t') return -EINVAL;
  return 0;
}

/* Moves every CRL of got into s, or none (-ENOMEM; got keeps them all). */
static int take_all(ra_crl_set *s, STACK_OF(X509_CRL) * got) {
  int n = sk_X509_CRL_num(got);
  for (int i = 0; i < n; i++)
    if (!sk_X509_CRL_push(s->crls, sk_X509_CRL_value(got, i))) {
      for (int j = 0; j < i; j++) (void)sk_X509_CRL_pop(s->crls);
      return -ENOMEM;
    }
  return 0;
}

/* All or nothing: a CRL that does not parse must not leave the others
 * applied as if the set were complete (a garbled second CRL in a PEM file
 * used to be dropped silently, and with it every revocation it lists). */
int ra_crl_set_add(ra_crl_set *s, const uint8_t *data, size_t len) {
  STACK_OF(X509_CRL) *got = sk_X509_CRL_new_null();
  int rc;
  if (!got) return -ENOMEM;
  rc = is_pem(data, len) ? parse_pem_crls(data, len, got) : parse_der_crl(data, len, got);
  if (!rc && sk_X509_CRL_num(got) == 0) rc = -EINVAL;
  if (!rc) rc = take_all(s, got);
  if (!rc) {
    int n = sk_X509_CRL_num(got);
    sk_X509_CRL_free(got); /* s owns the CRLs now */
    return n;
  }
  ERR_clear_error();
  sk_X509_CRL_pop_free(got, X509_CRL_free);
  return rc;
}

/* The certificate of the chain that issued crl (by name), NULL if none. */
static X509 *crl_issuer_in(X509_CRL *crl, STACK_OF(X509) * chain) {
  for (int j = 0; j < sk_X509_num(chain); j++)
    if (!X509_NAME_cmp(X509_CRL_get_issuer(crl), X509_get_subject_name(sk_X509_value(chain, j))))
      return sk_X509_value(chain, j);
  return NULL;
}

/* An issuer whose key usage excludes CRL signing cannot sign CRLs. */
static bool crl_signed_by(ra_crl_set *set, X509_CRL *crl, X509 *issuer) {
  for (int i = 0; i < RA_CRL_MEMO; i++)
    if (set->memo[i].crl == crl && !X509_cmp(set->memo[i].issuer, issuer)) return true;
  EVP_PKEY *k = X509_get0_pubkey(issuer);
  bool may_sign = !(X509_get_extension_flags(issuer) & EXFLAG_KUSAGE) ||
                  (X509_get_key_usage(issuer) & KU_CRL_SIGN);
  bool ok = k && may_sign && X509_CRL_verify(crl, k) == 1;
  ERR_clear_error();
  if (ok && X509_up_ref(issuer)) {
    struct ra_crl_memo *m = &set->memo[set->memo_next++ % RA_CRL_MEMO];
    X509_free(m->issuer);
    m->crl = crl;
    m->issuer = issuer;
  }
  return ok;
}

/* X509_cmp_time: -1 earlier or equal, 1 later, 0 on a time it cannot read
 * (that used to pass). A CRL without nextUpdate (RFC 5280 wants one;
 * Intel's have one) could be replayed forever: refused. Past nextUpdate
 * (only) passes when allow_expired, and the verdict records it. */
static bool crl_current(X509_CRL *crl, time_t at, const char *issuer, bool allow_expired,
                        ra_check chk, ra_verdict *vd) {
  const ASN1_TIME *last = X509_CRL_get0_lastUpdate(crl), *next = X509_CRL_get0_nextUpdate(crl);
  int cl = last ? X509_cmp_time(last, &at) : 0, cn = next ? X509_cmp_time(next, &at) : 0;
  if (cl == -1 && cn == 1) {
    ra_verdict_window(vd, ra_asn1_time_to_unix(last), ra_asn1_time_to_unix(next));
    return true;
  }
  if (cl == -1 && cn == -1 && allow_expired) {
    vd->collateral_expired = true;
    vd->valid_until = 0; /* already past: no window to reuse it in */
    return true;
  }
  ra_verdict_fail(vd, chk, RA_ERR_CRL_EXPIRED,
                  "CRL of %s is not valid at the verification time%s", issuer,
                  !next                  ? " (it has no nextUpdate)"
                  : (cl == 0 || cn == 0) ? " (unreadable time)"
                                         : "");
  return false;
}

/* Whether crl revokes a certificate of the chain that issuer signed (or
 * the leaf given apart, whose issuer is chain[0]). X509_CRL_get0_by_serial
 * matches at least what X509_CRL_get0_by_cert would for a leaf whose
 * issuer name is the CRL's. */
static bool revokes_any(X509_CRL *crl, X509 *issuer, STACK_OF(X509) * chain,
                        const ra_crl_leaf *leaf, const char *is, ra_check chk, ra_verdict *vd) {
  X509_REVOKED *lrev;
  if (leaf && issuer == sk_X509_value(chain, 0) &&
      X509_CRL_get0_by_serial(crl, &lrev, (ASN1_INTEGER *)leaf->serial) == 1) {
    ra_verdict_fail(vd, chk, RA_ERR_CERT_REVOKED, "the PCK leaf is revoked by the CRL of %s", is);
    return true;
  }
  for (int j = 0; j < sk_X509_num(chain); j++) {
    X509 *x = sk_X509_value(chain, j);
    X509_REVOKED *rev;
    if (x == issuer || X509_check_issued(issuer, x) != X509_V_OK) continue;
    if (X509_CRL_get0_by_cert(crl, &rev, x) == 1) {
      char cs[128];
      ra_cert_subject_line(x, cs, sizeof cs);
      ra_verdict_fail(vd, chk, RA_ERR_CERT_REVOKED, "%s is revoked by the CRL of %s", cs, is);
      return true;
    }
  }
  return false;
}

/* Applies one CRL; false once it failed the check. covered[j] is set when
 * the CRL is chain[j]'s and was applied. */
static bool apply_one(ra_crl_set *set, X509_CRL *crl, STACK_OF(X509) * chain,
                      const ra_crl_leaf *leaf, time_t at, bool allow_expired, ra_check chk,
                      ra_verdict *vd, bool *covered, int *applied) {
  X509 *issuer = crl_issuer_in(crl, chain);
  char s[128];
  /* a CRL naming the leaf as its issuer: the full path would refuse it as
   * not signed by the leaf; the caller takes that path */
  if (leaf && !X509_NAME_cmp(X509_CRL_get_issuer(crl), leaf->subject)) {
    ra_verdict_fail(vd, chk, RA_ERR_CRL_SIGNATURE, "a CRL claims the PCK leaf as its issuer");
    return false;
  }
  if (!issuer) return true; /* a CRL of another CA revokes nothing here */
  ra_cert_subject_line(issuer, s, sizeof s);
  if (!crl_signed_by(set, crl, issuer)) {
    ra_verdict_fail(vd, chk, RA_ERR_CRL_SIGNATURE, "CRL claiming issuer %s is not signed by it",
                    s);
    return false;
  }
  if (!crl_current(crl, at, s, allow_expired, chk, vd)) return false;
  (*applied)++;
  for (int j = 0; j < sk_X509_num(chain); j++)
    if (j <= RA_MAX_CHAIN_CERTS && sk_X509_value(chain, j) == issuer) covered[j] = true;
  return !revokes_any(crl, issuer, chain, leaf, s, chk, vd);
}

/* ra_crls_apply, with the leaf either chain[0] (leaf NULL) or given apart
 * (then every certificate of chain is a CA to cover). */
static bool crls_apply(ra_crl_set *const *sets, int nsets, STACK_OF(X509) * chain,
                       const ra_crl_leaf *leaf, time_t at, bool allow_expired, ra_check chk,
                       ra_verdict *vd, int *uncovered) {
  bool covered[RA_MAX_CHAIN_CERTS + 1] = {0};
  int n = sk_X509_num(chain), applied = 0;
  *uncovered = 0;
  if (n > RA_MAX_CHAIN_CERTS + 1) n = RA_MAX_CHAIN_CERTS + 1;
  for (int k = 0; k < nsets; k++) {
    if (!sets[k]) continue;
    for (int i = 0; i < sk_X509_CRL_num(sets[k]->crls); i++)
      if (!apply_one(sets[k], sk_X509_CRL_value(sets[k]->crls, i), chain, leaf, at,
                     allow_expired, chk, vd, covered, &applied))
        return false;
  }
  if (chk == RA_CHECK_CRL) vd->crls_applied += applied;
  /* every CA of the chain: all but the leaf (chain[0] unless given apart) */
  for (int j = leaf ? 0 : 1; j < n; j++)
    if (!covered[j]) (*uncovered)++;
  return true;
}

bool ra_crls_apply(ra_crl_set *const *sets, int nsets, STACK_OF(X509) * chain, time_t at,
                   bool allow_expired, ra_check chk, ra_verdict *vd, int *uncovered) {
  return crls_apply(sets, nsets, chain, NULL, at, allow_expired, chk, vd, uncovered);
}

/* RA_CHECK_CRL. No CRL anywhere and none required: skipped (signatures
 * only). Otherwise every CA of the chain must have had a CRL applied: a set
 * that covers none or only some of them is a failure, never a pass. */
static void crl_set_apply(ra_crl_set *s, ra_crl_set *extra, STACK_OF(X509) * chain,
                          const ra_crl_leaf *leaf, time_t at, bool required, bool allow_expired,
                          ra_verdict *vd) {
  ra_crl_set *sets[2] = {s, extra};
  int total = sk_X509_CRL_num(s->crls) + (extra ? sk_X509_CRL_num(extra->crls) : 0), uncovered;
  int cas = sk_X509_num(chain) - (leaf ? 0 : 1);
  if (total == 0 && !required) {
    ra_verdict_skip(vd, RA_CHECK_CRL);
    return;
  }
  if (!crls_apply(sets, 2, chain, leaf, at, allow_expired, RA_CHECK_CRL, vd, &uncovered)) return;
  if (uncovered) {
    ra_verdict_fail(vd, RA_CHECK_CRL, RA_ERR_CRL_MISSING,
                    "the CRLs cover %d of the %d CAs of the PCK chain%s", cas - uncovered, cas,
                    total == 0 ? " (none given; the collateral requires them)" : "");
    return;
  }
  ra_verdict_pass(vd, RA_CHECK_CRL);
}

void ra_crl_set_apply(ra_crl_set *s, ra_crl_set *extra, STACK_OF(X509) * chain, time_t at,
                      bool required, bool allow_expired, ra_verdict *vd) {
  crl_set_apply(s, extra, chain, NULL, at, required, allow_expired, vd);
}

void ra_crl_set_apply_leaf(ra_crl_set *s, ra_crl_set *extra, STACK_OF(X509) * cas,
                           const ra_crl_leaf *leaf, time_t at, bool required, bool allow_expired,
                           ra_verdict *vd) {
  crl_set_apply(s, extra, cas, leaf, at, required, allow_expired, vd);
}
