/* tests/core/error_test.c: the error code space, ra_strerror, ra_err_name. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "raloop/core/error.h"

static void test_success(void **state) {
  (void)state;
  assert_string_equal(ra_strerror(0), "success");
  assert_string_equal(ra_err_name(0), "OK");
}

static void test_errno(void **state) {
  (void)state;
  assert_string_equal(ra_err_name(-ENOENT), "ENOENT");
  assert_string_equal(ra_strerror(-ENOENT), "No such file or directory");
  assert_string_equal(ra_err_name(-ENOMEM), "ENOMEM");
  assert_string_equal(ra_err_name(-EACCES), "EACCES");
}

static void test_raloop_codes(void **state) {
  (void)state;
  assert_string_equal(ra_err_name(RA_ERR_CERT_REVOKED), "RA_ERR_CERT_REVOKED");
  assert_string_equal(ra_strerror(RA_ERR_CERT_REVOKED), "certificate revoked");
  assert_string_equal(ra_err_name(RA_ERR_QE_DEBUG), "RA_ERR_QE_DEBUG");
  assert_non_null(strstr(ra_strerror(RA_ERR_QUOTE_TRUNCATED), "truncated"));
}

/* The values are part of the ABI: same order as the old enum, 1..27 below
 * the base, and every one of them below every errno value. */
static void test_values_stable(void **state) {
  (void)state;
  assert_int_equal(RA_ERR_QUOTE_TRUNCATED, RA_ERR_BASE - 1);
  assert_int_equal(RA_ERR_CERT_REVOKED, RA_ERR_BASE - 15);
  assert_int_equal(RA_ERR_QE_DEBUG, RA_ERR_BASE - 27);
  assert_int_equal(RA_ERR_HOST_UNKNOWN, RA_ERR_BASE - 45);
  assert_string_equal(ra_err_name(RA_ERR_HOST_UNKNOWN), "RA_ERR_HOST_UNKNOWN");
  assert_string_equal(ra_strerror(RA_ERR_HOST_UNKNOWN), "host name does not resolve");
  assert_true(RA_ERR_BASE < -EHWPOISON);
  for (int c = RA_ERR_QE_DEBUG; c <= RA_ERR_QUOTE_TRUNCATED; c++) {
    assert_non_null(strstr(ra_err_name(c), "RA_ERR_"));
    assert_string_not_equal(ra_strerror(c), "unknown error");
  }
}

static void test_unknown(void **state) {
  (void)state;
  int unknown[] = {RA_ERR_BASE, RA_ERR_HOST_UNKNOWN - 1, -3999, 1, 12345, -100000};
  for (size_t i = 0; i < sizeof unknown / sizeof *unknown; i++) {
    assert_string_equal(ra_strerror(unknown[i]), "unknown error");
    assert_string_equal(ra_err_name(unknown[i]), "UNKNOWN");
  }
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_success),     cmocka_unit_test(test_errno),
      cmocka_unit_test(test_raloop_codes), cmocka_unit_test(test_values_stable),
      cmocka_unit_test(test_unknown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
