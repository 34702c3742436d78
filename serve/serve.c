/* serve/serve.c: see serve.h. The assembly ra-hello does by hand, once. */
#include "raloop/serve/serve.h"

#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>

#include "raloop/attest/quote/provider.h"
#include "raloop/core/error.h"
#include "raloop/core/log.h"
#include "raloop/serve/metrics.h"
#include "raloop/serve/workers.h"

#include <unistd.h>

#define DEFAULT_LISTEN "127.0.0.1:3000"
#define DEFAULT_SHUTDOWN_MS 10000
/* After the HTTP side is done, upgraded WebSockets get this long to finish
 * their closing handshakes before the loop is stopped regardless. */
#define BACKSTOP_MS 6000

struct ra_service {
  ra_serve_opts o;
  ra_loop *loop;
  ra_router *router;
  ra_http_server *http;
  ra_tls_ctx *tls; /* ours; each TLS listener holds its own reference */
  ra_tunnel_server *tunnel;
  ra_timer backstop;
  ra_timer handover; /* a worker: listeners closed, shutdown in a moment */
  bool handing_over;
  bool metrics_route; /* ours on the router: removed at the free */
  ra_http_server_opts http_opts;     /* o.http with our access-log hook */
  ra_tunnel_server_opts tunnel_opts; /* o.tunnel, likewise */
  ra_metrics *metrics;               /* borrowed (ra_serve's) */
  int worker;                        /* index, -1 without workers */
  bool stopping;
  int stop_parts; /* the HTTP server and the tunnel server, until both drained */
};

/* The service's own access-log hook: metrics and the JSON line, then the
 * caller's. ud: the service; the tunnel's hook is told apart by its own
 * function. */
static void log_common(ra_service *s, const ra_req *req, int status, uint64_t us, bool tunnel) {
  if (s->metrics) ra_metrics_request(s->metrics, req, status, us, tunnel);
  if (s->o.access_log_json) {
    char line[4096];
    size_t n = ra_access_log_json(line, sizeof line, req, status, us, tunnel, s->worker);
    if (write(STDOUT_FILENO, line, n) < 0) { /* nowhere to report it */ }
  }
}
static void http_log(const ra_req *req, int status, uint64_t us, void *ud) {
  ra_service *s = ud;
  log_common(s, req, status, us, false);
  if (s->o.http && s->o.http->access_log) s->o.http->access_log(req, status, us, s->o.http->access_log_ud);
}
static void tunnel_log(const ra_req *req, int status, uint64_t us, void *ud) {
  ra_service *s = ud;
  log_common(s, req, status, us, true);
  if (s->o.tunnel && s->o.tunnel->access_log)
    s->o.tunnel->access_log(req, status, us, s->o.tunnel->access_log_ud);
}

static int start_tunnel(ra_service *s) {
  if (s->o.tee && strcmp(s->o.tee, "none") == 0) return 0;
  ra_quote_provider *p;
  int rc = ra_quote_provider_open(s->o.tee, s->o.sim_dir, &p);
  if (rc) {
    ra_error("ra_serve: quote provider: %s", ra_strerror(rc));
    return rc;
  }
  /* a simulated provider, or one that cannot bind the key: the tunnel
   * server says so itself */
  /* the tunnel keeps the provider for its key rotations (SIGUSR1, the
   * key lifetime) */
  s->tunnel_opts.adopt_provider = true;
  rc = ra_tunnel_server_new(s->loop, s->router, p, &s->tunnel_opts, &s->tunnel);
  if (rc) {
    ra_quote_provider_free(p); /* not adopted on failure */
    ra_error("ra_serve: tunnel: %s", ra_strerror(rc));
  }
  return rc;
}

static int start_tls_listeners(ra_service *s) {
  if (!s->o.n_listen_tls) return 0;
  if (!s->o.tls) {
    ra_error("ra_serve: TLS listeners without certificates (opts.tls)");
    return -EINVAL;
  }
  ra_tls_ctx *t;
  char err[512];
  int rc = ra_tls_server_ctx_new(s->o.tls, &t, err, sizeof err);
  if (rc) {
    ra_error("ra_serve: TLS: %s", err);
    return rc;
  }
  for (size_t i = 0; i < s->o.n_listen_tls && !rc; i++) {
    rc = ra_http_server_listen_tls(s->http, s->o.listen_tls[i], NULL, t);
    if (rc) ra_error("ra_serve: cannot listen on %s: %s", s->o.listen_tls[i], ra_strerror(rc));
  }
  s->tls = t;
  uint16_t port = rc ? 0 : ra_http_server_tls_port(s->http);
  if (port && s->worker < 0) ra_info("listening on port %u (TLS)", port); /* workers: once, by the supervisor */
  return rc;
}

int ra_service_reload_tls(ra_service *s) {
  if (!s->o.n_listen_tls || !s->o.tls) return -EINVAL;
  char err[512];
  /* a reload, not a fresh context: session ticket keys carry over */
  int rc = ra_tls_ctx_reload(&s->tls, s->o.tls, err, sizeof err);
  if (rc) {
    ra_error("TLS reload failed, keeping the current certificates: %s", err);
    return rc;
  }
  ra_http_server_set_tls(s->http, s->tls);
  ra_info("TLS certificates reloaded");
  return 0;
}

static void on_hup(ra_loop *loop, int signo, void *ud) { ra_service_reload_tls(ud); }

static int start_listeners(ra_service *s) {
  int rc = start_tls_listeners(s);
  if (rc) return rc;
  if (s->o.n_listen_tls && !s->o.n_listen) return 0; /* TLS only */
  const char *env = getenv("RA_LISTEN");
  const char *fallback[] = {env && *env ? env : DEFAULT_LISTEN};
  const char *const *addrs = s->o.n_listen ? s->o.listen : fallback;
  size_t n = s->o.n_listen ? s->o.n_listen : 1;
  for (size_t i = 0; i < n; i++) {
    rc = ra_http_server_listen(s->http, addrs[i], NULL);
    if (rc) {
      ra_error("ra_serve: cannot listen on %s: %s", addrs[i], ra_strerror(rc));
      return rc;
    }
  }
  uint16_t port = ra_http_server_port(s->http);
  if (port && s->worker < 0)
    ra_info("listening on port %u%s", port, s->tunnel ? " (attested tunnel on /__ra__)" : "");
  return 0;
}

static void on_backstop(ra_timer *t, void *ud) { ra_loop_stop(ud); }
static void on_handover(ra_timer *t, void *ud) { ra_service_stop(ud); }

static int ra_service_new_ex(ra_router *router, const ra_serve_opts *opts, ra_metrics *m, int worker,
                             ra_service **out) {
  *out = NULL;
  ra_service *s = calloc(1, sizeof *s);
  if (!s) return -ENOMEM;
  if (opts) s->o = *opts;
  s->metrics = m;
  if (!s->o.shutdown_timeout_ms) s->o.shutdown_timeout_ms = DEFAULT_SHUTDOWN_MS;
  s->router = router;
  int rc = ra_loop_new(&s->loop);
  if (!rc) ra_timer_init(s->loop, &s->backstop, on_backstop, s->loop);
  if (!rc) ra_timer_init(s->loop, &s->handover, on_handover, s);
  if (s->o.http) s->http_opts = *s->o.http;
  if (s->o.tunnel) s->tunnel_opts = *s->o.tunnel;
  if (s->metrics || s->o.access_log_json) {
    s->http_opts.access_log = http_log;
    s->http_opts.access_log_ud = s;
    s->tunnel_opts.access_log = tunnel_log;
    s->tunnel_opts.access_log_ud = s;
  }
  if (!rc) rc = ra_http_server_new(s->loop, router, &s->http_opts, &s->http);
  s->worker = worker;
  if (!rc && m) rc = ra_route(router, "GET", "/metrics", ra_metrics_handler, m);
  if (!rc && m) s->metrics_route = true;
  if (!rc) rc = start_tunnel(s);
  if (!rc) rc = start_listeners(s);
  if (rc) {
    ra_service_free(s);
    return rc;
  }
  *out = s;
  return 0;
}

int ra_service_new(ra_router *router, const ra_serve_opts *opts, ra_service **out) {
  return ra_service_new_ex(router, opts, NULL, -1, out);
}

ra_loop *ra_service_loop(const ra_service *s) { return s->loop; }
ra_http_server *ra_service_http(const ra_service *s) { return s->http; }
ra_tunnel_server *ra_service_tunnel(const ra_service *s) { return s->tunnel; }

/* Every HTTP connection and upgraded WebSocket is gone (the HTTP server's
 * shutdown closes WebSockets with 1001 and waits for them) and every tunnel
 * drained, both within the same deadline: free the tunnel server, then let
 * the loop end by itself, with a backstop that does not keep it alive. */
static void stop_part_done(ra_service *s) {
  if (--s->stop_parts > 0) return;
  ra_tunnel_server_free(s->tunnel);
  s->tunnel = NULL;
  ra_timer_start(&s->backstop, BACKSTOP_MS, 0);
  ra_timer_unref(&s->backstop);
}

static void on_http_stopped(ra_http_server *srv, void *ud) { stop_part_done(ud); }
static void on_tunnel_stopped(ra_tunnel_server *ts, void *ud) { stop_part_done(ud); }

void ra_service_stop(ra_service *s) {
  if (s->stopping) return;
  s->stopping = true;
  if (s->metrics) ra_metrics_detach(s->metrics); /* before the tunnel server goes */
  s->stop_parts = s->tunnel ? 2 : 1;
  /* tunnelled requests in flight are answered like plain ones */
  if (s->tunnel) ra_tunnel_server_shutdown(s->tunnel, s->o.shutdown_timeout_ms, on_tunnel_stopped, s);
  ra_http_server_shutdown(s->http, s->o.shutdown_timeout_ms, on_http_stopped, s);
}


static void on_signal(ra_loop *loop, int signo, void *ud) {
  ra_service *s = ud;
  if (s->worker >= 0 && !s->handing_over && !s->stopping) {
    /* a worker draining: stop accepting now (the socket stays with its
     * replacement) and let connections just accepted send their request
     * before the shutdown closes idle ones */
    s->handing_over = true;
    ra_info("signal %d: worker %d draining", signo, s->worker);
    ra_http_server_close_listeners(s->http);
    ra_timer_start(&s->handover, 100, 0);
    return;
  }
  ra_info("signal %d: stopping gracefully", signo);
  ra_service_stop(s);
}

static void rotated_on_signal(ra_tunnel_server *tunnel, int status, void *ud) {
  (void)tunnel, (void)ud;
  if (status) ra_warn("SIGUSR1: noted: rotation failed (%s), the tunnel key stays", ra_strerror(status));
  else ra_info("SIGUSR1: noted: tunnel key rotated");
}

void ra_serve_rotate_on_signal(ra_loop *loop, int signo, void *ud) {
  ra_tunnel_server *tunnel = *(ra_tunnel_server *const *)ud;
  (void)loop, (void)signo;
  if (!tunnel) {
    ra_info("SIGUSR1: noted (no tunnel: no key to rotate)");
    return;
  }
  /* the provider runs off the loop (a real quote may take seconds) */
  int rc = ra_tunnel_server_rotate_start(tunnel, rotated_on_signal, NULL);
  if (rc == -EALREADY) ra_info("SIGUSR1: noted: a key rotation is already under way");
  else if (rc) rotated_on_signal(tunnel, rc, NULL);
}

int ra_service_run(ra_service *s) {
  signal(SIGPIPE, SIG_IGN); /* a peer that hangs up must not kill the service */
  if (s->o.on_listening) s->o.on_listening(s->http, s->o.ud);
  ra_loop_on_signal(s->loop, SIGINT, on_signal, s);
  ra_loop_on_signal(s->loop, SIGTERM, on_signal, s);
  if (s->o.n_listen_tls && s->worker < 0) ra_loop_on_signal(s->loop, SIGHUP, on_hup, s);
  ra_loop_on_signal(s->loop, SIGUSR1, ra_serve_rotate_on_signal, &s->tunnel);
  if (s->metrics) ra_metrics_attach(s->metrics, s->loop, s->http, s->tunnel);
  ra_workers_ready(); /* no-op without workers */
  int rc = ra_loop_run(s->loop);
  ra_loop_on_signal(s->loop, SIGINT, NULL, NULL);
  ra_loop_on_signal(s->loop, SIGTERM, NULL, NULL);
  if (s->o.n_listen_tls && s->worker < 0) ra_loop_on_signal(s->loop, SIGHUP, NULL, NULL);
  ra_loop_on_signal(s->loop, SIGUSR1, NULL, NULL);
  if (s->metrics) ra_metrics_detach(s->metrics);
  return rc;
}

void ra_service_free(ra_service *s) {
  if (!s) return;
  if (s->loop) ra_timer_stop(&s->backstop);
  if (s->loop) ra_timer_stop(&s->handover);
  if (s->metrics) ra_metrics_detach(s->metrics);
  if (s->metrics_route) ra_router_remove(s->router, "GET", "/metrics");
  ra_http_server_free(s->http);
  ra_tls_ctx_unref(s->tls);
  ra_tunnel_server_free(s->tunnel);
  ra_loop_free(s->loop);
  free(s);
}

/* One service in this process; metrics and worker index as given. */
static int serve_one(ra_router *router, const ra_serve_opts *opts, ra_metrics *m, int worker) {
  ra_service *s;
  int rc = ra_service_new_ex(router, opts, m, worker, &s);
  if (rc) return rc;
  rc = ra_service_run(s);
  ra_service_free(s);
  return rc;
}

/* The block, labelled with opts->metrics_routes ("METHOD /path"). */
static int metrics_new(const ra_serve_opts *o, unsigned nslots, ra_metrics **out) {
  int rc = ra_metrics_new(nslots, out);
  for (size_t i = 0; !rc && i < o->n_metrics_routes; i++) {
    const char *r = o->metrics_routes[i], *sp = strchr(r, ' ');
    char method[32];
    if (!sp || (size_t)(sp - r) >= sizeof method) {
      rc = -EINVAL;
      break;
    }
    memcpy(method, r, (size_t)(sp - r));
    method[sp - r] = '\0';
    rc = ra_metrics_add_route(*out, method, sp + 1);
  }
  if (!rc) rc = ra_metrics_add_route(*out, "GET", "/metrics");
  if (rc) {
    ra_error("ra_serve: metrics: bad route label: %s", ra_strerror(rc));
    ra_metrics_free(*out);
    *out = NULL;
  }
  return rc;
}

static void on_workers_exit(unsigned slot, void *ud) {
  if (ud) ra_metrics_retire(ud, slot);
}

/* The supervisor logs the ports once (addresses: TLS ones first). */
static size_t ready_n_tls, ready_n_plain;
static void on_workers_ready(void *ud) {
  if (ready_n_tls) ra_info("listening on port %u (TLS)", ra_workers_port(0));
  if (ready_n_plain) ra_info("listening on port %u", ra_workers_port(ready_n_tls));
}

static int serve_workers(ra_router *router, const ra_serve_opts *opts) {
  ra_serve_opts o = *opts;
  /* the addresses, as ra_service_new would take them: TLS ones first */
  const char *env = getenv("RA_LISTEN");
  const char *fallback[] = {env && *env ? env : DEFAULT_LISTEN};
  const char *const *plain = o.n_listen ? o.listen : fallback;
  size_t n_plain = o.n_listen ? o.n_listen : (o.n_listen_tls ? 0 : 1);
  size_t na = o.n_listen_tls + n_plain;
  const char **addrs = calloc(na + 1, sizeof *addrs);
  const char **fds = calloc(na + 1, sizeof *fds);
  if (!addrs || !fds) {
    free(addrs);
    free(fds);
    return -ENOMEM;
  }
  for (size_t i = 0; i < o.n_listen_tls; i++) addrs[i] = o.listen_tls[i];
  for (size_t i = 0; i < n_plain; i++) addrs[o.n_listen_tls + i] = plain[i];
  unsigned n = o.workers == RA_WORKERS_AUTO ? ra_workers_auto() : o.workers;
  ra_metrics *m = NULL;
  int rc = o.metrics ? metrics_new(&o, ra_workers_slots(n), &m) : 0;
  ra_workers_opts wo = {.workers = n, .shutdown_timeout_ms = o.shutdown_timeout_ms,
                        .listen = addrs, .n_listen = na, .on_exit = on_workers_exit,
                        .on_ready = on_workers_ready, .ud = m};
  ready_n_tls = o.n_listen_tls;
  ready_n_plain = n_plain;
  ra_worker_info w;
  if (!rc) rc = ra_workers_start(&wo, &w);
  if (rc == 1) { /* a worker: its own service on its sockets, then exit */
    for (size_t i = 0; i < na; i++) fds[i] = ra_workers_listen_addr(i);
    o.listen_tls = fds;
    o.listen = fds + o.n_listen_tls;
    o.n_listen = n_plain;
    if (m) ra_metrics_use_slot(m, w.slot, w.index);
    rc = serve_one(router, &o, m, (int)w.index);
    ra_metrics_free(m);
    exit(rc ? 1 : 0);
  }
  if (rc == 0) {
    if (w.exit_code) ra_error("ra_serve: the workers could not start");
    rc = w.exit_code ? -ECHILD : 0;
  } else {
    ra_error("ra_serve: workers: %s", ra_strerror(rc));
  }
  ra_metrics_free(m);
  free(addrs);
  free(fds);
  return rc;
}

int ra_serve(ra_router *router, const ra_serve_opts *opts) {
  if (opts && opts->workers > 1) return serve_workers(router, opts);
  if (!opts || !opts->metrics) return serve_one(router, opts, NULL, -1);
  ra_metrics *m;
  int rc = metrics_new(opts, 1, &m);
  if (rc) return rc;
  rc = serve_one(router, opts, m, -1);
  ra_metrics_free(m);
  return rc;
}
