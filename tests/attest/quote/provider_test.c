/* tests/attest/provider_test.c: quote providers (file, sim, configfs-tsm).
 *
 * configfs-tsm is exercised against a fake tree: a directory with the
 * attribute files, whose outblob is a FIFO served by a thread that plays
 * the kernel (reads inblob, answers with a simulated quote for it). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "raloop/attest/quote/hexb64.h"
#include "raloop/attest/quote/provider.h"
#include "raloop/attest/quote/quote.h"
#include "raloop/attest/quote/sim.h"
#include "raloop/attest/quote/snp_report.h"
#include "raloop/attest/quote/snp_sim.h"
#include "raloop/attest/quote/snp_verify.h"
#include "raloop/attest/quote/verify.h"
#include "raloop/core/log.h"

static char g_tmp[256];

/* Providers log the details of their failures: the log is captured here
 * (every message since the start, or since a test cleared it). */
static char g_log[8192];

static void capture_log(ra_log_level level, const char *msg, void *ud) {
  (void)level;
  (void)ud;
  size_t n = strlen(g_log);
  if (n + strlen(msg) + 2 > sizeof g_log) n = 0; /* full: keep the newest only */
  snprintf(g_log + n, sizeof g_log - n, "%s\n", msg);
}

static int setup_dir(void **state) {
  (void)state;
  snprintf(g_tmp, sizeof g_tmp, "/tmp/ra-provider-test-XXXXXX");
  assert_non_null(mkdtemp(g_tmp));
  return 0;
}

static int teardown_dir(void **state) {
  (void)state;
  char cmd[400];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", g_tmp);
  return system(cmd) == 0 ? 0 : -1;
}

static const char *sub(const char *name) {
  static char p[4][512];
  static int i;
  i = (i + 1) % 4;
  snprintf(p[i], sizeof p[i], "%s/%s", g_tmp, name);
  return p[i];
}

static const char *vectors(void) {
  return getenv("RA_VECTORS") ? getenv("RA_VECTORS") : RA_VECTORS_DIR;
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

static void spit(const char *path, const void *data, size_t len) {
  FILE *f = fopen(path, "wb");
  assert_non_null(f);
  assert_int_equal(fwrite(data, 1, len, f), len);
  fclose(f);
}

/* SHA-512(val || iat || key), computed here without the library's helper */
static void expected_binding(const ra_quote_evidence *ev, const uint8_t key[32], uint8_t out[64]) {
  size_t n = ev->val_len + ev->iat_len + 32;
  uint8_t *cat = malloc(n);
  memcpy(cat, ev->val, ev->val_len);
  memcpy(cat + ev->val_len, ev->iat, ev->iat_len);
  memcpy(cat + ev->val_len + ev->iat_len, key, 32);
  unsigned l = 0;
  assert_int_equal(EVP_Digest(cat, n, out, &l, EVP_sha512(), NULL), 1);
  free(cat);
}

static void test_key(uint8_t key[32], uint8_t seed) {
  for (int i = 0; i < 32; i++) key[i] = (uint8_t)(seed ^ (i * 13));
}

/* iat must be ITA's text form and close to now */
static void check_iat(const ra_quote_evidence *ev) {
  assert_int_equal(ev->iat_len, 29);
  char s[32];
  memcpy(s, ev->iat, 29);
  s[29] = '\0';
  struct tm tm = {0};
  char *end = strptime(s, "%Y-%m-%d %H:%M:%S", &tm);
  assert_non_null(end);
  assert_string_equal(end, " +0000 UTC");
  time_t t = timegm(&tm), now = time(NULL);
  assert_true(t <= now + 1 && t >= now - 60);
}

/* Full verification: chain to the pinned sim root, signatures, binding. */
static void check_verifies(const ra_quote_evidence *ev, const char *root_pem,
                           const uint8_t key[32]) {
  ra_verifier *v;
  assert_int_equal(ra_verifier_new(RA_VERIFIER_NO_DEFAULT_ROOT, &v), 0);
  assert_true(ra_verifier_add_root_file(v, root_pem) > 0);
  ra_policy pol = {.x25519_pub = key,
                   .binding_val = ev->val,
                   .binding_val_len = ev->val_len,
                   .binding_iat = ev->iat,
                   .binding_iat_len = ev->iat_len};
  ra_verdict vd;
  int rc = ra_verify_quote(v, ev->quote, ev->quote_len, NULL, &pol, &vd);
  if (rc) print_error("verify: %s: %s\n", ra_err_name(vd.err), vd.msg);
  assert_int_equal(rc, 0);
  assert_int_equal(vd.checks[RA_CHECK_BINDING], RA_CHECK_PASS);
  ra_verifier_free(v);
}

/* ---- file --------------------------------------------------------------- */

static void test_file_provider(void **state) {
  (void)state;
  char path[512];
  snprintf(path, sizeof path, "%s/quotes/tdx-v4-tappd.dat", vectors());
  size_t len;
  uint8_t *raw = slurp(path, &len);
  assert_non_null(raw);

  /* the same quote as binary, hex and base64 */
  char *hex = malloc(2 * len + 2);
  ra_hex_encode(raw, len, hex);
  strcat(hex, "\n");
  spit(sub("q.hex"), hex, strlen(hex));
  free(hex);
  size_t b64cap = 4 * ((len + 2) / 3) + 1;
  char *b64 = malloc(b64cap);
  assert_int_equal(EVP_EncodeBlock((unsigned char *)b64, raw, (int)len), (int)b64cap - 1);
  spit(sub("q.b64"), b64, b64cap - 1);
  free(b64);

  const char *paths[] = {path, sub("q.hex"), sub("q.b64")};
  uint8_t key[32];
  test_key(key, 1);
  for (int i = 0; i < 3; i++) {
    ra_quote_provider *p;
    assert_int_equal(ra_quote_provider_file(paths[i], &p), 0);
    assert_string_equal(ra_quote_provider_name(p), "file");
    assert_false(ra_quote_provider_binds_key(p));
    assert_false(ra_quote_provider_simulated(p));
    assert_null(ra_quote_provider_sim_root(p));
    ra_quote_evidence ev;
    assert_int_equal(ra_quote_provider_get(p, key, &ev), 0);
    assert_int_equal(ev.quote_len, len);
    assert_memory_equal(ev.quote, raw, len);
    assert_false(ev.binds_key);
    assert_false(ev.has_verifier_data);
    assert_null(ev.runtime_data);
    ra_quote_evidence_clear(&ev);
    ra_quote_provider_free(p);
  }

  /* unreadable, garbage, empty, not a quote: clear errors */
  ra_quote_provider *p = (ra_quote_provider *)1;
  assert_int_equal(ra_quote_provider_file(sub("missing.dat"), &p), -ENOENT);
  assert_null(p);
  assert_non_null(strstr(g_log, "missing.dat"));
  spit(sub("garbage.txt"), "this is not a quote at all!", 27);
  assert_int_equal(ra_quote_provider_file(sub("garbage.txt"), &p), -EINVAL);
  assert_non_null(strstr(g_log, "garbage.txt"));
  spit(sub("empty"), "", 0);
  assert_int_equal(ra_quote_provider_file(sub("empty"), &p), -EINVAL);
  uint8_t zeros[100] = {0};
  spit(sub("zeros"), zeros, sizeof zeros);
  assert_int_equal(ra_quote_provider_file(sub("zeros"), &p), -EINVAL);
  assert_non_null(strstr(g_log, "not an SGX/TDX quote"));
  spit(sub("truncated"), raw, 1000);
  assert_int_equal(ra_quote_provider_file(sub("truncated"), &p), -EINVAL);
  assert_null(p);
  free(raw);
}

/* ---- sim ---------------------------------------------------------------- */

static void test_sim_provider_binds(void **state) {
  (void)state;
  ra_quote_provider *p;
  assert_int_equal(ra_quote_provider_sim(sub("simdir"), &p), 0);
  assert_string_equal(ra_quote_provider_name(p), "sim");
  assert_true(ra_quote_provider_binds_key(p));
  assert_true(ra_quote_provider_simulated(p));
  const char *root = ra_quote_provider_sim_root(p);
  assert_non_null(root);
  assert_non_null(strstr(root, "simdir"));

  uint8_t key[32], rd[64];
  test_key(key, 7);
  ra_quote_evidence ev, ev2;
  assert_int_equal(ra_quote_provider_get(p, key, &ev), 0);
  assert_true(ev.binds_key);
  assert_true(ev.has_verifier_data);
  assert_int_equal(ev.val_len, 32);
  assert_int_equal(ev.signature_len, 0);
  assert_non_null(ev.signature);
  check_iat(&ev);
  assert_int_equal(ev.runtime_data_len, 32);
  assert_memory_equal(ev.runtime_data, key, 32);

  ra_quote q;
  assert_int_equal(ra_quote_parse(ev.quote, ev.quote_len, &q), 0);
  assert_int_equal(q.tee_type, RA_TEE_TDX);
  expected_binding(&ev, key, rd);
  assert_memory_equal(ra_quote_report_data(&q), rd, 64);
  check_verifies(&ev, root, key);

  /* a fresh nonce every time */
  assert_int_equal(ra_quote_provider_get(p, key, &ev2), 0);
  assert_memory_not_equal(ev.val, ev2.val, 32);
  /* the binding fails for another key */
  uint8_t other[32];
  test_key(other, 8);
  expected_binding(&ev2, other, rd);
  assert_int_equal(ra_quote_parse(ev2.quote, ev2.quote_len, &q), 0);
  assert_memory_not_equal(ra_quote_report_data(&q), rd, 64);

  ra_quote_evidence_clear(&ev);
  ra_quote_evidence_clear(&ev2);
  ra_quote_evidence_clear(&ev2); /* idempotent */
  ra_quote_provider_free(p);

  /* an unusable directory: a clear error */
  spit(sub("notadir"), "x", 1);
  assert_int_equal(ra_quote_provider_sim(sub("notadir"), &p), -ENOTDIR);
  assert_null(p);
  assert_non_null(strstr(g_log, "notadir"));
}

static void test_iat_format(void **state) {
  (void)state;
  char s[32];
  /* the iat of Intel Trust Authority's sample nonce (teekit's GCP sample) */
  assert_int_equal(ra_quote_iat_format(1757627722, s, sizeof s), 29);
  assert_string_equal(s, "2025-09-11 21:55:22 +0000 UTC");
  assert_int_equal(ra_quote_iat_format(0, s, 10), -EINVAL);
}

/* ---- tsm ---------------------------------------------------------------- */

static void test_tsm_absent(void **state) {
  (void)state;
  ra_quote_provider *p = (ra_quote_provider *)1;
  assert_false(ra_tsm_available(sub("no/such/tsm/report")));
  assert_int_equal(ra_quote_provider_tsm(sub("no/such/tsm/report"), NULL, &p),
                   -ENODEV);
  assert_null(p);
  assert_non_null(strstr(g_log, "configfs-tsm not available"));
  assert_non_null(strstr(g_log, "no/such/tsm/report"));
  /* bad entry names */
  assert_int_equal(mkdir(sub("tsm"), 0700), 0);
  assert_int_equal(ra_quote_provider_tsm(sub("tsm"), "../x", &p), -EINVAL);
  assert_int_equal(ra_quote_provider_tsm(sub("tsm"), "", &p), -EINVAL);

  /* auto on a machine without configfs-tsm falls back to the sim, loudly */
  if (!ra_tsm_available(NULL)) {
    g_log[0] = '\0';
    assert_int_equal(ra_quote_provider_auto(sub("autosim"), &p), 0);
    assert_non_null(strstr(g_log, "SIMULATED")); /* the warning went to the log */
    assert_string_equal(ra_quote_provider_name(p), "sim");
    assert_true(ra_quote_provider_simulated(p));
    ra_quote_provider_free(p);
  }
}

static int dir_entries(const char *path) {
  DIR *d = opendir(path);
  int n = 0;
  struct dirent *e;
  while ((e = readdir(d)) != NULL)
    if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) n++;
  closedir(d);
  return n;
}

/* A root that exists but is not configfs: mkdir works, there is no inblob
 * attribute. The provider says so and removes what it created. */
static void test_tsm_not_configfs(void **state) {
  (void)state;
  assert_int_equal(mkdir(sub("tsm"), 0700), 0);
  ra_quote_provider *p;
  assert_true(ra_tsm_available(sub("tsm")));
  assert_int_equal(ra_quote_provider_tsm(sub("tsm"), NULL, &p), 0);
  assert_string_equal(ra_quote_provider_name(p), "tsm");
  assert_true(ra_quote_provider_binds_key(p));
  assert_false(ra_quote_provider_simulated(p));
  uint8_t key[32];
  test_key(key, 3);
  ra_quote_evidence ev;
  assert_int_equal(ra_quote_provider_get(p, key, &ev), -ENOENT);
  assert_null(ev.quote);
  assert_false(ev.has_verifier_data);
  assert_non_null(strstr(g_log, "inblob"));
  assert_int_equal(dir_entries(sub("tsm")), 0);
  /* a named entry that does not exist */
  ra_quote_provider *p2;
  assert_int_equal(ra_quote_provider_tsm(sub("tsm"), "svc", &p2), 0);
  assert_int_equal(ra_quote_provider_get(p2, key, &ev), -ENOENT);
  assert_non_null(strstr(g_log, "does not exist"));
  ra_quote_provider_free(p2);
  ra_quote_provider_free(p);
}

/* The fake kernel: waits for the provider to open outblob (a FIFO), then
 * reads inblob and answers with a simulated quote for that report_data. */
typedef struct fake_kernel {
  char entry[512];
  const char *sim_dir;
  int wrong_report_data;
  int snp; /* a SEV-SNP guest: the simulated SNP TEE in sim_dir signs */
  int rc;
} fake_kernel;

static void *fake_kernel_run(void *arg) {
  fake_kernel *k = arg;
  char path[600];
  k->rc = -1;
  snprintf(path, sizeof path, "%s/outblob", k->entry);
  int fd = -1;
  for (int i = 0; i < 5000 && fd < 0; i++) { /* up to 5 s for the reader to come */
    fd = open(path, O_WRONLY | O_NONBLOCK);
    if (fd < 0) {
      if (errno != ENXIO) return NULL;
      struct timespec ts = {0, 1000000};
      nanosleep(&ts, NULL);
    }
  }
  if (fd < 0) return NULL;
  fcntl(fd, F_SETFL, 0);
  size_t n;
  snprintf(path, sizeof path, "%s/inblob", k->entry);
  uint8_t *rd = slurp(path, &n);
  ra_sim *s;
  uint8_t *q = NULL;
  size_t qlen = 0;
  if (rd && n == 64 && k->snp) {
    ra_snp_sim *ss;
    uint8_t rep[RA_SNP_REPORT_LEN];
    if (k->wrong_report_data) rd[0] ^= 1;
    if (ra_snp_sim_open(k->sim_dir, &ss) == 0) {
      if (ra_snp_sim_report(ss, NULL, rd, rep) == 0 && write(fd, rep, sizeof rep) == (ssize_t)sizeof rep)
        k->rc = 0;
      ra_snp_sim_free(ss);
    }
  } else if (rd && n == 64 && ra_sim_open(k->sim_dir, &s) == 0) {
    if (k->wrong_report_data) rd[0] ^= 1;
    if (ra_sim_quote(s, NULL, rd, &q, &qlen) == 0) {
      size_t off = 0;
      while (off < qlen) {
        ssize_t w = write(fd, q + off, qlen - off);
        if (w <= 0) break;
        off += (size_t)w;
      }
      if (off == qlen) k->rc = 0;
    }
    ra_sim_free(s);
  }
  free(q);
  free(rd);
  close(fd);
  return NULL;
}

static void make_fake_entry(const char *entry, const char *provider) {
  char path[600];
  assert_int_equal(mkdir(entry, 0700), 0);
  snprintf(path, sizeof path, "%s/inblob", entry);
  spit(path, "", 0);
  snprintf(path, sizeof path, "%s/generation", entry);
  spit(path, "1\n", 2);
  snprintf(path, sizeof path, "%s/provider", entry);
  spit(path, provider, strlen(provider));
  snprintf(path, sizeof path, "%s/outblob", entry);
  assert_int_equal(mkfifo(path, 0600), 0);
}

static void test_tsm_fake_kernel(void **state) {
  (void)state;
  assert_int_equal(mkdir(sub("tsm"), 0700), 0);
  make_fake_entry(sub("tsm/svc"), "tdx_guest\n");
  ra_sim *s; /* the "hardware" of the fake: its root is what clients pin */
  assert_int_equal(ra_sim_open(sub("hw"), &s), 0);

  ra_quote_provider *p;
  assert_int_equal(ra_quote_provider_tsm(sub("tsm"), "svc", &p), 0);
  uint8_t key[32], rd[64];
  test_key(key, 42);

  fake_kernel k = {.sim_dir = sub("hw")};
  snprintf(k.entry, sizeof k.entry, "%s", sub("tsm/svc"));
  pthread_t th;
  assert_int_equal(pthread_create(&th, NULL, fake_kernel_run, &k), 0);
  ra_quote_evidence ev;
  int rc = ra_quote_provider_get(p, key, &ev);
  pthread_join(th, NULL);
  if (rc) print_error("tsm: %s\n", g_log);
  assert_int_equal(rc, 0);
  assert_int_equal(k.rc, 0);
  assert_true(ev.binds_key);
  assert_true(ev.has_verifier_data);
  assert_int_equal(ev.val_len, 32);
  check_iat(&ev);
  assert_memory_equal(ev.runtime_data, key, 32);
  /* what the provider wrote to inblob is the binding, recomputed here */
  size_t n;
  uint8_t *inblob = slurp(sub("tsm/svc/inblob"), &n);
  expected_binding(&ev, key, rd);
  assert_int_equal(n, 64);
  assert_memory_equal(inblob, rd, 64);
  free(inblob);
  check_verifies(&ev, ra_sim_root_pem_path(s), key);
  ra_quote_evidence_clear(&ev);
  /* the named entry belongs to the administrator: it stays */
  assert_int_equal(dir_entries(sub("tsm/svc")), 4);

  /* a kernel answering for other report_data is refused */
  k.wrong_report_data = 1;
  assert_int_equal(pthread_create(&th, NULL, fake_kernel_run, &k), 0);
  rc = ra_quote_provider_get(p, key, &ev);
  pthread_join(th, NULL);
  assert_int_equal(rc, -EPROTO);
  assert_null(ev.quote);
  assert_non_null(strstr(g_log, "report_data"));
  ra_quote_provider_free(p);

  /* providers other than TDX and SEV-SNP are refused clearly */
  make_fake_entry(sub("tsm/other"), "foo_guest\n");
  assert_int_equal(ra_quote_provider_tsm(sub("tsm"), "other", &p), 0);
  assert_int_equal(ra_quote_provider_get(p, key, &ev), -ENOTSUP);
  assert_non_null(strstr(g_log, "foo_guest"));
  ra_quote_provider_free(p);

  /* an empty outblob */
  assert_int_equal(mkdir(sub("tsm/empty"), 0700), 0);
  spit(sub("tsm/empty/inblob"), "", 0);
  spit(sub("tsm/empty/outblob"), "", 0);
  assert_int_equal(ra_quote_provider_tsm(sub("tsm"), "empty", &p), 0);
  assert_int_equal(ra_quote_provider_get(p, key, &ev), -EIO);
  assert_non_null(strstr(g_log, "empty"));
  ra_quote_provider_free(p);
  ra_sim_free(s);
}

/* ---- SEV-SNP --------------------------------------------------------------- */

/* Verifies SNP evidence as a tunnel client does: the certificates it
 * carries, the ARK pinned from ark_path, the binding to key. */
static void check_snp_verifies(const ra_quote_evidence *ev, const char *ark_path, const uint8_t key[32]) {
  ra_snp_verifier *v;
  assert_int_equal(ra_snp_verifier_new(RA_SNP_VERIFIER_NO_AMD_ROOTS, &v), 0);
  assert_int_equal(ra_snp_verifier_add_ark_file(v, ark_path), 1);
  ra_snp_verify_opts o = {
    .vcek = (const uint8_t *)ev->vcek_pem, .vcek_len = strlen(ev->vcek_pem),
    .ask = (const uint8_t *)ev->ask_pem, .ask_len = ev->ask_pem ? strlen(ev->ask_pem) : 0,
    .ark = (const uint8_t *)ev->ark_pem, .ark_len = ev->ark_pem ? strlen(ev->ark_pem) : 0,
  };
  ra_snp_policy pol = {.x25519_pub = key, .nonce = ev->snp_nonce, .nonce_len = ev->snp_nonce_len};
  ra_snp_verdict vd;
  int rc = ra_snp_verify(v, ev->quote, ev->quote_len, &o, &pol, &vd);
  if (rc) print_error("snp verify: %s: %s\n", ra_snp_check_name((ra_snp_check)vd.failed), vd.msg);
  assert_int_equal(rc, 0);
  assert_int_equal(vd.checks[RA_SNP_CHECK_BINDING], RA_CHECK_PASS);
  /* another key: the binding fails */
  uint8_t other[32];
  memcpy(other, key, 32);
  other[0] ^= 1;
  pol.x25519_pub = other;
  assert_int_equal(ra_snp_verify(v, ev->quote, ev->quote_len, &o, &pol, &vd), -EACCES);
  assert_int_equal(vd.failed, RA_SNP_CHECK_BINDING);
  ra_snp_verifier_free(v);
}

/* AMD's certificate table (the auxblob) of the sim's VCEK, ASK and ARK. */
static uint8_t *snp_cert_table(ra_snp_sim *s, size_t *len) {
  static const uint8_t guids[3][16] = {
    {0x63, 0xda, 0x75, 0x8d, 0xe6, 0x64, 0x45, 0x64, 0xad, 0xc5, 0xf4, 0xb9, 0x3b, 0xe8, 0xac, 0xcd},
    {0x4a, 0xb7, 0xb3, 0x79, 0xbb, 0xac, 0x4f, 0xe4, 0xa0, 0x2f, 0x05, 0xae, 0xf3, 0x27, 0xc7, 0x82},
    {0xc0, 0xb4, 0x06, 0xa4, 0xa8, 0x03, 0x49, 0x52, 0x97, 0x43, 0x3f, 0xb6, 0x01, 0x4c, 0xd0, 0xae},
  };
  unsigned char *der[3] = {NULL, NULL, NULL};
  int dl[3] = {0, 0, 0};
  const char *pems[2] = {ra_snp_sim_vcek_pem(s), ra_snp_sim_chain_pem(s)};
  int k = 0;
  for (int i = 0; i < 2; i++) {
    BIO *b = BIO_new_mem_buf(pems[i], -1);
    X509 *x;
    while (k < 3 && (x = PEM_read_bio_X509(b, NULL, NULL, NULL))) {
      dl[k] = i2d_X509(x, &der[k]);
      k++;
      X509_free(x);
    }
    BIO_free(b);
  }
  assert_int_equal(k, 3); /* VCEK, then the chain: ASK, ARK */
  size_t hdr = 4 * 24, total = hdr + (size_t)dl[0] + (size_t)dl[1] + (size_t)dl[2];
  uint8_t *t = calloc(1, total);
  size_t off = hdr;
  for (int i = 0; i < 3; i++) {
    uint8_t *e = t + 24 * i;
    memcpy(e, guids[i], 16);
    for (int j = 0; j < 4; j++) {
      e[16 + j] = (uint8_t)(off >> (8 * j));
      e[20 + j] = (uint8_t)((unsigned)dl[i] >> (8 * j));
    }
    memcpy(t + off, der[i], (size_t)dl[i]);
    off += (size_t)dl[i];
    OPENSSL_free(der[i]);
  }
  *len = total;
  return t;
}

static void test_sim_snp_provider(void **state) {
  (void)state;
  char spec[600];
  snprintf(spec, sizeof spec, "sim-snp:%s", sub("snp"));
  ra_quote_provider *p;
  assert_int_equal(ra_quote_provider_open(spec, NULL, &p), 0);
  assert_string_equal(ra_quote_provider_name(p), "sim-snp");
  assert_true(ra_quote_provider_simulated(p));
  assert_true(ra_quote_provider_binds_key(p));
  assert_string_equal(ra_quote_provider_snp_sim_dir(p), sub("snp"));
  assert_null(ra_quote_provider_sim_root(p));
  uint8_t key[32];
  test_key(key, 7);
  ra_quote_evidence ev;
  assert_int_equal(ra_quote_provider_get(p, key, &ev), 0);
  assert_int_equal(ev.tee, RA_QUOTE_TEE_SNP);
  assert_int_equal(ev.quote_len, RA_SNP_REPORT_LEN);
  assert_int_equal(ev.snp_nonce_len, 32);
  assert_false(ev.has_verifier_data);
  assert_null(ev.runtime_data);
  assert_non_null(ev.vcek_pem);
  assert_non_null(ev.ask_pem);
  assert_non_null(ev.ark_pem);
  assert_non_null(strstr(ev.vcek_pem, "-----BEGIN CERTIFICATE-----"));
  uint8_t rd[64];
  assert_int_equal(ra_snp_binding(ev.snp_nonce, ev.snp_nonce_len, key, rd), 0);
  assert_memory_equal(ev.quote + 0x50, rd, 64);
  char ark[600];
  snprintf(ark, sizeof ark, "%s/%s", sub("snp"), RA_SNP_SIM_ARK_FILE);
  check_snp_verifies(&ev, ark, key);

  /* the same report and certificates from files: snp-file serves them */
  FILE *f = fopen(sub("r.bin"), "wb");
  fwrite(ev.quote, 1, ev.quote_len, f);
  fclose(f);
  f = fopen(sub("certs.pem"), "w");
  fprintf(f, "%s%s%s", ev.ark_pem, ev.vcek_pem, ev.ask_pem); /* any order */
  fclose(f);
  ra_quote_evidence_clear(&ev);
  /* get_report: a report over the caller's report_data */
  uint8_t *q;
  size_t qlen;
  memset(rd, 0xab, sizeof rd);
  assert_int_equal(ra_quote_provider_get_report(p, rd, &q, &qlen), 0);
  assert_int_equal(qlen, RA_SNP_REPORT_LEN);
  assert_memory_equal(q + 0x50, rd, 64);
  free(q);
  ra_quote_provider_free(p);

  ra_quote_provider *fp;
  snprintf(spec, sizeof spec, "snp-file:%s,%s", sub("r.bin"), sub("certs.pem"));
  assert_int_equal(ra_quote_provider_open(spec, NULL, &fp), 0);
  assert_string_equal(ra_quote_provider_name(fp), "snp-file");
  assert_false(ra_quote_provider_binds_key(fp));
  assert_int_equal(ra_quote_provider_get(fp, key, &ev), 0);
  assert_int_equal(ev.tee, RA_QUOTE_TEE_SNP);
  assert_null(ev.snp_nonce); /* a fixed report binds nothing: verifier_data null */
  assert_non_null(ev.vcek_pem);
  assert_non_null(ev.ask_pem);
  assert_non_null(ev.ark_pem);
  assert_int_equal(ev.quote_len, RA_SNP_REPORT_LEN);
  ra_quote_evidence_clear(&ev);
  ra_quote_provider_free(fp);

  /* the certificates as AMD's certificate table */
  ra_snp_sim *s;
  assert_int_equal(ra_snp_sim_open(sub("snp"), &s), 0);
  size_t tl;
  uint8_t *tab = snp_cert_table(s, &tl);
  spit(sub("table.bin"), tab, tl);
  free(tab);
  ra_snp_sim_free(s);
  snprintf(spec, sizeof spec, "snp-file:%s,%s", sub("r.bin"), sub("table.bin"));
  assert_int_equal(ra_quote_provider_open(spec, NULL, &fp), 0);
  assert_int_equal(ra_quote_provider_get(fp, key, &ev), 0);
  assert_non_null(ev.vcek_pem);
  assert_non_null(ev.ark_pem);
  ra_quote_evidence_clear(&ev);
  ra_quote_provider_free(fp);

  /* refused: certificates without a VCEK, a report that is not one, a bad spec */
  snprintf(spec, sizeof spec, "snp-file:%s,%s/%s", sub("r.bin"), sub("snp"), RA_SNP_SIM_CHAIN_FILE);
  g_log[0] = '\0';
  assert_int_equal(ra_quote_provider_open(spec, NULL, &fp), -EINVAL);
  assert_null(fp);
  spit(sub("short.bin"), "abc", 3);
  snprintf(spec, sizeof spec, "snp-file:%s,%s", sub("short.bin"), sub("certs.pem"));
  assert_int_equal(ra_quote_provider_open(spec, NULL, &fp), -EINVAL);
  assert_non_null(strstr(g_log, "not a SEV-SNP report"));
  assert_int_equal(ra_quote_provider_open("snp-file:only-one", NULL, &fp), -EINVAL);
  assert_int_equal(ra_quote_provider_open("snp-file:,x", NULL, &fp), -EINVAL);
}

/* configfs-tsm on a SEV-SNP guest: provider "sev_guest", outblob the
 * report, auxblob the certificate table. */
static void test_tsm_fake_kernel_snp(void **state) {
  (void)state;
  assert_int_equal(mkdir(sub("tsm"), 0700), 0);
  make_fake_entry(sub("tsm/sev"), "sev_guest\n");
  ra_snp_sim *s; /* the "hardware": its ARK is what clients pin */
  assert_int_equal(ra_snp_sim_open(sub("hw"), &s), 0);
  size_t tl;
  uint8_t *tab = snp_cert_table(s, &tl);
  spit(sub("tsm/sev/auxblob"), tab, tl);
  free(tab);

  ra_quote_provider *p;
  assert_int_equal(ra_quote_provider_tsm(sub("tsm"), "sev", &p), 0);
  uint8_t key[32], rd[64];
  test_key(key, 43);
  fake_kernel k = {.sim_dir = sub("hw"), .snp = 1};
  snprintf(k.entry, sizeof k.entry, "%s", sub("tsm/sev"));
  pthread_t th;
  assert_int_equal(pthread_create(&th, NULL, fake_kernel_run, &k), 0);
  ra_quote_evidence ev;
  int rc = ra_quote_provider_get(p, key, &ev);
  pthread_join(th, NULL);
  if (rc) print_error("tsm: %s\n", g_log);
  assert_int_equal(rc, 0);
  assert_int_equal(k.rc, 0);
  assert_int_equal(ev.tee, RA_QUOTE_TEE_SNP);
  assert_true(ev.binds_key);
  assert_false(ev.has_verifier_data);
  assert_int_equal(ev.snp_nonce_len, 32);
  size_t n;
  uint8_t *inblob = slurp(sub("tsm/sev/inblob"), &n);
  assert_int_equal(ra_snp_binding(ev.snp_nonce, ev.snp_nonce_len, key, rd), 0);
  assert_int_equal(n, 64);
  assert_memory_equal(inblob, rd, 64);
  free(inblob);
  check_snp_verifies(&ev, ra_snp_sim_ark_path(s), key);
  ra_quote_evidence_clear(&ev);

  /* a kernel answering for other report_data is refused */
  k.wrong_report_data = 1;
  assert_int_equal(pthread_create(&th, NULL, fake_kernel_run, &k), 0);
  rc = ra_quote_provider_get(p, key, &ev);
  pthread_join(th, NULL);
  assert_int_equal(rc, -EPROTO);
  assert_null(ev.quote);
  assert_null(ev.snp_nonce);
  assert_non_null(strstr(g_log, "SEV-SNP report"));

  /* no certificate table: refused with the reason (no KDS fetch here) */
  k.wrong_report_data = 0;
  assert_int_equal(unlink(sub("tsm/sev/auxblob")), 0);
  assert_int_equal(pthread_create(&th, NULL, fake_kernel_run, &k), 0);
  rc = ra_quote_provider_get(p, key, &ev);
  pthread_join(th, NULL);
  assert_int_equal(rc, -EINVAL);
  assert_null(ev.quote);
  assert_non_null(strstr(g_log, "certificate table"));
  ra_quote_provider_free(p);
  ra_snp_sim_free(s);
}

/* ---- custom providers ----------------------------------------------------- */

static int empty_get(void *self, const uint8_t pub[32], ra_quote_evidence *ev) {
  (void)self;
  (void)pub;
  ev->runtime_data = malloc(4); /* must be released by the failure path */
  ev->runtime_data_len = 4;
  return 0;
}

static int failing_get(void *self, const uint8_t pub[32], ra_quote_evidence *ev) {
  (void)pub;
  (void)ev;
  (*(int *)self)++;
  ra_error("agent socket closed");
  return -ECONNRESET;
}

static void test_custom_provider(void **state) {
  (void)state;
  static const ra_quote_provider_ops empty_ops = {"empty", empty_get, NULL};
  static const ra_quote_provider_ops failing_ops = {"failing", failing_get, NULL};
  ra_quote_provider *p;
  uint8_t key[32] = {0};
  ra_quote_evidence ev;
  assert_int_equal(ra_quote_provider_new(&empty_ops, NULL, true, false, &p), 0);
  assert_int_equal(ra_quote_provider_get(p, key, &ev), -EIO);
  assert_null(ev.runtime_data);
  assert_non_null(strstr(g_log, "empty quote"));
  ra_quote_provider_free(p);

  int calls = 0;
  g_log[0] = '\0';
  assert_int_equal(ra_quote_provider_new(&failing_ops, &calls, true, false, &p), 0);
  assert_int_equal(ra_quote_provider_get(p, key, &ev), -ECONNRESET);
  assert_int_equal(calls, 1);
  /* the implementation's words, then the provider's summary */
  assert_string_equal(g_log, "agent socket closed\nfailing provider failed: Connection reset by peer\n");
  ra_quote_provider_free(p);

  assert_int_equal(ra_quote_provider_new(NULL, NULL, true, false, &p), -EINVAL);
  assert_null(p);
  assert_int_equal(ra_quote_provider_get(NULL, key, &ev), -EINVAL);
  ra_quote_provider_free(NULL);
}

int main(void) {
  ra_log_set_sink(capture_log, NULL);
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_file_provider, setup_dir, teardown_dir),
      cmocka_unit_test_setup_teardown(test_sim_provider_binds, setup_dir, teardown_dir),
      cmocka_unit_test(test_iat_format),
      cmocka_unit_test_setup_teardown(test_tsm_absent, setup_dir, teardown_dir),
      cmocka_unit_test_setup_teardown(test_tsm_not_configfs, setup_dir, teardown_dir),
      cmocka_unit_test_setup_teardown(test_tsm_fake_kernel, setup_dir, teardown_dir),
      cmocka_unit_test_setup_teardown(test_sim_snp_provider, setup_dir, teardown_dir),
      cmocka_unit_test_setup_teardown(test_tsm_fake_kernel_snp, setup_dir, teardown_dir),
      cmocka_unit_test(test_custom_provider),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
