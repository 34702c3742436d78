/* core/str.h: ra_str, raloop's one view type: a pointer and a length into
 * someone else's memory. */
#ifndef RA_CORE_STR_H
#define RA_CORE_STR_H

#include "raloop/core/api.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Never owns what it points at: the lifetime is the owner's and is stated
 * wherever a view is returned. Not NUL-terminated in general. The same
 * memory reads as characters (ptr) or as bytes (bytes). */
typedef struct ra_str {
  union {
    const char *ptr;
    const uint8_t *bytes;
  };
  size_t len;
} ra_str;

#define RA_STR(lit) ((ra_str){{(lit)}, sizeof(lit) - 1})
static inline ra_str ra_str_make(const char *p, size_t n) {
  ra_str s = {{p}, n};
  return s;
}
static inline ra_str ra_bytes_make(const uint8_t *p, size_t n) {
  ra_str s;
  s.bytes = p;
  s.len = n;
  return s;
}
RA_API ra_str ra_str_cstr(const char *s); /* s may be NULL: empty view */
RA_API bool ra_str_eq(ra_str a, ra_str b);
RA_API bool ra_str_eq_nocase(ra_str a, ra_str b);
RA_API bool ra_str_eq_cstr(ra_str a, const char *b);

#endif
