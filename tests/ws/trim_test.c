/* tests/ws/trim_test.c: giving back what an idle connection keeps
 * (ra_ws_assembler_trim, issue 18): after a whole masked message the
 * buffer goes; a half-received message (fragment or partial frame) keeps
 * it and completes byte for byte after a trim; trimming an empty or
 * trimmed assembler is harmless. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "raloop/ws/message.h"

static const uint8_t KEY[4] = {0x11, 0x22, 0x33, 0x44};

static size_t build(uint8_t *out, bool fin, unsigned op, const void *pl, size_t len) {
  size_t h = ra_ws_frame_header(out, fin, 0, op, len, KEY);
  memcpy(out + h, pl, len);
  ra_ws_mask(out + h, len, KEY, 0);
  return h + len;
}

static void test_whole_message_then_trim(void **state) {
  (void)state;
  ra_ws_assembler a;
  ra_ws_msg m;
  uint8_t f[256];
  ra_ws_assembler_init(&a, RA_WS_SERVER, 0);
  ra_ws_assembler_trim(&a); /* nothing yet */
  size_t n = build(f, true, RA_WS_OP_BINARY, "hello, tunnel", 13);
  assert_int_equal(ra_ws_assembler_feed(&a, f, n, &m), (long)n);
  assert_int_equal(m.opcode, RA_WS_OP_BINARY);
  assert_int_equal(m.len, 13);
  assert_memory_equal(m.data, "hello, tunnel", 13);
  assert_non_null(a.buf); /* a masked message is unmasked into the buffer */
  ra_ws_assembler_trim(&a);
  assert_null(a.buf);
  assert_int_equal(a.cap, 0);
  ra_ws_assembler_trim(&a);
  /* the next message allocates again */
  n = build(f, true, RA_WS_OP_TEXT, "again", 5);
  assert_int_equal(ra_ws_assembler_feed(&a, f, n, &m), (long)n);
  assert_int_equal(m.opcode, RA_WS_OP_TEXT);
  assert_memory_equal(m.data, "again", 5);
  ra_ws_assembler_free(&a);
}

static void test_half_message_kept(void **state) {
  (void)state;
  ra_ws_assembler a;
  ra_ws_msg m;
  uint8_t f[256];
  ra_ws_assembler_init(&a, RA_WS_SERVER, 0);
  /* a first fragment: the message is open */
  size_t n = build(f, false, RA_WS_OP_BINARY, "abc", 3);
  assert_int_equal(ra_ws_assembler_feed(&a, f, n, &m), (long)n);
  assert_int_equal(m.opcode, 0);
  ra_ws_assembler_trim(&a);
  assert_non_null(a.buf);
  /* the last fragment, split in the middle of its payload */
  n = build(f, true, RA_WS_OP_CONT, "defgh", 5);
  assert_int_equal(ra_ws_assembler_feed(&a, f, n - 2, &m), (long)(n - 2));
  assert_int_equal(m.opcode, 0);
  ra_ws_assembler_trim(&a);
  assert_non_null(a.buf);
  assert_int_equal(ra_ws_assembler_feed(&a, f + n - 2, 2, &m), 2);
  assert_int_equal(m.opcode, RA_WS_OP_BINARY);
  assert_int_equal(m.len, 8);
  assert_memory_equal(m.data, "abcdefgh", 8);
  ra_ws_assembler_trim(&a);
  assert_null(a.buf);
  ra_ws_assembler_free(&a);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_whole_message_then_trim),
      cmocka_unit_test(test_half_message_kept),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
