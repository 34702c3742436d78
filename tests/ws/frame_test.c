/* tests/ws/frame_test.c: the frame codec: serializer, incremental parser,
 * every frame-level rule with its close code, masking. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "raloop/ws/frame.h"

static const uint8_t KEY[4] = {0x37, 0xfa, 0x21, 0x3d};

/* A frame with payload (masked with key when key != NULL). */
static size_t build(uint8_t *out, bool fin, unsigned rsv, unsigned op, const void *pl,
                    size_t len, const uint8_t *key) {
  size_t h = ra_ws_frame_header(out, fin, rsv, op, len, key);
  if (len) memcpy(out + h, pl, len);
  if (key) ra_ws_mask(out + h, len, key, 0);
  return h + len;
}

/* Feeds buf in chunks of `step` bytes (0: all at once); reassembles each
 * frame's unmasked payload into payloads (concatenated), counts frames.
 * Returns the close code of an error or 0. */
typedef struct {
  int frames;
  ra_ws_frame last;
  uint8_t *pl;
  size_t pl_len;
} collected;

static int run(ra_ws_role role, const uint8_t *buf, size_t len, size_t step, collected *c) {
  ra_ws_parser p;
  ra_ws_parser_init(&p, role);
  memset(c, 0, sizeof *c);
  c->pl = malloc(len + 1);
  size_t pos = 0;
  while (pos < len) {
    size_t chunk = step ? (len - pos < step ? len - pos : step) : len - pos;
    const uint8_t *d = buf + pos;
    size_t left = chunk;
    for (;;) {
      ra_ws_event ev;
      long n = ra_ws_parse(&p, d, left, &ev);
      if (n < 0) {
        assert_int_equal(n, -EPROTO);
        assert_non_null(p.error);
        /* dead afterwards */
        ra_ws_event ev2;
        assert_int_equal(ra_ws_parse(&p, (const uint8_t *)"\x81\x00", 2, &ev2), -EPROTO);
        return p.close_code;
      }
      assert_true((size_t)n <= left);
      d += n;
      left -= (size_t)n;
      if (ev.type == RA_WS_EV_NONE) {
        assert_int_equal(left, 0);
        break;
      }
      if (ev.type == RA_WS_EV_PAYLOAD) {
        ra_ws_mask_copy(c->pl + c->pl_len, ev.data, ev.len, ev.frame.key, ev.offset);
        c->pl_len += ev.len;
      }
      if (ev.frame_end) {
        c->frames++;
        c->last = ev.frame;
      }
    }
    pos += chunk;
  }
  return 0;
}

static void header_lengths(void **st) {
  (void)st;
  static const struct { uint64_t len; size_t hdr; } cases[] = {
      {0, 2}, {1, 2}, {125, 2}, {126, 4}, {127, 4}, {65535, 4}, {65536, 10},
      {(uint64_t)1 << 32, 10}, {((uint64_t)1 << 63) - 1, 10}};
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    uint8_t h[RA_WS_MAX_HEADER];
    assert_int_equal(ra_ws_frame_header(h, true, 0, RA_WS_OP_BINARY, cases[i].len, NULL), cases[i].hdr);
    assert_int_equal(ra_ws_frame_header(h, true, 0, RA_WS_OP_BINARY, cases[i].len, KEY), cases[i].hdr + 4);
    assert_memory_equal(h + cases[i].hdr, KEY, 4);
    assert_int_equal(h[0], 0x82);
    /* the parser reads back the same length and key */
    ra_ws_parser p;
    ra_ws_parser_init(&p, RA_WS_SERVER);
    ra_ws_event ev;
    long n = ra_ws_parse(&p, h, cases[i].hdr + 4, &ev);
    assert_int_equal(n, (long)(cases[i].hdr + 4));
    assert_int_equal(ev.type, RA_WS_EV_HEADER);
    assert_true(ev.frame.len == cases[i].len);
    assert_true(ev.frame.masked);
    assert_memory_equal(ev.frame.key, KEY, 4);
    assert_int_equal(ev.frame_end, cases[i].len == 0);
  }
  /* exact bytes of the RFC 6455 section 5.7 examples */
  uint8_t f[32];
  assert_int_equal(build(f, true, 0, RA_WS_OP_TEXT, "Hello", 5, NULL), 7);
  assert_memory_equal(f, "\x81\x05\x48\x65\x6c\x6c\x6f", 7);
  const uint8_t k2[4] = {0x37, 0xfa, 0x21, 0x3d};
  assert_int_equal(build(f, true, 0, RA_WS_OP_TEXT, "Hello", 5, k2), 11);
  assert_memory_equal(f, "\x81\x85\x37\xfa\x21\x3d\x7f\x9f\x4d\x51\x58", 11);
  uint8_t h[RA_WS_MAX_HEADER];
  assert_int_equal(ra_ws_frame_header(h, true, 0, RA_WS_OP_BINARY, 256, NULL), 4);
  assert_memory_equal(h, "\x82\x7e\x01\x00", 4);
  assert_int_equal(ra_ws_frame_header(h, true, 0, RA_WS_OP_BINARY, 65536, NULL), 10);
  assert_memory_equal(h, "\x82\x7f\x00\x00\x00\x00\x00\x01\x00\x00", 10);
  assert_int_equal(ra_ws_frame_header(h, false, 5, RA_WS_OP_CONT, 0, NULL), 2);
  assert_memory_equal(h, "\x50\x00", 2);
}

/* A stream of frames parsed identically whatever the split. */
static void any_split(void **st) {
  (void)st;
  size_t cap = 200000;
  uint8_t *buf = malloc(cap), *pl = malloc(70000);
  for (size_t i = 0; i < 70000; i++) pl[i] = (uint8_t)(i * 31 + 7);
  static const size_t sizes[] = {0, 1, 125, 126, 127, 65535, 65536};
  for (int masked = 0; masked < 2; masked++) {
    size_t len = 0, total = 0;
    for (size_t i = 0; i < 7; i++) {
      len += build(buf + len, true, 0, RA_WS_OP_BINARY, pl, sizes[i], masked ? KEY : NULL);
      total += sizes[i];
      len += build(buf + len, true, 0, RA_WS_OP_PING, pl, i * 10, masked ? KEY : NULL);
      total += i * 10;
    }
    static const size_t steps[] = {1, 2, 3, 7, 13, 4096, 0};
    for (size_t s = 0; s < 7; s++) {
      collected c;
      int code = run(masked ? RA_WS_SERVER : RA_WS_CLIENT, buf, len, steps[s], &c);
      assert_int_equal(code, 0);
      assert_int_equal(c.frames, 14);
      assert_int_equal(c.pl_len, total);
      size_t off = 0;
      for (size_t i = 0; i < 7; i++) {
        assert_memory_equal(c.pl + off, pl, sizes[i]);
        off += sizes[i];
        if (i) assert_memory_equal(c.pl + off, pl, i * 10);
        off += i * 10;
      }
      free(c.pl);
    }
  }
  free(buf);
  free(pl);
}

static int parse_one(ra_ws_role role, const uint8_t *b, size_t n, size_t step) {
  collected c;
  int code = run(role, b, n, step, &c);
  free(c.pl);
  return code;
}

/* Every frame-level rule, fed whole and byte at a time. */
static void expect_code(ra_ws_role role, const uint8_t *b, size_t n, int code) {
  assert_int_equal(parse_one(role, b, n, 0), code);
  assert_int_equal(parse_one(role, b, n, 1), code);
}

static void rules(void **st) {
  (void)st;
  uint8_t b[300];
  size_t n;
  /* RSV bits without an extension */
  for (unsigned rsv = 1; rsv < 8; rsv++) {
    n = build(b, true, rsv, RA_WS_OP_TEXT, "x", 1, KEY);
    expect_code(RA_WS_SERVER, b, n, 1002);
  }
  /* unknown opcodes */
  for (unsigned op = 3; op < 16; op++) {
    if (op >= 8 && op <= 10) continue;
    n = build(b, true, 0, op, "x", 1, KEY);
    expect_code(RA_WS_SERVER, b, n, 1002);
  }
  /* masking by role */
  n = build(b, true, 0, RA_WS_OP_TEXT, "x", 1, NULL);
  expect_code(RA_WS_SERVER, b, n, 1002);
  expect_code(RA_WS_CLIENT, b, n, 0);
  n = build(b, true, 0, RA_WS_OP_TEXT, "x", 1, KEY);
  expect_code(RA_WS_CLIENT, b, n, 1002);
  expect_code(RA_WS_SERVER, b, n, 0);
  /* control frames: > 125 bytes, fragmented */
  uint8_t big[126] = {0};
  for (unsigned op = 8; op <= 10; op++) {
    n = build(b, true, 0, op, big, 126, KEY);
    expect_code(RA_WS_SERVER, b, n, 1002);
    n = build(b, true, 0, op, big, 125, KEY);
    expect_code(RA_WS_SERVER, b, n, 0);
    n = build(b, false, 0, op, big, 1, KEY);
    expect_code(RA_WS_SERVER, b, n, 1002);
  }
  /* continuation without a start */
  n = build(b, true, 0, RA_WS_OP_CONT, "x", 1, KEY);
  expect_code(RA_WS_SERVER, b, n, 1002);
  /* a new data frame inside a fragmented message */
  n = build(b, false, 0, RA_WS_OP_TEXT, "a", 1, KEY);
  n += build(b + n, true, 0, RA_WS_OP_BINARY, "b", 1, KEY);
  expect_code(RA_WS_SERVER, b, n, 1002);
  n = build(b, false, 0, RA_WS_OP_BINARY, "a", 1, KEY);
  n += build(b + n, false, 0, RA_WS_OP_TEXT, "b", 1, KEY);
  expect_code(RA_WS_SERVER, b, n, 1002);
  /* ... but control frames in between are fine, and a message may follow */
  n = build(b, false, 0, RA_WS_OP_TEXT, "a", 1, KEY);
  n += build(b + n, true, 0, RA_WS_OP_PING, "p", 1, KEY);
  n += build(b + n, false, 0, RA_WS_OP_CONT, "b", 1, KEY);
  n += build(b + n, true, 0, RA_WS_OP_PONG, "", 0, KEY);
  n += build(b + n, true, 0, RA_WS_OP_CONT, "c", 1, KEY);
  n += build(b + n, true, 0, RA_WS_OP_BINARY, "d", 1, KEY);
  expect_code(RA_WS_SERVER, b, n, 0);
  /* after a complete fragmented message, a continuation is again an error */
  n = build(b, false, 0, RA_WS_OP_TEXT, "a", 1, KEY);
  n += build(b + n, true, 0, RA_WS_OP_CONT, "b", 1, KEY);
  n += build(b + n, true, 0, RA_WS_OP_CONT, "c", 1, KEY);
  expect_code(RA_WS_SERVER, b, n, 1002);
  /* over-long length encodings */
  memcpy(b, "\x82\x7e\x00\x7d", 4); /* 125 in the 16-bit form */
  expect_code(RA_WS_CLIENT, b, 4, 1002);
  memcpy(b, "\x82\x7e\x00\x7e", 4); /* 126: minimal */
  assert_int_equal(parse_one(RA_WS_CLIENT, b, 4, 1), 0);
  memcpy(b, "\x82\x7f\x00\x00\x00\x00\x00\x00\xff\xff", 10); /* 65535 in 64-bit */
  expect_code(RA_WS_CLIENT, b, 10, 1002);
  memcpy(b, "\x82\x7f\x00\x00\x00\x00\x00\x00\x00\x05", 10);
  expect_code(RA_WS_CLIENT, b, 10, 1002);
  memcpy(b, "\x82\x7f\x80\x00\x00\x00\x00\x00\x00\x00", 10); /* top bit */
  expect_code(RA_WS_CLIENT, b, 10, 1002);
  memcpy(b, "\x82\x7f\x00\x00\x00\x00\x00\x01\x00\x00", 10); /* 65536: fine */
  assert_int_equal(parse_one(RA_WS_CLIENT, b, 10, 1), 0);
  /* the rule fires on the first two bytes, before the rest arrives */
  ra_ws_parser p;
  ra_ws_parser_init(&p, RA_WS_SERVER);
  ra_ws_event ev;
  assert_int_equal(ra_ws_parse(&p, (const uint8_t *)"\x83", 1, &ev), 1);
  assert_int_equal(ev.type, RA_WS_EV_NONE);
  assert_int_equal(ra_ws_parse(&p, (const uint8_t *)"\x80", 1, &ev), -EPROTO);
  assert_int_equal(p.close_code, 1002);
  /* an extension may allow RSV1 */
  ra_ws_parser_init(&p, RA_WS_CLIENT);
  p.rsv_allowed = 4;
  n = build(b, true, 4, RA_WS_OP_TEXT, "x", 1, NULL);
  assert_true(ra_ws_parse(&p, b, n, &ev) > 0);
  assert_int_equal(ev.type, RA_WS_EV_HEADER);
  assert_int_equal(ev.frame.rsv, 4);
}

static void close_codes(void **st) {
  (void)st;
  static const unsigned ok[] = {1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014, 3000, 3999, 4000, 4999};
  static const unsigned bad[] = {0, 1, 999, 1004, 1005, 1006, 1015, 1016, 1100, 2000, 2999, 5000, 65535};
  for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) assert_true(ra_ws_close_code_valid(ok[i]));
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) assert_false(ra_ws_close_code_valid(bad[i]));
}

static void mask_ref(uint8_t *dst, const uint8_t *src, size_t len, const uint8_t key[4], uint64_t off) {
  for (size_t i = 0; i < len; i++) dst[i] = src[i] ^ key[(off + i) & 3];
}

/* Word-at-a-time masking against a byte loop, at every alignment of source
 * and destination, every key phase, in place and copying. */
static void masking_unaligned(void **st) {
  (void)st;
  uint8_t *src = malloc(400), *dst = malloc(400), *ref = malloc(400), *inplace = malloc(400);
  for (int i = 0; i < 400; i++) src[i] = (uint8_t)(i * 13 + 1);
  for (size_t sa = 0; sa < 9; sa++)
    for (size_t da = 0; da < 9; da++)
      for (size_t len = 0; len < 140; len += (len < 40 ? 1 : 17))
        for (uint64_t off = 0; off < 5; off++) {
          memset(dst, 0xee, 400);
          mask_ref(ref, src + sa, len, KEY, off);
          ra_ws_mask_copy(dst + da, src + sa, len, KEY, off);
          assert_memory_equal(dst + da, ref, len);
          assert_int_equal(dst[da + len], 0xee); /* nothing written past the end */
          if (da) assert_int_equal(dst[da - 1], 0xee);
          memcpy(inplace + da, src + sa, len);
          ra_ws_mask(inplace + da, len, KEY, off);
          assert_memory_equal(inplace + da, ref, len);
          /* masking twice restores */
          ra_ws_mask(inplace + da, len, KEY, off);
          assert_memory_equal(inplace + da, src + sa, len);
        }
  /* split at any point: phase carried by offset */
  mask_ref(ref, src, 300, KEY, 0);
  for (size_t cut = 0; cut <= 300; cut += 7) {
    ra_ws_mask_copy(dst, src, cut, KEY, 0);
    ra_ws_mask_copy(dst + cut, src + cut, 300 - cut, KEY, cut);
    assert_memory_equal(dst, ref, 300);
  }
  free(src), free(dst), free(ref), free(inplace);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(header_lengths), cmocka_unit_test(any_split), cmocka_unit_test(rules),
      cmocka_unit_test(close_codes), cmocka_unit_test(masking_unaligned),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
