/* attest/quote/ratls.c: attested TLS certificates (see ratls.h). */
#include "raloop/attest/quote/ratls.h"
#include "raloop/core/log.h"

#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/asn1.h>
#include <openssl/bn.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/objects.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "raloop/attest/quote/quote.h"

#define DEFAULT_CN   "raloop RA-TLS"
#define DEFAULT_DAYS 30u
#define SKEW_SECONDS 3600

int ra_ratls_report_data(const uint8_t *spki_der, size_t len, uint8_t report_data[64]) {
  if (!spki_der || !len || !report_data) return -EINVAL;
  EVP_MD_CTX *c = EVP_MD_CTX_new();
  unsigned n = 0;
  int ok = c && EVP_DigestInit_ex(c, EVP_sha512(), NULL) == 1 &&
           EVP_DigestUpdate(c, RA_RATLS_REPORT_DATA_TAG, strlen(RA_RATLS_REPORT_DATA_TAG)) == 1 &&
           EVP_DigestUpdate(c, spki_der, len) == 1 && EVP_DigestFinal_ex(c, report_data, &n) == 1 &&
           n == 64;
  EVP_MD_CTX_free(c);
  if (!ok) {
    memset(report_data, 0, 64); /* matches nothing */
    return -EIO;
  }
  return 0;
}

/* ---- DER OCTET STRING ---------------------------------------------------- */

int ra_ratls_octet_string(const uint8_t *val, size_t len, const uint8_t **content,
                          size_t *content_len) {
  if (!content || !content_len) return -EBADMSG;
  *content = NULL;
  *content_len = 0;
  if (!val || len < 2 || val[0] != 0x04) return -EBADMSG;
  size_t n, hdr;
  if (val[1] < 0x80) {
    n = val[1];
    hdr = 2;
  } else {
    size_t k = val[1] & 0x7f;
    /* 0x80 is BER's indefinite length; more than 4 length octets cannot
     * fit RA_RATLS_MAX_CERT anyway */
    if (k == 0 || k > 4 || len < 2 + k) return -EBADMSG;
    if (val[2] == 0) return -EBADMSG; /* DER: no leading zero octets */
    n = 0;
    for (size_t i = 0; i < k; i++) n = (n << 8) | val[2 + i];
    if (n < 0x80) return -EBADMSG; /* DER: short form when it fits */
    hdr = 2 + k;
  }
  if (n != len - hdr) return -EBADMSG; /* exactly one value, nothing after */
  *content = val + hdr;
  *content_len = n;
  return 0;
}

/* ---- parsing ------------------------------------------------------------- */

void ra_ratls_ext_clear(ra_ratls_ext *e) {
  if (!e) return;
  free(e->quote);
  free(e->event_log);
  free(e->app_id);
  free(e->attestation);
  free(e->spki);
  memset(e, 0, sizeof *e);
}

static int asn1_time_to_time_t(const ASN1_TIME *t, time_t *out) {
  struct tm tm;
  if (!t || ASN1_TIME_to_tm(t, &tm) != 1) return -EINVAL;
  *out = timegm(&tm);
  return 0;
}

/* The extension with this OID: its extnValue content (the DER inside the
 * OCTET STRING X.509 wraps every extension in), or NULL. -EBADMSG when it
 * occurs twice. */
static int find_ext(const X509 *x, const ASN1_OBJECT *obj, const ASN1_OCTET_STRING **val) {
  *val = NULL;
  int idx = X509_get_ext_by_OBJ(x, obj, -1);
  if (idx < 0) return 0;
  if (X509_get_ext_by_OBJ(x, obj, idx) >= 0) return -EBADMSG;
  X509_EXTENSION *ext = X509_get_ext(x, idx);
  *val = ext ? X509_EXTENSION_get_data(ext) : NULL;
  return *val ? 0 : -EBADMSG;
}

/* Copies the OCTET STRING content of the extension named oid into *out. */
static int take_ext(const X509 *x, const char *oid, size_t max, uint8_t **out, size_t *out_len,
                    bool *present) {
  ASN1_OBJECT *obj = OBJ_txt2obj(oid, 1);
  if (!obj) return -ENOMEM;
  const ASN1_OCTET_STRING *v;
  int rc = find_ext(x, obj, &v);
  ASN1_OBJECT_free(obj);
  if (present) *present = v != NULL;
  if (rc || !v || !out) return rc;
  const uint8_t *c;
  size_t n;
  if (ra_ratls_octet_string(ASN1_STRING_get0_data(v), (size_t)ASN1_STRING_length(v), &c, &n))
    return -EBADMSG;
  if (n > max) return -E2BIG;
  *out = malloc(n + 1);
  if (!*out) return -ENOMEM;
  if (n) memcpy(*out, c, n);
  (*out)[n] = 0;
  *out_len = n;
  return 0;
}

int ra_ratls_parse_x509(const struct x509_st *cert, ra_ratls_ext *out) {
  if (!out) return -EINVAL;
  memset(out, 0, sizeof *out);
  if (!cert) return -EINVAL;
  const X509 *x = cert;
  int rc = 0;
  /* the key as it is encoded in the certificate: what dstack hashes
   * (x509-parser's public_key().raw) */
  X509_PUBKEY *pk = X509_get_X509_PUBKEY(x);
  unsigned char *spki = NULL;
  int spki_len = pk ? i2d_X509_PUBKEY(pk, &spki) : -1;
  if (spki_len <= 0) return -EINVAL;
  out->spki = malloc((size_t)spki_len);
  if (!out->spki) {
    OPENSSL_free(spki);
    return -ENOMEM;
  }
  memcpy(out->spki, spki, (size_t)spki_len);
  out->spki_len = (size_t)spki_len;
  OPENSSL_free(spki);
  if (asn1_time_to_time_t(X509_get0_notBefore(x), &out->not_before) ||
      asn1_time_to_time_t(X509_get0_notAfter(x), &out->not_after)) {
    rc = -EINVAL;
    goto fail;
  }
  if ((rc = take_ext(x, RA_RATLS_OID_QUOTE, RA_RATLS_MAX_QUOTE, &out->quote, &out->quote_len,
                     NULL)) ||
      (rc = take_ext(x, RA_RATLS_OID_EVENT_LOG, RA_RATLS_MAX_CERT, &out->event_log,
                     &out->event_log_len, NULL)) ||
      (rc = take_ext(x, RA_RATLS_OID_APP_ID, RA_RATLS_MAX_CERT, &out->app_id, &out->app_id_len,
                     NULL)) ||
      (rc = take_ext(x, RA_RATLS_OID_ATTESTATION, RA_RATLS_MAX_CERT, &out->attestation,
                     &out->attestation_len, &out->has_attestation)))
    goto fail;
  return 0;
fail:
  ra_ratls_ext_clear(out);
  return rc;
}

static X509 *der_to_x509(const uint8_t *der, size_t len) {
  if (!der || !len || len > RA_RATLS_MAX_CERT) return NULL;
  const unsigned char *p = der;
  X509 *x = d2i_X509(NULL, &p, (long)len);
  if (x && p != der + len) { /* trailing bytes: not one certificate */
    X509_free(x);
    x = NULL;
  }
  return x;
}

int ra_ratls_parse_der(const uint8_t *der, size_t len, ra_ratls_ext *out) {
  if (!out) return -EINVAL;
  memset(out, 0, sizeof *out);
  X509 *x = der_to_x509(der, len);
  if (!x) return -EINVAL;
  int rc = ra_ratls_parse_x509(x, out);
  X509_free(x);
  return rc;
}

/* ---- generating ---------------------------------------------------------- */

void ra_ratls_cert_clear(ra_ratls_cert *c) {
  if (!c) return;
  if (c->key_pem) OPENSSL_cleanse(c->key_pem, c->key_pem_len);
  free(c->cert_pem);
  free(c->key_pem);
  memset(c, 0, sizeof *c);
}

/* Adds extension oid whose extnValue is DER OCTET STRING(data), as
 * dstack's add_ext (yasna write_bytes) does. */
static int add_octet_ext(X509 *x, const char *oid, const uint8_t *data, size_t len) {
  int rc = -EIO;
  ASN1_OBJECT *obj = OBJ_txt2obj(oid, 1);
  ASN1_OCTET_STRING *inner = ASN1_OCTET_STRING_new();
  ASN1_OCTET_STRING *outer = ASN1_OCTET_STRING_new();
  unsigned char *der = NULL;
  X509_EXTENSION *ext = NULL;
  if (!obj || !inner || !outer || len > INT_MAX) goto out;
  if (ASN1_OCTET_STRING_set(inner, data, (int)len) != 1) goto out;
  int n = i2d_ASN1_OCTET_STRING(inner, &der);
  if (n <= 0 || ASN1_OCTET_STRING_set(outer, der, n) != 1) goto out;
  ext = X509_EXTENSION_create_by_OBJ(NULL, obj, 0, outer);
  if (!ext || X509_add_ext(x, ext, -1) != 1) goto out;
  rc = 0;
out:
  X509_EXTENSION_free(ext);
  OPENSSL_free(der);
  ASN1_OCTET_STRING_free(inner);
  ASN1_OCTET_STRING_free(outer);
  ASN1_OBJECT_free(obj);
  return rc;
}

static int add_conf_ext(X509 *x, int nid, const char *value) {
  X509V3_CTX ctx;
  X509V3_set_ctx_nodb(&ctx);
  X509V3_set_ctx(&ctx, x, x, NULL, NULL, 0);
  X509_EXTENSION *ext = X509V3_EXT_conf_nid(NULL, &ctx, nid, value);
  int ok = ext && X509_add_ext(x, ext, -1) == 1;
  X509_EXTENSION_free(ext);
  return ok ? 0 : -EIO;
}

/* subjectAltName from the DNS names (values checked: no commas, which the
 * config syntax would split on). */
static int add_san(X509 *x, const char *const *names, size_t n) {
  if (!names || !n) return 0;
  size_t cap = 1;
  for (size_t i = 0; i < n; i++) {
    if (!names[i] || !*names[i] || strpbrk(names[i], ",\n")) return -EINVAL;
    cap += strlen(names[i]) + 5;
  }
  char *s = malloc(cap), *p = s;
  if (!s) return -ENOMEM;
  for (size_t i = 0; i < n; i++)
    p += sprintf(p, "%sDNS:%s", i ? "," : "", names[i]);
  int rc = add_conf_ext(x, NID_subject_alt_name, s);
  free(s);
  return rc;
}

static int bio_to_string(BIO *b, char **out, size_t *out_len) {
  char *data;
  long n = BIO_get_mem_data(b, &data);
  if (n <= 0) return -EIO;
  *out = malloc((size_t)n + 1);
  if (!*out) return -ENOMEM;
  memcpy(*out, data, (size_t)n);
  (*out)[n] = '\0';
  *out_len = (size_t)n;
  return 0;
}

int ra_ratls_generate(ra_quote_provider *p, const ra_ratls_cert_opts *opts, ra_ratls_cert *out) {
  if (!out) return -EINVAL;
  memset(out, 0, sizeof *out);
  if (!p) return -EINVAL;
  static const ra_ratls_cert_opts defaults = {0};
  if (!opts) opts = &defaults;

  int rc = -EIO;
  EVP_PKEY *key = NULL;
  X509 *x = NULL;
  X509_NAME *name = NULL;
  unsigned char *spki = NULL;
  uint8_t *quote = NULL;
  size_t quote_len = 0;
  BIO *cb = NULL, *kb = NULL;

  key = EVP_EC_gen("P-256");
  if (!key) {
    ra_error("RA-TLS: cannot generate a P-256 key");
    goto out;
  }
  int spki_len = i2d_PUBKEY(key, &spki);
  if (spki_len <= 0) goto out;
  if ((rc = ra_ratls_report_data(spki, (size_t)spki_len, out->report_data))) goto out;
  rc = ra_quote_provider_get_report(p, out->report_data, &quote, &quote_len);
  if (rc) goto out; /* logged by the provider */
  out->bound = ra_quote_provider_binds_key(p);
  if (!out->bound)
    ra_warn("RA-TLS: the %s provider cannot bind the certificate key: its quote is carried as "
            "is, and clients refuse it unless told to skip the binding",
            ra_quote_provider_name(p));

  rc = -EIO;
  time_t nb = opts->not_before ? opts->not_before : time(NULL) - SKEW_SECONDS;
  unsigned days = opts->validity_days ? opts->validity_days : DEFAULT_DAYS;
  time_t na = opts->not_after ? opts->not_after : nb + (time_t)days * 86400;
  if (na <= nb) {
    rc = -EINVAL;
    goto out;
  }
  uint8_t serial[16];
  if (RAND_bytes(serial, sizeof serial) != 1) goto out;
  serial[0] &= 0x7f; /* positive */
  serial[0] |= 0x01; /* and 16 octets long */
  BIGNUM *bn = BN_bin2bn(serial, sizeof serial, NULL);
  x = X509_new();
  if (!bn || !x || X509_set_version(x, X509_VERSION_3) != 1 ||
      !BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(x))) {
    BN_free(bn);
    goto out;
  }
  BN_free(bn);
  if (!X509_time_adj_ex(X509_getm_notBefore(x), 0, 0, &nb) ||
      !X509_time_adj_ex(X509_getm_notAfter(x), 0, 0, &na))
    goto out;
  name = X509_NAME_new();
  const char *cn = opts->common_name ? opts->common_name : DEFAULT_CN;
  if (!name ||
      X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_UTF8, (const unsigned char *)cn, -1, -1,
                                 0) != 1 ||
      X509_set_subject_name(x, name) != 1 || X509_set_issuer_name(x, name) != 1 ||
      X509_set_pubkey(x, key) != 1)
    goto out;
  /* a leaf, for TLS servers and clients (issue 15's mutual attestation
   * presents the same kind of certificate) */
  if (add_conf_ext(x, NID_basic_constraints, "critical,CA:FALSE") ||
      add_conf_ext(x, NID_key_usage, "critical,digitalSignature") ||
      add_conf_ext(x, NID_ext_key_usage, "serverAuth,clientAuth") ||
      add_conf_ext(x, NID_subject_key_identifier, "hash"))
    goto out;
  if ((rc = add_san(x, opts->dns_names, opts->n_dns_names))) goto out;
  rc = -EIO;
  if (add_octet_ext(x, RA_RATLS_OID_QUOTE, quote, quote_len)) goto out;
  if (opts->event_log && add_octet_ext(x, RA_RATLS_OID_EVENT_LOG, opts->event_log,
                                       opts->event_log_len))
    goto out;
  if (opts->app_id && add_octet_ext(x, RA_RATLS_OID_APP_ID, opts->app_id, opts->app_id_len))
    goto out;
  if (X509_sign(x, key, EVP_sha256()) <= 0) goto out;

  cb = BIO_new(BIO_s_mem());
  kb = BIO_new(BIO_s_secmem());
  if (!cb || !kb || PEM_write_bio_X509(cb, x) != 1 ||
      PEM_write_bio_PrivateKey(kb, key, NULL, NULL, 0, NULL, NULL) != 1)
    goto out;
  if ((rc = bio_to_string(cb, &out->cert_pem, &out->cert_pem_len)) ||
      (rc = bio_to_string(kb, &out->key_pem, &out->key_pem_len)))
    goto out;
  rc = 0;
out:
  if (rc) {
    if (rc == -EIO) ra_error("RA-TLS: cannot issue the certificate (OpenSSL)");
    ra_ratls_cert_clear(out);
  }
  BIO_free(cb);
  BIO_free(kb);
  free(quote);
  OPENSSL_free(spki);
  X509_NAME_free(name);
  X509_free(x);
  EVP_PKEY_free(key);
  return rc;
}

/* ---- verifying ----------------------------------------------------------- */

const char *ra_ratls_step_name(ra_ratls_step s) {
  switch (s) {
  case RA_RATLS_OK: return "ok";
  case RA_RATLS_STEP_CERT: return "certificate";
  case RA_RATLS_STEP_VALIDITY: return "validity";
  case RA_RATLS_STEP_NO_QUOTE: return "no quote extension";
  case RA_RATLS_STEP_EXTENSION: return "malformed extension";
  case RA_RATLS_STEP_KEY_NOT_BOUND: return "key not bound";
  case RA_RATLS_STEP_QUOTE: return "quote";
  }
  return "unknown";
}

__attribute__((format(printf, 3, 4))) static int refuse(ra_ratls_result *res, ra_ratls_step step,
                                                         const char *fmt, ...) {
  char detail[256];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(detail, sizeof detail, fmt, ap);
  va_end(ap);
  res->step = step;
  snprintf(res->msg, sizeof res->msg, "%s: %s", ra_ratls_step_name(step), detail);
  return -EACCES;
}

typedef struct bound_cb {
  ra_policy_cb user;
  void *user_ud;
} bound_cb;

/* Installed when the binding held: the binding is what this policy checks
 * (besides the caller's sets), as the X25519 binding is for the tunnel.
 * Chains to the caller's callback. */
static int after_binding(const ra_quote *q, ra_verdict *vd, void *ud) {
  const bound_cb *b = ud;
  return b->user ? b->user(q, vd, b->user_ud) : 0;
}

static void fmt_time(time_t t, char *buf, size_t len) {
  struct tm tm;
  if (!gmtime_r(&t, &tm) || !strftime(buf, len, "%Y-%m-%dT%H:%M:%SZ", &tm))
    snprintf(buf, len, "@%lld", (long long)t);
}

static int verify_ext(ra_verifier *v, const ra_ratls_ext *e, const ra_verify_opts *vopts,
                      const ra_policy *policy, const ra_ratls_verify_opts *ropts,
                      ra_ratls_result *res) {
  time_t now = vopts && vopts->at ? vopts->at : time(NULL);
  char t1[32], t2[32];
  if (!ropts->skip_validity) {
    if (now < e->not_before) {
      fmt_time(e->not_before, t1, sizeof t1);
      return refuse(res, RA_RATLS_STEP_VALIDITY, "certificate not valid before %s", t1);
    }
    if (now > e->not_after) {
      fmt_time(e->not_after, t1, sizeof t1);
      fmt_time(now, t2, sizeof t2);
      return refuse(res, RA_RATLS_STEP_VALIDITY, "certificate expired at %s (now %s)", t1, t2);
    }
  }
  res->has_event_log = e->event_log != NULL;
  if (e->app_id) {
    res->has_app_id = true;
    res->app_id_len = e->app_id_len < sizeof res->app_id ? e->app_id_len : sizeof res->app_id;
    memcpy(res->app_id, e->app_id, res->app_id_len);
  }
  if (!e->quote)
    return refuse(res, RA_RATLS_STEP_NO_QUOTE,
                  e->has_attestation
                      ? "the certificate carries dstack's SCALE attestation (" RA_RATLS_OID_ATTESTATION
                        "), not a quote (" RA_RATLS_OID_QUOTE "): not supported"
                      : "the certificate has no RA-TLS quote extension (" RA_RATLS_OID_QUOTE ")");

  ra_quote q;
  int prc = ra_quote_parse(e->quote, e->quote_len, &q);
  if (!ropts->skip_binding) {
    if (prc) {
      res->quote_ran = true;
      memset(&res->vd, 0, sizeof res->vd);
      res->vd.err = prc;
      return refuse(res, RA_RATLS_STEP_QUOTE, "the quote does not parse: %s", ra_err_name(prc));
    }
    uint8_t want[64];
    if (ra_ratls_report_data(e->spki, e->spki_len, want))
      return refuse(res, RA_RATLS_STEP_KEY_NOT_BOUND, "cannot hash the certificate key");
    const uint8_t *rd = ra_quote_report_data(&q);
    if (!rd || CRYPTO_memcmp(rd, want, 64) != 0)
      return refuse(res, RA_RATLS_STEP_KEY_NOT_BOUND,
                    "the quote's report_data is not SHA-512(\"" RA_RATLS_REPORT_DATA_TAG
                    "\" || the certificate's public key)");
    res->bound = true;
  }

  ra_policy pol = *policy;
  bound_cb b = {policy->callback, policy->callback_ud};
  if (res->bound) {
    pol.callback = after_binding;
    pol.callback_ud = &b;
  }
  res->quote_ran = true;
  if (ra_verify_quote(v, e->quote, e->quote_len, vopts, &pol, &res->vd) != 0) {
    int failed = -1;
    for (int c = 0; c < RA_CHECK__COUNT; c++)
      if (res->vd.checks[c] == RA_CHECK_FAIL) {
        failed = c;
        break;
      }
    return refuse(res, RA_RATLS_STEP_QUOTE, "%s%s%s: %s", failed >= 0 ? ra_check_name(failed) : "",
                  failed >= 0 ? ": " : "", ra_err_name(res->vd.err), res->vd.msg);
  }
  return 0;
}

static int verify_common(ra_verifier *v, const X509 *x, const ra_verify_opts *vopts,
                         const ra_policy *policy, const ra_ratls_verify_opts *ropts,
                         ra_ratls_result *res) {
  static const ra_ratls_verify_opts no_opts = {0};
  if (!ropts) ropts = &no_opts;
  if (!x) return refuse(res, RA_RATLS_STEP_CERT, "the certificate does not parse (DER X.509)");
  ra_ratls_ext e;
  int rc = ra_ratls_parse_x509(x, &e);
  if (rc == -EINVAL)
    return refuse(res, RA_RATLS_STEP_CERT, "the certificate's key or validity does not parse");
  if (rc == -EBADMSG)
    return refuse(res, RA_RATLS_STEP_EXTENSION,
                  "an RA-TLS extension is not one DER OCTET STRING, or occurs twice");
  if (rc == -E2BIG)
    return refuse(res, RA_RATLS_STEP_EXTENSION, "the quote extension exceeds %d bytes",
                  RA_RATLS_MAX_QUOTE);
  if (rc) return refuse(res, RA_RATLS_STEP_CERT, "%s", ra_strerror(rc));
  rc = verify_ext(v, &e, vopts, policy, ropts, res);
  ra_ratls_ext_clear(&e);
  return rc;
}

static int check_args(ra_verifier *v, const ra_policy *policy, ra_ratls_result *res) {
  if (!res) return -EINVAL;
  memset(res, 0, sizeof *res);
  if (!v || !policy || policy->x25519_pub) {
    res->step = RA_RATLS_STEP_CERT;
    snprintf(res->msg, sizeof res->msg, "bad arguments");
    return -EINVAL;
  }
  return 0;
}

int ra_ratls_verify_x509(ra_verifier *v, const struct x509_st *cert, const ra_verify_opts *vopts,
                         const ra_policy *policy, const ra_ratls_verify_opts *ropts,
                         ra_ratls_result *res) {
  int rc = check_args(v, policy, res);
  if (rc) return rc;
  return verify_common(v, cert, vopts, policy, ropts, res);
}

int ra_ratls_verify_der(ra_verifier *v, const uint8_t *der, size_t len,
                        const ra_verify_opts *vopts, const ra_policy *policy,
                        const ra_ratls_verify_opts *ropts, ra_ratls_result *res) {
  int rc = check_args(v, policy, res);
  if (rc) return rc;
  X509 *x = der_to_x509(der, len);
  rc = verify_common(v, x, vopts, policy, ropts, res);
  X509_free(x);
  return rc;
}
