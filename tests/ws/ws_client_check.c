/* tests/ws/ws_client_check.c: our C WebSocket client against an echo server
 * (ra-hello's /echo or the npm `ws` package's server).
 *
 *   ws-client-check URL                 echo suite; exit 0 if all is well
 *   ws-client-check URL --expect-fail S  the connection must fail before
 *                                        opening with a reason containing S
 *   ws-client-check URL --expect-close C the server closes with code C
 *   ws-client-check URL --protocol P     offer P (and "other"); P must be chosen
 *   ws-client-check URL --bench N SIZE   N echo round trips of SIZE bytes,
 *                                        prints "rt/s" and "MB/s"
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "raloop/core/log.h"
#include "raloop/core/loop.h"
#include "raloop/ws/client.h"
#include "raloop/ws/ws.h"

typedef struct expect {
  ra_ws_type type;
  uint8_t *data;
  size_t len;
} expect;

static struct {
  ra_loop *loop;
  ra_timer deadline;
  expect ex[64];
  size_t nex, next;
  bool opened, closed, failed, pong;
  uint16_t close_code;
  char close_reason[128];
  const char *expect_fail;
  const char *protocol;
  int expect_close;
  long bench_n, bench_done;
  size_t bench_size;
  uint8_t *bench_buf;
  struct timespec t0;
} st;

static void fail(const char *fmt, const char *a) {
  fprintf(stderr, "FAIL: ");
  fprintf(stderr, fmt, a);
  fprintf(stderr, "\n");
  st.failed = true;
}

static void add(ra_ws *ws, ra_ws_type type, const void *data, size_t len) {
  expect *e = &st.ex[st.nex++];
  e->type = type;
  e->data = malloc(len ? len : 1);
  memcpy(e->data, data, len);
  e->len = len;
  int rc = ra_ws_send(ws, type, data, len);
  if (rc < 0) fail("send failed (%s)", strerror(-rc));
}

static void on_open(ra_ws *ws, void *ud) {
  st.opened = true;
  if (st.expect_fail) {
    fail("connection opened, expected a failure containing '%s'", st.expect_fail);
    ra_ws_close(ws, 1000, NULL);
    return;
  }
  if (st.expect_close) return; /* the server closes */
  if (st.protocol) {
    ra_str p = ra_ws_protocol(ws);
    if (!ra_str_eq_cstr(p, st.protocol)) fail("protocol not negotiated: want %s", st.protocol);
    ra_ws_close(ws, 1000, "protocol ok");
    return;
  }
  if (st.bench_n) {
    clock_gettime(CLOCK_MONOTONIC, &st.t0);
    ra_ws_send(ws, RA_WS_BINARY, st.bench_buf, st.bench_size);
    return;
  }
  /* every size the issue names, and the types */
  add(ws, RA_WS_TEXT, "hello \xe2\x9c\x93", 9);
  static const size_t sizes[] = {0, 1, 125, 126, 127, 65535, 65536, 1u << 20, 16u << 20};
  for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
    uint8_t *b = malloc(sizes[i] + 1);
    for (size_t j = 0; j < sizes[i]; j++) b[j] = (uint8_t)(j * 2654435761u >> 13);
    add(ws, RA_WS_BINARY, b, sizes[i]);
    free(b);
  }
  add(ws, RA_WS_TEXT, "", 0);
  /* fragmented text, a code point split across pieces, ping in between */
  static const char frag[] = "fragmented \xc3\xa9 and \xf0\x9f\x99\x82 end";
  expect *e = &st.ex[st.nex++];
  e->type = RA_WS_TEXT;
  e->len = sizeof frag - 1;
  e->data = malloc(e->len);
  memcpy(e->data, frag, e->len);
  int rc = ra_ws_send_fragment(ws, RA_WS_TEXT, frag, 12, false); /* ends inside "é" */
  if (rc >= 0) rc = ra_ws_ping(ws, "mid", 3);
  if (rc >= 0 && ra_ws_send(ws, RA_WS_TEXT, "x", 1) != -EBUSY) fail("send inside a fragmented message: %s", "not -EBUSY");
  if (rc >= 0) rc = ra_ws_send_fragment(ws, RA_WS_TEXT, frag + 12, 9, false);
  if (rc >= 0) rc = ra_ws_send_fragment(ws, RA_WS_TEXT, frag + 21, e->len - 21, true);
  if (rc < 0) fail("fragmented send failed (%s)", strerror(-rc));
  /* invalid UTF-8 is refused locally */
  if (ra_ws_send(ws, RA_WS_TEXT, "\xff", 1) != -EILSEQ) fail("invalid text was not refused%s", "");
  if (ra_ws_send_fragment(ws, RA_WS_TEXT, "ab\xe2\x82", 4, true) != -EILSEQ)
    fail("unterminated text fragment was not refused%s", "");
  if (ra_ws_ping(ws, "ping!", 5) < 0) fail("ping failed%s", "");
}

static void on_message(ra_ws *ws, ra_ws_type type, const uint8_t *data, size_t len, void *ud) {
  if (st.bench_n) {
    if (len != st.bench_size) fail("bench: echo of the wrong size%s", "");
    if (++st.bench_done == st.bench_n) {
      struct timespec t1;
      clock_gettime(CLOCK_MONOTONIC, &t1);
      double s = (double)(t1.tv_sec - st.t0.tv_sec) + (double)(t1.tv_nsec - st.t0.tv_nsec) / 1e9;
      printf("%ld round trips of %zu bytes in %.3f s: %.0f rt/s, %.1f MB/s\n", st.bench_n,
             st.bench_size, s, (double)st.bench_n / s,
             (double)st.bench_n * (double)st.bench_size * 2 / s / 1e6);
      ra_ws_close(ws, 1000, "done");
      return;
    }
    ra_ws_send(ws, RA_WS_BINARY, st.bench_buf, st.bench_size);
    return;
  }
  if (st.next >= st.nex) {
    fail("unexpected extra message%s", "");
    return;
  }
  expect *e = &st.ex[st.next++];
  char what[64];
  snprintf(what, sizeof what, "#%zu (%zu bytes)", st.next - 1, e->len);
  if (type != e->type) fail("message %s: wrong type", what);
  if (len != e->len || (len && memcmp(data, e->data, len) != 0)) fail("message %s: wrong payload", what);
  if (st.next == st.nex) {
    ra_ws_close(ws, 1000, "done");
    if (ra_ws_send(ws, RA_WS_TEXT, "late", 4) != -EPIPE) fail("send after close is not -EPIPE%s", "");
  }
}

static void on_pong(ra_ws *ws, const uint8_t *data, size_t len, void *ud) {
  if (len == 5 && memcmp(data, "ping!", 5) == 0) st.pong = true;
}

static void on_close(ra_ws *ws, uint16_t code, ra_str reason, void *ud) {
  st.closed = true;
  st.close_code = code;
  snprintf(st.close_reason, sizeof st.close_reason, "%.*s", (int)reason.len, reason.ptr);
  ra_timer_stop(&st.deadline);
}

static void on_deadline(ra_timer *t, void *ud) {
  fail("timed out%s", "");
  ra_loop_stop(st.loop);
}

int main(int argc, char **argv) {
  if (argc < 2) {
    fprintf(stderr, "usage: ws-client-check URL [--expect-fail S | --protocol P | --bench N SIZE]\n");
    return 2;
  }
  const char *url = argv[1];
  if (argc >= 4 && strcmp(argv[2], "--expect-fail") == 0) st.expect_fail = argv[3];
  if (argc >= 4 && strcmp(argv[2], "--protocol") == 0) st.protocol = argv[3];
  if (argc >= 4 && strcmp(argv[2], "--expect-close") == 0) st.expect_close = atoi(argv[3]);
  if (argc >= 5 && strcmp(argv[2], "--bench") == 0) {
    st.bench_n = atol(argv[3]);
    st.bench_size = (size_t)atol(argv[4]);
    st.bench_buf = calloc(1, st.bench_size + 1);
    if (st.bench_n <= 0) return 2;
  }
  ra_log_set_level(getenv("WS_CHECK_DEBUG") ? RA_LOG_DEBUG : RA_LOG_WARN);
  ra_loop_new(&st.loop);
  ra_timer_init(st.loop, &st.deadline, on_deadline, NULL);
  ra_timer_start(&st.deadline, st.bench_n ? 600000 : 60000, 0);
  ra_ws_handlers h = {.on_open = on_open, .on_message = on_message, .on_close = on_close, .on_pong = on_pong};
  const char *protos[] = {"other", st.protocol};
  ra_ws_client_opts o = {.ws = {.max_message = 64u << 20, .send_limit = 256u << 20}};
  if (st.protocol) {
    o.protocols = protos;
    o.nprotocols = 2;
  }
  ra_ws *ws = NULL;
  int rc = ra_ws_connect(st.loop, url, &o, &h, NULL, &ws);
  if (rc < 0) {
    fprintf(stderr, "FAIL: ra_ws_connect: %s\n", strerror(-rc));
    return 1;
  }
  ra_loop_run(st.loop);
  ra_timer_stop(&st.deadline);
  if (!st.closed) fail("no on_close%s", "");
  if (st.expect_fail) {
    if (st.close_code != 1006 || !strstr(st.close_reason, st.expect_fail)) {
      fprintf(stderr, "FAIL: closed with %u '%s', want 1006 with '%s'\n", st.close_code,
              st.close_reason, st.expect_fail);
      st.failed = true;
    }
  } else if (st.expect_close) {
    if (!st.opened || st.close_code != st.expect_close) fail("server close: got %s", st.close_reason);
  } else if (st.protocol) {
    if (st.close_code != 1000) fail("close: %s", st.close_reason);
  } else if (!st.bench_n) {
    if (st.next != st.nex) fail("not every echo came back%s", "");
    if (!st.pong) fail("no pong for our ping%s", "");
    if (st.close_code != 1000 || strcmp(st.close_reason, "done") != 0)
      fprintf(stderr, "FAIL: closed with %u '%s', want 1000 'done'\n", st.close_code, st.close_reason),
          st.failed = true;
  }
  for (size_t i = 0; i < st.nex; i++) free(st.ex[i].data);
  free(st.bench_buf);
  ra_loop_free(st.loop);
  if (!st.failed && !st.bench_n) printf("ok: %s\n", url);
  return st.failed ? 1 : 0;
}
