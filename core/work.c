/* core/work.c: blocking work off the loop's thread (work.h).
 *
 * A joinable thread per work and an eventfd the loop watches: the thread
 * runs fn, then writes the eventfd; the loop joins the thread (it has
 * finished or is about to) and calls done. The thread touches only the
 * work's fn, ud and eventfd, all fixed before it starts. */
#include "raloop/core/work.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/eventfd.h>
#include <unistd.h>

struct ra_work {
  ra_loop *loop;
  int efd;
  pthread_t thread;
  ra_work_fn fn;
  ra_work_done_cb done;
  void *ud;
};

static void *work_thread(void *arg) {
  ra_work *w = arg;
  w->fn(w->ud);
  uint64_t one = 1;
  /* an eventfd write of 1 cannot block or fail short of a count of 2^64 - 2 */
  ssize_t n = write(w->efd, &one, sizeof one);
  (void)n;
  return NULL;
}

static void work_free(ra_work *w) {
  ra_loop_unwatch(w->loop, w->efd);
  close(w->efd);
  free(w);
}

static void on_finished(ra_loop *loop, int fd, unsigned events, void *ud) {
  (void)loop, (void)events;
  ra_work *w = ud;
  uint64_t n;
  if (read(fd, &n, sizeof n) != (ssize_t)sizeof n) return; /* not yet */
  pthread_join(w->thread, NULL); /* fn returned: the thread is ending */
  w->done(w, w->ud);
  work_free(w);
}

static int spawn(ra_work *w) {
  sigset_t all, old;
  sigfillset(&all);
  pthread_sigmask(SIG_SETMASK, &all, &old);
  int rc = pthread_create(&w->thread, NULL, work_thread, w);
  pthread_sigmask(SIG_SETMASK, &old, NULL);
  return -rc;
}

int ra_work_start(ra_loop *loop, ra_work_fn fn, ra_work_done_cb done, void *ud, ra_work **out) {
  if (out) *out = NULL;
  if (!loop || !fn || !done) return -EINVAL;
  ra_work *w = calloc(1, sizeof *w);
  if (!w) return -ENOMEM;
  *w = (ra_work){.loop = loop, .fn = fn, .done = done, .ud = ud};
  w->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (w->efd < 0) {
    int e = -errno;
    free(w);
    return e;
  }
  int rc = ra_loop_watch(loop, w->efd, RA_READABLE, on_finished, w);
  if (rc == 0 && (rc = spawn(w)) != 0) ra_loop_unwatch(loop, w->efd);
  if (rc) {
    close(w->efd);
    free(w);
    return rc;
  }
  if (out) *out = w;
  return 0;
}

void ra_work_cancel(ra_work *w) {
  if (!w) return;
  pthread_join(w->thread, NULL);
  work_free(w);
}
