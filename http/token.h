/* http/token.h: RFC 9110 syntax checks shared by everything that puts a
 * method, header name or header value on the wire or into a handler: the
 * response writer, the router and the tunnel. */
#ifndef RA_HTTP_TOKEN_H
#define RA_HTTP_TOKEN_H

#include "raloop/core/api.h"

#include <stdbool.h>

#include "raloop/core/buf.h"

/* One tchar: "!#$%&'*+-.^_`|~", a digit or a letter. */
static inline bool ra_http_tchar(unsigned char c) {
  if ((c >= '0' && c <= '9') || ((c | 0x20) >= 'a' && (c | 0x20) <= 'z')) return true;
  for (const char *p = "!#$%&'*+-.^_`|~"; *p; p++)
    if (c == (unsigned char)*p) return true;
  return false;
}

/* A token (method, header name): one or more tchar
 * ("!#$%&'*+-.^_`|~", digits, letters). */
RA_API bool ra_http_token_valid(ra_str s);
/* A field value: no NUL, CR or LF (they would inject headers or a body).
 * Other bytes, obs-text included, pass. May be empty. */
RA_API bool ra_http_field_value_valid(ra_str s);

#endif
