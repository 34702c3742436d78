/* tests/http/token_test.c: ra_http_tchar (the one tchar definition, as
 * bit masks) against RFC 9110 5.6.2 spelled out, on every byte, and the
 * token checks built on it. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "raloop/http/token.h"

static bool rfc_tchar(unsigned c) {
  if (c >= '0' && c <= '9') return true;
  if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z')) return true;
  return c != 0 && strchr("!#$%&'*+-.^_`|~", (int)c) != NULL;
}

static void test_tchar_every_byte(void **state) {
  (void)state;
  for (unsigned c = 0; c < 256; c++) assert_int_equal(ra_http_tchar((unsigned char)c), rfc_tchar(c));
}

static void test_token_valid(void **state) {
  (void)state;
  for (unsigned c = 0; c < 256; c++) {
    char b[2] = {'a', (char)c};
    assert_int_equal(ra_http_token_valid(ra_str_make(b, 2)), rfc_tchar(c));
  }
  assert_true(ra_http_token_valid(RA_STR("X-Request-Id")));
  assert_false(ra_http_token_valid(RA_STR("")));
  assert_false(ra_http_token_valid(RA_STR("a\x80")));
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_tchar_every_byte),
      cmocka_unit_test(test_token_valid),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
