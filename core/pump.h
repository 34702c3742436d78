/* core/pump.h: two connected sockets joined both ways on the loop.
 *
 * A byte pump moves what arrives on one fd to the other, in both
 * directions, without looking at it (ra-proxy forwards TLS it cannot
 * read). Per direction:
 *  - splice(2) through a pipe of its own (zero-copy: the bytes never enter
 *    user space) where both ends allow it (TCP, unix); where they do not
 *    (the kernel answers EINVAL: a family or kernel without splice
 *    support, e.g. unix sockets on some 4.x kernels; vsock is not promised) that direction
 *    falls back to read/write through a shared scratch buffer, once.
 *  - back-pressure: at most `buffer` bytes are in flight (in the pipe, or
 *    the unwritten rest of a read); the source is not read until they are
 *    written, so a slow reader on one side makes the other side's kernel
 *    buffers fill and its sender wait. Memory never grows with the
 *    traffic: splicing, the bytes in flight are pipe pages in the kernel;
 *    with read/write, the pump holds one `buffer` of heap per direction,
 *    allocated the first time the destination does not take a whole read
 *    (none while the traffic keeps up).
 *  - half-close: end of stream on one side is forwarded as
 *    shutdown(SHUT_WR) to the other once everything before it is written;
 *    the other direction keeps flowing.
 * The pump ends when both directions have ended (err 0), on the first read
 * or write error of either side (err -ECONNRESET, -EPIPE...), or after
 * idle_timeout_ms without a byte moved either way (-ETIMEDOUT). Both fds
 * are then closed.
 */
#ifndef RA_CORE_PUMP_H
#define RA_CORE_PUMP_H

#include "raloop/core/api.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "raloop/core/loop.h"

typedef struct ra_pump ra_pump;

typedef struct ra_pump_opts {
  uint64_t idle_timeout_ms; /* 0: none */
  size_t buffer;            /* [64 KiB] bytes in flight per direction (the
                               pipe's size when splicing; rounded by the
                               kernel to pages, at least 4 KiB) */
  bool no_splice;           /* read/write only (tests, comparisons) */
} ra_pump_opts;

enum { RA_PUMP_A_TO_B = 0, RA_PUMP_B_TO_A = 1 };

/* Called once, from the loop, when the pump has ended: err is 0 when both
 * directions reached end of stream, else the first error (negative errno).
 * Both fds are already closed; the statistics below can still be read.
 * The pump is freed when this returns: do not call ra_pump_free on it. */
typedef void (*ra_pump_done_cb)(ra_pump *p, int err, void *ud);

/* Joins fd_a and fd_b (connected stream sockets, either family; made
 * non-blocking here). Takes ownership of both fds: they are closed in
 * every case, also when this fails. opts may be NULL. Returns 0 and *out,
 * or -EINVAL, -ENOMEM, -EMFILE (pipes), the watch's -errno and *out NULL
 * (done is then never called). */
RA_API int ra_pump_new(ra_loop *loop, int fd_a, int fd_b, const ra_pump_opts *opts,
                       ra_pump_done_cb done, void *ud, ra_pump **out);

/* Bytes written so far in direction dir (RA_PUMP_A_TO_B or RA_PUMP_B_TO_A). */
RA_API uint64_t ra_pump_bytes(const ra_pump *p, int dir);
/* Whether direction dir still moves bytes with splice(2) (false after a
 * fallback to read/write, or with no_splice). */
RA_API bool ra_pump_spliced(const ra_pump *p, int dir);

/* Stops at once: closes both fds, done is not called. NULL is a no-op.
 * Not from inside the pump's own done callback. */
RA_API void ra_pump_free(ra_pump *p);

#endif
