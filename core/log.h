/* core/log.h: the logger, the library's only global state. */
#ifndef RA_CORE_LOG_H
#define RA_CORE_LOG_H

#include "raloop/core/api.h"
#include <stdbool.h>
#include <stdint.h>

typedef enum { RA_LOG_DEBUG, RA_LOG_INFO, RA_LOG_WARN, RA_LOG_ERROR, RA_LOG_OFF } ra_log_level;

/* Default: INFO to stderr, one line per message with a UTC timestamp. */
RA_API void ra_log_set_level(ra_log_level level);
RA_API ra_log_level ra_log_get_level(void);
/* Replace the sink (NULL restores stderr). msg is valid during the call.
 * Set it before the loop runs: it may be called from an ra_work thread
 * too (core/work.h: a quote provider's failure during a key rotation), so
 * a sink must be safe to call from two threads at once. */
typedef void (*ra_log_fn)(ra_log_level level, const char *msg, void *ud);
RA_API void ra_log_set_sink(ra_log_fn fn, void *ud);

RA_API void ra_log(ra_log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
#define ra_debug(...) ra_log(RA_LOG_DEBUG, __VA_ARGS__)
#define ra_info(...)  ra_log(RA_LOG_INFO, __VA_ARGS__)
#define ra_warn(...)  ra_log(RA_LOG_WARN, __VA_ARGS__)
#define ra_error(...) ra_log(RA_LOG_ERROR, __VA_ARGS__)

/* ---- rate-limited lines ---------------------------------------------------
 * For lines a peer can cause at will (a bad handshake, a replayed message):
 * at most `per_interval` lines per `interval_ms` from one limiter (one call
 * site, with RA_LOG_LIMITED); the rest are counted, and the first line of a
 * later interval is preceded by one "... suppressed K similar line(s)" line.
 * Lines below the log level are neither written nor counted. */
typedef struct ra_log_limit {
  unsigned per_interval;
  uint64_t interval_ms;
  uint64_t window_start_ms; /* 0: no line yet */
  unsigned used;            /* lines written in this interval */
  uint64_t suppressed;      /* lines dropped since the last one written */
} ra_log_limit;
#define RA_LOG_LIMIT_INIT(n, ms) {(n), (ms), 0, 0, 0}
/* The limiter alone (now_ms: any monotonic clock, > 0): true when a line
 * may be written now; then *suppressed is how many were dropped before it
 * (and the count restarts). false: this one is dropped (and counted). */
RA_API bool ra_log_limit_allow(ra_log_limit *l, uint64_t now_ms, uint64_t *suppressed);
RA_API void ra_log_limited(ra_log_limit *l, ra_log_level level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* One limiter per call site: at most n lines every ms milliseconds. */
#define RA_LOG_LIMITED(level, n, ms, ...)                                  \
  do {                                                                     \
    static ra_log_limit ra_log__site = RA_LOG_LIMIT_INIT(n, ms);           \
    ra_log_limited(&ra_log__site, level, __VA_ARGS__);                     \
  } while (0)

#endif
