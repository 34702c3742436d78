/* serve/serve.c: see serve.h. The assembly ra-hello does by hand, once. */
#include "raloop/serve/serve.h"

#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>

#include "raloop/attest/quote/provider.h"
#include "raloop/core/error.h"
#include "raloop/core/log.h"

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
  bool stopping;
  int stop_parts; /* the HTTP server and the tunnel server, until both drained */
};

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
  rc = ra_tunnel_server_new(s->loop, s->router, p, s->o.tunnel, &s->tunnel);
  ra_quote_provider_free(p);
  if (rc) ra_error("ra_serve: tunnel: %s", ra_strerror(rc));
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
  if (port) ra_info("listening on port %u (TLS)", port);
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
  if (port) ra_info("listening on port %u%s", port, s->tunnel ? " (attested tunnel on /__ra__)" : "");
  return 0;
}

static void on_backstop(ra_timer *t, void *ud) { ra_loop_stop(ud); }

int ra_service_new(ra_router *router, const ra_serve_opts *opts, ra_service **out) {
  *out = NULL;
  ra_service *s = calloc(1, sizeof *s);
  if (!s) return -ENOMEM;
  if (opts) s->o = *opts;
  if (!s->o.shutdown_timeout_ms) s->o.shutdown_timeout_ms = DEFAULT_SHUTDOWN_MS;
  s->router = router;
  int rc = ra_loop_new(&s->loop);
  if (!rc) ra_timer_init(s->loop, &s->backstop, on_backstop, s->loop);
  if (!rc) rc = ra_http_server_new(s->loop, router, s->o.http, &s->http);
  if (!rc) rc = start_tunnel(s);
  if (!rc) rc = start_listeners(s);
  if (rc) {
    ra_service_free(s);
    return rc;
  }
  *out = s;
  return 0;
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
  s->stop_parts = s->tunnel ? 2 : 1;
  /* tunnelled requests in flight are answered like plain ones */
  if (s->tunnel) ra_tunnel_server_shutdown(s->tunnel, s->o.shutdown_timeout_ms, on_tunnel_stopped, s);
  ra_http_server_shutdown(s->http, s->o.shutdown_timeout_ms, on_http_stopped, s);
}

static void on_signal(ra_loop *loop, int signo, void *ud) {
  ra_info("signal %d: stopping gracefully", signo);
  ra_service_stop(ud);
}

int ra_service_run(ra_service *s) {
  signal(SIGPIPE, SIG_IGN); /* a peer that hangs up must not kill the service */
  if (s->o.on_listening) s->o.on_listening(s->http, s->o.ud);
  ra_loop_on_signal(s->loop, SIGINT, on_signal, s);
  ra_loop_on_signal(s->loop, SIGTERM, on_signal, s);
  if (s->o.n_listen_tls) ra_loop_on_signal(s->loop, SIGHUP, on_hup, s);
  int rc = ra_loop_run(s->loop);
  ra_loop_on_signal(s->loop, SIGINT, NULL, NULL);
  ra_loop_on_signal(s->loop, SIGTERM, NULL, NULL);
  if (s->o.n_listen_tls) ra_loop_on_signal(s->loop, SIGHUP, NULL, NULL);
  return rc;
}

void ra_service_free(ra_service *s) {
  if (!s) return;
  if (s->loop) ra_timer_stop(&s->backstop);
  ra_http_server_free(s->http);
  ra_tls_ctx_unref(s->tls);
  ra_tunnel_server_free(s->tunnel);
  ra_loop_free(s->loop);
  free(s);
}

int ra_serve(ra_router *router, const ra_serve_opts *opts) {
  ra_service *s;
  int rc = ra_service_new(router, opts, &s);
  if (rc) return rc;
  rc = ra_service_run(s);
  ra_service_free(s);
  return rc;
}
