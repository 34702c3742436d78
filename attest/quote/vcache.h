/* attest/quote/vcache.h: a verified-quote cache. A client that meets the
 * same server quote again (every new tunnel to the same TEE carries the
 * same quote, only the session key differs) verifies it once: the next
 * verifications of those exact bytes, with the same verifier configuration,
 * collateral and policy, reuse the verdict while the time is inside the
 * window every certificate, CRL, TCB info and QE identity involved was
 * valid in. Why this is safe, and what is re-checked on every hit, is in
 * docs/VCACHE.md.
 *
 * Usage:
 *   ra_vcache *vc;  ra_vcache_new(256, &vc);
 *   rc = ra_vcache_verify(vc, verifier, quote, len, &opts, &pol, &vd);
 *   // same contract as ra_verify_quote
 *   ra_vcache_free(vc);
 *
 * Opt-in, owned by the caller, bounded (least recently used entry evicted),
 * no global state; not thread-safe (one per thread or loop, like the
 * verifier). Only successful verdicts are kept. */
#ifndef RA_ATTEST_VCACHE_H
#define RA_ATTEST_VCACHE_H

#include "raloop/core/api.h"

#include <stddef.h>
#include <stdint.h>

#include "raloop/attest/quote/verify.h"

typedef struct ra_vcache ra_vcache;

/* A cache of at most capacity verdicts (1..65536). Returns 0, -EINVAL,
 * -ENOMEM. */
RA_API int ra_vcache_new(size_t capacity, ra_vcache **out);
RA_API void ra_vcache_free(ra_vcache *c);
/* Forgets every entry (e.g. after new roots or CRLs were pinned, although
 * those change the key anyway). */
RA_API void ra_vcache_clear(ra_vcache *c);

/* ra_verify_quote through the cache. The key is SHA-256 over: the whole
 * quote, the verifier's configuration (its pinned roots and CRLs), the
 * collateral's bytes (none: signatures only), the caller's PCK chain
 * (opts->pck_chain) and the policy's canonical form without its
 * per-session part. A hit needs that key and valid_from <= time <
 * valid_until of the stored verdict (ra_verdict.valid_from/_until: every
 * validity window involved); it then re-checks what is per session or
 * outside the library: the quote parses, the X25519 key binding against
 * policy->x25519_pub / binding_val / binding_iat, and the policy callback,
 * which runs on every hit (so a policy with a callback is cacheable and the
 * callback stays authoritative). A miss runs ra_verify_quote and stores
 * the verdict when it is a success with a window. vd is filled as by
 * ra_verify_quote (on a hit: the stored verdict with `at`, binding and
 * callback of this call). Returns 0, -EACCES (vd->err says why), -EINVAL. */
RA_API int ra_vcache_verify(ra_vcache *c, ra_verifier *v, const uint8_t *quote, size_t len,
                            const ra_verify_opts *opts, const ra_policy *policy, ra_verdict *vd);

typedef struct ra_vcache_stats {
  uint64_t hits;
  uint64_t misses;    /* full verifications */
  uint64_t expired;   /* a key found outside its window (dropped, then verified anew) */
  uint64_t evictions; /* entries dropped for room */
  size_t entries;
} ra_vcache_stats;
RA_API void ra_vcache_get_stats(const ra_vcache *c, ra_vcache_stats *out);

#endif
