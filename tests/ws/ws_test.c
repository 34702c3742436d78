/* tests/ws/ws_test.c: the ra_ws layer in one process: routes on a real HTTP
 * server, our client, raw sockets for misbehaving peers (no reading, no
 * pongs, no close), back-pressure, rooms, the sink interface. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "raloop/core/log.h"
#include "raloop/core/loop.h"
#include "raloop/http/router.h"
#include "raloop/http/server.h"
#include "raloop/ws/client.h"
#include "raloop/ws/frame.h"
#include "raloop/ws/ws.h"

/* ---- a server with one ws route, recording what happens ---------------- */

typedef struct rec {
  int opens, closes, messages, drains, pongs;
  uint16_t code;
  char reason[128];
  ra_ws *ws;         /* the last opened */
  size_t bytes;      /* total message bytes */
  int backpressure;  /* sends that returned RA_WS_BACKPRESSURE */
  int nobufs;        /* sends that returned -ENOBUFS */
  bool flood;        /* on_open: send until told to stop */
  bool echo;
  char proto[32];
} rec;

static void r_open(ra_ws *ws, void *ud) {
  rec *r = ud;
  r->opens++;
  r->ws = ws;
  ra_str p = ra_ws_protocol(ws);
  snprintf(r->proto, sizeof r->proto, "%.*s", (int)p.len, p.ptr);
}
static void r_message(ra_ws *ws, ra_ws_type t, const uint8_t *d, size_t n, void *ud) {
  rec *r = ud;
  r->messages++;
  r->bytes += n;
  if (r->echo) ra_ws_send(ws, t, d, n);
}
static void r_close(ra_ws *ws, uint16_t code, ra_str reason, void *ud) {
  rec *r = ud;
  r->closes++;
  r->code = code;
  snprintf(r->reason, sizeof r->reason, "%.*s", (int)reason.len, reason.ptr);
  if (r->ws == ws) r->ws = NULL;
  /* sending from on_close is refused, not a crash */
  assert_int_equal(ra_ws_send(ws, RA_WS_TEXT, "x", 1), -EPIPE);
}
static void r_drain(ra_ws *ws, void *ud) { ((rec *)ud)->drains++; }
static void r_pong(ra_ws *ws, const uint8_t *d, size_t n, void *ud) { ((rec *)ud)->pongs++; }
static int r_select(const ra_req *req, const ra_str *offered, size_t n, void *ud) {
  for (size_t i = 0; i < n; i++)
    if (ra_str_eq_cstr(offered[i], "v2")) return (int)i;
  return -1;
}
static int r_request(ra_req *req, void *ud) {
  ra_str v;
  if (ra_req_header(req, "X-Deny", &v)) return 403;
  return ra_req_query_get(req, "deny", &v) ? 401 : 0;
}

static const ra_ws_handlers rec_handlers = {
    .on_request = r_request, .select_protocol = r_select, .on_open = r_open,
    .on_message = r_message, .on_close = r_close, .on_drain = r_drain, .on_pong = r_pong};

typedef struct env {
  ra_loop *loop;
  ra_router *router;
  ra_http_server *srv;
  uint16_t port;
  rec server;
} env;

static void env_up_ex(env *e, const ra_ws_opts *opts, const ra_ws_handlers *h,
                      const ra_http_server_opts *so) {
  memset(e, 0, sizeof *e);
  assert_int_equal(ra_loop_new(&e->loop), 0);
  assert_non_null(e->loop);
  assert_int_equal(ra_router_new(&e->router), 0);
  assert_int_equal(ra_ws_route_ex(e->router, "/ws", h ? h : &rec_handlers, &e->server, opts, 0), 0);
  assert_int_equal(ra_http_server_new(e->loop, e->router, so, &e->srv), 0);
  assert_non_null(e->srv);
  assert_int_equal(ra_http_server_listen(e->srv, "127.0.0.1:0", NULL), 0);
  e->port = ra_http_server_port(e->srv);
}

static void env_up(env *e, const ra_ws_opts *opts) { env_up_ex(e, opts, NULL, NULL); }

static void env_down(env *e) {
  ra_http_server_free(e->srv);
  /* let closing streams finish */
  for (int i = 0; i < 50 && ra_loop_run_once(e->loop, 10) > 0;) i++;
  ra_router_free(e->router);
  ra_loop_free(e->loop);
}

/* Runs the loop until *flag becomes true or ms pass. */
static bool run_until(env *e, const int *counter, int want, int ms) {
  uint64_t end = ra_loop_update_time(e->loop) + (uint64_t)ms;
  while (*counter < want && ra_loop_update_time(e->loop) < end) ra_loop_run_once(e->loop, 10);
  return *counter >= want;
}

/* ---- a raw client socket (non-blocking), driven beside the loop -------- */

static int raw_connect_ex(env *e, bool small_window) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(e->port)};
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (small_window) { /* so the kernel absorbs little of what a non-reader is
                         sent; set before connect, and not below an MSS, so
                         that reading again later goes at full speed */
    int rcvbuf = 64 << 10;
    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf);
  }
  int rc = connect(fd, (struct sockaddr *)&a, sizeof a);
  assert_true(rc == 0 || errno == EINPROGRESS);
  static const char req[] =
      "GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
      "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n";
  size_t off = 0;
  for (int i = 0; i < 200 && off < sizeof req - 1; i++) {
    ssize_t n = write(fd, req + off, sizeof req - 1 - off);
    if (n > 0) off += (size_t)n;
    ra_loop_run_once(e->loop, 5);
  }
  assert_int_equal(off, sizeof req - 1);
  /* read the 101 head exactly, leaving frames unread */
  char head[1024];
  size_t hl = 0;
  for (int i = 0; i < 400 && !(hl >= 4 && memcmp(head + hl - 4, "\r\n\r\n", 4) == 0); i++) {
    ssize_t n = read(fd, head + hl, 1);
    if (n == 1) hl++;
    else ra_loop_run_once(e->loop, 5);
  }
  head[hl] = 0;
  assert_non_null(strstr(head, "101"));
  assert_non_null(strstr(head, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="));
  return fd;
}

static int raw_connect(env *e) { return raw_connect_ex(e, true); }

static void raw_send(int fd, unsigned op, const void *p, size_t n) {
  uint8_t f[256];
  const uint8_t key[4] = {1, 2, 3, 4};
  size_t h = ra_ws_frame_header(f, true, 0, op, n, key);
  ra_ws_mask_copy(f + h, p, n, key, 0);
  assert_int_equal(write(fd, f, h + n), (ssize_t)(h + n));
}

/* ---- tests ---------------------------------------------------------------- */

/* Reads from a raw client until a close frame from the server arrives;
 * returns its code (0: none came in ms). Counts the data frames before it. */
static int raw_read_close(env *e, int fd, int ms, size_t *data_frames) {
  size_t cap = 16 << 20, have = 0, off = 0;
  uint8_t *b = malloc(cap);
  int code = 0;
  uint64_t end = ra_loop_update_time(e->loop) + (uint64_t)ms;
  while (!code && ra_loop_update_time(e->loop) < end) {
    ssize_t n = read(fd, b + have, cap - have);
    if (n > 0) have += (size_t)n;
    ra_loop_run_once(e->loop, n > 0 ? 0 : 2);
    for (;;) { /* server frames: unmasked */
      if (have - off < 2) break;
      uint64_t len = b[off + 1] & 0x7f;
      size_t h = 2;
      if (len == 126) {
        if (have - off < 4) break;
        len = (uint64_t)b[off + 2] << 8 | b[off + 3];
        h = 4;
      } else if (len == 127) {
        if (have - off < 10) break;
        len = 0;
        for (int i = 0; i < 8; i++) len = len << 8 | b[off + 2 + i];
        h = 10;
      }
      if (have - off < h + len) break;
      unsigned op = b[off] & 0x0f;
      if (op == RA_WS_OP_CLOSE) {
        code = len >= 2 ? (b[off + h] << 8 | b[off + h + 1]) : 1005;
        break;
      }
      if (op == RA_WS_OP_BINARY || op == RA_WS_OP_TEXT) (*data_frames)++;
      off += h + len;
    }
    if (off == have) off = have = 0;
    else if (off > cap / 2) {
      memmove(b, b + off, have - off);
      have -= off;
      off = 0;
    }
    assert_true(have < cap);
  }
  free(b);
  return code;
}

/* A peer that does not read: sends are told (RA_WS_BACKPRESSURE), then,
 * past send_limit, the message is not queued and the peer is closed with
 * 1013 instead: the queue never grows past the limit, and a peer that
 * reads again finds the close code after what was queued. */
static void backpressure_drop(void **st) {
  env e;
  ra_ws_opts o = {.send_high_water = 256 << 10, .send_limit = 2 << 20};
  env_up(&e, &o);
  int fd = raw_connect(&e);
  assert_true(run_until(&e, &e.server.opens, 1, 2000));
  static uint8_t chunk[64 << 10];
  int rc = 0, sends = 0;
  while (e.server.ws && sends < 1000) {
    rc = ra_ws_send(e.server.ws, RA_WS_BINARY, chunk, sizeof chunk);
    sends++;
    if (rc == RA_WS_BACKPRESSURE) e.server.backpressure++;
    if (rc < 0) break;
    assert_true(ra_ws_buffered(e.server.ws) <= o.send_limit + sizeof chunk + 16);
  }
  assert_int_equal(rc, -ENOBUFS);
  assert_true(e.server.backpressure > 0);
  assert_true(sends < 100); /* ~2 MiB + kernel buffers, not 1000 x 64 KiB */
  assert_true(ra_ws_buffered(e.server.ws) <= o.send_limit);
  assert_int_equal(e.server.closes, 0); /* closing, not dropped */
  size_t frames = 0;
  assert_int_equal(raw_read_close(&e, fd, 3000, &frames), 1013);
  assert_int_equal(frames, (size_t)sends - 1); /* all but the refused one */
  close(fd);
  assert_true(run_until(&e, &e.server.closes, 1, 2000));
  env_down(&e);
}

/* A peer that reads again gets on_drain. */
static void backpressure_drain(void **st) {
  env e;
  ra_ws_opts o = {.send_high_water = 128 << 10};
  env_up(&e, &o);
  int fd = raw_connect_ex(&e, false);
  assert_true(run_until(&e, &e.server.opens, 1, 2000));
  static uint8_t chunk[64 << 10];
  int rc = 0;
  for (int i = 0; i < 200 && rc != RA_WS_BACKPRESSURE; i++)
    rc = ra_ws_send(e.server.ws, RA_WS_BINARY, chunk, sizeof chunk);
  assert_int_equal(rc, RA_WS_BACKPRESSURE);
  assert_int_equal(e.server.drains, 0);
  uint8_t buf[65536];
  for (int i = 0; i < 2000 && e.server.drains == 0; i++) {
    while (read(fd, buf, sizeof buf) > 0) {}
    ra_loop_run_once(e.loop, 2);
  }
  assert_int_equal(e.server.drains, 1);
  assert_int_equal(e.server.closes, 0);
  ra_ws_terminate(e.server.ws);
  assert_true(run_until(&e, &e.server.closes, 1, 2000));
  assert_int_equal(e.server.code, 1006);
  close(fd);
  env_down(&e);
}

/* Periodic pings: a peer that never answers is dropped. */
static void ping_timeout_drops(void **st) {
  env e;
  ra_ws_opts o = {.ping_interval_ms = 40};
  env_up(&e, &o);
  int fd = raw_connect(&e);
  assert_true(run_until(&e, &e.server.opens, 1, 2000));
  assert_true(run_until(&e, &e.server.closes, 1, 2000));
  assert_int_equal(e.server.code, 1006);
  /* the peer did get a ping frame (0x89 0x00) first */
  uint8_t b[16];
  assert_true(read(fd, b, 2) == 2);
  assert_int_equal(b[0], 0x89);
  assert_int_equal(b[1], 0x00);
  close(fd);
  env_down(&e);
}

/* ... while our client answers pings by itself and stays connected. */
typedef struct crec {
  rec r;
  env *e;
} crec;

static void ping_answered(void **st) {
  env e;
  ra_ws_opts o = {.ping_interval_ms = 30};
  env_up(&e, &o);
  rec c = {0};
  char url[64];
  snprintf(url, sizeof url, "ws://127.0.0.1:%u/ws", e.port);
  ra_ws *ws;
  assert_int_equal(ra_ws_connect(e.loop, url, NULL, &rec_handlers, &c, &ws), 0);
  assert_true(run_until(&e, &c.opens, 1, 2000));
  int never = 0;
  run_until(&e, &never, 1, 250);
  assert_int_equal(e.server.closes, 0);
  assert_int_equal(c.closes, 0);
  assert_true(e.server.pongs >= 3);
  assert_int_equal(ra_ws_close(c.ws, 1000, "bye"), 0);
  assert_true(run_until(&e, &c.closes, 1, 2000));
  assert_true(run_until(&e, &e.server.closes, 1, 2000));
  assert_int_equal(c.code, 1000);
  assert_int_equal(e.server.code, 1000);
  assert_string_equal(e.server.reason, "bye");
  env_down(&e);
}

/* The closing handshake times out when the peer never answers our close. */
static void close_timeout(void **st) {
  env e;
  ra_ws_opts o = {.close_timeout_ms = 80};
  env_up(&e, &o);
  int fd = raw_connect(&e);
  assert_true(run_until(&e, &e.server.opens, 1, 2000));
  ra_ws *ws = e.server.ws;
  assert_int_equal(ra_ws_close(ws, 9999, NULL), -EINVAL);
  assert_int_equal(ra_ws_close(ws, 1005, NULL), -EINVAL);
  assert_int_equal(ra_ws_close(ws, 0, "reason without a code"), -EINVAL);
  char longr[130];
  memset(longr, 'r', sizeof longr - 1);
  longr[129] = 0;
  assert_int_equal(ra_ws_close(ws, 1000, longr), -EINVAL);
  assert_int_equal(ra_ws_close(ws, 1000, "\xff"), -EINVAL);
  assert_true(ra_ws_is_open(ws));
  uint64_t t0 = ra_loop_update_time(e.loop);
  assert_int_equal(ra_ws_close(ws, 4000, "going"), 0);
  assert_false(ra_ws_is_open(ws));
  assert_int_equal(ra_ws_close(ws, 1000, NULL), -EALREADY);
  assert_int_equal(ra_ws_send(ws, RA_WS_TEXT, "x", 1), -EPIPE);
  assert_true(run_until(&e, &e.server.closes, 1, 3000));
  assert_true(ra_loop_update_time(e.loop) - t0 >= 70);
  assert_int_equal(e.server.code, 1006);
  uint8_t b[32];
  ssize_t n = read(fd, b, sizeof b);
  assert_true(n >= 9);
  assert_memory_equal(b, "\x88\x07\x0f\xa0going", 9);
  close(fd);
  env_down(&e);
}

/* A peer's close is echoed and reported; messages before it delivered. */
static void raw_close_and_errors(void **st) {
  env e;
  env_up(&e, NULL);
  int fd = raw_connect(&e);
  assert_true(run_until(&e, &e.server.opens, 1, 2000));
  raw_send(fd, RA_WS_OP_TEXT, "one", 3);
  raw_send(fd, RA_WS_OP_CLOSE, "\x0f\xa1why", 5);
  assert_true(run_until(&e, &e.server.closes, 1, 2000));
  assert_int_equal(e.server.messages, 1);
  assert_int_equal(e.server.code, 4001);
  assert_string_equal(e.server.reason, "why");
  close(fd);
  /* protocol error: on_close gets the code we sent */
  fd = raw_connect(&e);
  assert_true(run_until(&e, &e.server.opens, 2, 2000));
  raw_send(fd, 3, "", 0);
  assert_true(run_until(&e, &e.server.closes, 2, 2000));
  assert_int_equal(e.server.code, 1002);
  close(fd);
  /* dropped TCP: 1006 */
  fd = raw_connect(&e);
  assert_true(run_until(&e, &e.server.opens, 3, 2000));
  close(fd);
  assert_true(run_until(&e, &e.server.closes, 3, 2000));
  assert_int_equal(e.server.code, 1006);
  env_down(&e);
}

/* Subprotocols, on_request refusals, echo through our client, rooms. */
static void client_features(void **st) {
  env e;
  env_up(&e, NULL);
  e.server.echo = true;
  char url[80];
  rec c = {0};
  const char *protos[] = {"v1", "v2"};
  ra_ws_client_opts co = {.protocols = protos, .nprotocols = 2};
  snprintf(url, sizeof url, "ws://127.0.0.1:%u/ws", e.port);
  ra_ws *ws;
  assert_int_equal(ra_ws_connect(e.loop, url, &co, &rec_handlers, &c, &ws), 0);
  assert_int_equal(ra_ws_send(ws, RA_WS_TEXT, "early", 5), -ENOTCONN);
  assert_true(run_until(&e, &c.opens, 1, 2000));
  assert_string_equal(c.proto, "v2");
  assert_string_equal(e.server.proto, "v2");
  assert_true(ra_str_eq_cstr(ra_ws_path(e.server.ws), "/ws"));
  assert_false(ra_ws_attested(e.server.ws));
  assert_int_equal(ra_ws_send(ws, RA_WS_TEXT, "hello", 5), 0);
  assert_true(run_until(&e, &c.messages, 1, 2000));
  assert_int_equal(c.bytes, 5);

  /* the server sends a fragmented message (a ping in between): one message */
  ra_ws *sws = e.server.ws;
  assert_int_equal(ra_ws_send_fragment(sws, RA_WS_TEXT, "fr\xc3", 3, false), 0);
  assert_int_equal(ra_ws_ping(sws, "x", 1), 0);
  assert_int_equal(ra_ws_send_fragment(sws, RA_WS_BINARY, "\xa9g", 2, true), 0);
  assert_true(run_until(&e, &c.messages, 2, 2000));
  assert_int_equal(c.bytes, 5 + 5);
  assert_true(run_until(&e, &e.server.pongs, 1, 2000));

  /* rooms */
  ra_ws_room *room;
  assert_int_equal(ra_ws_room_new(&room), 0);
  assert_int_equal(ra_ws_room_join(room, e.server.ws), 0);
  assert_int_equal(ra_ws_room_join(room, e.server.ws), -EEXIST);
  assert_int_equal(ra_ws_room_size(room), 1);
  assert_int_equal(ra_ws_room_broadcast(room, RA_WS_BINARY, "abc", 3, NULL), 1);
  assert_int_equal(ra_ws_room_broadcast(room, RA_WS_BINARY, "abc", 3, e.server.ws), 0);
  assert_int_equal(ra_ws_room_broadcast(room, RA_WS_TEXT, "\xff", 1, NULL), 0);
  assert_true(run_until(&e, &c.messages, 3, 2000));

  /* a room freed while it has members: they just leave it */
  ra_ws_room *gone;
  assert_int_equal(ra_ws_room_new(&gone), 0);
  assert_int_equal(ra_ws_room_join(gone, e.server.ws), 0);
  ra_ws_room_free(gone);

  /* the client closes: the server's ws leaves the room by itself */
  assert_int_equal(ra_ws_close(ws, 1000, NULL), 0);
  assert_true(run_until(&e, &e.server.closes, 1, 2000));
  assert_true(run_until(&e, &c.closes, 1, 2000));
  assert_int_equal(ra_ws_room_size(room), 0);
  ra_ws_room_free(room);

  /* refused by on_request */
  rec d = {0};
  snprintf(url, sizeof url, "ws://127.0.0.1:%u/ws?deny=1", e.port);
  assert_int_equal(ra_ws_connect(e.loop, url, NULL, &rec_handlers, &d, NULL), 0);
  assert_true(run_until(&e, &d.closes, 1, 2000));
  assert_int_equal(d.opens, 0);
  assert_int_equal(d.code, 1006);
  assert_non_null(strstr(d.reason, "401"));

  /* extra request headers reach the server */
  rec g = {0};
  ra_header xh = {RA_STR("X-Deny"), RA_STR("yes")};
  ra_ws_client_opts ho = {.headers = &xh, .nheaders = 1};
  snprintf(url, sizeof url, "ws://127.0.0.1:%u/ws", e.port);
  assert_int_equal(ra_ws_connect(e.loop, url, &ho, &rec_handlers, &g, NULL), 0);
  assert_true(run_until(&e, &g.closes, 1, 2000));
  assert_non_null(strstr(g.reason, "403"));
  ra_header badh = {RA_STR("X-Bad"), RA_STR("a\r\nb")};
  ho.headers = &badh;
  assert_int_equal(ra_ws_connect(e.loop, url, &ho, &rec_handlers, &g, NULL), -EINVAL);

  /* cancelled while connecting: on_close, no on_open */
  rec f = {0};
  snprintf(url, sizeof url, "ws://127.0.0.1:%u/ws", e.port);
  assert_int_equal(ra_ws_connect(e.loop, url, NULL, &rec_handlers, &f, &ws), 0);
  assert_int_equal(ra_ws_close(ws, 1000, NULL), 0);
  assert_true(run_until(&e, &f.closes, 1, 2000));
  assert_int_equal(f.opens, 0);

  /* bad URLs */
  /* (wss:// is supported: tests/tls/) */
  assert_int_equal(ra_ws_connect(e.loop, "ftp://127.0.0.1/", NULL, &rec_handlers, &f, NULL), -EPROTONOSUPPORT);
  assert_int_equal(ra_ws_connect(e.loop, "http://127.0.0.1/", NULL, &rec_handlers, &f, NULL), -EINVAL);
  assert_int_equal(ra_ws_connect(e.loop, "ws://a b/", NULL, &rec_handlers, &f, NULL), -EINVAL);
  assert_int_equal(ra_ws_connect(e.loop, "ws://h:70000/", NULL, &rec_handlers, &f, NULL), -EINVAL);
  /* subprotocols are tokens, header names too */
  const char *bad[] = {"a,b", "a b", "chat/1", ""};
  for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
    ra_ws_client_opts bo = {.protocols = bad + i, .nprotocols = 1};
    assert_int_equal(ra_ws_connect(e.loop, url, &bo, &rec_handlers, &f, NULL), -EINVAL);
  }
  ra_header badn = {RA_STR("X(Bad)"), RA_STR("v")};
  ra_ws_client_opts bn = {.headers = &badn, .nheaders = 1};
  assert_int_equal(ra_ws_connect(e.loop, url, &bn, &rec_handlers, &f, NULL), -EINVAL);
  env_down(&e);
}

/* Route lookup for transports. */
static void plain(ra_req *req, ra_res *res, void *ud) { ra_res_send_text(res, 200, "x"); }
static void route_lookup(void **st) {
  ra_router *r;
  assert_int_equal(ra_router_new(&r), 0);
  int ud = 7;
  ra_ws_opts o = {.max_message = 1234};
  assert_int_equal(ra_ws_route_ex(r, "/live/:room", &rec_handlers, &ud, &o, 0), 0);
  assert_int_equal(ra_route(r, "GET", "/plain", plain, NULL), 0);
  /* the WebSocket mark is the ws layer's alone: a plain route cannot fake it */
  assert_int_equal(ra_route_ex(r, "GET", "/fake", plain, NULL, RA_ROUTE_WEBSOCKET), -EINVAL);
  assert_int_equal(ra_ws_route(r, "/live/:room", &rec_handlers, &ud), -EEXIST);
  ra_route_match m;
  assert_int_equal(ra_router_match(r, RA_STR("GET"), RA_STR("/live/a"), NULL, &m), 0);
  const ra_ws_handlers *h;
  void *u;
  assert_true(ra_ws_route_handlers(&m, &h, &u));
  assert_ptr_equal(u, &ud);
  assert_ptr_equal(h->on_open, r_open);
  assert_int_equal(ra_ws_route_opts(&m)->max_message, 1234);
  assert_int_equal(ra_router_match(r, RA_STR("GET"), RA_STR("/plain"), NULL, &m), 0);
  assert_false(ra_ws_route_handlers(&m, &h, &u));
  assert_null(ra_ws_route_opts(&m));
  ra_router_free(r);
}

/* ---- the sink interface, as the tunnel uses it ---------------------------- */

typedef struct fake_sink {
  int sends, closes, terminates;
  ra_ws_type type;
  char last[64];
  size_t last_len;
  uint16_t code;
  ra_ws *ws;
  bool sync_close;  /* deliver the close from inside close() */
  size_t buffered;
} fake_sink;

static int fs_send(void *s, ra_ws_type t, const void *d, size_t n) {
  fake_sink *f = s;
  f->sends++;
  f->type = t;
  f->last_len = n;
  memcpy(f->last, d, n < sizeof f->last ? n : sizeof f->last);
  return 0;
}
static int fs_close(void *s, uint16_t code, ra_str reason) {
  fake_sink *f = s;
  f->closes++;
  f->code = code;
  if (f->sync_close) ra_ws_deliver_close(f->ws, code, reason);
  return 0;
}
static void fs_terminate(void *s) { ((fake_sink *)s)->terminates++; }
static size_t fs_buffered(void *s) { return ((fake_sink *)s)->buffered; }
static const ra_ws_sink_ops fake_ops = {
    .send = fs_send, .close = fs_close, .terminate = fs_terminate, .buffered = fs_buffered};

static void close_in_message(ra_ws *ws, ra_ws_type t, const uint8_t *d, size_t n, void *ud) {
  rec *r = ud;
  r->messages++;
  assert_int_equal(ra_ws_close(ws, 1000, "from handler"), 0);
  /* still usable (not freed) until this callback returns */
  assert_false(ra_ws_is_open(ws));
  assert_int_equal(r->closes, 1);
}

static void sink_interface(void **st) {
  ra_loop *loop;
  assert_int_equal(ra_loop_new(&loop), 0);
  fake_sink f = {0};
  rec r = {0};
  ra_ws_opts o = {.send_high_water = 100, .send_limit = 1000};
  ra_ws *ws;
  assert_int_equal(ra_ws_new_with_sink(loop, &fake_ops, &f, &rec_handlers, &r, &o, &ws), 0);
  f.ws = ws;
  assert_int_equal(ra_ws_set_info(ws, RA_STR("/t"), RA_STR("p1"), true), 0);
  assert_int_equal(ra_ws_send(ws, RA_WS_TEXT, "x", 1), -ENOTCONN);
  ra_ws_deliver_open(ws);
  assert_int_equal(r.opens, 1);
  assert_true(ra_ws_attested(ws));
  assert_true(ra_str_eq_cstr(ra_ws_protocol(ws), "p1"));
  assert_int_equal(ra_ws_send(ws, RA_WS_TEXT, "hi", 2), 0);
  assert_int_equal(f.sends, 1);
  assert_int_equal(ra_ws_send(ws, RA_WS_TEXT, "\xc3", 1), -EILSEQ);
  /* fragments are gathered for a sink without send_frame */
  assert_int_equal(ra_ws_send_fragment(ws, RA_WS_TEXT, "ab\xc3", 3, false), 0);
  assert_int_equal(ra_ws_send(ws, RA_WS_BINARY, "z", 1), -EBUSY);
  assert_int_equal(ra_ws_send_fragment(ws, RA_WS_BINARY, "\xa9" "cd", 3, true), 0);
  assert_int_equal(f.sends, 2);
  assert_int_equal(f.type, RA_WS_TEXT);
  assert_int_equal(f.last_len, 6);
  assert_memory_equal(f.last, "ab\xc3\xa9" "cd", 6);
  assert_int_equal(ra_ws_ping(ws, "p", 1), -ENOTSUP);
  /* incoming text that is not UTF-8 never reaches the handler */
  ra_ws_deliver_message(ws, RA_WS_BINARY, (const uint8_t *)"\xff", 1);
  assert_int_equal(r.messages, 1);
  ra_ws_deliver_message(ws, RA_WS_TEXT, (const uint8_t *)"\xff", 1);
  assert_int_equal(r.messages, 1);
  assert_int_equal(f.closes, 1);
  assert_int_equal(f.code, 1007);
  assert_int_equal(ra_ws_send(ws, RA_WS_TEXT, "x", 1), -EPIPE); /* closing */
  ra_ws_deliver_close(ws, 1007, RA_STR(""));
  assert_int_equal(r.closes, 1);
  /* a second one, for the back-pressure checks */
  memset(&r, 0, sizeof r);
  assert_int_equal(ra_ws_new_with_sink(loop, &fake_ops, &f, &rec_handlers, &r, &o, &ws), 0);
  ra_ws_deliver_open(ws);
  /* back-pressure through the sink's buffered() */
  f.buffered = 500;
  assert_int_equal(ra_ws_send(ws, RA_WS_BINARY, "b", 1), RA_WS_BACKPRESSURE);
  ra_ws_deliver_drain(ws);
  assert_int_equal(r.drains, 1);
  ra_ws_deliver_drain(ws); /* only after a BACKPRESSURE */
  assert_int_equal(r.drains, 1);
  /* past send_limit the message is not queued: the peer is closed, 1013 */
  f.buffered = 5000;
  assert_int_equal(ra_ws_send(ws, RA_WS_BINARY, "b", 1), -ENOBUFS);
  assert_int_equal(f.sends, 3); /* not sent */
  assert_int_equal(f.closes, 2);
  assert_int_equal(f.code, 1013);
  assert_int_equal(f.terminates, 0);
  ra_ws_deliver_close(ws, 1006, RA_STR("dropped"));
  assert_int_equal(r.closes, 1);
  assert_int_equal(r.code, 1006);

  /* a transport that delivers the close synchronously from inside a handler */
  fake_sink g = {.sync_close = true};
  rec s = {0};
  ra_ws_handlers h = rec_handlers;
  h.on_message = close_in_message;
  assert_int_equal(ra_ws_new_with_sink(loop, &fake_ops, &g, &h, &s, NULL, &ws), 0);
  g.ws = ws;
  ra_ws_deliver_open(ws);
  ra_ws_deliver_message(ws, RA_WS_TEXT, (const uint8_t *)"m", 1);
  assert_int_equal(s.messages, 1);
  assert_int_equal(s.closes, 1);
  assert_int_equal(s.code, 1000);
  assert_int_equal(g.code, 1000);
  ra_loop_free(loop);
}

/* A connect that never completes (the server's accept queue is full, so its
 * SYNs are dropped): the handshake timeout still ends the attempt in time,
 * and so does cancelling it with ra_ws_close, without waiting minutes for
 * the kernel to give up on the connect. */
static void client_connect_stalls(void **st) {
  ra_loop *loop;
  assert_int_equal(ra_loop_new(&loop), 0);
  int ls = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in a = {.sin_family = AF_INET};
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t al = sizeof a;
  assert_int_equal(bind(ls, (struct sockaddr *)&a, sizeof a), 0);
  assert_int_equal(listen(ls, 0), 0);
  assert_int_equal(getsockname(ls, (struct sockaddr *)&a, &al), 0);
  int fill[2];
  for (int i = 0; i < 2; i++) { /* fill the accept queue (never accepted) */
    fill[i] = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    connect(fill[i], (struct sockaddr *)&a, sizeof a);
  }
  usleep(20000);
  char url[64];
  snprintf(url, sizeof url, "ws://127.0.0.1:%u/ws", ntohs(a.sin_port));
  for (int how = 0; how < 2; how++) {
    rec c = {0};
    ra_ws_client_opts co = {.handshake_timeout_ms = 100};
    ra_ws *ws;
    assert_int_equal(ra_ws_connect(loop, url, &co, &rec_handlers, &c, &ws), 0);
    if (how == 1) {
      assert_int_equal(ra_ws_close(ws, 1000, NULL), 0);
      assert_int_equal(c.closes, 0); /* never from inside the call */
    }
    uint64_t start = ra_loop_update_time(loop);
    while (!c.closes && ra_loop_update_time(loop) - start < 3000) ra_loop_run_once(loop, 10);
    assert_int_equal(c.closes, 1);
    assert_int_equal(c.opens, 0);
    assert_int_equal(c.code, 1006);
    assert_non_null(strstr(c.reason, how ? "cancelled" : "timed out"));
    assert_true(ra_loop_update_time(loop) - start < 1000);
  }
  /* the attempts end for good once the connects resolve (refused at the
   * next SYN retry, about a second): then nothing keeps the loop alive */
  close(ls);
  for (int i = 0; i < 2; i++) close(fill[i]);
  uint64_t start = ra_loop_update_time(loop);
  assert_int_equal(ra_loop_run(loop), 0);
  assert_true(ra_loop_update_time(loop) - start < 5000);
  ra_loop_free(loop);
}

/* An upgrade accepted (101 ready) behind an HTTP answer still pending when
 * the server goes away: the route's pending state is released (LSan would
 * see it leak) and no handler runs for a WebSocket that never opened. */
static ra_res *held_res;
static void held_cancel(ra_res *res, void *ud) {
  held_res = NULL;
  ra_res_end(res);
}
static void h_hold(ra_req *req, ra_res *res, void *ud) {
  held_res = res;
  ra_res_on_cancel(res, held_cancel, NULL);
}

static void upgrade_never_handed_over(void **st) {
  for (int how = 0; how < 2; how++) {
    env e;
    env_up(&e, NULL);
    assert_int_equal(ra_route(e.router, "GET", "/hold", h_hold, NULL), 0);
    held_res = NULL;
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(e.port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(connect(fd, (struct sockaddr *)&a, sizeof a), 0);
    static const char req[] =
        "GET /hold HTTP/1.1\r\nHost: x\r\n\r\n"
        "GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n";
    assert_int_equal(write(fd, req, sizeof req - 1), (ssize_t)(sizeof req - 1));
    for (int i = 0; i < 200 && !held_res; i++) ra_loop_run_once(e.loop, 5);
    assert_non_null(held_res);
    for (int i = 0; i < 5; i++) ra_loop_run_once(e.loop, 2); /* the ws route answered 101 */
    if (how == 0) {
      ra_http_server_shutdown(e.srv, 20, NULL, NULL);
      for (int i = 0; i < 100 && held_res; i++) ra_loop_run_once(e.loop, 5);
    }
    env_down(&e); /* how == 1: freed with the upgrade pending */
    assert_null(held_res);
    assert_int_equal(e.server.opens, 0);
    assert_int_equal(e.server.closes, 0);
    close(fd);
  }
}

/* The default liveness policy: ping every 30 s, drop after 60 s of silence;
 * RA_WS_OFF turns each off; idle follows an explicit ping interval. */
static void ping_idle_defaults(void **st) {
  ra_router *r;
  assert_int_equal(ra_router_new(&r), 0);
  ra_ws_opts off = {.ping_interval_ms = RA_WS_OFF, .idle_timeout_ms = RA_WS_OFF};
  ra_ws_opts p10 = {.ping_interval_ms = 10000};
  assert_int_equal(ra_ws_route_ex(r, "/d", &rec_handlers, NULL, NULL, 0), 0);
  assert_int_equal(ra_ws_route_ex(r, "/off", &rec_handlers, NULL, &off, 0), 0);
  assert_int_equal(ra_ws_route_ex(r, "/p10", &rec_handlers, NULL, &p10, 0), 0);
  ra_route_match m;
  assert_int_equal(ra_router_match(r, RA_STR("GET"), RA_STR("/d"), NULL, &m), 0);
  assert_int_equal(ra_ws_route_opts(&m)->ping_interval_ms, 30000);
  assert_int_equal(ra_ws_route_opts(&m)->idle_timeout_ms, 60000);
  assert_int_equal(ra_router_match(r, RA_STR("GET"), RA_STR("/off"), NULL, &m), 0);
  assert_true(ra_ws_route_opts(&m)->ping_interval_ms == RA_WS_OFF);
  assert_true(ra_ws_route_opts(&m)->idle_timeout_ms == RA_WS_OFF);
  assert_int_equal(ra_router_match(r, RA_STR("GET"), RA_STR("/p10"), NULL, &m), 0);
  assert_int_equal(ra_ws_route_opts(&m)->idle_timeout_ms, 20000);
  ra_router_free(r);
}

/* A peer that never answers pings nor sends anything is dropped once the
 * idle timeout passed (pings at their default interval, 30 s, so only the
 * idle rule can end it), not before; one that talks stays. */
static void idle_timeout_drops(void **st) {
  env e;
  ra_ws_opts o = {.idle_timeout_ms = 200};
  env_up(&e, &o);
  int quiet = raw_connect(&e);
  assert_true(run_until(&e, &e.server.opens, 1, 2000));
  int talker = raw_connect(&e);
  assert_true(run_until(&e, &e.server.opens, 2, 2000));
  uint64_t start = ra_loop_update_time(e.loop);
  while (!e.server.closes && ra_loop_update_time(e.loop) - start < 2000) {
    raw_send(talker, RA_WS_OP_TEXT, "hi", 2);
    for (int i = 0; i < 10; i++) ra_loop_run_once(e.loop, 5);
  }
  uint64_t took = ra_loop_update_time(e.loop) - start;
  assert_int_equal(e.server.closes, 1);
  assert_int_equal(e.server.code, 1006);
  assert_true(took >= 150 && took < 1000);
  start = ra_loop_update_time(e.loop);
  while (ra_loop_update_time(e.loop) - start < 400) {
    raw_send(talker, RA_WS_OP_TEXT, "hi", 2);
    for (int i = 0; i < 10; i++) ra_loop_run_once(e.loop, 5);
  }
  assert_int_equal(e.server.closes, 1); /* the talker is still there */
  close(quiet);
  close(talker);
  env_down(&e);
}

/* Upgraded WebSockets keep counting toward max_connections: with 2 open, a
 * third connection waits (accept is paused) and is served once one closes. */
static void max_connections_counts_websockets(void **st) {
  env e;
  ra_http_server_opts so = {.limits = {.max_connections = 2}};
  env_up_ex(&e, NULL, NULL, &so);
  int a = raw_connect(&e), b = raw_connect(&e);
  assert_true(run_until(&e, &e.server.opens, 2, 2000));
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
  struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(e.port)};
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  int rc = connect(fd, (struct sockaddr *)&sa, sizeof sa);
  assert_true(rc == 0 || errno == EINPROGRESS);
  for (int i = 0; i < 20; i++) ra_loop_run_once(e.loop, 5);
  static const char req[] = "GET /nothing HTTP/1.1\r\nHost: x\r\n\r\n";
  assert_int_equal(write(fd, req, sizeof req - 1), (ssize_t)(sizeof req - 1));
  char buf[512];
  ssize_t n = -1;
  uint64_t start = ra_loop_update_time(e.loop);
  while (ra_loop_update_time(e.loop) - start < 300) {
    ra_loop_run_once(e.loop, 5);
    if ((n = read(fd, buf, sizeof buf - 1)) > 0) break;
  }
  assert_true(n <= 0); /* not served while two WebSockets are open */
  close(a);
  assert_true(run_until(&e, &e.server.closes, 1, 2000));
  start = ra_loop_update_time(e.loop);
  while (ra_loop_update_time(e.loop) - start < 2000) {
    ra_loop_run_once(e.loop, 5);
    if ((n = read(fd, buf, sizeof buf - 1)) > 0) break;
  }
  assert_true(n > 0);
  buf[n] = 0;
  assert_non_null(strstr(buf, "HTTP/1.1 404"));
  close(fd);
  close(b);
  env_down(&e);
}

/* A graceful shutdown that starts in the same loop turn as upgrades were
 * answered (101 written, the hand-over still to come): every one of them
 * still gets the 1001 close, the shutdown completes promptly (the
 * WebSockets' closes count), and nothing leaks (LSan). */
static env *shut_env;
static ra_defer shut_defer;
static bool shut_done;
static void shut_done_cb(ra_http_server *srv, void *ud) { shut_done = true; }
static void shut_now_cb(ra_defer *d, void *ud) {
  ra_http_server_shutdown(shut_env->srv, 3000, shut_done_cb, NULL);
}
static int shut_request(ra_req *req, void *ud) {
  /* runs before the 101 is written; the defer comes before the hand-over */
  ra_loop_defer(shut_env->loop, &shut_defer);
  return 0;
}

static void shutdown_during_upgrade(void **st) {
  env e;
  shut_env = &e;
  shut_done = false;
  ra_defer_init(&shut_defer, shut_now_cb, NULL);
  ra_ws_handlers h = rec_handlers;
  h.on_request = NULL;
  env_up_ex(&e, NULL, &h, NULL);
  enum { N = 20 };
  rec c[N];
  memset(c, 0, sizeof c);
  char url[64];
  snprintf(url, sizeof url, "ws://127.0.0.1:%u/ws", e.port);
  for (int i = 0; i < N - 1; i++) {
    ra_ws *ws;
    assert_int_equal(ra_ws_connect(e.loop, url, NULL, &rec_handlers, &c[i], &ws), 0);
  }
  assert_true(run_until(&e, &e.server.opens, N - 1, 3000));
  /* the last upgrade starts the shutdown in the turn that answers it */
  e.server.closes = 0;
  ra_ws_handlers hs = h;
  hs.on_request = shut_request;
  assert_int_equal(ra_ws_route_ex(e.router, "/shut", &hs, &e.server, NULL, 0), 0);
  snprintf(url, sizeof url, "ws://127.0.0.1:%u/shut", e.port);
  ra_ws *ws;
  assert_int_equal(ra_ws_connect(e.loop, url, NULL, &rec_handlers, &c[N - 1], &ws), 0);
  uint64_t start = ra_loop_update_time(e.loop);
  int closed = 0;
  while (ra_loop_update_time(e.loop) - start < 2000 && (closed < N || !shut_done)) {
    ra_loop_run_once(e.loop, 5);
    closed = 0;
    for (int i = 0; i < N; i++) closed += c[i].closes;
  }
  for (int i = 0; i < N; i++) {
    assert_int_equal(c[i].closes, 1);
    assert_int_equal(c[i].code, 1001);
  }
  assert_int_equal(c[N - 1].opens, 1);
  assert_true(shut_done); /* well before the 3 s deadline */
  assert_int_equal(e.server.closes, N);
  env_down(&e);
}

/* A broadcast to members that do not read holds one copy of the message,
 * not one per member: the frame is encoded once and queued by reference.
 * Measured as the process's resident memory (10 members x 8 MiB would be
 * 80 MiB of copies). */
static ra_ws_room *bc_room;
static void bc_open(ra_ws *ws, void *ud) {
  r_open(ws, ud);
  assert_int_equal(ra_ws_room_join(bc_room, ws), 0);
}

static size_t rss_bytes(void) {
  FILE *f = fopen("/proc/self/statm", "r");
  unsigned long size = 0, res = 0;
  assert_non_null(f);
  assert_int_equal(fscanf(f, "%lu %lu", &size, &res), 2);
  fclose(f);
  return res * (size_t)sysconf(_SC_PAGESIZE);
}

static void broadcast_shares_frame(void **st) {
  env e;
  assert_int_equal(ra_ws_room_new(&bc_room), 0);
  ra_ws_handlers h = rec_handlers;
  h.on_open = bc_open;
  env_up_ex(&e, NULL, &h, NULL);
  enum { N = 10 };
  int fds[N];
  for (int i = 0; i < N; i++) fds[i] = raw_connect(&e);
  assert_true(run_until(&e, &e.server.opens, N, 3000));
  size_t len = 8 << 20;
  uint8_t *msg = malloc(len);
  memset(msg, 'x', len);
  size_t before = rss_bytes();
  assert_int_equal(ra_ws_room_broadcast(bc_room, RA_WS_BINARY, msg, len, NULL), N);
  size_t grew = rss_bytes() - before;
  size_t queued = 0;
  for (int i = 0; i < N; i++) ra_loop_run_once(e.loop, 1);
  assert_int_equal(e.server.closes, 0);
  assert_int_equal(ra_ws_room_size(bc_room), N);
  queued = ra_ws_buffered(e.server.ws);
  /* the members really hold much of it unsent (the kernel's socket buffers
   * absorb a few MiB, depending on autotuning) */
  assert_true(queued > len / 4);
  assert_true(grew < 3 * len);   /* one copy (and slack), not N */
  /* a member that reads gets the whole frame */
  size_t frames = 0;
  ra_ws_close(e.server.ws, 1000, NULL);
  assert_int_equal(raw_read_close(&e, fds[N - 1], 3000, &frames), 1000); /* the last opened */
  assert_int_equal(frames, 1);
  free(msg);
  for (int i = 0; i < N; i++) close(fds[i]);
  assert_true(run_until(&e, &e.server.closes, N, 3000));
  env_down(&e); /* LSan: the shared frame was released by its last member */
  ra_ws_room_free(bc_room);
}

int main(void) {
  ra_log_set_level(RA_LOG_ERROR);
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(backpressure_drop), cmocka_unit_test(backpressure_drain),
      cmocka_unit_test(ping_timeout_drops), cmocka_unit_test(ping_answered),
      cmocka_unit_test(close_timeout), cmocka_unit_test(raw_close_and_errors),
      cmocka_unit_test(client_features), cmocka_unit_test(route_lookup),
      cmocka_unit_test(sink_interface), cmocka_unit_test(upgrade_never_handed_over),
      cmocka_unit_test(client_connect_stalls), cmocka_unit_test(ping_idle_defaults),
      cmocka_unit_test(idle_timeout_drops), cmocka_unit_test(max_connections_counts_websockets),
      cmocka_unit_test(shutdown_during_upgrade), cmocka_unit_test(broadcast_shares_frame),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
