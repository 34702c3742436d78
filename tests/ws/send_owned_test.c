/* tests/ws/send_owned_test.c: ra_ws_send_owned, the zero-copy send path the
 * tunnel uses: frames built in place in the caller's buffer (header in the
 * room before it, client masking in place), queued by reference when the
 * kernel does not take them at once; the buffer's free callback runs
 * exactly once on every path. ra_ws_cork, which gathers a burst of frames
 * into few writes. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "raloop/core/loop.h"
#include "raloop/http/router.h"
#include "raloop/http/server.h"
#include "raloop/ws/client.h"
#include "raloop/ws/ws.h"

static int frees;
static void count_free(void *ud) {
  frees++;
  free(ud);
}

/* A message of n bytes in a fresh buffer with RA_WS_SEND_ROOM before it. */
static uint8_t *owned_msg(size_t n, uint8_t seed, uint8_t **block) {
  *block = malloc(RA_WS_SEND_ROOM + n + 1);
  uint8_t *p = *block + RA_WS_SEND_ROOM;
  for (size_t i = 0; i < n; i++) p[i] = (uint8_t)(seed + i * 7);
  return p;
}

static bool check_msg(const uint8_t *d, size_t n, uint8_t seed) {
  for (size_t i = 0; i < n; i++)
    if (d[i] != (uint8_t)(seed + i * 7)) return false;
  return true;
}

typedef struct side {
  ra_ws *ws;
  int opens, closes, messages, good;
  size_t last_len;
  bool echo_owned;
} side;

static void s_open(ra_ws *ws, void *ud) {
  side *s = ud;
  s->ws = ws;
  s->opens++;
}
static void s_message(ra_ws *ws, ra_ws_type t, const uint8_t *d, size_t n, void *ud) {
  side *s = ud;
  s->messages++;
  s->last_len = n;
  if (t == RA_WS_BINARY && n && check_msg(d, n, d[0])) s->good++;
  if (s->echo_owned) { /* the server side answers with an owned copy */
    uint8_t *block;
    uint8_t *p = owned_msg(n, n ? d[0] : 0, &block);
    assert_true(ra_ws_send_owned(ws, t, p, n, count_free, block) >= 0);
  }
}
static void s_close(ra_ws *ws, uint16_t code, ra_str reason, void *ud) {
  side *s = ud;
  s->closes++;
  if (s->ws == ws) s->ws = NULL;
}
static const ra_ws_handlers h = {.on_open = s_open, .on_message = s_message, .on_close = s_close};

static void run_until(ra_loop *loop, const int *counter, int want, int ms) {
  uint64_t end = ra_loop_update_time(loop) + (uint64_t)ms;
  while (*counter < want && ra_loop_update_time(loop) < end) ra_loop_run_once(loop, 10);
}

static void test_owned_both_ways(void **st) {
  (void)st;
  frees = 0;
  ra_loop *loop;
  assert_int_equal(ra_loop_new(&loop), 0);
  ra_router *router;
  assert_int_equal(ra_router_new(&router), 0);
  side srv = {.echo_owned = true}, cli = {0};
  ra_ws_opts o = {.max_message = 8u << 20};
  assert_int_equal(ra_ws_route_ex(router, "/ws", &h, &srv, &o, 0), 0);
  ra_http_server *hs;
  assert_int_equal(ra_http_server_new(loop, router, NULL, &hs), 0);
  assert_int_equal(ra_http_server_listen(hs, "127.0.0.1:0", NULL), 0);
  char url[64];
  snprintf(url, sizeof url, "ws://127.0.0.1:%u/ws", ra_http_server_port(hs));
  ra_ws_client_opts co = {.ws = o};
  ra_ws *ws;
  assert_int_equal(ra_ws_connect(loop, url, &co, &h, &cli, &ws), 0);
  /* not open yet: refused, and the buffer is released all the same */
  uint8_t *block;
  uint8_t *p = owned_msg(10, 1, &block);
  assert_int_equal(ra_ws_send_owned(ws, RA_WS_BINARY, p, 10, count_free, block), -ENOTCONN);
  assert_int_equal(frees, 1);
  run_until(loop, &cli.opens, 1, 2000);
  assert_int_equal(cli.opens, 1);
  /* small, empty and large (4 MiB: more than the socket takes at once, so
   * the frame is queued by reference) messages, masked client side */
  const size_t sizes[] = {10, 0, 125, 126, 65536, 4u << 20};
  for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
    p = owned_msg(sizes[i], (uint8_t)(i + 3), &block);
    assert_true(ra_ws_send_owned(ws, RA_WS_BINARY, p, sizes[i], count_free, block) >= 0);
  }
  /* text is UTF-8-checked as for ra_ws_send */
  p = owned_msg(2, 0, &block);
  p[0] = 0xff;
  p[1] = 0xfe;
  assert_int_equal(ra_ws_send_owned(ws, RA_WS_TEXT, p, 2, count_free, block), -EILSEQ);
  p = owned_msg(2, 0, &block);
  memcpy(p, "hi", 2);
  assert_true(ra_ws_send_owned(ws, RA_WS_TEXT, p, 2, count_free, block) >= 0);
  int want = 7;
  run_until(loop, &cli.messages, want, 5000);
  assert_int_equal(srv.messages, want);
  assert_int_equal(cli.messages, want);
  assert_int_equal(srv.good, 5); /* the binary ones with data, intact */
  assert_int_equal(cli.good, 5); /* and their owned echoes */
  assert_int_equal(cli.last_len, 2);
  /* every buffer released exactly once: the refused one, 6 binary and 2 text
   * sends of the client, 7 echoes */
  assert_int_equal(frees, 1 + 6 + 2 + 7);
  ra_ws_close(ws, 1000, "bye");
  run_until(loop, &cli.closes, 1, 2000);
  ra_http_server_free(hs);
  for (int i = 0; i < 50 && ra_loop_run_once(loop, 10) > 0;) i++;
  ra_router_free(router);
  ra_loop_free(loop);
  assert_int_equal(frees, 1 + 6 + 2 + 7);
}

/* A buffer queued by reference when the connection drops is released too. */
static void test_owned_released_on_drop(void **st) {
  (void)st;
  frees = 0;
  ra_loop *loop;
  assert_int_equal(ra_loop_new(&loop), 0);
  ra_router *router;
  assert_int_equal(ra_router_new(&router), 0);
  side srv = {0}, cli = {0};
  assert_int_equal(ra_ws_route(router, "/ws", &h, &srv), 0);
  ra_http_server *hs;
  assert_int_equal(ra_http_server_new(loop, router, NULL, &hs), 0);
  assert_int_equal(ra_http_server_listen(hs, "127.0.0.1:0", NULL), 0);
  char url[64];
  snprintf(url, sizeof url, "ws://127.0.0.1:%u/ws", ra_http_server_port(hs));
  ra_ws_opts o = {.send_limit = 64u << 20, .send_high_water = 1u << 20};
  ra_ws_client_opts co = {.ws = o};
  ra_ws *ws;
  assert_int_equal(ra_ws_connect(loop, url, &co, &h, &cli, &ws), 0);
  run_until(loop, &cli.opens, 1, 2000);
  uint8_t *block;
  uint8_t *p = owned_msg(8u << 20, 1, &block);
  assert_true(ra_ws_send_owned(ws, RA_WS_BINARY, p, 8u << 20, count_free, block) >= 0);
  ra_ws_terminate(ws); /* the queue is dropped with the stream */
  run_until(loop, &cli.closes, 1, 2000);
  for (int i = 0; i < 20; i++) ra_loop_run_once(loop, 5);
  assert_int_equal(frees, 1);
  ra_http_server_free(hs);
  for (int i = 0; i < 50 && ra_loop_run_once(loop, 10) > 0;) i++;
  ra_router_free(router);
  ra_loop_free(loop);
}

/* Sinks other than the frame transport get a plain send, then the buffer
 * is released. */
typedef struct rec_sink {
  uint8_t got[16];
  size_t n;
} rec_sink;
static int rs_send(void *sink, ra_ws_type type, const void *data, size_t len) {
  rec_sink *r = sink;
  r->n = len < sizeof r->got ? len : sizeof r->got;
  memcpy(r->got, data, r->n);
  return 0;
}
static int rs_close(void *sink, uint16_t code, ra_str reason) { return 0; }
static void rs_terminate(void *sink) {}
static const ra_ws_sink_ops rs_ops = {.send = rs_send, .close = rs_close, .terminate = rs_terminate};

static void test_owned_other_sink(void **st) {
  (void)st;
  frees = 0;
  ra_loop *loop;
  assert_int_equal(ra_loop_new(&loop), 0);
  rec_sink r = {0};
  side s = {0};
  ra_ws *ws;
  assert_int_equal(ra_ws_new_with_sink(loop, &rs_ops, &r, &h, &s, NULL, &ws), 0);
  assert_non_null(ws);
  ra_ws_deliver_open(ws);
  uint8_t *block;
  uint8_t *p = owned_msg(5, 9, &block);
  assert_int_equal(ra_ws_send_owned(ws, RA_WS_BINARY, p, 5, count_free, block), 0);
  assert_int_equal(frees, 1);
  assert_int_equal(r.n, 5);
  assert_true(check_msg(r.got, 5, 9));
  ra_ws_deliver_close(ws, 1000, RA_STR(""));
  ra_loop_free(loop);
}

/* A sink with its own send_owned and cork ops (as a tunnel channel may
 * have) gets the buffer handed over and the cork request; ra_ws neither
 * copies nor releases the buffer itself. */
typedef struct own_sink {
  rec_sink r;
  int corks;
  void (*free_cb)(void *);
  void *ud;
} own_sink;
static int os_send_owned(void *sink, ra_ws_type type, uint8_t *data, size_t len,
                         void (*free_cb)(void *), void *ud) {
  own_sink *o = sink;
  o->free_cb = free_cb; /* kept: released later, like a queued write */
  o->ud = ud;
  return rs_send(&o->r, type, data, len);
}
static void os_cork(void *sink) { ((own_sink *)sink)->corks++; }
static const ra_ws_sink_ops os_ops = {.send = rs_send, .close = rs_close, .terminate = rs_terminate,
                                      .send_owned = os_send_owned, .cork = os_cork};

static void test_owned_sink_ops(void **st) {
  (void)st;
  frees = 0;
  ra_loop *loop;
  assert_int_equal(ra_loop_new(&loop), 0);
  own_sink o = {0};
  side s = {0};
  ra_ws *ws;
  assert_int_equal(ra_ws_new_with_sink(loop, &os_ops, &o, &h, &s, NULL, &ws), 0);
  ra_ws_deliver_open(ws);
  ra_ws_cork(ws);
  assert_int_equal(o.corks, 1);
  uint8_t *block;
  uint8_t *p = owned_msg(5, 9, &block);
  assert_int_equal(ra_ws_send_owned(ws, RA_WS_BINARY, p, 5, count_free, block), 0);
  assert_int_equal(frees, 0); /* the sink holds it */
  assert_true(check_msg(o.r.got, 5, 9));
  o.free_cb(o.ud);
  assert_int_equal(frees, 1);
  ra_ws_deliver_close(ws, 1000, RA_STR(""));
  ra_loop_free(loop);
}

/* Corking: a burst of frames in one turn arrives complete and in order
 * (small ones gathered, a large one by reference between them, a close at
 * the end of the burst after them all), client (masked) side and server side. */
typedef struct order {
  ra_ws *ws;
  int opens, closes, messages, in_order;
  uint16_t code;
  bool burst_back; /* server: answer the first message with a corked burst */
} order;
static void o_open(ra_ws *ws, void *ud) {
  order *o = ud;
  o->ws = ws;
  o->opens++;
}
static void send_burst(ra_ws *ws, bool close_after) {
  ra_ws_cork(ws);
  ra_ws_cork(ws); /* idempotent */
  for (int i = 0; i < 60; i++) {
    size_t n = i == 30 ? (size_t)200000 : (size_t)(100 + i);
    uint8_t *block;
    uint8_t *p = owned_msg(n, (uint8_t)i, &block);
    if (i % 2) assert_true(ra_ws_send_owned(ws, RA_WS_BINARY, p, n, count_free, block) >= 0);
    else {
      assert_true(ra_ws_send(ws, RA_WS_BINARY, p, n) >= 0);
      free(block);
    }
  }
  if (close_after) assert_int_equal(ra_ws_close(ws, 4000, "done"), 0);
}
static void o_message(ra_ws *ws, ra_ws_type t, const uint8_t *d, size_t n, void *ud) {
  order *o = ud;
  int i = o->messages++;
  size_t want = i == 30 ? (size_t)200000 : (size_t)(100 + i);
  if (n == want && check_msg(d, n, (uint8_t)i)) o->in_order++;
  if (o->burst_back && i == 59) send_burst(ws, true);
}
static void o_close(ra_ws *ws, uint16_t code, ra_str reason, void *ud) {
  order *o = ud;
  o->closes++;
  o->code = code;
  if (o->ws == ws) o->ws = NULL;
}
static const ra_ws_handlers oh = {.on_open = o_open, .on_message = o_message, .on_close = o_close};

static void test_cork_burst(void **st) {
  (void)st;
  frees = 0;
  ra_loop *loop;
  assert_int_equal(ra_loop_new(&loop), 0);
  ra_router *router;
  assert_int_equal(ra_router_new(&router), 0);
  order srv = {.burst_back = true}, cli = {0};
  assert_int_equal(ra_ws_route(router, "/ws", &oh, &srv), 0);
  ra_http_server *hs;
  assert_int_equal(ra_http_server_new(loop, router, NULL, &hs), 0);
  assert_int_equal(ra_http_server_listen(hs, "127.0.0.1:0", NULL), 0);
  char url[64];
  snprintf(url, sizeof url, "ws://127.0.0.1:%u/ws", ra_http_server_port(hs));
  ra_ws *ws;
  assert_int_equal(ra_ws_connect(loop, url, NULL, &oh, &cli, &ws), 0);
  run_until(loop, &cli.opens, 1, 2000);
  assert_int_equal(cli.opens, 1);
  send_burst(ws, false);
  run_until(loop, &cli.closes, 1, 5000);
  assert_int_equal(srv.messages, 60);
  assert_int_equal(srv.in_order, 60);
  assert_int_equal(cli.messages, 60); /* the server's burst, all before its close */
  assert_int_equal(cli.in_order, 60);
  assert_int_equal(cli.closes, 1);
  assert_int_equal(cli.code, 4000);
  assert_int_equal(frees, 60); /* 30 owned each way */
  ra_http_server_free(hs);
  for (int i = 0; i < 50 && ra_loop_run_once(loop, 10) > 0;) i++;
  ra_router_free(router);
  ra_loop_free(loop);
}


int main(void) {
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_owned_both_ways),
    cmocka_unit_test(test_owned_released_on_drop),
    cmocka_unit_test(test_owned_other_sink),
    cmocka_unit_test(test_owned_sink_ops),
    cmocka_unit_test(test_cork_burst),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
