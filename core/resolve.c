/* core/resolve.c: getaddrinfo off the loop's thread (resolve_internal.h),
 * as a core/work.h job: names are resolved when a connection is opened to
 * one (an upstream, a PCCS), rarely enough for a thread per lookup. */
#include "raloop/core/resolve_internal.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "raloop/core/error.h"
#include "raloop/core/work.h"

unsigned ra_resolve__test_delay_ms;

typedef struct job {
  char name[256], serv[16];
  struct addrinfo hints;
  unsigned delay_ms;
  struct addrinfo *list; /* the answer, handed to cb */
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

static void lookup(void *ud) { /* on the work's thread */
  job *j = ud;
  if (j->delay_ms)
    nanosleep(&(struct timespec){j->delay_ms / 1000, (long)(j->delay_ms % 1000) * 1000000L}, NULL);
  int rc = getaddrinfo(j->name, j->serv, &j->hints, &j->list);
  if (rc) j->list = NULL;
  j->err = ra_resolve_error(rc, errno);
}

static void answered(ra_work *w, void *ud) {
  (void)w;
  job *j = ud;
  j->cb(j->list, j->err, j->ud);
  free(j);
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
  j->delay_ms = ra_resolve__test_delay_ms;
  j->cb = cb;
  j->ud = ud;
  int rc = ra_work_start(loop, lookup, answered, j, NULL);
  if (rc) free(j);
  return rc;
}
