/* core/resolve.c: getaddrinfo on a thread of its own (resolve_internal.h).
 *
 * One detached thread per name: names are resolved when a connection is
 * opened to one (an upstream, a PCCS), rarely enough that a pool would be
 * more code than it saves. The job is shared by the thread and the loop
 * and freed by whichever lets go of it last. */
#include "raloop/core/resolve_internal.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include "raloop/core/error.h"

unsigned ra_resolve__test_delay_ms;

typedef struct job {
  ra_loop *loop;
  int efd;            /* written by the thread when the answer is in */
  atomic_int refs;    /* the thread's and the loop's */
  char name[256], serv[16];
  struct addrinfo hints;
  unsigned delay_ms;
  struct addrinfo *list; /* the answer: handed to cb, or freed with the job */
  int err;
  ra_resolve_cb cb;
  void *ud;
} job;

int ra_resolve_error(int gai_rc, int sys_errno) {
  switch (gai_rc) {
  case 0: return 0;
  case EAI_MEMORY: return -ENOMEM;
  case EAI_SYSTEM: return sys_errno ? -sys_errno : -EIO;
  default: return RA_ERR_HOST_UNKNOWN;
  }
}

static void job_unref(job *j) {
  if (atomic_fetch_sub(&j->refs, 1) != 1) return;
  close(j->efd);
  if (j->list) freeaddrinfo(j->list);
  free(j);
}

static void *resolve_thread(void *arg) {
  job *j = arg;
  if (j->delay_ms) nanosleep(&(struct timespec){j->delay_ms / 1000, (long)(j->delay_ms % 1000) * 1000000L}, NULL);
  int rc = getaddrinfo(j->name, j->serv, &j->hints, &j->list);
  if (rc) j->list = NULL;
  j->err = ra_resolve_error(rc, errno);
  uint64_t one = 1;
  /* an eventfd write of 1 cannot block or fail short of an overflow at 2^64 - 1 */
  ssize_t w = write(j->efd, &one, sizeof one);
  (void)w;
  job_unref(j);
  return NULL;
}

static void on_answer(ra_loop *loop, int fd, unsigned events, void *ud) {
  (void)events;
  job *j = ud;
  uint64_t n;
  if (read(fd, &n, sizeof n) != (ssize_t)sizeof n) return; /* spurious: the write is still to come */
  ra_loop_unwatch(loop, fd);
  struct addrinfo *list = j->list;
  j->list = NULL; /* the callee's now */
  j->cb(list, j->err, j->ud);
  job_unref(j);
}

/* A detached thread with every signal blocked: signals are the loop
 * thread's to take. */
static int spawn(job *j) {
  pthread_attr_t attr;
  if (pthread_attr_init(&attr)) return -ENOMEM;
  pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
  sigset_t all, old;
  sigfillset(&all);
  pthread_sigmask(SIG_SETMASK, &all, &old);
  pthread_t t;
  int rc = pthread_create(&t, &attr, resolve_thread, j);
  pthread_sigmask(SIG_SETMASK, &old, NULL);
  pthread_attr_destroy(&attr);
  return -rc;
}

int ra_resolve_start(ra_loop *loop, const char *name, const char *serv,
                     const struct addrinfo *hints, ra_resolve_cb cb, void *ud) {
  if (!loop || !name || !serv || !cb) return -EINVAL;
  size_t nl = strlen(name), sl = strlen(serv);
  job *j = calloc(1, sizeof *j);
  if (!j) return -ENOMEM;
  if (nl == 0 || nl >= sizeof j->name || sl >= sizeof j->serv) {
    free(j);
    return -EINVAL;
  }
  memcpy(j->name, name, nl + 1);
  memcpy(j->serv, serv, sl + 1);
  if (hints) j->hints = *hints;
  j->hints.ai_addr = NULL, j->hints.ai_canonname = NULL, j->hints.ai_next = NULL;
  j->loop = loop;
  j->cb = cb;
  j->ud = ud;
  j->delay_ms = ra_resolve__test_delay_ms;
  atomic_init(&j->refs, 2);
  j->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (j->efd < 0) {
    int e = -errno;
    free(j);
    return e;
  }
  int rc = ra_loop_watch(loop, j->efd, RA_READABLE, on_answer, j);
  if (rc == 0 && (rc = spawn(j)) != 0) ra_loop_unwatch(loop, j->efd);
  if (rc) {
    close(j->efd);
    free(j);
  }
  return rc;
}
