/* core/pump.c: the byte pump. One watch per fd (its interest is the union
 * of "read me" for the direction it feeds and "write me" for the one it
 * drains), level-triggered, recomputed after every move; one idle timer
 * re-armed lazily (a move only records the time). */
#include "raloop/core/pump.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "raloop/core/loop_internal.h"

#define DEFAULT_BUFFER (64u * 1024u)
#define ROUNDS 8 /* moves per event before letting other fds run */

typedef struct dir {
  int src, dst;
  int pipe_r, pipe_w; /* splice mode; -1 otherwise */
  bool splice;
  bool pipe_full; /* splice into the pipe said EAGAIN with bytes in it: the
                     pipe's slots may be full before its bytes are (small
                     segments), so wait for the pipe to drain, not for the
                     (still readable) source, or we would spin */
  bool eof;       /* the source reached end of stream */
  bool shut;      /* shutdown(dst, SHUT_WR) done: this direction is over */
  size_t pending; /* splice: bytes in the pipe */
  uint8_t *rest;  /* read/write: the unwritten rest of the last read
                     (cap bytes, allocated when first needed) */
  size_t rest_off, rest_len;
  uint64_t bytes;
} dir;

struct ra_pump {
  ra_loop *loop;
  int fd[2]; /* a, b */
  dir d[2];  /* d[0]: a -> b, d[1]: b -> a */
  size_t cap;
  uint64_t idle_ms, last_move;
  ra_timer idle;
  ra_pump_done_cb done;
  void *ud;
};

static size_t in_flight(const dir *d) { return d->splice ? d->pending : d->rest_len - d->rest_off; }
static bool want_read(const ra_pump *p, const dir *d) {
  if (d->eof) return false;
  /* read/write: the next read waits until the last one is written */
  return d->splice ? d->pending < p->cap && !d->pipe_full : d->rest_len == 0;
}
static bool want_write(const dir *d) { return in_flight(d) > 0; }

static void close_pipe(dir *d) {
  if (d->pipe_r >= 0) close(d->pipe_r);
  if (d->pipe_w >= 0) close(d->pipe_w);
  d->pipe_r = d->pipe_w = -1;
}

static void release(ra_pump *p) {
  ra_timer_stop(&p->idle);
  for (int i = 0; i < 2; i++) {
    if (p->fd[i] >= 0) {
      ra_loop_unwatch(p->loop, p->fd[i]);
      close(p->fd[i]);
      p->fd[i] = -1;
    }
    close_pipe(&p->d[i]);
    free(p->d[i].rest);
    p->d[i].rest = NULL;
  }
}

static void finish(ra_pump *p, int err) {
  release(p);
  if (p->done) p->done(p, err, p->ud);
  free(p);
}

/* Leaves splice mode: what is still in the pipe becomes the rest to write. */
static int fall_back(ra_pump *p, dir *d) {
  if (d->pending) {
    if (!d->rest && !(d->rest = malloc(p->cap))) return -ENOMEM;
    ssize_t n = read(d->pipe_r, d->rest, d->pending);
    if (n != (ssize_t)d->pending) return n < 0 ? -errno : -EIO;
    d->rest_off = 0;
    d->rest_len = d->pending;
    d->pending = 0;
  }
  d->splice = false;
  d->pipe_full = false;
  close_pipe(d);
  return 0;
}

/* Source -> pipe or scratch. 1: moved bytes, 0: nothing now (EAGAIN or
 * end of stream), < 0: error. *drained: the read was short, so the source
 * is very likely empty: no point in asking again before the next readiness
 * (saves a syscall per small message). */
static int fill(ra_pump *p, dir *d, bool *drained) {
  size_t room = p->cap - in_flight(d);
  if (d->splice) {
    ssize_t n = splice(d->src, NULL, d->pipe_w, NULL, room, SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
    if (n > 0) {
      d->pending += (size_t)n;
      *drained = (size_t)n < room;
      return 1;
    }
    if (n == 0) {
      d->eof = true;
      return 0;
    }
    if (errno == EAGAIN || errno == EINTR) {
      if (d->pending) d->pipe_full = true;
      return 0;
    }
    if (errno != EINVAL && errno != EOPNOTSUPP && errno != ENOSYS) return -errno;
    int rc = fall_back(p, d); /* this source cannot splice: read/write from now on */
    if (rc < 0) return rc;
    room = p->cap - in_flight(d);
  }
  if (d->rest_len) return 0; /* only read once the last read is written */
  uint8_t *scratch = ra_loop_scratch(p->loop);
  if (room > RA_LOOP_SCRATCH_SIZE) room = RA_LOOP_SCRATCH_SIZE;
  ssize_t n;
  do n = read(d->src, scratch, room);
  while (n < 0 && errno == EINTR);
  if (n == 0) {
    d->eof = true;
    return 0;
  }
  if (n < 0) return errno == EAGAIN ? 0 : -errno;
  *drained = (size_t)n < room;
  /* Write it at once; only what the kernel does not take is copied. */
  ssize_t w;
  do w = send(d->dst, scratch, (size_t)n, MSG_NOSIGNAL | MSG_DONTWAIT);
  while (w < 0 && errno == EINTR);
  if (w < 0 && errno != EAGAIN) {
    if (errno != ENOTSOCK) return -errno;
    w = write(d->dst, scratch, (size_t)n); /* not a socket (a test's pipe) */
    if (w < 0 && errno != EAGAIN) return -errno;
  }
  if (w < 0) w = 0;
  d->bytes += (uint64_t)w;
  if (w < n) {
    /* Allocated once, kept until the end: a slow peer would otherwise make
     * us malloc and free a buffer per read. */
    if (!d->rest && !(d->rest = malloc(p->cap))) return -ENOMEM;
    memcpy(d->rest, scratch + w, (size_t)(n - w));
    d->rest_off = 0;
    d->rest_len = (size_t)(n - w);
  }
  return 1;
}

/* Pipe or rest -> destination. 1: moved bytes, 0: destination full, < 0:
 * error. */
static int flush(ra_pump *p, dir *d) {
  if (d->splice) {
    ssize_t n = splice(d->pipe_r, NULL, d->dst, NULL, d->pending, SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
    if (n > 0) {
      d->pending -= (size_t)n;
      d->bytes += (uint64_t)n;
      d->pipe_full = false;
      return 1;
    }
    if (n < 0 && (errno == EAGAIN || errno == EINTR)) return 0;
    if (n == 0) return -EPIPE;
    if (errno != EINVAL && errno != EOPNOTSUPP && errno != ENOSYS) return -errno;
    int rc = fall_back(p, d); /* this destination cannot take a splice */
    if (rc < 0) return rc;
  }
  size_t left = d->rest_len - d->rest_off;
  ssize_t w;
  do w = send(d->dst, d->rest + d->rest_off, left, MSG_NOSIGNAL | MSG_DONTWAIT);
  while (w < 0 && errno == EINTR);
  if (w < 0 && errno == ENOTSOCK) w = write(d->dst, d->rest + d->rest_off, left);
  if (w < 0) return errno == EAGAIN ? 0 : -errno;
  d->bytes += (uint64_t)w;
  d->rest_off += (size_t)w;
  if (d->rest_off == d->rest_len) d->rest_off = d->rest_len = 0;
  return 1;
}

/* Moves what can be moved in one direction now. 0 or an error. */
static int run_dir(ra_pump *p, dir *d) {
  bool moved = false, drained = false;
  for (int round = 0; round < ROUNDS; round++) {
    int now = 0, rc;
    if (want_write(d)) {
      if ((rc = flush(p, d)) < 0) return rc;
      now |= rc;
    }
    if (!drained && want_read(p, d)) {
      if ((rc = fill(p, d, &drained)) < 0) return rc;
      now |= rc;
    }
    if (!now) break;
    moved = true;
  }
  if (moved) p->last_move = ra_loop_now(p->loop);
  if (d->eof && !want_write(d) && !d->shut) {
    d->shut = true;
    /* ENOTCONN: the peer has gone entirely; the other direction finds out. */
    if (shutdown(d->dst, SHUT_WR) < 0 && errno != ENOTCONN && errno != ENOTSOCK) return -errno;
  }
  return 0;
}

static void on_io(ra_loop *loop, int fd, unsigned events, void *ud);

static int update(ra_pump *p) {
  for (int i = 0; i < 2; i++) {
    /* fd[i] is the source of d[i] and the destination of d[1-i]. */
    unsigned ev = (want_read(p, &p->d[i]) ? RA_READABLE : 0u) |
                  (want_write(&p->d[1 - i]) ? RA_WRITABLE : 0u);
    int rc = ra_loop_watch(p->loop, p->fd[i], ev, on_io, p);
    if (rc < 0) return rc;
  }
  return 0;
}

static void on_io(ra_loop *loop, int fd, unsigned events, void *ud) {
  ra_pump *p = ud;
  int i = fd == p->fd[0] ? 0 : 1;
  int rc = 0;
  /* Readable: the direction this fd feeds; writable: the one it drains.
   * An error/hangup wakes both, so the read or write finds it. */
  if (events & (RA_READABLE | RA_ERROR)) rc = run_dir(p, &p->d[i]);
  if (rc == 0 && (events & (RA_WRITABLE | RA_ERROR))) rc = run_dir(p, &p->d[1 - i]);
  /* A move on one side can unblock the other direction's source (it drained
   * the pipe that stopped reading), which the next watch update covers. */
  if (rc == 0 && p->d[0].shut && p->d[1].shut) rc = 1;
  if (rc == 0) rc = update(p);
  if (rc) finish(p, rc > 0 ? 0 : rc);
}

static void on_idle(ra_timer *t, void *ud) {
  ra_pump *p = ud;
  uint64_t now = ra_loop_now(p->loop);
  if (now - p->last_move >= p->idle_ms) {
    finish(p, -ETIMEDOUT);
    return;
  }
  ra_timer_start(t, p->idle_ms - (now - p->last_move), 0);
}

static int open_pipe(ra_pump *p, dir *d) {
  int fds[2];
  if (pipe2(fds, O_NONBLOCK | O_CLOEXEC) < 0) return -errno;
  d->pipe_r = fds[0];
  d->pipe_w = fds[1];
  /* The pipe is the direction's whole buffer; a smaller one than the
   * default 64 KiB bounds the kernel memory too. Failure keeps the default
   * (pipe-max-size, or the per-user pipe quota), and the cap stays ours. */
  if (p->cap != DEFAULT_BUFFER) fcntl(d->pipe_w, F_SETPIPE_SZ, (int)p->cap);
  return 0;
}

int ra_pump_new(ra_loop *loop, int fd_a, int fd_b, const ra_pump_opts *opts,
                ra_pump_done_cb done, void *ud, ra_pump **out) {
  int rc = -EINVAL;
  ra_pump *p = NULL;
  if (out) *out = NULL;
  if (!loop || !out || fd_a < 0 || fd_b < 0 || fd_a == fd_b) goto fail;
  rc = -ENOMEM;
  if (!(p = calloc(1, sizeof *p))) goto fail;
  p->loop = loop;
  p->fd[0] = fd_a;
  p->fd[1] = fd_b;
  p->cap = opts && opts->buffer ? opts->buffer : DEFAULT_BUFFER;
  if (p->cap < 4096) p->cap = 4096;
  if (p->cap > (1u << 20)) p->cap = 1u << 20;
  p->idle_ms = opts ? opts->idle_timeout_ms : 0;
  p->done = done;
  p->ud = ud;
  p->last_move = ra_loop_now(loop);
  ra_timer_init(loop, &p->idle, on_idle, p);
  for (int i = 0; i < 2; i++) {
    dir *d = &p->d[i];
    d->src = p->fd[i];
    d->dst = p->fd[1 - i];
    d->pipe_r = d->pipe_w = -1;
    int fl = fcntl(p->fd[i], F_GETFL);
    if (fl < 0 || (!(fl & O_NONBLOCK) && fcntl(p->fd[i], F_SETFL, fl | O_NONBLOCK) < 0)) {
      rc = -errno;
      goto fail;
    }
  }
  for (int i = 0; i < 2 && !(opts && opts->no_splice); i++) {
    if ((rc = open_pipe(p, &p->d[i])) < 0) goto fail;
    p->d[i].splice = true;
  }
  if (p->idle_ms && (rc = ra_timer_start(&p->idle, p->idle_ms, 0)) < 0) goto fail;
  if ((rc = update(p)) < 0) goto fail;
  *out = p;
  return 0;
fail:
  if (p) {
    release(p);
    free(p);
  } else {
    if (fd_a >= 0) close(fd_a);
    if (fd_b >= 0 && fd_b != fd_a) close(fd_b);
  }
  return rc;
}

uint64_t ra_pump_bytes(const ra_pump *p, int which) { return p->d[which ? 1 : 0].bytes; }
bool ra_pump_spliced(const ra_pump *p, int which) { return p->d[which ? 1 : 0].splice; }

void ra_pump_free(ra_pump *p) {
  if (!p) return;
  release(p);
  free(p);
}
