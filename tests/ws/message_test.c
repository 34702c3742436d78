/* tests/ws/message_test.c: message assembly: fragments, interleaved control
 * frames, UTF-8 across fragments (1007), size limit (1009), close payloads. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "raloop/ws/message.h"

static const uint8_t KEY[4] = {0xa1, 0x02, 0xff, 0x5c};

static size_t build(uint8_t *out, bool fin, unsigned op, const void *pl, size_t len, bool mask) {
  size_t h = ra_ws_frame_header(out, fin, 0, op, len, mask ? KEY : NULL);
  if (len) memcpy(out + h, pl, len);
  if (mask) ra_ws_mask(out + h, len, KEY, 0);
  return h + len;
}

typedef struct {
  int n;
  uint8_t op[16];
  size_t len[16];
  uint8_t *data[16];
  uint16_t code[16];
  char reason[16][126];
  int err;
  uint16_t close_code;
} got;

static void got_free(got *g) {
  for (int i = 0; i < g->n; i++) free(g->data[i]);
}

/* Feeds in steps of `step` (0: whole); collects messages. */
static void feed(ra_ws_role role, uint64_t max, const uint8_t *b, size_t len, size_t step, got *g) {
  memset(g, 0, sizeof *g);
  ra_ws_assembler a;
  ra_ws_assembler_init(&a, role, max);
  size_t pos = 0;
  while (pos < len && !g->err) {
    size_t chunk = step ? (len - pos < step ? len - pos : step) : len - pos;
    const uint8_t *d = b + pos;
    size_t left = chunk;
    while (left) {
      ra_ws_msg m;
      long n = ra_ws_assembler_feed(&a, d, left, &m);
      if (n < 0) {
        g->err = (int)n;
        g->close_code = a.close_code;
        assert_non_null(a.error);
        break;
      }
      d += n;
      left -= (size_t)n;
      if (!m.opcode) {
        assert_int_equal(left, 0);
        break;
      }
      assert_true(g->n < 16);
      g->op[g->n] = m.opcode;
      g->len[g->n] = m.len;
      g->data[g->n] = malloc(m.len + 1);
      memcpy(g->data[g->n], m.data, m.len);
      g->code[g->n] = m.close_code;
      memcpy(g->reason[g->n], m.reason ? (const char *)m.reason : "", m.reason_len);
      g->reason[g->n][m.reason_len] = 0;
      g->n++;
    }
    pos += chunk;
  }
  ra_ws_assembler_free(&a);
}

static const size_t STEPS[] = {0, 1, 2, 5, 64};

static void fragments_and_control(void **st) {
  (void)st;
  uint8_t b[512];
  for (int mask = 0; mask < 2; mask++) {
    ra_ws_role role = mask ? RA_WS_SERVER : RA_WS_CLIENT;
    size_t n = build(b, false, RA_WS_OP_TEXT, "Hel", 3, mask);
    n += build(b + n, true, RA_WS_OP_PING, "ping!", 5, mask);
    n += build(b + n, false, RA_WS_OP_CONT, "", 0, mask);
    /* "é" (c3 a9) split across fragments */
    n += build(b + n, false, RA_WS_OP_CONT, "lo \xc3", 4, mask);
    n += build(b + n, true, RA_WS_OP_PONG, "", 0, mask);
    n += build(b + n, true, RA_WS_OP_CONT, "\xa9!", 2, mask);
    n += build(b + n, true, RA_WS_OP_BINARY, "\x00\xff\x00", 3, mask);
    n += build(b + n, true, RA_WS_OP_TEXT, "", 0, mask);
    n += build(b + n, true, RA_WS_OP_CLOSE, "\x03\xe8" "bye", 5, mask);
    for (size_t s = 0; s < sizeof STEPS / sizeof STEPS[0]; s++) {
      got g;
      feed(role, 0, b, n, STEPS[s], &g);
      assert_int_equal(g.err, 0);
      assert_int_equal(g.n, 6);
      assert_int_equal(g.op[0], RA_WS_OP_PING);
      assert_int_equal(g.len[0], 5);
      assert_memory_equal(g.data[0], "ping!", 5);
      assert_int_equal(g.op[1], RA_WS_OP_PONG);
      assert_int_equal(g.len[1], 0);
      assert_int_equal(g.op[2], RA_WS_OP_TEXT);
      assert_int_equal(g.len[2], 9);
      assert_memory_equal(g.data[2], "Hello \xc3\xa9!", 9);
      assert_int_equal(g.op[3], RA_WS_OP_BINARY);
      assert_int_equal(g.len[3], 3);
      assert_memory_equal(g.data[3], "\x00\xff\x00", 3);
      assert_int_equal(g.op[4], RA_WS_OP_TEXT);
      assert_int_equal(g.len[4], 0);
      assert_int_equal(g.op[5], RA_WS_OP_CLOSE);
      assert_int_equal(g.code[5], 1000);
      assert_string_equal(g.reason[5], "bye");
      got_free(&g);
    }
  }
}

/* A large unmasked frame delivered whole is a view into the input. */
static void zero_copy(void **st) {
  (void)st;
  size_t len = 70000;
  uint8_t *b = malloc(len + 14), *pl = malloc(len);
  for (size_t i = 0; i < len; i++) pl[i] = (uint8_t)i;
  size_t n = build(b, true, RA_WS_OP_BINARY, pl, len, false);
  ra_ws_assembler a;
  ra_ws_assembler_init(&a, RA_WS_CLIENT, 0);
  ra_ws_msg m;
  assert_int_equal(ra_ws_assembler_feed(&a, b, n, &m), (long)n);
  assert_int_equal(m.opcode, RA_WS_OP_BINARY);
  assert_ptr_equal(m.data, b + 10);
  assert_int_equal(m.len, len);
  assert_null(a.buf);
  /* the same split in two is copied and still right */
  assert_int_equal(ra_ws_assembler_feed(&a, b, 1000, &m), 1000);
  assert_int_equal(m.opcode, 0);
  assert_int_equal(ra_ws_assembler_feed(&a, b + 1000, n - 1000, &m), (long)(n - 1000));
  assert_int_equal(m.opcode, RA_WS_OP_BINARY);
  assert_int_equal(m.len, len);
  assert_memory_equal(m.data, pl, len);
  ra_ws_assembler_free(&a);
  free(b);
  free(pl);
}

static void expect_err(ra_ws_role role, uint64_t max, const uint8_t *b, size_t n, int err, int code) {
  for (size_t s = 0; s < sizeof STEPS / sizeof STEPS[0]; s++) {
    got g;
    feed(role, max, b, n, STEPS[s], &g);
    assert_int_equal(g.err, err);
    assert_int_equal(g.close_code, code);
    got_free(&g);
  }
}

static void utf8_rules(void **st) {
  (void)st;
  uint8_t b[256];
  size_t n;
  /* invalid in one frame, masked and not */
  n = build(b, true, RA_WS_OP_TEXT, "ab\xc0\x80", 4, true);
  expect_err(RA_WS_SERVER, 0, b, n, -EILSEQ, 1007);
  n = build(b, true, RA_WS_OP_TEXT, "ab\xed\xa0\x80", 5, false);
  expect_err(RA_WS_CLIENT, 0, b, n, -EILSEQ, 1007);
  /* fails fast: in the first fragment, before the message ends */
  n = build(b, false, RA_WS_OP_TEXT, "\xff", 1, true);
  expect_err(RA_WS_SERVER, 0, b, n, -EILSEQ, 1007);
  /* a sequence split across fragments that turns out invalid */
  n = build(b, false, RA_WS_OP_TEXT, "\xf0\x90", 2, true);
  n += build(b + n, true, RA_WS_OP_CONT, "\x80" "a", 2, true);
  expect_err(RA_WS_SERVER, 0, b, n, -EILSEQ, 1007);
  /* truncated at the end of the message */
  n = build(b, false, RA_WS_OP_TEXT, "a", 1, true);
  n += build(b + n, true, RA_WS_OP_CONT, "\xe2\x82", 2, true);
  expect_err(RA_WS_SERVER, 0, b, n, -EILSEQ, 1007);
  /* binary is not checked */
  n = build(b, true, RA_WS_OP_BINARY, "\xff\xc0", 2, true);
  expect_err(RA_WS_SERVER, 0, b, n, 0, 0);
  /* frame-level errors surface with their code */
  n = build(b, true, RA_WS_OP_TEXT, "a", 1, false);
  expect_err(RA_WS_SERVER, 0, b, n, -EPROTO, 1002);
}

static void size_limit(void **st) {
  (void)st;
  uint8_t b[512];
  uint8_t pl[200];
  memset(pl, 'x', sizeof pl);
  size_t n;
  /* exactly the limit: fine */
  n = build(b, true, RA_WS_OP_TEXT, pl, 100, true);
  expect_err(RA_WS_SERVER, 100, b, n, 0, 0);
  /* one over, in one frame: refused at the header (only the header fed) */
  n = build(b, true, RA_WS_OP_TEXT, pl, 101, true);
  expect_err(RA_WS_SERVER, 100, b, 6, -EMSGSIZE, 1009);
  /* over across fragments */
  n = build(b, false, RA_WS_OP_BINARY, pl, 60, true);
  n += build(b + n, true, RA_WS_OP_CONT, pl, 41, true);
  expect_err(RA_WS_SERVER, 100, b, n, -EMSGSIZE, 1009);
  n = build(b, false, RA_WS_OP_BINARY, pl, 60, true);
  n += build(b + n, true, RA_WS_OP_CONT, pl, 40, true);
  n += build(b + n, true, RA_WS_OP_BINARY, pl, 100, true); /* the count restarts */
  expect_err(RA_WS_SERVER, 100, b, n, 0, 0);
  /* an announced 2^62-byte frame is refused without allocating */
  memcpy(b, "\x82\x7f\x40\x00\x00\x00\x00\x00\x00\x00", 10);
  expect_err(RA_WS_CLIENT, 0, b, 10, -EMSGSIZE, 1009);
  /* control frames are not data: a ping beside a full message is fine */
  n = build(b, false, RA_WS_OP_BINARY, pl, 100, true);
  n += build(b + n, true, RA_WS_OP_PING, pl, 125, true);
  n += build(b + n, true, RA_WS_OP_CONT, "", 0, true);
  expect_err(RA_WS_SERVER, 100, b, n, 0, 0);
}

static void close_payloads(void **st) {
  (void)st;
  uint8_t b[256];
  size_t n;
  got g;
  n = build(b, true, RA_WS_OP_CLOSE, "", 0, true);
  feed(RA_WS_SERVER, 0, b, n, 1, &g);
  assert_int_equal(g.n, 1);
  assert_int_equal(g.code[0], 1005);
  assert_string_equal(g.reason[0], "");
  got_free(&g);
  /* 1-byte payload */
  n = build(b, true, RA_WS_OP_CLOSE, "\x03", 1, true);
  expect_err(RA_WS_SERVER, 0, b, n, -EPROTO, 1002);
  static const unsigned bad[] = {0, 999, 1004, 1005, 1006, 1015, 1016, 2999, 5000, 65535};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    uint8_t p[2] = {(uint8_t)(bad[i] >> 8), (uint8_t)bad[i]};
    n = build(b, true, RA_WS_OP_CLOSE, p, 2, true);
    expect_err(RA_WS_SERVER, 0, b, n, -EPROTO, 1002);
  }
  static const unsigned good[] = {1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 3000, 4999};
  for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
    uint8_t p[2] = {(uint8_t)(good[i] >> 8), (uint8_t)good[i]};
    n = build(b, true, RA_WS_OP_CLOSE, p, 2, false);
    feed(RA_WS_CLIENT, 0, b, n, 0, &g);
    assert_int_equal(g.err, 0);
    assert_int_equal(g.n, 1);
    assert_int_equal(g.code[0], good[i]);
    got_free(&g);
  }
  /* the reason must be UTF-8 */
  n = build(b, true, RA_WS_OP_CLOSE, "\x03\xe8\xce\xba\xe1", 5, true);
  expect_err(RA_WS_SERVER, 0, b, n, -EILSEQ, 1007);
  n = build(b, true, RA_WS_OP_CLOSE, "\x03\xe8\xce\xba", 4, true);
  feed(RA_WS_SERVER, 0, b, n, 1, &g);
  assert_int_equal(g.n, 1);
  assert_string_equal(g.reason[0], "\xce\xba");
  got_free(&g);
}

/* A big fragmented masked message fed in odd pieces. */
static void large_fragmented(void **st) {
  (void)st;
  size_t total = 300000, frag = 70001;
  uint8_t *pl = malloc(total), *b = malloc(total + 200);
  for (size_t i = 0; i < total; i++) pl[i] = (uint8_t)(i * 7);
  size_t n = 0;
  for (size_t off = 0; off < total; off += frag) {
    size_t l = total - off < frag ? total - off : frag;
    n += build(b + n, off + l == total, off ? RA_WS_OP_CONT : RA_WS_OP_BINARY, pl + off, l, true);
  }
  static const size_t steps[] = {0, 1, 4093};
  for (size_t s = 0; s < 3; s++) {
    got g;
    feed(RA_WS_SERVER, total, b, n, steps[s], &g);
    assert_int_equal(g.err, 0);
    assert_int_equal(g.n, 1);
    assert_int_equal(g.len[0], total);
    assert_memory_equal(g.data[0], pl, total);
    got_free(&g);
  }
  free(pl);
  free(b);
}

/* A peer announcing a big frame and sending little does not make us
 * allocate what it announced. */
static void announced_not_allocated(void **st) {
  (void)st;
  ra_ws_assembler a;
  ra_ws_assembler_init(&a, RA_WS_SERVER, 0);
  uint8_t b[RA_WS_MAX_HEADER + 1000];
  static const uint8_t key[4] = {9, 8, 7, 6};
  size_t h = ra_ws_frame_header(b, true, 0, RA_WS_OP_BINARY, 16u << 20, key);
  memset(b + h, 0, 1000);
  ra_ws_msg m;
  assert_int_equal(ra_ws_assembler_feed(&a, b, h + 1000, &m), (long)(h + 1000));
  assert_int_equal(m.opcode, 0);
  assert_true(a.cap <= 256 << 10); /* the eager bound, not 16 MiB */
  ra_ws_assembler_free(&a);
}

/* A message in many small fragments: the buffer grows geometrically (a
 * handful of reallocations, not one per fragment, which would make a
 * 16 MiB message in 1 KiB pieces copy gigabytes), and never beyond twice
 * what arrived. */
static void many_small_fragments(void **st) {
  (void)st;
  enum { NFRAG = 4000, FRAG = 100 };
  uint8_t pl[FRAG], b[RA_WS_MAX_HEADER + FRAG];
  ra_ws_assembler a;
  ra_ws_assembler_init(&a, RA_WS_SERVER, 0);
  size_t caps = 0, last_cap = 0;
  for (int i = 0; i < NFRAG; i++) {
    memset(pl, 'a' + i % 26, FRAG);
    size_t n = build(b, i == NFRAG - 1, i ? RA_WS_OP_CONT : RA_WS_OP_TEXT, pl, FRAG, true);
    ra_ws_msg m;
    assert_int_equal(ra_ws_assembler_feed(&a, b, n, &m), (long)n);
    if (a.cap != last_cap) caps++;
    last_cap = a.cap;
    assert_true(a.cap <= 2 * (size_t)(i + 1) * FRAG + 4096);
    if (i < NFRAG - 1) {
      assert_int_equal(m.opcode, 0);
    } else {
      assert_int_equal(m.opcode, RA_WS_OP_TEXT);
      assert_int_equal(m.len, (size_t)NFRAG * FRAG);
      for (int k = 0; k < NFRAG; k++) assert_int_equal(m.data[(size_t)k * FRAG], 'a' + k % 26);
    }
  }
  if (caps > 20) fail_msg("%zu reallocations for %d fragments", caps, NFRAG);
  ra_ws_assembler_free(&a);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(fragments_and_control), cmocka_unit_test(zero_copy),
      cmocka_unit_test(utf8_rules), cmocka_unit_test(size_limit),
      cmocka_unit_test(close_payloads), cmocka_unit_test(large_fragmented),
      cmocka_unit_test(announced_not_allocated), cmocka_unit_test(many_small_fragments),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
