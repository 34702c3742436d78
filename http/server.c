/* http/server.c: listeners, the stream adapter under each connection,
 * graceful shutdown, and shared bits (Date cache, status texts). */
#include "raloop/http/server.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "raloop/core/error.h"
#include "raloop/core/log.h"
#include "raloop/core/proxy_proto.h"
#include "raloop/core/tls.h"
#include "raloop/http/conn_internal.h"

/* ---- the stream under a connection ---------------------------------------- */

static size_t orphan_read(ra_stream *s, const uint8_t *d, size_t n, void *ud) { return n; }
static void orphan_close(ra_stream *s, int err, void *ud) {}
static const ra_stream_cbs orphan_cbs = {.on_read = orphan_read, .on_close = orphan_close};

/* Bytes of every HTTP connection of this process (ra_http_server_stats):
 * counted here, once per read and write, rather than per server, so that
 * the hot path needs no lookup. One loop per thread: thread-local. */
static _Thread_local uint64_t bytes_in, bytes_out;

static size_t st_read(ra_stream *s, const uint8_t *d, size_t n, void *ud) {
  size_t used = ra_http_conn_feed(ud, d, n);
  bytes_in += used;
  return used;
}
static void st_drain(ra_stream *s, void *ud) { ra_http_conn_drain(ud); }
static void st_eof(ra_stream *s, void *ud) { ra_http_conn_eof(ud); }
static void st_close(ra_stream *s, int err, void *ud) {
  /* A failed handshake never reaches HTTP (no access-log line): say why at
   * debug level (scanners and wrong ports are routine, not errors). */
  if (err <= RA_ERR_TLS_HANDSHAKE && err >= RA_ERR_TLS_CONFIG)
    ra_debug("TLS connection closed: %s (%s)", ra_strerror(err), ra_stream_tls_error(s));
  ra_http_conn_closed(ud);
}
static const ra_stream_cbs conn_cbs = {
    .on_read = st_read, .on_drain = st_drain, .on_eof = st_eof, .on_close = st_close};

static int io_writev(void *io, const struct iovec *iov, int n) {
  for (int i = 0; i < n; i++) bytes_out += iov[i].iov_len;
  return ra_stream_writev(io, iov, n);
}
static size_t io_queued(void *io) { return ra_stream_queued(io); }
static void io_set_reading(void *io, bool on) {
  if (on) ra_stream_resume_read(io); else ra_stream_pause_read(io);
}
static void io_close(void *io) { ra_stream_close(io); }
static void io_destroy(void *io) {
  ra_stream_set_userdata(io, &orphan_cbs, NULL);
  ra_stream_abort(io, -ECANCELED);
}
static ra_stream *io_detach(void *io) {
  ra_stream_set_userdata(io, &orphan_cbs, NULL);
  ra_stream_resume_read(io);
  return io;
}
static const ra_http_io_ops stream_io = {
    .writev = io_writev,
    .queued = io_queued,
    .set_reading = io_set_reading,
    .close = io_close,
    .destroy = io_destroy,
    .detach = io_detach,
};

/* ---- server ---------------------------------------------------------------------- */

static void lim_defaults(ra_http_limits *l) {
  if (!l->max_request_line) l->max_request_line = 8 * 1024;
  if (!l->max_header_bytes) l->max_header_bytes = 16 * 1024;
  if (!l->max_headers) l->max_headers = 100;
  if (!l->max_body) l->max_body = 8 * 1024 * 1024;
  if (!l->header_timeout_ms) l->header_timeout_ms = 10000;
  if (!l->body_timeout_ms) l->body_timeout_ms = 30000;
  if (!l->body_deadline_ms) l->body_deadline_ms = 120000;
  if (!l->write_timeout_ms) l->write_timeout_ms = 60000;
  if (!l->keepalive_timeout_ms) l->keepalive_timeout_ms = 60000;
  if (!l->max_pipelined) l->max_pipelined = 32;
  if (!l->max_connections) l->max_connections = 100000;
}

static void shutdown_timer_cb(ra_timer *t, void *ud);
static void on_accept(ra_listener *l, int fd, const struct sockaddr *peer, socklen_t peer_len, void *ud);
static void done_cb(ra_defer *d, void *ud);

int ra_http_server_new(ra_loop *loop, ra_router *router, const ra_http_server_opts *opts,
                       ra_http_server **out) {
  *out = NULL;
  if (!loop || !router) return -EINVAL;
  ra_http_server *srv = calloc(1, sizeof *srv);
  if (!srv) return -ENOMEM;
  srv->loop = loop;
  srv->router = router;
  if (opts) {
    srv->lim = opts->limits;
    srv->access_log = opts->access_log;
    srv->access_log_ud = opts->access_log_ud;
  }
  lim_defaults(&srv->lim);
  const char *name = opts && opts->server_name ? opts->server_name : "raloop";
  /* Header-safe: printable ASCII only. */
  size_t o = 0;
  for (size_t i = 0; name[i] && o + 1 < sizeof srv->server_name; i++)
    if (name[i] >= 0x20 && name[i] < 0x7f) srv->server_name[o++] = name[i];
  srv->server_name[o] = '\0';
  ra_timer_init(loop, &srv->shutdown_timer, shutdown_timer_cb, srv);
  ra_defer_init(&srv->done_defer, done_cb, srv);
  if (opts && opts->proxy_protocol &&
      ra_proxy_proto_gate_new(loop, srv->lim.header_timeout_ms, on_accept, srv, &srv->pp) < 0) {
    free(srv);
    return -ENOMEM;
  }
  *out = srv;
  return 0;
}

static void on_accept(ra_listener *l, int fd, const struct sockaddr *peer, socklen_t peer_len, void *ud) {
  ra_http_server *srv = ud;
  if (srv->shutting_down) {
    close(fd);
    return;
  }
  ra_stream *s;
  if (ra_stream_new(srv->loop, fd, &orphan_cbs, NULL, &s) < 0) return;
  ra_tls_ctx *tls = NULL;
  for (size_t i = 0; i < srv->nlisteners; i++)
    if (srv->listeners[i] == l) tls = srv->listener_tls[i];
  /* The HTTP connection above never knows: it reads and writes plaintext. */
  if (tls && ra_stream_start_tls(s, tls, NULL) < 0) {
    ra_stream_abort(s, -ENOMEM);
    return;
  }
  ra_http_conn *c;
  if (ra_http_conn_new(srv, &stream_io, s, &c) < 0) {
    ra_stream_abort(s, -ENOMEM);
    return;
  }
  ra_http_conn_set_peer(c, peer);
  ra_stream_set_userdata(s, &conn_cbs, c);
  ra_stream_set_write_timeout(s, srv->lim.write_timeout_ms);
  if (srv->nconns >= srv->lim.max_connections && !srv->accept_paused) {
    srv->accept_paused = true;
    for (size_t i = 0; i < srv->nlisteners; i++) ra_listener_pause(srv->listeners[i]);
  }
}

static int listen_impl(ra_http_server *srv, const char *addr, const ra_listen_opts *opts,
                       ra_tls_ctx *tls) {
  if (srv->shutting_down) return -ESHUTDOWN;
  if (tls && !ra_tls_ctx_is_server(tls)) return -EINVAL;
  ra_listener **ls = realloc(srv->listeners, (srv->nlisteners + 1) * sizeof *ls);
  if (!ls) return -ENOMEM;
  srv->listeners = ls;
  ra_tls_ctx **lt = realloc(srv->listener_tls, (srv->nlisteners + 1) * sizeof *lt);
  if (!lt) return -ENOMEM;
  srv->listener_tls = lt;
  ra_listener *l;
  /* With the PROXY protocol, its header is read before on_accept. */
  int rc = srv->pp ? ra_listen(srv->loop, addr, opts, ra_proxy_proto_gate_accept, srv->pp, &l)
                   : ra_listen(srv->loop, addr, opts, on_accept, srv, &l);
  if (rc) return rc;
  srv->listener_tls[srv->nlisteners] = ra_tls_ctx_ref(tls);
  srv->listeners[srv->nlisteners++] = l;
  return 0;
}

int ra_http_server_listen(ra_http_server *srv, const char *addr, const ra_listen_opts *opts) {
  return listen_impl(srv, addr, opts, NULL);
}

int ra_http_server_listen_tls(ra_http_server *srv, const char *addr, const ra_listen_opts *opts,
                              ra_tls_ctx *tls) {
  if (!tls) return -EINVAL;
  return listen_impl(srv, addr, opts, tls);
}

size_t ra_http_server_set_tls(ra_http_server *srv, ra_tls_ctx *tls) {
  size_t n = 0;
  if (!tls || !ra_tls_ctx_is_server(tls)) return 0;
  for (size_t i = 0; i < srv->nlisteners; i++) {
    if (!srv->listener_tls[i]) continue;
    ra_tls_ctx_unref(srv->listener_tls[i]); /* connections keep their own reference */
    srv->listener_tls[i] = ra_tls_ctx_ref(tls);
    n++;
  }
  return n;
}

uint16_t ra_http_server_tls_port(const ra_http_server *srv) {
  for (size_t i = 0; i < srv->nlisteners; i++) {
    uint16_t p = srv->listener_tls[i] ? ra_listener_port(srv->listeners[i]) : 0;
    if (p) return p;
  }
  return 0;
}

uint16_t ra_http_server_port(const ra_http_server *srv) {
  for (size_t i = 0; i < srv->nlisteners; i++) {
    uint16_t p = ra_listener_port(srv->listeners[i]);
    if (p) return p;
  }
  return 0;
}

ra_loop *ra_http_server_loop(const ra_http_server *srv) { return srv->loop; }
ra_router *ra_http_server_router(const ra_http_server *srv) { return srv->router; }

void ra_http_server_conn_gone(ra_http_server *srv) {
  if (srv->accept_paused && srv->nconns < srv->lim.max_connections && !srv->shutting_down) {
    srv->accept_paused = false;
    for (size_t i = 0; i < srv->nlisteners; i++) ra_listener_resume(srv->listeners[i]);
  }
  if (srv->shutting_down && srv->nconns == 0) {
    ra_timer_stop(&srv->shutdown_timer);
    if (srv->done) ra_loop_defer(srv->loop, &srv->done_defer);
  }
}

/* ---- upgraded connections ------------------------------------------------------ */

struct ra_conn_slot {
  ra_http_server *srv; /* NULL once the server is gone */
  ra_conn_slot *prev, *next;
  ra_conn_slot_stop_cb on_stop;
  void *ud;
  bool stopped; /* on_stop(false) was called */
};

void ra_http_server_stats(const ra_http_server *srv, ra_http_stats *st) {
  size_t up = 0;
  for (const ra_conn_slot *sl = srv->slots; sl; sl = sl->next) up++;
  st->upgraded = up;
  st->connections = srv->nconns - up;
  st->bytes_in = bytes_in;
  st->bytes_out = bytes_out;
}

ra_conn_slot *ra_http_server_slot_new(ra_http_server *srv) {
  ra_conn_slot *sl = calloc(1, sizeof *sl);
  if (!sl) return NULL;
  sl->srv = srv;
  sl->next = srv->slots;
  if (srv->slots) srv->slots->prev = sl;
  srv->slots = sl;
  srv->nconns++;
  return sl;
}

static void slot_unlink(ra_conn_slot *sl) {
  ra_http_server *srv = sl->srv;
  if (sl->prev) sl->prev->next = sl->next; else srv->slots = sl->next;
  if (sl->next) sl->next->prev = sl->prev;
  sl->prev = sl->next = NULL;
  sl->srv = NULL;
  srv->nconns--;
}

void ra_conn_slot_watch(ra_conn_slot *sl, ra_conn_slot_stop_cb on_stop, void *ud) {
  if (!sl) return;
  sl->on_stop = on_stop;
  sl->ud = ud;
  if (on_stop && sl->srv && sl->srv->shutting_down && !sl->stopped) {
    sl->stopped = true;
    on_stop(ud, false);
  }
}

void ra_conn_slot_release(ra_conn_slot *sl) {
  if (!sl) return;
  ra_http_server *srv = sl->srv;
  if (srv) {
    slot_unlink(sl);
    ra_http_server_conn_gone(srv);
  }
  free(sl);
}

/* Tells every upgraded connection to stop (gracefully, or now). Each
 * on_stop only starts a close (the release comes from a later turn), but
 * walk from a copy of `next` all the same. */
static void slots_stop(ra_http_server *srv, bool now) {
  for (ra_conn_slot *sl = srv->slots, *next; sl; sl = next) {
    next = sl->next;
    if (!now && sl->stopped) continue;
    sl->stopped = true;
    if (sl->on_stop) sl->on_stop(sl->ud, now);
  }
}

static void done_cb(ra_defer *d, void *ud) {
  ra_http_server *srv = ud;
  ra_http_shutdown_cb done = srv->done;
  srv->done = NULL;
  /* Last: done may free the server. */
  if (done) done(srv, srv->done_ud);
}

static void shutdown_timer_cb(ra_timer *t, void *ud) {
  ra_http_server *srv = ud;
  if (srv->nconns) ra_warn("http: shutdown deadline passed, aborting %zu connection(s)", srv->nconns);
  while (srv->conns) ra_http_conn_destroy(srv->conns);
  slots_stop(srv, true);
}

static void close_listeners(ra_http_server *srv) {
  for (size_t i = 0; i < srv->nlisteners; i++) {
    ra_listener_close(srv->listeners[i]);
    ra_tls_ctx_unref(srv->listener_tls[i]);
  }
  free(srv->listeners);
  free(srv->listener_tls);
  srv->listeners = NULL;
  srv->listener_tls = NULL;
  srv->nlisteners = 0;
}

void ra_http_server_close_listeners(ra_http_server *srv) { close_listeners(srv); }

void ra_http_server_shutdown(ra_http_server *srv, uint64_t deadline_ms, ra_http_shutdown_cb done, void *ud) {
  if (srv->shutting_down) return;
  srv->shutting_down = true;
  srv->done = done;
  srv->done_ud = ud;
  for (size_t i = 0; i < srv->nhooks; i++) srv->hooks[i].fn(srv, srv->hooks[i].ud);
  /* Upgraded connections (WebSockets: 1001) close by themselves; also
   * those handed over later in this turn (ra_conn_slot_watch). */
  slots_stop(srv, false);
  ra_proxy_proto_gate_free(srv->pp); /* still waiting for a header: closed */
  srv->pp = NULL;
  close_listeners(srv);
  /* Connections unlink themselves only from a later loop turn (their
   * I/O's close is deferred), so plain iteration is safe. */
  for (ra_http_conn *c = srv->conns; c; c = ra_http_conn_next(c)) ra_http_conn_shutdown(c);
  if (srv->nconns == 0) {
    if (srv->done) ra_loop_defer(srv->loop, &srv->done_defer);
  } else {
    ra_timer_start(&srv->shutdown_timer, deadline_ms, 0);
  }
}

int ra_http_server_on_shutdown(ra_http_server *srv, ra_http_shutdown_hook hook, void *ud) {
  if (!hook) return -EINVAL;
  ra_http_hook *h = realloc(srv->hooks, (srv->nhooks + 1) * sizeof *h);
  if (!h) return -ENOMEM;
  srv->hooks = h;
  h[srv->nhooks].fn = hook;
  h[srv->nhooks].ud = ud;
  srv->nhooks++;
  return 0;
}

void ra_http_server_free(ra_http_server *srv) {
  if (!srv) return;
  srv->shutting_down = true;
  srv->done = NULL;
  while (srv->conns) ra_http_conn_destroy(srv->conns);
  /* Upgraded connections are dropped (their close comes from the loop) and
   * outlive the server: their slots are detached first. */
  while (srv->slots) {
    ra_conn_slot *sl = srv->slots;
    slot_unlink(sl);
    if (sl->on_stop) sl->on_stop(sl->ud, true);
  }
  ra_timer_stop(&srv->shutdown_timer);
  ra_defer_cancel(srv->loop, &srv->done_defer);
  ra_proxy_proto_gate_free(srv->pp);
  srv->pp = NULL;
  close_listeners(srv);
  ra_http_server_pool_free(srv);
  ra_buf_free(&srv->cork);
  free(srv->hooks);
  free(srv);
}

/* ---- Date and status texts ------------------------------------------------------------ */

const char *ra_http_date(ra_loop *loop) {
  /* A cache, not state: the same second formats the same on every loop of
   * the thread. */
  static __thread time_t cached_sec = -1;
  static __thread char buf[40];
  struct timespec ts;
  (void)loop;
  clock_gettime(CLOCK_REALTIME_COARSE, &ts);
  if (ts.tv_sec != cached_sec) {
    struct tm tm;
    gmtime_r(&ts.tv_sec, &tm);
    strftime(buf, sizeof buf, "%a, %d %b %Y %H:%M:%S GMT", &tm);
    cached_sec = ts.tv_sec;
  }
  return buf;
}

const char *ra_http_status_text(int status) {
  switch (status) {
  case 100: return "Continue";
  case 101: return "Switching Protocols";
  case 200: return "OK";
  case 201: return "Created";
  case 202: return "Accepted";
  case 204: return "No Content";
  case 206: return "Partial Content";
  case 301: return "Moved Permanently";
  case 302: return "Found";
  case 303: return "See Other";
  case 304: return "Not Modified";
  case 307: return "Temporary Redirect";
  case 308: return "Permanent Redirect";
  case 400: return "Bad Request";
  case 401: return "Unauthorized";
  case 403: return "Forbidden";
  case 404: return "Not Found";
  case 405: return "Method Not Allowed";
  case 406: return "Not Acceptable";
  case 408: return "Request Timeout";
  case 409: return "Conflict";
  case 410: return "Gone";
  case 411: return "Length Required";
  case 412: return "Precondition Failed";
  case 413: return "Content Too Large";
  case 414: return "URI Too Long";
  case 415: return "Unsupported Media Type";
  case 416: return "Range Not Satisfiable";
  case 417: return "Expectation Failed";
  case 422: return "Unprocessable Content";
  case 426: return "Upgrade Required";
  case 429: return "Too Many Requests";
  case 431: return "Request Header Fields Too Large";
  case 500: return "Internal Server Error";
  case 501: return "Not Implemented";
  case 502: return "Bad Gateway";
  case 503: return "Service Unavailable";
  case 504: return "Gateway Timeout";
  case 505: return "HTTP Version Not Supported";
  default: return "Unknown";
  }
}
