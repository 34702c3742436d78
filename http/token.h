/* http/token.h: RFC 9110 syntax checks shared by everything that puts a
 * method, header name or header value on the wire or into a handler: the
 * response writer, the router and the tunnel. */
#ifndef RA_HTTP_TOKEN_H
#define RA_HTTP_TOKEN_H

#include "raloop/core/api.h"

#include <stdbool.h>

#include "raloop/core/buf.h"

/* One tchar: "!#$%&'*+-.^_`|~", a digit or a letter. The set as two
 * 64-bit masks (bytes 0-63, 64-127; none above): one shift per byte, for
 * every header name the response writer, the router and the tunnel check
 * (issue 18), and the one definition the token checks share. */
#define RA_HTTP_TCHAR_LO 0x03ff6cfa00000000ull /* !#$%&'*+-. 0-9 */
#define RA_HTTP_TCHAR_HI 0x57ffffffc7fffffeull /* A-Z ^_` a-z | ~ */
static inline bool ra_http_tchar(unsigned char c) {
  if (c < 64) return (RA_HTTP_TCHAR_LO >> c) & 1;
  return c < 128 && ((RA_HTTP_TCHAR_HI >> (c - 64)) & 1);
}

/* A token (method, header name): one or more tchar
 * ("!#$%&'*+-.^_`|~", digits, letters). */
RA_API bool ra_http_token_valid(ra_str s);
/* A field value: no NUL, CR or LF (they would inject headers or a body).
 * Other bytes, obs-text included, pass. May be empty. */
RA_API bool ra_http_field_value_valid(ra_str s);

#endif
