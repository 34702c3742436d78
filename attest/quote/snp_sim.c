/* attest/quote/snp_sim.c: the simulated SEV-SNP TEE (snp_sim.h). */
#include "raloop/attest/quote/snp_sim.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/bn.h>
#include <openssl/ecdsa.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "simdir_internal.h"

#define BUNDLE_NAME "snp-sim-hierarchy.pem"
#define SIM_PRODUCT "Milan-B0"

struct ra_snp_sim {
  EVP_PKEY *ark_key, *ask_key, *vcek_key;
  X509 *ark, *ask, *vcek;
  char *ark_path, *chain_path, *vcek_path;
  char *vcek_pem, *chain_pem;
  uint8_t chip_id[64];
};

static const ra_snp_tcb k_tcb = {.bootloader = 3, .tee = 0, .snp = 8, .microcode = 115};

void ra_snp_sim_tcb(ra_snp_tcb *out) {
  *out = k_tcb;
  out->raw = (uint64_t)k_tcb.bootloader | (uint64_t)k_tcb.tee << 8 | (uint64_t)k_tcb.snp << 48 |
             (uint64_t)k_tcb.microcode << 56;
}

void ra_snp_sim_guest_default(ra_snp_sim_guest *g) {
  memset(g, 0, sizeof *g);
  g->version = 5;
  g->policy = 0x30000;
  g->platform_info = 0x25;
  memset(g->measurement, 0x5e, sizeof g->measurement);
}

/* ---- certificates ---------------------------------------------------------- */

/* an extension with OID 1.3.6.1.4.1.3704.1.<sub> whose value is der */
static int add_amd_ext(X509 *c, const char *sub, const uint8_t *der, int n) {
  char oid[64];
  snprintf(oid, sizeof oid, "1.3.6.1.4.1.3704.1.%s", sub);
  return n < 0 ? -EIO : ra_simdir_add_ext_der(c, oid, der, (size_t)n);
}

static int add_amd_int(X509 *c, const char *sub, int v) {
  ASN1_INTEGER *i = ASN1_INTEGER_new();
  unsigned char *der = NULL;
  int n = i && ASN1_INTEGER_set(i, v) ? i2d_ASN1_INTEGER(i, &der) : -1;
  int rc = n > 0 ? add_amd_ext(c, sub, der, n) : -EIO;
  OPENSSL_free(der);
  ASN1_INTEGER_free(i);
  return rc;
}

static int add_amd_ia5(X509 *c, const char *sub, const char *v) {
  ASN1_IA5STRING *s = ASN1_IA5STRING_new();
  unsigned char *der = NULL;
  int n = s && ASN1_STRING_set(s, v, -1) ? i2d_ASN1_IA5STRING(s, &der) : -1;
  int rc = n > 0 ? add_amd_ext(c, sub, der, n) : -EIO;
  OPENSSL_free(der);
  ASN1_IA5STRING_free(s);
  return rc;
}

static int add_amd_vcek_exts(X509 *c, const ra_snp_tcb *t, const uint8_t hwid[64],
                             const char *csp) {
  int rc = add_amd_int(c, "1", 1);
  if (!rc) rc = add_amd_ia5(c, "2", SIM_PRODUCT);
  if (!rc) rc = add_amd_int(c, "3.1", t->bootloader);
  if (!rc) rc = add_amd_int(c, "3.2", t->tee);
  if (!rc) rc = add_amd_int(c, "3.3", t->snp);
  if (!rc) rc = add_amd_int(c, "3.8", t->microcode);
  if (!rc && !csp) rc = add_amd_ext(c, "4", hwid, 64); /* raw bytes, as AMD's VCEKs carry it */
  if (!rc && csp) rc = add_amd_ia5(c, "5", csp);
  return rc;
}

/* RSA-PSS, SHA-384, MGF1 SHA-384, salt 48: AMD's parameters */
static EVP_MD_CTX *pss_ctx(EVP_PKEY *key) {
  EVP_MD_CTX *mc = EVP_MD_CTX_new();
  EVP_PKEY_CTX *pc = NULL;
  if (!mc || EVP_DigestSignInit(mc, &pc, EVP_sha384(), NULL, key) != 1 ||
      EVP_PKEY_CTX_set_rsa_padding(pc, RSA_PKCS1_PSS_PADDING) <= 0 ||
      EVP_PKEY_CTX_set_rsa_pss_saltlen(pc, 48) <= 0 ||
      EVP_PKEY_CTX_set_rsa_mgf1_md(pc, EVP_sha384()) <= 0) {
    EVP_MD_CTX_free(mc);
    return NULL;
  }
  return mc;
}

/* kind 0 ARK, 1 ASK, 2 VCEK */
static X509 *make_cert(int kind, const char *cn, EVP_PKEY *key, X509 *issuer, EVP_PKEY *issuer_key,
                       const ra_snp_tcb *tcb, const uint8_t hwid[64], const char *csp, time_t nb,
                       time_t na) {
  X509 *c = X509_new();
  X509_NAME *name = ra_simdir_name(cn);
  EVP_MD_CTX *mc = NULL;
  int ok = 0;
  if (!c || !name || !X509_set_version(c, 2)) goto out;
  if (!ASN1_INTEGER_set(X509_get_serialNumber(c), kind == 2 ? 0 : 0x10000 + kind)) goto out;
  if (!X509_set_subject_name(c, name)) goto out;
  if (!X509_set_issuer_name(c, issuer ? X509_get_subject_name(issuer) : name)) goto out;
  if (nb || na) {
    if (!ASN1_TIME_set(X509_getm_notBefore(c), nb) || !ASN1_TIME_set(X509_getm_notAfter(c), na))
      goto out;
  } else {
    if (!X509_gmtime_adj(X509_getm_notBefore(c), -86400L)) goto out;
    if (!X509_time_adj_ex(X509_getm_notAfter(c), 3652, -86400L, NULL)) goto out;
  }
  if (!X509_set_pubkey(c, key)) goto out;
  X509 *iss = issuer ? issuer : c;
  if (kind < 2) {
    if (ra_simdir_add_ext(c, iss, NID_subject_key_identifier, "hash")) goto out;
    if (ra_simdir_add_ext(c, iss, NID_key_usage, "critical,keyCertSign,cRLSign")) goto out;
    if (ra_simdir_add_ext(c, iss, NID_basic_constraints,
                kind == 0 ? "critical,CA:TRUE" : "critical,CA:TRUE,pathlen:0"))
      goto out;
    if (kind == 1 && ra_simdir_add_ext(c, iss, NID_authority_key_identifier, "keyid:always")) goto out;
  } else if (add_amd_vcek_exts(c, tcb, hwid, csp)) {
    goto out;
  }
  mc = pss_ctx(issuer_key);
  if (!mc || X509_sign_ctx(c, mc) <= 0) goto out;
  ok = 1;
out:
  EVP_MD_CTX_free(mc);
  X509_NAME_free(name);
  if (!ok) {
    X509_free(c);
    return NULL;
  }
  return c;
}

static int chip_id_of(EVP_PKEY *k, uint8_t out[64]) {
  uint8_t pub[160];
  size_t n = 0;
  unsigned hl = 0;
  if (!EVP_PKEY_get_octet_string_param(k, "pub", pub, sizeof pub, &n)) return -EIO;
  return EVP_Digest(pub, n, out, &hl, EVP_sha512(), NULL) && hl == 64 ? 0 : -EIO;
}

static int generate(void *ctx) {
  ra_snp_sim *s = ctx;
  s->ark_key = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)2048);
  s->ask_key = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)2048);
  s->vcek_key = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-384");
  if (!s->ark_key || !s->ask_key || !s->vcek_key) return -EIO;
  if (chip_id_of(s->vcek_key, s->chip_id)) return -EIO;
  s->ark =
      make_cert(0, "raloop Simulated ARK", s->ark_key, NULL, s->ark_key, NULL, NULL, NULL, 0, 0);
  if (!s->ark) return -EIO;
  s->ask =
      make_cert(1, "raloop Simulated ASK", s->ask_key, s->ark, s->ark_key, NULL, NULL, NULL, 0, 0);
  if (!s->ask) return -EIO;
  s->vcek = make_cert(2, "raloop Simulated VCEK", s->vcek_key, s->ask, s->ask_key, &k_tcb,
                      s->chip_id, NULL, 0, 0);
  return s->vcek ? 0 : -EIO;
}

/* Order in the bundle: ARK key, ARK, ASK key, ASK, VCEK key, VCEK. */
static int bundle_encode(const void *ctx, uint8_t **out, size_t *len) {
  const ra_snp_sim *s = ctx;
  EVP_PKEY *keys[] = {s->ark_key, s->ask_key, s->vcek_key};
  X509 *certs[] = {s->ark, s->ask, s->vcek};
  return ra_simdir_bundle_encode(keys, 3, certs, 3, out, len);
}

static int bundle_decode(void *ctx, const uint8_t *data, size_t len) {
  ra_snp_sim *s = ctx;
  EVP_PKEY *keys[3] = {NULL};
  X509 *certs[3] = {NULL};
  int rc = ra_simdir_bundle_decode(data, len, keys, 3, certs, 3);
  s->ark_key = keys[0], s->ask_key = keys[1], s->vcek_key = keys[2];
  s->ark = certs[0], s->ask = certs[1], s->vcek = certs[2];
  if (rc) return rc;
  return chip_id_of(s->vcek_key, s->chip_id) ? -EINVAL : 0;
}

static char *pem_of(X509 *a, X509 *b, size_t *len) {
  BIO *bio = BIO_new(BIO_s_mem());
  char *out = NULL, *p;
  if (bio && PEM_write_bio_X509(bio, a) && (!b || PEM_write_bio_X509(bio, b))) {
    long n = BIO_get_mem_data(bio, &p);
    out = n > 0 ? malloc((size_t)n + 1) : NULL;
    if (out) {
      memcpy(out, p, (size_t)n);
      out[n] = '\0';
      *len = (size_t)n;
    }
  }
  BIO_free(bio);
  return out;
}

static void release(void *ctx) {
  ra_snp_sim *s = ctx;
  EVP_PKEY_free(s->ark_key);
  EVP_PKEY_free(s->ask_key);
  EVP_PKEY_free(s->vcek_key);
  X509_free(s->ark);
  X509_free(s->ask);
  X509_free(s->vcek);
  s->ark_key = s->ask_key = s->vcek_key = NULL;
  s->ark = s->ask = s->vcek = NULL;
}

static const ra_simdir_ops k_bundle_ops = {generate, bundle_encode, bundle_decode, release};

/* Writes the PEM of a (and b after it, when given) to path when it
 * changed; *keep, when given, receives the PEM (caller frees). */
static int publish(const char *path, X509 *a, X509 *b, char **keep) {
  size_t n = 0;
  char *pem = pem_of(a, b, &n);
  if (!pem) return -ENOMEM;
  int rc = ra_simdir_replace_if_different(path, pem, n, 0644);
  if (keep && !rc)
    *keep = pem;
  else
    free(pem);
  return rc;
}

int ra_snp_sim_open(const char *dir, ra_snp_sim **out) {
  if (!dir || !*dir || !out) return -EINVAL;
  *out = NULL;
  int rc = ra_simdir_mkdir_p(dir);
  if (rc) return rc;
  ra_snp_sim *s = calloc(1, sizeof *s);
  if (!s) return -ENOMEM;
  char *bundle = ra_simdir_join(dir, BUNDLE_NAME);
  s->ark_path = ra_simdir_join(dir, RA_SNP_SIM_ARK_FILE);
  s->chain_path = ra_simdir_join(dir, RA_SNP_SIM_CHAIN_FILE);
  s->vcek_path = ra_simdir_join(dir, RA_SNP_SIM_VCEK_FILE);
  rc = -ENOMEM;
  if (bundle && s->ark_path && s->chain_path && s->vcek_path)
    rc = ra_simdir_load_or_create(bundle, &k_bundle_ops, s);
  if (!rc) rc = publish(s->ark_path, s->ark, NULL, NULL);
  if (!rc) rc = publish(s->chain_path, s->ask, s->ark, &s->chain_pem);
  if (!rc) rc = publish(s->vcek_path, s->vcek, NULL, &s->vcek_pem);
  free(bundle);
  if (rc) {
    ERR_clear_error();
    ra_snp_sim_free(s);
    return rc;
  }
  *out = s;
  return 0;
}

void ra_snp_sim_free(ra_snp_sim *s) {
  if (!s) return;
  release(s);
  free(s->ark_path);
  free(s->chain_path);
  free(s->vcek_path);
  free(s->vcek_pem);
  free(s->chain_pem);
  free(s);
}

const char *ra_snp_sim_ark_path(const ra_snp_sim *s) { return s ? s->ark_path : NULL; }
const char *ra_snp_sim_chain_path(const ra_snp_sim *s) { return s ? s->chain_path : NULL; }
const char *ra_snp_sim_vcek_path(const ra_snp_sim *s) { return s ? s->vcek_path : NULL; }
const char *ra_snp_sim_vcek_pem(const ra_snp_sim *s) { return s ? s->vcek_pem : NULL; }
const char *ra_snp_sim_chain_pem(const ra_snp_sim *s) { return s ? s->chain_pem : NULL; }
const uint8_t *ra_snp_sim_chip_id(const ra_snp_sim *s) { return s ? s->chip_id : NULL; }

static void put_le32(uint8_t *p, uint32_t v) {
  for (int i = 0; i < 4; i++) p[i] = (uint8_t)(v >> (8 * i));
}
static void put_le64(uint8_t *p, uint64_t v) {
  for (int i = 0; i < 8; i++) p[i] = (uint8_t)(v >> (8 * i));
}

int ra_snp_sim_report(ra_snp_sim *s, const ra_snp_sim_guest *g, const uint8_t report_data[64],
                      uint8_t out[RA_SNP_REPORT_LEN]) {
  if (!s || !report_data || !out) return -EINVAL;
  ra_snp_sim_guest def;
  if (!g) {
    ra_snp_sim_guest_default(&def);
    g = &def;
  }
  if (g->version < RA_SNP_MIN_VERSION || g->version > RA_SNP_MAX_VERSION) return -EINVAL;
  ra_snp_tcb t;
  ra_snp_sim_tcb(&t);
  uint8_t *r = out;
  memset(r, 0, RA_SNP_REPORT_LEN);
  put_le32(r + 0x00, g->version);
  put_le32(r + 0x04, g->guest_svn);
  put_le64(r + 0x08, g->policy);
  memcpy(r + 0x10, g->family_id, 16);
  memcpy(r + 0x20, g->image_id, 16);
  put_le32(r + 0x30, g->vmpl);
  put_le32(r + 0x34, RA_SNP_SIG_ALGO_ECDSA_P384_SHA384);
  put_le64(r + 0x38, t.raw);
  put_le64(r + 0x40, g->platform_info);
  put_le32(r + 0x48, ((uint32_t)g->signing_key & 7u) << 2); /* chip key not masked, no author key */
  memcpy(r + 0x50, report_data, 64);
  memcpy(r + 0x90, g->measurement, 48);
  memcpy(r + 0xC0, g->host_data, 32);
  memcpy(r + 0xE0, g->id_key_digest, 48);
  memcpy(r + 0x110, g->author_key_digest, 48);
  if (RAND_bytes(r + 0x140, 32) != 1) return -EIO; /* report_id */
  put_le64(r + 0x180, t.raw);
  if (g->version >= 3) {
    r[0x188] = 0x19; /* Milan: family 19h, model 01h, stepping 1 */
    r[0x189] = 0x01;
    r[0x18A] = 0x01;
  }
  memcpy(r + 0x1A0, s->chip_id, 64);
  put_le64(r + 0x1E0, t.raw);
  r[0x1E8] = 11, r[0x1E9] = 55, r[0x1EA] = 1; /* firmware 1.55.11 */
  r[0x1EC] = 11, r[0x1ED] = 55, r[0x1EE] = 1;
  put_le64(r + 0x1F0, t.raw);

  EVP_MD_CTX *mc = EVP_MD_CTX_new();
  unsigned char der[128];
  size_t dl = sizeof der;
  int rc = -EIO;
  if (mc && EVP_DigestSignInit(mc, NULL, EVP_sha384(), NULL, s->vcek_key) == 1 &&
      EVP_DigestSign(mc, der, &dl, r, RA_SNP_REPORT_BODY_LEN) == 1) {
    const unsigned char *p = der;
    ECDSA_SIG *sig = d2i_ECDSA_SIG(NULL, &p, (long)dl);
    const BIGNUM *br = NULL, *bs = NULL;
    if (sig) ECDSA_SIG_get0(sig, &br, &bs);
    uint8_t be[48];
    if (sig && BN_bn2binpad(br, be, 48) == 48) {
      for (int i = 0; i < 48; i++) r[0x2A0 + i] = be[47 - i];
      if (BN_bn2binpad(bs, be, 48) == 48) {
        for (int i = 0; i < 48; i++) r[0x2E8 + i] = be[47 - i];
        rc = 0;
      }
    }
    ECDSA_SIG_free(sig);
  }
  EVP_MD_CTX_free(mc);
  ERR_clear_error();
  return rc;
}

int ra_snp_sim_issue_vcek(ra_snp_sim *s, const ra_snp_tcb *tcb, const uint8_t hwid[64],
                          const char *csp_id, time_t nb, time_t na, char **pem) {
  if (!s || !pem) return -EINVAL;
  *pem = NULL;
  X509 *c =
      make_cert(2, csp_id ? "raloop Simulated VLEK" : "raloop Simulated VCEK", s->vcek_key, s->ask,
                s->ask_key, tcb ? tcb : &k_tcb, hwid ? hwid : s->chip_id, csp_id, nb, na);
  if (!c) {
    ERR_clear_error();
    return -EIO;
  }
  size_t n = 0;
  *pem = pem_of(c, NULL, &n);
  X509_free(c);
  return *pem ? 0 : -ENOMEM;
}

int ra_snp_sim_crl(ra_snp_sim *s, int revoke_ask, time_t this_update, time_t next_update,
                   uint8_t **der, size_t *len) {
  if (!s || !der || !len) return -EINVAL;
  *der = NULL;
  X509_CRL *crl = X509_CRL_new();
  ASN1_TIME *lu = ASN1_TIME_set(NULL, this_update), *nu = ASN1_TIME_set(NULL, next_update);
  EVP_MD_CTX *mc = NULL;
  int rc = -EIO;
  if (!crl || !lu || !nu || !X509_CRL_set_version(crl, 1) ||
      !X509_CRL_set_issuer_name(crl, X509_get_subject_name(s->ark)) ||
      !X509_CRL_set1_lastUpdate(crl, lu) || !X509_CRL_set1_nextUpdate(crl, nu))
    goto out;
  if (revoke_ask) {
    X509_REVOKED *rv = X509_REVOKED_new();
    if (!rv || !X509_REVOKED_set_serialNumber(rv, X509_get_serialNumber(s->ask)) ||
        !X509_REVOKED_set_revocationDate(rv, lu) || !X509_CRL_add0_revoked(crl, rv)) {
      X509_REVOKED_free(rv);
      goto out;
    }
  }
  mc = pss_ctx(s->ark_key);
  if (!mc || X509_CRL_sign_ctx(crl, mc) <= 0) goto out;
  unsigned char *d = NULL;
  int n = i2d_X509_CRL(crl, &d);
  if (n <= 0) goto out;
  *der = malloc((size_t)n);
  rc = *der ? 0 : -ENOMEM;
  if (*der) {
    memcpy(*der, d, (size_t)n);
    *len = (size_t)n;
  }
  OPENSSL_free(d);
out:
  EVP_MD_CTX_free(mc);
  ASN1_TIME_free(lu);
  ASN1_TIME_free(nu);
  X509_CRL_free(crl);
  ERR_clear_error();
  return rc;
}
