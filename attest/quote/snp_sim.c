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

#include "raloop/core/file.h"

#define BUNDLE_NAME "snp-sim-hierarchy.pem"
#define BUNDLE_MAX  (64 * 1024)
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

/* ---- files (as the Intel sim: created exclusively, replaced atomically) -- */

static char *path_join(const char *dir, const char *name) {
  size_t a = strlen(dir), b = strlen(name);
  char *p = malloc(a + b + 2);
  if (!p) return NULL;
  memcpy(p, dir, a);
  p[a] = '/';
  memcpy(p + a + 1, name, b + 1);
  return p;
}

static int mkdir_p(const char *dir) {
  size_t n = strlen(dir);
  if (n == 0) return -EINVAL;
  if (n >= 4096) return -ENAMETOOLONG;
  char tmp[4096];
  memcpy(tmp, dir, n + 1);
  while (n > 1 && tmp[n - 1] == '/') tmp[--n] = '\0';
  for (char *p = tmp + 1; *p; p++) {
    if (*p != '/') continue;
    *p = '\0';
    if (mkdir(tmp, 0700) != 0 && errno != EEXIST) return -errno;
    *p = '/';
  }
  if (mkdir(tmp, 0700) != 0 && errno != EEXIST) return -errno;
  struct stat st;
  if (stat(tmp, &st) != 0) return -errno;
  return S_ISDIR(st.st_mode) ? 0 : -ENOTDIR;
}

static int write_temp(const char *path, const void *data, size_t len, mode_t mode, char *tmp,
                      size_t tmpsz) {
  if ((size_t)snprintf(tmp, tmpsz, "%s.tmp-XXXXXX", path) >= tmpsz) return -ENAMETOOLONG;
  int fd = mkstemp(tmp);
  if (fd < 0) return -errno;
  int rc = fchmod(fd, mode) != 0 ? -errno : 0;
  const uint8_t *p = data;
  while (!rc && len) {
    ssize_t w = write(fd, p, len);
    if (w < 0 && errno == EINTR) continue;
    if (w < 0)
      rc = -errno;
    else
      p += w, len -= (size_t)w;
  }
  if (!rc && fsync(fd) != 0) rc = -errno;
  if (close(fd) != 0 && !rc) rc = -errno;
  if (rc) unlink(tmp);
  return rc;
}

static int create_exclusive(const char *path, const void *data, size_t len, mode_t mode) {
  char tmp[4200];
  int rc = write_temp(path, data, len, mode, tmp, sizeof tmp);
  if (rc) return rc;
  rc = link(tmp, path) == 0 ? 0 : -errno;
  unlink(tmp);
  return rc;
}

static int replace_if_different(const char *path, const void *data, size_t len, mode_t mode) {
  uint8_t *cur = NULL;
  size_t curlen = 0;
  if (ra_file_read(path, BUNDLE_MAX, &cur, &curlen) == 0) {
    int same = curlen == len && memcmp(cur, data, len) == 0;
    free(cur);
    if (same) return 0;
  }
  char tmp[4200];
  int rc = write_temp(path, data, len, mode, tmp, sizeof tmp);
  if (rc) return rc;
  if (rename(tmp, path) != 0) {
    rc = -errno;
    unlink(tmp);
  }
  return rc;
}

/* ---- certificates ---------------------------------------------------------- */

static int add_ext(X509 *cert, X509 *issuer, int nid, const char *value) {
  X509V3_CTX ctx;
  X509V3_set_ctx_nodb(&ctx);
  X509V3_set_ctx(&ctx, issuer, cert, NULL, NULL, 0);
  X509_EXTENSION *ext = X509V3_EXT_conf_nid(NULL, &ctx, nid, value);
  if (!ext) return -EIO;
  int ok = X509_add_ext(cert, ext, -1);
  X509_EXTENSION_free(ext);
  return ok ? 0 : -EIO;
}

/* an extension with OID 1.3.6.1.4.1.3704.1.<sub> whose value is der */
static int add_amd_ext(X509 *c, const char *sub, const uint8_t *der, int n) {
  char oid[64];
  snprintf(oid, sizeof oid, "1.3.6.1.4.1.3704.1.%s", sub);
  ASN1_OBJECT *obj = OBJ_txt2obj(oid, 1);
  ASN1_OCTET_STRING *os = ASN1_OCTET_STRING_new();
  X509_EXTENSION *xe = NULL;
  if (obj && os && ASN1_OCTET_STRING_set(os, der, n))
    xe = X509_EXTENSION_create_by_OBJ(NULL, obj, 0, os);
  int ok = xe && X509_add_ext(c, xe, -1);
  X509_EXTENSION_free(xe);
  ASN1_OCTET_STRING_free(os);
  ASN1_OBJECT_free(obj);
  return ok ? 0 : -EIO;
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

static X509_NAME *sim_name(const char *cn) {
  X509_NAME *n = X509_NAME_new();
  if (!n) return NULL;
  if (!X509_NAME_add_entry_by_txt(n, "CN", MBSTRING_UTF8, (const unsigned char *)cn, -1, -1, 0) ||
      !X509_NAME_add_entry_by_txt(n, "O", MBSTRING_UTF8,
                                  (const unsigned char *)"raloop simulated TEE", -1, -1, 0)) {
    X509_NAME_free(n);
    return NULL;
  }
  return n;
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
  X509_NAME *name = sim_name(cn);
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
    if (add_ext(c, iss, NID_subject_key_identifier, "hash")) goto out;
    if (add_ext(c, iss, NID_key_usage, "critical,keyCertSign,cRLSign")) goto out;
    if (add_ext(c, iss, NID_basic_constraints,
                kind == 0 ? "critical,CA:TRUE" : "critical,CA:TRUE,pathlen:0"))
      goto out;
    if (kind == 1 && add_ext(c, iss, NID_authority_key_identifier, "keyid:always")) goto out;
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

static int generate(ra_snp_sim *s) {
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

static int bundle_encode(const ra_snp_sim *s, uint8_t **out, size_t *len) {
  BIO *b = BIO_new(BIO_s_mem());
  if (!b) return -ENOMEM;
  int ok = PEM_write_bio_PrivateKey(b, s->ark_key, NULL, NULL, 0, NULL, NULL) &&
           PEM_write_bio_X509(b, s->ark) &&
           PEM_write_bio_PrivateKey(b, s->ask_key, NULL, NULL, 0, NULL, NULL) &&
           PEM_write_bio_X509(b, s->ask) &&
           PEM_write_bio_PrivateKey(b, s->vcek_key, NULL, NULL, 0, NULL, NULL) &&
           PEM_write_bio_X509(b, s->vcek);
  char *p;
  long n = BIO_get_mem_data(b, &p);
  int rc = -EIO;
  if (ok && n > 0) {
    *out = malloc((size_t)n);
    rc = *out ? 0 : -ENOMEM;
    if (*out) {
      memcpy(*out, p, (size_t)n);
      *len = (size_t)n;
    }
  }
  BIO_free(b);
  return rc;
}

static int bundle_decode(ra_snp_sim *s, const uint8_t *data, size_t len) {
  BIO *b = BIO_new_mem_buf(data, (int)len);
  if (!b) return -ENOMEM;
  s->ark_key = PEM_read_bio_PrivateKey(b, NULL, NULL, NULL);
  s->ark = s->ark_key ? PEM_read_bio_X509(b, NULL, NULL, NULL) : NULL;
  s->ask_key = s->ark ? PEM_read_bio_PrivateKey(b, NULL, NULL, NULL) : NULL;
  s->ask = s->ask_key ? PEM_read_bio_X509(b, NULL, NULL, NULL) : NULL;
  s->vcek_key = s->ask ? PEM_read_bio_PrivateKey(b, NULL, NULL, NULL) : NULL;
  s->vcek = s->vcek_key ? PEM_read_bio_X509(b, NULL, NULL, NULL) : NULL;
  BIO_free(b);
  if (!s->vcek) return -EINVAL;
  if (X509_check_private_key(s->ark, s->ark_key) != 1 ||
      X509_check_private_key(s->ask, s->ask_key) != 1 ||
      X509_check_private_key(s->vcek, s->vcek_key) != 1)
    return -EINVAL;
  EVP_PKEY *ak = X509_get0_pubkey(s->ark), *sk = X509_get0_pubkey(s->ask);
  if (!ak || !sk || X509_verify(s->ark, ak) != 1 || X509_verify(s->ask, ak) != 1 ||
      X509_verify(s->vcek, sk) != 1)
    return -EINVAL;
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

static void release(ra_snp_sim *s) {
  EVP_PKEY_free(s->ark_key);
  EVP_PKEY_free(s->ask_key);
  EVP_PKEY_free(s->vcek_key);
  X509_free(s->ark);
  X509_free(s->ask);
  X509_free(s->vcek);
  s->ark_key = s->ask_key = s->vcek_key = NULL;
  s->ark = s->ask = s->vcek = NULL;
}

int ra_snp_sim_open(const char *dir, ra_snp_sim **out) {
  if (!dir || !*dir || !out) return -EINVAL;
  *out = NULL;
  int rc = mkdir_p(dir);
  if (rc) return rc;
  ra_snp_sim *s = calloc(1, sizeof *s);
  if (!s) return -ENOMEM;
  char *bundle = path_join(dir, BUNDLE_NAME), *ark_pem = NULL;
  uint8_t *data = NULL;
  size_t len = 0, n = 0;
  s->ark_path = path_join(dir, RA_SNP_SIM_ARK_FILE);
  s->chain_path = path_join(dir, RA_SNP_SIM_CHAIN_FILE);
  s->vcek_path = path_join(dir, RA_SNP_SIM_VCEK_FILE);
  rc = -ENOMEM;
  if (!bundle || !s->ark_path || !s->chain_path || !s->vcek_path) goto fail;
  rc = ra_file_read(bundle, BUNDLE_MAX, &data, &len);
  if (rc == -ENOENT) {
    rc = generate(s);
    if (!rc) rc = bundle_encode(s, &data, &len);
    if (rc) goto fail;
    rc = create_exclusive(bundle, data, len, 0600);
    if (rc == -EEXIST) { /* another process won the race: use its hierarchy */
      release(s);
      OPENSSL_cleanse(data, len);
      free(data);
      data = NULL;
      rc = ra_file_read(bundle, BUNDLE_MAX, &data, &len);
      if (!rc) rc = bundle_decode(s, data, len);
    }
  } else if (rc == 0) {
    rc = bundle_decode(s, data, len);
  }
  if (rc) goto fail;
  rc = -ENOMEM;
  ark_pem = pem_of(s->ark, NULL, &n);
  if (!ark_pem) goto fail;
  rc = replace_if_different(s->ark_path, ark_pem, n, 0644);
  if (rc) goto fail;
  rc = -ENOMEM;
  s->chain_pem = pem_of(s->ask, s->ark, &n);
  if (!s->chain_pem) goto fail;
  rc = replace_if_different(s->chain_path, s->chain_pem, n, 0644);
  if (rc) goto fail;
  rc = -ENOMEM;
  s->vcek_pem = pem_of(s->vcek, NULL, &n);
  if (!s->vcek_pem) goto fail;
  rc = replace_if_different(s->vcek_path, s->vcek_pem, n, 0644);
  if (rc) goto fail;
  free(ark_pem);
  if (data) OPENSSL_cleanse(data, len);
  free(data);
  free(bundle);
  *out = s;
  return 0;
fail:
  ERR_clear_error();
  free(ark_pem);
  if (data) OPENSSL_cleanse(data, len);
  free(data);
  free(bundle);
  ra_snp_sim_free(s);
  return rc;
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
