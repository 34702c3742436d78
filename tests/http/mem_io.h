/* tests/http/mem_io.h: the HTTP connection over memory instead of a socket
 * (the test seam of http/conn_internal.h), shared by the unit tests and the
 * fuzz target. Output accumulates in `out`; a close request is recorded and
 * completed by mem_io_settle(), like a stream's deferred on_close. */
#ifndef RA_TESTS_HTTP_MEM_IO_H
#define RA_TESTS_HTTP_MEM_IO_H

#include <errno.h>
#include <stdbool.h>
#include <string.h>

#include "raloop/core/buf.h"
#include "raloop/http/conn_internal.h"

typedef struct mem_io {
  ra_buf out;
  bool reading;
  bool close_requested;
  bool gone;
  size_t queued; /* pretend bytes stuck in the kernel */
  ra_http_conn *conn;
} mem_io;

static int mem_writev(void *io, const struct iovec *iov, int n) {
  mem_io *m = io;
  if (m->close_requested) return -EPIPE;
  for (int i = 0; i < n; i++)
    if (ra_buf_append(&m->out, iov[i].iov_base, iov[i].iov_len)) return -ENOMEM;
  return 0;
}
static size_t mem_queued(void *io) { return ((mem_io *)io)->queued; }
static void mem_set_reading(void *io, bool on) { ((mem_io *)io)->reading = on; }
static void mem_close(void *io) { ((mem_io *)io)->close_requested = true; }
static void mem_destroy(void *io) { ((mem_io *)io)->gone = true; }

static const ra_http_io_ops mem_io_ops = {
    .writev = mem_writev,
    .queued = mem_queued,
    .set_reading = mem_set_reading,
    .close = mem_close,
    .destroy = mem_destroy,
    .detach = NULL,
};

static inline void mem_io_open(mem_io *m, ra_http_server *srv) {
  memset(m, 0, sizeof *m);
  m->reading = true;
  ra_http_conn_new(srv, &mem_io_ops, m, &m->conn);
}

static inline void mem_io_feed(mem_io *m, const void *p, size_t n) {
  if (m->conn && !m->gone) ra_http_conn_feed(m->conn, p, n);
}

/* Completes a requested close (the conn is freed). */
static inline void mem_io_settle(mem_io *m) {
  if (m->conn && m->close_requested && !m->gone) {
    m->gone = true;
    ra_http_conn_closed(m->conn);
    m->conn = NULL;
  }
}

/* The peer disconnects (or the test ends): cancels what is pending. */
static inline void mem_io_drop(mem_io *m) {
  if (m->conn && !m->gone) {
    m->gone = true;
    ra_http_conn_closed(m->conn);
  }
  m->conn = NULL;
  ra_buf_free(&m->out);
}

static inline const char *mem_io_str(mem_io *m) {
  if (ra_buf_reserve(&m->out, 1)) return "";
  ra_buf_ptr(&m->out)[m->out.len] = '\0';
  return (const char *)ra_buf_ptr(&m->out);
}

#endif
