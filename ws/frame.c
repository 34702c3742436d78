/* ws/frame.c: RFC 6455 frame parser and serializer (no I/O). */
#include "raloop/ws/frame.h"

#include <errno.h>
#include <string.h>

bool ra_ws_close_code_valid(unsigned code) {
  if (code >= 3000 && code <= 4999) return true;
  switch (code) {
  /* IANA-registered codes an endpoint may send (1004-1006 and 1015 may not) */
  case 1000: case 1001: case 1002: case 1003:
  case 1007: case 1008: case 1009: case 1010: case 1011:
  case 1012: case 1013: case 1014:
    return true;
  default:
    return false;
  }
}

void ra_ws_parser_init(ra_ws_parser *p, ra_ws_role role) {
  memset(p, 0, sizeof *p);
  p->role = (uint8_t)role;
}

static long fail(ra_ws_parser *p, uint16_t code, const char *why) {
  p->close_code = code;
  p->error = why;
  return -EPROTO;
}

/* Checks what the first two bytes decide, as soon as they are here: a bad
 * peer is rejected before we wait for (or buffer) anything else. */
static long check_start(ra_ws_parser *p) {
  uint8_t b0 = p->hdr[0], b1 = p->hdr[1];
  unsigned op = b0 & 0x0f, rsv = (b0 >> 4) & 7, len7 = b1 & 0x7f;
  bool fin = b0 & 0x80, masked = b1 & 0x80;
  if (rsv & ~p->rsv_allowed) return fail(p, RA_WS_CLOSE_PROTOCOL, "RSV bits set without an extension");
  switch (op) {
  case RA_WS_OP_CONT: case RA_WS_OP_TEXT: case RA_WS_OP_BINARY:
  case RA_WS_OP_CLOSE: case RA_WS_OP_PING: case RA_WS_OP_PONG:
    break;
  default:
    return fail(p, RA_WS_CLOSE_PROTOCOL, "unknown opcode");
  }
  if (p->role == RA_WS_SERVER && !masked) return fail(p, RA_WS_CLOSE_PROTOCOL, "client frame not masked");
  if (p->role == RA_WS_CLIENT && masked) return fail(p, RA_WS_CLOSE_PROTOCOL, "server frame masked");
  if (ra_ws_op_is_control(op)) {
    if (!fin) return fail(p, RA_WS_CLOSE_PROTOCOL, "fragmented control frame");
    if (len7 > RA_WS_MAX_CONTROL) return fail(p, RA_WS_CLOSE_PROTOCOL, "control frame longer than 125 bytes");
  } else if (op == RA_WS_OP_CONT) {
    if (!p->in_message) return fail(p, RA_WS_CLOSE_PROTOCOL, "continuation without a started message");
  } else if (p->in_message) {
    return fail(p, RA_WS_CLOSE_PROTOCOL, "new data frame inside a fragmented message");
  }
  return 0;
}

static size_t header_size(const uint8_t *hdr) {
  unsigned len7 = hdr[1] & 0x7f;
  size_t n = 2 + (len7 == 126 ? 2 : len7 == 127 ? 8 : 0);
  return n + ((hdr[1] & 0x80) ? 4 : 0);
}

static long finish_header(ra_ws_parser *p) {
  const uint8_t *h = p->hdr;
  ra_ws_frame *f = &p->frame;
  unsigned len7 = h[1] & 0x7f;
  size_t pos = 2;
  f->fin = h[0] & 0x80;
  f->rsv = (h[0] >> 4) & 7;
  f->opcode = h[0] & 0x0f;
  f->masked = h[1] & 0x80;
  if (len7 == 126) {
    f->len = ((uint64_t)h[2] << 8) | h[3];
    pos = 4;
    if (f->len < 126) return fail(p, RA_WS_CLOSE_PROTOCOL, "non-minimal 16-bit length");
  } else if (len7 == 127) {
    uint64_t v = 0;
    for (int i = 0; i < 8; i++) v = (v << 8) | h[2 + i];
    pos = 10;
    if (v >> 63) return fail(p, RA_WS_CLOSE_PROTOCOL, "64-bit length with the top bit set");
    if (v <= 0xffff) return fail(p, RA_WS_CLOSE_PROTOCOL, "non-minimal 64-bit length");
    f->len = v;
  } else {
    f->len = len7;
  }
  if (f->masked) memcpy(f->key, h + pos, 4);
  else memset(f->key, 0, 4);
  if (!ra_ws_op_is_control(f->opcode)) p->in_message = !f->fin;
  p->done = 0;
  p->in_payload = f->len > 0;
  p->hdr_len = 0;
  return 0;
}

long ra_ws_parse(ra_ws_parser *p, const uint8_t *data, size_t len, ra_ws_event *ev) {
  ev->type = RA_WS_EV_NONE;
  ev->data = NULL;
  ev->len = 0;
  ev->offset = 0;
  ev->frame_end = false;
  if (p->close_code) return -EPROTO;
  if (p->in_payload) {
    uint64_t left = p->frame.len - p->done;
    size_t n = len < left ? len : (size_t)left;
    if (n == 0) return 0;
    ev->type = RA_WS_EV_PAYLOAD;
    ev->frame = p->frame;
    ev->data = data;
    ev->len = n;
    ev->offset = p->done;
    p->done += n;
    if (p->done == p->frame.len) {
      ev->frame_end = true;
      p->in_payload = false;
    }
    return (long)n;
  }
  size_t used = 0;
  while (used < len) {
    size_t want = p->hdr_len < 2 ? 2 : header_size(p->hdr);
    if (p->hdr_len >= want) break;
    size_t n = want - p->hdr_len;
    if (n > len - used) n = len - used;
    memcpy(p->hdr + p->hdr_len, data + used, n);
    p->hdr_len += (uint8_t)n;
    used += n;
    if (p->hdr_len == 2) {
      long r = check_start(p);
      if (r < 0) return r;
    }
  }
  if (p->hdr_len < 2 || p->hdr_len < header_size(p->hdr)) return (long)used;
  long r = finish_header(p);
  if (r < 0) return r;
  ev->type = RA_WS_EV_HEADER;
  ev->frame = p->frame;
  ev->frame_end = p->frame.len == 0;
  return (long)used;
}

size_t ra_ws_frame_header(uint8_t *out, bool fin, unsigned rsv, unsigned opcode,
                          uint64_t len, const uint8_t *key) {
  size_t n = 2;
  out[0] = (uint8_t)((fin ? 0x80 : 0) | ((rsv & 7) << 4) | (opcode & 0x0f));
  uint8_t m = key ? 0x80 : 0;
  if (len < 126) {
    out[1] = (uint8_t)(m | len);
  } else if (len <= 0xffff) {
    out[1] = m | 126;
    out[2] = (uint8_t)(len >> 8);
    out[3] = (uint8_t)len;
    n = 4;
  } else {
    out[1] = m | 127;
    for (int i = 0; i < 8; i++) out[2 + i] = (uint8_t)(len >> (56 - 8 * i));
    n = 10;
  }
  if (key) {
    memcpy(out + n, key, 4);
    n += 4;
  }
  return n;
}

void ra_ws_mask_copy(uint8_t *dst, const uint8_t *src, size_t len,
                     const uint8_t key[4], uint64_t offset) {
  size_t i = 0;
  unsigned phase = (unsigned)(offset & 3);
  /* Byte-wise until dst is 8-byte aligned, so the word stores below hit
   * whole cache lines; loads and stores go through memcpy, which is both
   * alignment-safe and a single instruction on every target we build for. */
  while (i < len && ((uintptr_t)(dst + i) & 7)) {
    dst[i] = src[i] ^ key[phase];
    phase = (phase + 1) & 3;
    i++;
  }
  if (len - i >= 8) {
    uint8_t kb[8];
    for (int j = 0; j < 8; j++) kb[j] = key[(phase + j) & 3];
    uint64_t k;
    memcpy(&k, kb, 8);
    /* 8 is a multiple of 4: the phase is the same after each word. */
    for (; len - i >= 32; i += 32) {
      uint64_t w[4];
      memcpy(w, src + i, 32);
      w[0] ^= k; w[1] ^= k; w[2] ^= k; w[3] ^= k;
      memcpy(dst + i, w, 32);
    }
    for (; len - i >= 8; i += 8) {
      uint64_t w;
      memcpy(&w, src + i, 8);
      w ^= k;
      memcpy(dst + i, &w, 8);
    }
  }
  for (; i < len; i++) {
    dst[i] = src[i] ^ key[phase];
    phase = (phase + 1) & 3;
  }
}

void ra_ws_mask(uint8_t *buf, size_t len, const uint8_t key[4], uint64_t offset) {
  ra_ws_mask_copy(buf, buf, len, key, offset);
}
