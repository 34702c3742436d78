/* core/work.h: blocking work off the loop's thread.
 *
 * The loop is one thread; a call that may wait (getaddrinfo on DNS, a quote
 * from the TEE's quoting service, a disk) would stall every connection of
 * the process. ra_work_start runs fn(ud) on a thread of its own and, once
 * it returned, done(w, 0, ud) on the loop. fn may touch only what ud points
 * to (and what is otherwise thread-safe): nothing of the loop, no stream,
 * no timer. One thread per work: for the occasional blocking call, not for
 * a request's hot path.
 */
#ifndef RA_CORE_WORK_H
#define RA_CORE_WORK_H

#include "raloop/core/api.h"
#include "raloop/core/loop.h"

typedef struct ra_work ra_work;

/* On the work's thread. */
typedef void (*ra_work_fn)(void *ud);
/* On the loop, after fn returned: the last use of w (freed right after). */
typedef void (*ra_work_done_cb)(ra_work *w, void *ud);

/* Starts fn(ud) on a new thread (every signal blocked in it: signals are
 * the loop thread's). Returns 0 and *out (may be NULL: then the work cannot
 * be cancelled), or -EINVAL, -ENOMEM, -EMFILE, -EAGAIN (no thread), and
 * neither fn nor done will run. An active work keeps ra_loop_run alive. */
RA_API int ra_work_start(ra_loop *loop, ra_work_fn fn, ra_work_done_cb done, void *ud, ra_work **out);

/* Waits (blocking the loop's thread) until fn has returned, then frees w;
 * done is not called. For shutdown: free what fn uses only after this, or
 * after done. Never from fn; not after done ran. */
RA_API void ra_work_cancel(ra_work *w);

#endif
