/* tests/fuzz/ws_fuzz.c: the frame parser and message assembler on arbitrary
 * bytes, in both roles, fed whole and in arbitrary splits. Checks that
 * every split yields the same messages and the same error (close code) as
 * feeding everything at once, and the parser's own invariants. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "raloop/ws/frame.h"
#include "raloop/ws/message.h"
#include "raloop/ws/utf8.h"

#define MAX_MSGS 64

typedef struct {
  int n;
  uint8_t op[MAX_MSGS];
  size_t len[MAX_MSGS];
  uint64_t hash[MAX_MSGS];
  uint16_t code[MAX_MSGS];
  long err;
  uint16_t close_code;
} trace;

static uint64_t fnv(const uint8_t *p, size_t n) {
  uint64_t h = 1469598103934665603ull;
  for (size_t i = 0; i < n; i++) h = (h ^ p[i]) * 1099511628211ull;
  return h;
}

/* splits: NULL = whole; else chunk sizes taken cyclically from it. */
static void assemble(ra_ws_role role, uint64_t max, const uint8_t *d, size_t len,
                     const uint8_t *splits, size_t nsplits, trace *t) {
  memset(t, 0, sizeof *t);
  ra_ws_assembler a;
  ra_ws_assembler_init(&a, role, max);
  size_t pos = 0, si = 0;
  while (pos < len && !t->err) {
    size_t chunk = len - pos;
    if (nsplits) {
      size_t c = (size_t)splits[si++ % nsplits] + 1;
      if (c < chunk) chunk = c;
    }
    /* copy the chunk so any read past it is caught by ASan */
    uint8_t *buf = malloc(chunk);
    memcpy(buf, d + pos, chunk);
    size_t off = 0;
    while (off < chunk) {
      ra_ws_msg m;
      long n = ra_ws_assembler_feed(&a, buf + off, chunk - off, &m);
      if (n < 0) {
        t->err = n;
        t->close_code = a.close_code;
        if (!a.close_code || !a.error) abort();
        break;
      }
      if ((size_t)n > chunk - off) abort();
      off += (size_t)n;
      if (!m.opcode) {
        if (off != chunk) abort();
        break;
      }
      if (m.opcode == RA_WS_OP_TEXT && !ra_utf8_valid(m.data, m.len)) abort();
      if (ra_ws_op_is_control(m.opcode) && m.len > 125) abort();
      if (!ra_ws_op_is_control(m.opcode) && m.len > a.max_message) abort();
      if (t->n < MAX_MSGS) {
        t->op[t->n] = m.opcode;
        t->len[t->n] = m.len;
        t->hash[t->n] = fnv(m.data, m.len);
        t->code[t->n] = m.close_code;
        t->n++;
      }
    }
    free(buf);
    pos += chunk;
  }
  ra_ws_assembler_free(&a);
}

/* The raw parser: payload views stay inside the input and add up. */
static void parse_raw(ra_ws_role role, const uint8_t *d, size_t len, size_t step) {
  ra_ws_parser p;
  ra_ws_parser_init(&p, role);
  size_t pos = 0;
  uint64_t got = 0;
  while (pos < len) {
    size_t chunk = len - pos < step ? len - pos : step;
    const uint8_t *c = d + pos;
    size_t left = chunk;
    for (;;) {
      ra_ws_event ev;
      long n = ra_ws_parse(&p, c, left, &ev);
      if (n < 0) {
        if (p.close_code != RA_WS_CLOSE_PROTOCOL) abort();
        return;
      }
      if ((size_t)n > left) abort();
      if (ev.type == RA_WS_EV_HEADER) got = 0;
      if (ev.type == RA_WS_EV_PAYLOAD) {
        if (ev.data != c || ev.len != (size_t)n || ev.offset != got) abort();
        got += ev.len;
        if (got > ev.frame.len) abort();
        if (ev.frame_end != (got == ev.frame.len)) abort();
      }
      c += n;
      left -= (size_t)n;
      if (ev.type == RA_WS_EV_NONE) {
        if (left) abort();
        break;
      }
      if (ev.type == RA_WS_EV_HEADER) {
        if (ev.frame.masked != (role == RA_WS_SERVER)) abort();
        if (ra_ws_op_is_control(ev.frame.opcode) && (ev.frame.len > 125 || !ev.frame.fin)) abort();
        /* re-serializing gives the same header */
        uint8_t h[RA_WS_MAX_HEADER];
        size_t hl = ra_ws_frame_header(h, ev.frame.fin, ev.frame.rsv, ev.frame.opcode, ev.frame.len,
                                       ev.frame.masked ? ev.frame.key : NULL);
        if (hl > (size_t)(c - d)) abort();
        if (memcmp(h, c - hl, hl) != 0) abort();
      }
    }
    pos += chunk;
  }
}

static int same(const trace *a, const trace *b) {
  if (a->n != b->n || a->err != b->err || a->close_code != b->close_code) return 0;
  for (int i = 0; i < a->n; i++)
    if (a->op[i] != b->op[i] || a->len[i] != b->len[i] || a->hash[i] != b->hash[i] ||
        a->code[i] != b->code[i])
      return 0;
  return 1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 2) return 0;
  /* byte 0: role and limit; byte 1: how many split sizes follow */
  ra_ws_role role = (data[0] & 1) ? RA_WS_CLIENT : RA_WS_SERVER;
  uint64_t max = (data[0] & 2) ? 1000 : 0;
  size_t nsplits = data[1] % 16;
  if (size < 2 + nsplits) return 0;
  const uint8_t *splits = data + 2;
  const uint8_t *d = data + 2 + nsplits;
  size_t len = size - 2 - nsplits;

  trace whole, split, bytewise;
  assemble(role, max, d, len, NULL, 0, &whole);
  assemble(role, max, d, len, splits, nsplits, &split);
  static const uint8_t one = 0;
  assemble(role, max, d, len, &one, 1, &bytewise);
  if (!same(&whole, &split) || !same(&whole, &bytewise)) abort();

  parse_raw(role, d, len, len ? len : 1);
  parse_raw(role, d, len, 1);
  parse_raw(role, d, len, 3);
  return 0;
}
