/* core/log.c: the logger, the library's only global state. One line per
 * message, written with a single write(2) so lines from several processes
 * sharing stderr do not interleave. */
#include "raloop/core/log.h"

#include <stdarg.h>
#include <stdio.h>
#include <time.h>
#include <unistd.h>

static ra_log_level g_level = RA_LOG_INFO;
static ra_log_fn g_sink;
static void *g_sink_ud;

void ra_log_set_level(ra_log_level level) { g_level = level; }
ra_log_level ra_log_get_level(void) { return g_level; }

void ra_log_set_sink(ra_log_fn fn, void *ud) {
  g_sink = fn;
  g_sink_ud = fn ? ud : NULL;
}

static const char *level_name(ra_log_level level) {
  switch (level) {
  case RA_LOG_DEBUG: return "debug";
  case RA_LOG_INFO: return "info";
  case RA_LOG_WARN: return "warn";
  case RA_LOG_ERROR: return "error";
  default: return "?";
  }
}

static void vlog(ra_log_level level, const char *fmt, va_list ap) {
  char msg[1024];
  int n = vsnprintf(msg, sizeof msg, fmt, ap);
  if (n < 0) return;
  if ((size_t)n >= sizeof msg) /* truncated: say so */
    snprintf(msg + sizeof msg - 4, 4, "...");
  if (g_sink) {
    g_sink(level, msg, g_sink_ud);
    return;
  }
  struct timespec ts;
  struct tm tm;
  clock_gettime(CLOCK_REALTIME, &ts);
  gmtime_r(&ts.tv_sec, &tm);
  char line[1200];
  int len = snprintf(line, sizeof line, "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ %s %s\n",
                     tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min,
                     tm.tm_sec, ts.tv_nsec / 1000000L, level_name(level), msg);
  if (len < 0) return;
  if ((size_t)len >= sizeof line) len = (int)sizeof line - 1;
  ssize_t w = write(STDERR_FILENO, line, (size_t)len);
  (void)w;
}

void ra_log(ra_log_level level, const char *fmt, ...) {
  if (level < g_level || level >= RA_LOG_OFF) return;
  va_list ap;
  va_start(ap, fmt);
  vlog(level, fmt, ap);
  va_end(ap);
}

bool ra_log_limit_allow(ra_log_limit *l, uint64_t now_ms, uint64_t *suppressed) {
  if (!l->window_start_ms || now_ms - l->window_start_ms >= l->interval_ms) {
    l->window_start_ms = now_ms ? now_ms : 1;
    l->used = 0;
  }
  if (l->used >= l->per_interval) {
    l->suppressed++;
    return false;
  }
  l->used++;
  *suppressed = l->suppressed;
  l->suppressed = 0;
  return true;
}

void ra_log_limited(ra_log_limit *l, ra_log_level level, const char *fmt, ...) {
  if (level < g_level || level >= RA_LOG_OFF) return;
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  uint64_t now = (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u + 1;
  uint64_t dropped;
  if (!ra_log_limit_allow(l, now, &dropped)) return;
  if (dropped) ra_log(level, "(suppressed %llu similar line(s) in the last %llu ms or more)",
                      (unsigned long long)dropped, (unsigned long long)l->interval_ms);
  va_list ap;
  va_start(ap, fmt);
  vlog(level, fmt, ap);
  va_end(ap);
}
