/* ws/utf8.c: incremental strict UTF-8 validation. */
#include "raloop/ws/utf8.h"

#include <string.h>

bool ra_utf8_feed(ra_utf8 *u, const uint8_t *s, size_t len) {
  if (u->bad) return false;
  size_t i = 0;
  unsigned need = u->need, lo = u->lo, hi = u->hi;
  while (i < len) {
    if (need == 0) {
      /* Text is mostly ASCII: skip 8 bytes at a time while no high bit. */
      while (len - i >= 8) {
        uint64_t w;
        memcpy(&w, s + i, 8);
        if (w & 0x8080808080808080ull) break;
        i += 8;
      }
      if (i >= len) break;
      unsigned c = s[i++];
      if (c < 0x80) continue;
      lo = 0x80, hi = 0xbf;
      if (c >= 0xc2 && c <= 0xdf) {
        need = 1;
      } else if (c >= 0xe0 && c <= 0xef) {
        need = 2;
        if (c == 0xe0) lo = 0xa0;       /* over-long 3-byte form */
        else if (c == 0xed) hi = 0x9f;  /* surrogates */
      } else if (c >= 0xf0 && c <= 0xf4) {
        need = 3;
        if (c == 0xf0) lo = 0x90;       /* over-long 4-byte form */
        else if (c == 0xf4) hi = 0x8f;  /* above U+10FFFF */
      } else {
        goto bad; /* 0x80..0xc1 (continuation or over-long lead), 0xf5.. */
      }
    } else {
      unsigned c = s[i++];
      if (c < lo || c > hi) goto bad;
      need--;
      lo = 0x80, hi = 0xbf;
    }
  }
  u->need = (uint8_t)need;
  u->lo = (uint8_t)lo;
  u->hi = (uint8_t)hi;
  return true;
bad:
  u->bad = true;
  return false;
}

bool ra_utf8_valid(const uint8_t *s, size_t len) {
  ra_utf8 u;
  ra_utf8_init(&u);
  return ra_utf8_feed(&u, s, len) && ra_utf8_complete(&u);
}
