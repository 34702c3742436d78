/* attest/verify.c: DCAP quote verification with OpenSSL, and the policy. */
#include "raloop/attest/quote/verify.h"
#include "raloop/core/file.h"

#include "raloop/attest/quote/hexb64.h"

#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/bio.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/param_build.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <sodium.h>

#define MAX_CHAIN_CERTS 8
#define CERT_CACHE_SIZE 32

/* Intel's QE vendor id, 939a7233-f79c-4ca9-940a-0db3957f0607 */
static const uint8_t INTEL_QE_VENDOR[16] = {0x93, 0x9a, 0x72, 0x33, 0xf7, 0x9c, 0x4c, 0xa9,
                                            0x94, 0x0a, 0x0d, 0xb3, 0x95, 0x7f, 0x06, 0x07};

struct ra_verifier {
  X509_STORE *store;      /* the pinned roots, parsed once */
  STACK_OF(X509) * roots; /* the same, to compare a quote's embedded root with */
  STACK_OF(X509_CRL) * crls;
  ASN1_OBJECT *sgx_ext_oid;
  /* Decoded certificates by exact DER bytes. OpenSSL 3.0 spends ~80 us
     * decoding one certificate (its public key goes through the provider
     * decoders); every quote of a platform repeats the same intermediate
     * and root, and a client often sees the same leaf again. Only parsing
     * is cached: every verification checks every signature anew. */
  struct cert_entry {
    uint8_t *der;
    size_t len;
    X509 *x;
  } cache[CERT_CACHE_SIZE];
  unsigned cache_next;
  bool no_cache;
};

/* ---- names ---- */

const char *ra_check_name(ra_check c) {
  static const char *const n[RA_CHECK__COUNT] = {
      "parse",           "chain", "crl",          "pck_extension", "qe_signature", "qe_report_data",
      "quote_signature", "debug", "measurements", "binding",       "callback",
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

/* Records a failed check; the verdict keeps the first failure. */
__attribute__((format(printf, 4, 5))) static void fail(ra_verdict *vd, ra_check c, int e,
                                                       const char *fmt, ...) {
  vd->checks[c] = RA_CHECK_FAIL;
  if (vd->err) return;
  vd->err = e;
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(vd->msg, sizeof vd->msg, fmt, ap);
  va_end(ap);
}

/* ---- verifier ---- */

static STACK_OF(X509) * parse_certs(ra_verifier *v, const uint8_t *data, size_t len, int *err);

void ra_verifier_free(ra_verifier *v) {
  if (!v) return;
  X509_STORE_free(v->store);
  sk_X509_pop_free(v->roots, X509_free);
  sk_X509_CRL_pop_free(v->crls, X509_CRL_free);
  ASN1_OBJECT_free(v->sgx_ext_oid);
  for (int i = 0; i < CERT_CACHE_SIZE; i++) {
    free(v->cache[i].der);
    X509_free(v->cache[i].x);
  }
  free(v);
}

int ra_verifier_new(unsigned flags, ra_verifier **out) {
  ra_verifier *v = calloc(1, sizeof *v);
  *out = NULL;
  if (!v) return -ENOMEM;
  v->store = X509_STORE_new();
  v->roots = sk_X509_new_null();
  v->crls = sk_X509_CRL_new_null();
  v->sgx_ext_oid = OBJ_txt2obj(RA_PCK_SGX_EXT_OID, 1);
  v->no_cache = (flags & RA_VERIFIER_NO_CERT_CACHE) != 0;
  if (!v->store || !v->roots || !v->crls || !v->sgx_ext_oid) goto nomem;
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
  int err = 0, n;
  STACK_OF(X509) * certs;
  if (!v || !data || len == 0 || len > INT_MAX) return -EINVAL;
  certs = parse_certs(NULL, data, len, &err);
  if (!certs) return -EINVAL;
  n = sk_X509_num(certs);
  /* Only self-signed CA certificates are roots: pinning a chain file or a
   * leaf by mistake is an error, not a store holding what only looks like
   * trust anchors. Checked for all before any is added. */
  for (int i = 0; i < n; i++) {
    X509 *x = sk_X509_value(certs, i);
    if (X509_check_ca(x) != 1 || X509_self_signed(x, 1) != 1) {
      sk_X509_pop_free(certs, X509_free);
      ERR_clear_error();
      return -EINVAL;
    }
  }
  for (int i = 0; i < n; i++) {
    X509 *x = sk_X509_value(certs, i);
    /* roots takes over the stack's reference and the slot is cleared, so
     * that the error path frees only what roots does not own (it used to
     * free certificates roots already held); the store takes its own. */
    if (!sk_X509_push(v->roots, x)) {
      sk_X509_pop_free(certs, X509_free);
      return -ENOMEM;
    }
    sk_X509_set(certs, i, NULL);
    if (!X509_STORE_add_cert(v->store, x)) {
      (void)sk_X509_pop(v->roots);
      X509_free(x);
      sk_X509_pop_free(certs, X509_free);
      ERR_clear_error();
      return -ENOMEM;
    }
  }
  sk_X509_free(certs);
  return n;
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

/* All or nothing: a CRL that does not parse must not leave the others
 * applied as if the set were complete (a garbled second CRL in a PEM file
 * used to be dropped silently, and with it every revocation it lists). */
int ra_verifier_add_crl(ra_verifier *v, const uint8_t *data, size_t len) {
  STACK_OF(X509_CRL) *got = NULL;
  int n = 0, rc = -EINVAL;
  if (!v || !data || len == 0 || len > INT_MAX) return -EINVAL;
  if (!(got = sk_X509_CRL_new_null())) return -ENOMEM;
  if (is_pem(data, len)) {
    BIO *b = BIO_new_mem_buf(data, (int)len);
    X509_CRL *c;
    /* every CRL block must parse; other PEM blocks are refused too */
    int blocks = count_str(data, len, "-----BEGIN ");
    if (!b) {
      rc = -ENOMEM;
      goto out;
    }
    while ((c = PEM_read_bio_X509_CRL(b, NULL, NULL, NULL))) {
      if (!sk_X509_CRL_push(got, c)) {
        X509_CRL_free(c);
        BIO_free(b);
        rc = -ENOMEM;
        goto out;
      }
    }
    BIO_free(b);
    if (sk_X509_CRL_num(got) != blocks ||
        count_str(data, len, "-----BEGIN X509 CRL-----") != blocks)
      goto out;
  } else {
    const uint8_t *p = data;
    X509_CRL *c = d2i_X509_CRL(NULL, &p, (long)len);
    if (!c) goto out;
    if (!sk_X509_CRL_push(got, c)) {
      X509_CRL_free(c);
      rc = -ENOMEM;
      goto out;
    }
    /* trailing bytes: not the one DER CRL this claims to be */
    for (; p < data + len; p++)
      if (*p != 0 && *p != ' ' && *p != '\n' && *p != '\r' && *p != '\t') goto out;
  }
  n = sk_X509_CRL_num(got);
  if (n == 0) goto out;
  for (int i = 0; i < n; i++)
    if (!sk_X509_CRL_push(v->crls, sk_X509_CRL_value(got, i))) {
      /* undo: the ones pushed so far belong to got again */
      for (int j = 0; j < i; j++) (void)sk_X509_CRL_pop(v->crls);
      rc = -ENOMEM;
      goto out;
    }
  sk_X509_CRL_free(got);
  return n;
out:
  ERR_clear_error();
  sk_X509_CRL_pop_free(got, X509_CRL_free);
  return rc;
}

int ra_verifier_add_crl_file(ra_verifier *v, const char *path) {
  return add_file(v, path, ra_verifier_add_crl);
}

/* ---- certificates ---- */

/* Length of the DER SEQUENCE at p (header included), 0 if malformed. */
static size_t der_seq_len(const uint8_t *p, size_t avail) {
  size_t n, hl;
  if (avail < 2 || p[0] != 0x30) return 0;
  if (p[1] < 0x80) {
    n = p[1];
    hl = 2;
  } else {
    size_t k = p[1] & 0x7f;
    if (k == 0 || k > 3 || avail < 2 + k) return 0;
    n = 0;
    for (size_t i = 0; i < k; i++) n = n << 8 | p[2 + i];
    hl = 2 + k;
  }
  return avail - hl < n ? 0 : hl + n;
}

/* One DER certificate of exactly len bytes (through the cache when v). */
static X509 *decode_cert(ra_verifier *v, const uint8_t *der, size_t len) {
  const uint8_t *p = der;
  X509 *x;
  if (v && !v->no_cache)
    for (int i = 0; i < CERT_CACHE_SIZE; i++)
      if (v->cache[i].x && v->cache[i].len == len && !memcmp(v->cache[i].der, der, len)) {
        X509_up_ref(v->cache[i].x);
        return v->cache[i].x;
      }
  x = d2i_X509(NULL, &p, (long)len);
  if (!x || p != der + len) {
    X509_free(x);
    return NULL;
  }
  if (v && !v->no_cache) {
    struct cert_entry *e = &v->cache[v->cache_next++ % CERT_CACHE_SIZE];
    uint8_t *copy = malloc(len);
    if (copy) {
      free(e->der);
      X509_free(e->x);
      memcpy(copy, der, len);
      e->der = copy;
      e->len = len;
      X509_up_ref(x);
      e->x = x;
    }
  }
  return x;
}

/* Parses a blob of certificates: PEM blocks and/or concatenated DER, with
 * whitespace and NUL padding between them (Intel's type-5 data is PEM with a
 * trailing NUL; its sample TDX quote is DER). Returns NULL and *err = -EINVAL
 * on anything else. */
static STACK_OF(X509) * parse_certs(ra_verifier *v, const uint8_t *data, size_t len, int *err) {
  static const char begin[] = "-----BEGIN CERTIFICATE-----";
  static const char end[] = "-----END CERTIFICATE-----";
  STACK_OF(X509) *sk = sk_X509_new_null();
  const uint8_t *p = data, *e = data + len;
  uint8_t *der = NULL;

  *err = -ENOMEM;
  if (!sk) return NULL;
  *err = -EINVAL;
  while (p < e) {
    X509 *x = NULL;
    if (*p == 0 || *p == ' ' || *p == '\n' || *p == '\r' || *p == '\t') {
      p++;
      continue;
    }
    if (sk_X509_num(sk) >= MAX_CHAIN_CERTS) goto bad;
    if ((size_t)(e - p) >= sizeof begin - 1 && !memcmp(p, begin, sizeof begin - 1)) {
      const uint8_t *body = p + sizeof begin - 1;
      const uint8_t *q = memmem(body, (size_t)(e - body), end, sizeof end - 1);
      size_t dlen;
      /* one block at a time: an END that belongs to a later block
             * (this one's END garbled) must not swallow that block */
      if (!q || memmem(body, (size_t)(q - body), "-----", 5)) goto bad;
      der = malloc((size_t)(q - body) / 4 * 3 + 3);
      if (!der || ra_base64_decode(body, (size_t)(q - body), der, &dlen) ||
          der_seq_len(der, dlen) != dlen)
        goto bad;
      x = decode_cert(v, der, dlen);
      free(der);
      der = NULL;
      p = q + sizeof end - 1;
    } else {
      size_t n = der_seq_len(p, (size_t)(e - p));
      if (!n) goto bad;
      x = decode_cert(v, p, n);
      p += n;
    }
    if (!x) goto bad;
    if (!sk_X509_push(sk, x)) {
      X509_free(x);
      goto bad;
    }
  }
  if (sk_X509_num(sk) == 0) goto bad;
  *err = 0;
  return sk;
bad:
  free(der);
  ERR_clear_error();
  sk_X509_pop_free(sk, X509_free);
  return NULL;
}

static bool self_issued(X509 *x) { return X509_check_issued(x, x) == X509_V_OK; }

/* The leaf: the one certificate that issued none of the others. */
static X509 *find_leaf(STACK_OF(X509) * sk) {
  X509 *leaf = NULL;
  int n = sk_X509_num(sk);
  for (int i = 0; i < n; i++) {
    X509 *x = sk_X509_value(sk, i);
    bool issuer = false;
    for (int j = 0; j < n && !issuer; j++)
      if (j != i && X509_check_issued(x, sk_X509_value(sk, j)) == X509_V_OK) issuer = true;
    if (issuer) continue;
    if (leaf) return NULL; /* two leaves: not one path */
    leaf = x;
  }
  return leaf;
}

static time_t asn1_time_to_unix(const ASN1_TIME *t) {
  struct tm tm;
  if (!t || !ASN1_TIME_to_tm(t, &tm)) return 0;
  return timegm(&tm);
}

static bool is_pinned(ra_verifier *v, X509 *x) {
  for (int i = 0; i < sk_X509_num(v->roots); i++)
    if (!X509_cmp(x, sk_X509_value(v->roots, i))) return true;
  return false;
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

static void subject_line(X509 *x, char *out, size_t n) {
  if (!X509_NAME_oneline(X509_get_subject_name(x), out, (int)n)) snprintf(out, n, "?");
}

/* Verifies the path leaf -> ... -> pinned root at time `at`. On success
 * returns the validated chain (caller frees with sk_X509_pop_free). */
static STACK_OF(X509) *
    check_chain(ra_verifier *v, STACK_OF(X509) * certs, X509 *leaf, time_t at, ra_verdict *vd) {
  STACK_OF(X509) *chain = NULL;
  X509_STORE_CTX *ctx = NULL;

  /* A root carried in the quote must be one we pinned: a look-alike root
     * (Intel's subject, another key) is refused by name, not silently
     * ignored because the store happened to hold the real one. */
  for (int i = 0; i < sk_X509_num(certs); i++) {
    X509 *x = sk_X509_value(certs, i);
    if (x != leaf && self_issued(x) && !is_pinned(v, x)) {
      char s[128];
      subject_line(x, s, sizeof s);
      fail(vd, RA_CHECK_CHAIN, RA_ERR_ROOT_UNTRUSTED,
           "the chain's root %s is not a pinned root (same name, other key?)", s);
      return NULL;
    }
  }
  ctx = X509_STORE_CTX_new();
  if (!ctx || !X509_STORE_CTX_init(ctx, v->store, leaf, certs)) {
    fail(vd, RA_CHECK_CHAIN, RA_ERR_INTERNAL, "X509_STORE_CTX_init failed");
    goto out;
  }
  X509_STORE_CTX_set_time(ctx, 0, at);
  X509_STORE_CTX_set_depth(ctx, MAX_CHAIN_CERTS);
  /* strict: a CA must say so in critical basicConstraints (by default
   * OpenSSL takes keyCertSign alone as a CA), key usage present on CAs,
   * key identifiers, no explicit EC parameters. Intel's certificates and
   * the sim's comply. */
  X509_STORE_CTX_set_flags(ctx, X509_V_FLAG_X509_STRICT);
  if (X509_verify_cert(ctx) != 1) {
    int e = X509_STORE_CTX_get_error(ctx), depth = X509_STORE_CTX_get_error_depth(ctx);
    X509 *bad = X509_STORE_CTX_get_current_cert(ctx);
    char s[128] = "?";
    if (bad) subject_line(bad, s, sizeof s);
    fail(vd, RA_CHECK_CHAIN, map_x509_error(e), "PCK chain: %s (depth %d, %s)",
         X509_verify_cert_error_string(e), depth, s);
    goto out;
  }
  chain = X509_STORE_CTX_get1_chain(ctx);
  if (!chain) {
    fail(vd, RA_CHECK_CHAIN, RA_ERR_INTERNAL, "out of memory");
    goto out;
  }
  /* Every certificate given must be on the validated path: a stray one
     * (e.g. an altered copy of the root the store then replaced) means the
     * chain is not what it claims to be. */
  for (int i = 0; i < sk_X509_num(certs); i++) {
    X509 *x = sk_X509_value(certs, i);
    bool on_path = false;
    for (int j = 0; j < sk_X509_num(chain) && !on_path; j++)
      on_path = !X509_cmp(x, sk_X509_value(chain, j));
    if (!on_path) {
      char s[128];
      bool rootlike = !X509_NAME_cmp(X509_get_subject_name(x), X509_get_issuer_name(x));
      subject_line(x, s, sizeof s);
      fail(vd, RA_CHECK_CHAIN, rootlike ? RA_ERR_ROOT_UNTRUSTED : RA_ERR_CHAIN_BROKEN,
           "certificate %s is not on the path to the pinned root%s", s,
           rootlike ? " (not a pinned root)" : "");
      sk_X509_pop_free(chain, X509_free);
      chain = NULL;
      goto out;
    }
  }
  /* Intel's shape, and nothing else: PCK leaf -> PCK Platform/Processor CA
   * -> root. The leaf signs QE reports, so it must be an end entity whose
   * key may sign; a CA certificate (or the root itself, or a leaf hung
   * directly under the root) is not a PCK certificate. */
  {
    int n = sk_X509_num(chain);
    uint32_t xf = X509_get_extension_flags(leaf);
    const char *why = n != 3                     ? "the path is not leaf, CA, root"
                      : X509_check_ca(leaf) != 0 ? "the PCK leaf is a CA certificate"
                      : (xf & EXFLAG_KUSAGE) && !(X509_get_key_usage(leaf) & KU_DIGITAL_SIGNATURE)
                          ? "the PCK leaf's key usage excludes digitalSignature"
                          : NULL;
    if (why) {
      fail(vd, RA_CHECK_CHAIN, RA_ERR_CHAIN_INVALID, "PCK chain: %s (%d certificates)", why, n);
      sk_X509_pop_free(chain, X509_free);
      chain = NULL;
      goto out;
    }
  }
  vd->chain_len = sk_X509_num(chain);
  X509 *root = sk_X509_value(chain, vd->chain_len - 1);
  unsigned mdlen = 0;
  subject_line(root, vd->root_subject, sizeof vd->root_subject);
  if (X509_digest(root, EVP_sha256(), vd->root_sha256, &mdlen) != 1 || mdlen != 32) {
    fail(vd, RA_CHECK_CHAIN, RA_ERR_INTERNAL, "cannot fingerprint the root");
    sk_X509_pop_free(chain, X509_free);
    chain = NULL;
    goto out;
  }
  vd->checks[RA_CHECK_CHAIN] = RA_CHECK_PASS;
out:
  X509_STORE_CTX_free(ctx);
  ERR_clear_error();
  return chain;
}

/* Applies every CRL whose issuer is in the validated chain. */
static void check_crls(ra_verifier *v, STACK_OF(X509) * chain, time_t at, ra_verdict *vd) {
  int n = sk_X509_CRL_num(v->crls), m = sk_X509_num(chain);
  if (n == 0) {
    vd->checks[RA_CHECK_CRL] = RA_CHECK_SKIPPED;
    return;
  }
  for (int i = 0; i < n; i++) {
    X509_CRL *crl = sk_X509_CRL_value(v->crls, i);
    X509 *issuer = NULL;
    char s[128];
    for (int j = 0; j < m && !issuer; j++)
      if (!X509_NAME_cmp(X509_CRL_get_issuer(crl), X509_get_subject_name(sk_X509_value(chain, j))))
        issuer = sk_X509_value(chain, j);
    if (!issuer) continue; /* a CRL of another CA revokes nothing here */
    subject_line(issuer, s, sizeof s);
    EVP_PKEY *k = X509_get0_pubkey(issuer);
    /* an issuer whose key usage excludes CRL signing cannot sign CRLs */
    bool may_sign = !(X509_get_extension_flags(issuer) & EXFLAG_KUSAGE) ||
                    (X509_get_key_usage(issuer) & KU_CRL_SIGN);
    if (!k || !may_sign || X509_CRL_verify(crl, k) != 1) {
      ERR_clear_error();
      fail(vd, RA_CHECK_CRL, RA_ERR_CRL_SIGNATURE, "CRL claiming issuer %s is not signed by it", s);
      return;
    }
    const ASN1_TIME *last = X509_CRL_get0_lastUpdate(crl), *next = X509_CRL_get0_nextUpdate(crl);
    /* X509_cmp_time: -1 earlier or equal, 1 later, 0 on a time it cannot
     * read (that used to pass). A CRL without nextUpdate (RFC 5280 wants
     * one; Intel's have one) could be replayed forever: refused. */
    int cl = last ? X509_cmp_time(last, &at) : 0, cn = next ? X509_cmp_time(next, &at) : 0;
    if (cl != -1 || cn != 1) {
      fail(vd, RA_CHECK_CRL, RA_ERR_CRL_EXPIRED,
           "CRL of %s is not valid at the verification time%s", s,
           !next                  ? " (it has no nextUpdate)"
           : (cl == 0 || cn == 0) ? " (unreadable time)"
                                  : "");
      return;
    }
    vd->crls_applied++;
    for (int j = 0; j < m; j++) {
      X509 *x = sk_X509_value(chain, j), *rev_x = x;
      X509_REVOKED *rev;
      if (x == issuer || X509_check_issued(issuer, x) != X509_V_OK) continue;
      if (X509_CRL_get0_by_cert(crl, &rev, rev_x) == 1) {
        char cs[128];
        subject_line(x, cs, sizeof cs);
        fail(vd, RA_CHECK_CRL, RA_ERR_CERT_REVOKED, "%s is revoked by the CRL of %s", cs, s);
        return;
      }
    }
  }
  vd->checks[RA_CHECK_CRL] = RA_CHECK_PASS;
}

static void check_pck_ext(ra_verifier *v, X509 *leaf, ra_verdict *vd) {
  int idx = X509_get_ext_by_OBJ(leaf, v->sgx_ext_oid, -1);
  X509_EXTENSION *ext = idx >= 0 ? X509_get_ext(leaf, idx) : NULL;
  ASN1_OCTET_STRING *os = ext ? X509_EXTENSION_get_data(ext) : NULL;
  if (!os) {
    fail(vd, RA_CHECK_PCK_EXT, RA_ERR_PCK_EXTENSION, "PCK leaf has no SGX extension (%s)",
         RA_PCK_SGX_EXT_OID);
    return;
  }
  if (X509_get_ext_by_OBJ(leaf, v->sgx_ext_oid, idx) >= 0 ||
      ra_pck_parse_ext(ASN1_STRING_get0_data(os), (size_t)ASN1_STRING_length(os), &vd->pck)) {
    fail(vd, RA_CHECK_PCK_EXT, RA_ERR_PCK_EXTENSION, "PCK leaf SGX extension is malformed");
    return;
  }
  vd->has_pck = true;
  vd->checks[RA_CHECK_PCK_EXT] = RA_CHECK_PASS;
}

/* ---- ECDSA ---- */

/* Verifies a raw r||s P-256 signature over SHA-256(msg). 1 valid, 0 not. */
static int ecdsa_verify(EVP_PKEY *key, const uint8_t *msg, size_t len, const uint8_t sig[64]) {
  uint8_t der[80];
  int ok = 0;
  ECDSA_SIG *s = ECDSA_SIG_new();
  BIGNUM *r = BN_bin2bn(sig, 32, NULL), *ss = BN_bin2bn(sig + 32, 32, NULL);
  EVP_MD_CTX *md = EVP_MD_CTX_new();
  if (!s || !r || !ss || !md) {
    BN_free(r);
    BN_free(ss);
    goto out;
  }
  ECDSA_SIG_set0(s, r, ss);
  uint8_t *p = der;
  int dl = i2d_ECDSA_SIG(s, NULL);
  if (dl <= 0 || dl > (int)sizeof der) goto out;
  dl = i2d_ECDSA_SIG(s, &p);
  if (EVP_DigestVerifyInit(md, NULL, EVP_sha256(), NULL, key) == 1 &&
      EVP_DigestVerify(md, der, (size_t)dl, msg, len) == 1)
    ok = 1;
out:
  ECDSA_SIG_free(s);
  EVP_MD_CTX_free(md);
  ERR_clear_error();
  return ok;
}

/* The attestation key (x||y) as an EVP_PKEY, or NULL when not on P-256. */
static EVP_PKEY *p256_key(const uint8_t xy[64]) {
  uint8_t pt[65];
  EVP_PKEY *k = NULL;
  EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_from_name(NULL, "EC", NULL);
  OSSL_PARAM params[3];
  pt[0] = 0x04;
  memcpy(pt + 1, xy, 64);
  params[0] = OSSL_PARAM_construct_utf8_string(OSSL_PKEY_PARAM_GROUP_NAME, (char *)"prime256v1", 0);
  params[1] = OSSL_PARAM_construct_octet_string(OSSL_PKEY_PARAM_PUB_KEY, pt, sizeof pt);
  params[2] = OSSL_PARAM_construct_end();
  if (!ctx || EVP_PKEY_fromdata_init(ctx) != 1 ||
      EVP_PKEY_fromdata(ctx, &k, EVP_PKEY_PUBLIC_KEY, params) != 1)
    k = NULL;
  EVP_PKEY_CTX_free(ctx);
  ERR_clear_error();
  return k;
}

static bool is_p256(EVP_PKEY *k) {
  char g[32];
  size_t gl = 0;
  return k && EVP_PKEY_is_a(k, "EC") &&
         EVP_PKEY_get_utf8_string_param(k, OSSL_PKEY_PARAM_GROUP_NAME, g, sizeof g, &gl) == 1 &&
         !strcmp(g, "prime256v1");
}

/* ---- policy ---- */

static bool eq(const uint8_t *a, const uint8_t *b, size_t n) { return CRYPTO_memcmp(a, b, n) == 0; }

static bool tdx_match(const ra_td_report *t, const ra_tdx_expect *e) {
  if ((e->has & RA_TDX_MRTD) && !eq(t->mrtd, e->mrtd, 48)) return false;
  for (int i = 0; i < 4; i++)
    if ((e->has & (RA_TDX_RTMR0 << i)) && !eq(t->rtmr[i], e->rtmr[i], 48)) return false;
  if ((e->has & RA_TDX_REPORT_DATA) && !eq(t->report_data, e->report_data, 64)) return false;
  if ((e->has & RA_TDX_MR_CONFIG_ID) && !eq(t->mr_config_id, e->mr_config_id, 48)) return false;
  if ((e->has & RA_TDX_MR_OWNER) && !eq(t->mr_owner, e->mr_owner, 48)) return false;
  if ((e->has & RA_TDX_MR_OWNER_CONFIG) && !eq(t->mr_owner_config, e->mr_owner_config, 48))
    return false;
  if ((e->has & RA_TDX_XFAM) && !eq(t->xfam, e->xfam, 8)) return false;
  if ((e->has & RA_TDX_TD_ATTRIBUTES) && !eq(t->td_attributes, e->td_attributes, 8)) return false;
  return true;
}

static bool sgx_match(const ra_sgx_report *r, const ra_sgx_expect *e) {
  if ((e->has & RA_SGX_MR_ENCLAVE) && !eq(r->mr_enclave, e->mr_enclave, 32)) return false;
  if ((e->has & RA_SGX_MR_SIGNER) && !eq(r->mr_signer, e->mr_signer, 32)) return false;
  if ((e->has & RA_SGX_ISV_PROD_ID) && r->isv_prod_id != e->isv_prod_id) return false;
  if ((e->has & RA_SGX_MIN_ISV_SVN) && r->isv_svn < e->min_isv_svn) return false;
  if ((e->has & RA_SGX_REPORT_DATA) && !eq(r->report_data, e->report_data, 64)) return false;
  return true;
}

static void check_measurements(const ra_quote *q, const ra_policy *pol, ra_verdict *vd) {
  bool tdx = q->body_type != RA_BODY_SGX;
  size_t n = tdx ? pol->n_tdx : pol->n_sgx;
  if (pol->n_tdx == 0 && pol->n_sgx == 0) {
    vd->checks[RA_CHECK_MEASUREMENTS] = RA_CHECK_SKIPPED;
    return;
  }
  /* a count without its array: a caller's mistake, refused (not a crash) */
  if ((pol->n_tdx && !pol->tdx) || (pol->n_sgx && !pol->sgx)) {
    fail(vd, RA_CHECK_MEASUREMENTS, RA_ERR_POLICY_EMPTY,
         "the policy counts measurement sets it does not give");
    return;
  }
  for (size_t i = 0; i < pol->n_tdx; i++)
    if (!(pol->tdx[i].has & 0x7ffu)) {
      fail(vd, RA_CHECK_MEASUREMENTS, RA_ERR_POLICY_EMPTY, "TDX measurement set %zu checks nothing",
           i);
      return;
    }
  for (size_t i = 0; i < pol->n_sgx; i++)
    if (!(pol->sgx[i].has & 0x1fu)) {
      fail(vd, RA_CHECK_MEASUREMENTS, RA_ERR_POLICY_EMPTY, "SGX measurement set %zu checks nothing",
           i);
      return;
    }
  for (size_t i = 0; i < n; i++) {
    if (tdx ? tdx_match(&q->td, &pol->tdx[i]) : sgx_match(&q->enclave, &pol->sgx[i])) {
      vd->matched_set = (int)i;
      vd->checks[RA_CHECK_MEASUREMENTS] = RA_CHECK_PASS;
      return;
    }
  }
  if (n == 0)
    fail(vd, RA_CHECK_MEASUREMENTS, RA_ERR_MEASUREMENT,
         "a %s quote, but the policy lists only %s measurements", tdx ? "TDX" : "SGX",
         tdx ? "SGX" : "TDX");
  else
    fail(vd, RA_CHECK_MEASUREMENTS, RA_ERR_MEASUREMENT,
         "measurements match none of the %zu accepted %s set(s)", n, tdx ? "TDX" : "SGX");
}

static void check_binding(const ra_quote *q, const ra_policy *pol, ra_verdict *vd) {
  uint8_t want[64];
  const uint8_t *rd = ra_quote_report_data(q);
  if (!pol->x25519_pub) {
    vd->checks[RA_CHECK_BINDING] = RA_CHECK_SKIPPED;
    return;
  }
  if (q->body_type != RA_BODY_SGX) {
    crypto_hash_sha512_state c;
    /* as the reference client: no verifier_data, no binding */
    if (!pol->binding_val || !pol->binding_iat) {
      fail(vd, RA_CHECK_BINDING, RA_ERR_BINDING,
           "TDX key binding needs verifier_data (val and iat), and there is none");
      return;
    }
    crypto_hash_sha512_init(&c);
    if (pol->binding_val_len) crypto_hash_sha512_update(&c, pol->binding_val, pol->binding_val_len);
    if (pol->binding_iat_len) crypto_hash_sha512_update(&c, pol->binding_iat, pol->binding_iat_len);
    crypto_hash_sha512_update(&c, pol->x25519_pub, 32);
    crypto_hash_sha512_final(&c, want);
  } else {
    crypto_hash_sha256(want, pol->x25519_pub, 32);
    memset(want + 32, 0, 32);
  }
  if (!eq(rd, want, 64)) {
    fail(vd, RA_CHECK_BINDING, RA_ERR_BINDING, "report_data does not bind the X25519 key (%s)",
         q->body_type != RA_BODY_SGX ? "SHA-512(val || iat || key)" : "SHA-256(key) || 0^32");
    return;
  }
  vd->checks[RA_CHECK_BINDING] = RA_CHECK_PASS;
}

/* ---- the whole verification ---- */

int ra_verify_quote(ra_verifier *v, const uint8_t *buf, size_t len, const ra_verify_opts *opts,
                    const ra_policy *pol, ra_verdict *vd) {
  ra_quote q;
  STACK_OF(X509) *certs = NULL, *chain = NULL;
  X509 *leaf = NULL;
  EVP_PKEY *att = NULL;
  time_t at = opts && opts->at ? opts->at : time(NULL);
  int rc;

  memset(vd, 0, sizeof *vd);
  vd->matched_set = -1;
  vd->at = at;
  if (!v || !pol) {
    fail(vd, RA_CHECK_PARSE, RA_ERR_INTERNAL, "no verifier or no policy");
    return -EINVAL;
  }

  /* 1. parse */
  if ((rc = ra_quote_parse(buf, len, &q))) {
    fail(vd, RA_CHECK_PARSE, rc, "%s", ra_strerror(rc));
    return -EACCES;
  }
  vd->tee_type = q.tee_type;
  vd->version = q.version;
  vd->debug = ra_quote_is_debug(&q);
  if (!eq(q.qe_vendor_id, INTEL_QE_VENDOR, 16)) {
    fail(vd, RA_CHECK_PARSE, RA_ERR_QE_VENDOR, "QE vendor id is not Intel's");
    return -EACCES;
  }
  vd->checks[RA_CHECK_PARSE] = RA_CHECK_PASS;

  /* 2. PCK chain */
  if (opts && opts->pck_chain && opts->pck_chain_len) {
    certs = parse_certs(v, opts->pck_chain, opts->pck_chain_len, &rc);
    if (!certs)
      fail(vd, RA_CHECK_CHAIN, RA_ERR_CERT_PARSE, "the supplied PCK chain does not parse");
  } else if (q.cert_type == RA_CERT_PCK_CHAIN) {
    vd->chain_from_quote = true;
    certs = parse_certs(v, q.cert_data.p, q.cert_data.len, &rc);
    if (!certs) fail(vd, RA_CHECK_CHAIN, RA_ERR_CERT_PARSE, "the quote's PCK chain does not parse");
  } else {
    fail(vd, RA_CHECK_CHAIN, RA_ERR_NO_PCK_CHAIN,
         "certification data type %u carries no PCK chain; supply one", q.cert_type);
  }
  if (certs && !(leaf = find_leaf(certs)))
    fail(vd, RA_CHECK_CHAIN, RA_ERR_CHAIN_BROKEN, "the PCK certificates do not form a single path");
  if (leaf) {
    vd->pck_not_before = asn1_time_to_unix(X509_get0_notBefore(leaf));
    vd->pck_not_after = asn1_time_to_unix(X509_get0_notAfter(leaf));
    chain = check_chain(v, certs, leaf, at, vd);
    if (chain) check_crls(v, chain, at, vd);
    check_pck_ext(v, leaf, vd);
  }

  /* 3. QE report signed by the PCK key, and binding the attestation key */
  if (leaf) {
    EVP_PKEY *pk = X509_get0_pubkey(leaf);
    if (is_p256(pk) && ecdsa_verify(pk, q.qe_report.raw, RA_SGX_REPORT_LEN, q.qe_report_sig))
      vd->checks[RA_CHECK_QE_SIG] = RA_CHECK_PASS;
    else
      fail(vd, RA_CHECK_QE_SIG, RA_ERR_QE_REPORT_SIGNATURE,
           "QE report signature does not verify with the PCK key");
    ERR_clear_error();
  }
  {
    uint8_t h[32];
    static const uint8_t zero[32];
    crypto_hash_sha256_state c;
    crypto_hash_sha256_init(&c);
    crypto_hash_sha256_update(&c, q.att_key, 64);
    crypto_hash_sha256_update(&c, q.qe_auth_data.p, q.qe_auth_data.len);
    crypto_hash_sha256_final(&c, h);
    if (!eq(h, q.qe_report.report_data, 32) || !eq(zero, q.qe_report.report_data + 32, 32))
      fail(vd, RA_CHECK_QE_DATA, RA_ERR_QE_REPORT_DATA,
           "QE report_data != SHA-256(attestation key || QE auth data) || 0^32");
    /* A debug QE's attestation key can be read by whoever runs it: what it
     * signs proves nothing. Intel's QE identity (not evaluated here) says
     * the same; allow_debug is about the application, never the QE. */
    else if (q.qe_report.attributes[0] & 0x02)
      fail(vd, RA_CHECK_QE_DATA, RA_ERR_QE_DEBUG,
           "the QE report comes from a debug quoting enclave (attributes bit 1)");
    else
      vd->checks[RA_CHECK_QE_DATA] = RA_CHECK_PASS;
  }

  /* 4. quote signature by the attestation key */
  if (!(att = p256_key(q.att_key)))
    fail(vd, RA_CHECK_QUOTE_SIG, RA_ERR_ATT_KEY, "attestation key is not a P-256 point");
  else if (ecdsa_verify(att, q.signed_data.p, q.signed_data.len, q.signature))
    vd->checks[RA_CHECK_QUOTE_SIG] = RA_CHECK_PASS;
  else
    fail(vd, RA_CHECK_QUOTE_SIG, RA_ERR_QUOTE_SIGNATURE,
         "quote signature does not verify with the attestation key");

  /* 5. policy */
  if (vd->debug && !pol->allow_debug)
    fail(vd, RA_CHECK_DEBUG, RA_ERR_DEBUG, "%s",
         q.body_type == RA_BODY_SGX ? "debug enclave (attributes bit 1) refused"
                                    : "TD under debug (td_attributes bits 7:0, TUD) refused");
  else
    vd->checks[RA_CHECK_DEBUG] = RA_CHECK_PASS;
  check_measurements(&q, pol, vd);
  check_binding(&q, pol, vd);
  if (vd->checks[RA_CHECK_MEASUREMENTS] == RA_CHECK_SKIPPED &&
      vd->checks[RA_CHECK_BINDING] == RA_CHECK_SKIPPED && !pol->callback && !pol->signature_only)
    fail(vd, RA_CHECK_MEASUREMENTS, RA_ERR_POLICY_EMPTY,
         "the policy checks nothing: give measurements, a key binding or a callback (or "
         "signature_only)");
  if (!pol->callback) {
    vd->checks[RA_CHECK_CALLBACK] = RA_CHECK_SKIPPED;
  } else if (vd->err == 0) {
    /* the callback sees only quotes that passed everything else */
    char saved[sizeof vd->msg];
    memcpy(saved, vd->msg, sizeof saved);
    vd->msg[0] = '\0';
    if (pol->callback(&q, vd, pol->callback_ud) != 0) {
      char why[sizeof vd->msg];
      snprintf(why, sizeof why, "%s", vd->msg[0] ? vd->msg : "refused by the policy callback");
      fail(vd, RA_CHECK_CALLBACK, RA_ERR_CALLBACK, "%s", why);
    } else {
      memcpy(vd->msg, saved, sizeof saved);
      vd->checks[RA_CHECK_CALLBACK] = RA_CHECK_PASS;
    }
  }

  EVP_PKEY_free(att);
  sk_X509_pop_free(chain, X509_free);
  sk_X509_pop_free(certs, X509_free);
  if (vd->err == 0) snprintf(vd->msg, sizeof vd->msg, "valid");
  return vd->err == 0 ? 0 : -EACCES;
}
