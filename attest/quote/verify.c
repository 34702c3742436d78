/* attest/quote/verify.c: the verifier (pinned roots, CRLs, certificate
 * cache) and the verification itself: runs the checks in RA_CHECK_* order
 * and fills the verdict. The checks live in their own modules: x509.c
 * (decoding), chain.c, crl.c, qe.c, crypto.c, policy.c. */
#include "raloop/attest/quote/verify.h"

#include "raloop/attest/quote/chain_internal.h"
#include "raloop/attest/quote/collateral_internal.h"
#include "raloop/attest/quote/crl_internal.h"
#include "raloop/attest/quote/crypto_internal.h"
#include "raloop/attest/quote/der_internal.h"
#include "raloop/attest/quote/identity_internal.h"
#include "raloop/attest/quote/policy_internal.h"
#include "raloop/attest/quote/qe_internal.h"
#include "raloop/attest/quote/verdict_internal.h"
#include "raloop/attest/quote/x509_internal.h"
#include "raloop/core/file.h"

#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/objects.h>

/* Intel's QE vendor id, 939a7233-f79c-4ca9-940a-0db3957f0607 */
static const uint8_t INTEL_QE_VENDOR[16] = {0x93, 0x9a, 0x72, 0x33, 0xf7, 0x9c, 0x4c, 0xa9,
                                            0x94, 0x0a, 0x0d, 0xb3, 0x95, 0x7f, 0x06, 0x07};

struct ra_verifier {
  ra_roots roots;
  ra_crl_set crls;
  ra_cert_cache cache;
  ra_chain_memo paths; /* with the cache on: PCK paths validated before */
  ra_qe_sig_memo qe_sigs; /* with the cache on (not CA-only): QE report signatures */
  /* with the cache on: the last attestation key (x||y) as an EVP_PKEY */
  uint8_t att_xy[64];
  EVP_PKEY *att;
  ASN1_OBJECT *sgx_ext_oid;
  uint8_t config_id[32]; /* identity_internal.h */
  unsigned der_leaves;   /* PCK leaves checked by check_pck_der (tests) */
  /* The subject of the last PCK leaf read by der.c, decoded (for the CRL
   * checks): every PCK leaf of a CA has the same one ("Intel SGX PCK
   * Certificate", ...), so a new platform's leaf rarely needs it decoded. */
  uint8_t *leaf_subject_der;
  size_t leaf_subject_len;
  X509_NAME *leaf_subject;
};

unsigned ra_verifier_der_leaves(const ra_verifier *v) { return v->der_leaves; }

/* Chains what was added into the configuration identity. */
static void config_note(ra_verifier *v, const char *kind, const uint8_t *data, size_t len) {
  ra_hash_part p[3] = {{v->config_id, 32}, {(const uint8_t *)kind, strlen(kind) + 1}, {data, len}};
  ra_hash_parts(EVP_sha256(), p, 3, v->config_id);
}

const uint8_t *ra_verifier_config_id(const ra_verifier *v) { return v->config_id; }

/* ---- names ---- */

const char *ra_check_name(ra_check c) {
  static const char *const n[RA_CHECK__COUNT] = {
      "parse",           "chain", "crl",          "pck_extension", "qe_signature", "qe_report_data",
      "quote_signature", "debug", "measurements", "binding",       "callback",
      "collateral",      "qe_identity", "tcb_level", "tcb_status", "td_attributes",
  };
  return (unsigned)c < RA_CHECK__COUNT ? n[c] : "?";
}

const char *ra_check_status_name(ra_check_status s) {
  switch (s) {
  case RA_CHECK_PASS:
    return "pass";
  case RA_CHECK_FAIL:
    return "fail";
  case RA_CHECK_SKIPPED:
    return "skipped";
  default:
    return "not_run";
  }
}

void ra_verdict_fail(ra_verdict *vd, ra_check c, int code, const char *fmt, ...) {
  vd->checks[c] = RA_CHECK_FAIL;
  if (vd->err) return;
  vd->err = code;
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(vd->msg, sizeof vd->msg, fmt, ap);
  va_end(ap);
}

/* ---- verifier ---- */

void ra_verifier_free(ra_verifier *v) {
  if (!v) return;
  ra_roots_clear(&v->roots);
  ra_crl_set_clear(&v->crls);
  ra_cert_cache_clear(&v->cache);
  ra_chain_memo_clear(&v->paths);
  ra_qe_sig_memo_clear(&v->qe_sigs);
  EVP_PKEY_free(v->att);
  ASN1_OBJECT_free(v->sgx_ext_oid);
  X509_NAME_free(v->leaf_subject);
  free(v->leaf_subject_der);
  free(v);
}

int ra_verifier_new(unsigned flags, ra_verifier **out) {
  ra_verifier *v = calloc(1, sizeof *v);
  *out = NULL;
  if (!v) return -ENOMEM;
  v->cache.off = (flags & RA_VERIFIER_NO_CERT_CACHE) != 0;
  v->cache.ca_only = (flags & RA_VERIFIER_CACHE_CA_ONLY) != 0;
  v->cache.pinned = &v->roots;
  v->sgx_ext_oid = OBJ_txt2obj(RA_PCK_SGX_EXT_OID, 1);
  if (ra_roots_init(&v->roots) || ra_crl_set_init(&v->crls) || !v->sgx_ext_oid) goto nomem;
  if (!(flags & RA_VERIFIER_NO_DEFAULT_ROOT) &&
      ra_verifier_add_root(v, (const uint8_t *)ra_intel_sgx_root_ca_pem,
                           strlen(ra_intel_sgx_root_ca_pem)) != 1)
    goto nomem;
  *out = v;
  return 0;
nomem:
  ra_verifier_free(v);
  return -ENOMEM;
}

int ra_verifier_add_root(ra_verifier *v, const uint8_t *data, size_t len) {
  if (!v || !data || len == 0 || len > INT_MAX) return -EINVAL;
  int rc = ra_roots_add(&v->roots, data, len);
  if (rc > 0) config_note(v, "root", data, len);
  return rc;
}

/* Collateral files (PEM or DER) are read whole, then handed to an adder. */
static int add_file(ra_verifier *v, const char *path,
                    int (*add)(ra_verifier *, const uint8_t *, size_t)) {
  uint8_t *b;
  size_t n;
  int rc = ra_file_read(path, 64u << 20, &b, &n);
  if (rc) return rc;
  rc = add(v, b, n);
  free(b);
  return rc;
}

int ra_verifier_add_root_file(ra_verifier *v, const char *path) {
  return add_file(v, path, ra_verifier_add_root);
}

int ra_verifier_add_crl(ra_verifier *v, const uint8_t *data, size_t len) {
  if (!v || !data || len == 0 || len > INT_MAX) return -EINVAL;
  int rc = ra_crl_set_add(&v->crls, data, len);
  if (rc > 0) config_note(v, "crl", data, len);
  return rc;
}

int ra_verifier_add_crl_file(ra_verifier *v, const char *path) {
  return add_file(v, path, ra_verifier_add_crl);
}

/* ---- the checks, in order ---- */

/* RA_CHECK_PARSE: the quote parses and comes from Intel's QE. Without it
 * nothing else can run. */
static bool check_parse(ra_quote *q, const uint8_t *buf, size_t len, ra_verdict *vd) {
  int rc = ra_quote_parse(buf, len, q);
  if (rc) {
    ra_verdict_fail(vd, RA_CHECK_PARSE, rc, "%s", ra_strerror(rc));
    return false;
  }
  vd->tee_type = q->tee_type;
  vd->version = q->version;
  vd->debug = ra_quote_is_debug(q);
  if (!ra_ct_equal(q->qe_vendor_id, INTEL_QE_VENDOR, 16)) {
    ra_verdict_fail(vd, RA_CHECK_PARSE, RA_ERR_QE_VENDOR, "QE vendor id is not Intel's");
    return false;
  }
  ra_verdict_pass(vd, RA_CHECK_PARSE);
  return true;
}

/* The PCK certificates: the caller's chain when given, else the quote's.
 * NULL after recording why there are none. */
static STACK_OF(X509) * load_pck_certs(ra_verifier *v, const ra_quote *q,
                                       const ra_verify_opts *opts, ra_verdict *vd) {
  STACK_OF(X509) *certs = NULL;
  if (opts && opts->pck_chain && opts->pck_chain_len) {
    certs = ra_certs_parse(&v->cache, opts->pck_chain, opts->pck_chain_len);
    if (!certs)
      ra_verdict_fail(vd, RA_CHECK_CHAIN, RA_ERR_CERT_PARSE,
                      "the supplied PCK chain does not parse");
  } else if (q->cert_type == RA_CERT_PCK_CHAIN) {
    vd->chain_from_quote = true;
    certs = ra_certs_parse(&v->cache, q->cert_data.bytes, q->cert_data.len);
    if (!certs)
      ra_verdict_fail(vd, RA_CHECK_CHAIN, RA_ERR_CERT_PARSE,
                      "the quote's PCK chain does not parse");
  } else {
    ra_verdict_fail(vd, RA_CHECK_CHAIN, RA_ERR_NO_PCK_CHAIN,
                    "certification data type %u carries no PCK chain; supply one", q->cert_type);
  }
  return certs;
}

/* RA_CHECK_PCK_EXT: the leaf carries the SGX extensions, parsed into vd. */
static void check_pck_ext(ra_verifier *v, X509 *leaf, ra_verdict *vd) {
  int rc = ra_cert_pck_ext(leaf, v->sgx_ext_oid, &vd->pck);
  if (rc == -ENOENT) {
    ra_verdict_fail(vd, RA_CHECK_PCK_EXT, RA_ERR_PCK_EXTENSION,
                    "PCK leaf has no SGX extension (%s)", RA_PCK_SGX_EXT_OID);
  } else if (rc) {
    ra_verdict_fail(vd, RA_CHECK_PCK_EXT, RA_ERR_PCK_EXTENSION,
                    "PCK leaf SGX extension is malformed");
  } else {
    vd->has_pck = true;
    ra_verdict_pass(vd, RA_CHECK_PCK_EXT);
  }
}

/* The PCK blob to check: the caller's chain when given, else the quote's
 * (NULL when there is none). */
static const uint8_t *pck_blob(const ra_quote *q, const ra_verify_opts *opts, size_t *len,
                               bool *from_quote) {
  *from_quote = false;
  if (opts && opts->pck_chain && opts->pck_chain_len) {
    *len = opts->pck_chain_len;
    return opts->pck_chain;
  }
  if (q->cert_type != RA_CERT_PCK_CHAIN) return NULL;
  *from_quote = true;
  *len = q->cert_data.len;
  return q->cert_data.bytes;
}

/* The leaf's subject decoded (the verifier's, valid until the next call);
 * NULL when it does not decode or on ENOMEM. */
static const X509_NAME *leaf_subject(ra_verifier *v, const ra_pck_leaf *leaf) {
  if (v->leaf_subject && v->leaf_subject_len == leaf->subject.len &&
      !memcmp(v->leaf_subject_der, leaf->subject.p, leaf->subject.len))
    return v->leaf_subject;
  const uint8_t *p = leaf->subject.p;
  X509_NAME *n = d2i_X509_NAME(NULL, &p, (long)leaf->subject.len);
  uint8_t *copy = n ? malloc(leaf->subject.len) : NULL;
  if (!copy) {
    X509_NAME_free(n);
    return NULL;
  }
  memcpy(copy, leaf->subject.p, leaf->subject.len);
  X509_NAME_free(v->leaf_subject);
  free(v->leaf_subject_der);
  v->leaf_subject = n;
  v->leaf_subject_der = copy;
  v->leaf_subject_len = leaf->subject.len;
  return n;
}

/* RA_CHECK_CRL, RA_CHECK_PCK_EXT and RA_CHECK_QE_SIG for a leaf read by
 * der.c whose chain check passed (cas: its CA and root); true when all
 * three passed (or the CRL check was skipped: none given, none required). */
static bool check_pck_der_rest(ra_verifier *v, const ra_quote *q, const ra_pck_leaf *leaf,
                               STACK_OF(X509) * cas, ra_collateral *coll, time_t at,
                               const ra_policy *pol, ra_verdict *vd) {
  const uint8_t *sp = leaf->serial.p;
  const X509_NAME *subject = leaf_subject(v, leaf);
  ASN1_INTEGER *serial = d2i_ASN1_INTEGER(NULL, &sp, (long)leaf->serial.len);
  bool ok = false;
  if (!subject || !serial) goto out;
  ra_crl_leaf cl = {subject, serial};
  ra_crl_set_apply_leaf(&v->crls, coll ? &coll->crls : NULL, cas, &cl, at, coll != NULL,
                        coll && pol->allow_expired_collateral, vd);
  if (vd->checks[RA_CHECK_CRL] == RA_CHECK_FAIL ||
      ra_pck_parse_ext(leaf->sgx_ext.p, leaf->sgx_ext.len, &vd->pck))
    goto out;
  vd->has_pck = true;
  ra_verdict_pass(vd, RA_CHECK_PCK_EXT);
  ok = ra_qe_check_signature_xy(q, leaf->pub, v->cache.ca_only ? NULL : &v->qe_sigs, vd);
out:
  ASN1_INTEGER_free(serial);
  ERR_clear_error();
  return ok;
}

/* The PCK checks without decoding the leaf (der_internal.h), for a
 * verifier with a certificate cache (a new platform's leaf is new, its CA
 * is not): Intel's blob of leaf, PCK CA, root where the CA and root are
 * certificates the verifier decoded and validated before
 * (ra_chain_check_leaf). With the whole cache on (not CA-only) the leaf's
 * signature and the QE report signature it verified are remembered, so the
 * platform's later quotes cost their own signature. True when every check
 * passed, recorded in vd; false when anything is unusual or fails: vd is
 * then as it was and the full path runs, deciding and naming the failure. */
static bool check_pck_der(ra_verifier *v, const ra_quote *q, const ra_verify_opts *opts,
                          time_t at, const ra_policy *pol, ra_verdict *vd) {
  size_t len;
  bool from_quote, ok = false;
  const uint8_t *blob = v->cache.off ? NULL : pck_blob(q, opts, &len, &from_quote);
  if (!blob) return false;
  uint8_t *buf = malloc(len);
  ra_der_span certs[3];
  ra_pck_leaf leaf;
  X509 *ca = NULL, *root = NULL;
  STACK_OF(X509) *cas = NULL;
  ra_verdict *t = malloc(sizeof *t);
  int li = -1;
  if (!buf || !t || ra_certs_split(blob, len, buf, len, certs, 3) != 3) goto out;
  /* the leaf: the one certificate that reads as one (in any position:
   * Intel's PEM chains put it first, its DER sample last) */
  for (int i = 0; i < 3; i++) {
    ra_pck_leaf l;
    if (ra_der_pck_leaf(certs[i].p, certs[i].len, &l)) continue;
    if (li >= 0) goto out;
    li = i;
    leaf = l;
  }
  if (li < 0) goto out;
  /* the other two: a pinned root and a CA the verifier decoded before */
  for (int i = 0; i < 3; i++) {
    if (i == li) continue;
    bool pinned;
    X509 *x = ra_cert_cache_lookup(&v->cache, certs[i].p, certs[i].len, &pinned);
    if (!x) goto out;
    if (pinned && !root) {
      root = x;
    } else if (!ca) {
      ca = x;
    } else {
      X509_free(x);
      goto out;
    }
  }
  if (!ca || !root) goto out;
  *t = *vd;
  t->chain_from_quote = from_quote;
  t->pck_not_before = leaf.not_before;
  t->pck_not_after = leaf.not_after;
  cas = ra_chain_check_leaf(&v->roots, &v->paths, ca, root, certs[li].p, certs[li].len, &leaf,
                            at, !v->cache.ca_only, t);
  if (!cas || !check_pck_der_rest(v, q, &leaf, cas, opts ? opts->collateral : NULL, at, pol, t))
    goto out;
  *vd = *t;
  v->der_leaves++;
  ok = true;
out:
  sk_X509_pop_free(cas, X509_free);
  X509_free(root);
  X509_free(ca);
  free(t);
  free(buf);
  return ok;
}

/* RA_CHECK_CHAIN .. RA_CHECK_QE_SIG: everything that hangs on the PCK
 * certificates. Checks that do not depend on a failed one still run. */
static void check_pck(ra_verifier *v, const ra_quote *q, const ra_verify_opts *opts, time_t at,
                      const ra_policy *pol, ra_verdict *vd) {
  ra_collateral *coll = opts ? opts->collateral : NULL;
  if (check_pck_der(v, q, opts, at, pol, vd)) return;
  STACK_OF(X509) *certs = load_pck_certs(v, q, opts, vd), *chain = NULL;
  X509 *leaf = NULL;
  if (certs && !(leaf = ra_certs_leaf(certs)))
    ra_verdict_fail(vd, RA_CHECK_CHAIN, RA_ERR_CHAIN_BROKEN,
                    "the PCK certificates do not form a single path");
  if (leaf) {
    vd->pck_not_before = ra_asn1_time_to_unix(X509_get0_notBefore(leaf));
    vd->pck_not_after = ra_asn1_time_to_unix(X509_get0_notAfter(leaf));
    chain = ra_chain_check(&v->roots, v->cache.off ? NULL : &v->paths, certs, leaf, at, vd);
    /* with collateral the CRLs are required (fail closed) */
    if (chain)
      ra_crl_set_apply(&v->crls, coll ? &coll->crls : NULL, chain, at, coll != NULL,
                       coll && pol->allow_expired_collateral, vd);
    check_pck_ext(v, leaf, vd);
    ra_qe_check_signature(q, leaf, v->cache.off || v->cache.ca_only ? NULL : &v->qe_sigs, vd);
  }
  sk_X509_pop_free(chain, X509_free);
  sk_X509_pop_free(certs, X509_free);
}

/* RA_CHECK_QUOTE_SIG: header and body signed by the attestation key. */
static void check_quote_signature(ra_verifier *v, const ra_quote *q, ra_verdict *vd) {
  /* the key of the same QE again (warm): the EVP_PKEY made for it before */
  bool keep = !v->cache.off && !v->cache.ca_only;
  if (!keep) { /* a key seen once: no EVP_PKEY to build (crypto.c) */
    int rc = ra_ecdsa_p256_verify_xy(q->att_key, q->signed_data.bytes, q->signed_data.len,
                                     q->signature);
    if (rc < 0)
      ra_verdict_fail(vd, RA_CHECK_QUOTE_SIG, RA_ERR_ATT_KEY,
                      "attestation key is not a P-256 point");
    else if (rc == 1)
      ra_verdict_pass(vd, RA_CHECK_QUOTE_SIG);
    else
      ra_verdict_fail(vd, RA_CHECK_QUOTE_SIG, RA_ERR_QUOTE_SIGNATURE,
                      "quote signature does not verify with the attestation key");
    return;
  }
  EVP_PKEY *att = v->att && !memcmp(v->att_xy, q->att_key, 64) ? v->att : NULL;
  if (att) {
    keep = false; /* v owns it already */
  } else {
    att = ra_p256_key(q->att_key);
  }
  if (!att)
    ra_verdict_fail(vd, RA_CHECK_QUOTE_SIG, RA_ERR_ATT_KEY, "attestation key is not a P-256 point");
  else if (ra_ecdsa_p256_verify(att, q->signed_data.bytes, q->signed_data.len, q->signature))
    ra_verdict_pass(vd, RA_CHECK_QUOTE_SIG);
  else
    ra_verdict_fail(vd, RA_CHECK_QUOTE_SIG, RA_ERR_QUOTE_SIGNATURE,
                    "quote signature does not verify with the attestation key");
  if (keep && att) {
    EVP_PKEY_free(v->att);
    v->att = att;
    memcpy(v->att_xy, q->att_key, 64);
  } else if (att != v->att) {
    EVP_PKEY_free(att);
  }
}

/* The advisories of the platform, module and QE levels, once each. */
static void add_advisories(ra_verdict *vd, const ra_tcb_eval *ev) {
  for (size_t i = 0; i < ev->n_adv; i++) {
    bool dup = false;
    for (int j = 0; j < vd->n_advisory_ids && !dup; j++)
      dup = !strcmp(vd->advisory_ids[j], ev->adv[i]);
    if (!dup && vd->n_advisory_ids < RA_MAX_ADVISORIES)
      snprintf(vd->advisory_ids[vd->n_advisory_ids++], sizeof vd->advisory_ids[0], "%s",
               ev->adv[i]);
  }
}

static bool advisory_allowed(const ra_policy *pol, const char *id) {
  for (size_t i = 0; i < pol->n_allowed_advisories; i++)
    if (pol->allowed_advisories[i] && !strcmp(pol->allowed_advisories[i], id)) return true;
  return false;
}

/* RA_CHECK_TCB_STATUS: the combined status under the policy. */
static void check_tcb_status(const ra_policy *pol, ra_verdict *vd) {
  unsigned accept = pol->accept_tcb ? pol->accept_tcb : RA_TCB_ACCEPT(RA_TCB_UP_TO_DATE);
  ra_tcb_status st = vd->tcb_status;
  if (st == RA_TCB_REVOKED) {
    ra_verdict_fail(vd, RA_CHECK_TCB_STATUS, RA_ERR_TCB_REVOKED,
                    "TCB status Revoked (platform %s, QE %s)",
                    ra_tcb_status_name(vd->platform_status), ra_tcb_status_name(vd->qe_status));
    return;
  }
  if (st == RA_TCB_NOT_SUPPORTED || st == RA_TCB_NONE) {
    ra_verdict_fail(vd, RA_CHECK_TCB_STATUS, RA_ERR_TCB_NOT_SUPPORTED, "TCB status %s",
                    ra_tcb_status_name(st));
    return;
  }
  if (accept & RA_TCB_ACCEPT(st)) {
    ra_verdict_pass(vd, RA_CHECK_TCB_STATUS);
    return;
  }
  bool all = vd->n_advisory_ids > 0;
  for (int i = 0; i < vd->n_advisory_ids && all; i++)
    all = advisory_allowed(pol, vd->advisory_ids[i]);
  if (all) {
    ra_verdict_pass(vd, RA_CHECK_TCB_STATUS);
    return;
  }
  char adv[160] = "";
  size_t o = 0;
  for (int i = 0; i < vd->n_advisory_ids && o < sizeof adv; i++)
    o += (size_t)snprintf(adv + o, sizeof adv - o, "%s%s", i ? "," : "", vd->advisory_ids[i]);
  ra_verdict_fail(vd, RA_CHECK_TCB_STATUS, RA_ERR_TCB_STATUS,
                  "TCB status %s is not accepted%s%s%s", ra_tcb_status_name(st),
                  vd->n_advisory_ids ? " (advisories " : "", adv, vd->n_advisory_ids ? ")" : "");
}

/* RA_CHECK_COLLATERAL .. RA_CHECK_TCB_STATUS: Intel's collateral. */
static void check_collateral(ra_verifier *v, const ra_quote *q, ra_collateral *c, time_t at,
                             const ra_policy *pol, ra_verdict *vd) {
  ra_tcb_eval qe, plat, mod;
  if (!c) {
    ra_verdict_skip(vd, RA_CHECK_COLLATERAL);
    ra_verdict_skip(vd, RA_CHECK_QE_IDENTITY);
    ra_verdict_skip(vd, RA_CHECK_TCB);
    ra_verdict_skip(vd, RA_CHECK_TCB_STATUS);
    return;
  }
  vd->tcb_evaluated = true;
  if (!ra_collateral_check(c, &v->roots, &v->crls, q, at, pol, vd)) return;
  ra_qe_identity_check(&c->qe, q, vd, &qe);
  ra_tcb_info_check(&c->tcb, q, vd, &plat, &mod);
  vd->platform_status = plat.status;
  vd->module_status = mod.status;
  vd->tcb_date = plat.date;
  if (vd->checks[RA_CHECK_QE_IDENTITY] == RA_CHECK_PASS) {
    vd->qe_status = qe.status;
    vd->qe_tcb_date = qe.date;
  }
  if (vd->checks[RA_CHECK_TCB] != RA_CHECK_PASS) {
    if (plat.status == RA_TCB_NOT_SUPPORTED || mod.status == RA_TCB_NOT_SUPPORTED)
      vd->tcb_status = RA_TCB_NOT_SUPPORTED;
    return;
  }
  if (vd->checks[RA_CHECK_QE_IDENTITY] != RA_CHECK_PASS) return;
  /* Intel: the platform with the TDX module, then with the QE */
  vd->tcb_status = ra_tcb_converge(ra_tcb_converge(plat.status, mod.status), qe.status);
  add_advisories(vd, &plat);
  add_advisories(vd, &mod);
  add_advisories(vd, &qe);
  check_tcb_status(pol, vd);
}

static void check_policy(const ra_quote *q, const ra_policy *pol, ra_verdict *vd) {
  ra_policy_check_debug(q, pol, vd);
  ra_policy_check_td_attributes(q, pol, vd);
  ra_policy_check_measurements(q, pol, vd);
  ra_policy_check_binding(q, pol, vd);
  ra_policy_check_not_empty(pol, vd);
  ra_policy_run_callback(q, pol, vd);
}

int ra_verify_quote(ra_verifier *v, const uint8_t *buf, size_t len, const ra_verify_opts *opts,
                    const ra_policy *pol, ra_verdict *vd) {
  ra_quote q;
  time_t at = opts && opts->at ? opts->at : time(NULL);

  memset(vd, 0, sizeof *vd);
  vd->matched_set = -1;
  vd->tcb_level = -1;
  vd->at = at;
  vd->valid_until = (time_t)INT64_MAX; /* narrowed by every time-dependent check */
  if (!v || !pol) {
    ra_verdict_fail(vd, RA_CHECK_PARSE, RA_ERR_INTERNAL, "no verifier or no policy");
    return -EINVAL;
  }
  if (!check_parse(&q, buf, len, vd)) return -EACCES;
  check_pck(v, &q, opts, at, pol, vd);
  ra_qe_check_report_data(&q, vd);
  check_quote_signature(v, &q, vd);
  check_collateral(v, &q, opts ? opts->collateral : NULL, at, pol, vd);
  check_policy(&q, pol, vd);
  if (vd->valid_until <= vd->valid_from || at < vd->valid_from || at >= vd->valid_until)
    vd->valid_from = vd->valid_until = 0;
  if (vd->err == 0)
    snprintf(vd->msg, sizeof vd->msg, "%s",
             !vd->tcb_evaluated        ? "valid (signatures only: TCB not evaluated)"
             : vd->collateral_expired ? "valid (collateral past nextUpdate, allowed by the policy)"
                                      : "valid");
  return vd->err == 0 ? 0 : -EACCES;
}
