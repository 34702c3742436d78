/* http/token.c: see token.h. */
#include "raloop/http/token.h"

/* ra_http_tchar as a table: one load per byte instead of a walk of the
 * punctuation list (every response header name and tunnelled request
 * header name passes here: issue 18). */
#define TC(c)                                                                                      \
  (((c) >= '0' && (c) <= '9') || (((c) | 0x20) >= 'a' && ((c) | 0x20) <= 'z') || (c) == '!' ||          \
      (c) == '#' || (c) == '$' || (c) == '%' || (c) == '&' || (c) == '\'' || (c) == '*' ||             \
      (c) == '+' || (c) == '-' || (c) == '.' || (c) == '^' || (c) == '_' || (c) == '`' ||              \
      (c) == '|' || (c) == '~')
#define TC4(b) TC(b), TC((b) + 1), TC((b) + 2), TC((b) + 3)
#define TC16(b) TC4(b), TC4((b) + 4), TC4((b) + 8), TC4((b) + 12)
#define TC64(b) TC16(b), TC16((b) + 16), TC16((b) + 32), TC16((b) + 48)
static const bool tchar_table[256] = {TC64(0), TC64(64), TC64(128), TC64(192)};
#undef TC64
#undef TC16
#undef TC4
#undef TC

bool ra_http_token_valid(ra_str s) {
  if (!s.len) return false;
  for (size_t i = 0; i < s.len; i++)
    if (!tchar_table[(unsigned char)s.ptr[i]]) return false;
  return true;
}

bool ra_http_field_value_valid(ra_str s) {
  for (size_t i = 0; i < s.len; i++) {
    unsigned char c = (unsigned char)s.ptr[i];
    if (c == '\0' || c == '\r' || c == '\n') return false;
  }
  return true;
}
