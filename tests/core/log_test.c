/* tests/core/log_test.c: the log's rate limiter (lines a peer can cause). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "raloop/core/log.h"

static void test_allow_window(void **state) {
  (void)state;
  ra_log_limit l = RA_LOG_LIMIT_INIT(3, 1000);
  uint64_t sup = 99;
  for (int i = 0; i < 3; i++) {
    assert_true(ra_log_limit_allow(&l, 100 + (uint64_t)i, &sup));
    assert_int_equal(sup, 0);
  }
  for (int i = 0; i < 1000; i++) assert_false(ra_log_limit_allow(&l, 200, &sup));
  assert_false(ra_log_limit_allow(&l, 1099, &sup)); /* same interval */
  /* the next interval: the first line learns how many were dropped */
  assert_true(ra_log_limit_allow(&l, 1100, &sup));
  assert_int_equal(sup, 1001);
  assert_true(ra_log_limit_allow(&l, 1101, &sup));
  assert_int_equal(sup, 0);
}

static int lines;
static char last[1200];
static void sink(ra_log_level level, const char *msg, void *ud) {
  (void)level;
  (void)ud;
  lines++;
  snprintf(last, sizeof last, "%s", msg);
}

static void test_call_site_flood(void **state) {
  (void)state;
  ra_log_set_sink(sink, NULL);
  ra_log_set_level(RA_LOG_INFO);
  lines = 0;
  for (int i = 0; i < 100000; i++) RA_LOG_LIMITED(RA_LOG_WARN, 5, 60000, "bad thing %d", i);
  assert_int_equal(lines, 5);
  assert_string_equal(last, "bad thing 4");
  /* below the level: nothing written, nothing counted */
  ra_log_set_level(RA_LOG_ERROR);
  lines = 0;
  for (int i = 0; i < 1000; i++) RA_LOG_LIMITED(RA_LOG_WARN, 5, 60000, "quiet %d", i);
  assert_int_equal(lines, 0);
  ra_log_set_level(RA_LOG_INFO);
  ra_log_set_sink(NULL, NULL);
}

int main(void) {
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_allow_window),
    cmocka_unit_test(test_call_site_flood),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
