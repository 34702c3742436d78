/* apps/quote/util.h: what ra-quote's TDX side (main.c) and SEV-SNP side
 * (snp.c) share: reading and writing its files, hex arguments, and the
 * bench timing. */
#ifndef RA_APPS_QUOTE_UTIL_H
#define RA_APPS_QUOTE_UTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Reads path ("-": standard input; at most max bytes) into *out (malloc'd,
 * caller frees); on failure prints "ra-quote: PATH: why" unless quiet.
 * Returns 0 or ra_file_read's negative errno. */
int quote_read(const char *path, size_t max, bool quiet, uint8_t **out, size_t *len);

/* Decodes raw (hex, base64 or binary; freed here) into *out (caller
 * frees); on failure prints "ra-quote: PATH: cannot decode" unless quiet.
 * Returns 0, -EINVAL or -ENOMEM. */
int quote_decode(const char *path, uint8_t *raw, size_t n, bool quiet, uint8_t **out,
                 size_t *len);

/* Writes len bytes to path (created or truncated). Whether all of it was
 * written and the file closed; says nothing (callers name what failed). */
bool quote_write_file(const char *path, const void *data, size_t len);

/* Exactly n bytes of hex in v (NULL counts as missing) into out; prints
 * "ra-quote: FLAG wants N bytes of hex" and returns -1 otherwise. */
int quote_hexarg(const char *flag, const char *v, uint8_t *out, size_t n);

/* Monotonic clock in microseconds, for the bench. */
double quote_now_us(void);

/* Sorts the n timings t (n > 0) and prints one line: what, n, median,
 * p90, min, max. */
void quote_bench_stats(const char *what, double *t, long n);

#endif
