/* tests/attest/quote/der_test.c: the strict DER reader of PCK leaves
 * (attest/quote/der.c) and the verification path built on it.
 *
 * The property that matters: the reader's path may only accept what the
 * full OpenSSL path accepts. Every PCK leaf in the vectors, leaves of our
 * own making signed by the simulated PCK CA (expired, not yet valid, wrong
 * issuer, unknown critical or non-critical extensions, a CA leaf, other key
 * usages, non-minimal lengths, trailing bytes, revoked, ...) and every
 * single-byte change of a real Intel leaf are verified by a verifier that
 * keeps CA certificates only (the reader's path) and by one that decodes
 * everything (the full path): both verdicts must be the same, field by
 * field, and the test knows which path the first one took. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>
#include <openssl/bio.h>
#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "raloop/attest/quote/collateral.h"
#include "raloop/attest/quote/der_internal.h"
#include "raloop/attest/quote/quote.h"
#include "raloop/attest/quote/sim.h"
#include "raloop/attest/quote/verify.h"
#include "raloop/attest/quote/x509_internal.h"

/* ---- helpers ---- */

static uint8_t *load_path(const char *path, size_t *len) {
  FILE *f = fopen(path, "rb");
  if (!f) fail_msg("cannot open %s", path);
  fseek(f, 0, SEEK_END);
  long n = ftell(f);
  fseek(f, 0, SEEK_SET);
  uint8_t *b = malloc((size_t)n + 1);
  assert_non_null(b);
  assert_int_equal(fread(b, 1, (size_t)n, f), (size_t)n);
  fclose(f);
  b[n] = 0;
  *len = (size_t)n;
  return b;
}

static uint8_t *load(const char *name, size_t *len) {
  const char *d = getenv("RA_VECTORS");
  char path[1024];
  snprintf(path, sizeof path, "%s/%s", d ? d : RA_VECTORS_DIR, name);
  return load_path(path, len);
}

static time_t ymd(int y, int m, int d) {
  struct tm tm = {.tm_year = y - 1900, .tm_mon = m - 1, .tm_mday = d};
  return timegm(&tm);
}

static const ra_policy SIG_ONLY = {.signature_only = true, .allow_mr_servicetd = true};

/* The certificates of a PEM blob, in order. */
static int pem_certs(const uint8_t *pem, size_t len, X509 **out, int max) {
  BIO *b = BIO_new_mem_buf(pem, (int)len);
  int n = 0;
  X509 *x;
  while (n < max && (x = PEM_read_bio_X509(b, NULL, NULL, NULL))) out[n++] = x;
  BIO_free(b);
  return n;
}

typedef struct buf {
  uint8_t *p;
  size_t n;
} buf;

static void buf_add(buf *b, const uint8_t *p, size_t n) {
  b->p = realloc(b->p, b->n + n);
  assert_non_null(b->p);
  memcpy(b->p + b->n, p, n);
  b->n += n;
}

static void buf_add_x509(buf *b, X509 *x) {
  uint8_t *d = NULL;
  int n = i2d_X509(x, &d);
  assert_true(n > 0);
  buf_add(b, d, (size_t)n);
  OPENSSL_free(d);
}

/* The quote's PCK certificates (leaf, CA, root; PEM or DER, any order)
 * as DER. */
static void quote_chain_der(const uint8_t *q, size_t len, buf *leaf, buf *ca, buf *root) {
  ra_quote pq;
  assert_int_equal(ra_quote_parse(q, len, &pq), 0);
  STACK_OF(X509) *sk = ra_certs_parse(NULL, pq.cert_data.bytes, pq.cert_data.len);
  assert_non_null(sk);
  assert_int_equal(sk_X509_num(sk), 3);
  X509 *l = ra_certs_leaf(sk);
  assert_non_null(l);
  buf_add_x509(leaf, l);
  for (int i = 0; i < 3; i++) {
    X509 *x = sk_X509_value(sk, i);
    if (x != l) buf_add_x509(ra_cert_self_issued(x) ? root : ca, x);
  }
  sk_X509_pop_free(sk, X509_free);
}

/* The verifiers compared: CA-only and warm (whole cache) take the
 * reader's path when they can, full decodes everything every time. */
typedef struct trio {
  ra_verifier *ca_only, *warm, *full;
} trio;

static void trio_new(trio *t, unsigned flags) {
  assert_int_equal(ra_verifier_new(RA_VERIFIER_CACHE_CA_ONLY | flags, &t->ca_only), 0);
  assert_int_equal(ra_verifier_new(flags, &t->warm), 0);
  assert_int_equal(ra_verifier_new(RA_VERIFIER_NO_CERT_CACHE | flags, &t->full), 0);
}

static void trio_free(trio *t) {
  ra_verifier_free(t->ca_only);
  ra_verifier_free(t->warm);
  ra_verifier_free(t->full);
}

static void trio_add_root(trio *t, const uint8_t *pem, size_t n) {
  assert_int_equal(ra_verifier_add_root(t->ca_only, pem, n), 1);
  assert_int_equal(ra_verifier_add_root(t->warm, pem, n), 1);
  assert_int_equal(ra_verifier_add_root(t->full, pem, n), 1);
}

static void trio_add_crl(trio *t, const uint8_t *der, size_t n) {
  assert_int_equal(ra_verifier_add_crl(t->ca_only, der, n), 1);
  assert_int_equal(ra_verifier_add_crl(t->warm, der, n), 1);
  assert_int_equal(ra_verifier_add_crl(t->full, der, n), 1);
}

/* Verdict a (of a verifier that may read the leaf) is verdict b (the full
 * path's), field by field. */
static void same_verdict(const ra_verdict *a, int ra, const ra_verdict *b, int rb, const char *who,
                         const char *what) {
  if (ra != rb || a->err != b->err || strcmp(a->msg, b->msg))
    fail_msg("%s: %s %s (%s), full path %s (%s)", what, who, ra_err_name(a->err), a->msg,
             ra_err_name(b->err), b->msg);
  assert_memory_equal(a->checks, b->checks, sizeof a->checks);
  assert_int_equal(a->valid_from, b->valid_from);
  assert_int_equal(a->valid_until, b->valid_until);
  assert_int_equal(a->chain_len, b->chain_len);
  assert_int_equal(a->crls_applied, b->crls_applied);
  assert_int_equal(a->has_pck, b->has_pck);
  assert_int_equal(a->pck_not_before, b->pck_not_before);
  assert_int_equal(a->pck_not_after, b->pck_not_after);
  assert_int_equal(a->chain_from_quote, b->chain_from_quote);
  assert_memory_equal(a->root_sha256, b->root_sha256, 32);
  assert_string_equal(a->root_subject, b->root_subject);
  assert_memory_equal(&a->pck, &b->pck, sizeof a->pck);
}

/* The three verdicts on quote q with the PCK chain blob at `at`; they must
 * agree. Returns the verdict's error; *fast: whether the CA-only verifier
 * took the reader's path (the warm one must have taken it too). */
static int both(trio *t, const uint8_t *q, size_t qlen, const uint8_t *chain, size_t clen,
                time_t at, bool *fast, const char *what) {
  ra_verdict a, w, b;
  ra_verify_opts o = {.at = at, .pck_chain = chain, .pck_chain_len = clen};
  unsigned before = ra_verifier_der_leaves(t->ca_only), wbefore = ra_verifier_der_leaves(t->warm);
  int ra = ra_verify_quote(t->ca_only, q, qlen, &o, &SIG_ONLY, &a);
  int rw = ra_verify_quote(t->warm, q, qlen, &o, &SIG_ONLY, &w);
  int rb = ra_verify_quote(t->full, q, qlen, &o, &SIG_ONLY, &b);
  *fast = ra_verifier_der_leaves(t->ca_only) != before;
  same_verdict(&a, ra, &b, rb, "reader path (CA-only)", what);
  same_verdict(&w, rw, &b, rb, "reader path (warm)", what);
  if (*fast) assert_true(ra_verifier_der_leaves(t->warm) != wbefore);
  return a.err;
}

/* ---- the reader against d2i_X509 ---- */

/* What the reader read is what OpenSSL decodes. */
static void same_as_openssl(const uint8_t *der, size_t len) {
  ra_pck_leaf l;
  const uint8_t *p = der;
  X509 *x = d2i_X509(NULL, &p, (long)len);
  assert_non_null(x);
  assert_int_equal(ra_der_pck_leaf(der, len, &l), 0);
  const uint8_t *nd;
  size_t nl;
  assert_int_equal(X509_NAME_get0_der(X509_get_issuer_name(x), &nd, &nl), 1);
  assert_int_equal(nl, l.issuer.len);
  assert_memory_equal(nd, l.issuer.p, nl);
  assert_int_equal(X509_NAME_get0_der(X509_get_subject_name(x), &nd, &nl), 1);
  assert_int_equal(nl, l.subject.len);
  assert_memory_equal(nd, l.subject.p, nl);
  uint8_t *sd = NULL;
  int sn = i2d_ASN1_INTEGER(X509_get_serialNumber(x), &sd);
  assert_int_equal(sn, (int)l.serial.len);
  assert_memory_equal(sd, l.serial.p, l.serial.len);
  OPENSSL_free(sd);
  assert_int_equal(ra_asn1_time_to_unix(X509_get0_notBefore(x)), l.not_before);
  assert_int_equal(ra_asn1_time_to_unix(X509_get0_notAfter(x)), l.not_after);
  uint8_t pt[65];
  size_t ptl = 0;
  assert_int_equal(EVP_PKEY_get_octet_string_param(X509_get0_pubkey(x), OSSL_PKEY_PARAM_PUB_KEY, pt,
                                                   sizeof pt, &ptl),
                   1);
  assert_int_equal(ptl, 65);
  assert_memory_equal(pt + 1, l.pub, 64);
  assert_int_equal(X509_get_key_usage(x), l.key_usage);
  const ASN1_OCTET_STRING *ak = X509_get0_authority_key_id(x);
  assert_non_null(ak);
  assert_int_equal(ASN1_STRING_length(ak), (int)l.akid.len);
  assert_memory_equal(ASN1_STRING_get0_data(ak), l.akid.p, l.akid.len);
  ra_pck_info a, b;
  ASN1_OBJECT *oid = OBJ_txt2obj(RA_PCK_SGX_EXT_OID, 1);
  assert_int_equal(ra_cert_pck_ext(x, oid, &a), 0);
  assert_int_equal(ra_pck_parse_ext(l.sgx_ext.p, l.sgx_ext.len, &b), 0);
  assert_memory_equal(&a, &b, sizeof a);
  /* the signed bytes are the TBSCertificate OpenSSL verifies */
  uint8_t *tbs = NULL;
  int tn = i2d_re_X509_tbs(x, &tbs);
  assert_int_equal(tn, (int)l.tbs.len);
  assert_memory_equal(tbs, l.tbs.p, l.tbs.len);
  OPENSSL_free(tbs);
  ASN1_OBJECT_free(oid);
  X509_free(x);
}

/* Every PCK leaf in the vectors reads, and reads as OpenSSL decodes it. */
static void test_vector_leaves_read(void **state) {
  (void)state;
  static const char *const quotes[] = {"quotes/tdx-v4-tappd.dat",
                                       "quotes/tdx-v4-phala.dat",
                                       "quotes/tdx-v5-trustee.dat",
                                       "quotes/sgx-occlum.dat",
                                       "quotes/sgx-tlsn-quotedev.dat",
                                       "quotes/tdx-collateral/quote.dat",
                                       "collateral/phala/tdx_quote",
                                       "collateral/phala/sgx_quote",
                                       "collateral/phala/tdx_quote_outdated"};
  for (size_t i = 0; i < sizeof quotes / sizeof *quotes; i++) {
    size_t len;
    uint8_t *q = load(quotes[i], &len);
    buf leaf = {0}, ca = {0}, root = {0};
    quote_chain_der(q, len, &leaf, &ca, &root);
    same_as_openssl(leaf.p, leaf.n);
    /* CA and root certificates are not PCK leaves */
    ra_pck_leaf l;
    assert_int_equal(ra_der_pck_leaf(ca.p, ca.n, &l), -EBADMSG);
    assert_int_equal(ra_der_pck_leaf(root.p, root.n, &l), -EBADMSG);
    free(leaf.p);
    free(ca.p);
    free(root.p);
    free(q);
  }
  static const char *const pems[] = {"quotes/tdx-collateral/pckCert.pem",
                                     "quotes/sgx-collateral/pckCert.pem"};
  for (size_t i = 0; i < 2; i++) {
    size_t len;
    uint8_t *pem = load(pems[i], &len);
    X509 *x = NULL;
    assert_int_equal(pem_certs(pem, len, &x, 1), 1);
    buf d = {0};
    buf_add_x509(&d, x);
    same_as_openssl(d.p, d.n);
    free(d.p);
    X509_free(x);
    free(pem);
  }
}

/* Encodings the reader refuses, each on an otherwise valid leaf: trailing
 * bytes inside and after the certificate, a non-minimal length, an
 * indefinite length, truncations. */
static void test_reader_refuses_encodings(void **state) {
  (void)state;
  size_t len;
  uint8_t *q = load("quotes/tdx-v4-tappd.dat", &len);
  buf leaf = {0}, ca = {0}, root = {0};
  quote_chain_der(q, len, &leaf, &ca, &root);
  ra_pck_leaf l;
  const uint8_t *d = leaf.p;
  size_t n = leaf.n;
  assert_int_equal(ra_der_pck_leaf(d, n, &l), 0);
  assert_int_equal(d[0], 0x30);
  assert_int_equal(d[1], 0x82);
  /* one byte after the certificate */
  uint8_t *m = malloc(n + 8);
  memcpy(m, d, n);
  m[n] = 0;
  assert_int_equal(ra_der_pck_leaf(m, n + 1, &l), -EBADMSG);
  /* one byte more inside it (outer length + 1) */
  size_t body = (size_t)d[2] << 8 | d[3];
  m[2] = (uint8_t)((body + 1) >> 8);
  m[3] = (uint8_t)(body + 1);
  assert_int_equal(ra_der_pck_leaf(m, n + 1, &l), -EBADMSG);
  /* the outer length in three bytes instead of two */
  m[0] = 0x30;
  m[1] = 0x83;
  m[2] = 0;
  m[3] = d[2];
  m[4] = d[3];
  memcpy(m + 5, d + 4, n - 4);
  assert_int_equal(ra_der_pck_leaf(m, n + 1, &l), -EBADMSG);
  /* indefinite length */
  memcpy(m, d, n);
  m[1] = 0x80;
  assert_int_equal(ra_der_pck_leaf(m, n, &l), -EBADMSG);
  /* every truncation */
  for (size_t k = 0; k < n; k++) assert_int_equal(ra_der_pck_leaf(d, k, &l), -EBADMSG);
  assert_int_equal(ra_der_pck_leaf(NULL, 0, &l), -EBADMSG);
  free(m);
  free(leaf.p);
  free(ca.p);
  free(root.p);
  free(q);
}

/* ---- both paths on real Intel leaves ---- */

/* Every single-byte change of a real leaf (and the leaf as it is): the
 * reader's path and the full path agree, and the reader's path took the
 * unchanged leaf. Whatever the reader still reads after a change must fail
 * its signature, so agreement is on refusals here; the sim leaves below
 * cover acceptance. */
static void test_intel_leaf_mutations_agree(void **state) {
  (void)state;
  static const char *const quotes[] = {"quotes/tdx-v4-tappd.dat", "quotes/tdx-v4-phala.dat"};
  for (size_t f = 0; f < 2; f++) {
    size_t len;
    uint8_t *q = load(quotes[f], &len);
    buf leaf = {0}, ca = {0}, root = {0};
    quote_chain_der(q, len, &leaf, &ca, &root);
    trio t;
    trio_new(&t, 0);
    time_t at = ymd(2025, 6, 1);
    buf chain = {0};
    buf_add(&chain, leaf.p, leaf.n);
    buf_add(&chain, ca.p, ca.n);
    buf_add(&chain, root.p, root.n);
    bool fast;
    /* the first verification learns the CA path; the second reads the leaf */
    assert_int_equal(both(&t, q, len, chain.p, chain.n, at, &fast, "first"), 0);
    assert_false(fast);
    assert_int_equal(both(&t, q, len, chain.p, chain.n, at, &fast, "again"), 0);
    assert_true(fast);
    /* the warm verifier remembered the leaf and QE report signatures: a
     * third verification reads the leaf again, verdict unchanged */
    assert_int_equal(both(&t, q, len, chain.p, chain.n, at, &fast, "third"), 0);
    assert_true(fast);
    unsigned accepted_mutants = 0;
    for (size_t i = 0; i < leaf.n; i++) {
      uint8_t keep = chain.p[i];
      chain.p[i] ^= (uint8_t)(i % 7 == 0 ? 0x80 : 0x01);
      char what[64];
      snprintf(what, sizeof what, "%s byte %zu", quotes[f], i);
      if (both(&t, q, len, chain.p, chain.n, at, &fast, what) == 0) accepted_mutants++;
      chain.p[i] = keep;
    }
    /* a change inside the SGX extension's unread parts could still verify?
     * no: every byte is signed */
    assert_int_equal(accepted_mutants, 0);
    free(chain.p);
    trio_free(&t);
    free(leaf.p);
    free(ca.p);
    free(root.p);
    free(q);
  }
}

/* Times around the leaf's and the CA path's edges, and CRLs (Intel's
 * sample CRLs for the sample TDX quote's chain). */
static void test_intel_times_and_crls_agree(void **state) {
  (void)state;
  size_t len, cl1, cl2;
  uint8_t *q = load("quotes/tdx-collateral/quote.dat", &len);
  uint8_t *crl1 = load("quotes/tdx-collateral/rootCaCrl.der", &cl1);
  uint8_t *crl2 = load("quotes/tdx-collateral/intermediateCaCrl.der", &cl2);
  uint8_t *rootpem;
  size_t rl;
  rootpem = load("quotes/tdx-collateral/trustedRootCaCert.pem", &rl);
  buf leaf = {0}, ca = {0}, root = {0}, chain = {0};
  quote_chain_der(q, len, &leaf, &ca, &root);
  buf_add(&chain, leaf.p, leaf.n);
  buf_add(&chain, ca.p, ca.n);
  buf_add(&chain, root.p, root.n);
  ra_pck_leaf l;
  assert_int_equal(ra_der_pck_leaf(leaf.p, leaf.n, &l), 0);
  for (int with_crls = 0; with_crls < 2; with_crls++) {
    trio t;
    trio_new(&t, RA_VERIFIER_NO_DEFAULT_ROOT);
    trio_add_root(&t, rootpem, rl);
    if (with_crls) {
      trio_add_crl(&t, crl1, cl1);
      trio_add_crl(&t, crl2, cl2);
    }
    bool fast;
    time_t mid = l.not_before + (l.not_after - l.not_before) / 2, now = time(NULL);
    /* the chain validated once (whatever the CRLs say): the CA path is known */
    both(&t, q, len, chain.p, chain.n, mid, &fast, "first");
    if (!with_crls) {
      assert_int_equal(both(&t, q, len, chain.p, chain.n, mid, &fast, "mid"), 0);
      assert_true(fast);
    }
    const time_t at[] = {l.not_before - 1,
                         l.not_before,
                         l.not_before + 86400,
                         mid,
                         now,
                         l.not_after - 1,
                         l.not_after,
                         l.not_after + 1,
                         ymd(2010, 1, 1),
                         ymd(2060, 1, 1)};
    for (size_t i = 0; i < sizeof at / sizeof *at; i++) {
      char what[64];
      snprintf(what, sizeof what, "at %lld crls %d", (long long)at[i], with_crls);
      both(&t, q, len, chain.p, chain.n, at[i], &fast, what);
    }
    trio_free(&t);
  }
  free(chain.p);
  free(leaf.p);
  free(ca.p);
  free(root.p);
  free(rootpem);
  free(crl1);
  free(crl2);
  free(q);
}

/* With Intel's collateral (Phala's samples: CRLs required, TCB and QE
 * identity evaluated), at times inside and around its windows, expired
 * collateral allowed or not: the three verifiers agree, and the reader's
 * path ran where the CA path was known and everything passed. */
static void test_collateral_agree(void **state) {
  (void)state;
  static const char *const names[] = {"tdx_quote", "sgx_quote", "tdx_quote_outdated"};
  for (size_t f = 0; f < 3; f++) {
    char qn[128], cn[128];
    snprintf(qn, sizeof qn, "collateral/phala/%s", names[f]);
    snprintf(cn, sizeof cn, "collateral/phala/%s_collateral.json", names[f]);
    size_t ql, cl;
    uint8_t *q = load(qn, &ql), *cj = load(cn, &cl);
    /* the collateral's issue time (inside every window when the leaf is
     * valid then), the edges of its nextUpdate, the leaf's edges, a year
     * before and ten after */
    ra_collateral *ci;
    ra_collateral_info info;
    assert_int_equal(ra_collateral_parse_json((const char *)cj, cl, &ci), 0);
    ra_collateral_get_info(ci, &info);
    ra_collateral_free(ci);
    buf leaf = {0}, ca = {0}, root = {0};
    quote_chain_der(q, ql, &leaf, &ca, &root);
    ra_pck_leaf l;
    assert_int_equal(ra_der_pck_leaf(leaf.p, leaf.n, &l), 0);
    time_t issue = info.tcb_info_issue > l.not_before ? info.tcb_info_issue : l.not_before + 1,
           next = info.tcb_info_next_update;
    const time_t at[] = {issue,
                         issue + 3600,
                         next - 1,
                         next,
                         next + 1,
                         l.not_before - 1,
                         l.not_before,
                         issue - 365 * 86400,
                         issue + 3650 * 86400};
    free(leaf.p);
    free(ca.p);
    free(root.p);
    for (int expired_ok = 0; expired_ok < 2; expired_ok++) {
      ra_policy pol = {.signature_only = true,
                       .allow_mr_servicetd = true,
                       .accept_tcb = ~0u,
                       .allow_expired_collateral = expired_ok};
      trio t;
      trio_new(&t, 0);
      ra_verifier *const vs[3] = {t.ca_only, t.warm, t.full};
      ra_collateral *c[3];
      for (int k = 0; k < 3; k++)
        assert_int_equal(ra_collateral_parse_json((const char *)cj, cl, &c[k]), 0);
      unsigned fast_n = 0;
      for (int round = 0; round < 2; round++)
        for (size_t i = 0; i < sizeof at / sizeof *at; i++) {
          ra_verdict vd[3];
          int rc[3];
          unsigned before = ra_verifier_der_leaves(t.ca_only);
          for (int k = 0; k < 3; k++) {
            ra_verify_opts o = {.at = at[i], .collateral = c[k]};
            rc[k] = ra_verify_quote(vs[k], q, ql, &o, &pol, &vd[k]);
          }
          fast_n += ra_verifier_der_leaves(t.ca_only) != before;
          char what[96];
          snprintf(what, sizeof what, "%s at %lld, expired %s", names[f], (long long)at[i],
                   expired_ok ? "allowed" : "refused");
          same_verdict(&vd[0], rc[0], &vd[2], rc[2], "reader path (CA-only)", what);
          same_verdict(&vd[1], rc[1], &vd[2], rc[2], "reader path (warm)", what);
          assert_int_equal(vd[0].tcb_status, vd[2].tcb_status);
          assert_int_equal(vd[1].tcb_status, vd[2].tcb_status);
          assert_int_equal(vd[0].collateral_expired, vd[2].collateral_expired);
        }
      /* the issue time is inside every sample's windows */
      if (!fast_n) fail_msg("%s: the reader's path never ran", names[f]);
      for (int k = 0; k < 3; k++) ra_collateral_free(c[k]);
      trio_free(&t);
    }
    free(q);
    free(cj);
  }
}

/* ---- both paths on leaves of our own making (the simulated hierarchy) ---- */

static char sim_dir[256];

typedef struct hier {
  EVP_PKEY *root_key, *ica_key, *pck_key, *att_key;
  X509 *root, *ica, *pck;
  ra_sim *sim;
} hier;

static int sim_setup(void **state) {
  snprintf(sim_dir, sizeof sim_dir, "/tmp/ra-der-test-XXXXXX");
  if (!mkdtemp(sim_dir)) return -1;
  hier *h = calloc(1, sizeof *h);
  if (!h || ra_sim_open(sim_dir, &h->sim)) return -1;
  char path[512];
  size_t len;
  snprintf(path, sizeof path, "%s/sim-hierarchy.pem", sim_dir);
  uint8_t *all = load_path(path, &len);
  BIO *b = BIO_new_mem_buf(all, (int)len);
  h->root_key = PEM_read_bio_PrivateKey(b, NULL, NULL, NULL);
  h->root = PEM_read_bio_X509(b, NULL, NULL, NULL);
  h->ica_key = PEM_read_bio_PrivateKey(b, NULL, NULL, NULL);
  h->ica = PEM_read_bio_X509(b, NULL, NULL, NULL);
  h->pck_key = PEM_read_bio_PrivateKey(b, NULL, NULL, NULL);
  h->pck = PEM_read_bio_X509(b, NULL, NULL, NULL);
  h->att_key = PEM_read_bio_PrivateKey(b, NULL, NULL, NULL);
  BIO_free(b);
  free(all);
  *state = h;
  return h->att_key ? 0 : -1;
}

static int sim_teardown(void **state) {
  hier *h = *state;
  char cmd[512];
  EVP_PKEY_free(h->root_key);
  EVP_PKEY_free(h->ica_key);
  EVP_PKEY_free(h->pck_key);
  EVP_PKEY_free(h->att_key);
  X509_free(h->root);
  X509_free(h->ica);
  X509_free(h->pck);
  ra_sim_free(h->sim);
  free(h);
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", sim_dir);
  return system(cmd) == 0 ? 0 : -1;
}

static void add_ext(X509 *x, X509 *issuer, int nid, const char *value) {
  X509V3_CTX c;
  X509V3_set_ctx(&c, issuer, x, NULL, NULL, 0);
  X509_EXTENSION *e = X509V3_EXT_conf_nid(NULL, &c, nid, value);
  assert_non_null(e);
  int at = X509_get_ext_by_NID(x, nid, -1);
  if (at >= 0) X509_EXTENSION_free(X509_delete_ext(x, at));
  assert_int_equal(X509_add_ext(x, e, -1), 1);
  X509_EXTENSION_free(e);
}

static void add_raw_ext(X509 *x, const char *oid, int critical, const uint8_t *v, size_t n) {
  ASN1_OBJECT *o = OBJ_txt2obj(oid, 1);
  ASN1_OCTET_STRING *os = ASN1_OCTET_STRING_new();
  assert_non_null(o);
  assert_int_equal(ASN1_OCTET_STRING_set(os, v, (int)n), 1);
  X509_EXTENSION *e = X509_EXTENSION_create_by_OBJ(NULL, o, critical, os);
  assert_non_null(e);
  assert_int_equal(X509_add_ext(x, e, -1), 1);
  X509_EXTENSION_free(e);
  ASN1_OCTET_STRING_free(os);
  ASN1_OBJECT_free(o);
}

enum variant {
  V_GENUINE,      /* re-signed as it is: accepted, reader's path */
  V_LONG_SERIAL,  /* a 20-byte serial: accepted, reader's path */
  V_GENERALIZED,  /* notAfter in 2060 (GeneralizedTime): accepted, reader's path */
  V_CRLDP,        /* with Intel's CRL distribution point: accepted, reader's path */
  V_NOT_YET,      /* notBefore tomorrow: refused */
  V_EXPIRED,      /* notAfter yesterday: refused */
  V_WRONG_ISSUER, /* issuer name not the CA's: refused */
  V_BY_ROOT,      /* signed by the root key, issuer the CA's name: refused */
  V_UNKNOWN_CRIT, /* an unknown critical extension: refused */
  V_UNKNOWN,      /* an unknown non-critical extension: accepted, full path */
  V_SAN,          /* a subjectAltName: accepted, full path */
  V_CA,           /* basicConstraints CA:TRUE (keyUsage unchanged): full path */
  V_KU_CERTSIGN,  /* keyUsage with keyCertSign: refused */
  V_KU_NO_SIGN,   /* keyUsage without digitalSignature: refused */
  V_NO_KU,        /* no keyUsage: accepted, full path */
  V_NO_AKID,      /* no authorityKeyIdentifier: refused (strict) */
  V_AKID_OTHER,   /* authorityKeyIdentifier of another key: refused */
  V_NO_SGX,       /* no SGX extension: refused (pck_extension) */
  V_SGX_TWICE,    /* the SGX extension twice: refused */
  V_SGX_CRIT,     /* the SGX extension critical: refused */
  V_NEG_SERIAL,   /* a negative serial: whatever the full path says */
  V_NONMIN_LEN,   /* the outer length non-minimal (same signature) */
  V_TRAILING,     /* a byte after the signature, inside the SEQUENCE */
  V__COUNT
};

static const char *const VARIANT_NAMES[V__COUNT] = {"genuine",
                                                    "long serial",
                                                    "generalized time",
                                                    "crl dp",
                                                    "not yet valid",
                                                    "expired",
                                                    "wrong issuer",
                                                    "signed by root",
                                                    "unknown critical",
                                                    "unknown",
                                                    "san",
                                                    "ca",
                                                    "ku certsign",
                                                    "ku no digitalSignature",
                                                    "no ku",
                                                    "no akid",
                                                    "akid other",
                                                    "no sgx",
                                                    "sgx twice",
                                                    "sgx critical",
                                                    "negative serial",
                                                    "non-minimal length",
                                                    "trailing byte"};

/* The leaf DER of a variant (malloc'd). */
static uint8_t *make_leaf(hier *h, enum variant v, size_t *len) {
  X509 *x = X509_dup(h->pck);
  EVP_PKEY *signer = h->ica_key;
  time_t now = time(NULL);
  assert_non_null(x);
  ASN1_OBJECT *sgx_oid = OBJ_txt2obj(RA_PCK_SGX_EXT_OID, 1);
  int sgx = X509_get_ext_by_OBJ(x, sgx_oid, -1);
  ASN1_OBJECT_free(sgx_oid);
  X509_EXTENSION *sgx_ext = X509_EXTENSION_dup(X509_get_ext(x, sgx));
  assert_non_null(sgx_ext);
  switch (v) {
  case V_LONG_SERIAL: {
    BIGNUM *bn = BN_new();
    assert_int_equal(BN_hex2bn(&bn, "7f0102030405060708090a0b0c0d0e0f10111213") > 0, 1);
    BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(x));
    BN_free(bn);
    break;
  }
  case V_NEG_SERIAL:
    ASN1_INTEGER_set(X509_get_serialNumber(x), -5);
    break;
  case V_GENERALIZED:
    assert_non_null(X509_time_adj_ex(X509_getm_notAfter(x), 0, 0, &(time_t){ymd(2060, 1, 1)}));
    break;
  case V_CRLDP:
    add_ext(x, h->ica, NID_crl_distribution_points,
            "URI:https://certificates.trustedservices.intel.com/IntelSGXPCKPlatform.crl");
    break;
  case V_NOT_YET:
    assert_non_null(X509_time_adj_ex(X509_getm_notBefore(x), 1, 0, &now));
    break;
  case V_EXPIRED:
    assert_non_null(X509_time_adj_ex(X509_getm_notBefore(x), -10, 0, &now));
    assert_non_null(X509_time_adj_ex(X509_getm_notAfter(x), -1, 0, &now));
    break;
  case V_WRONG_ISSUER: {
    X509_NAME *n = X509_NAME_new();
    X509_NAME_add_entry_by_txt(n, "CN", MBSTRING_ASC, (const uint8_t *)"Someone Else CA", -1, -1,
                               0);
    X509_set_issuer_name(x, n);
    X509_NAME_free(n);
    break;
  }
  case V_BY_ROOT:
    signer = h->root_key;
    break;
  case V_UNKNOWN_CRIT:
    add_raw_ext(x, "1.3.6.1.4.1.99999.1", 1, (const uint8_t *)"\x05\x00", 2);
    break;
  case V_UNKNOWN:
    add_raw_ext(x, "1.3.6.1.4.1.99999.1", 0, (const uint8_t *)"\x05\x00", 2);
    break;
  case V_SAN:
    add_ext(x, h->ica, NID_subject_alt_name, "DNS:pck.example");
    break;
  case V_CA:
    add_ext(x, h->ica, NID_basic_constraints, "critical,CA:TRUE");
    break;
  case V_KU_CERTSIGN:
    add_ext(x, h->ica, NID_key_usage, "critical,digitalSignature,keyCertSign");
    break;
  case V_KU_NO_SIGN:
    add_ext(x, h->ica, NID_key_usage, "critical,keyAgreement");
    break;
  case V_NO_KU:
    X509_EXTENSION_free(X509_delete_ext(x, X509_get_ext_by_NID(x, NID_key_usage, -1)));
    break;
  case V_NO_AKID:
    X509_EXTENSION_free(
        X509_delete_ext(x, X509_get_ext_by_NID(x, NID_authority_key_identifier, -1)));
    break;
  case V_AKID_OTHER:
    add_ext(x, h->root, NID_authority_key_identifier, "keyid:always");
    break;
  case V_NO_SGX:
    X509_EXTENSION_free(X509_delete_ext(x, sgx));
    break;
  case V_SGX_TWICE:
    assert_int_equal(X509_add_ext(x, sgx_ext, -1), 1);
    break;
  case V_SGX_CRIT:
    X509_EXTENSION_set_critical(X509_get_ext(x, sgx), 1);
    break;
  default:
    break;
  }
  X509_EXTENSION_free(sgx_ext);
  assert_true(X509_sign(x, signer, EVP_sha256()) > 0);
  uint8_t *d = NULL;
  int n = i2d_X509(x, &d);
  assert_true(n > 0);
  X509_free(x);
  uint8_t *out = malloc((size_t)n + 8);
  if (v == V_NONMIN_LEN) { /* 30 82 hh ll -> 30 83 00 hh ll */
    assert_int_equal(d[1], 0x82);
    out[0] = 0x30;
    out[1] = 0x83;
    out[2] = 0;
    memcpy(out + 3, d + 2, (size_t)n - 2);
    *len = (size_t)n + 1;
  } else if (v == V_TRAILING) {
    size_t body = ((size_t)d[2] << 8 | d[3]) + 1;
    memcpy(out, d, (size_t)n);
    out[2] = (uint8_t)(body >> 8);
    out[3] = (uint8_t)body;
    out[n] = 0;
    *len = (size_t)n + 1;
  } else {
    memcpy(out, d, (size_t)n);
    *len = (size_t)n;
  }
  OPENSSL_free(d);
  return out;
}

/* The chain blob for a leaf: PEM of leaf (as its DER, base64), CA, root. */
static void chain_pem(hier *h, const uint8_t *leaf, size_t n, buf *out) {
  BIO *b = BIO_new(BIO_s_mem());
  assert_true(PEM_write_bio(b, "CERTIFICATE", "", leaf, (long)n) > 0);
  assert_int_equal(PEM_write_bio_X509(b, h->ica), 1);
  assert_int_equal(PEM_write_bio_X509(b, h->root), 1);
  char *p;
  long len = BIO_get_mem_data(b, &p);
  buf_add(out, (const uint8_t *)p, (size_t)len);
  BIO_free(b);
}

static void test_sim_variants_agree(void **state) {
  hier *h = *state;
  uint8_t rd[64] = {1, 2, 3};
  uint8_t *q;
  size_t qlen;
  assert_int_equal(ra_sim_quote(h->sim, NULL, rd, &q, &qlen), 0);
  uint8_t *crl_ca = NULL, *crl_root = NULL;
  size_t ncrl_ca, ncrl_root;
  assert_int_equal(ra_sim_crl(h->sim, 1, 0, &crl_ca, &ncrl_ca), 0);
  assert_int_equal(ra_sim_crl(h->sim, 0, 0, &crl_root, &ncrl_root), 0);
  /* expected: accepted and by which path (1 reader, 2 full), or refused */
  static const int expect[V__COUNT] = {
      [V_GENUINE] = 1,
      [V_LONG_SERIAL] = 1,
      [V_GENERALIZED] = 1,
      [V_CRLDP] = 1,
      [V_UNKNOWN] = 2,
      [V_SAN] = 2,
      [V_NO_KU] = 2,
      [V_NEG_SERIAL] = -1,
      [V_NONMIN_LEN] = -1,
      /* CA:TRUE with a key usage that cannot sign certificates: OpenSSL
       * does not count it a CA (X509_check_ca 0), the full path accepts */
      [V_CA] = 2,
  };
  for (int crls = 0; crls < 3; crls++) { /* none, the sim's, a PCK CRL revoking the leaf */
    size_t rootn;
    uint8_t *rootpem = load_path(ra_sim_root_pem_path(h->sim), &rootn);
    trio t;
    trio_new(&t, RA_VERIFIER_NO_DEFAULT_ROOT);
    trio_add_root(&t, rootpem, rootn);
    if (crls) trio_add_crl(&t, crl_root, ncrl_root);
    if (crls == 1) trio_add_crl(&t, crl_ca, ncrl_ca);
    time_t now = time(NULL);
    for (int v = 0; v < V__COUNT; v++) {
      size_t n;
      uint8_t *leaf = make_leaf(h, (enum variant)v, &n);
      buf chain = {0};
      chain_pem(h, leaf, n, &chain);
      if (crls == 2) { /* a PCK CA CRL listing this very leaf's serial */
        const uint8_t *p = leaf;
        X509 *lx = d2i_X509(NULL, &p, (long)n);
        X509_CRL *c = X509_CRL_new();
        X509_REVOKED *r = X509_REVOKED_new();
        ASN1_TIME *tm = ASN1_TIME_new();
        X509_gmtime_adj(tm, -3600); /* a leaf OpenSSL cannot read: the genuine serial */
        X509_REVOKED_set_serialNumber(r, X509_get_serialNumber(lx ? lx : h->pck));
        X509_REVOKED_set_revocationDate(r, tm);
        X509_CRL_add0_revoked(c, r);
        X509_CRL_set_version(c, 1);
        X509_CRL_set_issuer_name(c, X509_get_subject_name(h->ica));
        X509_CRL_set1_lastUpdate(c, tm);
        X509_gmtime_adj(tm, 86400);
        X509_CRL_set1_nextUpdate(c, tm);
        X509_CRL_sort(c);
        assert_true(X509_CRL_sign(c, h->ica_key, EVP_sha256()) > 0);
        trio_free(&t);
        trio_new(&t, RA_VERIFIER_NO_DEFAULT_ROOT);
        trio_add_root(&t, rootpem, rootn);
        uint8_t *cd = NULL;
        int cn = i2d_X509_CRL(c, &cd);
        assert_true(cn > 0);
        trio_add_crl(&t, crl_root, ncrl_root);
        trio_add_crl(&t, cd, (size_t)cn);
        OPENSSL_free(cd);
        ASN1_TIME_free(tm);
        X509_CRL_free(c);
        X509_free(lx);
      }
      bool fast;
      char what[96];
      /* the genuine sim chain first, so the CA-only verifier knows the CA path */
      {
        buf g = {0};
        size_t gn;
        uint8_t *gl = make_leaf(h, V_GENUINE, &gn);
        chain_pem(h, gl, gn, &g);
        snprintf(what, sizeof what, "prime before %s, crls %d", VARIANT_NAMES[v], crls);
        both(&t, q, qlen, g.p, g.n, now, &fast, what);
        free(gl);
        free(g.p);
      }
      snprintf(what, sizeof what, "%s, crls %d", VARIANT_NAMES[v], crls);
      int err = both(&t, q, qlen, chain.p, chain.n, now, &fast, what);
      if (crls == 2) {
        /* revoked (or refused for another reason first): never by the reader */
        if (err == 0) fail_msg("%s: a revoked leaf accepted", what);
        assert_false(fast);
      } else if (expect[v] == 1) {
        if (err || !fast) fail_msg("%s: %s, reader's path %d", what, ra_err_name(err), fast);
      } else if (expect[v] == 2) {
        if (err || fast) fail_msg("%s: %s, reader's path %d", what, ra_err_name(err), fast);
      } else if (expect[v] == 0) {
        if (!err) fail_msg("%s: accepted", what);
        assert_false(fast);
      } else {
        assert_false(fast); /* whatever the verdict, not by the reader */
      }
      /* again: the warm verifier's remembered signatures change nothing */
      bool fast2;
      snprintf(what, sizeof what, "%s again, crls %d", VARIANT_NAMES[v], crls);
      assert_int_equal(both(&t, q, qlen, chain.p, chain.n, now, &fast2, what), err);
      assert_int_equal(fast2, fast);
      free(chain.p);
      free(leaf);
    }
    trio_free(&t);
    free(rootpem);
  }
  free(crl_ca);
  free(crl_root);
  free(q);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_vector_leaves_read),
      cmocka_unit_test(test_reader_refuses_encodings),
      cmocka_unit_test(test_intel_leaf_mutations_agree),
      cmocka_unit_test(test_intel_times_and_crls_agree),
      cmocka_unit_test(test_collateral_agree),
      cmocka_unit_test_setup_teardown(test_sim_variants_agree, sim_setup, sim_teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
