/* ws/utf8.h: an incremental, strict UTF-8 validator.
 *
 * Strict per Unicode Table 3-7: rejects over-long encodings, UTF-16
 * surrogates (U+D800..U+DFFF), code points above U+10FFFF and stray or
 * missing continuation bytes. The state survives across calls, so a text
 * message can be checked fragment by fragment (a code point may be split
 * anywhere) and an error is reported at the first byte that cannot start
 * or continue a valid sequence.
 */
#ifndef RA_WS_UTF8_H
#define RA_WS_UTF8_H

#include "raloop/core/api.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct ra_utf8 {
  uint8_t need; /* continuation bytes still expected */
  uint8_t lo;   /* allowed range of the next continuation byte */
  uint8_t hi;
  bool bad;     /* sticky */
} ra_utf8;

static inline void ra_utf8_init(ra_utf8 *u) { u->need = 0; u->lo = 0x80; u->hi = 0xbf; u->bad = false; }
/* Feeds bytes. Returns false once the input seen so far cannot be valid. */
RA_API bool ra_utf8_feed(ra_utf8 *u, const uint8_t *s, size_t len);
/* True when everything fed is valid and no sequence is left open. */
static inline bool ra_utf8_complete(const ra_utf8 *u) { return !u->bad && u->need == 0; }
/* Whole-buffer convenience. */
RA_API bool ra_utf8_valid(const uint8_t *s, size_t len);

#endif
