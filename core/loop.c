/* core/loop.c: the reactor. One epoll instance, an fd table indexed by fd, a
 * binary min-heap of timers, a FIFO of deferred calls and one signalfd.
 *
 * A turn:  flush queued interest changes -> epoll_wait (timeout = next
 *          timer, 0 if calls are queued) -> dispatch fd events -> run due
 *          timers -> run the deferred calls queued so far.
 *
 * Safety of the dispatch: epoll may report fd A and fd B in one batch and A's
 * callback may unwatch (and close) B, and even open a new fd that gets B's
 * number and watch it. So each table entry carries a generation that is put
 * in the epoll data next to the fd; an event whose generation no longer
 * matches is stale and dropped. The entry is re-fetched after each callback
 * because a callback may grow (move) the table.
 */
#include "raloop/core/loop.h"

#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/signalfd.h>
#include <time.h>
#include <unistd.h>

#include "raloop/core/log.h"
#include "raloop/core/loop_internal.h"

#define MAX_EVENTS 1024

enum {
  FD_WATCHED = 1u, /* has a callback (maybe with no interest) */
  FD_DIRTY = 2u,   /* listed in loop->dirty */
  FD_NOREF = 4u,   /* does not keep ra_loop_run alive (the signalfd) */
  FD_ERRQ = 8u,    /* listed in loop->errq */
};

enum { TIMER_UNREF = 1u };

typedef struct fdent {
  ra_io_cb cb;
  void *ud;
  uint32_t gen;   /* bumped each time the fd starts being watched */
  uint8_t want;   /* RA_READABLE|RA_WRITABLE the user asked for */
  uint8_t kernel; /* what epoll has; 0: not registered */
  uint8_t flags;
} fdent;

typedef struct sig_handler {
  ra_signal_cb cb;
  void *ud;
} sig_handler;

struct ra_loop {
  int epfd;
  bool stop;
  uint64_t now;
  uint64_t turn; /* counts ra_loop_run_once calls */
  size_t refs; /* watched fds with interest + ref'd active timers */

  fdent *fds;
  int nfds; /* table size */
  int *dirty, ndirty; /* fds whose interest changed since the last flush */
  int *errq, nerrq;   /* fds whose (re-)registration failed at flush */

  ra_timer **heap;
  uint32_t heap_len, heap_cap;
  uint64_t timer_seq;

  ra_defer defers; /* sentinel of a circular list */

  int sigfd;
  sigset_t sigmask;    /* signals we deliver */
  sigset_t sigblocked; /* of those, the ones that were blocked before us */
  sig_handler sigs[_NSIG];

  uint8_t *scratch;
  struct epoll_event events[MAX_EVENTS];
};

/* ---- time ---------------------------------------------------------------- */

uint64_t ra_loop_update_time(ra_loop *loop) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  loop->now = (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
  return loop->now;
}

uint64_t ra_loop_now(const ra_loop *loop) { return loop->now; }

uint64_t ra_loop_turn(const ra_loop *loop) { return loop->turn; }

/* ---- the loop ------------------------------------------------------------ */

int ra_loop_new(ra_loop **out) {
  *out = NULL;
  ra_loop *loop = calloc(1, sizeof *loop);
  if (!loop) return -ENOMEM;
  loop->scratch = malloc(RA_LOOP_SCRATCH_SIZE);
  loop->epfd = epoll_create1(EPOLL_CLOEXEC);
  if (!loop->scratch || loop->epfd < 0) {
    int err = loop->scratch ? -errno : -ENOMEM;
    if (loop->epfd >= 0) close(loop->epfd);
    free(loop->scratch);
    free(loop);
    return err;
  }
  loop->sigfd = -1;
  sigemptyset(&loop->sigmask);
  sigemptyset(&loop->sigblocked);
  loop->defers.next = loop->defers.prev = &loop->defers;
  ra_loop_update_time(loop);
  *out = loop;
  return 0;
}

static int run_defers(ra_loop *loop);

/* Deferred calls are how handles finish closing (a stream frees itself from
 * one): run them, and what they queue, so freeing the loop leaks nothing.
 * Bounded: a call that re-queues itself forever is cancelled. */
#define FREE_DEFER_ROUNDS 16
static void finish_defers(ra_loop *loop) {
  for (int i = 0; i < FREE_DEFER_ROUNDS && run_defers(loop) > 0; i++) {}
  while (loop->defers.next != &loop->defers) ra_defer_cancel(loop, loop->defers.next);
}

void ra_loop_free(ra_loop *loop) {
  if (!loop) return;
  finish_defers(loop);
  for (int s = 1; s < _NSIG; s++)
    if (loop->sigs[s].cb) ra_loop_on_signal(loop, s, NULL, NULL);
  close(loop->epfd);
  free(loop->fds);
  free(loop->dirty);
  free(loop->errq);
  free(loop->heap);
  free(loop->scratch);
  free(loop);
}

uint8_t *ra_loop_scratch(ra_loop *loop) { return loop->scratch; }

void ra_loop_stop(ra_loop *loop) { loop->stop = true; }

static bool loop_alive(const ra_loop *loop) {
  return loop->refs > 0 || loop->defers.next != &loop->defers;
}

/* ---- fd table and epoll backend ----------------------------------------- */

static bool counts(const fdent *e) {
  return (e->flags & FD_WATCHED) && e->want && !(e->flags & FD_NOREF);
}

static int grow_fds(ra_loop *loop, int fd) {
  int n = loop->nfds ? loop->nfds : 64;
  while (n <= fd) {
    if (n > INT_MAX / 2) return -ENOMEM;
    n *= 2;
  }
  fdent *fds = realloc(loop->fds, (size_t)n * sizeof *fds);
  if (!fds) return -ENOMEM;
  loop->fds = fds;
  memset(fds + loop->nfds, 0, (size_t)(n - loop->nfds) * sizeof *fds);
  /* dirty/errq hold each fd at most once, so they never need more room */
  int *d = realloc(loop->dirty, (size_t)n * sizeof *d);
  if (!d) return -ENOMEM;
  loop->dirty = d;
  int *q = realloc(loop->errq, (size_t)n * sizeof *q);
  if (!q) return -ENOMEM;
  loop->errq = q;
  loop->nfds = n;
  return 0;
}

static uint32_t to_epoll(unsigned ev) {
  return (ev & RA_READABLE ? EPOLLIN : 0u) | (ev & RA_WRITABLE ? EPOLLOUT : 0u);
}

static int epoll_apply(ra_loop *loop, int fd, fdent *e) {
  struct epoll_event ev = {0};
  ev.events = to_epoll(e->want);
  ev.data.u64 = ((uint64_t)e->gen << 32) | (uint32_t)fd;
  int rc;
  if (!e->want) {
    rc = epoll_ctl(loop->epfd, EPOLL_CTL_DEL, fd, &ev);
    e->kernel = 0;
    return 0; /* gone either way (a closed fd left epoll by itself) */
  }
  if (e->kernel) {
    rc = epoll_ctl(loop->epfd, EPOLL_CTL_MOD, fd, &ev);
    if (rc < 0 && errno == ENOENT) rc = epoll_ctl(loop->epfd, EPOLL_CTL_ADD, fd, &ev);
  } else {
    rc = epoll_ctl(loop->epfd, EPOLL_CTL_ADD, fd, &ev);
    if (rc < 0 && errno == EEXIST) rc = epoll_ctl(loop->epfd, EPOLL_CTL_MOD, fd, &ev);
  }
  if (rc < 0) {
    e->kernel = 0;
    return -errno;
  }
  e->kernel = e->want;
  return 0;
}

int ra_loop_watch(ra_loop *loop, int fd, unsigned events, ra_io_cb cb, void *ud) {
  if (fd < 0 || !cb) return fd < 0 ? -EBADF : -EINVAL;
  if (fd >= loop->nfds) {
    int rc = grow_fds(loop, fd);
    if (rc < 0) return rc;
  }
  fdent *e = &loop->fds[fd];
  bool fresh = !(e->flags & FD_WATCHED);
  if (fresh) {
    e->flags = (uint8_t)((e->flags & (FD_DIRTY | FD_ERRQ)) | FD_WATCHED);
    e->gen++;
    e->want = e->kernel = 0;
  }
  if (counts(e)) loop->refs--;
  e->cb = cb;
  e->ud = ud;
  e->want = (uint8_t)(events & (RA_READABLE | RA_WRITABLE));
  if (!e->kernel && e->want) {
    /* First registration: done now, so that errors (EPERM for a regular
     * file, EBADF) reach the caller. */
    int rc = epoll_apply(loop, fd, e);
    if (rc < 0) {
      if (fresh) e->flags &= (uint8_t)~FD_WATCHED;
      e->want = 0;
      return rc;
    }
  } else if (e->want != e->kernel && !(e->flags & FD_DIRTY)) {
    e->flags |= FD_DIRTY;
    loop->dirty[loop->ndirty++] = fd;
  }
  if (counts(e)) loop->refs++;
  return 0;
}

void ra_loop_unwatch(ra_loop *loop, int fd) {
  if (fd < 0 || fd >= loop->nfds) return;
  fdent *e = &loop->fds[fd];
  if (!(e->flags & FD_WATCHED)) return;
  if (counts(e)) loop->refs--;
  /* Removed now, not queued: the caller usually closes fd next, and a dup of
   * it (fork) would otherwise keep reporting events for a dead entry. */
  if (e->kernel) {
    struct epoll_event ev = {0};
    epoll_ctl(loop->epfd, EPOLL_CTL_DEL, fd, &ev);
  }
  e->flags &= (uint8_t) ~(FD_WATCHED | FD_NOREF);
  e->want = e->kernel = 0;
  e->cb = NULL;
  e->ud = NULL;
}

static void fd_unref(ra_loop *loop, int fd) {
  fdent *e = &loop->fds[fd];
  if (counts(e)) loop->refs--;
  e->flags |= FD_NOREF;
}

static void flush_changes(ra_loop *loop) {
  for (int i = 0; i < loop->ndirty; i++) {
    int fd = loop->dirty[i];
    fdent *e = &loop->fds[fd];
    e->flags &= (uint8_t)~FD_DIRTY;
    if (!(e->flags & FD_WATCHED) || e->want == e->kernel) continue;
    int rc = epoll_apply(loop, fd, e);
    if (rc < 0 && !(e->flags & FD_ERRQ)) {
      ra_warn("loop: epoll_ctl(fd %d): %s", fd, strerror(-rc));
      e->flags |= FD_ERRQ;
      loop->errq[loop->nerrq++] = fd;
    }
  }
  loop->ndirty = 0;
}

static int dispatch_fd(ra_loop *loop, int fd, uint32_t gen, unsigned events) {
  if (fd < 0 || fd >= loop->nfds) return 0;
  fdent *e = &loop->fds[fd];
  if (!(e->flags & FD_WATCHED) || e->gen != gen || !e->want) return 0;
  if (events & RA_ERROR) events |= e->want; /* let the reader/writer find the error */
  events &= (unsigned)e->want | RA_ERROR;
  if (!events) return 0;
  e->cb(loop, fd, events, e->ud);
  return 1;
}

static int dispatch_io(ra_loop *loop, int n) {
  int done = 0;
  for (int i = 0; i < n; i++) {
    const struct epoll_event *ev = &loop->events[i];
    unsigned events = 0;
    if (ev->events & EPOLLIN) events |= RA_READABLE;
    if (ev->events & EPOLLOUT) events |= RA_WRITABLE;
    if (ev->events & (EPOLLERR | EPOLLHUP)) events |= RA_ERROR;
    done += dispatch_fd(loop, (int)(uint32_t)ev->data.u64, (uint32_t)(ev->data.u64 >> 32), events);
  }
  /* Registrations that failed at the last flush: tell their owners. The
   * list may grow while we walk it only by fds not yet in it. */
  for (int i = 0; i < loop->nerrq; i++) {
    int fd = loop->errq[i];
    fdent *e = &loop->fds[fd];
    e->flags &= (uint8_t)~FD_ERRQ;
    if (e->flags & FD_WATCHED) done += dispatch_fd(loop, fd, e->gen, RA_ERROR);
  }
  loop->nerrq = 0;
  return done;
}

/* ---- timers: binary min-heap ordered by (due, seq) ----------------------- */

static bool timer_before(const ra_timer *a, const ra_timer *b) {
  return a->due < b->due || (a->due == b->due && a->seq < b->seq);
}

static void heap_set(ra_loop *loop, uint32_t i, ra_timer *t) {
  loop->heap[i] = t;
  t->heap_idx = i;
}

static void heap_up(ra_loop *loop, uint32_t i) {
  ra_timer *t = loop->heap[i];
  while (i > 0) {
    uint32_t p = (i - 1) / 2;
    if (!timer_before(t, loop->heap[p])) break;
    heap_set(loop, i, loop->heap[p]);
    i = p;
  }
  heap_set(loop, i, t);
}

static void heap_down(ra_loop *loop, uint32_t i) {
  ra_timer *t = loop->heap[i];
  uint32_t n = loop->heap_len;
  for (;;) {
    uint32_t c = 2 * i + 1;
    if (c >= n) break;
    if (c + 1 < n && timer_before(loop->heap[c + 1], loop->heap[c])) c++;
    if (!timer_before(loop->heap[c], t)) break;
    heap_set(loop, i, loop->heap[c]);
    i = c;
  }
  heap_set(loop, i, t);
}

static void heap_remove(ra_loop *loop, ra_timer *t) {
  uint32_t i = t->heap_idx;
  ra_timer *last = loop->heap[--loop->heap_len];
  t->heap_idx = UINT32_MAX;
  if (last == t) return;
  heap_set(loop, i, last);
  if (i > 0 && timer_before(last, loop->heap[(i - 1) / 2]))
    heap_up(loop, i);
  else
    heap_down(loop, i);
}

static int heap_insert(ra_loop *loop, ra_timer *t) {
  if (loop->heap_len == loop->heap_cap) {
    uint32_t cap = loop->heap_cap ? loop->heap_cap * 2 : 64;
    if (cap <= loop->heap_cap || cap > UINT32_MAX / 2) return -ENOMEM;
    ra_timer **h = realloc(loop->heap, (size_t)cap * sizeof *h);
    if (!h) return -ENOMEM;
    loop->heap = h;
    loop->heap_cap = cap;
  }
  loop->heap[loop->heap_len] = t;
  t->heap_idx = loop->heap_len++;
  heap_up(loop, t->heap_idx);
  return 0;
}

void ra_timer_init(ra_loop *loop, ra_timer *timer, ra_timer_cb cb, void *ud) {
  memset(timer, 0, sizeof *timer);
  timer->loop = loop;
  timer->cb = cb;
  timer->ud = ud;
  timer->heap_idx = UINT32_MAX;
}

bool ra_timer_active(const ra_timer *timer) { return timer->heap_idx != UINT32_MAX; }

static void timer_schedule(ra_loop *loop, ra_timer *t, uint64_t timeout_ms) {
  t->due = timeout_ms > UINT64_MAX - loop->now ? UINT64_MAX : loop->now + timeout_ms;
  t->seq = loop->timer_seq++;
}

int ra_timer_start(ra_timer *timer, uint64_t timeout_ms, uint64_t repeat_ms) {
  ra_loop *loop = timer->loop;
  if (!loop || !timer->cb) return -EINVAL;
  if (ra_timer_active(timer)) {
    heap_remove(loop, timer);
  } else if (loop->heap_len == UINT32_MAX - 1) {
    return -ENOMEM;
  } else if (!(timer->flags & TIMER_UNREF)) {
    loop->refs++;
  }
  timer_schedule(loop, timer, timeout_ms);
  timer->repeat = repeat_ms;
  int rc = heap_insert(loop, timer);
  if (rc < 0 && !(timer->flags & TIMER_UNREF)) loop->refs--;
  return rc;
}

void ra_timer_stop(ra_timer *timer) {
  if (!ra_timer_active(timer)) return;
  heap_remove(timer->loop, timer);
  if (!(timer->flags & TIMER_UNREF)) timer->loop->refs--;
}

void ra_timer_unref(ra_timer *timer) {
  if (timer->flags & TIMER_UNREF) return;
  timer->flags |= TIMER_UNREF;
  if (ra_timer_active(timer)) timer->loop->refs--;
}

void ra_timer_ref(ra_timer *timer) {
  if (!(timer->flags & TIMER_UNREF)) return;
  timer->flags &= ~(uint32_t)TIMER_UNREF;
  if (ra_timer_active(timer)) timer->loop->refs++;
}

static int run_timers(ra_loop *loop) {
  /* Only timers started before this pass may fire in it: one that restarts
   * itself with timeout 0 waits for the next turn instead of spinning here. */
  uint64_t limit = loop->timer_seq;
  int done = 0;
  while (loop->heap_len) {
    ra_timer *t = loop->heap[0];
    if (t->due > loop->now || t->seq >= limit) break;
    if (t->repeat) {
      timer_schedule(loop, t, t->repeat);
      heap_down(loop, 0);
    } else {
      heap_remove(loop, t);
      if (!(t->flags & TIMER_UNREF)) loop->refs--;
    }
    t->cb(t, t->ud); /* may stop/restart/free any timer, t included */
    done++;
  }
  return done;
}

/* ---- deferred calls ------------------------------------------------------ */

void ra_defer_init(ra_defer *d, ra_defer_cb cb, void *ud) {
  d->next = d->prev = NULL;
  d->cb = cb;
  d->ud = ud;
  d->queued = false;
}

void ra_loop_defer(ra_loop *loop, ra_defer *d) {
  if (d->queued) return;
  d->queued = true;
  d->prev = loop->defers.prev;
  d->next = &loop->defers;
  d->prev->next = d;
  loop->defers.prev = d;
}

void ra_defer_cancel(ra_loop *loop, ra_defer *d) {
  (void)loop;
  if (!d->queued) return;
  d->queued = false;
  d->prev->next = d->next;
  d->next->prev = d->prev;
  d->next = d->prev = NULL;
}

static int run_defers(ra_loop *loop) {
  if (loop->defers.next == &loop->defers) return 0;
  /* Move the queue aside: calls queued from these callbacks run next turn.
   * A call in the batch can still be cancelled (it is unlinked from the
   * local list like from the loop's). */
  ra_defer batch;
  batch.next = loop->defers.next;
  batch.prev = loop->defers.prev;
  batch.next->prev = &batch;
  batch.prev->next = &batch;
  loop->defers.next = loop->defers.prev = &loop->defers;
  int done = 0;
  while (batch.next != &batch) {
    ra_defer *d = batch.next;
    ra_defer_cancel(loop, d);
    d->cb(d, d->ud);
    done++;
  }
  return done;
}

/* ---- signals ------------------------------------------------------------- */

static void on_signalfd(ra_loop *loop, int fd, unsigned events, void *ud) {
  (void)events;
  (void)ud;
  struct signalfd_siginfo si[8];
  for (;;) {
    ssize_t n = read(fd, si, sizeof si);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return;
    for (size_t i = 0; i < (size_t)n / sizeof si[0]; i++) {
      int signo = (int)si[i].ssi_signo;
      if (signo > 0 && signo < _NSIG && loop->sigs[signo].cb)
        loop->sigs[signo].cb(loop, signo, loop->sigs[signo].ud);
      if (loop->sigfd != fd) return; /* a handler removed the last signal */
    }
    if ((size_t)n < sizeof si) return;
  }
}

int ra_loop_on_signal(ra_loop *loop, int signo, ra_signal_cb cb, void *ud) {
  if (signo <= 0 || signo >= _NSIG || signo == SIGKILL || signo == SIGSTOP) return -EINVAL;
  sigset_t one, old;
  sigemptyset(&one);
  sigaddset(&one, signo);
  if (cb) {
    loop->sigs[signo].cb = cb;
    loop->sigs[signo].ud = ud;
    if (sigismember(&loop->sigmask, signo)) return 0;
    sigaddset(&loop->sigmask, signo);
    if (sigprocmask(SIG_BLOCK, &one, &old) < 0) goto fail;
    if (sigismember(&old, signo)) sigaddset(&loop->sigblocked, signo);
  } else {
    if (!sigismember(&loop->sigmask, signo)) return 0;
    loop->sigs[signo].cb = NULL;
    loop->sigs[signo].ud = NULL;
    sigdelset(&loop->sigmask, signo);
    if (sigisemptyset(&loop->sigmask)) {
      ra_loop_unwatch(loop, loop->sigfd);
      close(loop->sigfd);
      loop->sigfd = -1;
    } else {
      signalfd(loop->sigfd, &loop->sigmask, SFD_NONBLOCK | SFD_CLOEXEC);
    }
    if (!sigismember(&loop->sigblocked, signo)) sigprocmask(SIG_UNBLOCK, &one, NULL);
    sigdelset(&loop->sigblocked, signo);
    return 0;
  }
  int fd = signalfd(loop->sigfd, &loop->sigmask, SFD_NONBLOCK | SFD_CLOEXEC);
  if (fd < 0) goto fail;
  if (loop->sigfd < 0) {
    int rc = ra_loop_watch(loop, fd, RA_READABLE, on_signalfd, NULL);
    if (rc < 0) {
      close(fd);
      errno = -rc;
      goto fail;
    }
    fd_unref(loop, fd); /* a signal handler alone does not keep the loop running */
    loop->sigfd = fd;
  }
  return 0;
fail:;
  int err = -errno;
  ra_loop_on_signal(loop, signo, NULL, NULL);
  return err;
}

/* ---- running ------------------------------------------------------------- */

int ra_loop_run_once(ra_loop *loop, int timeout_ms) {
  int done = 0;
  loop->turn++;
  flush_changes(loop);
  ra_loop_update_time(loop);
  int timeout = timeout_ms;
  /* Nothing can wake an unbounded wait (the deferred calls just ran and
   * queued nothing, no fd or timer keeps the loop alive): do not block. */
  if (timeout < 0 && !loop_alive(loop)) timeout = 0;
  if (loop->defers.next != &loop->defers || loop->nerrq) {
    timeout = 0;
  } else if (loop->heap_len) {
    uint64_t due = loop->heap[0]->due;
    uint64_t wait = due > loop->now ? due - loop->now : 0;
    if (wait > INT_MAX) wait = INT_MAX;
    if (timeout < 0 || (uint64_t)timeout > wait) timeout = (int)wait;
  }
  int n = epoll_wait(loop->epfd, loop->events, MAX_EVENTS, timeout);
  if (n < 0) {
    if (errno != EINTR) return -errno;
    n = 0;
  }
  ra_loop_update_time(loop);
  done += dispatch_io(loop, n);
  done += run_timers(loop);
  /* Last, so that what the callbacks deferred (an on_close) has run when
   * ra_loop_run_once returns, and the next wait starts clean. */
  done += run_defers(loop);
  return done;
}

int ra_loop_run(ra_loop *loop) {
  int rc = 0;
  while (!loop->stop && loop_alive(loop)) {
    rc = ra_loop_run_once(loop, -1);
    if (rc < 0) break;
    rc = 0;
  }
  loop->stop = false;
  return rc;
}
