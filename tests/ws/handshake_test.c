/* tests/ws/handshake_test.c: accept value, key validation, token lists. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "raloop/ws/handshake.h"

static void accept_value(void **st) {
  (void)st;
  char out[RA_WS_ACCEPT_LEN + 1];
  /* RFC 6455 section 1.3 */
  assert_int_equal(ra_ws_accept_value(RA_STR("dGhlIHNhbXBsZSBub25jZQ=="), out), 0);
  assert_string_equal(out, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
  assert_int_equal(ra_ws_accept_value(RA_STR("  dGhlIHNhbXBsZSBub25jZQ==\t"), out), 0);
  assert_string_equal(out, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
}

static void key_validation(void **st) {
  (void)st;
  assert_true(ra_ws_key_valid(RA_STR("dGhlIHNhbXBsZSBub25jZQ==")));
  assert_true(ra_ws_key_valid(RA_STR("AAAAAAAAAAAAAAAAAAAAAA==")));
  assert_true(ra_ws_key_valid(RA_STR("+/+/+/+/+/+/+/+/+/+/+w==")));
  assert_true(ra_ws_key_valid(RA_STR(" dGhlIHNhbXBsZSBub25jZQ== ")));
  assert_false(ra_ws_key_valid(RA_STR("")));
  assert_false(ra_ws_key_valid(RA_STR("dGhlIHNhbXBsZSBub25jZQ=")));    /* 23 */
  assert_false(ra_ws_key_valid(RA_STR("dGhlIHNhbXBsZSBub25jZQ===")));  /* 25 */
  assert_false(ra_ws_key_valid(RA_STR("dGhlIHNhbXBsZSBub25jZQAA")));   /* 18 bytes */
  assert_false(ra_ws_key_valid(RA_STR("dGhlIHNhbXBsZSBub25jZ===")));   /* 15 bytes */
  assert_false(ra_ws_key_valid(RA_STR("dGhlIHNhbXBsZSBub25jZQ-_")));
  assert_false(ra_ws_key_valid(RA_STR("dGhlIHNhbXBsZSBub25j*Q==")));
  assert_false(ra_ws_key_valid(RA_STR("dGhlIHNhbXBsZSBub2 jZQ==")));
  assert_false(ra_ws_key_valid(RA_STR("dGhlIHNhbXBsZSBub25jZQ==dGhlIHNhbXBsZSBub25jZQ==")));
}

static void key_generate(void **st) {
  (void)st;
  char a[RA_WS_KEY_LEN + 1], b[RA_WS_KEY_LEN + 1];
  assert_int_equal(ra_ws_key_generate(a), 0);
  assert_int_equal(ra_ws_key_generate(b), 0);
  assert_int_equal(strlen(a), RA_WS_KEY_LEN);
  assert_true(ra_ws_key_valid(ra_str_make(a, strlen(a))));
  assert_true(ra_ws_key_valid(ra_str_make(b, strlen(b))));
  assert_string_not_equal(a, b);
}

static void tokens(void **st) {
  (void)st;
  assert_true(ra_ws_has_token(RA_STR("Upgrade"), "upgrade"));
  assert_true(ra_ws_has_token(RA_STR("keep-alive, Upgrade"), "upgrade"));
  assert_true(ra_ws_has_token(RA_STR("keep-alive,upgrade ,x"), "upgrade"));
  assert_false(ra_ws_has_token(RA_STR("keep-alive"), "upgrade"));
  assert_false(ra_ws_has_token(RA_STR("upgrades"), "upgrade"));
  assert_false(ra_ws_has_token(RA_STR("no-upgrade"), "upgrade"));
  assert_false(ra_ws_has_token(RA_STR(""), "upgrade"));
  ra_str items[3];
  assert_int_equal(ra_ws_split_list(RA_STR(" chat , , superchat,v3,v4"), items, 3), 4);
  assert_int_equal(items[0].len, 4);
  assert_memory_equal(items[0].ptr, "chat", 4);
  assert_int_equal(items[1].len, 9);
  assert_memory_equal(items[1].ptr, "superchat", 9);
  assert_memory_equal(items[2].ptr, "v3", 2);
  assert_int_equal(ra_ws_split_list(RA_STR(""), items, 3), 0);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(accept_value), cmocka_unit_test(key_validation),
      cmocka_unit_test(key_generate), cmocka_unit_test(tokens),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
