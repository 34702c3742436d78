/* serve/workers.h: a supervisor process and N single-threaded workers.
 *
 *   ra_worker_info w;
 *   ra_workers_opts wo = {.workers = 4};
 *   int rc = ra_workers_start(&wo, &w);
 *   if (rc < 0) return 1;              // nothing was forked
 *   if (rc == 0) return w.exit_code;   // the supervisor, after SIGTERM
 *   // rc == 1: a worker. Build the loop and the servers, listen with
 *   // ra_listen_opts.reuseport, call ra_workers_ready(), run; SIGTERM means
 *   // "drain and exit 0".
 *
 * Fork-like on purpose: the worker goes on from where ra_workers_start was
 * called, so an existing main() gains workers with one hunk, and the
 * supervisor holds nothing a worker needs (no loop, no sockets but the port
 * reservations below). Each worker opens its own listening sockets with
 * SO_REUSEPORT: the kernel spreads connections over per-worker accept
 * queues, and each worker makes its own tunnel key and quote (a tunnel is
 * one connection, so it stays on the worker that accepted it).
 *
 * Supervisor, signals:
 *  - a worker that exits (a crash, a signal, any exit) without being asked
 *    is logged and restarted after a back-off (100 ms doubling up to 10 s,
 *    back to 100 ms once a worker has run a minute);
 *  - SIGHUP: a new generation of N workers starts; once every one of them
 *    has called ra_workers_ready (they are accepting), the old ones get
 *    SIGTERM (they drain: stop accepting, finish in-flight requests, close
 *    WebSockets and tunnels with 1001, exit). A new worker that exits before
 *    it is ready (a bad certificate...) cancels the replacement: the failure
 *    is logged and the current workers stay;
 *  - SIGTERM/SIGINT: SIGTERM to every worker; those still there after
 *    shutdown_timeout_ms (+1 s) get SIGKILL; then ra_workers_start returns
 *    0 with exit_code 0;
 *  - SIGUSR1: passed on to every worker (reserved for key rotation).
 * Workers get PR_SET_PDEATHSIG(SIGTERM): a supervisor killed with SIGKILL
 * does not leave them behind.
 *
 * Draining with SO_REUSEPORT: connections the kernel had already queued on
 * a draining worker's socket when it closes are reset (the kernel does not
 * move them to the group's other sockets unless net.ipv4.tcp_migrate_req
 * is 1, which we recommend; see README "Workers"). A new generation is
 * listening before the old one closes, so only that instant is exposed.
 */
#ifndef RA_SERVE_WORKERS_H
#define RA_SERVE_WORKERS_H

#include "raloop/core/api.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct ra_workers_opts {
  unsigned workers;              /* 0: one per online core */
  uint64_t shutdown_timeout_ms;  /* [10 s] a draining worker's deadline, then SIGKILL */
  uint64_t ready_timeout_ms;     /* [60 s] a new worker must be ready within it */
  /* Supervisor side, all optional. on_ready: once, when the first
   * generation is all ready (e.g. print the port). on_exit: after each
   * worker process is reaped, with the slot it had (see ra_worker_info). */
  void (*on_ready)(void *ud);
  void (*on_exit)(unsigned slot, void *ud);
  void *ud;
} ra_workers_opts;

typedef struct ra_worker_info {
  unsigned index;      /* worker: 0..workers-1 (a replacement keeps the index) */
  unsigned slot;       /* worker: 0..ra_workers_slots()-1, unique among live workers
                          (old and new generations overlap during a SIGHUP) */
  unsigned generation; /* worker: 0 at start, +1 per SIGHUP */
  int exit_code;       /* supervisor: what the process should exit with */
} ra_worker_info;

/* Blocks the supervisor's signals, forks the workers and supervises them.
 * Returns 1 in a worker (info filled; its signal mask and handlers are the
 * caller's again), 0 in the supervisor once every worker is gone after
 * SIGTERM/SIGINT (exit_code 0) or after the first generation failed to
 * start (exit_code 1, the reason logged), or a negative errno if nothing
 * could be forked. Call it once, before creating any loop. */
RA_API int ra_workers_start(const ra_workers_opts *opts, ra_worker_info *info);
/* In a worker: its listeners are open. Until then a replacement does not
 * take over. No-op elsewhere. */
RA_API void ra_workers_ready(void);
/* True in a process forked by ra_workers_start. */
RA_API bool ra_workers_in_worker(void);
/* Online cores (at least 1). */
RA_API unsigned ra_workers_auto(void);
/* Slots for n workers (4 n: a generation, the next, and room for the ones
 * draining). */
RA_API unsigned ra_workers_slots(unsigned n);
/* Port 0 with workers: every worker must bind the same port. Binds a
 * SO_REUSEPORT socket (not listening: it takes no connections) to addr
 * ("HOST:0", "[V6]:0", ":0") in the calling process and keeps it open, so
 * the port stays reserved while workers come and go; writes addr with the
 * real port to out. An addr whose port is not 0, or not TCP, is copied
 * as is. Returns 0, -ENOSPC (out too small), or the errno of socket/bind. */
RA_API int ra_workers_reserve_port(const char *addr, char *out, size_t outlen);

#endif
