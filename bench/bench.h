/* bench/bench.h: what the modules of ra-bench share.
 *
 * ra-bench measures the same scenarios through two transports, plain
 * HTTP/1.1 (bench/http_client) and the attested tunnel (bench/tunnel), behind
 * one small interface (bench_target), so that a scenario cannot tell them
 * apart and the two columns of a run differ only by what the tunnel adds.
 */
#ifndef RA_BENCH_BENCH_H
#define RA_BENCH_BENCH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "raloop/core/loop.h"

/* Monotonic nanoseconds (not the loop's cached milliseconds: the requests
 * we time take tens of microseconds). */
static inline uint64_t bench_now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* One request. Every pointer is borrowed until the completion callback has
 * run (the body is sent without a copy where the transport allows it). */
typedef struct bench_req {
  const char *method; /* "GET", "POST" */
  const char *path;   /* "/hello" */
  const char *content_type; /* NULL: none */
  const uint8_t *body;
  size_t body_len;
} bench_req;

/* Completion: err 0 and the status and body (valid during the call only),
 * or a negative errno (connection lost, protocol error, timeout...) with a
 * message. Called from the loop, never from inside bench_target_request. */
typedef void (*bench_done_cb)(void *ud, int err, int status, const uint8_t *body, size_t len,
                              const char *errmsg);

typedef struct bench_target bench_target;
typedef struct bench_target_ops {
  int (*request)(bench_target *t, const bench_req *r, bench_done_cb cb, void *ud);
  void (*free)(bench_target *t);
} bench_target_ops;

struct bench_target {
  const bench_target_ops *ops;
  ra_loop *loop;
  /* every request on a new tunnel / connection while there are fewer than
   * the target's maximum, which then stay open (the `idle` scenario) */
  bool spread;
};

static inline int bench_target_request(bench_target *t, const bench_req *r, bench_done_cb cb,
                                       void *ud) {
  return t->ops->request(t, r, cb, ud);
}
static inline void bench_target_free(bench_target *t) {
  if (t) t->ops->free(t);
}

/* The origin under test, parsed from the URL argument. */
typedef struct bench_origin {
  char host[256];
  uint16_t port;
  char url[512]; /* "http://host:port" (no path) */
} bench_origin;

/* Parses "http://HOST[:PORT][/...]" ("[v6]" accepted). Returns 0 or -EINVAL. */
int bench_parse_origin(const char *url, bench_origin *o);

/* Runs the loop until *done is true or the deadline (ms from now) passes;
 * returns 0 or -ETIMEDOUT. Callbacks set *done. */
int bench_run_until(ra_loop *loop, const bool *done, uint64_t timeout_ms);

#endif
