/* attest/hexb64.c: hex/base64 decoding and encoding detection. */
#include "raloop/attest/quote/hexb64.h"

#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

/* Digit values by byte, -1 for anything else: one load per character
 * (collateral carries kilobytes of hex CRLs and base64 certificates).
 * HEX: 0-9 a-f A-F. B64: A-Z a-z 0-9, + and - (62), / and _ (63). */
static const int8_t HEX[256] = {
    -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
    -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
    -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
    0, 1, 2, 3, 4, 5, 6, 7, 8, 9, -1, -1, -1, -1, -1, -1,
    -1, 10, 11, 12, 13, 14, 15, -1, -1, -1, -1, -1, -1, -1, -1, -1,
    -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
    -1, 10, 11, 12, 13, 14, 15, -1, -1, -1, -1, -1, -1, -1, -1, -1,
    -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
    -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
    -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
    -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
    -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
    -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
    -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
    -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
    -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
};

static const int8_t B64[256] = {
    -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
    -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
    -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, 62, -1, 62, -1, 63,
    52, 53, 54, 55, 56, 57, 58, 59, 60, 61, -1, -1, -1, -1, -1, -1,
    -1, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14,
    15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25, -1, -1, -1, -1, 63,
    -1, 26, 27, 28, 29, 30, 31, 32, 33, 34, 35, 36, 37, 38, 39, 40,
    41, 42, 43, 44, 45, 46, 47, 48, 49, 50, 51, -1, -1, -1, -1, -1,
    -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
    -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
    -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
    -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
    -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
    -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
    -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
    -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
};

static int hexval(int c) { return HEX[(unsigned char)c]; }
static int b64val(int c) { return B64[(unsigned char)c]; }

static bool is_ws(int c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n'; }

int ra_hex_decode_exact(const char *hex, size_t hexlen, uint8_t *out, size_t outlen) {
  if (hexlen != 2 * outlen) return -EINVAL;
  for (size_t i = 0; i < outlen; i++) {
    int hi = hexval((unsigned char)hex[2 * i]), lo = hexval((unsigned char)hex[2 * i + 1]);
    if (hi < 0 || lo < 0) return -EINVAL;
    out[i] = (uint8_t)(hi << 4 | lo);
  }
  return 0;
}

void ra_hex_encode(const uint8_t *in, size_t len, char *out) {
  static const char d[] = "0123456789abcdef";
  for (size_t i = 0; i < len; i++) {
    out[2 * i] = d[in[i] >> 4];
    out[2 * i + 1] = d[in[i] & 15];
  }
  out[2 * len] = '\0';
}

/* Skips a leading "0x" (hex only) so "0xabcd" counts as hex. */
static size_t hex_prefix(const uint8_t *buf, size_t len) {
  size_t i = 0;
  while (i < len && is_ws(buf[i])) i++;
  if (len - i >= 2 && buf[i] == '0' && (buf[i + 1] == 'x' || buf[i + 1] == 'X')) return i + 2;
  return 0;
}

ra_encoding ra_detect_encoding(const uint8_t *buf, size_t len) {
  size_t start = hex_prefix(buf, len), digits = 0;
  bool hex = true, b64 = true;
  size_t b64n = 0, pad = 0;
  if (len == 0) return RA_ENC_BINARY;
  for (size_t i = 0; i < len; i++) {
    int c = buf[i];
    if (is_ws(c)) continue;
    if (i >= start) {
      if (hexval(c) >= 0)
        digits++;
      else
        hex = false;
    }
    if (c == '=') {
      pad++;
    } else if (b64val(c) >= 0 && pad == 0) {
      b64n++;
    } else {
      b64 = false;
    }
    if (!hex && !b64) return RA_ENC_BINARY;
  }
  if (hex && digits > 0 && digits % 2 == 0) return RA_ENC_HEX;
  if (b64 && b64n > 0 && pad <= 2 && b64n % 4 != 1) return RA_ENC_BASE64;
  return RA_ENC_BINARY;
}

static int hex_decode_ws(const uint8_t *buf, size_t len, uint8_t *out, size_t *outlen) {
  size_t n = 0;
  int hi = -1;
  for (size_t i = hex_prefix(buf, len); i < len; i++) {
    if (is_ws(buf[i])) continue;
    int v = hexval(buf[i]);
    if (v < 0) return -EINVAL;
    if (hi < 0) {
      hi = v;
    } else {
      out[n++] = (uint8_t)(hi << 4 | v);
      hi = -1;
    }
  }
  if (hi >= 0) return -EINVAL;
  *outlen = n;
  return 0;
}

int ra_base64_decode(const uint8_t *buf, size_t len, uint8_t *out, size_t *outlen) {
  size_t n = 0, k = 0;
  uint32_t acc = 0;
  bool padded = false;
  for (size_t i = 0; i < len; i++) {
    int c = buf[i];
    if (is_ws(c)) continue;
    if (c == '=') {
      padded = true;
      continue;
    }
    int v = b64val(c);
    if (v < 0 || padded) return -EINVAL;
    acc = acc << 6 | (uint32_t)v;
    if (++k == 4) {
      out[n++] = (uint8_t)(acc >> 16);
      out[n++] = (uint8_t)(acc >> 8);
      out[n++] = (uint8_t)acc;
      acc = 0;
      k = 0;
    }
  }
  if (k == 1) return -EINVAL;
  if (k == 2) out[n++] = (uint8_t)(acc >> 4);
  if (k == 3) {
    out[n++] = (uint8_t)(acc >> 10);
    out[n++] = (uint8_t)(acc >> 2);
  }
  *outlen = n;
  return 0;
}

int ra_decode_auto(const uint8_t *buf, size_t len, uint8_t **out, size_t *outlen,
                   ra_encoding *encp) {
  ra_encoding enc = ra_detect_encoding(buf, len);
  uint8_t *p = malloc(len ? len : 1);
  int rc = 0;
  if (!p) return -ENOMEM;
  if (enc == RA_ENC_HEX) {
    rc = hex_decode_ws(buf, len, p, outlen);
  } else if (enc == RA_ENC_BASE64) {
    rc = ra_base64_decode(buf, len, p, outlen);
  } else {
    if (len) memcpy(p, buf, len);
    *outlen = len;
  }
  if (rc < 0) {
    free(p);
    return rc;
  }
  if (encp) *encp = enc;
  *out = p;
  return 0;
}
