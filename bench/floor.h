/* bench/floor.h: the cipher floor of a tunnelled round trip.
 *
 * One round trip through the tunnel cannot cost less than the cipher work
 * on its two messages: the client seals the request, the server opens it,
 * seals the response, the client opens it — four XSalsa20-Poly1305
 * (crypto_secretbox) passes. This times exactly those four calls on this
 * machine, in the same run as the scenarios, so that a target can compare
 * like with like: `large` (a 1 MiB body each way: tunnel <= plain + k x
 * floor) and `throughput` (the request and response of GET /hello as the
 * tunnel encodes them: what the cipher alone leaves of plain's rate). */
#ifndef RA_BENCH_FLOOR_H
#define RA_BENCH_FLOOR_H

#include <stddef.h>
#include <stdint.h>

#include "bench/stats.h"

/* n samples (after `warmup` uncounted ones); a sample is the average time
 * (ms) of `batch` round trips of the four passes, `up` bytes sealed and
 * opened, then `down` bytes. The nonces are drawn outside the timing (the
 * tunnel draws them in batches: a CSPRNG call per message would be the
 * syscall's cost, not the cipher's). Wall time of the n samples in
 * *wall_ns. Returns 0, -EINVAL (a size or batch of 0), -ENOMEM, or -EIO if
 * a box failed to open (never expected). */
int bench_crypto_floor(size_t up, size_t down, size_t batch, size_t n, size_t warmup,
                       bench_samples *out, uint64_t *wall_ns);

#endif
