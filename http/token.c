/* http/token.c: see token.h. */
#include "raloop/http/token.h"

bool ra_http_token_valid(ra_str s) {
  if (!s.len) return false;
  for (size_t i = 0; i < s.len; i++)
    if (!ra_http_tchar((unsigned char)s.ptr[i])) return false;
  return true;
}

bool ra_http_field_value_valid(ra_str s) {
  for (size_t i = 0; i < s.len; i++) {
    unsigned char c = (unsigned char)s.ptr[i];
    if (c == '\0' || c == '\r' || c == '\n') return false;
  }
  return true;
}
