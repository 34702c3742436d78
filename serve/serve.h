/* serve/serve.h: the common service in one call.
 *
 *   ra_router *r;
 *   ra_router_new(&r);
 *   ra_route(r, "GET", "/hello", hello, NULL);
 *   return ra_serve(r, NULL) ? 1 : 0;   // 127.0.0.1:3000, TEE auto, tunnel on /__ra__
 *
 * ra_serve owns everything a service needs around the router: the loop, the
 * HTTP server and its listeners, the quote provider and the attested tunnel
 * on /__ra__, SIGINT/SIGTERM, and the graceful stop (listeners closed,
 * in-flight requests answered within shutdown_timeout_ms, WebSockets closed
 * with 1001). Each of those pieces stays usable on its own (core/loop.h,
 * http/server.h, attest/tunnel/server.h) for programs that need more
 * control; ra_service_* is the middle ground: the same assembly, with the
 * loop and servers reachable before it runs. */
#ifndef RA_SERVE_SERVE_H
#define RA_SERVE_SERVE_H

#include "raloop/core/api.h"

#include <stdint.h>

#include "raloop/attest/tunnel/server.h"
#include "raloop/core/loop.h"
#include "raloop/core/tls.h"
#include "raloop/http/router.h"
#include "raloop/http/server.h"

typedef struct ra_serve_opts {
  /* Listen addresses as in ra_listen ("HOST:PORT", "[::1]:PORT",
   * "unix:PATH", "vsock:CID:PORT"), n_listen of them. None: the
   * environment's RA_LISTEN, else "127.0.0.1:3000". The first TCP port is
   * logged ("listening on port N") at info level. */
  const char *const *listen;
  size_t n_listen;
  /* HTTPS/WSS listeners (same address forms), n_listen_tls of them, all
   * with the certificates of tls (core/tls.h: files, PEM buffers or OpenSSL
   * objects; the first the default, the others by SNI). With TLS listeners
   * and no plain ones, RA_LISTEN and the default are not used: the service
   * is TLS only. SIGHUP rebuilds the context from tls (files are read
   * again) and swaps it without dropping connections; a failure is logged
   * and the current certificates stay. tls and what it points at must
   * outlive the service. A bad certificate or key fails ra_service_new
   * with RA_ERR_TLS_CONFIG and the reason logged. */
  const char *const *listen_tls;
  size_t n_listen_tls;
  const ra_tls_server_opts *tls;
  /* Where quotes come from: NULL or "auto" (configfs-tsm when the kernel
   * offers it, else the simulated TEE, with a loud warning), "sim", "tsm",
   * "file:PATH" (a fixed quote that cannot bind the key), or "none" (no
   * tunnel: plain HTTP and WebSockets only). */
  const char *tee;
  const char *sim_dir;            /* the simulated TEE's keys [XDG state dir] */
  uint64_t shutdown_timeout_ms;   /* [10 s] graceful stop, then abort */
  const ra_http_server_opts *http;        /* NULL: defaults */
  const ra_tunnel_server_opts *tunnel;    /* NULL: defaults */
  /* Called once the listeners are up (e.g. to print the port). Optional.
   * With workers: in each worker (its srv), once it listens. */
  void (*on_listening)(ra_http_server *srv, void *ud);
  void *ud;
  /* ra_serve only (not ra_service_new): 0 or 1, one process as described
   * above; N > 1, or RA_WORKERS_AUTO (one per online core): a supervisor
   * and N worker processes (serve/workers.h: per-worker SO_REUSEPORT
   * sockets opened by the supervisor, restart with back-off, SIGHUP
   * replaces the workers gracefully, which also reloads TLS certificates,
   * SIGTERM/SIGINT stop all, SIGUSR1 passed on). TCP listen addresses only.
   * SIGUSR1 (to the one process, or passed on to every worker) rotates the
   * tunnel key now (ra_tunnel_server_rotate); tunnel->key_lifetime_ms
   * rotates it on a schedule (default 24 h).
   * The first port is logged once, by the supervisor. Each worker builds
   * its own service (its tunnel key and quote); in a worker, ra_serve does
   * not return: the worker exits when it has drained. */
  unsigned workers;
  /* GET /metrics in the Prometheus text format (serve/metrics.h; with
   * workers, the sum over all of them, whichever worker answers). */
  bool metrics;
  /* Route labels of ra_http_requests_total, as "METHOD /path" (exact
   * paths; other requests count as route="other"), n_metrics_routes of
   * them (at most RA_METRICS_MAX_ROUTES - 1). */
  const char *const *metrics_routes;
  size_t n_metrics_routes;
  /* One JSON object per request on stdout (ra_access_log_json), besides
   * the http/tunnel access_log callbacks, which are still called. */
  bool access_log_json;
} ra_serve_opts;

#define RA_WORKERS_AUTO 0xffffffffu

typedef struct ra_service ra_service;

/* Builds the service around router (borrowed: it must outlive the service):
 * loop, HTTP server, listeners, provider and tunnel. opts may be NULL and is
 * copied (the strings it points at must outlive the service). Returns 0 and
 * *out, or a negative code (the listen address's error, the provider's, ...;
 * the reason is logged). */
RA_API int ra_service_new(ra_router *router, const ra_serve_opts *opts, ra_service **out);
RA_API ra_loop *ra_service_loop(const ra_service *s);
RA_API ra_http_server *ra_service_http(const ra_service *s);
/* NULL with tee "none". */
RA_API ra_tunnel_server *ra_service_tunnel(const ra_service *s);
/* Runs until SIGINT/SIGTERM (then stops gracefully) or ra_service_stop.
 * Sets SIGPIPE to SIG_IGN for the process (a peer that hangs up must not
 * kill the service; write errors are handled per connection).
 * Returns 0, or a negative code if the loop failed. */
RA_API int ra_service_run(ra_service *s);
/* Starts the graceful stop, as a signal would. Safe from any callback. */
RA_API void ra_service_stop(ra_service *s);
/* What SIGHUP does: rebuild the TLS context from opts->tls and swap it in.
 * Returns 0, -EINVAL without TLS listeners, or the context's error (the
 * current one stays). */
RA_API int ra_service_reload_tls(ra_service *s);
/* Frees the service and everything it created (not the router). */
RA_API void ra_service_free(ra_service *s);

/* What SIGUSR1 does in ra_service_run, for programs that assemble the
 * pieces themselves (ra_loop_on_signal(loop, SIGUSR1,
 * ra_serve_rotate_on_signal, &tunnel)): a new tunnel key
 * (ra_tunnel_server_rotate_start: the provider runs on a thread of its
 * own while the loop serves on), logged at info level when it is in
 * ("SIGUSR1: noted: tunnel key rotated"); a failure keeps the current key
 * and is logged as a warning with its reason; a signal while a rotation is
 * under way is noted and changes nothing. ud: a ra_tunnel_server *const *, read at each signal;
 * the server it points at may be NULL (no tunnel: noted, nothing to
 * rotate). With workers the supervisor passes SIGUSR1 on to each. */
RA_API void ra_serve_rotate_on_signal(ra_loop *loop, int signo, void *ud);

/* ra_service_new + ra_service_run + ra_service_free. Returns 0 after a
 * graceful stop, or a negative code. */
RA_API int ra_serve(ra_router *router, const ra_serve_opts *opts);

#endif
