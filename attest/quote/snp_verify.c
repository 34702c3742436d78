/* attest/quote/snp_verify.c: SEV-SNP report verification: parse, chain,
 * CRLs, VCEK extensions, the report signature, then the policy
 * (snp_verify.h for the order and the codes). */
#include "raloop/attest/quote/snp_verify.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/ecdsa.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>

#include "raloop/attest/quote/snp_internal.h"
#include "raloop/core/error.h"
#include "raloop/core/file.h"

#define INPUT_MAX (1u << 20)

/* Decoded certificate blobs by exact bytes: decoding (an RSA-4096 ASK and
 * ARK, a P-384 VCEK) is most of a warm verification's cost otherwise, and
 * a client sees the same VCEK and chain again and again. */
#define CERT_CACHE 8
struct ra_snp_verifier {
  ra_snp_trust t;
  struct cert_entry {
    uint8_t *bytes;
    size_t len;
    STACK_OF(X509) * sk;
  } cache[CERT_CACHE];
  unsigned next;
  bool cache_off;
};

/* A new stack (new references) of the certificates in data[0..len). */
static STACK_OF(X509) * certs_get(ra_snp_verifier *v, const uint8_t *data, size_t len) {
  struct cert_entry *hit = NULL;
  for (int i = 0; !v->cache_off && i < CERT_CACHE; i++)
    if (v->cache[i].sk && v->cache[i].len == len && !memcmp(v->cache[i].bytes, data, len))
      hit = &v->cache[i];
  if (!hit) {
    STACK_OF(X509) *sk = ra_snp_certs_parse(data, len);
    if (!sk || v->cache_off) return sk;
    uint8_t *copy = malloc(len);
    if (!copy) return sk; /* out of memory only means no caching */
    memcpy(copy, data, len);
    hit = &v->cache[v->next++ % CERT_CACHE];
    free(hit->bytes);
    sk_X509_pop_free(hit->sk, X509_free);
    hit->bytes = copy;
    hit->len = len;
    hit->sk = sk;
  }
  STACK_OF(X509) *out = sk_X509_dup(hit->sk);
  for (int i = 0; out && i < sk_X509_num(out); i++) X509_up_ref(sk_X509_value(out, i));
  return out;
}

void ra_snp_fail(ra_snp_verdict *vd, ra_snp_check c, int code, const char *fmt, ...) {
  vd->checks[c] = RA_CHECK_FAIL;
  if (vd->err) return;
  vd->err = code;
  vd->failed = (int)c;
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(vd->msg, sizeof vd->msg, fmt, ap);
  va_end(ap);
}

const char *ra_snp_check_name(ra_snp_check c) {
  static const char *const names[RA_SNP_CHECK__COUNT] = {
      "parse",        "chain", "crl", "vcek_extensions", "report_signature", "debug",
      "guest_policy", "vmpl",  "tcb", "measurements",    "binding",          "callback"};
  return (unsigned)c < RA_SNP_CHECK__COUNT ? names[c] : "?";
}

int ra_snp_verifier_new(unsigned flags, ra_snp_verifier **out) {
  if (!out) return -EINVAL;
  *out = NULL;
  ra_snp_verifier *v = calloc(1, sizeof *v);
  if (!v) return -ENOMEM;
  v->t.arks = sk_X509_new_null();
  v->t.inters = sk_X509_new_null();
  v->t.crls = sk_X509_CRL_new_null();
  int rc = v->t.arks && v->t.inters && v->t.crls ? 0 : -ENOMEM;
  v->cache_off = v->t.memo_off = (flags & RA_SNP_VERIFIER_NO_CACHE) != 0;
  if (!rc && !(flags & RA_SNP_VERIFIER_NO_AMD_ROOTS)) rc = ra_snp_trust_add_amd(&v->t);
  if (rc) {
    ra_snp_verifier_free(v);
    return rc == -EIO ? -ENOMEM : rc;
  }
  *out = v;
  return 0;
}

void ra_snp_verifier_free(ra_snp_verifier *v) {
  if (!v) return;
  sk_X509_pop_free(v->t.arks, X509_free);
  sk_X509_pop_free(v->t.inters, X509_free);
  sk_X509_CRL_pop_free(v->t.crls, X509_CRL_free);
  ra_snp_chain_memo_clear(&v->t.memo);
  for (int i = 0; i < CERT_CACHE; i++) {
    free(v->cache[i].bytes);
    sk_X509_pop_free(v->cache[i].sk, X509_free);
  }
  free(v);
}

int ra_snp_verifier_add_ark(ra_snp_verifier *v, const uint8_t *data, size_t len) {
  if (!v || !data) return -EINVAL;
  return ra_snp_trust_add_arks(&v->t, data, len);
}

int ra_snp_verifier_add_ark_file(ra_snp_verifier *v, const char *path) {
  if (!v || !path) return -EINVAL;
  uint8_t *d = NULL;
  size_t n = 0;
  int rc = ra_file_read(path, INPUT_MAX, &d, &n);
  if (rc) return rc;
  rc = ra_snp_verifier_add_ark(v, d, n);
  free(d);
  return rc;
}

int ra_snp_verifier_add_crl(ra_snp_verifier *v, const uint8_t *data, size_t len) {
  if (!v || !data || !len || len > INPUT_MAX) return -EINVAL;
  STACK_OF(X509_CRL) *got = sk_X509_CRL_new_null();
  if (!got) return -ENOMEM;
  int rc = 0;
  static const char begin[] = "-----BEGIN X509 CRL-----";
  if (memmem(data, len, begin, sizeof begin - 1)) {
    BIO *b = BIO_new_mem_buf(data, (int)len);
    X509_CRL *c;
    while (b && (c = PEM_read_bio_X509_CRL(b, NULL, NULL, NULL)))
      if (!sk_X509_CRL_push(got, c)) {
        X509_CRL_free(c);
        rc = -ENOMEM;
        break;
      }
    BIO_free(b);
    /* every block must have parsed: as many CRLs as BEGIN lines */
    int blocks = 0;
    for (const uint8_t *p = data;
         (p = memmem(p, len - (size_t)(p - data), begin, sizeof begin - 1)); p += sizeof begin - 1)
      blocks++;
    if (!rc && blocks != sk_X509_CRL_num(got)) rc = -EINVAL;
  } else {
    const uint8_t *p = data;
    X509_CRL *c = d2i_X509_CRL(NULL, &p, (long)len);
    while (c && p < data + len && (*p == 0 || *p == '\n' || *p == '\r' || *p == ' ')) p++;
    if (!c || p != data + len) rc = -EINVAL;
    if (c && (rc || !sk_X509_CRL_push(got, c))) {
      X509_CRL_free(c);
      if (!rc) rc = -ENOMEM;
    }
  }
  if (!rc && sk_X509_CRL_num(got) == 0) rc = -EINVAL;
  int n = sk_X509_CRL_num(got);
  for (int i = 0; !rc && i < n; i++) {
    X509_CRL *c = sk_X509_CRL_value(got, i);
    if (!sk_X509_CRL_push(v->t.crls, c)) {
      rc = -ENOMEM;
      /* keep the stacks consistent: drop what this call added */
      for (int j = 0; j < i; j++) X509_CRL_free(sk_X509_CRL_pop(v->t.crls));
      break;
    }
    X509_CRL_up_ref(c);
  }
  sk_X509_CRL_pop_free(got, X509_CRL_free);
  ERR_clear_error();
  return rc ? rc : n;
}

int ra_snp_verifier_add_crl_file(ra_snp_verifier *v, const char *path) {
  if (!v || !path) return -EINVAL;
  uint8_t *d = NULL;
  size_t n = 0;
  int rc = ra_file_read(path, INPUT_MAX, &d, &n);
  if (rc) return rc;
  rc = ra_snp_verifier_add_crl(v, d, n);
  free(d);
  return rc;
}

/* The report's signature: little-endian r and s (48 significant bytes of
 * 72) as a DER ECDSA-Sig-Value over SHA-384(body) with the VCEK's key. */
static bool report_sig_ok(const ra_snp_report *r, EVP_PKEY *key) {
  uint8_t be_r[48], be_s[48];
  for (int i = 0; i < 48; i++) {
    be_r[i] = r->sig_r[47 - i];
    be_s[i] = r->sig_s[47 - i];
  }
  ECDSA_SIG *sig = ECDSA_SIG_new();
  BIGNUM *br = BN_bin2bn(be_r, 48, NULL), *bs = BN_bin2bn(be_s, 48, NULL);
  unsigned char *der = NULL;
  int derlen = -1;
  if (sig && br && bs && ECDSA_SIG_set0(sig, br, bs)) {
    br = bs = NULL; /* owned by sig */
    derlen = i2d_ECDSA_SIG(sig, &der);
  }
  BN_free(br);
  BN_free(bs);
  ECDSA_SIG_free(sig);
  bool ok = false;
  EVP_MD_CTX *c = derlen > 0 ? EVP_MD_CTX_new() : NULL;
  if (c && EVP_DigestVerifyInit(c, NULL, EVP_sha384(), NULL, key) == 1)
    ok = EVP_DigestVerify(c, der, (size_t)derlen, r->raw, RA_SNP_REPORT_BODY_LEN) == 1;
  EVP_MD_CTX_free(c);
  OPENSSL_free(der);
  ERR_clear_error();
  return ok;
}

static void copy_report(const ra_snp_report *r, ra_snp_verdict *vd) {
  vd->parsed = true;
  vd->version = r->version;
  vd->guest_svn = r->guest_svn;
  vd->vmpl = r->vmpl;
  vd->policy = r->policy;
  vd->platform_info = r->platform_info;
  vd->debug = (r->policy & RA_SNP_POLICY_DEBUG) != 0;
  vd->signing_key = r->signing_key;
  memcpy(vd->measurement, r->measurement, 48);
  memcpy(vd->host_data, r->host_data, 32);
  memcpy(vd->report_data, r->report_data, 64);
  memcpy(vd->family_id, r->family_id, 16);
  memcpy(vd->image_id, r->image_id, 16);
  memcpy(vd->id_key_digest, r->id_key_digest, 48);
  memcpy(vd->author_key_digest, r->author_key_digest, 48);
  memcpy(vd->chip_id, r->chip_id, 64);
}

static void decode_tcbs(const ra_snp_report *r, ra_snp_verdict *vd) {
  ra_snp_tcb_decode(r->current_tcb, vd->product, &vd->current_tcb);
  ra_snp_tcb_decode(r->reported_tcb, vd->product, &vd->reported_tcb);
  ra_snp_tcb_decode(r->committed_tcb, vd->product, &vd->committed_tcb);
  ra_snp_tcb_decode(r->launch_tcb, vd->product, &vd->launch_tcb);
}

int ra_snp_verify(ra_snp_verifier *v, const uint8_t *report, size_t len,
                  const ra_snp_verify_opts *opts, const ra_snp_policy *pol, ra_snp_verdict *vd) {
  if (!vd) return -EINVAL;
  memset(vd, 0, sizeof *vd);
  vd->tee = RA_SNP_TEE_NAME;
  vd->failed = -1;
  vd->matched_set = -1;
  if (!v || !opts || !pol) {
    ra_snp_fail(vd, RA_SNP_CHECK_PARSE, RA_ERR_INTERNAL, "no verifier, options or policy");
    vd->err = vd->err ? vd->err : RA_ERR_INTERNAL;
    return -EINVAL;
  }
  vd->at = opts->at ? opts->at : time(NULL);

  ra_snp_report r;
  int prc = ra_snp_report_parse(report, len, &r);
  if (prc) {
    ra_snp_fail(vd, RA_SNP_CHECK_PARSE, prc == -EINVAL ? RA_ERR_QUOTE_MALFORMED : prc,
                prc == RA_ERR_QUOTE_TRUNCATED     ? "report is %zu bytes, shorter than 1184"
                : prc == RA_ERR_QUOTE_UNSUPPORTED ? "report version or signature algorithm not "
                                                    "supported (%zu bytes)"
                                                  : "report is malformed (%zu bytes)",
                len);
    return -EACCES;
  }
  ra_snp_pass(vd, RA_SNP_CHECK_PARSE);
  copy_report(&r, vd);
  vd->product = ra_snp_report_product(&r);

  /* the endorsement key and its chain */
  STACK_OF(X509) *vsk = opts->vcek ? certs_get(v, opts->vcek, opts->vcek_len) : NULL;
  STACK_OF(X509) *given = sk_X509_new_null();
  X509 *ask = NULL, *ark = NULL, *vcek = NULL;
  bool chain_ok = false, certs_ok = given != NULL;
  if (!opts->vcek) {
    ra_snp_fail(vd, RA_SNP_CHECK_CHAIN, RA_ERR_NO_PCK_CHAIN, "no VCEK/VLEK certificate given");
    certs_ok = false;
  } else if (!vsk || sk_X509_num(vsk) != 1) {
    ra_snp_fail(vd, RA_SNP_CHECK_CHAIN, RA_ERR_CERT_PARSE,
                "the VCEK is not one certificate that parses");
    certs_ok = false;
  }
  const struct {
    const uint8_t *p;
    size_t n;
    const char *what;
  } more[2] = {{opts->ask, opts->ask_len, "ASK"}, {opts->ark, opts->ark_len, "ARK"}};
  for (int i = 0; certs_ok && i < 2; i++) {
    if (!more[i].p) continue;
    STACK_OF(X509) *sk = certs_get(v, more[i].p, more[i].n);
    if (!sk) {
      ra_snp_fail(vd, RA_SNP_CHECK_CHAIN, RA_ERR_CERT_PARSE, "the %s certificate does not parse",
                  more[i].what);
      certs_ok = false;
      break;
    }
    while (sk_X509_num(sk) > 0) {
      X509 *x = sk_X509_shift(sk);
      if (!sk_X509_push(given, x)) {
        X509_free(x);
        ra_snp_fail(vd, RA_SNP_CHECK_CHAIN, RA_ERR_INTERNAL, "out of memory");
        certs_ok = false;
        break;
      }
    }
    sk_X509_pop_free(sk, X509_free);
  }
  if (certs_ok) {
    vcek = sk_X509_value(vsk, 0);
    chain_ok = ra_snp_chain_check(&v->t, vcek, given, vd->at, vd, &ask, &ark);
    struct tm tm;
    if (ASN1_TIME_to_tm(X509_get0_notBefore(vcek), &tm)) vd->vcek_not_before = timegm(&tm);
    if (ASN1_TIME_to_tm(X509_get0_notAfter(vcek), &tm)) vd->vcek_not_after = timegm(&tm);
  }

  if (chain_ok) ra_snp_crl_check(&v->t, vcek, ask, ark, vd->at, vd);

  /* The extensions are read from any VCEK that parsed (the verdict shows
   * them even when the chain failed); they are only trusted when it
   * passed, and the signature check below depends on the chain. */
  if (vcek) {
    int erc = ra_snp_vcek_ext(vcek, &vd->vcek);
    if (erc) {
      ra_snp_fail(vd, RA_SNP_CHECK_VCEK_EXT, RA_ERR_PCK_EXTENSION,
                  erc == -ENOENT ? "the certificate has no AMD VCEK/VLEK extensions"
                                 : "the VCEK's AMD extensions are malformed");
    } else {
      vd->has_vcek = true;
      vd->product = vd->vcek.product != RA_SNP_PRODUCT_UNKNOWN ? vd->vcek.product : vd->product;
      ra_snp_vcek_match(&r, &vd->vcek, vd);
    }
  }
  decode_tcbs(&r, vd);

  if (chain_ok) {
    if (report_sig_ok(&r, X509_get0_pubkey(vcek)))
      ra_snp_pass(vd, RA_SNP_CHECK_REPORT_SIG);
    else
      ra_snp_fail(vd, RA_SNP_CHECK_REPORT_SIG, RA_ERR_QUOTE_SIGNATURE,
                  "the report's signature does not verify with the VCEK's key");
  }

  ra_snp_policy_apply(&r, pol, vd);

  X509_free(ask);
  X509_free(ark);
  sk_X509_pop_free(vsk, X509_free);
  sk_X509_pop_free(given, X509_free);
  ERR_clear_error();
  return vd->err ? -EACCES : 0;
}
