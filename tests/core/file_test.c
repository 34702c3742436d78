/* tests/core/file_test.c: whole-file reads, atomic durable writes. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/stat.h>

#include <cmocka.h>

#include "raloop/core/file.h"

static char *write_tmp(const void *data, size_t len) {
  static char path[64];
  strcpy(path, "/tmp/ra_file_test_XXXXXX");
  int fd = mkstemp(path);
  assert_true(fd >= 0);
  assert_int_equal(write(fd, data, len), (ssize_t)len);
  close(fd);
  return path;
}

static void reads_exact_bytes_nul_terminated(void **state) {
  /* sizes around the growth steps, with NUL bytes inside */
  static const size_t sizes[] = {0, 1, 4094, 4095, 4096, 4097, 100000};
  for (size_t k = 0; k < sizeof sizes / sizeof *sizes; k++) {
    size_t n = sizes[k];
    uint8_t *want = malloc(n + 1);
    for (size_t i = 0; i < n; i++) want[i] = (uint8_t)(i * 7);
    char *path = write_tmp(want, n);
    uint8_t *got = NULL;
    size_t len = 99;
    assert_int_equal(ra_file_read(path, 1 << 20, &got, &len), 0);
    assert_int_equal(len, n);
    assert_memory_equal(got, want, n);
    assert_int_equal(got[n], 0);
    free(got);
    free(want);
    unlink(path);
  }
}

static void refuses_past_max(void **state) {
  uint8_t data[5000] = {0};
  char *path = write_tmp(data, sizeof data);
  uint8_t *got = (uint8_t *)"untouched";
  size_t len;
  assert_int_equal(ra_file_read(path, 4999, &got, &len), -EFBIG);
  assert_string_equal((char *)got, "untouched");
  assert_int_equal(ra_file_read(path, 5000, &got, &len), 0);
  assert_int_equal(len, 5000);
  free(got);
  unlink(path);
}

/* A file of exactly max bytes is accepted, whatever max is relative to the
 * growth steps of the buffer (4095 filled the first one exactly). */
static void accepts_exactly_max(void **state) {
  static const size_t sizes[] = {1, 4095, 4096, 8191, 8192};
  static uint8_t data[8192];
  for (size_t k = 0; k < sizeof sizes / sizeof *sizes; k++) {
    size_t n = sizes[k];
    memset(data, (int)('a' + k), n);
    char *path = write_tmp(data, n);
    uint8_t *got = NULL;
    size_t len = 0;
    assert_int_equal(ra_file_read(path, n, &got, &len), 0);
    assert_int_equal(len, n);
    assert_memory_equal(got, data, n);
    free(got);
    assert_int_equal(ra_file_read(path, n - 1, &got, &len), -EFBIG);
    unlink(path);
  }
}

static void missing_file_and_directory(void **state) {
  uint8_t *got;
  size_t len;
  assert_int_equal(ra_file_read("/nonexistent/raloop", 100, &got, &len), -ENOENT);
  assert_int_equal(ra_file_read("/tmp", 100, &got, &len), -EISDIR);
}

/* ---- ra_file_write_atomic ------------------------------------------------ */

static char *mk_dir(void) {
  static char dir[64];
  strcpy(dir, "/tmp/ra_file_atomic_XXXXXX");
  assert_non_null(mkdtemp(dir));
  return dir;
}

/* Entries of dir other than . and .., and how many look like our temps. */
static int count_entries(const char *dir, int *temps) {
  DIR *d = opendir(dir);
  assert_non_null(d);
  int n = 0;
  *temps = 0;
  struct dirent *e;
  while ((e = readdir(d))) {
    if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
    n++;
    if (strstr(e->d_name, ".tmp-")) (*temps)++;
  }
  closedir(d);
  return n;
}

static void rm_dir(const char *dir) {
  DIR *d = opendir(dir);
  if (!d) return;
  struct dirent *e;
  char p[512];
  while ((e = readdir(d))) {
    if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
    snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
    if (unlink(p)) rmdir(p);
  }
  closedir(d);
  rmdir(dir);
}

static void atomic_creates_and_replaces(void **state) {
  char *dir = mk_dir();
  char path[128];
  snprintf(path, sizeof path, "%s/rec", dir);
  mode_t old = umask(077); /* the mode given is the mode set, whatever the umask */
  assert_int_equal(ra_file_write_atomic(path, "first version", 13, 0644), 0);
  umask(old);
  struct stat st;
  assert_int_equal(stat(path, &st), 0);
  assert_int_equal(st.st_mode & 07777, 0644);
  uint8_t *got;
  size_t len;
  assert_int_equal(ra_file_read(path, 100, &got, &len), 0);
  assert_int_equal(len, 13);
  assert_memory_equal(got, "first version", 13);
  free(got);
  ino_t ino = st.st_ino;
  /* a replacement is a new file renamed over the old one, never an
   * overwrite in place: a reader holding the old one keeps it whole */
  int keep = open(path, O_RDONLY);
  assert_true(keep >= 0);
  static uint8_t big[300000];
  for (size_t i = 0; i < sizeof big; i++) big[i] = (uint8_t)(i * 31);
  assert_int_equal(ra_file_write_atomic(path, big, sizeof big, 0600), 0);
  assert_int_equal(stat(path, &st), 0);
  assert_int_equal(st.st_mode & 07777, 0600);
  assert_true(st.st_ino != ino);
  char old_bytes[13];
  assert_int_equal(read(keep, old_bytes, 13), 13);
  assert_memory_equal(old_bytes, "first version", 13);
  close(keep);
  assert_int_equal(ra_file_read(path, sizeof big, &got, &len), 0);
  assert_int_equal(len, sizeof big);
  assert_memory_equal(got, big, sizeof big);
  free(got);
  /* empty content */
  assert_int_equal(ra_file_write_atomic(path, NULL, 0, 0600), 0);
  assert_int_equal(ra_file_read(path, 10, &got, &len), 0);
  assert_int_equal(len, 0);
  free(got);
  int temps;
  assert_int_equal(count_entries(dir, &temps), 1);
  assert_int_equal(temps, 0);
  rm_dir(dir);
}

static void atomic_relative_path(void **state) {
  char *dir = mk_dir();
  char cwd[512];
  assert_non_null(getcwd(cwd, sizeof cwd));
  assert_int_equal(chdir(dir), 0);
  assert_int_equal(ra_file_write_atomic("plain", "x", 1, 0600), 0);
  assert_int_equal(chdir(cwd), 0);
  char path[128];
  snprintf(path, sizeof path, "%s/plain", dir);
  uint8_t *got;
  size_t len;
  assert_int_equal(ra_file_read(path, 10, &got, &len), 0);
  assert_int_equal(len, 1);
  free(got);
  rm_dir(dir);
}

/* Every failure leaves the old content and no temporary file behind. */
static void atomic_failures_leave_nothing(void **state) {
  char *dir = mk_dir();
  char path[128], sub[128];
  snprintf(path, sizeof path, "%s/rec", dir);
  assert_int_equal(ra_file_write_atomic(path, "old", 3, 0600), 0);
  /* the target is a directory: the rename fails */
  snprintf(sub, sizeof sub, "%s/adir", dir);
  assert_int_equal(mkdir(sub, 0700), 0);
  assert_int_equal(ra_file_write_atomic(sub, "new", 3, 0600), -EISDIR);
  rmdir(sub);
  /* no directory */
  snprintf(sub, sizeof sub, "%s/none/rec", dir);
  assert_int_equal(ra_file_write_atomic(sub, "new", 3, 0600), -ENOENT);
  /* a name that is a directory's */
  snprintf(sub, sizeof sub, "%s/", dir);
  assert_int_equal(ra_file_write_atomic(sub, "new", 3, 0600), -EISDIR);
  /* the write itself fails (file size limit): the temp goes, the old stays */
  struct rlimit rl, small = {.rlim_cur = 1000, .rlim_max = RLIM_INFINITY};
  assert_int_equal(getrlimit(RLIMIT_FSIZE, &rl), 0);
  small.rlim_max = rl.rlim_max;
  void (*prev)(int) = signal(SIGXFSZ, SIG_IGN);
  assert_int_equal(setrlimit(RLIMIT_FSIZE, &small), 0);
  static uint8_t big[5000];
  int rc = ra_file_write_atomic(path, big, sizeof big, 0600);
  assert_int_equal(setrlimit(RLIMIT_FSIZE, &rl), 0);
  signal(SIGXFSZ, prev);
  assert_int_equal(rc, -EFBIG);
  uint8_t *got;
  size_t len;
  assert_int_equal(ra_file_read(path, 10, &got, &len), 0);
  assert_int_equal(len, 3);
  assert_memory_equal(got, "old", 3);
  free(got);
  int temps;
  assert_int_equal(count_entries(dir, &temps), 1);
  assert_int_equal(temps, 0);
  rm_dir(dir);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(reads_exact_bytes_nul_terminated),
      cmocka_unit_test(refuses_past_max),
      cmocka_unit_test(accepts_exactly_max),
      cmocka_unit_test(missing_file_and_directory),
      cmocka_unit_test(atomic_creates_and_replaces),
      cmocka_unit_test(atomic_relative_path),
      cmocka_unit_test(atomic_failures_leave_nothing),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
