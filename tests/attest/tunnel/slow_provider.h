/* tests/attest/tunnel/slow_provider.h: a quote provider that takes its
 * time (the simulated TEE's behind delay_ms), fails on demand, and notes
 * how often and from which thread it was called: for the tests of what
 * runs off the loop (key rotation, the client's own attestation).
 * Header-only, test code. */
#ifndef RA_TESTS_SLOW_PROVIDER_H
#define RA_TESTS_SLOW_PROVIDER_H

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "raloop/attest/quote/provider.h"

typedef struct slow {
  ra_quote_provider *inner;
  unsigned delay_ms;
  atomic_int calls, finished, fail; /* finished: calls that returned */
  pthread_t last_thread;
  int *unfinished_at_free; /* when set: calls still running when the provider was freed */
} slow;

/* Each call: noted, delay_ms slept, then -EIO if fail is set. */
static int slow_enter(slow *p) {
  p->last_thread = pthread_self();
  atomic_fetch_add(&p->calls, 1);
  nanosleep(&(struct timespec){p->delay_ms / 1000, (long)(p->delay_ms % 1000) * 1000000L}, NULL);
  return atomic_load(&p->fail) ? -EIO : 0;
}
static int slow_leave(slow *p, int rc) {
  atomic_fetch_add(&p->finished, 1);
  return rc;
}
static int slow_get(void *self, const uint8_t pub[32], ra_quote_evidence *ev) {
  slow *p = self;
  int rc = slow_enter(p);
  if (rc) {
    memset(ev, 0, sizeof *ev);
    return slow_leave(p, rc);
  }
  return slow_leave(p, ra_quote_provider_get(p->inner, pub, ev));
}
static int slow_report(void *self, const uint8_t rd[64], uint8_t **quote, size_t *len) {
  slow *p = self;
  int rc = slow_enter(p);
  return slow_leave(p, rc ? rc : ra_quote_provider_get_report(p->inner, rd, quote, len));
}
static void slow_free(void *self) {
  slow *p = self;
  if (p->unfinished_at_free) *p->unfinished_at_free = atomic_load(&p->calls) - atomic_load(&p->finished);
  ra_quote_provider_free(p->inner);
  free(p);
}
static const ra_quote_provider_ops slow_ops = {"slow", slow_get, slow_free};

/* The simulated TEE in sim_dir behind a delay; *state stays the
 * provider's (freed with it). Returns 0 or the sim's error. */
static int slow_provider_new(const char *sim_dir, unsigned delay_ms, slow **state, ra_quote_provider **out) {
  slow *p = calloc(1, sizeof *p);
  if (!p) return -ENOMEM;
  p->delay_ms = delay_ms;
  int rc = ra_quote_provider_sim(sim_dir, &p->inner);
  if (rc) {
    free(p);
    return rc;
  }
  if ((rc = ra_quote_provider_new(&slow_ops, p, true, true, out))) return rc; /* p freed by it */
  ra_quote_provider_set_get_report(*out, slow_report);
  *state = p;
  return 0;
}

#endif
