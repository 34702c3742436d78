/* apps/hello: ra-hello, the example server.
 *
 *   ra-hello [--listen HOST:PORT] [--quiet] [--header-timeout-ms N]
 *            [--listen-tls HOST:PORT --cert PEM --key PEM [--cert PEM --key PEM]...]
 *            [--tls-handshake-timeout-ms N] [--ra-tls]
 *            [--tee sim|tsm|file:PATH] [--sim-dir DIR] [--no-tunnel] [--no-body-streams]
 *            [--key-lifetime DURATION] [--key-grace DURATION]  (SIGUSR1: rotate the tunnel key now)
 *            [--relay-challenge-ms N] [--relay-queue-bytes N] [--relay-rate N]
 *            [--client-trust-sim DIR] [--client-root PEM]... [--client-mrtd HEX]
 *            [--client-rtmr0..3 HEX] [--client-app-id HEX] [--client-compose-hash HEX]
 *            [--client-allow-debug] [--client-any-measurement-insecure]
 *            [--client-collateral PATH [--client-accept-tcb LIST] ...]
 *            [--workers N|auto] [--metrics] [--access-log text|json]
 *
 * GET /hello -> "world"; POST /echo -> the body back (same Content-Type);
 * GET /delay?ms=N -> "ok" after N ms (an asynchronous answer from a timer);
 * GET /stream?n=N -> N chunks, written as fast as the client reads them;
 * PUT|POST /upload -> {"bytes":N,"sha256":HEX} of a body taken as it arrives
 * (never buffered); GET /bytes?n=N -> N bytes (byte i is i % 251), paced by
 * the client (bulk.c);
 * GET /private -> "secret", attested-only (403 in plaintext);
 * GET /whoami -> JSON of the client's own verified attestation (tee, mrtd,
 * rtmr0..3, app_id when its dstack event log names one...): 403 with a
 * reason for a client without one. The --client-* flags are the policy a
 * client quote must meet (PROTOCOL.md §10; whoami.c); without them no client
 * attestation is asked for and /whoami refuses everyone;
 * WS /echo, WS /chat, WS /relay (ws_routes.c; docs/RELAY.md). Everything is also served through the
 * attested tunnel on /__ra__ (tunnel.c).
 * SIGINT/SIGTERM: graceful stop (in-flight requests complete).
 * HTTPS/WSS: --listen-tls (beside --listen, or alone); the first --cert/--key
 * pair is the default certificate, the others are chosen by SNI. SIGHUP
 * reloads them from the same files without dropping connections (a failed
 * reload is logged and the old certificates stay).
 * --ra-tls (with --listen-tls, instead of --cert/--key): an attested
 * certificate (attest/quote/ratls.h, docs/RATLS.md) is generated at
 * start-up from the --tee provider: a fresh key whose hash is in a quote
 * carried by the certificate, kept in memory only; SIGHUP generates a new
 * key, quote and certificate together.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "raloop.h"
#include "raloop/attest/quote/ratls.h"
#include "raloop/serve/metrics.h"
#include "raloop/serve/workers.h"
#include "apps/hello/bulk.h"
#include "apps/hello/query.h"
#include "apps/hello/tunnel.h"
#include "apps/hello/whoami.h"
#include "apps/hello/ws_routes.h"


static void h_hello(ra_req *req, ra_res *res, void *ud) {
  ra_res_send(res, 200, "text/plain; charset=utf-8", "world", 5);
}

static void h_private(ra_req *req, ra_res *res, void *ud) {
  ra_res_send(res, 200, "text/plain; charset=utf-8", "secret", 6);
}

static void h_echo(ra_req *req, ra_res *res, void *ud) {
  ra_str ct, body = ra_req_body(req);
  char ctype[256];
  const char *type = "application/octet-stream";
  if (ra_req_header(req, "content-type", &ct) && ct.len < sizeof ctype) {
    memcpy(ctype, ct.ptr, ct.len);
    ctype[ct.len] = '\0';
    type = ctype;
  }
  /* A Content-Type with control characters is refused (-EINVAL); the
   * response still ends. */
  ra_res_send(res, 200, type, body.ptr, body.len);
}

/* ---- /delay: an answer from a timer ---------------------------------------- */

typedef struct delay {
  ra_timer timer;
  ra_res *res;
} delay;

static void delay_fire(ra_timer *t, void *ud) {
  delay *d = ud;
  ra_res_send_text(d->res, 200, "ok");
  free(d);
}

static void delay_cancel(ra_res *res, void *ud) {
  /* The client left: stop the timer and end the (cancelled) response. */
  delay *d = ud;
  ra_timer_stop(&d->timer);
  ra_res_end(res);
  free(d);
}

static void h_delay(ra_req *req, ra_res *res, void *ud) {
  uint64_t ms;
  if (!hello_query_num(req, "ms", 600000, &ms)) {
    ra_res_send_text(res, 400, "ms must be 0..600000\n");
    return;
  }
  delay *d = malloc(sizeof *d);
  if (!d) {
    ra_res_send_text(res, 503, "out of memory\n");
    return;
  }
  d->res = res;
  ra_timer_init(ra_res_loop(res), &d->timer, delay_fire, d);
  if (ra_timer_start(&d->timer, ms, 0)) {
    free(d);
    ra_res_send_text(res, 503, "out of memory\n");
    return;
  }
  ra_res_on_cancel(res, delay_cancel, d);
}

/* ---- /stream: N chunks, paced by the client -------------------------------- */

typedef struct streamer {
  ra_res *res;
  long i, n;
} streamer;

#define STREAM_WINDOW (64 * 1024)

static void stream_more(ra_res *res, void *ud) {
  streamer *st = ud;
  char chunk[64];
  while (st->i < st->n && ra_res_pending(res) < STREAM_WINDOW) {
    int len = snprintf(chunk, sizeof chunk, "chunk %ld\n", st->i);
    if (ra_res_write(res, chunk, (size_t)len) < 0) break;
    st->i++;
  }
  if (st->i >= st->n) {
    ra_res_end(res);
    free(st);
  }
  /* else: on_drain calls us again once the client has read some */
}

static void stream_cancel(ra_res *res, void *ud) {
  ra_res_end(res);
  free(ud);
}

static void h_stream(ra_req *req, ra_res *res, void *ud) {
  uint64_t n;
  if (!hello_query_num(req, "n", 100000000, &n)) {
    ra_res_send_text(res, 400, "n must be 0..100000000\n");
    return;
  }
  streamer *st = malloc(sizeof *st);
  if (!st) {
    ra_res_send_text(res, 503, "out of memory\n");
    return;
  }
  st->res = res;
  st->i = 0;
  st->n = (long)n;
  ra_res_set_status(res, 200);
  ra_res_add_header(res, "Content-Type", "text/plain; charset=utf-8");
  ra_res_on_cancel(res, stream_cancel, st);
  ra_res_on_drain(res, stream_more, st);
  stream_more(res, st);
}

/* ---- main --------------------------------------------------------------------- */

/* ---- workers, metrics, JSON access log (serve/workers.h, serve/metrics.h) ---- */

static unsigned n_workers = 1; /* --workers: 1 is a single process, no supervisor */
static ra_worker_info worker;
static ra_metrics *metrics;    /* --metrics */
static bool log_json, log_text = true;

/* Labels of ra_metrics: the routes ra-hello serves (anything else: "other") */
static void metrics_routes(void) {
  static const char *const r[][2] = {{"GET", "/hello"},  {"POST", "/echo"},   {"GET", "/delay"},
                                     {"GET", "/stream"}, {"GET", "/private"}, {"GET", "/whoami"},
                                     {"GET", "/metrics"}, {"PUT", "/upload"},
                                     {"POST", "/upload"}, {"GET", "/bytes"}};
  for (size_t i = 0; i < sizeof r / sizeof r[0]; i++) ra_metrics_add_route(metrics, r[i][0], r[i][1]);
}

/* One whole line per write(): lines from several workers never interleave */
static void log_json_line(const ra_req *req, int status, uint64_t us, bool tunnel) {
  char line[4096];
  size_t n = ra_access_log_json(line, sizeof line, req, status, us, tunnel,
                                n_workers > 1 ? (int)worker.index : -1);
  if (write(STDOUT_FILENO, line, n) < 0) { /* nowhere to report it */ }
}

static void on_workers_exit(unsigned slot, void *ud) { if (metrics) ra_metrics_retire(metrics, slot); }
static void print_listening(const char *scheme, const char *addr, unsigned port);
static const char *sup_listen, *sup_listen_tls;
static void on_workers_ready(void *ud) {
  if (sup_listen) print_listening("http", sup_listen, ra_workers_port(0));
  if (sup_listen_tls) print_listening("https", sup_listen_tls, ra_workers_port(sup_listen ? 1 : 0));
}

/* NULL once freed: SIGUSR1 (ra_serve_rotate_on_signal) reads it. */
static ra_tunnel_server *tunnel;

/* "90", "90s", "500ms", "15m", "24h", "2d": milliseconds, 0 when it does
 * not parse ("0" too: never) */
static uint64_t parse_duration_ms(const char *v, bool *ok) {
  char *end;
  unsigned long long n = strtoull(v, &end, 10);
  uint64_t mul = 1000;
  *ok = end != v;
  if (strcmp(end, "ms") == 0) mul = 1;
  else if (strcmp(end, "m") == 0) mul = 60000;
  else if (strcmp(end, "h") == 0) mul = 3600000;
  else if (strcmp(end, "d") == 0) mul = 86400000;
  else if (*end && strcmp(end, "s") != 0) *ok = false;
  return n * mul;
}

/* One line per request; ud names the transport when it is not plain HTTP
 * (the attested tunnel passes "tunnel"). */
static void access_log(const ra_req *req, int status, uint64_t us, void *ud) {
  if (metrics) ra_metrics_request(metrics, req, status, us, ud != NULL);
  if (log_json) log_json_line(req, status, us, ud != NULL);
  if (!log_text) return;
  ra_str m = ra_req_method(req), t = ra_req_target(req);
  ra_info("%.*s %.*s %d %lluus%s%s%s", (int)m.len, m.ptr, (int)(t.len > 200 ? 200 : t.len), t.ptr,
          status, (unsigned long long)us, ud ? " (" : "", ud ? (const char *)ud : "", ud ? ")" : "");
}

/* Every HTTP connection is gone. Upgraded WebSockets are finishing their
 * closing handshake (1001, bounded by their close timeout): let the loop end
 * by itself once they are closed, with a backstop that does not itself keep
 * the loop alive. */
static void on_backstop(ra_timer *t, void *ud) { (void)t; ra_loop_stop(ud); }
static ra_timer backstop;

static int stop_parts; /* HTTP server and tunnel server, until both drained */
static bool stopping;

static void stop_part_done(ra_loop *loop) {
  if (--stop_parts > 0) return;
  /* No connection or tunnel is left: free the tunnel server. */
  ra_tunnel_server_free(tunnel);
  tunnel = NULL;
  ra_timer_init(loop, &backstop, on_backstop, loop);
  ra_timer_start(&backstop, 6000, 0);
  ra_timer_unref(&backstop);
}

static void on_stopped(ra_http_server *srv, void *ud) {
  (void)srv;
  stop_part_done(ud);
}

static void on_tunnel_stopped(ra_tunnel_server *ts, void *ud) {
  (void)ts;
  stop_part_done(ud);
}

static ra_timer handover;
static bool handing_over;
static void on_handover(ra_timer *t, void *ud);

static void on_signal(ra_loop *loop, int signo, void *ud) {
  ra_http_server *srv = ud;
  if (ra_workers_in_worker() && !handing_over && !stopping) {
    handing_over = true;
    /* a worker draining: stop accepting now (the socket stays with the
     * replacement), and let what was just accepted send its request
     * before the shutdown closes idle connections */
    ra_http_server_close_listeners(srv);
    ra_timer_init(loop, &handover, on_handover, srv);
    ra_timer_start(&handover, 100, 0);
    return;
  }
  if (stopping) return;
  stopping = true;
  if (metrics) ra_metrics_detach(metrics); /* before the tunnel server goes */
  ra_info("signal %d: stopping (in-flight requests finish, 10 s at most)", signo);
  stop_parts = tunnel ? 2 : 1;
  /* tunnelled requests in flight are answered too, within the same deadline */
  if (tunnel) ra_tunnel_server_shutdown(tunnel, 10000, on_tunnel_stopped, loop);
  ra_http_server_shutdown(srv, 10000, on_stopped, loop);
}

static void on_handover(ra_timer *t, void *ud) { on_signal(ra_http_server_loop(ud), SIGTERM, ud); }

/* ---- TLS ----------------------------------------------------------------------- */

#define MAX_CERTS 16
static ra_tls_cert tls_certs[MAX_CERTS];
static size_t n_certs, n_keys;
static uint64_t tls_hs_ms;
static ra_tls_ctx *tls_cur; /* ours; the listeners hold their own references */

/* --ra-tls: the provider the certificates' quotes come from */
static ra_quote_provider *ratls_prov;

/* A new attested key and certificate (PEM, in memory only). Touches only
 * ratls_prov and *rc: runs on a renewal's thread too. */
static int ratls_generate(ra_ratls_cert *rc) {
  static const char *const names[] = {"localhost"};
  ra_ratls_cert_opts ro = {.common_name = "ra-hello RA-TLS", .dns_names = names, .n_dns_names = 1};
  return ra_ratls_generate(ratls_prov, &ro, rc);
}

/* *rc (made by ratls_generate, which returned r) as server options: o
 * points at *c and *rc, which the caller clears. */
static int ratls_opts(ra_tls_server_opts *o, ra_tls_cert *c, ra_ratls_cert *rc, int r, char *err,
                      size_t errlen) {
  if (r) {
    snprintf(err, errlen, "cannot generate the RA-TLS certificate (%s provider): %s",
             ra_quote_provider_name(ratls_prov), ra_strerror(r));
    return r;
  }
  *c = (ra_tls_cert){.cert_pem = rc->cert_pem, .key_pem = rc->key_pem};
  o->certs = c;
  o->ncerts = 1;
  ra_info("RA-TLS: new key and certificate, the key bound into a %s quote%s",
          ra_quote_provider_name(ratls_prov),
          ra_quote_provider_simulated(ratls_prov) ? " (SIMULATED: proves nothing)" : "");
  return 0;
}

static int tls_build(ra_tls_ctx **out, char *err, size_t errlen) {
  ra_tls_server_opts o = {.certs = tls_certs, .ncerts = n_certs, .handshake_timeout_ms = tls_hs_ms};
  ra_tls_cert c;
  ra_ratls_cert rc = {0};
  int r = ratls_prov ? ratls_opts(&o, &c, &rc, ratls_generate(&rc), err, errlen) : 0;
  if (r == 0) r = ra_tls_server_ctx_new(&o, out, err, errlen); /* parses the PEM */
  ra_ratls_cert_clear(&rc);
  return r;
}

/* The certificates again, from the same files, or (--ra-tls) *rc, which
 * ratls_generate made with result gen; the listeners switch to them. */
static void tls_reload(ra_http_server *srv, ra_ratls_cert *rc, int gen) {
  ra_tls_server_opts o = {.certs = tls_certs, .ncerts = n_certs, .handshake_timeout_ms = tls_hs_ms};
  char err[512];
  ra_tls_cert c;
  int r = rc ? ratls_opts(&o, &c, rc, gen, err, sizeof err) : 0;
  /* reload (not a fresh context): the session ticket keys carry over */
  if (r == 0) r = ra_tls_ctx_reload(&tls_cur, &o, err, sizeof err);
  if (r) {
    ra_error("SIGHUP: TLS reload failed, keeping the current certificates: %s", err);
    return;
  }
  size_t n = ra_http_server_set_tls(srv, tls_cur);
  ra_info("SIGHUP: TLS certificates reloaded (%zu listener%s)", n, n == 1 ? "" : "s");
}

/* --ra-tls: a renewal under way. The key, quote and certificate are made
 * on a thread of their own (core/work.h: a real quote may take seconds),
 * the switch happens on the loop. */
typedef struct renewal {
  ra_http_server *srv;
  ra_work *work;
  ra_ratls_cert rc;
  int r;
} renewal;
static renewal *renewing;

static void renewal_make(void *ud) { /* on the work's thread */
  renewal *j = ud;
  j->r = ratls_generate(&j->rc);
}

static void renewal_done(ra_work *w, void *ud) {
  (void)w;
  renewal *j = ud;
  renewing = NULL;
  tls_reload(j->srv, &j->rc, j->r);
  ra_ratls_cert_clear(&j->rc);
  free(j);
}

/* At exit: ratls_prov is freed next, so its call must have returned. */
static void renewal_cancel(void) {
  if (!renewing) return;
  ra_work_cancel(renewing->work);
  ra_ratls_cert_clear(&renewing->rc);
  free(renewing);
  renewing = NULL;
}

/* SIGHUP (and the daily --ra-tls renewal): the certificates again; with
 * --ra-tls a new key, quote and certificate, together, made off the loop. */
static void on_hup(ra_loop *loop, int signo, void *ud) {
  (void)loop, (void)signo;
  ra_http_server *srv = ud;
  if (!ratls_prov) {
    tls_reload(srv, NULL, 0);
    return;
  }
  if (renewing) {
    ra_info("SIGHUP: noted: an RA-TLS renewal is already under way");
    return;
  }
  renewal *j = calloc(1, sizeof *j);
  int r = j ? 0 : -ENOMEM;
  if (j) {
    j->srv = srv;
    r = ra_work_start(ra_http_server_loop(srv), renewal_make, renewal_done, j, &j->work);
  }
  if (r) {
    free(j);
    ra_error("SIGHUP: TLS reload failed, keeping the current certificates: %s", ra_strerror(r));
    return;
  }
  renewing = j;
}

/* --ra-tls: certificates are valid 30 days (ratls.h); renewed daily so
 * that one is never served stale, as SIGHUP does */
#define RATLS_RENEW_MS (24ull * 3600 * 1000)
static void on_ratls_renew(ra_timer *t, void *ud) {
  (void)t;
  on_hup(NULL, 0, ud);
}

static void usage(void) {
  fprintf(stderr, "usage: ra-hello [--listen HOST:PORT] [--quiet] [--header-timeout-ms N]\n"
                  "                [--listen-tls HOST:PORT --cert PEM --key PEM [--cert PEM --key PEM]...]\n"
                  "                [--tls-handshake-timeout-ms N] [--ra-tls]\n"
                  "                [--tee sim|tsm|file:PATH] [--sim-dir DIR] [--no-tunnel] [--no-body-streams]\n"
                  "                [--key-lifetime DURATION (24h; 0: only on SIGUSR1)] [--key-grace DURATION (1h)]\n"
                  "                [--relay-challenge-ms N] [--relay-queue-bytes N] [--relay-rate N]\n"
                  "                [--client-trust-sim DIR] [--client-root PEM]... [--client-mrtd HEX]\n"
                  "                [--client-rtmr0..3 HEX] [--client-app-id HEX] [--client-compose-hash HEX]\n"
                  "                [--client-allow-debug] [--client-any-measurement-insecure]\n"
                  "                [--client-collateral PATH [--client-accept-tcb LIST] ...]\n"
                  "                [--workers N|auto] [--metrics] [--access-log text|json]\n");
}

/* Prints the real port (":0" picks one) for scripts. */
static void print_listening(const char *scheme, const char *addr, unsigned port) {
  if (ra_workers_in_worker()) return; /* the supervisor prints, once */
  char host[256];
  const char *colon = strrchr(addr, ':');
  size_t hl = colon ? (size_t)(colon - addr) : 0;
  if (hl >= sizeof host) hl = sizeof host - 1;
  memcpy(host, addr, hl);
  host[hl] = '\0';
  if (strncmp(addr, "unix:", 5) == 0) printf("listening on %s%s\n", addr,
                                             strcmp(scheme, "https") ? "" : " (TLS)");
  else printf("listening on %s://%s:%u\n", scheme, hl ? host : "0.0.0.0", port);
  fflush(stdout);
}

/* Before the loop exists: what argument parsing may have made. */
static int early_exit(int code, hello_client *hc, ra_quote_provider *p) {
  hello_client_free(hc);
  ra_quote_provider_free(p);
  ra_metrics_free(metrics);
  metrics = NULL;
  return code;
}

int main(int argc, char **argv) {
  const char *listen = NULL, *listen_tls = NULL;
  bool quiet = false;
  long header_timeout = 0;
  uint64_t key_lifetime = 24ull * 3600000, key_grace = 0; /* 0: the tunnel's default (1 h) */
  bool key_set = false;
  const char *tee = NULL, *sim_dir = NULL;
  bool no_tunnel = false, ra_tls = false;
  hello_client hclient; /* --client-*: the policy for clients' own attestation */
  hello_client_init(&hclient);
  int cpr;
  for (int i = 1; i < argc; i++) {
    if (strcmp(argv[i], "--listen") == 0 && i + 1 < argc) {
      listen = argv[++i];
    } else if (strcmp(argv[i], "--listen-tls") == 0 && i + 1 < argc) {
      listen_tls = argv[++i];
    } else if (strcmp(argv[i], "--cert") == 0 && i + 1 < argc && n_certs < MAX_CERTS) {
      tls_certs[n_certs++].cert_file = argv[++i];
    } else if (strcmp(argv[i], "--key") == 0 && i + 1 < argc && n_keys < MAX_CERTS) {
      tls_certs[n_keys++].key_file = argv[++i];
    } else if (strcmp(argv[i], "--tls-handshake-timeout-ms") == 0 && i + 1 < argc) {
      long v = strtol(argv[++i], NULL, 10);
      if (v <= 0) {
        usage();
        return early_exit(2, &hclient, ratls_prov);
      }
      tls_hs_ms = (uint64_t)v;
    } else if (strcmp(argv[i], "--header-timeout-ms") == 0 && i + 1 < argc) {
      header_timeout = strtol(argv[++i], NULL, 10);
      if (header_timeout <= 0) {
        usage();
        return early_exit(2, &hclient, ratls_prov);
      }
    } else if (strcmp(argv[i], "--tee") == 0 && i + 1 < argc) {
      tee = argv[++i];
    } else if (strcmp(argv[i], "--sim-dir") == 0 && i + 1 < argc) {
      sim_dir = argv[++i];
    } else if (strcmp(argv[i], "--relay-challenge-ms") == 0 && i + 1 < argc) {
      hello_relay_opts.challenge_ttl_ms = strtoull(argv[++i], NULL, 10);
    } else if (strcmp(argv[i], "--relay-queue-bytes") == 0 && i + 1 < argc) {
      hello_relay_opts.queue_limit = strtoull(argv[++i], NULL, 10);
    } else if (strcmp(argv[i], "--relay-rate") == 0 && i + 1 < argc) {
      hello_relay_opts.rate_per_s = (uint32_t)strtoul(argv[++i], NULL, 10);
      hello_relay_opts.rate_burst = hello_relay_opts.rate_per_s;
    } else if (strcmp(argv[i], "--ra-tls") == 0) {
      ra_tls = true;
    } else if ((cpr = hello_client_parse(&hclient, argv[i], i + 1 < argc ? argv[i + 1] : NULL)) != 0) {
      if (cpr < 0) return early_exit(2, &hclient, ratls_prov);
      i += cpr - 1;
    } else if ((strcmp(argv[i], "--key-lifetime") == 0 || strcmp(argv[i], "--key-grace") == 0) &&
               i + 1 < argc) {
      bool ok, life = strcmp(argv[i], "--key-lifetime") == 0;
      uint64_t v = parse_duration_ms(argv[++i], &ok);
      if (!ok || (!life && !v)) {
        fprintf(stderr, "ra-hello: %s wants a duration (90s, 15m, 24h; 0: never)\n", argv[i - 1]);
        return early_exit(2, &hclient, ratls_prov);
      }
      *(life ? &key_lifetime : &key_grace) = v;
      key_set = true;
    } else if (strcmp(argv[i], "--no-tunnel") == 0) {
      no_tunnel = true;
    } else if (strcmp(argv[i], "--no-body-streams") == 0) {
      hello_tunnel_body_streams(false); /* PROTOCOL.md §11 off: whole bodies only */
    } else if (strcmp(argv[i], "--workers") == 0 && i + 1 < argc) {
      const char *v = argv[++i];
      long n = strcmp(v, "auto") == 0 ? (long)ra_workers_auto() : strtol(v, NULL, 10);
      if (n < 1 || n > 1024) {
        usage();
        return early_exit(2, &hclient, ratls_prov);
      }
      n_workers = (unsigned)n;
    } else if (strcmp(argv[i], "--metrics") == 0) {
      if (!metrics && ra_metrics_new(1, &metrics) != 0) /* sized below */
        return early_exit(1, &hclient, ratls_prov);
    } else if (strcmp(argv[i], "--access-log") == 0 && i + 1 < argc) {
      const char *v = argv[++i];
      if (strcmp(v, "json") != 0 && strcmp(v, "text") != 0) {
        usage();
        return early_exit(2, &hclient, ratls_prov);
      }
      log_json = strcmp(v, "json") == 0;
    } else if (strcmp(argv[i], "--quiet") == 0) {
      quiet = true;
    } else if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
      usage();
      return early_exit(0, &hclient, ratls_prov);
    } else {
      usage();
      return early_exit(2, &hclient, ratls_prov);
    }
  }
  if (ra_tls && (!listen_tls || n_certs || n_keys)) {
    fprintf(stderr, "ra-hello: --ra-tls needs --listen-tls, and replaces --cert/--key\n");
    usage();
    return early_exit(2, &hclient, ratls_prov);
  }
  if (ra_tls) { /* the provider as the tunnel's: --tee, --sim-dir */
    char dir[4096];
    const char *sd = sim_dir;
    if (!sd && (!tee || strcmp(tee, "sim") == 0) && ra_sim_default_dir(dir, sizeof dir) == 0) sd = dir;
    if (ra_quote_provider_open(tee, sd, &ratls_prov) != 0) { /* logs why */
      fprintf(stderr, "ra-hello: --ra-tls: no quote provider\n");
      return early_exit(1, &hclient, ratls_prov);
    }
  }
  if (n_certs != n_keys || (listen_tls && !n_certs && !ra_tls) || (n_certs && !listen_tls)) {
    fprintf(stderr, "ra-hello: --listen-tls needs --cert and --key, in pairs\n");
    usage();
    return early_exit(2, &hclient, ratls_prov);
  }
  if (!listen && !listen_tls) listen = "127.0.0.1:3000";
  signal(SIGPIPE, SIG_IGN);
  if (quiet) ra_log_set_level(RA_LOG_WARN);
  log_text = !quiet && !log_json;
  /* --workers N: from here on, this runs in each worker (workers.h); the
   * supervisor opens the listening sockets (one per worker, SO_REUSEPORT),
   * and returns from ra_workers_start when it is stopped. */
  if (n_workers > 1) {
    const char *addrs[2];
    size_t na = 0;
    int li = listen ? (int)na++ : -1, lti = listen_tls ? (int)na++ : -1;
    if (li >= 0) addrs[li] = listen;
    if (lti >= 0) addrs[lti] = listen_tls;
    if (metrics) { /* one shared block for every worker */
      ra_metrics_free(metrics);
      if (ra_metrics_new(ra_workers_slots(n_workers), &metrics) != 0)
        return early_exit(1, &hclient, ratls_prov);
      metrics_routes(); /* the labels are shared: set once, before the fork */
    }
    ra_workers_opts wo = {.workers = n_workers, .shutdown_timeout_ms = 10000,
                          .on_exit = on_workers_exit, .on_ready = on_workers_ready,
                          .listen = addrs, .n_listen = na};
    sup_listen = listen;
    sup_listen_tls = listen_tls;
    int wr = ra_workers_start(&wo, &worker);
    if (wr < 0) return early_exit(1, &hclient, ratls_prov);
    if (wr == 0) return early_exit(worker.exit_code, &hclient, ratls_prov); /* the supervisor, stopped */
    if (metrics) ra_metrics_use_slot(metrics, worker.slot, worker.index);
    if (li >= 0) listen = ra_workers_listen_addr((size_t)li); /* "fd:K" */
    if (lti >= 0) listen_tls = ra_workers_listen_addr((size_t)lti);
  }
  if (metrics && n_workers == 1) metrics_routes();
  /* Certificates first: a bad key is a start-up error before anything runs. */
  ra_tls_ctx *tls = NULL;
  if (listen_tls) {
    char err[512];
    if (tls_build(&tls, err, sizeof err)) {
      fprintf(stderr, "ra-hello: TLS: %s\n", err);
      return early_exit(1, &hclient, ratls_prov);
    }
  }
  /* From here on every failure leaves through `fail`, which releases what
   * exists (a refused start-up must not look like a leak under ASan). */
  ra_loop *loop = NULL;
  ra_router *router = NULL;
  ra_http_server *srv = NULL;
  int fail_code = 1;
  tls_cur = tls;
  ra_loop_new(&loop);
  ra_router_new(&router);
  if (!loop || !router) {
    fprintf(stderr, "ra-hello: out of memory\n");
    goto fail;
  }
  ra_route(router, "GET", "/hello", h_hello, NULL);
  ra_route(router, "POST", "/echo", h_echo, NULL);
  ra_route(router, "GET", "/delay", h_delay, NULL);
  ra_route(router, "GET", "/stream", h_stream, NULL);
  hello_bulk_routes(router);
  ra_route_ex(router, "GET", "/private", h_private, NULL, RA_ROUTE_ATTESTED_ONLY);
  ra_route_ex(router, "GET", "/whoami", hello_whoami, NULL, RA_ROUTE_CLIENT_ATTESTED);
  if (metrics) ra_route(router, "GET", "/metrics", ra_metrics_handler, metrics);
  bool logging = log_text || log_json || metrics;
  if (hello_client_build(&hclient) != 0) {
    fail_code = 2;
    goto fail;
  }
  if (!no_tunnel && hello_tunnel_start_ex(loop, router, tee, sim_dir, logging ? access_log : NULL,
                                          hello_client_policy(&hclient), &tunnel) != 0)
    goto fail;
  if (tunnel && key_set) ra_tunnel_server_set_key_lifetime(tunnel, key_lifetime, key_grace);

  ra_http_server_opts opts = {0};
  opts.server_name = "raloop";
  opts.limits.header_timeout_ms = (uint64_t)header_timeout;
  if (logging) opts.access_log = access_log;
  ra_http_server_new(loop, router, &opts, &srv);
  if (!srv || hello_ws_routes(router, srv) != 0) {
    fprintf(stderr, "ra-hello: setup failed\n");
    goto fail;
  }
  int rc = 0;
  if (listen) {
    rc = ra_http_server_listen(srv, listen, NULL);
    if (rc) {
      fprintf(stderr, "ra-hello: cannot listen on %s: %s\n", listen, strerror(-rc));
      goto fail;
    }
    print_listening("http", listen, ra_http_server_port(srv));
  }
  if (listen_tls) {
    rc = ra_http_server_listen_tls(srv, listen_tls, NULL, tls);
    if (rc) {
      fprintf(stderr, "ra-hello: cannot listen on %s: %s\n", listen_tls, strerror(-rc));
      goto fail;
    }
    print_listening("https", listen_tls, ra_http_server_tls_port(srv));
    ra_loop_on_signal(loop, SIGHUP, on_hup, srv);
  }
  ra_timer ratls_renew;
  ra_timer_init(loop, &ratls_renew, on_ratls_renew, srv);
  if (ratls_prov) {
    ra_timer_start(&ratls_renew, RATLS_RENEW_MS, RATLS_RENEW_MS);
    ra_timer_unref(&ratls_renew); /* does not keep the loop alive */
  }

  ra_loop_on_signal(loop, SIGINT, on_signal, srv);
  ra_loop_on_signal(loop, SIGTERM, on_signal, srv);
  ra_loop_on_signal(loop, SIGUSR1, ra_serve_rotate_on_signal, &tunnel); /* ra_serve's */
  if (metrics) ra_metrics_attach(metrics, loop, srv, tunnel);
  ra_workers_ready(); /* listening: a replacement may take over (no-op without workers) */
  rc = ra_loop_run(loop);
  ra_metrics_free(metrics);
  ra_loop_on_signal(loop, SIGINT, NULL, NULL);
  ra_loop_on_signal(loop, SIGTERM, NULL, NULL);
  ra_loop_on_signal(loop, SIGUSR1, NULL, NULL);
  if (listen_tls) ra_loop_on_signal(loop, SIGHUP, NULL, NULL);
  ra_timer_stop(&ratls_renew);
  renewal_cancel();
  ra_tls_ctx_unref(tls_cur);
  ra_http_server_free(srv);
  ra_tunnel_server_free(tunnel);
  hello_client_free(&hclient);
  ra_router_free(router);
  ra_loop_free(loop);
  ra_quote_provider_free(ratls_prov);
  return rc ? 1 : 0;
fail:
  ra_metrics_free(metrics);
  ra_tls_ctx_unref(tls_cur);
  ra_http_server_free(srv);
  ra_tunnel_server_free(tunnel);
  ra_router_free(router);
  ra_loop_free(loop);
  ra_quote_provider_free(ratls_prov);
  hello_client_free(&hclient);
  return fail_code;
}
