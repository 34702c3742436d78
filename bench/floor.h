/* bench/floor.h: the crypto floor of the `large` scenario.
 *
 * One round trip of a body through the tunnel cannot cost less than the
 * cipher work on it: the client seals the request, the server opens it,
 * seals the response, the client opens it — four XSalsa20-Poly1305
 * (crypto_secretbox) passes over the body. This measures exactly those four
 * calls on this machine, in the same run, so the `large` target (tunnel <=
 * plain + 1.25 x floor) compares like with like. */
#ifndef RA_BENCH_FLOOR_H
#define RA_BENCH_FLOOR_H

#include <stddef.h>

#include "bench/stats.h"

/* n rounds (after `warmup` uncounted ones) of the four passes over a body
 * of `size` bytes; one sample (ms) per round, wall time in *wall_ns.
 * Returns 0, -ENOMEM, or -EIO if a box failed to open (never expected). */
int bench_crypto_floor(size_t size, size_t n, size_t warmup, bench_samples *out, uint64_t *wall_ns);

#endif
