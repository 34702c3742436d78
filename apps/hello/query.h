/* apps/hello/query.h: ra-hello's one parser of numeric query parameters. */
#ifndef RA_HELLO_QUERY_H
#define RA_HELLO_QUERY_H

#include <stdbool.h>
#include <stdint.h>

#include "raloop/http/request.h"

/* The decimal query parameter `name` in [0, hi] (at most 15 digits, so no
 * overflow), into *out; false when absent, empty, not digits or above hi. */
static inline bool hello_query_num(ra_req *req, const char *name, uint64_t hi, uint64_t *out) {
  ra_str v;
  if (!ra_req_query_get(req, name, &v) || v.len == 0 || v.len > 15) return false;
  uint64_t n = 0;
  for (size_t i = 0; i < v.len; i++) {
    if (v.ptr[i] < '0' || v.ptr[i] > '9') return false;
    n = n * 10 + (uint64_t)(v.ptr[i] - '0');
  }
  if (n > hi) return false;
  *out = n;
  return true;
}

#endif
