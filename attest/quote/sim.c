/* attest/sim.c: the simulated TEE (see sim.h). */
#include "raloop/attest/quote/sim.h"
#include "simdir_internal.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <jansson.h>
#include <time.h>

#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/objects.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#define BUNDLE_NAME "sim-hierarchy.pem"
#define ROOT_NAME   RA_SIM_ROOT_FILE
#define CHAIN_NAME  RA_SIM_CHAIN_FILE

#define QUOTE_HDR_LEN  48
#define TD_BODY_LEN    584
#define SGX_REPORT_LEN 384
#define QE_AUTH_LEN    32

struct ra_sim {
  char *dir, *root_path, *chain_path;
  EVP_PKEY *root_key, *ica_key, *pck_key, *att_key;
  X509 *root, *ica, *pck;
  uint8_t att_pub[64];
  uint8_t qe_report[SGX_REPORT_LEN], qe_sig[64];
  uint8_t qe_auth[QE_AUTH_LEN];
  uint8_t *chain; /* PEM leaf, intermediate, root, then a NUL as Intel's QE writes it */
  size_t chain_len;
};

/* Intel's QE vendor id: the quote format carries it and verifiers check it. */
static const uint8_t k_qe_vendor_id[16] = {0x93, 0x9a, 0x72, 0x33, 0xf7, 0x9c, 0x4c, 0xa9,
                                           0x94, 0x0a, 0x0d, 0xb3, 0x95, 0x7f, 0x06, 0x07};

/* Platform description, modelled on a real TDX host (a dstack tappd quote):
 * the TCB values a PCK certificate and a QE report carry. */
static const uint8_t k_tcb_comp[16] = {2, 2, 2, 2, 3, 1, 0, 3, 0, 0, 0, 0, 0, 0, 0, 0};
static const unsigned k_pcesvn = 11;
static const uint8_t k_pck_cpusvn[16] = {2, 2, 2, 2, 3, 1, 0, 3, 0, 0, 0, 0, 0, 0, 0, 0};
static const uint8_t k_pceid[2] = {0, 0};
static const uint8_t k_fmspc[6] = {0xb0, 0xc0, 0x6f, 0x00, 0x00, 0x00};
/* TD QE identity (public values of Intel's TD quoting enclave), so that a
 * QE identity check evaluates the simulated QE as it would a real one. */
static const uint8_t k_qe_cpusvn[16] = {0x02, 0x02, 0x19, 0x1b, 0x03, 0xff, 0x00, 0x06};
static const uint8_t k_qe_attributes[16] = {0x15, 0, 0, 0, 0, 0, 0, 0, 0xe7, 0, 0, 0, 0, 0, 0, 0};
static const uint8_t k_qe_mrenclave[32] = {
    0xe5, 0xa3, 0xa7, 0xb5, 0xd8, 0x30, 0xc2, 0x95, 0x3b, 0x98, 0x53, 0x4c, 0x6c, 0x59, 0xa3, 0xa3,
    0x4f, 0xdc, 0x34, 0xe9, 0x33, 0xf7, 0xf5, 0x89, 0x8f, 0x0a, 0x85, 0xcf, 0x08, 0x84, 0x6b, 0xca};
static const uint8_t k_qe_mrsigner[32] = {
    0xdc, 0x9e, 0x2a, 0x7c, 0x6f, 0x94, 0x8f, 0x17, 0x47, 0x4e, 0x34, 0xa7, 0xfc, 0x43, 0xed, 0x03,
    0x0f, 0x7c, 0x15, 0x63, 0xf1, 0xba, 0xbd, 0xdf, 0x63, 0x40, 0xc8, 0x2e, 0x0e, 0x54, 0xa8, 0xc5};
static const uint16_t k_qe_prod_id = 2, k_qe_isvsvn = 6;
/* A TDX module measurement (MRSEAM) as a real TDX 1.5 module reports it. */
static const uint8_t k_mrseam[48] = {
    0x1c, 0xc6, 0xa1, 0x7a, 0xb7, 0x99, 0xe9, 0xa6, 0x93, 0xfa, 0xc7, 0x53, 0x6b, 0xe6, 0x1c, 0x12,
    0xee, 0x1e, 0x0f, 0xab, 0xad, 0xa8, 0x2d, 0x0c, 0x99, 0x9e, 0x08, 0xcc, 0xee, 0x2a, 0xa8, 0x6d,
    0xe7, 0x7b, 0x08, 0x70, 0xf5, 0x58, 0xc5, 0x70, 0xe7, 0xff, 0xe5, 0x5d, 0x6d, 0x47, 0xfa, 0x04};

/* ---- small helpers ---------------------------------------------------- */

static void put_le16(uint8_t *p, uint16_t v) {
  p[0] = (uint8_t)v;
  p[1] = (uint8_t)(v >> 8);
}
static void put_le32(uint8_t *p, uint32_t v) {
  for (int i = 0; i < 4; i++) p[i] = (uint8_t)(v >> (8 * i));
}
static void put_le64(uint8_t *p, uint64_t v) {
  for (int i = 0; i < 8; i++) p[i] = (uint8_t)(v >> (8 * i));
}

/* ---- ECDSA helpers ------------------------------------------------------ */

/* ECDSA P-256 over SHA-256(msg), as raw r||s (32 bytes each, big-endian):
 * the form Intel's quotes use. */
static int ecdsa_sign_raw(EVP_PKEY *key, const uint8_t *msg, size_t len, uint8_t out[64]) {
  int rc = -EIO;
  EVP_MD_CTX *ctx = EVP_MD_CTX_new();
  uint8_t der[80];
  size_t derlen = sizeof der;
  ECDSA_SIG *sig = NULL;
  if (!ctx) return -ENOMEM;
  if (EVP_DigestSignInit(ctx, NULL, EVP_sha256(), NULL, key) != 1) goto out;
  if (EVP_DigestSign(ctx, der, &derlen, msg, len) != 1) goto out;
  const unsigned char *p = der;
  sig = d2i_ECDSA_SIG(NULL, &p, (long)derlen);
  if (!sig) goto out;
  const BIGNUM *r, *s;
  ECDSA_SIG_get0(sig, &r, &s);
  if (BN_bn2binpad(r, out, 32) != 32 || BN_bn2binpad(s, out + 32, 32) != 32) goto out;
  rc = 0;
out:
  ECDSA_SIG_free(sig);
  EVP_MD_CTX_free(ctx);
  return rc;
}

/* The public key as raw x||y, the form the quote carries. */
static int ec_pub_raw(const EVP_PKEY *key, uint8_t out[64]) {
  BIGNUM *x = NULL, *y = NULL;
  int rc = -EIO;
  if (EVP_PKEY_get_bn_param(key, OSSL_PKEY_PARAM_EC_PUB_X, &x) == 1 &&
      EVP_PKEY_get_bn_param(key, OSSL_PKEY_PARAM_EC_PUB_Y, &y) == 1 &&
      BN_bn2binpad(x, out, 32) == 32 && BN_bn2binpad(y, out + 32, 32) == 32)
    rc = 0;
  BN_free(x);
  BN_free(y);
  return rc;
}

static int is_p256(const EVP_PKEY *key) {
  char name[64];
  size_t n = 0;
  if (!key || EVP_PKEY_get_base_id(key) != EVP_PKEY_EC) return 0;
  if (EVP_PKEY_get_utf8_string_param(key, OSSL_PKEY_PARAM_GROUP_NAME, name, sizeof name, &n) != 1)
    return 0;
  return strcmp(name, "prime256v1") == 0 || strcmp(name, "P-256") == 0;
}

/* ---- the SGX extension (DER written by hand: a fixed, small structure) --- */

typedef struct der {
  uint8_t b[1024];
  size_t n;
  int err;
} der;

static void der_put(der *d, const void *p, size_t n) {
  if (d->err || n > sizeof d->b - d->n) {
    d->err = 1;
    return;
  }
  memcpy(d->b + d->n, p, n);
  d->n += n;
}

static void der_tlv(der *d, uint8_t tag, const uint8_t *content, size_t n) {
  uint8_t h[4];
  size_t hl;
  h[0] = tag;
  if (n < 0x80) {
    h[1] = (uint8_t)n;
    hl = 2;
  } else if (n < 0x100) {
    h[1] = 0x81;
    h[2] = (uint8_t)n;
    hl = 3;
  } else if (n < 0x10000) {
    h[1] = 0x82;
    h[2] = (uint8_t)(n >> 8);
    h[3] = (uint8_t)n;
    hl = 4;
  } else {
    d->err = 1;
    return;
  }
  der_put(d, h, hl);
  der_put(d, content, n);
}

/* OID 1.2.840.113741.1.13.1[.a[.b]] (components < 128) */
static void der_sgx_oid(der *d, int a, int b) {
  uint8_t o[16] = {0x2a, 0x86, 0x48, 0x86, 0xf8, 0x4d, 0x01, 0x0d, 0x01};
  size_t n = 9;
  if (a) o[n++] = (uint8_t)a;
  if (b) o[n++] = (uint8_t)b;
  der_tlv(d, 0x06, o, n);
}

static void der_uint(der *d, unsigned v) {
  uint8_t c[5];
  size_t n = 0;
  uint8_t be[4] = {(uint8_t)(v >> 24), (uint8_t)(v >> 16), (uint8_t)(v >> 8), (uint8_t)v};
  size_t i = 0;
  while (i < 3 && be[i] == 0) i++;
  if (be[i] & 0x80) c[n++] = 0;
  while (i < 4) c[n++] = be[i++];
  der_tlv(d, 0x02, c, n);
}

/* SEQUENCE { OID .a[.b], <value> } where value is already-encoded TLV */
static void der_pair(der *d, int a, int b, const der *value) {
  der inner = {.n = 0};
  der_sgx_oid(&inner, a, b);
  der_put(&inner, value->b, value->n);
  if (inner.err || value->err) {
    d->err = 1;
    return;
  }
  der_tlv(d, 0x30, inner.b, inner.n);
}

static void der_pair_octets(der *d, int a, int b, const uint8_t *p, size_t n) {
  der v = {.n = 0};
  der_tlv(&v, 0x04, p, n);
  der_pair(d, a, b, &v);
}

static int sgx_extension(const uint8_t ppid[16], const uint8_t instance_id[16], der *out) {
  der all = {.n = 0}, tcb = {.n = 0}, v;
  der_pair_octets(&all, 1, 0, ppid, 16);
  for (int i = 0; i < 16; i++) {
    v = (der){.n = 0};
    der_uint(&v, k_tcb_comp[i]);
    der_pair(&tcb, 2, i + 1, &v);
  }
  v = (der){.n = 0};
  der_uint(&v, k_pcesvn);
  der_pair(&tcb, 2, 17, &v);
  der_pair_octets(&tcb, 2, 18, k_pck_cpusvn, 16);
  v = (der){.n = 0};
  der_tlv(&v, 0x30, tcb.b, tcb.n);
  der_pair(&all, 2, 0, &v);
  der_pair_octets(&all, 3, 0, k_pceid, 2);
  der_pair_octets(&all, 4, 0, k_fmspc, 6);
  v = (der){.n = 0};
  der_tlv(&v, 0x0a, (const uint8_t[]){1}, 1); /* SGX type: Scalable (issued by a Platform CA) */
  der_pair(&all, 5, 0, &v);
  der_pair_octets(&all, 6, 0, instance_id, 16);
  der conf = {.n = 0};
  for (int i = 1; i <= 3; i++) { /* dynamicPlatform, cachedKeys, SMTEnabled */
    v = (der){.n = 0};
    der_tlv(&v, 0x01, (const uint8_t[]){0xff}, 1);
    der_pair(&conf, 7, i, &v);
  }
  v = (der){.n = 0};
  der_tlv(&v, 0x30, conf.b, conf.n);
  der_pair(&all, 7, 0, &v);
  *out = (der){.n = 0};
  der_tlv(out, 0x30, all.b, all.n);
  return (all.err || tcb.err || conf.err || out->err) ? -EIO : 0;
}

/* ---- certificates ------------------------------------------------------- */

/* kind: 0 root, 1 intermediate, 2 PCK leaf, 3 TCB signing certificate
 * (an end entity without the SGX extension) */
static X509 *make_cert(int kind, const char *cn, EVP_PKEY *key, X509 *issuer,
                       EVP_PKEY *issuer_key) {
  X509 *c = X509_new();
  X509_NAME *name = ra_simdir_name(cn);
  ASN1_INTEGER *serial = NULL;
  BIGNUM *bn = NULL;
  int ok = 0;
  if (!c || !name) goto out;
  uint8_t sr[16];
  if (RAND_bytes(sr, sizeof sr) != 1) goto out;
  sr[0] &= 0x7f; /* positive */
  sr[0] |= 0x01; /* and of full length */
  bn = BN_bin2bn(sr, sizeof sr, NULL);
  serial = bn ? BN_to_ASN1_INTEGER(bn, NULL) : NULL;
  if (!serial || !X509_set_version(c, 2) || !X509_set_serialNumber(c, serial)) goto out;
  if (!X509_set_subject_name(c, name)) goto out;
  if (!X509_set_issuer_name(c, issuer ? X509_get_subject_name(issuer) : name)) goto out;
  /* valid from a day ago (clock skew between a server and its clients) for ten years */
  if (!X509_gmtime_adj(X509_getm_notBefore(c), -86400L)) goto out;
  if (!X509_time_adj_ex(X509_getm_notAfter(c), 3652, -86400L, NULL)) goto out;
  if (!X509_set_pubkey(c, key)) goto out;
  X509 *iss = issuer ? issuer : c;
  if (ra_simdir_add_ext(c, iss, NID_subject_key_identifier, "hash")) goto out;
  if (ra_simdir_add_ext(c, iss, NID_authority_key_identifier, "keyid:always")) goto out;
  if (kind == 0) {
    if (ra_simdir_add_ext(c, iss, NID_key_usage, "critical,keyCertSign,cRLSign")) goto out;
    if (ra_simdir_add_ext(c, iss, NID_basic_constraints, "critical,CA:TRUE,pathlen:1")) goto out;
  } else if (kind == 1) {
    if (ra_simdir_add_ext(c, iss, NID_key_usage, "critical,keyCertSign,cRLSign")) goto out;
    if (ra_simdir_add_ext(c, iss, NID_basic_constraints, "critical,CA:TRUE,pathlen:0")) goto out;
  } else {
    if (ra_simdir_add_ext(c, iss, NID_key_usage, "critical,digitalSignature,nonRepudiation")) goto out;
    if (ra_simdir_add_ext(c, iss, NID_basic_constraints, "critical,CA:FALSE")) goto out;
  }
  if (kind == 2) {
    /* PPID and PlatformInstanceID: stable per hierarchy, derived from the
         * PCK key so that they need no storage of their own. */
    uint8_t pub[64], h[32];
    unsigned hl = 0;
    if (ec_pub_raw(key, pub)) goto out;
    if (!EVP_Digest(pub, sizeof pub, h, &hl, EVP_sha256(), NULL)) goto out;
    der ext;
    if (sgx_extension(h, h + 16, &ext)) goto out;
    if (ra_simdir_add_ext_der(c, "1.2.840.113741.1.13.1", ext.b, ext.n)) goto out;
  }
  if (!X509_sign(c, issuer_key, EVP_sha256())) goto out;
  ok = 1;
out:
  ASN1_INTEGER_free(serial);
  BN_free(bn);
  X509_NAME_free(name);
  if (!ok) {
    X509_free(c);
    return NULL;
  }
  return c;
}

/* ---- the bundle ---------------------------------------------------------- */

static void sim_release_keys(void *ctx) {
  ra_sim *s = ctx;
  EVP_PKEY_free(s->root_key);
  EVP_PKEY_free(s->ica_key);
  EVP_PKEY_free(s->pck_key);
  EVP_PKEY_free(s->att_key);
  X509_free(s->root);
  X509_free(s->ica);
  X509_free(s->pck);
  s->root_key = s->ica_key = s->pck_key = s->att_key = NULL;
  s->root = s->ica = s->pck = NULL;
}

static int generate(void *ctx) {
  ra_sim *s = ctx;
  s->root_key = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
  s->ica_key = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
  s->pck_key = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
  s->att_key = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
  if (!s->root_key || !s->ica_key || !s->pck_key || !s->att_key) return -EIO;
  s->root = make_cert(0, "raloop Simulated SGX Root CA", s->root_key, NULL, s->root_key);
  if (!s->root) return -EIO;
  s->ica = make_cert(1, "raloop Simulated SGX PCK Platform CA", s->ica_key, s->root, s->root_key);
  if (!s->ica) return -EIO;
  s->pck = make_cert(2, "raloop Simulated SGX PCK Certificate", s->pck_key, s->ica, s->ica_key);
  return s->pck ? 0 : -EIO;
}

/* Order in the bundle: root key, root cert, intermediate key, intermediate
 * cert, PCK key, PCK cert, attestation key. */
static int bundle_encode(const void *ctx, uint8_t **out, size_t *len) {
  const ra_sim *s = ctx;
  EVP_PKEY *keys[] = {s->root_key, s->ica_key, s->pck_key, s->att_key};
  X509 *certs[] = {s->root, s->ica, s->pck};
  return ra_simdir_bundle_encode(keys, 4, certs, 3, out, len);
}

static int bundle_decode(void *ctx, const uint8_t *data, size_t len) {
  ra_sim *s = ctx;
  EVP_PKEY *keys[4] = {NULL};
  X509 *certs[3] = {NULL};
  int rc = ra_simdir_bundle_decode(data, len, keys, 4, certs, 3);
  s->root_key = keys[0], s->ica_key = keys[1], s->pck_key = keys[2], s->att_key = keys[3];
  s->root = certs[0], s->ica = certs[1], s->pck = certs[2];
  if (rc) return rc;
  /* fail closed on a bundle that was edited by hand into something else */
  if (!is_p256(s->root_key) || !is_p256(s->ica_key) || !is_p256(s->pck_key) || !is_p256(s->att_key))
    return -EINVAL;
  return 0;
}

static int pem_of(X509 *c, BIO *b) { return PEM_write_bio_X509(b, c) ? 0 : -EIO; }

/* chain (leaf, intermediate, root) and root as PEM text */
static int derive_pems(ra_sim *s, char **root_pem, size_t *root_len) {
  BIO *b = BIO_new(BIO_s_mem()), *r = BIO_new(BIO_s_mem());
  int rc = -ENOMEM;
  if (!b || !r) goto out;
  rc = pem_of(s->pck, b);
  if (!rc) rc = pem_of(s->ica, b);
  if (!rc) rc = pem_of(s->root, b);
  if (!rc) rc = pem_of(s->root, r);
  if (rc) goto out;
  char *p;
  long n = BIO_get_mem_data(b, &p);
  rc = -ENOMEM;
  s->chain = malloc((size_t)n + 1);
  if (!s->chain) goto out;
  memcpy(s->chain, p, (size_t)n);
  s->chain[n] = '\0';
  s->chain_len = (size_t)n + 1;
  n = BIO_get_mem_data(r, &p);
  *root_pem = malloc((size_t)n);
  if (!*root_pem) goto out;
  memcpy(*root_pem, p, (size_t)n);
  *root_len = (size_t)n;
  rc = 0;
out:
  BIO_free(b);
  BIO_free(r);
  return rc;
}

/* The QE report: an SGX report of the quoting enclave whose report_data
 * commits to the attestation key, signed by the PCK key. */
static int make_qe_report(ra_sim *s) {
  uint8_t *r = s->qe_report;
  memset(r, 0, SGX_REPORT_LEN);
  memcpy(r + 0, k_qe_cpusvn, 16);
  /* misc_select (4) and reserved (28) stay zero */
  memcpy(r + 48, k_qe_attributes, 16);
  memcpy(r + 64, k_qe_mrenclave, 32);
  memcpy(r + 128, k_qe_mrsigner, 32);
  put_le16(r + 256, k_qe_prod_id);
  put_le16(r + 258, k_qe_isvsvn);
  for (int i = 0; i < QE_AUTH_LEN; i++) s->qe_auth[i] = (uint8_t)i; /* as Intel's QE does */
  uint8_t buf[64 + QE_AUTH_LEN];
  memcpy(buf, s->att_pub, 64);
  memcpy(buf + 64, s->qe_auth, QE_AUTH_LEN);
  unsigned hl = 0;
  if (!EVP_Digest(buf, sizeof buf, r + 320, &hl, EVP_sha256(), NULL) || hl != 32) return -EIO;
  return ecdsa_sign_raw(s->pck_key, r, SGX_REPORT_LEN, s->qe_sig);
}

static const ra_simdir_ops k_bundle_ops = {generate, bundle_encode, bundle_decode,
                                            sim_release_keys};

int ra_sim_open(const char *dir, ra_sim **out) {
  if (!dir || !*dir || !out) return -EINVAL;
  *out = NULL;
  int rc = ra_simdir_mkdir_p(dir);
  if (rc) return rc;
  ra_sim *s = calloc(1, sizeof *s);
  if (!s) return -ENOMEM;
  char *bundle_path = NULL, *root_pem = NULL;
  size_t root_len = 0;
  rc = -ENOMEM;
  s->dir = strdup(dir);
  s->root_path = ra_simdir_join(dir, ROOT_NAME);
  s->chain_path = ra_simdir_join(dir, CHAIN_NAME);
  bundle_path = ra_simdir_join(dir, BUNDLE_NAME);
  if (!s->dir || !s->root_path || !s->chain_path || !bundle_path) goto fail;

  rc = ra_simdir_load_or_create(bundle_path, &k_bundle_ops, s);
  if (!rc) rc = ec_pub_raw(s->att_key, s->att_pub);
  if (!rc) rc = make_qe_report(s);
  if (!rc) rc = derive_pems(s, &root_pem, &root_len);
  if (!rc) rc = ra_simdir_replace_if_different(s->root_path, root_pem, root_len, 0644);
  if (!rc) rc = ra_simdir_replace_if_different(s->chain_path, s->chain, s->chain_len - 1, 0644);
  if (rc) goto fail;
  free(root_pem);
  free(bundle_path);
  *out = s;
  return 0;
fail:
  free(root_pem);
  ERR_clear_error(); /* leave no stale OpenSSL errors for the caller to trip on */
  free(bundle_path);
  ra_sim_free(s);
  return rc;
}

void ra_sim_free(ra_sim *s) {
  if (!s) return;
  sim_release_keys(s);
  free(s->dir);
  free(s->root_path);
  free(s->chain_path);
  free(s->chain);
  free(s);
}

const char *ra_sim_root_pem_path(const ra_sim *s) { return s ? s->root_path : NULL; }
const char *ra_sim_chain_pem_path(const ra_sim *s) { return s ? s->chain_path : NULL; }
const char *ra_sim_dir(const ra_sim *s) { return s ? s->dir : NULL; }

void ra_sim_td_default(ra_sim_td *td) {
  memset(td, 0, sizeof *td);
  memset(td->mrtd, 0x5d, sizeof td->mrtd);
  for (int i = 0; i < 4; i++) memset(td->rtmr[i], 0xa0 + i, sizeof td->rtmr[i]);
  td->td_attributes = 1ull << 28; /* SEPT_VE_DISABLE */
  td->xfam = 0x00000000000602e7ull;
  td->tee_tcb_svn[0] = 5;
  td->tee_tcb_svn[1] = 1;
  td->tee_tcb_svn[2] = 2;
}

int ra_sim_quote(ra_sim *s, const ra_sim_td *td, const uint8_t report_data[64], uint8_t **quote,
                 size_t *len) {
  if (!s || !report_data || !quote || !len) return -EINVAL;
  *quote = NULL;
  *len = 0;
  ra_sim_td def;
  if (!td) {
    ra_sim_td_default(&def);
    td = &def;
  }
  /* type 6 data: QE report | sig | auth len + data | type 5 (u16) size (u32) chain */
  size_t cert6 = SGX_REPORT_LEN + 64 + 2 + QE_AUTH_LEN + 2 + 4 + s->chain_len;
  size_t sig_data = 64 + 64 + 2 + 4 + cert6;
  size_t total = QUOTE_HDR_LEN + TD_BODY_LEN + 4 + sig_data;
  if (sig_data > UINT32_MAX) return -EINVAL;
  uint8_t *q = calloc(1, total);
  if (!q) return -ENOMEM;

  /* header: version 4, ECDSA-256-with-P-256 key, TEE type TDX, reserved,
     * QE vendor id, user data (zero) */
  put_le16(q + 0, 4);
  put_le16(q + 2, 2);
  put_le32(q + 4, 0x81);
  memcpy(q + 12, k_qe_vendor_id, 16);

  /* TD report body (TD 1.0) */
  uint8_t *b = q + QUOTE_HDR_LEN;
  memcpy(b + 0, td->tee_tcb_svn, 16);
  memcpy(b + 16, k_mrseam, 48);
  /* mr_signer_seam (48) and seam_attributes (8) are zero for Intel's module */
  put_le64(b + 120, td->td_attributes);
  put_le64(b + 128, td->xfam);
  memcpy(b + 136, td->mrtd, 48);
  memcpy(b + 184, td->mr_config_id, 48);
  memcpy(b + 232, td->mr_owner, 48);
  memcpy(b + 280, td->mr_owner_config, 48);
  for (int i = 0; i < 4; i++) memcpy(b + 328 + 48 * i, td->rtmr[i], 48);
  memcpy(b + 520, report_data, 64);

  uint8_t *p = q + QUOTE_HDR_LEN + TD_BODY_LEN;
  put_le32(p, (uint32_t)sig_data);
  p += 4;
  int rc = ecdsa_sign_raw(s->att_key, q, QUOTE_HDR_LEN + TD_BODY_LEN, p);
  if (rc) {
    free(q);
    return rc;
  }
  p += 64;
  memcpy(p, s->att_pub, 64);
  p += 64;
  put_le16(p, 6);
  put_le32(p + 2, (uint32_t)cert6);
  p += 6;
  memcpy(p, s->qe_report, SGX_REPORT_LEN);
  p += SGX_REPORT_LEN;
  memcpy(p, s->qe_sig, 64);
  p += 64;
  put_le16(p, QE_AUTH_LEN);
  p += 2;
  memcpy(p, s->qe_auth, QE_AUTH_LEN);
  p += QE_AUTH_LEN;
  put_le16(p, 5);
  put_le32(p + 2, (uint32_t)s->chain_len);
  p += 6;
  memcpy(p, s->chain, s->chain_len);
  p += s->chain_len;
  if ((size_t)(p - q) != total) { /* layout arithmetic out of step: never emit it */
    free(q);
    return -EIO;
  }
  *quote = q;
  *len = total;
  return 0;
}

static int make_crl(ra_sim *s, int which, int revoke, time_t last, time_t next, uint8_t **der_out,
                    size_t *len) {
  *der_out = NULL;
  *len = 0;
  X509 *issuer = which == 0 ? s->root : s->ica;
  EVP_PKEY *key = which == 0 ? s->root_key : s->ica_key;
  X509 *subject = which == 0 ? s->ica : s->pck;
  X509_CRL *crl = X509_CRL_new();
  X509_REVOKED *rev = NULL;
  ASN1_TIME *t = ASN1_TIME_new();
  int rc = -EIO;
  if (!crl || !t) {
    rc = -ENOMEM;
    goto out;
  }
  if (!X509_CRL_set_version(crl, 1) ||
      !X509_CRL_set_issuer_name(crl, X509_get_subject_name(issuer)))
    goto out;
  if (!ASN1_TIME_set(t, last) || !X509_CRL_set1_lastUpdate(crl, t)) goto out;
  if (!ASN1_TIME_set(t, next) || !X509_CRL_set1_nextUpdate(crl, t)) goto out;
  if (revoke) {
    rev = X509_REVOKED_new();
    if (!rev || !X509_REVOKED_set_serialNumber(rev, X509_get_serialNumber(subject))) goto out;
    if (!ASN1_TIME_set(t, last) || !X509_REVOKED_set_revocationDate(rev, t)) goto out;
    if (!X509_CRL_add0_revoked(crl, rev)) goto out;
    rev = NULL;
    X509_CRL_sort(crl);
  }
  if (!X509_CRL_sign(crl, key, EVP_sha256())) goto out;
  int n = i2d_X509_CRL(crl, NULL);
  if (n <= 0) goto out;
  uint8_t *buf = malloc((size_t)n), *w = buf;
  if (!buf) {
    rc = -ENOMEM;
    goto out;
  }
  if (i2d_X509_CRL(crl, &w) != n) {
    free(buf);
    goto out;
  }
  *der_out = buf;
  *len = (size_t)n;
  rc = 0;
out:
  X509_REVOKED_free(rev);
  ASN1_TIME_free(t);
  X509_CRL_free(crl);
  return rc;
}

int ra_sim_crl(ra_sim *s, int which, int revoke, uint8_t **der_out, size_t *len) {
  if (!s || (which != 0 && which != 1) || !der_out || !len) return -EINVAL;
  time_t now = time(NULL);
  return make_crl(s, which, revoke, now - 86400, now + 29 * 86400, der_out, len);
}

/* ---- collateral: TCB info, QE identity, CRLs, as Intel's PCS serves them -- */

static void iso_time(time_t t, char out[32]) {
  struct tm tm;
  strftime(out, 32, "%Y-%m-%dT%H:%M:%SZ", gmtime_r(&t, &tm));
}

static void hex_upper(const uint8_t *p, size_t n, char *out) {
  static const char h[] = "0123456789ABCDEF";
  for (size_t i = 0; i < n; i++) {
    out[2 * i] = h[p[i] >> 4];
    out[2 * i + 1] = h[p[i] & 15];
  }
  out[2 * n] = '\0';
}

/* [{"svn":a},...] of 16 components */
static void components_json(const uint8_t c[16], char *out, size_t cap) {
  size_t o = 0;
  o += (size_t)snprintf(out + o, cap - o, "[");
  for (int i = 0; i < 16 && o < cap; i++)
    o += (size_t)snprintf(out + o, cap - o, "%s{\"svn\":%u}", i ? "," : "", c[i]);
  if (o < cap) snprintf(out + o, cap - o, "]");
}

/* The sim platform's TCB info (TDX v3): its own level UpToDate, a lower one
 * OutOfDate with an advisory; tdxModule and TDX_01 with Intel's zero
 * MRSIGNERSEAM. */
static char *sim_tcb_info(time_t issue, time_t next) {
  char is[32], nx[32], fm[13], up_sgx[400], up_tdx[400], old_sgx[400], old_tdx[400];
  uint8_t tdx_up[16] = {0}, zero[16] = {0};
  iso_time(issue, is);
  iso_time(next, nx);
  hex_upper(k_fmspc, 6, fm);
  tdx_up[2] = 2; /* bytes 0-1 (module SVN, version) are judged by TDX_01 */
  components_json(k_tcb_comp, up_sgx, sizeof up_sgx);
  components_json(tdx_up, up_tdx, sizeof up_tdx);
  components_json(zero, old_sgx, sizeof old_sgx);
  components_json(zero, old_tdx, sizeof old_tdx);
  const char *z48 = "000000000000000000000000000000000000000000000000"
                    "000000000000000000000000000000000000000000000000";
  char *out = malloc(8192);
  if (!out) return NULL;
  int n = snprintf(
      out, 8192,
      "{\"id\":\"TDX\",\"version\":3,\"issueDate\":\"%s\",\"nextUpdate\":\"%s\",\"fmspc\":\"%s\","
      "\"pceId\":\"%02X%02X\",\"tcbType\":0,\"tcbEvaluationDataNumber\":17,"
      "\"tdxModule\":{\"mrsigner\":\"%s\",\"attributes\":\"0000000000000000\","
      "\"attributesMask\":\"FFFFFFFFFFFFFFFF\"},"
      "\"tdxModuleIdentities\":[{\"id\":\"TDX_01\",\"mrsigner\":\"%s\","
      "\"attributes\":\"0000000000000000\",\"attributesMask\":\"FFFFFFFFFFFFFFFF\","
      "\"tcbLevels\":[{\"tcb\":{\"isvsvn\":4},\"tcbDate\":\"2024-03-13T00:00:00Z\","
      "\"tcbStatus\":\"UpToDate\"},{\"tcb\":{\"isvsvn\":2},\"tcbDate\":\"2023-08-09T00:00:00Z\","
      "\"tcbStatus\":\"OutOfDate\"}]}],"
      "\"tcbLevels\":[{\"tcb\":{\"sgxtcbcomponents\":%s,\"pcesvn\":%u,\"tdxtcbcomponents\":%s},"
      "\"tcbDate\":\"2024-03-13T00:00:00Z\",\"tcbStatus\":\"UpToDate\"},"
      "{\"tcb\":{\"sgxtcbcomponents\":%s,\"pcesvn\":5,\"tdxtcbcomponents\":%s},"
      "\"tcbDate\":\"2018-01-04T00:00:00Z\",\"tcbStatus\":\"OutOfDate\","
      "\"advisoryIDs\":[\"INTEL-SA-00106\",\"INTEL-SA-00115\"]}]}",
      is, nx, fm, k_pceid[0], k_pceid[1], z48, z48, up_sgx, k_pcesvn, up_tdx, old_sgx, old_tdx);
  if (n < 0 || n >= 8192) {
    free(out);
    return NULL;
  }
  return out;
}

/* The TD QE's identity, with Intel's masks. */
static char *sim_qe_identity(time_t issue, time_t next) {
  char is[32], nx[32], mrs[65];
  iso_time(issue, is);
  iso_time(next, nx);
  hex_upper(k_qe_mrsigner, 32, mrs);
  char *out = malloc(2048);
  if (!out) return NULL;
  snprintf(out, 2048,
           "{\"id\":\"TD_QE\",\"version\":2,\"issueDate\":\"%s\",\"nextUpdate\":\"%s\","
           "\"tcbEvaluationDataNumber\":17,\"miscselect\":\"00000000\",\"miscselectMask\":\"FFFFFFFF\","
           "\"attributes\":\"11000000000000000000000000000000\","
           "\"attributesMask\":\"FBFFFFFFFFFFFFFF0000000000000000\",\"mrsigner\":\"%s\","
           "\"isvprodid\":%u,\"tcbLevels\":[{\"tcb\":{\"isvsvn\":4},\"tcbDate\":\"2024-03-13T00:00:00Z\","
           "\"tcbStatus\":\"UpToDate\"},{\"tcb\":{\"isvsvn\":2},\"tcbDate\":\"2023-08-09T00:00:00Z\","
           "\"tcbStatus\":\"OutOfDate\",\"advisoryIDs\":[\"INTEL-SA-00615\"]}]}",
           is, nx, mrs, k_qe_prod_id);
  return out;
}

static char *pem_of_certs(X509 *a, X509 *b) {
  BIO *bio = BIO_new(BIO_s_mem());
  char *out = NULL, *p;
  long n;
  if (bio && PEM_write_bio_X509(bio, a) && PEM_write_bio_X509(bio, b) &&
      (n = BIO_get_mem_data(bio, &p)) > 0 && (out = malloc((size_t)n + 1))) {
    memcpy(out, p, (size_t)n);
    out[n] = '\0';
  }
  BIO_free(bio);
  return out;
}

static char *hex_of(const uint8_t *p, size_t n) {
  char *h = malloc(2 * n + 1);
  if (!h) return NULL;
  for (size_t i = 0; i < n; i++) snprintf(h + 2 * i, 3, "%02x", p[i]);
  h[2 * n] = '\0';
  return h;
}

static char *sign_hex(EVP_PKEY *k, const char *body) {
  uint8_t sig[64];
  return ecdsa_sign_raw(k, (const uint8_t *)body, strlen(body), sig) ? NULL : hex_of(sig, 64);
}

int ra_sim_collateral_json(ra_sim *s, const ra_sim_collateral_opts *opts, char **json,
                           size_t *len) {
  if (!s || !json || !len) return -EINVAL;
  *json = NULL;
  *len = 0;
  ra_sim_collateral_opts o = {0};
  if (opts) o = *opts;
  time_t issue = o.issue_date ? o.issue_date : time(NULL) - 86400;
  time_t next = o.next_update ? o.next_update : issue + 30 * 86400;
  int rc = -ENOMEM;
  EVP_PKEY *tk = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
  X509 *tcert = tk ? make_cert(3, "raloop Simulated SGX TCB Signing", tk, s->root, s->root_key)
                   : NULL;
  char *tcb = o.tcb_info ? strdup(o.tcb_info) : sim_tcb_info(issue, next);
  char *qe = o.qe_identity ? strdup(o.qe_identity) : sim_qe_identity(issue, next);
  char *tsig = NULL, *qsig = NULL, *chain = NULL, *pck_chain = NULL, *rcrl = NULL, *pcrl = NULL;
  uint8_t *d0 = NULL, *d1 = NULL;
  size_t l0, l1;
  json_t *doc = NULL;
  if (!tk || !tcert || !tcb || !qe) goto out;
  tsig = sign_hex(o.tcb_signing_key ? o.tcb_signing_key : tk, tcb);
  qsig = sign_hex(o.tcb_signing_key ? o.tcb_signing_key : tk, qe);
  chain = pem_of_certs(tcert, s->root);
  pck_chain = pem_of_certs(s->ica, s->root);
  if (!tsig || !qsig || !chain || !pck_chain) goto out;
  if ((rc = make_crl(s, 0, 0, issue, next, &d0, &l0)) ||
      (rc = make_crl(s, 1, o.revoke_pck, issue, next, &d1, &l1)))
    goto out;
  rc = -ENOMEM;
  if (!(rcrl = hex_of(d0, l0)) || !(pcrl = hex_of(d1, l1))) goto out;
  doc = json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:s}", "pck_crl_issuer_chain",
                  pck_chain, "root_ca_crl", rcrl, "pck_crl", pcrl, "tcb_info_issuer_chain", chain,
                  "tcb_info", tcb, "tcb_info_signature", tsig, "qe_identity_issuer_chain", chain,
                  "qe_identity", qe, "qe_identity_signature", qsig);
  if (!doc) goto out;
  *json = json_dumps(doc, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
  if (!*json) goto out;
  *len = strlen(*json);
  rc = 0;
out:
  json_decref(doc);
  free(tcb);
  free(qe);
  free(tsig);
  free(qsig);
  free(chain);
  free(pck_chain);
  free(rcrl);
  free(pcrl);
  free(d0);
  free(d1);
  X509_free(tcert);
  EVP_PKEY_free(tk);
  ERR_clear_error();
  return rc;
}

int ra_sim_tdx_binding(const uint8_t *val, size_t val_len, const uint8_t *iat, size_t iat_len,
                       const uint8_t x25519_pub[32], uint8_t report_data[64]) {
  EVP_MD_CTX *ctx = EVP_MD_CTX_new();
  if (!ctx) {
    memset(report_data, 0, 64);
    return -ENOMEM;
  }
  unsigned n = 0;
  if (EVP_DigestInit_ex(ctx, EVP_sha512(), NULL) == 1 &&
      (val_len == 0 || EVP_DigestUpdate(ctx, val, val_len) == 1) &&
      (iat_len == 0 || EVP_DigestUpdate(ctx, iat, iat_len) == 1) &&
      EVP_DigestUpdate(ctx, x25519_pub, 32) == 1 && EVP_DigestFinal_ex(ctx, report_data, &n) == 1 &&
      n == 64) {
    EVP_MD_CTX_free(ctx);
    return 0;
  }
  EVP_MD_CTX_free(ctx);
  /* fail closed: a binding that matches nothing a verifier computes */
  memset(report_data, 0, 64);
  return -EIO;
}

int ra_sim_default_dir(char *out, size_t outlen) {
  const char *xdg = getenv("XDG_STATE_HOME"), *home = getenv("HOME");
  int n;
  if (!out || outlen == 0) return -EINVAL;
  if (xdg && xdg[0] == '/')
    n = snprintf(out, outlen, "%s/raloop/sim", xdg);
  else if (home && home[0] == '/')
    n = snprintf(out, outlen, "%s/.local/state/raloop/sim", home);
  else
    return -ENOENT;
  return n > 0 && (size_t)n < outlen ? 0 : -ENAMETOOLONG;
}

char *ra_sim_tcb_info_body(time_t issue, time_t next) { return sim_tcb_info(issue, next); }
char *ra_sim_qe_identity_body(time_t issue, time_t next) { return sim_qe_identity(issue, next); }
