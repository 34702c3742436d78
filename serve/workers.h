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
 * supervisor holds nothing a worker needs but the listening sockets.
 *
 * Sockets: for each address in opts.listen the supervisor opens, before
 * forking, one SO_REUSEPORT listening socket per worker index (port 0: the
 * first picks the port, the others bind it), so the kernel spreads
 * connections over N accept queues. Worker i adopts socket i
 * (ra_workers_listen_addr gives "fd:K" for ra_listen), and so does every
 * process that later replaces worker i: the socket and the connections
 * queued on it outlive a crash or a SIGHUP replacement, instead of being
 * reset with the worker's own socket (what the kernel does to a closing
 * SO_REUSEPORT listener's queue unless net.ipv4.tcp_migrate_req is set).
 * The price: while worker i is down (its restart back-off), connections the
 * kernel hashes to socket i wait for it. Each worker makes its own tunnel
 * key and quote (a tunnel is one connection, so it stays on one worker).
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
 *    is logged and the current workers stay. A draining worker should close
 *    its listeners first (ra_http_server_close_listeners) and shut down a
 *    moment later (ra-hello: 100 ms), so that connections it had just
 *    accepted still get their answer;
 *  - SIGTERM/SIGINT: SIGTERM to every worker; those still there after
 *    shutdown_timeout_ms (+1 s) get SIGKILL; then ra_workers_start returns
 *    0 with exit_code 0;
 *  - SIGUSR1: passed on to every worker (reserved for key rotation).
 * Workers get PR_SET_PDEATHSIG(SIGTERM): a supervisor killed with SIGKILL
 * does not leave them behind.
 *
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
  /* TCP addresses to listen on ("HOST:PORT", "[V6]:PORT", ":PORT"; IP
   * literals or names), n_listen of them: see "Sockets" above. */
  const char *const *listen;
  size_t n_listen;
  int backlog;                   /* [1024] per socket */
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
/* In a worker: "fd:K", its socket for opts.listen[i], for ra_listen /
 * ra_http_server_listen (NULL elsewhere or out of range). */
RA_API const char *ra_workers_listen_addr(size_t i);
/* The port of opts.listen[i] (0 before ra_workers_start or out of range). */
RA_API uint16_t ra_workers_port(size_t i);

#endif
