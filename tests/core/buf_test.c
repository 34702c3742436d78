/* tests/core/buf_test.c: ra_buf and ra_str. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "raloop/core/buf.h"
#include "raloop/core/log.h"

static void test_zero_is_empty(void **state) {
  (void)state;
  ra_buf b = {0};
  assert_null(b.data);
  assert_int_equal(b.len, 0);
  ra_buf_consume(&b, 10); /* fine on empty */
  ra_buf_reset(&b);
  size_t n = 99;
  assert_null(ra_buf_steal(&b, &n));
  assert_int_equal(n, 0);
  assert_int_equal(ra_buf_append(&b, NULL, 0), 0);
  assert_null(b.data); /* appending nothing allocates nothing */
  ra_buf_free(&b);
  ra_buf_free(&b);
}

static void test_append_consume_compact(void **state) {
  (void)state;
  ra_buf b = {0};
  assert_int_equal(ra_buf_append(&b, "hello ", 6), 0);
  assert_int_equal(ra_buf_append_str(&b, "world"), 0);
  assert_int_equal(b.len, 11);
  assert_memory_equal(ra_buf_ptr(&b), "hello world", 11);
  ra_buf_consume(&b, 6);
  assert_int_equal(b.len, 5);
  assert_memory_equal(ra_buf_ptr(&b), "world", 5);
  /* room behind the consumed prefix is reused without growing */
  size_t cap = b.cap;
  uint8_t *data = b.data;
  char fill[64];
  memset(fill, 'x', sizeof fill);
  size_t room = cap - b.len;
  assert_int_equal(ra_buf_append(&b, fill, room), 0);
  assert_int_equal(b.cap, cap);
  assert_ptr_equal(b.data, data);
  assert_int_equal(b.off, 0);
  assert_memory_equal(ra_buf_ptr(&b), "world", 5);
  /* and grows when needed */
  assert_int_equal(ra_buf_append(&b, "!", 1), 0);
  assert_true(b.cap > cap);
  assert_int_equal(b.len, cap + 1);
  assert_memory_equal(ra_buf_ptr(&b), "world", 5);
  assert_int_equal(ra_buf_ptr(&b)[b.len - 1], '!');
  /* consuming everything resets the offset */
  ra_buf_consume(&b, b.len);
  assert_int_equal(b.len, 0);
  assert_int_equal(b.off, 0);
  assert_non_null(b.data); /* memory kept until free */
  ra_buf_free(&b);
  assert_null(b.data);
  assert_int_equal(b.cap, 0);
}

static void test_reserve(void **state) {
  (void)state;
  ra_buf b = {0};
  assert_int_equal(ra_buf_reserve(&b, 1000), 0);
  assert_true(b.cap >= 1000);
  assert_int_equal(b.len, 0);
  assert_int_equal(ra_buf_reserve(&b, SIZE_MAX), -ENOMEM);
  assert_int_equal(ra_buf_append(&b, "a", 1), 0);
  assert_int_equal(ra_buf_reserve(&b, SIZE_MAX), -ENOMEM);
  assert_int_equal(b.len, 1); /* untouched on failure */
  /* large appends */
  size_t big = 1 << 20;
  char *p = malloc(big);
  for (size_t i = 0; i < big; i++) p[i] = (char)(i % 251);
  assert_int_equal(ra_buf_append(&b, p, big), 0);
  assert_int_equal(b.len, big + 1);
  assert_memory_equal(ra_buf_ptr(&b) + 1, p, big);
  free(p);
  ra_buf_free(&b);
}

static void test_printf(void **state) {
  (void)state;
  ra_buf b = {0};
  assert_int_equal(ra_buf_printf(&b, "%d-%s", 42, "x"), 0);
  assert_int_equal(b.len, 4);
  assert_memory_equal(ra_buf_ptr(&b), "42-x", 4);
  assert_int_equal(ra_buf_printf(&b, "%s", ""), 0);
  assert_int_equal(b.len, 4);
  /* longer than the room left: grows and retries */
  char longs[3000];
  memset(longs, 'L', sizeof longs - 1);
  longs[sizeof longs - 1] = 0;
  assert_int_equal(ra_buf_printf(&b, "[%s]", longs), 0);
  assert_int_equal(b.len, 4 + 2 + sizeof longs - 1);
  assert_int_equal(ra_buf_ptr(&b)[4], '[');
  assert_int_equal(ra_buf_ptr(&b)[b.len - 1], ']');
  /* after a consume, still appends at the end */
  ra_buf_consume(&b, 3);
  assert_int_equal(ra_buf_printf(&b, "%c", 'Z'), 0);
  assert_int_equal(ra_buf_ptr(&b)[0], 'x');
  assert_int_equal(ra_buf_ptr(&b)[b.len - 1], 'Z');
  ra_buf_free(&b);
}

static void test_steal(void **state) {
  (void)state;
  ra_buf b = {0};
  ra_buf_append_str(&b, "abcdef");
  ra_buf_consume(&b, 2);
  size_t n = 0;
  uint8_t *p = ra_buf_steal(&b, &n);
  assert_non_null(p);
  assert_int_equal(n, 4);
  assert_memory_equal(p, "cdef", 4);
  assert_null(b.data);
  assert_int_equal(b.len, 0);
  assert_int_equal(b.cap, 0);
  free(p);
  /* reset keeps the memory */
  ra_buf_append_str(&b, "x");
  uint8_t *d = b.data;
  ra_buf_reset(&b);
  assert_int_equal(b.len, 0);
  assert_ptr_equal(b.data, d);
  ra_buf_free(&b);
}

static void test_str(void **state) {
  (void)state;
  ra_str a = RA_STR("Content-Length");
  assert_int_equal(a.len, 14);
  assert_true(ra_str_eq(a, ra_str_cstr("Content-Length")));
  assert_false(ra_str_eq(a, ra_str_cstr("content-length")));
  assert_true(ra_str_eq_nocase(a, ra_str_cstr("content-LENGTH")));
  assert_false(ra_str_eq_nocase(a, ra_str_cstr("content-lengt")));
  assert_true(ra_str_eq_cstr(ra_str_make("abc", 2), "ab"));
  assert_false(ra_str_eq_cstr(ra_str_make("abc", 2), "abc"));
  ra_str e = ra_str_cstr(NULL);
  assert_int_equal(e.len, 0);
  assert_true(ra_str_eq(e, ra_str_make(NULL, 0)));
  assert_true(ra_str_eq_nocase(e, RA_STR("")));
  /* embedded NULs compare as bytes */
  assert_false(ra_str_eq(ra_str_make("a\0b", 3), ra_str_make("a\0c", 3)));
}

typedef struct logrec {
  int n;
  ra_log_level level;
  char msg[2048];
} logrec;

static void sink(ra_log_level level, const char *msg, void *ud) {
  logrec *r = ud;
  r->n++;
  r->level = level;
  strncpy(r->msg, msg, sizeof r->msg - 1);
}

static void test_log(void **state) {
  (void)state;
  logrec r = {0};
  ra_log_level old = ra_log_get_level();
  ra_log_set_sink(sink, &r);
  ra_log_set_level(RA_LOG_WARN);
  assert_int_equal(ra_log_get_level(), RA_LOG_WARN);
  ra_info("dropped %d", 1);
  assert_int_equal(r.n, 0);
  ra_warn("kept %d", 2);
  assert_int_equal(r.n, 1);
  assert_int_equal(r.level, RA_LOG_WARN);
  assert_string_equal(r.msg, "kept 2");
  char longs[3000];
  memset(longs, 'x', sizeof longs - 1);
  longs[sizeof longs - 1] = 0;
  ra_error("%s", longs); /* truncated, marked */
  assert_int_equal(r.n, 2);
  assert_true(strlen(r.msg) < sizeof longs - 1);
  assert_string_equal(r.msg + strlen(r.msg) - 3, "...");
  ra_log_set_level(RA_LOG_OFF);
  ra_error("off");
  assert_int_equal(r.n, 2);
  ra_log_set_sink(NULL, NULL);
  ra_log_set_level(old);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_zero_is_empty),
      cmocka_unit_test(test_append_consume_compact),
      cmocka_unit_test(test_reserve),
      cmocka_unit_test(test_printf),
      cmocka_unit_test(test_steal),
      cmocka_unit_test(test_str),
      cmocka_unit_test(test_log),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
