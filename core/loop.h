/* core/loop.h: the raloop reactor. One thread, one epoll instance.
 *
 * Everything in raloop hangs off an ra_loop: fd watches, timers, deferred
 * calls and signals. Callbacks run on the loop's thread only. The dispatch
 * stays safe when a callback unwatches/closes any fd or stops any timer,
 * including its own (state is re-fetched after each callback).
 *
 * Errors: functions that can fail return 0 or a negative errno (-ENOMEM...).
 */
#ifndef RA_CORE_LOOP_H
#define RA_CORE_LOOP_H

#include "raloop/core/api.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct ra_loop ra_loop;

/* Creates a loop: 0 and *out, or -ENOMEM / epoll_create1's -errno and *out
 * NULL. */
RA_API int ra_loop_new(ra_loop **out);
/* Call after ra_loop_run returned and the handles on the loop were freed
 * or closed. What is still deferred runs first (a closed stream's on_close
 * and its memory, an aborted exchange's cleanup), and what those calls
 * defer in turn, for up to 16 rounds; a call still queued after that is
 * cancelled. So no extra loop turns are needed before freeing. Timers do
 * not fire; watched fds are not closed (their owners close them). NULL is
 * a no-op. */
RA_API void ra_loop_free(ra_loop *loop);

/* Runs until ra_loop_stop() is called, or until nothing is left that could
 * wake it (no watched fd, no active timer, no deferred call). Returns 0, or a
 * negative errno if epoll itself failed. What keeps it alive: fds watched
 * with events != 0, active timers not unref'd, queued deferred calls. Signal
 * handlers do not (so a SIGTERM handler that closes the listeners lets the
 * loop end once the last connection is done). */
RA_API int ra_loop_run(ra_loop *loop);

/* Runs one turn: waits at most timeout_ms (-1: until something happens; does
 * not block if nothing keeps the loop alive), dispatches fd events, then due
 * timers, then the deferred calls queued so far. Returns the number of
 * events, timers and deferred calls dispatched, or a negative errno. */
RA_API int ra_loop_run_once(ra_loop *loop, int timeout_ms);

/* Makes ra_loop_run return after the current turn. Safe from any callback. */
RA_API void ra_loop_stop(ra_loop *loop);

/* Monotonic milliseconds, cached once per turn (cheap). */
RA_API uint64_t ra_loop_now(const ra_loop *loop);
/* Re-reads the clock and updates the cached value. */
RA_API uint64_t ra_loop_update_time(ra_loop *loop);
/* The current turn's number: changes at the start of every turn (each
 * ra_loop_run_once), so "written in this turn" can be told apart from
 * "written in an earlier one" (the response write budget uses it). */
RA_API uint64_t ra_loop_turn(const ra_loop *loop);

/* ---- fd watches -------------------------------------------------------- */

enum { RA_READABLE = 1u, RA_WRITABLE = 2u };

/* events: RA_READABLE|RA_WRITABLE, plus RA_ERROR reported on hangup/error. */
enum { RA_ERROR = 4u };
typedef void (*ra_io_cb)(ra_loop *loop, int fd, unsigned events, void *ud);

/* Watches fd for `events` (level-triggered), or changes the interest set and
 * callback of a watched fd. events == 0 keeps the fd registered but silent.
 * The change is queued and applied once before the next epoll_wait. */
RA_API int ra_loop_watch(ra_loop *loop, int fd, unsigned events, ra_io_cb cb, void *ud);
/* Stops watching fd (does not close it). No callback for fd runs after this,
 * even one already reported in the current turn. */
RA_API void ra_loop_unwatch(ra_loop *loop, int fd);

/* ---- timers (binary min-heap: O(log n) start/stop, O(1) next due) ------ */

typedef struct ra_timer ra_timer;
typedef void (*ra_timer_cb)(ra_timer *timer, void *ud);

/* Caller-owned, intrusive: embed it in your own struct; no allocation to
 * start or stop. Fields are private. */
struct ra_timer {
  ra_loop *loop;
  ra_timer_cb cb;
  void *ud;
  uint64_t due;      /* loop time in ms */
  uint64_t repeat;   /* 0: one-shot */
  uint64_t seq;      /* FIFO order among timers due at the same ms */
  uint32_t heap_idx; /* UINT32_MAX when not active */
  uint32_t flags;    /* private (unref); fits in the padding */
};

RA_API void ra_timer_init(ra_loop *loop, ra_timer *timer, ra_timer_cb cb, void *ud);
/* (Re)starts: fires after timeout_ms, then every repeat_ms if non-zero.
 * Returns -ENOMEM only if the heap could not grow. */
RA_API int ra_timer_start(ra_timer *timer, uint64_t timeout_ms, uint64_t repeat_ms);
/* Stops if active; safe to call on an inactive timer and from its callback. */
RA_API void ra_timer_stop(ra_timer *timer);
RA_API bool ra_timer_active(const ra_timer *timer);

/* ---- deferred calls: run at the end of the current turn (after the fd
 * events and timers; never inside the call that queued them), in FIFO order.
 * Calls queued from a deferred call run in the next turn. ---------------- */

typedef struct ra_defer ra_defer;
typedef void (*ra_defer_cb)(ra_defer *d, void *ud);
/* Caller-owned, intrusive (like ra_timer). Fields are private. */
struct ra_defer {
  ra_defer *next, *prev;
  ra_defer_cb cb;
  void *ud;
  bool queued;
};
RA_API void ra_defer_init(ra_defer *d, ra_defer_cb cb, void *ud);
/* Queues d (no-op if already queued). */
RA_API void ra_loop_defer(ra_loop *loop, ra_defer *d);
/* Dequeues d if queued. */
RA_API void ra_defer_cancel(ra_loop *loop, ra_defer *d);

/* ---- signals (signalfd) ------------------------------------------------ */

typedef void (*ra_signal_cb)(ra_loop *loop, int signo, void *ud);
/* Blocks signo for the process and delivers it through the loop.
 * One handler per signal; cb == NULL removes it (and unblocks, unless it was
 * blocked before). ra_loop_free removes every handler. -EINVAL for SIGKILL,
 * SIGSTOP and out-of-range numbers. */
RA_API int ra_loop_on_signal(ra_loop *loop, int signo, ra_signal_cb cb, void *ud);

/* ---- keep-alive references ---------------------------------------------
 * Handles that must not keep ra_loop_run alive by themselves (e.g. a
 * repeating housekeeping timer) may be "unref'd": the loop exits when only
 * unref'd things remain. */
RA_API void ra_timer_unref(ra_timer *timer);
/* Undoes ra_timer_unref (timers start ref'd). Both are sticky across
 * stop/start. */
RA_API void ra_timer_ref(ra_timer *timer);

#endif
