/* tests/attest/sim_test.c: the simulated TEE.
 *
 * Two kinds of checks: independent ones written here with plain OpenSSL
 * and byte offsets of the DCAP layout (chain, QE report signature,
 * attestation key hash, quote signature, layout against a real quote), and
 * the library's own parser and verifier, which must accept a simulated
 * quote when and only when the simulated root is pinned. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/param_build.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "raloop/attest/quote/quote.h"
#include "raloop/attest/quote/sim.h"
#include "raloop/attest/quote/verify.h"

/* ---- helpers ------------------------------------------------------------ */

static char g_tmp[256];

static int setup_dir(void **state) {
  (void)state;
  snprintf(g_tmp, sizeof g_tmp, "/tmp/ra-sim-test-XXXXXX");
  assert_non_null(mkdtemp(g_tmp));
  return 0;
}

static int teardown_dir(void **state) {
  (void)state;
  char cmd[400];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", g_tmp);
  return system(cmd) == 0 ? 0 : -1;
}

static char *sub(const char *name) {
  static char p[512];
  snprintf(p, sizeof p, "%s/%s", g_tmp, name);
  return p;
}

static uint16_t le16(const uint8_t *p) { return (uint16_t)(p[0] | p[1] << 8); }
static uint32_t le32(const uint8_t *p) {
  return p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}
static uint64_t le64(const uint8_t *p) {
  uint64_t v = 0;
  for (int i = 7; i >= 0; i--) v = v << 8 | p[i];
  return v;
}

static uint8_t *slurp(const char *path, size_t *len) {
  *len = 0;
  FILE *f = fopen(path, "rb");
  if (!f) return NULL;
  uint8_t *buf = malloc(1 << 20);
  *len = fread(buf, 1, 1 << 20, f);
  fclose(f);
  return buf;
}

/* EVP_PKEY from a raw P-256 point x||y */
static EVP_PKEY *pub_from_raw(const uint8_t xy[64]) {
  uint8_t pt[65] = {0x04};
  memcpy(pt + 1, xy, 64);
  OSSL_PARAM_BLD *b = OSSL_PARAM_BLD_new();
  OSSL_PARAM_BLD_push_utf8_string(b, OSSL_PKEY_PARAM_GROUP_NAME, "prime256v1", 0);
  OSSL_PARAM_BLD_push_octet_string(b, OSSL_PKEY_PARAM_PUB_KEY, pt, sizeof pt);
  OSSL_PARAM *params = OSSL_PARAM_BLD_to_param(b);
  EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_from_name(NULL, "EC", NULL);
  EVP_PKEY *k = NULL;
  if (ctx && EVP_PKEY_fromdata_init(ctx) == 1)
    EVP_PKEY_fromdata(ctx, &k, EVP_PKEY_PUBLIC_KEY, params);
  EVP_PKEY_CTX_free(ctx);
  OSSL_PARAM_free(params);
  OSSL_PARAM_BLD_free(b);
  return k;
}

/* verifies a raw r||s ECDSA-P256-SHA256 signature */
static int verify_raw(EVP_PKEY *key, const uint8_t *msg, size_t len, const uint8_t rs[64]) {
  ECDSA_SIG *sig = ECDSA_SIG_new();
  ECDSA_SIG_set0(sig, BN_bin2bn(rs, 32, NULL), BN_bin2bn(rs + 32, 32, NULL));
  uint8_t der[80], *p = der;
  int dl = i2d_ECDSA_SIG(sig, &p);
  ECDSA_SIG_free(sig);
  EVP_MD_CTX *ctx = EVP_MD_CTX_new();
  int ok = EVP_DigestVerifyInit(ctx, NULL, EVP_sha256(), NULL, key) == 1 &&
           EVP_DigestVerify(ctx, der, (size_t)dl, msg, len) == 1;
  EVP_MD_CTX_free(ctx);
  return ok;
}

/* The parts of a TDX v4 quote, found by offsets alone. */
typedef struct parts {
  const uint8_t *hdr, *body, *sig, *att, *qe, *qe_sig, *auth, *chain;
  size_t auth_len, chain_len, sig_data_len;
  uint16_t outer_type, inner_type;
} parts;

static void split(const uint8_t *q, size_t len, parts *p) {
  assert_true(len > 48 + 584 + 4 + 128 + 6);
  p->hdr = q;
  p->body = q + 48;
  p->sig_data_len = le32(q + 632);
  assert_int_equal(636 + p->sig_data_len, len); /* no padding, nothing missing */
  p->sig = q + 636;
  p->att = q + 700;
  p->outer_type = le16(q + 764);
  uint32_t cert6 = le32(q + 766);
  assert_int_equal(770 + cert6, len);
  p->qe = q + 770;
  p->qe_sig = q + 770 + 384;
  p->auth_len = le16(q + 770 + 448);
  p->auth = q + 770 + 450;
  const uint8_t *n = p->auth + p->auth_len;
  p->inner_type = le16(n);
  p->chain_len = le32(n + 2);
  p->chain = n + 6;
  assert_int_equal((size_t)(p->chain + p->chain_len - q), len);
}

static STACK_OF(X509) * pem_chain(const uint8_t *pem, size_t len) {
  STACK_OF(X509) *sk = sk_X509_new_null();
  BIO *b = BIO_new_mem_buf(pem, (int)len);
  X509 *c;
  while ((c = PEM_read_bio_X509(b, NULL, NULL, NULL)) != NULL) sk_X509_push(sk, c);
  ERR_clear_error();
  BIO_free(b);
  return sk;
}

/* OpenSSL path validation of leaf (chain[0]) up to the root in root_pem */
static int chain_ok(STACK_OF(X509) * chain, const char *root_pem_path, X509_CRL *crl, int *err) {
  X509_STORE *st = X509_STORE_new();
  X509_STORE_load_file(st, root_pem_path);
  if (crl) {
    X509_STORE_add_crl(st, crl);
    X509_STORE_set_flags(st, X509_V_FLAG_CRL_CHECK);
  }
  STACK_OF(X509) *untrusted = sk_X509_new_null();
  for (int i = 1; i < sk_X509_num(chain); i++) sk_X509_push(untrusted, sk_X509_value(chain, i));
  X509_STORE_CTX *ctx = X509_STORE_CTX_new();
  X509_STORE_CTX_init(ctx, st, sk_X509_value(chain, 0), untrusted);
  int ok = X509_verify_cert(ctx) == 1;
  if (err) *err = X509_STORE_CTX_get_error(ctx);
  X509_STORE_CTX_free(ctx);
  sk_X509_free(untrusted);
  X509_STORE_free(st);
  return ok;
}

static void sha256(const void *d, size_t n, uint8_t out[32]) {
  unsigned l = 0;
  EVP_Digest(d, n, out, &l, EVP_sha256(), NULL);
}

static void rd_pattern(uint8_t rd[64], uint8_t seed) {
  for (int i = 0; i < 64; i++) rd[i] = (uint8_t)(seed + i * 7);
}

/* ---- tests -------------------------------------------------------------- */

static void test_layout_and_signatures(void **state) {
  (void)state;
  ra_sim *s;
  assert_int_equal(ra_sim_open(sub("sim"), &s), 0);
  uint8_t rd[64], *q;
  size_t len;
  rd_pattern(rd, 3);
  assert_int_equal(ra_sim_quote(s, NULL, rd, &q, &len), 0);
  parts p;
  split(q, len, &p);

  /* header as in real TDX v4 quotes */
  static const uint8_t intel_vendor[16] = {0x93, 0x9a, 0x72, 0x33, 0xf7, 0x9c, 0x4c, 0xa9,
                                           0x94, 0x0a, 0x0d, 0xb3, 0x95, 0x7f, 0x06, 0x07};
  assert_int_equal(le16(p.hdr), 4);
  assert_int_equal(le16(p.hdr + 2), 2);
  assert_int_equal(le32(p.hdr + 4), 0x81);
  assert_memory_equal(p.hdr + 12, intel_vendor, 16);
  assert_int_equal(p.outer_type, 6);
  assert_int_equal(p.inner_type, 5);
  assert_int_equal(p.auth_len, 32);

  /* body: the default TD and our report_data */
  ra_sim_td td;
  ra_sim_td_default(&td);
  assert_memory_equal(p.body + 136, td.mrtd, 48);
  for (int i = 0; i < 4; i++) assert_memory_equal(p.body + 328 + 48 * i, td.rtmr[i], 48);
  assert_memory_equal(p.body + 520, rd, 64);
  assert_int_equal(le64(p.body + 120) & 1, 0); /* not a debug TD */

  /* quote signature by the attestation key over header+body */
  EVP_PKEY *att = pub_from_raw(p.att);
  assert_non_null(att);
  assert_true(verify_raw(att, q, 632, p.sig));
  /* attestation key hash in the QE report data */
  uint8_t buf[96], h[32], zero[32] = {0};
  memcpy(buf, p.att, 64);
  memcpy(buf + 64, p.auth, 32);
  sha256(buf, 96, h);
  assert_memory_equal(p.qe + 320, h, 32);
  assert_memory_equal(p.qe + 352, zero, 32);

  /* the chain: PEM leaf, intermediate, root, NUL-terminated as Intel's */
  assert_int_equal(p.chain[p.chain_len - 1], 0);
  STACK_OF(X509) *chain = pem_chain(p.chain, p.chain_len - 1);
  assert_int_equal(sk_X509_num(chain), 3);
  X509 *leaf = sk_X509_value(chain, 0);
  /* QE report signed by the PCK leaf key */
  assert_true(verify_raw(X509_get0_pubkey(leaf), p.qe, 384, p.qe_sig));
  /* and the chain validates to the sim root, not to Intel's */
  int err = 0;
  assert_true(chain_ok(chain, ra_sim_root_pem_path(s), NULL, &err));
  char intel[512];
  snprintf(intel, sizeof intel, "%s/intel-sgx-root-ca.pem",
           getenv("RA_VECTORS") ? getenv("RA_VECTORS") : RA_VECTORS_DIR);
  assert_false(chain_ok(chain, intel, NULL, &err));
  /* names do not impersonate Intel */
  for (int i = 0; i < 3; i++) {
    char line[256];
    X509_NAME_oneline(X509_get_subject_name(sk_X509_value(chain, i)), line, sizeof line);
    assert_null(strstr(line, "Intel"));
    assert_non_null(strstr(line, "raloop Simulated SGX"));
  }
  /* leaf validity: from about a day ago, for ten years */
  time_t now = time(NULL);
  assert_true(X509_cmp_time(X509_get0_notBefore(leaf), &now) < 0);
  time_t t9 = now + 9L * 365 * 86400, t11 = now + 11L * 365 * 86400, t_23h = now - 23 * 3600;
  time_t t_25h = now - 25 * 3600;
  assert_true(X509_cmp_time(X509_get0_notAfter(leaf), &t9) > 0);
  assert_true(X509_cmp_time(X509_get0_notAfter(leaf), &t11) < 0);
  assert_true(X509_cmp_time(X509_get0_notBefore(leaf), &t_23h) < 0);
  assert_true(X509_cmp_time(X509_get0_notBefore(leaf), &t_25h) > 0);

  /* one flipped bit in the body breaks the quote signature */
  q[48 + 200] ^= 1;
  assert_false(verify_raw(att, q, 632, p.sig));

  sk_X509_pop_free(chain, X509_free);
  EVP_PKEY_free(att);
  free(q);
  ra_sim_free(s);
}

/* The PCK leaf's SGX extension has Intel's structure: compare every byte
 * of it with the leaf of a real quote (dstack tappd, also issued by a
 * Platform CA) except the per-platform PPID and PlatformInstanceID. */
static const uint8_t *sgx_ext(X509 *c, int *len) {
  ASN1_OBJECT *o = OBJ_txt2obj("1.2.840.113741.1.13.1", 1);
  int i = X509_get_ext_by_OBJ(c, o, -1);
  ASN1_OBJECT_free(o);
  if (i < 0) return NULL;
  ASN1_OCTET_STRING *os = X509_EXTENSION_get_data(X509_get_ext(c, i));
  *len = ASN1_STRING_length(os);
  return ASN1_STRING_get0_data(os);
}

static void test_pck_extension_like_intel(void **state) {
  (void)state;
  char path[512];
  snprintf(path, sizeof path, "%s/quotes/tdx-v4-tappd.dat",
           getenv("RA_VECTORS") ? getenv("RA_VECTORS") : RA_VECTORS_DIR);
  size_t rlen;
  uint8_t *real = slurp(path, &rlen);
  assert_non_null(real);
  /* tappd's chain sits at a fixed place: type 5 data from offset 1258 */
  STACK_OF(X509) *rc = pem_chain(real + 1258, rlen - 1258);
  assert_true(sk_X509_num(rc) >= 1);

  ra_sim *s;
  assert_int_equal(ra_sim_open(sub("sim"), &s), 0);
  size_t clen;
  uint8_t *cp = slurp(ra_sim_chain_pem_path(s), &clen);
  STACK_OF(X509) *sc = pem_chain(cp, clen);
  assert_int_equal(sk_X509_num(sc), 3);

  int rl, sl;
  const uint8_t *re = sgx_ext(sk_X509_value(rc, 0), &rl), *se = sgx_ext(sk_X509_value(sc, 0), &sl);
  assert_non_null(re);
  assert_non_null(se);
  assert_int_equal(rl, sl);
  /* PPID and PlatformInstanceID: the 16 bytes after their OIDs and 04 10 */
  int diffs = 0;
  for (int i = 0; i < rl; i++) {
    if (re[i] == se[i]) continue;
    diffs++;
    static const uint8_t oid1[] = {0x06, 0x0a, 0x2a, 0x86, 0x48, 0x86, 0xf8,
                                   0x4d, 0x01, 0x0d, 0x01, 0x01, 0x04, 0x10};
    const uint8_t *m1 = memmem(se, (size_t)sl, oid1, sizeof oid1);
    assert_non_null(m1);
    int ppid_at = (int)(m1 - se) + (int)sizeof oid1;
    int in_ppid = i >= ppid_at && i < ppid_at + 16;
    /* PlatformInstanceID: find ".6" OID 2a864886f84d010d0106 0410 */
    static const uint8_t oid6[] = {0x06, 0x0a, 0x2a, 0x86, 0x48, 0x86, 0xf8,
                                   0x4d, 0x01, 0x0d, 0x01, 0x06, 0x04, 0x10};
    const uint8_t *m = memmem(se, (size_t)sl, oid6, sizeof oid6);
    assert_non_null(m);
    int pid_at = (int)(m - se) + (int)sizeof oid6;
    int in_pid = i >= pid_at && i < pid_at + 16;
    assert_true(in_ppid || in_pid);
  }
  assert_true(diffs > 0);

  /* the library's PCK extension parser reads FMSPC, PCESVN, CPUSVN, TCB */
  ra_pck_info info;
  assert_int_equal(ra_pck_parse_ext(se, (size_t)sl, &info), 0);
  static const uint8_t fmspc[6] = {0xb0, 0xc0, 0x6f, 0, 0, 0};
  assert_memory_equal(info.fmspc, fmspc, 6);
  assert_int_equal(info.pcesvn, 11);
  assert_int_equal(info.sgx_type, 1);
  assert_true(info.has_platform_instance_id);
  static const uint8_t comp[16] = {2, 2, 2, 2, 3, 1, 0, 3};
  assert_memory_equal(info.tcb_comp_svn, comp, 16);
  assert_memory_equal(info.cpusvn, comp, 16);

  sk_X509_pop_free(rc, X509_free);
  sk_X509_pop_free(sc, X509_free);
  free(cp);
  free(real);
  ra_sim_free(s);
}

static void test_same_root_across_opens(void **state) {
  (void)state;
  ra_sim *a, *b;
  assert_int_equal(ra_sim_open(sub("shared/deeper"), &a), 0);
  struct stat st;
  assert_int_equal(stat(sub("shared/deeper"), &st), 0);
  assert_int_equal(st.st_mode & 0777, 0700);
  assert_int_equal(stat(sub("shared/deeper/sim-hierarchy.pem"), &st), 0);
  assert_int_equal(st.st_mode & 0777, 0600);
  size_t la, lb;
  uint8_t *ra = slurp(ra_sim_root_pem_path(a), &la);
  assert_int_equal(ra_sim_open(sub("shared/deeper"), &b), 0);
  uint8_t *rb = slurp(ra_sim_root_pem_path(b), &lb);
  assert_int_equal(la, lb);
  assert_memory_equal(ra, rb, la);
  assert_non_null(strstr((char *)ra, "BEGIN CERTIFICATE"));

  /* a quote from b validates against the root a published */
  uint8_t rd[64], *q;
  size_t len;
  rd_pattern(rd, 9);
  assert_int_equal(ra_sim_quote(b, NULL, rd, &q, &len), 0);
  parts p;
  split(q, len, &p);
  STACK_OF(X509) *chain = pem_chain(p.chain, p.chain_len - 1);
  assert_true(chain_ok(chain, ra_sim_root_pem_path(a), NULL, NULL));
  /* a different directory is a different root */
  ra_sim *c;
  assert_int_equal(ra_sim_open(sub("other"), &c), 0);
  assert_false(chain_ok(chain, ra_sim_root_pem_path(c), NULL, NULL));

  sk_X509_pop_free(chain, X509_free);
  free(q);
  free(ra);
  free(rb);
  ra_sim_free(a);
  ra_sim_free(b);
  ra_sim_free(c);
}

/* Processes racing on a fresh directory all end up with one root. */
static void test_race(void **state) {
  (void)state;
  enum { N = 6 };
  for (int round = 0; round < 3; round++) {
    char dir[512];
    snprintf(dir, sizeof dir, "%s/race%d", g_tmp, round);
    int fds[N][2];
    pid_t pids[N];
    for (int i = 0; i < N; i++) {
      assert_int_equal(pipe(fds[i]), 0);
      pids[i] = fork();
      assert_true(pids[i] >= 0);
      if (pids[i] == 0) {
        ra_sim *s;
        uint8_t h[32] = {0};
        if (ra_sim_open(dir, &s) == 0) {
          /* what the child would sign with: its root's DER, hashed */
          size_t l;
          uint8_t *r = slurp(ra_sim_root_pem_path(s), &l);
          if (r) sha256(r, l, h);
          free(r);
          ra_sim_free(s);
        }
        if (write(fds[i][1], h, 32) != 32) _exit(2);
        _exit(0);
      }
      close(fds[i][1]);
    }
    uint8_t first[32], zero[32] = {0};
    for (int i = 0; i < N; i++) {
      uint8_t h[32];
      assert_int_equal(read(fds[i][0], h, 32), 32);
      close(fds[i][0]);
      int st;
      waitpid(pids[i], &st, 0);
      assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
      assert_memory_not_equal(h, zero, 32);
      if (i == 0)
        memcpy(first, h, 32);
      else
        assert_memory_equal(h, first, 32);
    }
    /* no temporary files left behind by the losers */
    char cmd[600];
    snprintf(cmd, sizeof cmd, "test $(ls -A '%s' | wc -l) -eq 3", dir);
    assert_int_equal(system(cmd), 0);
  }
}

static void test_custom_td_roundtrip(void **state) {
  (void)state;
  ra_sim *s;
  assert_int_equal(ra_sim_open(sub("sim"), &s), 0);
  ra_sim_td td;
  ra_sim_td_default(&td);
  memset(td.mrtd, 0x42, 48);
  memset(td.rtmr[2], 0x77, 48);
  memset(td.mr_config_id, 0x01, 48);
  memset(td.mr_owner, 0x02, 48);
  memset(td.mr_owner_config, 0x03, 48);
  td.td_attributes = 0x1122334455667781ull;
  td.xfam = 0x0102030405060708ull;
  td.tee_tcb_svn[7] = 9;
  uint8_t rd[64], *q;
  size_t len;
  rd_pattern(rd, 200);
  assert_int_equal(ra_sim_quote(s, &td, rd, &q, &len), 0);

  ra_quote pq;
  assert_int_equal(ra_quote_parse(q, len, &pq), 0);
  assert_int_equal(pq.version, 4);
  assert_int_equal(pq.tee_type, RA_TEE_TDX);
  assert_int_equal(pq.body_type, RA_BODY_TD10);
  assert_int_equal(pq.trailing, 0);
  assert_int_equal(pq.quote_len, len);
  assert_int_equal(pq.cert_type, RA_CERT_PCK_CHAIN);
  assert_memory_equal(pq.td.mrtd, td.mrtd, 48);
  for (int i = 0; i < 4; i++) assert_memory_equal(pq.td.rtmr[i], td.rtmr[i], 48);
  assert_memory_equal(pq.td.mr_config_id, td.mr_config_id, 48);
  assert_memory_equal(pq.td.mr_owner, td.mr_owner, 48);
  assert_memory_equal(pq.td.mr_owner_config, td.mr_owner_config, 48);
  assert_memory_equal(pq.td.tee_tcb_svn, td.tee_tcb_svn, 16);
  assert_true(le64(pq.td.td_attributes) == td.td_attributes);
  assert_true(le64(pq.td.xfam) == td.xfam);
  assert_memory_equal(ra_quote_report_data(&pq), rd, 64);
  assert_true(ra_quote_is_debug(&pq)); /* bit 0 set above */
  free(q);
  ra_sim_free(s);
}

static int verify_with(ra_sim *s, int pin_sim, int pin_intel, const uint8_t *q, size_t len,
                       const ra_policy *pol, const uint8_t *crl, size_t crl_len, ra_verdict *vd) {
  ra_verifier *v;
  assert_int_equal(ra_verifier_new(pin_intel ? 0 : RA_VERIFIER_NO_DEFAULT_ROOT, &v), 0);
  if (pin_sim) assert_true(ra_verifier_add_root_file(v, ra_sim_root_pem_path(s)) > 0);
  if (crl) assert_true(ra_verifier_add_crl(v, crl, crl_len) > 0);
  int rc = ra_verify_quote(v, q, len, NULL, pol, vd);
  ra_verifier_free(v);
  return rc;
}

static void test_full_verification_only_when_pinned(void **state) {
  (void)state;
  ra_sim *s;
  assert_int_equal(ra_sim_open(sub("sim"), &s), 0);
  uint8_t rd[64], *q;
  size_t len;
  rd_pattern(rd, 1);
  assert_int_equal(ra_sim_quote(s, NULL, rd, &q, &len), 0);
  ra_sim_td td;
  ra_sim_td_default(&td);
  ra_tdx_expect ex = {.has = RA_TDX_MRTD | RA_TDX_RTMR0 | RA_TDX_REPORT_DATA};
  memcpy(ex.mrtd, td.mrtd, 48);
  memcpy(ex.rtmr[0], td.rtmr[0], 48);
  memcpy(ex.report_data, rd, 64);
  ra_policy pol = {.tdx = &ex, .n_tdx = 1};
  ra_verdict vd;

  assert_int_equal(verify_with(s, 1, 1, q, len, &pol, NULL, 0, &vd), 0);
  assert_int_equal(vd.err, 0);
  assert_true(vd.has_pck);
  assert_int_equal(vd.chain_len, 3);
  assert_non_null(strstr(vd.root_subject, "raloop Simulated SGX Root CA"));
  for (int c = RA_CHECK_CHAIN; c <= RA_CHECK_QUOTE_SIG; c++)
    if (c != RA_CHECK_CRL) assert_int_equal(vd.checks[c], RA_CHECK_PASS);

  /* default trust (Intel only): refused as an untrusted root */
  assert_int_not_equal(verify_with(s, 0, 1, q, len, &pol, NULL, 0, &vd), 0);
  assert_int_equal(vd.err, RA_ERR_ROOT_UNTRUSTED);
  /* only the sim root of another directory: refused too */
  ra_sim *other;
  assert_int_equal(ra_sim_open(sub("other"), &other), 0);
  assert_int_not_equal(verify_with(other, 1, 0, q, len, &pol, NULL, 0, &vd), 0);
  assert_int_equal(vd.err, RA_ERR_ROOT_UNTRUSTED);
  ra_sim_free(other);

  /* wrong MRTD: measurement failure after a valid chain */
  ex.mrtd[0] ^= 1;
  assert_int_not_equal(verify_with(s, 1, 0, q, len, &pol, NULL, 0, &vd), 0);
  assert_int_equal(vd.err, RA_ERR_MEASUREMENT);
  ex.mrtd[0] ^= 1;

  /* CRLs made by the sim: a revoked PCK is refused; empty CRLs pass only
   * when they cover every CA of the chain (issue 11: one CRL of two used to
   * pass, with crls_applied 1) */
  uint8_t *crl, *crl0;
  size_t crl_len, crl0_len;
  assert_int_equal(ra_sim_crl(s, 1, 0, &crl, &crl_len), 0);
  assert_int_not_equal(verify_with(s, 1, 0, q, len, &pol, crl, crl_len, &vd), 0);
  assert_int_equal(vd.err, RA_ERR_CRL_MISSING);
  assert_int_equal(vd.crls_applied, 1);
  assert_int_equal(ra_sim_crl(s, 0, 0, &crl0, &crl0_len), 0);
  {
    ra_verifier *v2;
    assert_int_equal(ra_verifier_new(RA_VERIFIER_NO_DEFAULT_ROOT, &v2), 0);
    assert_true(ra_verifier_add_root_file(v2, ra_sim_root_pem_path(s)) > 0);
    assert_int_equal(ra_verifier_add_crl(v2, crl, crl_len), 1);
    assert_int_equal(ra_verifier_add_crl(v2, crl0, crl0_len), 1);
    assert_int_equal(ra_verify_quote(v2, q, len, NULL, &pol, &vd), 0);
    assert_int_equal(vd.crls_applied, 2);
    assert_int_equal(vd.checks[RA_CHECK_CRL], RA_CHECK_PASS);
    ra_verifier_free(v2);
  }
  free(crl0);
  free(crl);
  assert_int_equal(ra_sim_crl(s, 1, 1, &crl, &crl_len), 0);
  assert_int_not_equal(verify_with(s, 1, 0, q, len, &pol, crl, crl_len, &vd), 0);
  assert_int_equal(vd.err, RA_ERR_CERT_REVOKED);
  free(crl);
  assert_int_equal(ra_sim_crl(s, 0, 1, &crl, &crl_len), 0);
  assert_int_not_equal(verify_with(s, 1, 0, q, len, &pol, crl, crl_len, &vd), 0);
  assert_int_equal(vd.err, RA_ERR_CERT_REVOKED);
  free(crl);
  assert_int_equal(ra_sim_crl(s, 0, 0, &crl, &crl_len), 0);
  assert_int_not_equal(verify_with(s, 1, 0, q, len, &pol, crl, crl_len, &vd), 0);
  assert_int_equal(vd.err, RA_ERR_CRL_MISSING); /* the root's CRL alone: the CA is uncovered */
  free(crl);

  /* a debug TD is refused unless allowed */
  uint8_t *dq;
  size_t dlen;
  td.td_attributes |= 1;
  assert_int_equal(ra_sim_quote(s, &td, rd, &dq, &dlen), 0);
  assert_int_not_equal(verify_with(s, 1, 0, dq, dlen, &pol, NULL, 0, &vd), 0);
  assert_int_equal(vd.err, RA_ERR_DEBUG);
  pol.allow_debug = true;
  assert_int_equal(verify_with(s, 1, 0, dq, dlen, &pol, NULL, 0, &vd), 0);
  free(dq);

  free(q);
  ra_sim_free(s);
}

/* PROTOCOL.md §4: report_data = SHA-512(val || iat || x25519 key). The
 * expected value was computed independently (Node.js crypto, the
 * reference's own primitive) for the GCP sample's verifier_nonce and a
 * key of bytes 0..31. */
static void test_binding_helper_and_verifier(void **state) {
  (void)state;
  static const char val[] =
      "dflNrbzWZu1gaaYIyFakOzi/NAKgLkBKLGm/6WNBQtQSaLCvDkOhx8N8/5H7zk8zW9XM/+NbGwAiP3DMWsREFA==";
  static const char iat[] = "2025-09-11 21:55:22 +0000 UTC";
  uint8_t key[32];
  for (int i = 0; i < 32; i++) key[i] = (uint8_t)i;
  static const uint8_t expect[64] = {
      0x61, 0xc5, 0xb9, 0x60, 0x81, 0xbd, 0x6d, 0x5c, 0x80, 0xc7, 0xdc, 0x7d, 0x46,
      0x95, 0xa5, 0x19, 0x86, 0x0c, 0xb2, 0x65, 0x46, 0x8d, 0x18, 0xce, 0x30, 0xef,
      0xc5, 0xee, 0x8b, 0x02, 0xf0, 0xcb, 0xc0, 0x9c, 0x8b, 0x05, 0xd5, 0x8e, 0x76,
      0x69, 0x72, 0x20, 0xc3, 0xcb, 0xff, 0xdb, 0xcd, 0x84, 0xf1, 0xa3, 0x53, 0x34,
      0xf7, 0x0c, 0x1e, 0x7e, 0x86, 0xf5, 0xc6, 0xe1, 0x34, 0x05, 0x23, 0x54};
  uint8_t rd[64];
  assert_int_equal(ra_sim_tdx_binding((const uint8_t *)val, strlen(val), (const uint8_t *)iat,
                                      strlen(iat), key, rd),
                   0);
  assert_memory_equal(rd, expect, 64);

  /* the verifier's binding check agrees with the helper */
  ra_sim *s;
  assert_int_equal(ra_sim_open(sub("sim"), &s), 0);
  uint8_t *q;
  size_t len;
  assert_int_equal(ra_sim_quote(s, NULL, rd, &q, &len), 0);
  ra_policy pol = {.x25519_pub = key,
                   .binding_val = (const uint8_t *)val,
                   .binding_val_len = strlen(val),
                   .binding_iat = (const uint8_t *)iat,
                   .binding_iat_len = strlen(iat)};
  ra_verdict vd;
  assert_int_equal(verify_with(s, 1, 0, q, len, &pol, NULL, 0, &vd), 0);
  assert_int_equal(vd.checks[RA_CHECK_BINDING], RA_CHECK_PASS);
  key[0] ^= 1; /* the server's key swapped */
  assert_int_not_equal(verify_with(s, 1, 0, q, len, &pol, NULL, 0, &vd), 0);
  assert_int_equal(vd.err, RA_ERR_BINDING);
  free(q);
  ra_sim_free(s);
}

static void test_bad_inputs(void **state) {
  (void)state;
  ra_sim *s = NULL;
  assert_int_equal(ra_sim_open(NULL, &s), -EINVAL);
  assert_int_equal(ra_sim_open("", &s), -EINVAL);
  /* a file where the directory should be */
  FILE *f = fopen(sub("afile"), "w");
  fclose(f);
  assert_int_equal(ra_sim_open(sub("afile"), &s), -ENOTDIR);
  assert_null(s);

  /* a corrupt bundle is refused, not regenerated behind the user's back */
  assert_int_equal(ra_sim_open(sub("corrupt"), &s), 0);
  ra_sim_free(s);
  size_t len;
  uint8_t *b = slurp(sub("corrupt/sim-hierarchy.pem"), &len);
  f = fopen(sub("corrupt/sim-hierarchy.pem"), "w");
  fwrite(b, 1, len / 2, f);
  fclose(f);
  free(b);
  assert_int_equal(ra_sim_open(sub("corrupt"), &s), -EINVAL);
  assert_null(s);
  /* keys swapped between two bundles: the certificates no longer match */
  ra_sim *x, *y;
  assert_int_equal(ra_sim_open(sub("x"), &x), 0);
  assert_int_equal(ra_sim_open(sub("y"), &y), 0);
  ra_sim_free(x);
  ra_sim_free(y);
  size_t lx, ly;
  uint8_t *bx = slurp(sub("x/sim-hierarchy.pem"), &lx),
          *by = slurp(sub("y/sim-hierarchy.pem"), &ly);
  /* first PEM block (root key) of y + the rest of x */
  char *endx = strstr((char *)bx, "-----END PRIVATE KEY-----\n");
  char *endy = strstr((char *)by, "-----END PRIVATE KEY-----\n");
  assert_non_null(endx);
  assert_non_null(endy);
  f = fopen(sub("x/sim-hierarchy.pem"), "w");
  fwrite(by, 1, (size_t)(endy - (char *)by), f);
  fwrite(endx, 1, lx - (size_t)(endx - (char *)bx), f);
  fclose(f);
  free(bx);
  free(by);
  assert_int_equal(ra_sim_open(sub("x"), &s), -EINVAL);

  assert_int_equal(ra_sim_open(sub("sim"), &s), 0);
  uint8_t rd[64] = {0}, *q;
  assert_int_equal(ra_sim_quote(s, NULL, NULL, &q, &len), -EINVAL);
  assert_int_equal(ra_sim_quote(NULL, NULL, rd, &q, &len), -EINVAL);
  uint8_t *crl;
  assert_int_equal(ra_sim_crl(s, 2, 1, &crl, &len), -EINVAL);
  ra_sim_free(s);
  ra_sim_free(NULL);
}

static void test_default_dir(void **state) {
  (void)state;
  char out[512];
  const char *old_xdg = getenv("XDG_STATE_HOME"), *old_home = getenv("HOME");
  char *saved = old_xdg ? strdup(old_xdg) : NULL, *saved_home = old_home ? strdup(old_home) : NULL;
  setenv("XDG_STATE_HOME", "/state", 1);
  assert_int_equal(ra_sim_default_dir(out, sizeof out), 0);
  assert_string_equal(out, "/state/raloop/sim");
  setenv("XDG_STATE_HOME", "relative", 1);
  setenv("HOME", "/home/u", 1);
  assert_int_equal(ra_sim_default_dir(out, sizeof out), 0);
  assert_string_equal(out, "/home/u/.local/state/raloop/sim");
  assert_int_equal(ra_sim_default_dir(out, 5), -ENAMETOOLONG);
  if (saved)
    setenv("XDG_STATE_HOME", saved, 1);
  else
    unsetenv("XDG_STATE_HOME");
  free(saved);
  if (saved_home)
    setenv("HOME", saved_home, 1);
  else
    unsetenv("HOME");
  free(saved_home);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_layout_and_signatures, setup_dir, teardown_dir),
      cmocka_unit_test_setup_teardown(test_pck_extension_like_intel, setup_dir, teardown_dir),
      cmocka_unit_test_setup_teardown(test_same_root_across_opens, setup_dir, teardown_dir),
      cmocka_unit_test_setup_teardown(test_race, setup_dir, teardown_dir),
      cmocka_unit_test_setup_teardown(test_custom_td_roundtrip, setup_dir, teardown_dir),
      cmocka_unit_test_setup_teardown(test_full_verification_only_when_pinned, setup_dir,
                                      teardown_dir),
      cmocka_unit_test_setup_teardown(test_binding_helper_and_verifier, setup_dir, teardown_dir),
      cmocka_unit_test_setup_teardown(test_bad_inputs, setup_dir, teardown_dir),
      cmocka_unit_test(test_default_dir),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
