/* bench/report.h: ra-bench's results and their output formats (table, CSV,
 * JSON, SVG chart) and the targets. */
#ifndef RA_BENCH_REPORT_H
#define RA_BENCH_REPORT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#include "bench/stats.h"

typedef struct bench_result {
  const char *scenario; /* static: "serial", ... */
  const char *mode;     /* static: "tunnel", "plain", "floor" */
  const char *what;     /* static: one line saying what was measured */
  bench_summary s;
} bench_result;

typedef struct bench_results {
  bench_result *r;
  size_t n, cap;
} bench_results;

int bench_results_add(bench_results *rs, const char *scenario, const char *mode, const char *what,
                      const bench_summary *s);
void bench_results_free(bench_results *rs);
const bench_result *bench_results_find(const bench_results *rs, const char *scenario,
                                       const char *mode);

/* Aligned table; with both modes of a scenario, a "ratio" row (tunnel /
 * plain per figure) follows them, and the targets are checked at
 * the end. Returns the number of targets missed. */
int bench_print_table(FILE *f, const bench_results *rs);
void bench_print_csv(FILE *f, const bench_results *rs);
/* One JSON array of {"scenario","mode","n","avg_ms","p50_ms","p90_ms",
 * "p99_ms","max_ms","rps"}. */
void bench_print_json(FILE *f, const bench_results *rs);
/* A self-contained SVG: one panel per scenario, grouped bars (avg, p50, p90,
 * p99) for plain, tunnel and (large) the crypto floor, with axis labels,
 * units, legend, the tunnel/plain ratio and the target line. subtitle may be
 * NULL. Returns 0 or -errno. */
int bench_write_svg(const char *path, const bench_results *rs, const char *subtitle);

/* The targets (issue 6) for scenarios measured in both modes. */
typedef struct bench_target_check {
  const char *scenario;
  char text[320]; /* "serial: tunnel/plain avg 1.12x <= 1.30x" */
  bool met;
} bench_target_check;
/* Fills up to max checks; returns how many. */
size_t bench_check_targets(const bench_results *rs, bench_target_check *out, size_t max);

#endif
