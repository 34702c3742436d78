/* tests/store/sealed_test.c: the sealed record store. What a user of it
 * relies on: what was put comes back, under the same key only; any change
 * of the file, or a file of another record under this record's name, is
 * refused (never garbage); the plaintext never reaches the disk; a crash's
 * leftovers are ignored and cleaned. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>
#include <sodium.h>

#include "raloop/core/file.h"
#include "raloop/store/sealed.h"

typedef struct fx {
  char dir[64];
  uint8_t key[RA_SEALED_KEY_BYTES];
  ra_sealed *st;
} fx;

static void rm_tree(const char *dir) {
  DIR *d = opendir(dir);
  if (!d) return;
  struct dirent *e;
  char p[512];
  while ((e = readdir(d))) {
    if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
    snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
    if (unlink(p)) rm_tree(p);
  }
  closedir(d);
  rmdir(dir);
}

static int setup(void **state) {
  fx *f = calloc(1, sizeof *f);
  strcpy(f->dir, "/tmp/ra_sealed_test_XXXXXX");
  if (!mkdtemp(f->dir)) return -1;
  strcat(f->dir, "/store"); /* created by the store */
  randombytes_buf(f->key, sizeof f->key);
  if (ra_sealed_open(f->dir, f->key, &f->st)) return -1;
  *state = f;
  return 0;
}

static int teardown(void **state) {
  fx *f = *state;
  ra_sealed_free(f->st);
  *strrchr(f->dir, '/') = 0;
  rm_tree(f->dir);
  free(f);
  return 0;
}

static char *rec_path(fx *f, const char *name) {
  static char p[256];
  assert_int_equal(ra_sealed_path(f->st, name, p, sizeof p), 0);
  return p;
}

static void get_expect(ra_sealed *st, const char *name, const void *want, size_t wlen) {
  uint8_t *got = NULL;
  size_t len = 0;
  assert_int_equal(ra_sealed_get(st, name, 1 << 20, &got, &len), 0);
  assert_int_equal(len, wlen);
  if (wlen) assert_memory_equal(got, want, wlen);
  assert_int_equal(got[len], 0);
  ra_sealed_data_free(got, len);
}

static int get_rc(ra_sealed *st, const char *name) {
  uint8_t *got = (uint8_t *)"untouched";
  size_t len = 0;
  int rc = ra_sealed_get(st, name, 1 << 20, &got, &len);
  if (rc == 0) ra_sealed_data_free(got, len);
  else assert_string_equal((char *)got, "untouched");
  return rc;
}

static uint8_t *slurp(const char *path, size_t *len) {
  uint8_t *b = NULL;
  assert_int_equal(ra_file_read(path, 1 << 24, &b, len), 0);
  return b;
}

static void spit(const char *path, const void *b, size_t len) {
  assert_int_equal(ra_file_write_atomic(path, b, len, 0600), 0);
}

static void round_trip(void **state) {
  fx *f = *state;
  static const size_t sizes[] = {0, 1, 17, 4096, 100000};
  for (size_t k = 0; k < sizeof sizes / sizeof *sizes; k++) {
    size_t n = sizes[k];
    uint8_t *data = malloc(n + 1);
    for (size_t i = 0; i < n; i++) data[i] = (uint8_t)(i * 13 + k); /* NULs inside */
    assert_int_equal(ra_sealed_put(f->st, "private-data", data, n), 0);
    get_expect(f->st, "private-data", data, n);
    size_t flen;
    free(slurp(rec_path(f, "private-data"), &flen));
    assert_int_equal(flen, n + RA_SEALED_OVERHEAD);
    free(data);
  }
  /* a new version replaces the old one */
  assert_int_equal(ra_sealed_put(f->st, "private-data", "v2", 2), 0);
  get_expect(f->st, "private-data", "v2", 2);
  /* records are independent */
  assert_int_equal(ra_sealed_put(f->st, "other_1.x", "o", 1), 0);
  get_expect(f->st, "private-data", "v2", 2);
  get_expect(f->st, "other_1.x", "o", 1);
  /* the file is the owner's only */
  struct stat st;
  assert_int_equal(stat(rec_path(f, "private-data"), &st), 0);
  assert_int_equal(st.st_mode & 0777, 0600);
  assert_int_equal(stat(f->dir, &st), 0);
  assert_int_equal(st.st_mode & 0777, 0700);
  /* and survives the store being closed and opened again */
  ra_sealed_free(f->st);
  assert_int_equal(ra_sealed_open(f->dir, f->key, &f->st), 0);
  get_expect(f->st, "private-data", "v2", 2);
  /* delete */
  assert_int_equal(ra_sealed_delete(f->st, "other_1.x"), 0);
  assert_int_equal(get_rc(f->st, "other_1.x"), -ENOENT);
  assert_int_equal(ra_sealed_delete(f->st, "other_1.x"), -ENOENT);
}

static void missing_bad_names_and_limits(void **state) {
  fx *f = *state;
  assert_int_equal(get_rc(f->st, "nothing"), -ENOENT);
  static const char *bad[] = {"", ".hidden", "a/b", "..", "a b", "é", "x\n"};
  for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
    assert_int_equal(ra_sealed_put(f->st, bad[i], "x", 1), -EINVAL);
    assert_int_equal(get_rc(f->st, bad[i]), -EINVAL);
  }
  char longname[RA_SEALED_MAX_NAME + 2];
  memset(longname, 'n', sizeof longname - 1);
  longname[sizeof longname - 1] = 0;
  assert_int_equal(ra_sealed_put(f->st, longname, "x", 1), -EINVAL);
  longname[RA_SEALED_MAX_NAME] = 0;
  assert_int_equal(ra_sealed_put(f->st, longname, "x", 1), 0);
  get_expect(f->st, longname, "x", 1);
  /* max bounds what get will decrypt */
  static uint8_t big[1000];
  assert_int_equal(ra_sealed_put(f->st, "big", big, sizeof big), 0);
  uint8_t *got;
  size_t len;
  assert_int_equal(ra_sealed_get(f->st, "big", 999, &got, &len), -EFBIG);
  assert_int_equal(ra_sealed_get(f->st, "big", 1000, &got, &len), 0);
  ra_sealed_data_free(got, len);
  assert_int_equal(ra_sealed_put(f->st, "huge", big, RA_SEALED_MAX_RECORD + 1), -EFBIG);
}

static void fresh_nonce_and_no_plaintext_on_disk(void **state) {
  fx *f = *state;
  static const char secret[] = "{\"hello\":\"world\",\"card\":\"4111111111111111\"}";
  assert_int_equal(ra_sealed_put(f->st, "private-data", secret, sizeof secret - 1), 0);
  size_t l1, l2;
  uint8_t *b1 = slurp(rec_path(f, "private-data"), &l1);
  assert_null(memmem(b1, l1, "world", 5));
  assert_null(memmem(b1, l1, "4111111111111111", 16));
  assert_null(memmem(b1, l1, f->key, sizeof f->key));
  assert_int_equal(ra_sealed_put(f->st, "private-data", secret, sizeof secret - 1), 0);
  uint8_t *b2 = slurp(rec_path(f, "private-data"), &l2);
  assert_int_equal(l1, l2);
  /* same content, same key: a fresh nonce makes the whole body differ */
  assert_memory_equal(b1, b2, 28); /* magic, version, algorithm, key id */
  assert_memory_not_equal(b1 + 28, b2 + 28, 24);
  assert_memory_not_equal(b1 + 52, b2 + 52, l1 - 52);
  free(b1);
  free(b2);
  /* nothing else in the directory holds it either */
  DIR *d = opendir(f->dir);
  struct dirent *e;
  while ((e = readdir(d))) {
    if (e->d_name[0] == '.' && (e->d_name[1] == 0 || e->d_name[1] == '.')) continue;
    char p[512];
    snprintf(p, sizeof p, "%s/%s", f->dir, e->d_name);
    size_t n;
    uint8_t *b = slurp(p, &n);
    assert_null(memmem(b, n, "world", 5));
    free(b);
  }
  closedir(d);
}

static void wrong_key_refused(void **state) {
  fx *f = *state;
  assert_int_equal(ra_sealed_put(f->st, "private-data", "secret", 6), 0);
  ra_sealed_free(f->st);
  uint8_t other[RA_SEALED_KEY_BYTES];
  memcpy(other, f->key, sizeof other);
  other[31] ^= 1; /* one bit off */
  assert_int_equal(ra_sealed_open(f->dir, other, &f->st), 0);
  assert_int_equal(get_rc(f->st, "private-data"), -EKEYREJECTED);
  ra_sealed_free(f->st);
  assert_int_equal(ra_sealed_open(f->dir, f->key, &f->st), 0);
  get_expect(f->st, "private-data", "secret", 6);
}

/* Each byte of the file, flipped, makes the record refuse to open; so do
 * truncation and extension. */
static void any_change_refused(void **state) {
  fx *f = *state;
  static const char msg[] = "a record worth protecting";
  assert_int_equal(ra_sealed_put(f->st, "r", msg, sizeof msg - 1), 0);
  char path[256];
  strcpy(path, rec_path(f, "r"));
  size_t len;
  uint8_t *orig = slurp(path, &len);
  uint8_t *b = malloc(len + 1);
  for (size_t i = 0; i < len; i++) {
    memcpy(b, orig, len);
    b[i] ^= 0x20;
    spit(path, b, len);
    int rc = get_rc(f->st, "r");
    /* the key id (bytes 12..27) says "another key"; everything else "tampered" */
    if (i >= 12 && i < 28) assert_int_equal(rc, -EKEYREJECTED);
    else assert_int_equal(rc, -EBADMSG);
  }
  for (size_t n = 0; n < len; n += (n < 60 ? 1 : 7)) {
    spit(path, orig, n);
    assert_int_equal(get_rc(f->st, "r"), -EBADMSG);
  }
  memcpy(b, orig, len);
  b[len] = 0;
  spit(path, b, len + 1);
  assert_int_equal(get_rc(f->st, "r"), -EBADMSG);
  /* a future format version is refused, not guessed at */
  memcpy(b, orig, len);
  b[8] = 2;
  spit(path, b, len);
  assert_int_equal(get_rc(f->st, "r"), -EBADMSG);
  spit(path, orig, len);
  get_expect(f->st, "r", msg, sizeof msg - 1);
  free(b);
  free(orig);
}

/* A record's file copied or renamed over another record's does not open as
 * that record: the name is authenticated. */
static void record_swap_refused(void **state) {
  fx *f = *state;
  assert_int_equal(ra_sealed_put(f->st, "alice", "alice's data", 12), 0);
  assert_int_equal(ra_sealed_put(f->st, "bob", "bob's data", 10), 0);
  char a[256], b[256];
  strcpy(a, rec_path(f, "alice"));
  strcpy(b, rec_path(f, "bob"));
  assert_int_equal(rename(a, b), 0);
  assert_int_equal(get_rc(f->st, "bob"), -EBADMSG);
  assert_int_equal(get_rc(f->st, "alice"), -ENOENT);
}

/* A write interrupted before its rename leaves ".<name>.sealed.tmp-XXXXXX":
 * readers never see it, the next open removes it, foreign files stay. */
static void torn_temp_files_ignored(void **state) {
  fx *f = *state;
  static const char msg[] = "the complete record";
  assert_int_equal(ra_sealed_put(f->st, "private-data", msg, sizeof msg - 1), 0);
  size_t len;
  uint8_t *whole = slurp(rec_path(f, "private-data"), &len);
  char torn[256], foreign[256];
  snprintf(torn, sizeof torn, "%s/.private-data.sealed.tmp-Ab12Cd", f->dir);
  snprintf(foreign, sizeof foreign, "%s/.notes.tmp-keep", f->dir);
  int fd = open(torn, O_WRONLY | O_CREAT | O_EXCL, 0600);
  assert_true(fd >= 0);
  assert_int_equal(write(fd, whole, len / 2), (ssize_t)(len / 2)); /* half a record */
  close(fd);
  fd = open(foreign, O_WRONLY | O_CREAT | O_EXCL, 0600);
  assert_true(fd >= 0);
  close(fd);
  get_expect(f->st, "private-data", msg, sizeof msg - 1);
  ra_sealed_free(f->st);
  assert_int_equal(ra_sealed_open(f->dir, f->key, &f->st), 0);
  assert_int_equal(access(torn, F_OK), -1);
  assert_int_equal(access(foreign, F_OK), 0);
  get_expect(f->st, "private-data", msg, sizeof msg - 1);
  free(whole);
}

static void one_process_per_directory(void **state) {
  fx *f = *state;
  ra_sealed *second = (ra_sealed *)1;
  assert_int_equal(ra_sealed_open(f->dir, f->key, &second), -EBUSY);
  assert_null(second);
  ra_sealed_free(f->st);
  assert_int_equal(ra_sealed_open(f->dir, f->key, &f->st), 0);
  /* the directory's parent must exist */
  char deep[128];
  snprintf(deep, sizeof deep, "%s/no/such", f->dir);
  assert_int_equal(ra_sealed_open(deep, f->key, &second), -ENOENT);
}

static void keys(void **state) {
  fx *f = *state;
  char b64[sodium_base64_ENCODED_LEN(32, sodium_base64_VARIANT_ORIGINAL)];
  sodium_bin2base64(b64, sizeof b64, f->key, 32, sodium_base64_VARIANT_ORIGINAL);
  uint8_t k[RA_SEALED_KEY_BYTES];
  /* as `openssl rand -base64 32` prints it, newline included */
  char line[80];
  snprintf(line, sizeof line, "%s\n", b64);
  assert_int_equal(ra_sealed_key_parse(line, strlen(line), k), 0);
  assert_memory_equal(k, f->key, 32);
  snprintf(line, sizeof line, "  %s \r\n", b64);
  assert_int_equal(ra_sealed_key_parse(line, strlen(line), k), 0);
  /* 31 and 33 bytes, not base64, url-safe alphabet, empty, trailing junk */
  static const char *bad[] = {"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA==",
                              "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA==",
                              "not a key at all", "", "________________________________________AAA=",
                              "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=!"};
  for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
    assert_int_equal(ra_sealed_key_parse(bad[i], strlen(bad[i]), k), -EINVAL);
  assert_int_equal(ra_sealed_key_parse("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=", 44, k), 0);

  /* key files: base64 text or 32 raw bytes */
  char kf[256];
  snprintf(kf, sizeof kf, "%s/../key", f->dir);
  spit(kf, line, strlen(line));
  memset(k, 0, sizeof k);
  assert_int_equal(ra_sealed_key_read(kf, k), 0);
  assert_memory_equal(k, f->key, 32);
  spit(kf, f->key, 32);
  memset(k, 0, sizeof k);
  assert_int_equal(ra_sealed_key_read(kf, k), 0);
  assert_memory_equal(k, f->key, 32);
  spit(kf, f->key, 31);
  assert_int_equal(ra_sealed_key_read(kf, k), -EINVAL);
  assert_int_equal(ra_sealed_key_read("/nonexistent/key", k), -ENOENT);

  /* the environment, as ra-enclave takes it */
  assert_int_equal(ra_sealed_put(f->st, "r", "x", 1), 0);
  ra_sealed_free(f->st);
  f->st = NULL;
  ra_sealed *st = NULL;
  unsetenv("ENCLAVE_KEY_BASE64");
  assert_int_equal(ra_sealed_open_env(f->dir, NULL, &st), -ENOKEY);
  setenv("ENCLAVE_KEY_BASE64", "", 1);
  assert_int_equal(ra_sealed_open_env(f->dir, NULL, &st), -ENOKEY);
  setenv("ENCLAVE_KEY_BASE64", "short", 1);
  assert_int_equal(ra_sealed_open_env(f->dir, NULL, &st), -EINVAL);
  setenv("ENCLAVE_KEY_BASE64", b64, 1);
  assert_int_equal(ra_sealed_open_env(f->dir, NULL, &st), 0);
  get_expect(st, "r", "x", 1);
  ra_sealed_free(st);
  unsetenv("ENCLAVE_KEY_BASE64");
  spit(kf, line, strlen(line));
  assert_int_equal(ra_sealed_open_env(f->dir, kf, &st), 0);
  get_expect(st, "r", "x", 1);
  f->st = st;
  unlink(kf);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(round_trip, setup, teardown),
      cmocka_unit_test_setup_teardown(missing_bad_names_and_limits, setup, teardown),
      cmocka_unit_test_setup_teardown(fresh_nonce_and_no_plaintext_on_disk, setup, teardown),
      cmocka_unit_test_setup_teardown(wrong_key_refused, setup, teardown),
      cmocka_unit_test_setup_teardown(any_change_refused, setup, teardown),
      cmocka_unit_test_setup_teardown(record_swap_refused, setup, teardown),
      cmocka_unit_test_setup_teardown(torn_temp_files_ignored, setup, teardown),
      cmocka_unit_test_setup_teardown(one_process_per_directory, setup, teardown),
      cmocka_unit_test_setup_teardown(keys, setup, teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
