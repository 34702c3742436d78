/* core/stream.c: a non-blocking socket with a read path through the loop's
 * shared scratch buffer, a write queue and back-pressure.
 *
 * Memory: an idle stream is this struct and nothing else. The leftover read
 * buffer exists only while on_read leaves bytes unconsumed; the write queue
 * (a list of chunks: copies, or references for write_ref) only while the
 * kernel has not taken everything. In the steady state (reads consumed,
 * writes taken by the kernel) nothing is allocated.
 *
 * Lifetime: the struct outlives every close path until the deferred on_close
 * has run, so a callback may close the stream and the code that called it
 * can still look at the flags afterwards.
 */
#include "raloop/core/stream.h"

#include <errno.h>
#include <limits.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <linux/sockios.h>
#include <sys/ioctl.h>
#include <sys/un.h>
#include <unistd.h>

#include "raloop/core/buf.h"
#include "raloop/core/error.h"
#include "raloop/core/loop_internal.h"
#include "raloop/core/resolve_internal.h"
#include "raloop/core/tls_internal.h"

#define DEFAULT_HIGH (1024u * 1024u)
#define DEFAULT_LOW (256u * 1024u)
#define CLOSE_TIMEOUT_MS 5000u /* flush bound when no idle timeout is set */
#define LINGER_MS 2000u        /* reading-and-discarding after our FIN */
#define READ_ROOM (16u * 1024u) /* read size when appending to a leftover */
#define MAX_LEFTOVER (64u * 1024u * 1024u) /* unconsumed input: -ENOBUFS past it */
#define CHUNK_MIN 4096u
#define IOV_BATCH 64

typedef struct chunk {
  struct chunk *next;
  const uint8_t *ptr; /* next byte to write */
  size_t len;         /* bytes left to write */
  size_t room;        /* copy chunks: free bytes after ptr+len; 0 for refs */
  void (*free_cb)(void *); /* refs only */
  void *free_ud;
  uint8_t data[]; /* copy chunks only */
} chunk;

enum {
  S_CONNECTING = 1u << 0,
  S_PAUSED = 1u << 1,   /* ra_stream_pause_read */
  S_BP = 1u << 2,       /* write queue above the high-water mark */
  S_EOF = 1u << 3,      /* read returned 0 */
  S_SHUT_WANT = 1u << 4,
  S_SHUT_DONE = 1u << 5,
  S_CLOSING = 1u << 6,  /* graceful close: flushing, then lingering */
  S_LINGER = 1u << 7,   /* FIN sent, discarding input until the peer's */
  S_CLOSED = 1u << 8,   /* fd closed, on_close queued */
  S_DRAIN = 1u << 9,    /* on_drain owed once the queue is low */
  S_REOFFER = 1u << 10, /* leftover input to hand to on_read again */
  S_NOTSOCK = 1u << 11, /* writev instead of sendmsg */
  S_AI_OWNED = 1u << 12, /* ai_list is ours (unix), not getaddrinfo's */
  S_TLS_CONNECT = 1u << 13, /* ra_stream_connect_tls: on_connect owed after the handshake */
};

struct ra_stream {
  ra_loop *loop;
  int fd;
  uint32_t flags;
  int close_err;
  unsigned watching; /* interest last given to the loop */
  ra_stream_cbs cbs;
  void *ud;
  ra_buf in; /* unconsumed input; holds memory only while non-empty */
  chunk *head, *tail;
  size_t queued;
  size_t high, low;
  uint64_t idle_ms, last_io;
  uint64_t write_ms, last_wprog; /* write timeout; last progress of the queue */
  int kernel_q;   /* the kernel's unsent bytes (SIOCOUTQ) at last_wprog */
  ra_timer timer; /* idle and write timeouts, then close deadline / linger bound */
  ra_defer defer; /* on_close, re-offer of leftover input */
  ra_connect_cb on_connect;
  struct addrinfo *ai_list, *ai_next;
  ra_tls_conn *tls; /* NULL: plain; the only cost of TLS support to plain streams */
};

static void on_io(ra_loop *loop, int fd, unsigned events, void *ud);
static void finish(ra_stream *s, int err);

/* ---- small helpers ------------------------------------------------------- */

static void update_watch(ra_stream *s) {
  if (s->flags & S_CLOSED) return;
  unsigned want = 0;
  if (s->flags & S_CONNECTING) {
    want = RA_WRITABLE;
  } else {
    if (s->head) want |= RA_WRITABLE;
    if (s->flags & S_CLOSING) {
      if (s->flags & S_LINGER) want |= RA_READABLE;
    } else if (!(s->flags & (S_PAUSED | S_BP | S_EOF)) ||
               (s->tls && !s->tls->hs_done && !(s->flags & S_EOF))) {
      want |= RA_READABLE; /* a handshake progresses even while paused */
    }
  }
  if (want == s->watching) return;
  int rc = ra_loop_watch(s->loop, s->fd, want, on_io, s);
  if (rc < 0) {
    finish(s, rc);
    return;
  }
  s->watching = want;
}

static void touch(ra_stream *s) { s->last_io = ra_loop_now(s->loop); }

static uint64_t sat_add(uint64_t a, uint64_t b) { return b > UINT64_MAX - a ? UINT64_MAX : a + b; }

/* The earliest of the idle and write deadlines (UINT64_MAX: none). */
static uint64_t next_due(const ra_stream *s) {
  uint64_t due = UINT64_MAX;
  if (s->idle_ms) due = sat_add(s->last_io, s->idle_ms);
  if (s->write_ms && s->head && sat_add(s->last_wprog, s->write_ms) < due)
    due = sat_add(s->last_wprog, s->write_ms);
  return due;
}

/* The queue just became non-empty: its progress is timed from now. The
 * timer is only moved when this deadline is earlier than the armed one. */
static int kernel_queued(const ra_stream *s) {
  int q = -1;
  if (s->fd < 0 || ioctl(s->fd, SIOCOUTQ, &q) < 0) return -1;
  return q;
}

static void queue_started(ra_stream *s) {
  s->last_wprog = ra_loop_now(s->loop);
  if (!s->write_ms || (s->flags & (S_CLOSING | S_CLOSED))) return;
  s->kernel_q = kernel_queued(s);
  uint64_t due = sat_add(s->last_wprog, s->write_ms);
  if (due == UINT64_MAX) return;
  if (!ra_timer_active(&s->timer) || s->timer.due > due) ra_timer_start(&s->timer, s->write_ms, 0);
}

static void free_queue(ra_stream *s) {
  while (s->head) {
    chunk *c = s->head;
    s->head = c->next;
    if (!s->head) s->tail = NULL;
    s->queued -= c->len;
    void (*cb)(void *) = c->free_cb;
    void *cb_ud = c->free_ud;
    free(c);
    if (cb) cb(cb_ud);
  }
  s->queued = 0;
}

static void free_addrs(ra_stream *s) {
  if (s->ai_list) {
    if (s->flags & S_AI_OWNED)
      free(s->ai_list);
    else
      freeaddrinfo(s->ai_list);
  }
  s->ai_list = s->ai_next = NULL;
}

/* Closes now: the core of abort, of a finished graceful close and of every
 * fatal error. on_close runs from the loop, never inside the caller. */
static void finish(ra_stream *s, int err) {
  if (s->flags & S_CLOSED) return;
  s->flags |= S_CLOSED;
  s->close_err = err;
  ra_timer_stop(&s->timer);
  if (s->tls) ra_timer_stop(&s->tls->hs_timer);
  if (s->fd >= 0) {
    ra_loop_unwatch(s->loop, s->fd);
    close(s->fd);
    s->fd = -1;
  }
  s->watching = 0;
  ra_buf_free(&s->in);
  ra_defer_cancel(s->loop, &s->defer);
  ra_loop_defer(s->loop, &s->defer);
  free_queue(s); /* last: free_cbs are user code and may call back into us */
}

static void stream_free(ra_stream *s) {
  ra_tls_conn_free(s->tls);
  free(s);
}

/* The reason of the TLS failure being reported to on_connect (no stream to
 * ask then). */
static _Thread_local const char *tls_connect_err = "";
const char *ra_tls_connect_error(void) { return tls_connect_err; }

static bool tls_has_input(const ra_stream *s) { return s->tls && ra_tls_conn_has_input(s->tls); }
static void tls_read_plain(ra_stream *s);

static void on_defer(ra_defer *d, void *ud) {
  (void)d;
  ra_stream *s = ud;
  if (s->flags & S_CLOSED) {
    if (s->flags & (S_CONNECTING | S_TLS_CONNECT)) { /* never handed to the user */
      free_addrs(s);
      tls_connect_err = s->tls ? s->tls->err : "";
      if (s->on_connect) s->on_connect(NULL, s->close_err ? s->close_err : -ECONNABORTED, s->ud);
      tls_connect_err = "";
    } else if (s->cbs.on_close) {
      s->cbs.on_close(s, s->close_err, s->ud);
    }
    stream_free(s);
    return;
  }
  if (s->flags & S_REOFFER) {
    s->flags &= ~S_REOFFER;
    if (s->in.len && !(s->flags & (S_PAUSED | S_BP | S_CLOSING)) && s->cbs.on_read) {
      size_t len = s->in.len;
      size_t used = s->cbs.on_read(s, ra_buf_ptr(&s->in), len, s->ud);
      if (s->flags & (S_CLOSED | S_CLOSING)) return;
      ra_buf_consume(&s->in, used > len ? len : used);
      if (!s->in.len) ra_buf_free(&s->in);
    }
    /* TLS: records that arrived while paused are still in the engine. */
    if (s->tls && s->tls->hs_done) tls_read_plain(s);
  }
}

static void reoffer(ra_stream *s) {
  if (s->flags & (S_CLOSED | S_CLOSING | S_CONNECTING)) return;
  s->flags |= S_REOFFER;
  /* Nothing left over (the common case: every accept sets callbacks) costs
   * no deferred call; inside on_read, do_read queues it if input is left. */
  if (s->in.len || tls_has_input(s)) ra_loop_defer(s->loop, &s->defer);
}

/* ---- timer: idle timeout, close deadline, linger bound ------------------- */

static void on_timer(ra_timer *t, void *ud) {
  (void)t;
  ra_stream *s = ud;
  if (s->flags & S_LINGER) {
    finish(s, 0); /* everything was flushed; the peer just never closed */
  } else if (s->flags & S_CLOSING) {
    finish(s, -ETIMEDOUT);
  } else {
    /* Activity does not touch the heap; it only moves last_io (and
     * last_wprog), and the timer re-arms itself for the remainder when it
     * finds some. */
    uint64_t now = ra_loop_now(s->loop);
    if (s->write_ms && s->head && sat_add(s->last_wprog, s->write_ms) <= now) {
      /* Our queue did not move; the kernel's may have (it wakes us only
       * once a good part of its buffer is free): that is progress too. */
      int q = kernel_queued(s);
      if (q >= 0 && s->kernel_q >= 0 && q < s->kernel_q) {
        s->kernel_q = q;
        s->last_wprog = now;
      }
    }
    uint64_t due = next_due(s);
    if (due == UINT64_MAX) return;
    if (due <= now)
      finish(s, -ETIMEDOUT);
    else
      ra_timer_start(&s->timer, due - now, 0);
  }
}

/* ---- writing ------------------------------------------------------------- */

static ssize_t sock_writev(ra_stream *s, const struct iovec *iov, int cnt) {
  ssize_t n;
  if (cnt > IOV_MAX) cnt = IOV_MAX;
  for (;;) {
    if (!(s->flags & S_NOTSOCK)) {
      struct msghdr m = {0};
      m.msg_iov = (struct iovec *)iov;
      m.msg_iovlen = (size_t)cnt;
      n = sendmsg(s->fd, &m, MSG_NOSIGNAL | MSG_DONTWAIT);
      if (n < 0 && errno == ENOTSOCK) {
        s->flags |= S_NOTSOCK;
        continue;
      }
    } else {
      n = writev(s->fd, iov, cnt);
    }
    if (n < 0 && errno == EINTR) continue;
    return n;
  }
}

/* Writes what the kernel takes now. Returns bytes written, or -errno on a
 * fatal error (EAGAIN is 0 bytes). */
static ssize_t write_now(ra_stream *s, const struct iovec *iov, int cnt) {
  ssize_t n = sock_writev(s, iov, cnt);
  if (n < 0) return (errno == EAGAIN || errno == EWOULDBLOCK) ? 0 : -errno;
  if (n > 0) touch(s);
  return n;
}

static chunk *queue_chunk(ra_stream *s, size_t cap) {
  if (cap > SIZE_MAX - sizeof(chunk)) return NULL;
  chunk *c = malloc(sizeof *c + cap);
  if (!c) return NULL;
  c->next = NULL;
  c->ptr = c->data;
  c->len = 0;
  c->room = cap;
  c->free_cb = NULL;
  c->free_ud = NULL;
  if (s->tail) {
    s->tail->next = c;
  } else {
    s->head = c;
    queue_started(s);
  }
  s->tail = c;
  return c;
}

static int queue_copy(ra_stream *s, const uint8_t *p, size_t len) {
  chunk *c = s->tail;
  if (c && c->room) { /* fill the tail copy chunk first */
    size_t n = len < c->room ? len : c->room;
    memcpy(c->data + (size_t)(c->ptr - c->data) + c->len, p, n);
    c->len += n;
    c->room -= n;
    s->queued += n;
    p += n;
    len -= n;
  }
  if (!len) return 0;
  c = queue_chunk(s, len > CHUNK_MIN ? len : CHUNK_MIN);
  if (!c) return -ENOMEM;
  memcpy(c->data, p, len);
  c->len = len;
  c->room -= len;
  s->queued += len;
  return 0;
}

static void after_queue(ra_stream *s) {
  s->flags |= S_DRAIN;
  if (s->queued > s->high) s->flags |= S_BP;
  update_watch(s);
}

static bool write_closed(const ra_stream *s) {
  return s->flags & (S_CLOSED | S_CLOSING | S_SHUT_WANT);
}

static int tls_writev(ra_stream *s, const struct iovec *iov, int iovcnt, size_t total);

/* Bytes for the socket (plaintext, or TLS records): written now what the
 * kernel takes, the rest queued. */
static int raw_writev(ra_stream *s, const struct iovec *iov, int iovcnt, size_t total) {
  size_t done = 0;
  if (!s->head && !(s->flags & S_CONNECTING)) {
    ssize_t n = write_now(s, iov, iovcnt);
    if (n < 0) {
      finish(s, (int)n);
      return (int)n;
    }
    done = (size_t)n;
    if (done == total) return 0;
  }
  for (int i = 0; i < iovcnt; i++) {
    size_t l = iov[i].iov_len;
    if (done >= l) {
      done -= l;
      continue;
    }
    if (queue_copy(s, (const uint8_t *)iov[i].iov_base + done, l - done) < 0) {
      finish(s, -ENOMEM); /* part of the data is gone: the stream is unusable */
      return -ENOMEM;
    }
    done = 0;
  }
  after_queue(s);
  return 0;
}

int ra_stream_writev(ra_stream *s, const struct iovec *iov, int iovcnt) {
  if (iovcnt < 0 || (iovcnt > 0 && !iov)) return -EINVAL;
  if (write_closed(s)) return -EPIPE;
  size_t total = 0;
  for (int i = 0; i < iovcnt; i++) {
    if (iov[i].iov_len > SIZE_MAX - total) return -EINVAL;
    total += iov[i].iov_len;
  }
  if (!total) return 0;
  if (s->tls) return tls_writev(s, iov, iovcnt, total);
  return raw_writev(s, iov, iovcnt, total);
}

int ra_stream_write(ra_stream *s, const void *data, size_t len) {
  struct iovec iov = {(void *)data, len};
  return ra_stream_writev(s, &iov, 1);
}

int ra_stream_write_ref(ra_stream *s, const void *data, size_t len,
                        void (*free_cb)(void *), void *free_ud) {
  int rc = 0;
  size_t done = 0;
  if (s->tls) { /* encrypted at once: the plaintext is not needed after */
    rc = ra_stream_write(s, data, len);
    goto out;
  }
  if (write_closed(s)) {
    rc = -EPIPE;
    goto out;
  }
  if (!len) goto out;
  if (!s->head && !(s->flags & S_CONNECTING)) {
    struct iovec iov = {(void *)data, len};
    ssize_t n = write_now(s, &iov, 1);
    if (n < 0) {
      finish(s, (int)n);
      rc = (int)n;
      goto out;
    }
    done = (size_t)n;
    if (done == len) goto out;
  }
  chunk *c = malloc(sizeof *c);
  if (!c) {
    finish(s, -ENOMEM);
    rc = -ENOMEM;
    goto out;
  }
  c->next = NULL;
  c->ptr = (const uint8_t *)data + done;
  c->len = len - done;
  c->room = 0;
  c->free_cb = free_cb;
  c->free_ud = free_ud;
  if (s->tail) {
    s->tail->next = c;
  } else {
    s->head = c;
    queue_started(s);
  }
  s->tail = c;
  s->queued += c->len;
  after_queue(s);
  return 0;
out:
  if (free_cb) free_cb(free_ud);
  return rc;
}

/* Drops n written bytes from the front of the queue. Returns false if a
 * free_cb closed the stream. */
static bool advance(ra_stream *s, size_t n) {
  while (n && s->head) {
    chunk *c = s->head;
    if (n < c->len) {
      c->ptr += n;
      c->len -= n;
      s->queued -= n;
      return true;
    }
    n -= c->len;
    s->queued -= c->len;
    s->head = c->next;
    if (!s->head) s->tail = NULL;
    void (*cb)(void *) = c->free_cb;
    void *cb_ud = c->free_ud;
    free(c);
    if (cb) {
      cb(cb_ud);
      if (s->flags & S_CLOSED) return false;
    }
  }
  return true;
}

static void close_progress(ra_stream *s);

static void flush_queue(ra_stream *s) {
  while (s->head) {
    struct iovec iov[IOV_BATCH];
    int cnt = 0;
    size_t want = 0;
    for (chunk *c = s->head; c && cnt < IOV_BATCH; c = c->next) {
      iov[cnt].iov_base = (void *)c->ptr;
      iov[cnt++].iov_len = c->len;
      want += c->len;
    }
    ssize_t n = write_now(s, iov, cnt);
    if (n < 0) {
      finish(s, (int)n);
      return;
    }
    if (n > 0) s->last_wprog = s->last_io;
    if (!advance(s, (size_t)n)) return;
    /* The kernel's queue is only compared while ours is not empty (a queue
     * that starts again takes a fresh reading): no ioctl when this drained it. */
    if (n > 0 && s->head && s->write_ms) s->kernel_q = kernel_queued(s);
    if ((size_t)n < want) break; /* the kernel is full */
  }
  if (!s->head && (s->flags & S_SHUT_WANT) && !(s->flags & S_SHUT_DONE) &&
      !(s->tls && !s->tls->hs_done)) {
    shutdown(s->fd, SHUT_WR);
    s->flags |= S_SHUT_DONE;
  }
  if ((s->flags & S_DRAIN) && s->queued <= s->low) {
    s->flags &= ~(S_DRAIN | S_BP);
    update_watch(s);
    if (!(s->flags & (S_CLOSING | S_CLOSED)) && s->cbs.on_drain) {
      s->cbs.on_drain(s, s->ud);
      if (s->flags & S_CLOSED) return;
    }
    if (s->in.len || tls_has_input(s)) reoffer(s); /* reading was paused by back-pressure */
  }
  if (s->flags & S_CLOSING)
    close_progress(s);
  else
    update_watch(s);
}

/* ---- reading ------------------------------------------------------------- */

static void on_eof(ra_stream *s) {
  s->flags |= S_EOF;
  update_watch(s);
  if (s->cbs.on_eof)
    s->cbs.on_eof(s, s->ud);
  else
    ra_stream_close(s);
}

static void linger_read(ra_stream *s) {
  uint8_t *scratch = ra_loop_scratch(s->loop);
  for (int i = 0; i < 4; i++) {
    ssize_t n = read(s->fd, scratch, RA_LOOP_SCRATCH_SIZE);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return;
    if (n <= 0) {
      finish(s, 0); /* the peer closed too (or reset): done */
      return;
    }
  }
}

/* Hands n bytes read into buf (the scratch buffer, or the tail of s->in when
 * append) to on_read and keeps what it leaves. */
static void deliver(ra_stream *s, const uint8_t *buf, size_t n, bool append) {
  const uint8_t *data = buf;
  size_t len = n;
  if (append) {
    s->in.len += len;
    data = ra_buf_ptr(&s->in);
    len = s->in.len;
  }
  s->flags &= ~S_REOFFER; /* these callbacks see all the input now */
  size_t used = s->cbs.on_read ? s->cbs.on_read(s, data, len, s->ud) : len;
  if (used > len) used = len;
  if (s->flags & (S_CLOSED | S_CLOSING)) return; /* input was dropped */
  if (append) {
    ra_buf_consume(&s->in, used);
    if (!s->in.len) ra_buf_free(&s->in);
  } else if (used < len && ra_buf_append(&s->in, data + used, len - used) < 0) {
    finish(s, -ENOMEM);
    return;
  }
  if (s->in.len > MAX_LEFTOVER) finish(s, -ENOBUFS);
  /* New callbacks set from inside on_read get what the old ones left. */
  else if (s->in.len && (s->flags & S_REOFFER)) ra_loop_defer(s->loop, &s->defer);
}

/* Where the next read lands: the shared scratch buffer, or after the
 * leftover so that on_read sees one contiguous run. */
static bool read_target(ra_stream *s, uint8_t **buf, size_t *cap) {
  bool append = s->in.len > 0;
  if (append) {
    if (ra_buf_reserve(&s->in, READ_ROOM) < 0) {
      finish(s, -ENOMEM);
      return false;
    }
    *buf = s->in.data + s->in.off + s->in.len;
    *cap = s->in.cap - s->in.off - s->in.len;
  } else {
    *buf = ra_loop_scratch(s->loop);
    *cap = RA_LOOP_SCRATCH_SIZE;
  }
  return true;
}

static void tls_do_read(ra_stream *s);

static void do_read(ra_stream *s) {
  if (s->flags & S_LINGER) {
    linger_read(s);
    return;
  }
  if (s->tls) {
    tls_do_read(s);
    return;
  }
  bool append = s->in.len > 0;
  uint8_t *buf;
  size_t cap;
  if (!read_target(s, &buf, &cap)) return;
  ssize_t n;
  do n = read(s->fd, buf, cap);
  while (n < 0 && errno == EINTR);
  if (n < 0) {
    if (errno != EAGAIN && errno != EWOULDBLOCK) finish(s, -errno);
    return;
  }
  if (n == 0) {
    /* Input held back comes before the end: a reader that paused and was
     * resumed has its re-offer queued, and the FIN may be read first. Offer
     * it now; if the reader pauses again with some left, the FIN is read
     * again after the resume (level-triggered); otherwise what is left is a
     * partial message and the peer is gone. */
    if (append && s->cbs.on_read) {
      deliver(s, buf, 0, true);
      if (s->flags & (S_CLOSED | S_CLOSING)) return;
      if (s->in.len && (s->flags & (S_PAUSED | S_BP))) return;
    }
    on_eof(s);
    return;
  }
  touch(s);
  deliver(s, buf, (size_t)n, append);
}

/* ---- TLS (core/tls.h): the engine turns bytes over, the stream moves them -- */

/* Sends the ciphertext the engine produced. 0, or the error that closed s. */
static int tls_flush_out(ra_stream *s) {
  const uint8_t *p;
  size_t n = ra_tls_conn_out(s->tls, &p);
  if (!n) return 0;
  int rc = -EPIPE;
  if (!(s->flags & S_CLOSED)) {
    struct iovec iov = {(void *)p, n};
    rc = raw_writev(s, &iov, 1, n);
  }
  ra_tls_conn_out_clear(s->tls);
  return rc;
}

static int tls_fail(ra_stream *s, int rc) {
  finish(s, rc);
  return rc;
}

static int tls_writev(ra_stream *s, const struct iovec *iov, int iovcnt, size_t total) {
  ra_tls_conn *t = s->tls;
  if (!t->hs_done) { /* kept, and sent right after the handshake */
    if (t->pending.len + total > MAX_LEFTOVER) return tls_fail(s, -ENOBUFS);
    for (int i = 0; i < iovcnt; i++)
      if (ra_buf_append(&t->pending, iov[i].iov_base, iov[i].iov_len) < 0)
        return tls_fail(s, -ENOMEM);
    return 0;
  }
  /* Small pieces (a response head and its body) go out as one record. */
  static _Thread_local uint8_t agg[16384];
  size_t fill = 0;
  int rc = 0;
  for (int i = 0; i < iovcnt && !rc; i++) {
    const uint8_t *p = iov[i].iov_base;
    size_t l = iov[i].iov_len;
    while (l && !rc) {
      if (!fill && l >= sizeof agg) {
        rc = ra_tls_conn_write(t, p, l);
        break;
      }
      size_t k = l < sizeof agg - fill ? l : sizeof agg - fill;
      memcpy(agg + fill, p, k);
      fill += k;
      p += k;
      l -= k;
      if (fill == sizeof agg) {
        rc = ra_tls_conn_write(t, agg, fill);
        fill = 0;
      }
    }
  }
  if (!rc && fill) rc = ra_tls_conn_write(t, agg, fill);
  if (rc) return tls_fail(s, rc);
  return tls_flush_out(s);
}

/* close_notify is a courtesy: a peer already gone (EPIPE after its own
 * close) does not turn an orderly close into an error. */
static void tls_close_notify(ra_stream *s) {
  if (!s->tls->hs_done || s->tls->notify_sent) return;
  ra_tls_conn_close_notify(s->tls);
  const uint8_t *p;
  size_t n = ra_tls_conn_out(s->tls, &p);
  if (n && !(s->flags & S_CLOSED)) {
    struct iovec iov = {(void *)p, n};
    if (s->head || (s->flags & S_CONNECTING)) {
      if (queue_copy(s, p, n) < 0)
        finish(s, -ENOMEM);
      else
        after_queue(s);
    } else {
      ssize_t w = write_now(s, &iov, 1);
      if (w >= 0 && (size_t)w < n) {
        if (queue_copy(s, p + w, n - (size_t)w) < 0)
          finish(s, -ENOMEM);
        else
          after_queue(s);
      }
    }
  }
  ra_tls_conn_out_clear(s->tls);
}

/* Plaintext to on_read until the engine needs more input, or the stream
 * is paused, backed up or closing. */
static void tls_read_plain(ra_stream *s) {
  while (!(s->flags & (S_PAUSED | S_BP | S_EOF | S_CLOSING | S_CLOSED))) {
    bool append = s->in.len > 0;
    uint8_t *buf;
    size_t cap, n;
    if (!read_target(s, &buf, &cap)) return;
    int rc = ra_tls_conn_read(s->tls, buf, cap, &n);
    /* Reading may answer (a key update, an alert): send that first. */
    if (tls_flush_out(s) < 0 || (s->flags & S_CLOSED)) return;
    if (rc == RA_TLS_AGAIN) {
      ra_tls_conn_in_trim(s->tls);
      return;
    }
    if (rc == RA_TLS_EOF) { /* close_notify: the peer's end of data */
      on_eof(s);
      return;
    }
    if (rc < 0) {
      finish(s, rc);
      return;
    }
    deliver(s, buf, n, append);
  }
}

/* The handshake completed: send what was written meanwhile, then tell. */
static bool tls_established(ra_stream *s) {
  ra_tls_conn *t = s->tls;
  ra_timer_stop(&t->hs_timer);
  update_watch(s); /* a paused stream stops reading now */
  if (s->flags & S_CLOSED) return false;
  if (t->pending.len) {
    ra_buf p = t->pending;
    memset(&t->pending, 0, sizeof t->pending);
    struct iovec iov = {(void *)ra_buf_ptr(&p), p.len};
    int rc = tls_writev(s, &iov, 1, p.len);
    ra_buf_free(&p);
    if (rc < 0) return false;
  }
  if (t->shut_pending) {
    tls_close_notify(s);
    if (s->flags & S_CLOSED) return false;
    if (!s->head && !(s->flags & S_SHUT_DONE)) {
      shutdown(s->fd, SHUT_WR);
      s->flags |= S_SHUT_DONE;
    }
  }
  if (s->flags & S_TLS_CONNECT) {
    s->flags &= ~S_TLS_CONNECT;
    s->on_connect(s, 0, s->ud);
    if (s->flags & (S_CLOSED | S_CLOSING)) return false;
  }
  if (t->on_handshake) {
    t->on_handshake(s, 0, s->ud);
    if (s->flags & (S_CLOSED | S_CLOSING)) return false;
  }
  return true;
}

static void tls_pump(ra_stream *s) {
  ra_tls_conn *t = s->tls;
  if (!t->hs_done) {
    int rc = ra_tls_conn_handshake(t);
    /* Our next flight, or the alert that explains a failure. */
    if (tls_flush_out(s) < 0 || (s->flags & S_CLOSED)) return;
    if (rc < 0) {
      finish(s, rc);
      return;
    }
    if (rc == 0 || !tls_established(s)) return;
  }
  tls_read_plain(s);
}

static void tls_do_read(ra_stream *s) {
  uint8_t *buf = ra_loop_scratch(s->loop);
  ssize_t n;
  do n = read(s->fd, buf, RA_LOOP_SCRATCH_SIZE);
  while (n < 0 && errno == EINTR);
  if (n < 0) {
    if (errno != EAGAIN && errno != EWOULDBLOCK) finish(s, -errno);
    return;
  }
  if (n == 0) {
    if (!s->tls->hs_done) {
      snprintf(s->tls->err, sizeof s->tls->err, "the peer closed during the handshake");
      finish(s, RA_ERR_TLS_HANDSHAKE);
    } else {
      /* Records read before the FIN (held while paused) come first; if
       * reading stops again, the FIN is read again after the resume. */
      if (ra_tls_conn_has_input(s->tls)) {
        tls_read_plain(s);
        if (s->flags & (S_CLOSED | S_CLOSING | S_EOF)) return;
        /* paused with records left: they and the FIN come after the
         * resume. Not paused: what is left is a partial record, and the
         * peer is gone. */
        if ((s->flags & (S_PAUSED | S_BP)) && ra_tls_conn_has_input(s->tls)) return;
      }
      on_eof(s); /* without close_notify: HTTP framing detects truncation */
    }
    return;
  }
  touch(s);
  if (ra_tls_conn_feed(s->tls, buf, (size_t)n) < 0) {
    finish(s, -ENOMEM);
    return;
  }
  tls_pump(s);
}

static void on_hs_timeout(ra_timer *tm, void *ud) {
  (void)tm;
  ra_stream *s = ud;
  snprintf(s->tls->err, sizeof s->tls->err, "handshake not completed within %llu ms",
           (unsigned long long)ra_tls_ctx_handshake_ms(s->tls->ctx));
  finish(s, RA_ERR_TLS_TIMEOUT);
}

/* The socket is connected: arm the handshake timeout; a client speaks first. */
static void tls_begin(ra_stream *s) {
  ra_timer_start(&s->tls->hs_timer, ra_tls_ctx_handshake_ms(s->tls->ctx), 0);
  update_watch(s);
  if (s->flags & S_CLOSED) return;
  if (!ra_tls_ctx_is_server(s->tls->ctx) || ra_tls_conn_has_input(s->tls)) tls_pump(s);
}

/* ---- connecting ---------------------------------------------------------- */

/* Tries the remaining addresses until one connects or is in progress. */
static int connect_next(ra_stream *s) {
  int err = -ECONNREFUSED;
  while (s->ai_next) {
    struct addrinfo *ai = s->ai_next;
    s->ai_next = ai->ai_next;
    int fd = socket(ai->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
      err = -errno;
      continue;
    }
    if (ai->ai_family != AF_UNIX) {
      int one = 1;
      setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    }
    int rc;
    do rc = connect(fd, ai->ai_addr, ai->ai_addrlen);
    while (rc < 0 && errno == EINTR);
    if (rc < 0 && errno != EINPROGRESS) {
      err = -errno;
      close(fd);
      continue;
    }
    /* Connected or not, the answer comes as writability, from the loop:
     * on_connect never runs inside ra_stream_connect. */
    rc = ra_loop_watch(s->loop, fd, RA_WRITABLE, on_io, s);
    if (rc < 0) {
      err = rc;
      close(fd);
      continue;
    }
    s->fd = fd;
    s->watching = RA_WRITABLE;
    return 0;
  }
  return err;
}

static void connect_done(ra_stream *s) {
  int soerr = 0;
  socklen_t l = sizeof soerr;
  if (getsockopt(s->fd, SOL_SOCKET, SO_ERROR, &soerr, &l) < 0) soerr = errno;
  if (soerr) {
    ra_loop_unwatch(s->loop, s->fd);
    close(s->fd);
    s->fd = -1;
    s->watching = 0;
    if (connect_next(s) == 0) return;
    free_addrs(s);
    ra_connect_cb cb = s->on_connect;
    void *ud = s->ud;
    stream_free(s);
    cb(NULL, -soerr, ud);
    return;
  }
  free_addrs(s);
  s->flags &= ~S_CONNECTING;
  touch(s);
  update_watch(s);
  if (s->flags & S_CLOSED) { /* could not watch for reading */
    s->flags |= S_CONNECTING; /* on_defer reports the failure */
    return;
  }
  if (s->tls) { /* on_connect once the handshake is done */
    tls_begin(s);
    return;
  }
  s->on_connect(s, 0, s->ud);
}

static void on_io(ra_loop *loop, int fd, unsigned events, void *ud) {
  (void)loop;
  (void)fd;
  ra_stream *s = ud;
  if (s->flags & S_CONNECTING) {
    connect_done(s);
    return;
  }
  if ((events & RA_WRITABLE) && s->head) {
    flush_queue(s);
    if (s->flags & S_CLOSED) return;
  }
  if ((events & RA_READABLE) && (s->watching & RA_READABLE)) do_read(s);
}

/* ---- public -------------------------------------------------------------- */

static ra_stream *stream_alloc(ra_loop *loop, const ra_stream_cbs *cbs, void *ud) {
  ra_stream *s = calloc(1, sizeof *s);
  if (!s) return NULL;
  s->loop = loop;
  s->fd = -1;
  if (cbs) s->cbs = *cbs;
  s->ud = ud;
  s->high = DEFAULT_HIGH;
  s->low = DEFAULT_LOW;
  ra_timer_init(loop, &s->timer, on_timer, s);
  ra_defer_init(&s->defer, on_defer, s);
  s->last_io = ra_loop_now(loop);
  return s;
}

int ra_stream_new(ra_loop *loop, int fd, const ra_stream_cbs *cbs, void *ud, ra_stream **out) {
  *out = NULL;
  if (fd < 0) return -EBADF;
  ra_stream *s = stream_alloc(loop, cbs, ud);
  if (!s) {
    close(fd);
    return -ENOMEM;
  }
  s->fd = fd;
  int rc = ra_loop_watch(loop, fd, RA_READABLE, on_io, s);
  if (rc < 0) {
    close(fd);
    free(s);
    return rc;
  }
  s->watching = RA_READABLE;
  *out = s;
  return 0;
}

static int unix_addr(ra_stream *s, const char *path) {
  size_t n = strlen(path);
  struct {
    struct addrinfo ai;
    struct sockaddr_un sun;
  } *a;
  if (n == 0) return -EINVAL;
  if (n >= sizeof a->sun.sun_path) return -ENAMETOOLONG;
  a = calloc(1, sizeof *a);
  if (!a) return -ENOMEM;
  a->sun.sun_family = AF_UNIX;
  memcpy(a->sun.sun_path, path, n);
  a->ai.ai_family = AF_UNIX;
  a->ai.ai_socktype = SOCK_STREAM;
  a->ai.ai_addr = (struct sockaddr *)&a->sun;
  a->ai.ai_addrlen = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n + 1);
  s->ai_list = &a->ai; /* first member: free(ai_list) frees the pair */
  s->flags |= S_AI_OWNED;
  return 0;
}

/* The connect attempt's first address, when its list is in. */
static int connect_first(ra_stream *s) {
  s->ai_next = s->ai_list;
  return connect_next(s);
}

/* A name's addresses, from the resolver thread (core/resolve.c): the
 * attempt goes on, or on_connect hears why it cannot. */
static void on_resolved(struct addrinfo *list, int err, void *ud) {
  ra_stream *s = ud;
  s->ai_list = list;
  if (err == 0) err = connect_first(s);
  if (err == 0) return;
  free_addrs(s);
  ra_connect_cb cb = s->on_connect;
  void *cud = s->ud;
  stream_free(s);
  cb(NULL, err, cud);
}

/* Numeric addresses resolve here and now; a name goes to the resolver
 * thread (DNS may take seconds, and the loop serves everyone else
 * meanwhile): 1 when it went there, 0 when s->ai_list is set, or a
 * negative errno. */
static int resolve(ra_stream *s, const char *host, uint16_t port) {
  char name[256];
  size_t n = strlen(host);
  if (n >= 2 && host[0] == '[' && host[n - 1] == ']') { /* "[::1]" */
    host++;
    n -= 2;
  }
  if (n == 0 || n >= sizeof name) return -EINVAL;
  memcpy(name, host, n);
  name[n] = '\0';
  char serv[8];
  snprintf(serv, sizeof serv, "%u", (unsigned)port);
  struct addrinfo hints = {0};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_NUMERICSERV | AI_NUMERICHOST;
  int rc = getaddrinfo(name, serv, &hints, &s->ai_list);
  if (rc == 0) return 0;
  s->ai_list = NULL;
  if (rc != EAI_NONAME) return ra_resolve_error(rc, errno);
  hints.ai_flags = AI_NUMERICSERV;
  rc = ra_resolve_start(s->loop, name, serv, &hints, on_resolved, s);
  return rc < 0 ? rc : 1;
}

static int tls_attach(ra_stream *s, ra_tls_ctx *ctx, const char *server_name) {
  int rc = ra_tls_conn_new(ctx, server_name, &s->tls);
  if (rc) return rc;
  ra_timer_init(s->loop, &s->tls->hs_timer, on_hs_timeout, s);
  return 0;
}

static int connect_impl(ra_loop *loop, const char *host, uint16_t port, ra_tls_ctx *ctx,
                        const char *server_name, const ra_stream_cbs *cbs,
                        ra_connect_cb on_connect, void *ud) {
  if (!loop || !host || !on_connect) return -EINVAL;
  if (ctx && ra_tls_ctx_is_server(ctx)) return -EINVAL;
  ra_stream *s = stream_alloc(loop, cbs, ud);
  if (!s) return -ENOMEM;
  s->flags |= S_CONNECTING;
  s->on_connect = on_connect;
  int rc = 0;
  if (ctx) {
    rc = tls_attach(s, ctx, server_name ? server_name : host);
    s->flags |= S_TLS_CONNECT;
  }
  if (rc == 0) rc = strncmp(host, "unix:", 5) == 0 ? unix_addr(s, host + 5) : resolve(s, host, port);
  if (rc == 1) return 0; /* a name: on_resolved goes on */
  if (rc == 0) rc = connect_first(s);
  if (rc < 0) {
    free_addrs(s);
    stream_free(s);
  }
  return rc;
}

int ra_stream_connect(ra_loop *loop, const char *host, uint16_t port,
                      const ra_stream_cbs *cbs, ra_connect_cb on_connect, void *ud) {
  return connect_impl(loop, host, port, NULL, NULL, cbs, on_connect, ud);
}

int ra_stream_connect_tls(ra_loop *loop, const char *host, uint16_t port, ra_tls_ctx *ctx,
                          const char *server_name, const ra_stream_cbs *cbs,
                          ra_connect_cb on_connect, void *ud) {
  if (!ctx) return -EINVAL;
  return connect_impl(loop, host, port, ctx, server_name, cbs, on_connect, ud);
}

int ra_stream_start_tls(ra_stream *s, ra_tls_ctx *ctx, const char *server_name) {
  if (!s || !ctx) return -EINVAL;
  if (s->tls) return -EALREADY;
  if (s->flags & (S_CLOSED | S_CLOSING | S_SHUT_WANT | S_CONNECTING)) return -EPIPE;
  int rc = tls_attach(s, ctx, ra_tls_ctx_is_server(ctx) ? NULL : server_name);
  if (rc) return rc;
  if (s->in.len) { /* bytes read ahead of the switch are the peer's first records */
    rc = ra_tls_conn_feed(s->tls, ra_buf_ptr(&s->in), s->in.len);
    ra_buf_free(&s->in);
    if (rc) {
      finish(s, rc);
      return 0;
    }
  }
  tls_begin(s);
  return 0;
}

void ra_stream_tls_on_handshake(ra_stream *s, ra_connect_cb cb) {
  if (s->tls) s->tls->on_handshake = cb;
}

bool ra_stream_is_tls(const ra_stream *s) { return s->tls != NULL; }
bool ra_stream_tls_handshake_done(const ra_stream *s) { return s->tls && s->tls->hs_done; }
bool ra_stream_tls_session_reused(const ra_stream *s) {
  return s->tls && s->tls->hs_done && SSL_session_reused(s->tls->ssl) == 1;
}
X509 *ra_stream_tls_peer_cert(const ra_stream *s) {
  return s->tls ? SSL_get0_peer_certificate(s->tls->ssl) : NULL;
}
const char *ra_stream_tls_version(const ra_stream *s) {
  return s->tls ? SSL_get_version(s->tls->ssl) : NULL;
}
const char *ra_stream_tls_alpn(const ra_stream *s) {
  if (!s->tls) return NULL;
  const unsigned char *p = NULL;
  unsigned int n = 0;
  SSL_get0_alpn_selected(s->tls->ssl, &p, &n);
  /* Stored in the session as a length-prefixed string: copy to a buffer
   * with a terminator. */
  static _Thread_local char buf[256];
  if (!p || !n) return "";
  memcpy(buf, p, n);
  buf[n] = '\0';
  return buf;
}
const char *ra_stream_tls_sni(const ra_stream *s) {
  return s->tls ? SSL_get_servername(s->tls->ssl, TLSEXT_NAMETYPE_host_name) : NULL;
}
const char *ra_stream_tls_error(const ra_stream *s) { return s->tls ? s->tls->err : ""; }
SSL *ra_stream_tls_ssl(const ra_stream *s) { return s->tls ? s->tls->ssl : NULL; }

ra_loop *ra_stream_loop(const ra_stream *s) { return s->loop; }
int ra_stream_fd(const ra_stream *s) { return s->fd; }
void *ra_stream_userdata(const ra_stream *s) { return s->ud; }

void ra_stream_set_userdata(ra_stream *s, const ra_stream_cbs *cbs, void *ud) {
  if (cbs) s->cbs = *cbs;
  s->ud = ud;
  /* New callbacks (e.g. after an upgrade) get the bytes the old ones left,
   * without waiting for more input that may never come. */
  reoffer(s);
}

size_t ra_stream_queued(const ra_stream *s) {
  return s->queued + (s->tls ? s->tls->pending.len : 0);
}

void ra_stream_set_watermarks(ra_stream *s, size_t high, size_t low) {
  s->high = high;
  s->low = low > high ? high : low;
  if (s->queued > s->high && !(s->flags & S_BP) && s->head) {
    s->flags |= S_BP | S_DRAIN;
    update_watch(s);
  }
}

void ra_stream_pause_read(ra_stream *s) {
  if (s->flags & S_PAUSED) return;
  s->flags |= S_PAUSED;
  update_watch(s);
}

void ra_stream_resume_read(ra_stream *s) {
  if (!(s->flags & S_PAUSED)) return;
  s->flags &= ~S_PAUSED;
  update_watch(s);
  reoffer(s); /* leftover input (a pipelined request) is handed over again */
}

void ra_stream_set_idle_timeout(ra_stream *s, uint64_t ms) {
  s->idle_ms = ms;
  if (s->flags & (S_CLOSING | S_CLOSED)) return;
  touch(s);
  uint64_t due = next_due(s);
  if (due == UINT64_MAX)
    ra_timer_stop(&s->timer);
  else
    ra_timer_start(&s->timer, due > s->last_io ? due - s->last_io : 0, 0);
}

void ra_stream_set_write_timeout(ra_stream *s, uint64_t ms) {
  s->write_ms = ms;
  if (s->flags & (S_CLOSING | S_CLOSED)) return;
  uint64_t now = ra_loop_now(s->loop);
  if (s->head) s->last_wprog = now; /* timed from now, not from the past */
  uint64_t due = next_due(s);
  if (due == UINT64_MAX)
    ra_timer_stop(&s->timer);
  else
    ra_timer_start(&s->timer, due > now ? due - now : 0, 0);
}

void ra_stream_shutdown(ra_stream *s) {
  if (s->flags & (S_CLOSED | S_CLOSING | S_SHUT_WANT)) return;
  s->flags |= S_SHUT_WANT;
  if (s->tls) { /* close_notify, then FIN; after the handshake if need be */
    if (!s->tls->hs_done) {
      s->tls->shut_pending = true;
      return;
    }
    tls_close_notify(s);
    if (s->flags & S_CLOSED) return;
  }
  if (!s->head && !(s->flags & S_CONNECTING)) {
    shutdown(s->fd, SHUT_WR);
    s->flags |= S_SHUT_DONE;
  }
}

static bool is_tcp(const ra_stream *s) {
  int domain = 0;
  socklen_t l = sizeof domain;
  if (getsockopt(s->fd, SOL_SOCKET, SO_DOMAIN, &domain, &l) < 0) return false;
  return domain == AF_INET || domain == AF_INET6;
}

/* After the queue is flushed: FIN, then (TCP) read and discard until the
 * peer's FIN, so that a peer still sending (a request body we refused) gets
 * our response instead of a reset that would destroy it. */
static void close_progress(ra_stream *s) {
  if (s->head) {
    update_watch(s);
    return;
  }
  if (!(s->flags & S_SHUT_DONE)) {
    shutdown(s->fd, SHUT_WR);
    s->flags |= S_SHUT_DONE;
  }
  if ((s->flags & S_EOF) || !is_tcp(s)) {
    finish(s, 0);
    return;
  }
  if (!(s->flags & S_LINGER)) {
    s->flags |= S_LINGER;
    uint64_t left = s->timer.due > ra_loop_now(s->loop) ? s->timer.due - ra_loop_now(s->loop) : 0;
    if (!ra_timer_active(&s->timer) || left > LINGER_MS) ra_timer_start(&s->timer, LINGER_MS, 0);
  }
  update_watch(s);
}

void ra_stream_close(ra_stream *s) {
  if (s->flags & (S_CLOSING | S_CLOSED)) return;
  if (s->tls) {
    ra_timer_stop(&s->tls->hs_timer);
    ra_buf_free(&s->tls->pending); /* no key to send it with before the handshake */
    tls_close_notify(s);
    if (s->flags & S_CLOSED) return;
  }
  s->flags |= S_CLOSING;
  s->flags &= ~S_REOFFER;
  ra_defer_cancel(s->loop, &s->defer);
  ra_buf_free(&s->in);
  ra_timer_start(&s->timer, s->idle_ms ? s->idle_ms : CLOSE_TIMEOUT_MS, 0);
  close_progress(s);
}

void ra_stream_abort(ra_stream *s, int err) {
  finish(s, err > 0 ? -err : err);
}
