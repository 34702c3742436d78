/* tests/fuzz/relay_fuzz.c: the relay's message parser (ws/relay_internal.h)
 * on arbitrary bytes. Checks: an accepted message has the exact field
 * lengths, and its base64url fields re-encode to the same text; base64url
 * decode/encode round-trips. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "raloop/ws/relay_internal.h"

static void same(ra_str s, const uint8_t *bin, size_t n) {
  char buf[64];
  if (n > 40) abort();
  size_t l = ra_b64url_encode(bin, n, buf);
  if (l != s.len || memcmp(buf, s.ptr, l) != 0) abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  size_t max_box = size ? data[0] * 8u : 0;
  ra_relay_msg m;
  const char *why = ra_relay_parse(data, size, max_box, &m);
  if (!why) {
    if (m.type != RA_RELAY_T_CHALLENGE_RESPONSE && m.type != RA_RELAY_T_MESSAGE) abort();
    if (m.key_s.len != 43 || m.nonce_s.len != 32) abort();
    same(m.key_s, m.key, sizeof m.key);
    same(m.nonce_s, m.nonce, sizeof m.nonce);
    if (m.box_len < 16 || m.box_len > max_box + 16) abort();
    if (m.type == RA_RELAY_T_CHALLENGE_RESPONSE) {
      if (m.box_len != 40) abort();
      same(m.box_s, m.box, 40);
    } else {
      if (m.box_s.len != (m.box_len * 4 + 2) / 3) abort();
    }
  } else if (strcmp(why, "bad json") && strcmp(why, "unknown type") && strcmp(why, "bad field") &&
             strcmp(why, "too large")) {
    abort();
  }
  ra_relay_msg_clear(&m);
  /* the decoder alone */
  uint8_t *out = malloc(size + 1);
  long n = ra_b64url_decode((const char *)data, size, out, size);
  if (n >= 0) {
    char *enc = malloc(size + 4);
    size_t l = ra_b64url_encode(out, (size_t)n, enc);
    if (l != size || memcmp(enc, data, size) != 0) abort();
    free(enc);
  }
  free(out);
  return 0;
}
