/* bench/stats.h: latency samples and their summary.
 *
 * Percentiles are taken as the reference benchmark takes them (teekit's
 * packages/tunnel/test/benchmark.test.ts): sorted[floor(n * q)], so that our
 * figures and its published ones mean the same thing. */
#ifndef RA_BENCH_STATS_H
#define RA_BENCH_STATS_H

#include <stddef.h>
#include <stdint.h>

typedef struct bench_samples {
  double *ms; /* malloc'd */
  size_t n, cap;
} bench_samples;

/* Appends one latency in milliseconds. Returns 0 or -ENOMEM. */
int bench_samples_add(bench_samples *s, double ms);
void bench_samples_reset(bench_samples *s); /* keeps the memory */
void bench_samples_free(bench_samples *s);

typedef struct bench_summary {
  size_t n;
  double avg_ms, p50_ms, p90_ms, p99_ms, max_ms;
  double rps; /* completed requests (or handshakes) per second of wall time */
} bench_summary;

/* Sorts s in place and summarises it; wall_ns is the scenario's wall time
 * (first start to last completion), used for rps (0: rps 0). */
void bench_summarize(bench_samples *s, uint64_t wall_ns, bench_summary *out);

#endif
