/* attest/hexb64.h: hex and base64 decoding, and detection of whether a blob
 * (a quote read from a file or a message) is binary, hex or base64. */
#ifndef RA_ATTEST_HEXB64_H
#define RA_ATTEST_HEXB64_H

#include "raloop/core/api.h"

#include <stddef.h>
#include <stdint.h>

typedef enum { RA_ENC_BINARY, RA_ENC_HEX, RA_ENC_BASE64 } ra_encoding;

/* Decodes exactly 2*outlen hex digits (either case) into out.
 * Returns 0, or -EINVAL on a bad digit or a length other than 2*outlen. */
RA_API int ra_hex_decode_exact(const char *hex, size_t hexlen, uint8_t *out, size_t outlen);

/* Writes 2*len lowercase hex digits and a NUL to out (size >= 2*len+1). */
RA_API void ra_hex_encode(const uint8_t *in, size_t len, char *out);

/* Decodes base64 (standard or URL-safe alphabet, padding optional, ASCII
 * whitespace ignored) into out, which must hold len*3/4 bytes. Returns 0
 * and *outlen, or -EINVAL on any other character. */
RA_API int ra_base64_decode(const uint8_t *buf, size_t len, uint8_t *out, size_t *outlen);

/* Guesses the encoding of buf: hex when every byte (ignoring ASCII
 * whitespace and an optional leading "0x") is a hex digit and the count is
 * even; base64 (standard or URL-safe alphabet, padding optional) when every
 * byte is of that alphabet; binary otherwise. */
RA_API ra_encoding ra_detect_encoding(const uint8_t *buf, size_t len);

/* Decodes buf in the detected encoding into a malloc'd buffer (*out, *outlen;
 * the caller frees *out). Binary input is copied. Returns 0, -EINVAL on
 * malformed text, -ENOMEM. enc (may be NULL) receives the encoding. */
RA_API int ra_decode_auto(const uint8_t *buf, size_t len, uint8_t **out, size_t *outlen, ra_encoding *enc);

#endif
