/* core/resolve_internal.h: host names resolved off the loop thread.
 *
 * getaddrinfo for a name (not a numeric address) may wait seconds on DNS;
 * on the loop's thread that would stall every connection of the process.
 * ra_resolve_start runs it as a core/work.h job and hands the result back
 * on the loop. */
#ifndef RA_CORE_RESOLVE_INTERNAL_H
#define RA_CORE_RESOLVE_INTERNAL_H

#include <netdb.h>

#include "raloop/core/loop.h"

/* list: getaddrinfo's list, owned by the callee from here on (freeaddrinfo);
 * NULL when err (RA_ERR_HOST_UNKNOWN for a name that does not resolve,
 * -ENOMEM, -EIO, or getaddrinfo's system errno). Called from the loop,
 * exactly once, never inside ra_resolve_start. */
typedef void (*ra_resolve_cb)(struct addrinfo *list, int err, void *ud);

/* Starts resolving name / serv with hints (copied; name and serv are copied,
 * name at most 255 bytes). Returns 0 (cb will be called), or -EINVAL,
 * -ENOMEM, -EMFILE, -EAGAIN (no thread) and cb will not be called. There is
 * no cancel: a caller that loses interest ignores the answer (the pending
 * lookup keeps ra_loop_run alive until it is in). */
int ra_resolve_start(ra_loop *loop, const char *name, const char *serv,
                     const struct addrinfo *hints, ra_resolve_cb cb, void *ud);

/* getaddrinfo's result as a negative errno (0 for 0). */
int ra_resolve_error(int gai_rc, int sys_errno);

/* Tests only: the resolver thread sleeps this long before getaddrinfo, so
 * that a test can see the loop run while a name resolves. */
extern unsigned ra_resolve__test_delay_ms;

#endif
