/* tests/core/file_test.c: whole-file reads. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

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

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(reads_exact_bytes_nul_terminated),
      cmocka_unit_test(refuses_past_max),
      cmocka_unit_test(accepts_exactly_max),
      cmocka_unit_test(missing_file_and_directory),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
