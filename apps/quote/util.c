/* apps/quote/util.c: ra-quote's shared helpers (util.h). */
#include "apps/quote/util.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "raloop/attest/quote/hexb64.h"
#include "raloop/core/file.h"

int quote_read(const char *path, size_t max, bool quiet, uint8_t **out, size_t *len) {
  int rc = ra_file_read(path, max, out, len);
  if (rc && !quiet) fprintf(stderr, "ra-quote: %s: %s\n", path, strerror(-rc));
  return rc;
}

int quote_decode(const char *path, uint8_t *raw, size_t n, bool quiet, uint8_t **out,
                 size_t *len) {
  int rc = ra_decode_auto(raw, n, out, len, NULL);
  free(raw);
  if (rc && !quiet) fprintf(stderr, "ra-quote: %s: cannot decode\n", path);
  return rc;
}

bool quote_write_file(const char *path, const void *data, size_t len) {
  FILE *f = fopen(path, "wb");
  bool ok = f && fwrite(data, 1, len, f) == len;
  if (f && fclose(f) != 0) ok = false;
  return ok;
}

int quote_hexarg(const char *flag, const char *v, uint8_t *out, size_t n) {
  if (!v || ra_hex_decode_exact(v, strlen(v), out, n)) {
    fprintf(stderr, "ra-quote: %s wants %zu bytes of hex\n", flag, n);
    return -1;
  }
  return 0;
}

double quote_now_us(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec * 1e6 + (double)ts.tv_nsec / 1e3;
}

static int cmp_double(const void *x, const void *y) {
  double a = *(const double *)x, b = *(const double *)y;
  return (a > b) - (a < b);
}

void quote_bench_stats(const char *what, double *t, long n) {
  qsort(t, (size_t)n, sizeof *t, cmp_double);
  printf("%-44s n=%-6ld median %8.1f us  p90 %8.1f us  min %8.1f us  max %8.1f us\n", what, n,
         t[n / 2], t[n * 9 / 10], t[0], t[n - 1]);
}
