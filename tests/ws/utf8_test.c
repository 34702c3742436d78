/* tests/ws/utf8_test.c: strict incremental UTF-8 validation. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "raloop/ws/utf8.h"

#define S(x) (const uint8_t *)(x), sizeof(x) - 1

/* valid whole, and valid when split at every point into two calls */
static void check_valid(const uint8_t *s, size_t n, bool want) {
  assert_int_equal(ra_utf8_valid(s, n), want);
  for (size_t cut = 0; cut <= n; cut++) {
    ra_utf8 u;
    ra_utf8_init(&u);
    bool ok = ra_utf8_feed(&u, s, cut) && ra_utf8_feed(&u, s + cut, n - cut) && ra_utf8_complete(&u);
    assert_int_equal(ok, want);
  }
  /* byte at a time */
  ra_utf8 u;
  ra_utf8_init(&u);
  bool ok = true;
  for (size_t i = 0; i < n && ok; i++) ok = ra_utf8_feed(&u, s + i, 1);
  assert_int_equal(ok && ra_utf8_complete(&u), want);
}

static void valid(void **st) {
  (void)st;
  check_valid(S(""), true);
  check_valid(S("hello, world: plain ASCII longer than one word"), true);
  check_valid(S("\xc2\x80"), true);             /* U+0080 */
  check_valid(S("\xdf\xbf"), true);             /* U+07FF */
  check_valid(S("\xe0\xa0\x80"), true);         /* U+0800 */
  check_valid(S("\xed\x9f\xbf"), true);         /* U+D7FF */
  check_valid(S("\xee\x80\x80"), true);         /* U+E000 */
  check_valid(S("\xef\xbf\xbf"), true);         /* U+FFFF */
  check_valid(S("\xf0\x90\x80\x80"), true);     /* U+10000 */
  check_valid(S("\xf4\x8f\xbf\xbf"), true);     /* U+10FFFF */
  check_valid(S("\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5"), true); /* kosme */
  check_valid(S("Hello-\xc2\xb5@\xc3\x9f\xc3\xb6\xc3\xa4\xc3\xbc\xc3\xa0\xc3\xa1-UTF-8!!"), true);
  check_valid(S("\x00\x7f"), true);
}

static void invalid(void **st) {
  (void)st;
  /* over-long forms */
  check_valid(S("\xc0\x80"), false);
  check_valid(S("\xc1\xbf"), false);
  check_valid(S("\xe0\x80\x80"), false);
  check_valid(S("\xe0\x9f\xbf"), false);
  check_valid(S("\xf0\x80\x80\x80"), false);
  check_valid(S("\xf0\x8f\xbf\xbf"), false);
  /* surrogates */
  check_valid(S("\xed\xa0\x80"), false);
  check_valid(S("\xed\xbf\xbf"), false);
  check_valid(S("\xed\xa0\x80\xed\xb0\x80"), false); /* a surrogate pair */
  /* above U+10FFFF, invalid leads */
  check_valid(S("\xf4\x90\x80\x80"), false);
  check_valid(S("\xf5\x80\x80\x80"), false);
  check_valid(S("\xf8\x88\x80\x80\x80"), false);
  check_valid(S("\xfe"), false);
  check_valid(S("\xff"), false);
  /* stray continuation, truncated, interrupted */
  check_valid(S("\x80"), false);
  check_valid(S("a\xbf"), false);
  check_valid(S("\xc2"), false);
  check_valid(S("\xe2\x82"), false);
  check_valid(S("\xf0\x90\x80"), false);
  check_valid(S("\xe2\x82" "a"), false);
  check_valid(S("\xc2\xc2\x80"), false);
}

/* An error anywhere in a long ASCII run (the word-at-a-time path) is found,
 * and is sticky. */
static void fast_path(void **st) {
  (void)st;
  uint8_t buf[100];
  for (size_t pos = 0; pos < sizeof buf; pos++) {
    memset(buf, 'a', sizeof buf);
    buf[pos] = 0xff;
    assert_false(ra_utf8_valid(buf, sizeof buf));
    buf[pos] = 0xc3;
    if (pos + 1 < sizeof buf) {
      buf[pos + 1] = 0xa9;
      assert_true(ra_utf8_valid(buf, sizeof buf));
    } else {
      assert_false(ra_utf8_valid(buf, sizeof buf)); /* truncated at the end */
    }
  }
  ra_utf8 u;
  ra_utf8_init(&u);
  assert_false(ra_utf8_feed(&u, S("\xff")));
  assert_false(ra_utf8_feed(&u, S("abc")));
  assert_false(ra_utf8_complete(&u));
}

/* Exhaustive over every 1..3-byte sequence against a reference decoder. */
static bool ref_valid(const uint8_t *s, size_t n) {
  size_t i = 0;
  while (i < n) {
    uint32_t c = s[i], cp, min;
    size_t k;
    if (c < 0x80) { i++; continue; }
    else if ((c & 0xe0) == 0xc0) k = 1, cp = c & 0x1f, min = 0x80;
    else if ((c & 0xf0) == 0xe0) k = 2, cp = c & 0x0f, min = 0x800;
    else if ((c & 0xf8) == 0xf0) k = 3, cp = c & 0x07, min = 0x10000;
    else return false;
    if (i + k >= n) return false; /* truncated */
    for (size_t j = 1; j <= k; j++) {
      if ((s[i + j] & 0xc0) != 0x80) return false;
      cp = (cp << 6) | (s[i + j] & 0x3f);
    }
    if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return false;
    i += k + 1;
  }
  return true;
}

static void exhaustive(void **st) {
  (void)st;
  uint8_t b[3];
  for (unsigned x = 0; x < 256; x++) {
    b[0] = (uint8_t)x;
    assert_int_equal(ra_utf8_valid(b, 1), ref_valid(b, 1));
    for (unsigned y = 0; y < 256; y++) {
      b[1] = (uint8_t)y;
      assert_int_equal(ra_utf8_valid(b, 2), ref_valid(b, 2));
      if (x >= 0xe0 && x <= 0xf4)
        for (unsigned z = 0; z < 256; z++) {
          b[2] = (uint8_t)z;
          assert_int_equal(ra_utf8_valid(b, 3), ref_valid(b, 3));
        }
    }
  }
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(valid), cmocka_unit_test(invalid), cmocka_unit_test(fast_path),
      cmocka_unit_test(exhaustive),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
