/* attest/quote/verdict_internal.h: how the checks of the verifier record
 * their outcome in a ra_verdict. Private to attest/quote. */
#ifndef RA_ATTEST_VERDICT_INTERNAL_H
#define RA_ATTEST_VERDICT_INTERNAL_H

#include "raloop/attest/quote/verify.h"

/* Marks check c failed; the verdict keeps the code and message of the first
 * failure only, so later checks may fail freely (vd->checks shows them). */
void ra_verdict_fail(ra_verdict *vd, ra_check c, int code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static inline void ra_verdict_pass(ra_verdict *vd, ra_check c) { vd->checks[c] = RA_CHECK_PASS; }
/* Narrows vd's validity window (valid_from, valid_until) to [from, to): a
 * check used something valid only then. A time that could not be read (0)
 * closes the window. */
static inline void ra_verdict_window(ra_verdict *vd, time_t from, time_t to) {
  if (!from || !to) {
    vd->valid_until = 0;
    return;
  }
  if (from > vd->valid_from) vd->valid_from = from;
  if (to < vd->valid_until) vd->valid_until = to;
}
static inline void ra_verdict_skip(ra_verdict *vd, ra_check c) { vd->checks[c] = RA_CHECK_SKIPPED; }

#endif
