/* attest/quote/snp_chain.c: the SEV-SNP certificate path VCEK <- ASK <- ARK
 * and AMD's CRLs. The path has a fixed shape, so it is checked link by link
 * rather than built by X509_verify_cert: every step names what failed. */
#include "raloop/attest/quote/snp_chain.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>

#include "raloop/attest/quote/snp_internal.h"
#include "raloop/core/error.h"

const char *ra_amd_ark_pem(ra_snp_product p) {
  switch (p) {
  case RA_SNP_PRODUCT_MILAN:
    return ra_amd_ark_milan_pem;
  case RA_SNP_PRODUCT_GENOA:
    return ra_amd_ark_genoa_pem;
  case RA_SNP_PRODUCT_TURIN:
    return ra_amd_ark_turin_pem;
  default:
    return NULL;
  }
}

const char *ra_amd_ask_pem(ra_snp_product p) {
  switch (p) {
  case RA_SNP_PRODUCT_MILAN:
    return ra_amd_ask_milan_pem;
  case RA_SNP_PRODUCT_GENOA:
    return ra_amd_ask_genoa_pem;
  case RA_SNP_PRODUCT_TURIN:
    return ra_amd_ask_turin_pem;
  default:
    return NULL;
  }
}

const char *ra_amd_asvk_pem(ra_snp_product p) {
  switch (p) {
  case RA_SNP_PRODUCT_MILAN:
    return ra_amd_asvk_milan_pem;
  case RA_SNP_PRODUCT_GENOA:
    return ra_amd_asvk_genoa_pem;
  case RA_SNP_PRODUCT_TURIN:
    return ra_amd_asvk_turin_pem;
  default:
    return NULL;
  }
}

static const char k_begin[] = "-----BEGIN CERTIFICATE-----";
static const char k_end[] = "-----END CERTIFICATE-----";

static bool push_cert(STACK_OF(X509) * sk, X509 *x) {
  if (!x) return false;
  if (sk_X509_num(sk) >= RA_SNP_MAX_CERTS || !sk_X509_push(sk, x)) {
    X509_free(x);
    return false;
  }
  return true;
}

STACK_OF(X509) * ra_snp_certs_parse(const uint8_t *data, size_t len) {
  if (!data || !len || len > (1u << 20)) return NULL;
  STACK_OF(X509) *sk = sk_X509_new_null();
  if (!sk) return NULL;
  bool ok = true;
  const uint8_t *p = memmem(data, len, k_begin, sizeof k_begin - 1);
  if (p) {
    while (p && ok) {
      size_t rest = len - (size_t)(p - data);
      const uint8_t *e = memmem(p, rest, k_end, sizeof k_end - 1);
      if (!e) {
        ok = false;
        break;
      }
      size_t n = (size_t)(e - p) + sizeof k_end - 1;
      BIO *b = BIO_new_mem_buf(p, (int)n);
      X509 *x = b ? PEM_read_bio_X509(b, NULL, NULL, NULL) : NULL;
      BIO_free(b);
      ok = push_cert(sk, x);
      const uint8_t *next = p + n;
      p = memmem(next, len - (size_t)(next - data), k_begin, sizeof k_begin - 1);
    }
  } else {
    const uint8_t *q = data, *end = data + len;
    while (ok && q < end) {
      if (*q == 0 || *q == '\n' || *q == '\r' || *q == ' ' || *q == '\t') {
        q++;
        continue;
      }
      const uint8_t *start = q;
      X509 *x = d2i_X509(NULL, &q, (long)(end - q));
      if (!x || q <= start) {
        X509_free(x);
        ok = false;
        break;
      }
      ok = push_cert(sk, x);
    }
  }
  if (!ok || sk_X509_num(sk) == 0) {
    sk_X509_pop_free(sk, X509_free);
    ERR_clear_error();
    return NULL;
  }
  return sk;
}

static bool self_signed_ca(X509 *x) {
  EVP_PKEY *k = X509_get0_pubkey(x);
  return k && X509_check_issued(x, x) == X509_V_OK && X509_check_ca(x) >= 1 &&
         X509_verify(x, k) == 1;
}

int ra_snp_trust_add_arks(ra_snp_trust *t, const uint8_t *data, size_t len) {
  STACK_OF(X509) *sk = ra_snp_certs_parse(data, len);
  if (!sk) return -EINVAL;
  int n = sk_X509_num(sk), rc = n;
  for (int i = 0; i < n; i++)
    if (!self_signed_ca(sk_X509_value(sk, i))) rc = -EINVAL;
  for (int i = 0; rc > 0 && i < n; i++) {
    X509 *x = sk_X509_value(sk, i);
    if (!sk_X509_push(t->arks, x)) {
      rc = -ENOMEM;
      break;
    }
    X509_up_ref(x);
  }
  sk_X509_pop_free(sk, X509_free);
  ERR_clear_error();
  return rc;
}

static int add_pem(STACK_OF(X509) * to, const char *pem) {
  STACK_OF(X509) *sk = ra_snp_certs_parse((const uint8_t *)pem, strlen(pem));
  if (!sk) return -EIO;
  int rc = 0;
  for (int i = 0; i < sk_X509_num(sk); i++) {
    X509 *x = sk_X509_value(sk, i);
    if (!sk_X509_push(to, x)) {
      rc = -ENOMEM;
      break;
    }
    X509_up_ref(x);
  }
  sk_X509_pop_free(sk, X509_free);
  return rc;
}

int ra_snp_trust_add_amd(ra_snp_trust *t) {
  static const ra_snp_product prods[] = {RA_SNP_PRODUCT_MILAN, RA_SNP_PRODUCT_GENOA,
                                         RA_SNP_PRODUCT_TURIN};
  for (size_t i = 0; i < sizeof prods / sizeof prods[0]; i++) {
    int rc = add_pem(t->arks, ra_amd_ark_pem(prods[i]));
    if (!rc) rc = add_pem(t->inters, ra_amd_ask_pem(prods[i]));
    if (!rc) rc = add_pem(t->inters, ra_amd_asvk_pem(prods[i]));
    if (rc) return rc;
  }
  return 0;
}

static time_t asn1_unix(const ASN1_TIME *a) {
  struct tm tm;
  if (!a || !ASN1_TIME_to_tm(a, &tm)) return 0;
  return timegm(&tm);
}

static void subject(X509 *x, char *out, size_t n) {
  if (!X509_NAME_oneline(X509_get_subject_name(x), out, (int)n)) snprintf(out, n, "?");
}

static bool same_der(X509 *a, X509 *b) { return X509_cmp(a, b) == 0; }

/* RSA-PSS with SHA-384, what AMD signs its ASKs, ASVKs, VCEKs and VLEKs
 * (and the ARK itself) with. */
static bool pss_sha384(X509 *x) {
  int md = 0, pk = 0;
  if (!X509_get_signature_info(x, &md, &pk, NULL, NULL)) return false;
  return md == NID_sha384 && pk == EVP_PKEY_RSA_PSS;
}

static bool is_p384(X509 *x) {
  EVP_PKEY *k = X509_get0_pubkey(x);
  char g[32];
  size_t gl = 0;
  return k && EVP_PKEY_get_base_id(k) == EVP_PKEY_EC &&
         EVP_PKEY_get_utf8_string_param(k, "group", g, sizeof g, &gl) &&
         strcmp(g, "secp384r1") == 0;
}

/* validity of x at `at`; what names it in a message */
static bool valid_at(X509 *x, time_t at, const char *what, ra_snp_verdict *vd) {
  time_t nb = asn1_unix(X509_get0_notBefore(x)), na = asn1_unix(X509_get0_notAfter(x));
  if (!nb || !na) {
    ra_snp_fail(vd, RA_SNP_CHECK_CHAIN, RA_ERR_CHAIN_INVALID, "%s: validity does not parse", what);
    return false;
  }
  if (at < nb) {
    ra_snp_fail(vd, RA_SNP_CHECK_CHAIN, RA_ERR_CERT_NOT_YET_VALID,
                "%s not valid before %lld (verification time %lld)", what, (long long)nb,
                (long long)at);
    return false;
  }
  if (at > na) {
    ra_snp_fail(vd, RA_SNP_CHECK_CHAIN, RA_ERR_CERT_EXPIRED,
                "%s expired at %lld (verification time %lld)", what, (long long)na, (long long)at);
    return false;
  }
  return true;
}

static X509 *find_issuer(STACK_OF(X509) * sk, X509 *child, bool self_issued) {
  for (int i = 0; sk && i < sk_X509_num(sk); i++) {
    X509 *c = sk_X509_value(sk, i);
    if ((X509_check_issued(c, c) == X509_V_OK) != self_issued) continue;
    if (X509_check_issued(c, child) == X509_V_OK) return c;
  }
  return NULL;
}

bool ra_snp_chain_check(ra_snp_trust *t, X509 *vcek, STACK_OF(X509) * given, time_t at,
                        ra_snp_verdict *vd, X509 **ask_out, X509 **ark_out) {
  *ask_out = *ark_out = NULL;
  char name[128];
  int n_inter_given = 0;
  for (int i = 0; given && i < sk_X509_num(given); i++) {
    X509 *c = sk_X509_value(given, i);
    if (X509_check_issued(c, c) != X509_V_OK) {
      n_inter_given++;
      continue;
    }
    /* an ARK the caller sends adds no trust: it must be one pinned */
    bool pinned = false;
    for (int j = 0; j < sk_X509_num(t->arks); j++) pinned |= same_der(c, sk_X509_value(t->arks, j));
    if (!pinned) {
      subject(c, name, sizeof name);
      ra_snp_fail(vd, RA_SNP_CHECK_CHAIN, RA_ERR_ROOT_UNTRUSTED,
                  "the ARK given (%s) is not a pinned root", name);
      ERR_clear_error();
      return false;
    }
  }
  X509 *ask = find_issuer(given, vcek, false);
  if (!ask && n_inter_given) {
    subject(vcek, name, sizeof name);
    ra_snp_fail(vd, RA_SNP_CHECK_CHAIN, RA_ERR_CHAIN_BROKEN,
                "the ASK/ASVK given did not issue the VCEK (its issuer: %s)", name);
    ERR_clear_error();
    return false;
  }
  if (!ask) {
    ask = find_issuer(t->inters, vcek, false);
    vd->ask_builtin = ask != NULL;
  }
  if (!ask) {
    X509_NAME_oneline(X509_get_issuer_name(vcek), name, sizeof name);
    ra_snp_fail(vd, RA_SNP_CHECK_CHAIN, RA_ERR_CHAIN_BROKEN,
                "no ASK/ASVK given, and none known for the VCEK's issuer %s", name);
    ERR_clear_error();
    return false;
  }
  X509 *ark = find_issuer(t->arks, ask, true);
  if (!ark) {
    X509_NAME_oneline(X509_get_issuer_name(ask), name, sizeof name);
    ra_snp_fail(vd, RA_SNP_CHECK_CHAIN, RA_ERR_ROOT_UNTRUSTED,
                "the ASK's issuer %s is not a pinned ARK", name);
    ERR_clear_error();
    return false;
  }
  /* an ARK the caller names must be the one the path ends at: asking for
   * one root and getting another is a mistake worth refusing */
  X509 *given_ark = NULL;
  for (int i = 0; given && i < sk_X509_num(given); i++) {
    X509 *c = sk_X509_value(given, i);
    if (X509_check_issued(c, c) != X509_V_OK) continue;
    if (same_der(c, ark))
      given_ark = NULL, i = sk_X509_num(given);
    else
      given_ark = c;
  }
  if (given_ark) {
    subject(given_ark, name, sizeof name);
    ra_snp_fail(vd, RA_SNP_CHECK_CHAIN, RA_ERR_CHAIN_BROKEN,
                "the ARK given (%s) did not issue the ASK", name);
    ERR_clear_error();
    return false;
  }
  ra_snp_chain_memo *m = &t->memo;
  if (!t->memo_off && m->vcek == vcek && m->ask == ask && m->ark == ark &&
      m->n_arks == sk_X509_num(t->arks) && at >= m->from && at <= m->to)
    goto valid;
  bool ok = true;
  EVP_PKEY *ark_key = X509_get0_pubkey(ark), *ask_key = X509_get0_pubkey(ask);
  if (!pss_sha384(ark) || !pss_sha384(ask) || !pss_sha384(vcek)) {
    ra_snp_fail(vd, RA_SNP_CHECK_CHAIN, RA_ERR_CHAIN_SIGNATURE,
                "a certificate of the chain is not signed with RSA-PSS SHA-384 (ARK %s, ASK %s, "
                "VCEK %s)",
                pss_sha384(ark) ? "yes" : "no", pss_sha384(ask) ? "yes" : "no",
                pss_sha384(vcek) ? "yes" : "no");
    ok = false;
  } else if (!ark_key || X509_verify(ark, ark_key) != 1) {
    ra_snp_fail(vd, RA_SNP_CHECK_CHAIN, RA_ERR_CHAIN_SIGNATURE,
                "the ARK's self-signature does not verify");
    ok = false;
  } else if (X509_verify(ask, ark_key) != 1) {
    ra_snp_fail(vd, RA_SNP_CHECK_CHAIN, RA_ERR_CHAIN_SIGNATURE,
                "the ASK's signature by the ARK does not verify");
    ok = false;
  } else if (!ask_key || X509_verify(vcek, ask_key) != 1) {
    ra_snp_fail(vd, RA_SNP_CHECK_CHAIN, RA_ERR_CHAIN_SIGNATURE,
                "the VCEK's signature by the ASK does not verify");
    ok = false;
  } else if (X509_check_ca(ark) < 1 || X509_check_ca(ask) < 1) {
    ra_snp_fail(vd, RA_SNP_CHECK_CHAIN, RA_ERR_CHAIN_INVALID, "the ARK or ASK is not a CA");
    ok = false;
  } else if (!is_p384(vcek)) {
    ra_snp_fail(vd, RA_SNP_CHECK_CHAIN, RA_ERR_CHAIN_INVALID, "the VCEK's key is not ECDSA P-384");
    ok = false;
  } else {
    ok = valid_at(ark, at, "the ARK", vd) && valid_at(ask, at, "the ASK", vd) &&
         valid_at(vcek, at, "the VCEK", vd);
  }
  ERR_clear_error();
  if (!ok) return false;
  if (!t->memo_off) {
    ra_snp_chain_memo_clear(m);
    X509 *path[3] = {vcek, ask, ark};
    m->from = 0;
    m->to = (time_t)1 << 62;
    for (int i = 0; i < 3; i++) {
      time_t nb = asn1_unix(X509_get0_notBefore(path[i])),
             na = asn1_unix(X509_get0_notAfter(path[i]));
      if (nb > m->from) m->from = nb;
      if (na < m->to) m->to = na;
      X509_up_ref(path[i]);
    }
    m->vcek = vcek, m->ask = ask, m->ark = ark;
    m->n_arks = sk_X509_num(t->arks);
  }
valid:
  subject(ark, vd->ark_subject, sizeof vd->ark_subject);
  unsigned fl = 0;
  X509_digest(ark, EVP_sha256(), vd->ark_sha256, &fl);
  X509_up_ref(ask);
  X509_up_ref(ark);
  *ask_out = ask;
  *ark_out = ark;
  ra_snp_pass(vd, RA_SNP_CHECK_CHAIN);
  return true;
}

void ra_snp_chain_memo_clear(ra_snp_chain_memo *m) {
  X509_free(m->vcek);
  X509_free(m->ask);
  X509_free(m->ark);
  memset(m, 0, sizeof *m);
}

void ra_snp_crl_check(const ra_snp_trust *t, X509 *vcek, X509 *ask, X509 *ark, time_t at,
                      ra_snp_verdict *vd) {
  int applied = 0;
  for (int i = 0; t->crls && i < sk_X509_CRL_num(t->crls); i++) {
    X509_CRL *crl = sk_X509_CRL_value(t->crls, i);
    const X509_NAME *iss = X509_CRL_get_issuer(crl);
    X509 *signer = NULL, *child = NULL;
    const char *who = NULL;
    if (X509_NAME_cmp(iss, X509_get_subject_name(ark)) == 0) {
      signer = ark, child = ask, who = "ARK";
    } else if (X509_NAME_cmp(iss, X509_get_subject_name(ask)) == 0) {
      signer = ask, child = vcek, who = "ASK";
    } else {
      continue;
    }
    EVP_PKEY *k = X509_get0_pubkey(signer);
    if (!k || X509_CRL_verify(crl, k) != 1) {
      ra_snp_fail(vd, RA_SNP_CHECK_CRL, RA_ERR_CRL_SIGNATURE,
                  "a CRL naming the %s as its issuer is not signed by it", who);
      ERR_clear_error();
      return;
    }
    time_t last = asn1_unix(X509_CRL_get0_lastUpdate(crl));
    time_t next = asn1_unix(X509_CRL_get0_nextUpdate(crl));
    if (!last || !next || at < last || at >= next) {
      ra_snp_fail(vd, RA_SNP_CHECK_CRL, RA_ERR_CRL_EXPIRED,
                  "the %s's CRL is not valid at %lld (thisUpdate %lld, nextUpdate %lld)", who,
                  (long long)at, (long long)last, (long long)next);
      return;
    }
    X509_REVOKED *rev = NULL;
    if (X509_CRL_get0_by_cert(crl, &rev, child) == 1) {
      ra_snp_fail(vd, RA_SNP_CHECK_CRL, RA_ERR_CERT_REVOKED, "the %s's CRL revokes the %s", who,
                  child == ask ? "ASK" : "VCEK");
      return;
    }
    applied++;
  }
  ERR_clear_error();
  vd->crls_applied = applied;
  if (applied)
    ra_snp_pass(vd, RA_SNP_CHECK_CRL);
  else
    ra_snp_skip(vd, RA_SNP_CHECK_CRL);
}
