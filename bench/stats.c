/* bench/stats.c: latency samples and their summary. */
#include "bench/stats.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

int bench_samples_add(bench_samples *s, double ms) {
  if (s->n == s->cap) {
    size_t cap = s->cap ? s->cap * 2 : 256;
    double *p = realloc(s->ms, cap * sizeof *p);
    if (!p) return -ENOMEM;
    s->ms = p;
    s->cap = cap;
  }
  s->ms[s->n++] = ms;
  return 0;
}

void bench_samples_reset(bench_samples *s) { s->n = 0; }

void bench_samples_free(bench_samples *s) {
  free(s->ms);
  memset(s, 0, sizeof *s);
}

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

static double at_quantile(const double *sorted, size_t n, double q) {
  size_t i = (size_t)((double)n * q);
  if (i >= n) i = n - 1;
  return sorted[i];
}

void bench_summarize(bench_samples *s, uint64_t wall_ns, bench_summary *out) {
  memset(out, 0, sizeof *out);
  out->n = s->n;
  if (s->n == 0) return;
  qsort(s->ms, s->n, sizeof *s->ms, cmp_double);
  double sum = 0;
  for (size_t i = 0; i < s->n; i++) sum += s->ms[i];
  out->avg_ms = sum / (double)s->n;
  out->p50_ms = at_quantile(s->ms, s->n, 0.5);
  out->p90_ms = at_quantile(s->ms, s->n, 0.9);
  out->p99_ms = at_quantile(s->ms, s->n, 0.99);
  out->max_ms = s->ms[s->n - 1];
  out->rps = wall_ns ? (double)s->n * 1e9 / (double)wall_ns : 0;
}
