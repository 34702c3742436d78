/* tests/attest/pcs/pcs_test.c: the pieces of attest/pcs without a server:
 * the strict JSON scanner, string escaping as serde_json does it, dates,
 * splitting a PCS answer into the signed body and its signature, issuer
 * chain headers, CRLs in DER/PEM/hex, the dcap-qvl document rebuilt byte
 * for byte from its parts, its earliest nextUpdate, the key (TEE, FMSPC, CA)
 * from the sample quotes, and the cache's names, freshness, garbled files
 * and atomic writes; a cache hit through ra_pcs_fetch_start. */
#include <dirent.h>
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "raloop/attest/pcs/pcs.h"
#include "raloop/attest/pcs/pcs_internal.h"
#include "raloop/core/buf.h"
#include "raloop/core/file.h"
#include "raloop/core/loop.h"

static char *slurp(const char *rel, size_t *len) {
  const char *dir = getenv("RA_VECTORS");
  char path[1024];
  snprintf(path, sizeof path, "%s/%s", dir ? dir : RA_VECTORS_DIR, rel);
  uint8_t *d;
  size_t n;
  if (ra_file_read(path, 1u << 24, &d, &n)) fail_msg("cannot read %s", path);
  char *s = realloc(d, n + 1);
  s[n] = 0;
  if (len) *len = n;
  return s;
}

static ra_str S(const char *s) { return ra_str_cstr(s); }

static int64_t utc(const char *iso) {
  int64_t t;
  assert_int_equal(ra_pcs_parse_date(S(iso), &t), 0);
  return t;
}

static void test_json(void **st) {
  const char *good[] = {"{}", "[]", " {\"a\" : [1, -2.5e3, true, false, null, \"x\\u00e9\\n\"]} ", "0",
                        "\"\\ud83d\\ude00\"", "{\"a\":{\"b\":{}}}"};
  for (size_t i = 0; i < sizeof good / sizeof *good; i++) {
    const char *p = good[i], *e = p + strlen(p);
    if (ra_pcs_json_skip(&p, e, 0)) fail_msg("rejected %s", good[i]);
  }
  const char *bad[] = {"", "{", "{\"a\"}", "{\"a\":}", "[1,]", "{,}", "01", "\"\x01\"", "\"\\x\"",
                       "\"\\u12\"", "tru", "-", "1.", "{\"a\":1 \"b\":2}", "\"abc"};
  for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
    const char *p = bad[i], *e = p + strlen(p);
    if (ra_pcs_json_skip(&p, e, 0) == 0 && p == e) fail_msg("accepted %s", bad[i]);
  }
  /* nesting is bounded */
  char deep[300];
  memset(deep, '[', sizeof deep);
  const char *p = deep;
  assert_int_equal(ra_pcs_json_skip(&p, deep + sizeof deep, 0), -EBADMSG);

  ra_str raw;
  assert_int_equal(ra_pcs_json_member(S("{\"a\":1, \"tcbInfo\" : {\"x\":[1,2]} ,\"b\":\"c\"}"), "tcbInfo", &raw), 0);
  assert_int_equal(raw.len, strlen("{\"x\":[1,2]}"));
  assert_memory_equal(raw.ptr, "{\"x\":[1,2]}", raw.len);
  assert_int_equal(ra_pcs_json_member(S("{\"a\":1}"), "b", &raw), -ENOENT);
  assert_int_equal(ra_pcs_json_member(S("{}"), "b", &raw), -ENOENT);
  assert_int_equal(ra_pcs_json_member(S("{\"a\":1,\"a\":2}"), "a", &raw), -EBADMSG);
  assert_int_equal(ra_pcs_json_member(S("{\"a\":1} x"), "a", &raw), -EBADMSG);
  assert_int_equal(ra_pcs_json_member(S("[1]"), "a", &raw), -EBADMSG);

  ra_buf b = {0};
  assert_int_equal(ra_pcs_json_unescape(S("\"a\\\"b\\\\c\\/d\\n\\u00e9\\ud83d\\ude00\""), &b), 0);
  assert_int_equal(b.len, strlen("a\"b\\c/d\n\xc3\xa9\xf0\x9f\x98\x80"));
  assert_memory_equal(ra_buf_ptr(&b), "a\"b\\c/d\n\xc3\xa9\xf0\x9f\x98\x80", b.len);
  ra_buf_reset(&b);
  assert_int_equal(ra_pcs_json_unescape(S("\"\\udc00\""), &b), -EBADMSG);
  assert_int_equal(ra_pcs_json_unescape(S("\"\\ud83d\""), &b), -EBADMSG);
  ra_buf_reset(&b);
  /* serde_json's escaping: quotes, backslash, the short forms, \u00XX; '/' and UTF-8 as is */
  assert_int_equal(ra_pcs_json_escape(&b, ra_str_make("a\"\\/\n\r\t\b\f\x01\x1f\xc3\xa9", 13)), 0);
  const char *want = "\"a\\\"\\\\/\\n\\r\\t\\b\\f\\u0001\\u001f\xc3\xa9\"";
  assert_int_equal(b.len, strlen(want));
  assert_memory_equal(ra_buf_ptr(&b), want, b.len);
  ra_buf_free(&b);
}

static void test_dates(void **st) {
  assert_int_equal(utc("1970-01-01T00:00:00Z"), 0);
  assert_int_equal(utc("2025-07-19T10:16:03Z"), 1752920163);
  assert_int_equal(utc("2025-07-19T10:16:03.123Z"), 1752920163);
  const char *bad[] = {"2025-07-19T10:16:03", "2025-07-19 10:16:03Z", "2025-13-19T10:16:03Z",
                       "2025-07-19T10:16:03+01:00", "2025-07-19T10:16:03.Z", "x", ""};
  int64_t t;
  for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
    if (ra_pcs_parse_date(S(bad[i]), &t) != -EBADMSG) fail_msg("accepted %s", bad[i]);
}

static const char SIG[] = /* 64 bytes of r || s, hex */
    "027ef6ca41bac64e61edbbd672b1c97eb0b2997400c5018eee002e66421b3fd2"
    "7e71676891c9df47dc6ea3ea2e757ad3e080000000000000000000000000000a";

static void test_split_signed(void **st) {
  char body[512];
  snprintf(body, sizeof body, "{\"tcbInfo\":{\"id\":\"TDX\",\"a\":[1, 2]},\"signature\":\"%s\"}", SIG);
  ra_str sb, sig;
  assert_int_equal(ra_pcs_split_signed(S(body), "tcbInfo", &sb, &sig), 0);
  assert_int_equal(sb.len, strlen("{\"id\":\"TDX\",\"a\":[1, 2]}"));
  assert_memory_equal(sb.ptr, "{\"id\":\"TDX\",\"a\":[1, 2]}", sb.len); /* the raw bytes, spaces kept */
  assert_int_equal(sig.len, 128);
  assert_memory_equal(sig.ptr, SIG, 128);
  /* order and whitespace do not matter */
  snprintf(body, sizeof body, " { \"signature\" : \"%s\" ,\n \"enclaveIdentity\" : {\"id\":\"QE\"} }\n", SIG);
  assert_int_equal(ra_pcs_split_signed(S(body), "enclaveIdentity", &sb, &sig), 0);
  assert_int_equal(sb.len, strlen("{\"id\":\"QE\"}"));
  const char *bad[] = {
      "{\"tcbInfo\":{}}",                                /* no signature */
      "{\"tcbInfo\":{},\"signature\":\"abcd\"}",         /* too short */
      "{\"tcbInfo\":\"x\",\"signature\":\"%s\"}",        /* not an object */
      "{\"signature\":\"%s\"}",                          /* no body */
      "{\"tcbInfo\":{},\"signature\":\"%s\"}garbage",     /* trailing bytes */
      "{\"tcbInfo\":{\"a\":},\"signature\":\"%s\"}",      /* not JSON */
      "<html>502 Bad Gateway</html>"};
  for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
    snprintf(body, sizeof body, bad[i], SIG);
    if (ra_pcs_split_signed(S(body), "tcbInfo", &sb, &sig) != -EBADMSG) fail_msg("accepted %s", body);
  }
  char zs[129];
  memset(zs, 'z', 128);
  zs[128] = 0;
  snprintf(body, sizeof body, "{\"tcbInfo\":{},\"signature\":\"%s\"}", zs);
  assert_int_equal(ra_pcs_split_signed(S(body), "tcbInfo", &sb, &sig), -EBADMSG);
}

static void test_chain_header(void **st) {
  ra_buf b = {0};
  const char *h = "-----BEGIN%20CERTIFICATE-----%0AMIIC%2Bab%2F%3D%3D%0A-----END%20CERTIFICATE-----%0A"
                  "-----BEGIN%20CERTIFICATE-----%0AMIIC%0A-----END%20CERTIFICATE-----%0A";
  assert_int_equal(ra_pcs_decode_chain(S(h), &b), 0);
  const char *want = "-----BEGIN CERTIFICATE-----\nMIIC+ab/==\n-----END CERTIFICATE-----\n"
                     "-----BEGIN CERTIFICATE-----\nMIIC\n-----END CERTIFICATE-----\n";
  assert_int_equal(b.len, strlen(want));
  assert_memory_equal(ra_buf_ptr(&b), want, b.len);
  const char *bad[] = {"", "%zz", "-----BEGIN%20CERTIFICATE-----%0", "no pem here at all, just some text long enough......",
                       "-----BEGIN%20CERTIFICATE-----%0AMIIC%00-----END%20CERTIFICATE-----%0Axxxxxxxxxxxx"};
  for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
    ra_buf_reset(&b);
    if (ra_pcs_decode_chain(S(bad[i]), &b) != -EBADMSG) fail_msg("accepted %s", bad[i]);
  }
  ra_buf_free(&b);
}

/* One part of a sample document, unescaped. */
static void part(const char *doc, const char *key, ra_buf *out) {
  ra_str raw;
  assert_int_equal(ra_pcs_json_member(S(doc), key, &raw), 0);
  assert_int_equal(ra_pcs_json_unescape(raw, out), 0);
}

static void test_crl_forms(void **st) {
  char *doc = slurp("collateral/phala/tdx_quote_collateral.json", NULL);
  ra_buf hex = {0};
  part(doc, "pck_crl", &hex);
  size_t n = hex.len / 2;
  uint8_t *der = malloc(n);
  for (size_t i = 0; i < n; i++) sscanf((const char *)ra_buf_ptr(&hex) + 2 * i, "%2hhx", &der[i]);
  /* DER, PEM and hex text (with a newline) give the same hex */
  ra_buf a = {0}, b = {0}, c = {0};
  int64_t t1, t2, t3;
  assert_int_equal(ra_pcs_crl_to_hex(ra_bytes_make(der, n), &a, &t1), 0);
  const unsigned char *p = der;
  X509_CRL *crl = d2i_X509_CRL(NULL, &p, (long)n);
  assert_non_null(crl);
  BIO *bio = BIO_new(BIO_s_mem());
  PEM_write_bio_X509_CRL(bio, crl);
  char *pem;
  long pl = BIO_get_mem_data(bio, &pem);
  assert_int_equal(ra_pcs_crl_to_hex(ra_str_make(pem, (size_t)pl), &b, &t2), 0);
  BIO_free(bio);
  X509_CRL_free(crl);
  ra_buf_append(&hex, "\n", 1);
  assert_int_equal(ra_pcs_crl_to_hex(ra_str_make((const char *)ra_buf_ptr(&hex), hex.len), &c, &t3), 0);
  assert_int_equal(a.len, 2 * n);
  assert_int_equal(b.len, a.len);
  assert_int_equal(c.len, a.len);
  assert_memory_equal(ra_buf_ptr(&a), ra_buf_ptr(&b), a.len);
  assert_memory_equal(ra_buf_ptr(&a), ra_buf_ptr(&c), a.len);
  assert_memory_equal(ra_buf_ptr(&a), ra_buf_ptr(&hex), a.len); /* lowercase, as the sample */
  assert_true(t1 == t2 && t2 == t3 && t1 > utc("2025-06-01T00:00:00Z"));
  /* garbage, a truncated DER, trailing bytes */
  ra_buf d = {0};
  assert_int_equal(ra_pcs_crl_to_hex(S("<html>oops</html>"), &d, &t1), -EBADMSG);
  assert_int_equal(ra_pcs_crl_to_hex(ra_bytes_make(der, n - 1), &d, &t1), -EBADMSG);
  uint8_t *longer = malloc(n + 1);
  memcpy(longer, der, n);
  longer[n] = 0;
  assert_int_equal(ra_pcs_crl_to_hex(ra_bytes_make(longer, n + 1), &d, &t1), -EBADMSG);
  assert_int_equal(ra_pcs_crl_to_hex(S("-----BEGIN X509 CRL-----\nAAAA\n-----END X509 CRL-----\n"), &d, &t1),
                   -EBADMSG);
  assert_int_equal(d.len, 0);
  free(longer);
  free(der);
  free(doc);
  ra_buf_free(&a);
  ra_buf_free(&b);
  ra_buf_free(&c);
  ra_buf_free(&hex);
}

static void test_doc_roundtrip(void **st) {
  const char *files[] = {"collateral/phala/tdx_quote_collateral.json",
                         "collateral/phala/sgx_quote_collateral.json",
                         "collateral/phala/tdx_quote_outdated_collateral.json"};
  const char *earliest[] = {"2025-07-19T10:00:35Z", "2025-07-19T10:01:18Z", NULL};
  for (int f = 0; f < 3; f++) {
    size_t n;
    char *doc = slurp(files[f], &n);
    ra_buf parts[RA_PCS_NPARTS];
    ra_str views[RA_PCS_NPARTS];
    memset(parts, 0, sizeof parts);
    for (int i = 0; i < RA_PCS_NPARTS; i++) {
      part(doc, ra_pcs_part_names[i], &parts[i]);
      views[i] = ra_str_make((const char *)ra_buf_ptr(&parts[i]), parts[i].len);
    }
    ra_buf out = {0};
    assert_int_equal(ra_pcs_doc_write(&out, views), 0);
    if (earliest[f]) { /* the third file is written compact, not in dcap-qvl's pretty layout */
      assert_int_equal(out.len, n);
      assert_memory_equal(ra_buf_ptr(&out), doc, n); /* byte for byte dcap-qvl's layout */
    }
    int64_t nu;
    assert_int_equal(ra_pcs_doc_next_update(ra_str_make(doc, n), &nu), 0);
    if (earliest[f]) assert_int_equal(nu, utc(earliest[f]));
    for (int i = 0; i < RA_PCS_NPARTS; i++) ra_buf_free(&parts[i]);
    ra_buf_free(&out);
    free(doc);
  }
}

/* The sample document with one part replaced. */
static char *doc_with(const char *key, const char *value) {
  char *doc = slurp("collateral/phala/tdx_quote_collateral.json", NULL);
  ra_buf parts[RA_PCS_NPARTS];
  ra_str views[RA_PCS_NPARTS];
  memset(parts, 0, sizeof parts);
  for (int i = 0; i < RA_PCS_NPARTS; i++) {
    if (!strcmp(ra_pcs_part_names[i], key)) ra_buf_append_str(&parts[i], value);
    else part(doc, ra_pcs_part_names[i], &parts[i]);
    views[i] = ra_str_make(parts[i].len ? (const char *)ra_buf_ptr(&parts[i]) : "", parts[i].len);
  }
  ra_buf out = {0};
  assert_int_equal(ra_pcs_doc_write(&out, views), 0);
  ra_buf_append(&out, "", 1);
  for (int i = 0; i < RA_PCS_NPARTS; i++) ra_buf_free(&parts[i]);
  free(doc);
  size_t len;
  return (char *)ra_buf_steal(&out, &len);
}

static void test_doc_rejects(void **st) {
  struct {
    const char *key, *value;
  } bad[] = {{"tcb_info", "{\"id\":\"TDX\"}"},
             {"tcb_info", "{\"nextUpdate\":\"soon\"}"},
             {"qe_identity", "not json"},
             {"tcb_info_signature", "abcd"},
             {"qe_identity_signature", ""},
             {"root_ca_crl", "3082"},
             {"pck_crl", "zz"},
             {"pck_crl_issuer_chain", "no pem"}};
  int64_t nu;
  for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
    char *d = doc_with(bad[i].key, bad[i].value);
    if (ra_pcs_doc_next_update(S(d), &nu) != -EBADMSG) fail_msg("accepted %s = %s", bad[i].key, bad[i].value);
    free(d);
  }
  /* a key missing, not JSON, truncated */
  char *doc = slurp("collateral/phala/tdx_quote_collateral.json", NULL);
  assert_int_equal(ra_pcs_doc_next_update(ra_str_make(doc, strlen(doc) - 2), &nu), -EBADMSG);
  char *k = strstr(doc, "\"qe_identity_signature\"");
  k[1] = 'Q';
  assert_int_equal(ra_pcs_doc_next_update(S(doc), &nu), -EBADMSG);
  assert_int_equal(ra_pcs_doc_next_update(S("[]"), &nu), -EBADMSG);
  assert_int_equal(ra_pcs_doc_next_update(S(""), &nu), -EBADMSG);
  free(doc);
  /* a date that is earlier in the tcb_info becomes the earliest */
  char *tcb = slurp("collateral/phala/tdx_quote_collateral.json", NULL);
  ra_buf body = {0};
  part(tcb, "tcb_info", &body);
  ra_buf_append(&body, "", 1);
  char *nup = strstr((char *)ra_buf_ptr(&body), "\"nextUpdate\":\"2025-07-19T10:16:03Z\"");
  assert_non_null(nup);
  memcpy(nup + strlen("\"nextUpdate\":\""), "2025-07-01", 10);
  char *d = doc_with("tcb_info", (const char *)ra_buf_ptr(&body));
  assert_int_equal(ra_pcs_doc_next_update(S(d), &nu), 0);
  assert_int_equal(nu, utc("2025-07-01T10:16:03Z"));
  free(d);
  free(tcb);
  ra_buf_free(&body);
}

static void test_key_from_quote(void **st) {
  size_t n;
  char *q = slurp("collateral/phala/tdx_quote", &n);
  ra_pcs_key k;
  assert_int_equal(ra_pcs_key_from_quote((const uint8_t *)q, n, &k), 0);
  assert_int_equal(k.tee, RA_PCS_TDX);
  assert_int_equal(k.ca, RA_PCS_CA_PLATFORM);
  assert_memory_equal(k.fmspc, "\xb0\xc0\x6f\x00\x00\x00", 6);
  char name[64];
  assert_int_equal(ra_pcs_cache_name(&k, name, sizeof name), 0);
  assert_string_equal(name, "tdx-B0C06F000000-platform.json");
  assert_int_equal(ra_pcs_cache_name(&k, name, 10), -ENAMETOOLONG);
  assert_int_not_equal(ra_pcs_key_from_quote((const uint8_t *)q, 100, &k), 0);
  free(q);
  q = slurp("collateral/phala/sgx_quote", &n);
  assert_int_equal(ra_pcs_key_from_quote((const uint8_t *)q, n, &k), 0);
  assert_int_equal(k.tee, RA_PCS_SGX);
  assert_int_equal(k.ca, RA_PCS_CA_PROCESSOR);
  assert_memory_equal(k.fmspc, "\x00\xa0\x67\x11\x00\x00", 6);
  assert_int_equal(ra_pcs_cache_name(&k, name, sizeof name), 0);
  assert_string_equal(name, "sgx-00A067110000-processor.json");
  free(q);
}

static int count_files(const char *dir) {
  DIR *d = opendir(dir);
  if (!d) return -1;
  int n = 0;
  struct dirent *e;
  while ((e = readdir(d)))
    if (e->d_name[0] != '.' || strncmp(e->d_name, ".tmp", 4) == 0) n += strcmp(e->d_name, ".") && strcmp(e->d_name, "..");
  closedir(d);
  return n;
}

static void test_cache(void **st) {
  char tmpl[] = "/tmp/ra-pcs-test-XXXXXX";
  assert_non_null(mkdtemp(tmpl));
  char dir[256];
  snprintf(dir, sizeof dir, "%s/a/b", tmpl); /* created on the first store */
  size_t n;
  char *doc = slurp("collateral/phala/tdx_quote_collateral.json", &n);
  ra_pcs_key k = {.tee = RA_PCS_TDX, .ca = RA_PCS_CA_PLATFORM, .fmspc = {0xb0, 0xc0, 0x6f}};
  char *got;
  size_t len;
  int64_t nu, now = utc("2025-06-25T00:00:00Z"), due = utc("2025-07-19T10:00:35Z");
  assert_int_equal(ra_pcs_cache_load(dir, &k, now, 3600, &got, &len, &nu), -ENOENT);
  assert_int_equal(ra_pcs_cache_store(dir, &k, S("{\"not\":\"a document\"}")), -EBADMSG);
  assert_int_equal(ra_pcs_cache_store(dir, &k, ra_str_make(doc, n)), 0);
  assert_int_equal(count_files(dir), 1); /* no temporary file left */
  char path[512];
  snprintf(path, sizeof path, "%s/tdx-B0C06F000000-platform.json", dir);
  struct stat sb;
  assert_int_equal(stat(path, &sb), 0);
  assert_int_equal(sb.st_mode & 0777, 0600);
  /* fresh until refresh_before seconds before the earliest nextUpdate */
  assert_int_equal(ra_pcs_cache_load(dir, &k, now, 3600, &got, &len, &nu), 0);
  assert_int_equal(len, n);
  assert_memory_equal(got, doc, n);
  assert_int_equal(got[n], 0);
  assert_int_equal(nu, due);
  free(got);
  assert_int_equal(ra_pcs_cache_load(dir, &k, due - 3601, 3600, &got, &len, &nu), 0);
  free(got);
  assert_int_equal(ra_pcs_cache_load(dir, &k, due - 3600, 3600, &got, &len, &nu), -ESTALE);
  assert_int_equal(ra_pcs_cache_load(dir, &k, due - 1, 0, &got, &len, &nu), 0);
  free(got);
  assert_int_equal(ra_pcs_cache_load(dir, &k, due, 0, &got, &len, &nu), -ESTALE);
  /* another key is another entry */
  ra_pcs_key k2 = k;
  k2.ca = RA_PCS_CA_PROCESSOR;
  assert_int_equal(ra_pcs_cache_load(dir, &k2, now, 3600, &got, &len, &nu), -ENOENT);
  k2 = k;
  k2.tee = RA_PCS_SGX;
  assert_int_equal(ra_pcs_cache_load(dir, &k2, now, 3600, &got, &len, &nu), -ENOENT);
  /* garbled entries are refused (callers fetch again) */
  const char *garbage[] = {"", "{", "null", "{\"pck_crl_issuer_chain\":\"x\"}"};
  for (size_t i = 0; i < sizeof garbage / sizeof *garbage; i++) {
    FILE *f = fopen(path, "w");
    fputs(garbage[i], f);
    fclose(f);
    assert_int_equal(ra_pcs_cache_load(dir, &k, now, 3600, &got, &len, &nu), -EBADMSG);
  }
  FILE *f = fopen(path, "w"); /* truncated by a crash of someone else's writer */
  fwrite(doc, 1, n / 2, f);
  fclose(f);
  assert_int_equal(ra_pcs_cache_load(dir, &k, now, 3600, &got, &len, &nu), -EBADMSG);
  /* overwritten by the next store */
  assert_int_equal(ra_pcs_cache_store(dir, &k, ra_str_make(doc, n)), 0);
  assert_int_equal(ra_pcs_cache_load(dir, &k, now, 3600, &got, &len, &nu), 0);
  free(got);
  /* a file where the directory should be */
  char fdir[512];
  snprintf(fdir, sizeof fdir, "%s", path);
  assert_int_equal(ra_pcs_cache_store(fdir, &k, ra_str_make(doc, n)), -ENOTDIR);
  unlink(path);
  rmdir(dir);
  snprintf(path, sizeof path, "%s/a", tmpl);
  rmdir(path);
  rmdir(tmpl);
  free(doc);
}

static void test_default_dir(void **st) {
  char *ox = getenv("XDG_CACHE_HOME") ? strdup(getenv("XDG_CACHE_HOME")) : NULL;
  char *oh = getenv("HOME") ? strdup(getenv("HOME")) : NULL;
  char b[256];
  setenv("XDG_CACHE_HOME", "/x/cache", 1);
  assert_int_equal(ra_pcs_cache_default_dir(b, sizeof b), 0);
  assert_string_equal(b, "/x/cache/raloop/collateral");
  setenv("XDG_CACHE_HOME", "relative", 1); /* ignored, as the spec says */
  setenv("HOME", "/home/u", 1);
  assert_int_equal(ra_pcs_cache_default_dir(b, sizeof b), 0);
  assert_string_equal(b, "/home/u/.cache/raloop/collateral");
  unsetenv("XDG_CACHE_HOME");
  assert_int_equal(ra_pcs_cache_default_dir(b, 8), -ENAMETOOLONG);
  unsetenv("HOME");
  assert_int_equal(ra_pcs_cache_default_dir(b, sizeof b), -ENOENT);
  if (ox) setenv("XDG_CACHE_HOME", ox, 1);
  if (oh) setenv("HOME", oh, 1);
  free(ox);
  free(oh);
}

typedef struct hit {
  int calls, err;
  bool from_cache;
  size_t len;
  ra_loop *loop;
} hit;

static void on_hit(int err, const ra_pcs_result *r, void *ud) {
  hit *h = ud;
  h->calls++;
  h->err = err;
  if (r) {
    h->from_cache = r->from_cache;
    h->len = r->doc.len;
  }
  ra_loop_stop(h->loop);
}

static void test_fetch_cache_hit(void **st) {
  char tmpl[] = "/tmp/ra-pcs-hit-XXXXXX";
  assert_non_null(mkdtemp(tmpl));
  size_t n;
  char *doc = slurp("collateral/phala/tdx_quote_collateral.json", &n);
  ra_pcs_key k = {.tee = RA_PCS_TDX, .ca = RA_PCS_CA_PLATFORM, .fmspc = {0xb0, 0xc0, 0x6f}};
  assert_int_equal(ra_pcs_cache_store(tmpl, &k, ra_str_make(doc, n)), 0);
  ra_loop *loop;
  assert_int_equal(ra_loop_new(&loop), 0);
  hit h = {.loop = loop};
  /* port 1: nothing listens, so any request would fail */
  ra_pcs_opts o = {.base_url = "http://127.0.0.1:1", .cache_dir = tmpl, .now = utc("2025-06-25T00:00:00Z")};
  assert_int_equal(ra_pcs_fetch_start(loop, &o, &k, on_hit, &h, NULL), 0);
  assert_int_equal(h.calls, 0); /* from the loop, not from inside */
  ra_loop_run(loop);
  assert_int_equal(h.calls, 1);
  assert_int_equal(h.err, 0);
  assert_true(h.from_cache);
  assert_int_equal(h.len, n);
  /* past the entry's nextUpdate: fetched, and the refused connection fails it */
  hit h2 = {.loop = loop};
  o.now = utc("2025-07-20T00:00:00Z");
  assert_int_equal(ra_pcs_fetch_start(loop, &o, &k, on_hit, &h2, NULL), 0);
  ra_loop_run(loop);
  assert_int_equal(h2.calls, 1);
  assert_int_equal(h2.err, -ECONNREFUSED);
  /* cancelled: no callback */
  hit h3 = {.loop = loop};
  ra_pcs_fetch *f;
  o.now = utc("2025-06-25T00:00:00Z");
  assert_int_equal(ra_pcs_fetch_start(loop, &o, &k, on_hit, &h3, &f), 0);
  ra_pcs_fetch_cancel(f);
  o.now = utc("2025-07-20T00:00:00Z");
  assert_int_equal(ra_pcs_fetch_start(loop, &o, &k, on_hit, &h3, &f), 0);
  ra_pcs_fetch_cancel(f);
  ra_loop_run_once(loop, 20);
  ra_loop_run_once(loop, 20);
  assert_int_equal(h3.calls, 0);
  /* other schemes and bad arguments fail up front */
  o.base_url = "ftp://api.trustedservices.intel.com";
  o.no_cache = true;
  assert_int_equal(ra_pcs_fetch_start(loop, &o, &k, on_hit, &h3, NULL), -EPROTONOSUPPORT);
  o.base_url = NULL;
  assert_int_equal(ra_pcs_fetch_start(loop, &o, &k, on_hit, &h3, NULL), -EINVAL);
  assert_int_equal(h3.calls, 0);
  ra_loop_free(loop);
  char path[512];
  snprintf(path, sizeof path, "%s/tdx-B0C06F000000-platform.json", tmpl);
  unlink(path);
  rmdir(tmpl);
  free(doc);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_json),          cmocka_unit_test(test_dates),
      cmocka_unit_test(test_split_signed),  cmocka_unit_test(test_chain_header),
      cmocka_unit_test(test_crl_forms),     cmocka_unit_test(test_doc_roundtrip),
      cmocka_unit_test(test_doc_rejects),   cmocka_unit_test(test_key_from_quote),
      cmocka_unit_test(test_cache),         cmocka_unit_test(test_default_dir),
      cmocka_unit_test(test_fetch_cache_hit),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
