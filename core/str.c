/* core/str.c: see str.h. */
#include "raloop/core/str.h"

#include <string.h>
#include <strings.h>

ra_str ra_str_cstr(const char *s) { return ra_str_make(s ? s : "", s ? strlen(s) : 0); }

bool ra_str_eq(ra_str a, ra_str b) {
  return a.len == b.len && (a.len == 0 || memcmp(a.ptr, b.ptr, a.len) == 0);
}

bool ra_str_eq_nocase(ra_str a, ra_str b) {
  return a.len == b.len && (a.len == 0 || strncasecmp(a.ptr, b.ptr, a.len) == 0);
}

bool ra_str_eq_cstr(ra_str a, const char *b) { return ra_str_eq(a, ra_str_cstr(b)); }
