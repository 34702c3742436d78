/* tests/http/conn_test.c: the HTTP/1.1 connection state machine, fed bytes
 * through the memory seam (tests/http/mem_io.h): framing, keep-alive,
 * pipelining order, limits, timeouts, 100-continue, HEAD, async answers and
 * their cancellation, graceful shutdown, routing a request with a body. */
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
#include "mem_io.h"

static ra_res *held[16];
static int nheld;
static int ncancel;

static void h_hello(ra_req *req, ra_res *res, void *ud) { ra_res_send_text(res, 200, "world"); }

static void h_echo(ra_req *req, ra_res *res, void *ud) {
  ra_str b = ra_req_body(req);
  ra_res_send(res, 200, "application/x-echo", b.ptr, b.len);
}

static void on_cancel(ra_res *res, void *ud) {
  ncancel++;
  for (int i = 0; i < nheld; i++)
    if (held[i] == res) held[i] = NULL;
  ra_res_end(res);
}

static void h_async(ra_req *req, ra_res *res, void *ud) {
  held[nheld++] = res;
  ra_res_on_cancel(res, on_cancel, NULL);
}

static void h_stream(ra_req *req, ra_res *res, void *ud) {
  ra_res_write(res, "a", 1);
  ra_res_write(res, "bb", 2);
  ra_res_write(res, "ccc", 3);
  ra_res_end(res);
}

static int drains;
static void on_drain_more(ra_res *res, void *ud) {
  drains++;
  ra_res_write(res, "second", 6);
  ra_res_end(res);
}

/* Writes a first piece, then waits for the transport to drain. */
static void h_paced(ra_req *req, ra_res *res, void *ud) {
  ra_res_on_drain(res, on_drain_more, NULL);
  ra_res_write(res, "first", 5);
  held[nheld++] = res;
}

static void h_short(ra_req *req, ra_res *res, void *ud) {
  ra_res_set_content_length(res, 10);
  ra_res_write(res, "abc", 3);
  ra_res_end(res);
}

static void h_query(ra_req *req, ra_res *res, void *ud) {
  ra_str v = RA_STR("");
  ra_req_query_get(req, "q", &v);
  ra_res_send(res, 200, NULL, v.ptr, v.len);
}

/* ra-hello's /stream: paced on ra_res_pending, resumed by on_drain, ended
 * by on_cancel. */
static long endless_i, endless_writes;
static int endless_cancels;
static void endless_more(ra_res *res, void *ud) {
  while (endless_i < 100000000 && ra_res_pending(res) < 64 * 1024) {
    endless_writes++;
    if (ra_res_write(res, "chunk of an endless stream\n", 27) < 0) break;
    endless_i++;
  }
  if (endless_i >= 100000000) ra_res_end(res);
}
static void endless_cancel(ra_res *res, void *ud) {
  endless_cancels++;
  ra_res_end(res);
}
static void h_endless(ra_req *req, ra_res *res, void *ud) {
  endless_i = endless_writes = 0;
  ra_res_on_cancel(res, endless_cancel, NULL);
  ra_res_on_drain(res, endless_more, NULL);
  endless_more(res, NULL);
}

typedef struct fx {
  ra_loop *loop;
  ra_router *router;
  ra_http_server *srv;
  mem_io io;
} fx;

static void fx_open(fx *f, const ra_http_limits *lim) {
  nheld = 0;
  ncancel = 0;
  memset(held, 0, sizeof held);
  assert_int_equal(ra_loop_new(&f->loop), 0);
  assert_non_null(f->loop);
  assert_int_equal(ra_router_new(&f->router), 0);
  ra_route(f->router, "GET", "/hello", h_hello, NULL);
  ra_route(f->router, "POST", "/echo", h_echo, NULL);
  ra_route(f->router, "GET", "/async", h_async, NULL);
  ra_route(f->router, "GET", "/stream", h_stream, NULL);
  ra_route(f->router, "GET", "/short", h_short, NULL);
  ra_route(f->router, "GET", "/paced", h_paced, NULL);
  ra_route(f->router, "GET", "/q", h_query, NULL);
  ra_route(f->router, "GET", "/endless", h_endless, NULL);
  ra_http_server_opts o = {0};
  if (lim) o.limits = *lim;
  assert_int_equal(ra_http_server_new(f->loop, f->router, &o, &f->srv), 0);
  assert_non_null(f->srv);
  mem_io_open(&f->io, f->srv);
  assert_non_null(f->io.conn);
}

static void spin(fx *f, int ms) {
  uint64_t end = ra_loop_update_time(f->loop) + (uint64_t)ms;
  while (ra_loop_update_time(f->loop) < end) {
    ra_loop_run_once(f->loop, 5);
    if (f->io.close_requested) break;
  }
}

static void turns(fx *f) {
  for (int i = 0; i < 4; i++) ra_loop_run_once(f->loop, 0);
}

static void fx_close(fx *f) {
  mem_io_drop(&f->io);
  ra_http_server_free(f->srv);
  ra_router_free(f->router);
  ra_loop_free(f->loop);
}

static void feed(fx *f, const char *s) { mem_io_feed(&f->io, s, strlen(s)); }

static int count(const char *hay, const char *needle) {
  int n = 0;
  for (const char *p = hay; (p = strstr(p, needle)) != NULL; p += strlen(needle)) n++;
  return n;
}

/* ---------------------------------------------------------------------------- */

static void test_simple(void **state) {
  fx f;
  fx_open(&f, NULL);
  feed(&f, "GET /hello HTTP/1.1\r\nHost: x\r\n\r\n");
  const char *o = mem_io_str(&f.io);
  assert_non_null(strstr(o, "HTTP/1.1 200 OK\r\n"));
  assert_non_null(strstr(o, "\r\nContent-Length: 5\r\n"));
  assert_non_null(strstr(o, "\r\nServer: raloop\r\n"));
  assert_non_null(strstr(o, "\r\nDate: "));
  assert_non_null(strstr(o, " GMT\r\n"));
  assert_null(strstr(o, "Connection:"));
  assert_int_equal(strcmp(o + strlen(o) - 9, "\r\n\r\nworld"), 0);
  assert_false(f.io.close_requested);
  /* a second request on the same connection */
  feed(&f, "GET /q?q=a%20b HTTP/1.1\r\nHost: x\r\n\r\n");
  o = mem_io_str(&f.io);
  assert_int_equal(count(o, "HTTP/1.1 200 OK"), 2);
  assert_int_equal(strcmp(o + strlen(o) - 3, "a b"), 0);
  fx_close(&f);
}

static void test_byte_at_a_time(void **state) {
  fx f;
  fx_open(&f, NULL);
  const char *req = "POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
                    "Content-Type: text/x\r\n\r\n5;ext=1\r\nhello\r\n6\r\n world\r\n0\r\nX-Trailer: t\r\n\r\n"
                    "GET /hello HTTP/1.1\r\nHost: x\r\n\r\n";
  for (size_t i = 0; req[i]; i++) mem_io_feed(&f.io, req + i, 1);
  const char *o = mem_io_str(&f.io);
  char *first = strstr(o, "hello world");
  assert_non_null(first);
  assert_non_null(strstr(o, "Content-Length: 11\r\n"));
  assert_non_null(strstr(first, "world")); /* then the second answer */
  assert_int_equal(count(o, "HTTP/1.1 200 OK"), 2);
  assert_false(f.io.close_requested);
  fx_close(&f);
}

static void test_pipelining_order(void **state) {
  fx f;
  fx_open(&f, NULL);
  feed(&f, "GET /async HTTP/1.1\r\nHost: x\r\n\r\nGET /hello HTTP/1.1\r\nHost: x\r\n\r\n"
           "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\n\r\nping");
  /* The first is pending: nothing may be written before it. */
  assert_int_equal(f.io.out.len, 0);
  assert_int_equal(nheld, 1);
  ra_res_send_text(held[0], 200, "first");
  const char *o = mem_io_str(&f.io);
  const char *a = strstr(o, "first"), *b = strstr(o, "world"), *c = strstr(o, "ping");
  assert_non_null(a);
  assert_non_null(b);
  assert_non_null(c);
  assert_true(a < b && b < c);
  assert_int_equal(count(o, "HTTP/1.1 200 OK"), 3);
  fx_close(&f);
}

static void test_pipeline_limit(void **state) {
  fx f;
  ra_http_limits lim = {0};
  lim.max_pipelined = 2;
  fx_open(&f, &lim);
  feed(&f, "GET /async HTTP/1.1\r\nHost: x\r\n\r\nGET /async HTTP/1.1\r\nHost: x\r\n\r\n"
           "GET /async HTTP/1.1\r\nHost: x\r\n\r\nGET /hello HTTP/1.1\r\nHost: x\r\n\r\n");
  assert_int_equal(nheld, 2);
  assert_false(f.io.reading); /* reading paused while the pipeline is full */
  ra_res_send_text(held[1], 200, "two");
  assert_int_equal(f.io.out.len, 0);
  ra_res_send_text(held[0], 200, "one");
  turns(&f);
  assert_int_equal(nheld, 3);
  ra_res_send_text(held[2], 200, "three");
  turns(&f);
  const char *o = mem_io_str(&f.io);
  const char *a = strstr(o, "one"), *b = strstr(o, "two"), *c = strstr(o, "three"), *d = strstr(o, "world");
  assert_true(a && b && c && d && a < b && b < c && c < d);
  assert_true(f.io.reading);
  fx_close(&f);

  /* The client half-closes right after sending: everything it sent (also
   * what waits behind the full pipeline) is answered, then the close. */
  fx_open(&f, &lim);
  feed(&f, "GET /async HTTP/1.1\r\nHost: x\r\n\r\nGET /async HTTP/1.1\r\nHost: x\r\n\r\nGET /hello HTTP/1.1\r\nHost: x\r\n\r\nGET /hel");
  ra_http_conn_eof(f.io.conn);
  assert_false(f.io.close_requested);
  ra_res_send_text(held[0], 200, "one");
  ra_res_send_text(held[1], 200, "two");
  turns(&f);
  o = mem_io_str(&f.io);
  assert_int_equal(count(o, "HTTP/1.1 200 OK"), 3);
  assert_non_null(strstr(o, "world"));
  assert_true(f.io.close_requested); /* the partial fourth is dropped */
  fx_close(&f);
}

static void test_keepalive_versions(void **state) {
  fx f;
  fx_open(&f, NULL);
  feed(&f, "GET /hello HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
  assert_non_null(strstr(mem_io_str(&f.io), "\r\nConnection: keep-alive\r\n"));
  assert_false(f.io.close_requested);
  feed(&f, "GET /hello HTTP/1.0\r\n\r\n");
  assert_int_equal(count(mem_io_str(&f.io), "HTTP/1.1 200 OK"), 2);
  assert_non_null(strstr(mem_io_str(&f.io), "\r\nConnection: close\r\n"));
  assert_true(f.io.close_requested);
  fx_close(&f);

  fx_open(&f, NULL);
  feed(&f, "GET /hello HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\nGET /hello HTTP/1.1\r\nHost: x\r\n\r\n");
  assert_int_equal(count(mem_io_str(&f.io), "HTTP/1.1 200 OK"), 1);
  assert_non_null(strstr(mem_io_str(&f.io), "\r\nConnection: close\r\n"));
  assert_true(f.io.close_requested);
  fx_close(&f);

  /* HTTP/1.0 with a streamed body: no chunked encoding, close delimits */
  fx_open(&f, NULL);
  feed(&f, "GET /stream HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
  const char *o = mem_io_str(&f.io);
  assert_null(strstr(o, "chunked"));
  assert_non_null(strstr(o, "Connection: close\r\n"));
  assert_int_equal(strcmp(o + strlen(o) - 10, "\r\n\r\nabbccc"), 0);
  assert_true(f.io.close_requested);
  fx_close(&f);
}

static void test_head_and_chunked(void **state) {
  fx f;
  fx_open(&f, NULL);
  feed(&f, "HEAD /hello HTTP/1.1\r\nHost: x\r\n\r\n");
  const char *o = mem_io_str(&f.io);
  assert_non_null(strstr(o, "Content-Length: 5\r\n"));
  assert_int_equal(strcmp(o + strlen(o) - 4, "\r\n\r\n"), 0);
  ra_buf_reset(&f.io.out);
  feed(&f, "GET /stream HTTP/1.1\r\nHost: x\r\n\r\n");
  o = mem_io_str(&f.io);
  assert_non_null(strstr(o, "Transfer-Encoding: chunked\r\n"));
  assert_non_null(strstr(o, "\r\n\r\n1\r\na\r\n2\r\nbb\r\n3\r\nccc\r\n0\r\n\r\n"));
  ra_buf_reset(&f.io.out);
  feed(&f, "HEAD /stream HTTP/1.1\r\nHost: x\r\n\r\n");
  o = mem_io_str(&f.io);
  assert_non_null(strstr(o, "Transfer-Encoding: chunked\r\n"));
  assert_int_equal(strcmp(o + strlen(o) - 4, "\r\n\r\n"), 0);
  assert_null(strstr(o, "0\r\n\r\n"));
  assert_false(f.io.close_requested);
  /* a body shorter than its Content-Length: the connection must close */
  feed(&f, "GET /short HTTP/1.1\r\nHost: x\r\n\r\n");
  assert_true(f.io.close_requested);
  fx_close(&f);
}

/* HEAD of a huge paced stream: the answer is complete with its head, the
 * pipelined request behind it is answered, and the producer is stopped
 * (on_cancel) after a write or two instead of spinning through its 10^8
 * chunks with nothing pending. */
static void test_head_streamed_ends(void **state) {
  fx f;
  fx_open(&f, NULL);
  endless_cancels = 0;
  feed(&f, "HEAD /endless HTTP/1.1\r\nHost: x\r\n\r\nGET /hello HTTP/1.1\r\nHost: x\r\n\r\n");
  turns(&f);
  const char *o = mem_io_str(&f.io);
  assert_int_equal(count(o, "HTTP/1.1 200 OK\r\n"), 2);
  assert_non_null(strstr(o, "Transfer-Encoding: chunked\r\n"));
  assert_null(strstr(o, "chunk of"));
  assert_int_equal(strcmp(o + strlen(o) - 5, "world"), 0);
  assert_true(endless_writes <= 2);
  assert_int_equal(endless_cancels, 1);
  assert_false(f.io.close_requested);
  fx_close(&f);
}

/* GET of the same stream to a transport that takes everything at once
 * (nothing pending): the producer yields every RA_RES_TURN_BUDGET bytes. */
static void test_stream_yields(void **state) {
  fx f;
  fx_open(&f, NULL);
  endless_cancels = 0;
  feed(&f, "GET /endless HTTP/1.1\r\nHost: x\r\n\r\n");
  /* body bytes count, not the chunk framing (27 -> 33 bytes) */
  assert_true(f.io.out.len < 2 * RA_RES_TURN_BUDGET);
  size_t first = f.io.out.len;
  ra_loop_run_once(f.loop, 0);
  ra_loop_run_once(f.loop, 0);
  assert_true(f.io.out.len > first); /* on_drain brought it back */
  assert_true(f.io.out.len < 6 * RA_RES_TURN_BUDGET);
  mem_io_drop(&f.io);
  assert_int_equal(endless_cancels, 1);
  fx_close(&f);
}

static void test_expect_continue(void **state) {
  fx f;
  fx_open(&f, NULL);
  feed(&f, "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n");
  assert_string_equal(mem_io_str(&f.io), "HTTP/1.1 100 Continue\r\n\r\n");
  feed(&f, "hello");
  const char *o = mem_io_str(&f.io);
  assert_non_null(strstr(o, "HTTP/1.1 200 OK\r\n"));
  assert_int_equal(strcmp(o + strlen(o) - 5, "hello"), 0);
  assert_false(f.io.close_requested);
  fx_close(&f);

  fx_open(&f, NULL);
  feed(&f, "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 999999999\r\nExpect: 100-continue\r\n\r\n");
  o = mem_io_str(&f.io);
  assert_null(strstr(o, "100 Continue"));
  assert_non_null(strstr(o, "HTTP/1.1 413 "));
  assert_true(f.io.close_requested);
  fx_close(&f);
}

/* Sends `req`, expects `status` in the answer and the connection closing. */
static void expect_error(const ra_http_limits *lim, const char *req, size_t len, int status) {
  fx f;
  fx_open(&f, lim);
  mem_io_feed(&f.io, req, len);
  char want[32];
  snprintf(want, sizeof want, "HTTP/1.1 %d ", status);
  const char *o = mem_io_str(&f.io);
  if (!strstr(o, want)) fail_msg("expected %d for %.40s..., got: %.200s", status, req, o);
  assert_non_null(strstr(o, "Connection: close\r\n"));
  assert_int_equal(count(o, "HTTP/1.1 "), 1);
  assert_true(f.io.close_requested);
  /* nothing more is read */
  feed(&f, "GET /hello HTTP/1.1\r\nHost: x\r\n\r\n");
  assert_int_equal(count(mem_io_str(&f.io), "HTTP/1.1 "), 1);
  mem_io_settle(&f.io);
  fx_close(&f);
}

static void expect_error_s(const ra_http_limits *lim, const char *req, int status) {
  expect_error(lim, req, strlen(req), status);
}

static void test_limits(void **state) {
  size_t big = 20000;
  char *buf = malloc(big + 200);
  /* request line too long */
  strcpy(buf, "GET /");
  memset(buf + 5, 'a', 9000);
  strcpy(buf + 9005, " HTTP/1.1\r\nHost: x\r\n\r\n");
  expect_error_s(NULL, buf, 414);
  /* header section too large */
  strcpy(buf, "GET /hello HTTP/1.1\r\nHost: x\r\nX-Big: ");
  size_t o = strlen(buf);
  memset(buf + o, 'b', 17000);
  strcpy(buf + o + 17000, "\r\n\r\n");
  expect_error_s(NULL, buf, 431);
  /* too many headers */
  o = (size_t)sprintf(buf, "GET /hello HTTP/1.1\r\nHost: x\r\n");
  for (int i = 0; i < 101; i++) o += (size_t)sprintf(buf + o, "X-%d: v\r\n", i);
  strcpy(buf + o, "\r\n");
  expect_error_s(NULL, buf, 431);
  free(buf);
  /* body too large, announced and chunked */
  expect_error_s(NULL, "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 9000000\r\n\r\n", 413);
  ra_http_limits lim = {0};
  lim.max_body = 8;
  expect_error_s(&lim, "POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n5\r\nworld\r\n0\r\n\r\n", 413);
  /* malformed */
  expect_error_s(NULL, "HELLO THERE\r\n\r\n", 400);
  expect_error_s(NULL, "GET /hello HTTP/1.1\r\nHost: x\r\nBad Header\r\n\r\n", 400);
  expect_error_s(NULL, "GET /hello HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabc", 400);
  expect_error_s(NULL, "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400);
  expect_error_s(NULL, "POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", 400);
  expect_error(NULL, "GET /he\0llo HTTP/1.1\r\nHost: x\r\n\r\n", 24, 400);
  /* unsupported transfer codings */
  expect_error_s(NULL, "POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\n", 501);
  expect_error_s(NULL, "POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n", 501);
  expect_error_s(NULL, "CONNECT example.com:443 HTTP/1.1\r\nHost: x\r\n\r\n", 501);
  expect_error_s(NULL, "GET /hello HTTP/2.0\r\n\r\n", 505);
  expect_error_s(NULL, "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nExpect: magic\r\n\r\nx", 417);
  /* garbage after a good request: the good one is answered, then 400 */
  fx f;
  fx_open(&f, NULL);
  feed(&f, "GET /hello HTTP/1.1\r\nHost: x\r\n\r\n\x01\x02garbage\r\n\r\n");
  const char *out = mem_io_str(&f.io);
  assert_non_null(strstr(out, "HTTP/1.1 200 OK"));
  assert_non_null(strstr(out, "HTTP/1.1 400 "));
  assert_true(strstr(out, "200 OK") < strstr(out, "400 "));
  assert_true(f.io.close_requested);
  fx_close(&f);
  /* a bad target is the router's 400: the connection stays usable */
  fx_open(&f, NULL);
  feed(&f, "GET /a%zz HTTP/1.1\r\nHost: x\r\n\r\nGET /hello HTTP/1.1\r\nHost: x\r\n\r\n");
  out = mem_io_str(&f.io);
  assert_non_null(strstr(out, "HTTP/1.1 400 "));
  assert_non_null(strstr(out, "world"));
  assert_false(f.io.close_requested);
  fx_close(&f);
}

/* Feeds req whole, then (a fresh connection) one byte at a time, and wants
 * the first answer's status to be `status` both ways. */
static void expect_status_split(const char *req, int status) {
  for (int bytewise = 0; bytewise < 2; bytewise++) {
    fx f;
    fx_open(&f, NULL);
    size_t n = strlen(req);
    if (bytewise)
      for (size_t i = 0; i < n; i++) mem_io_feed(&f.io, req + i, 1);
    else
      mem_io_feed(&f.io, req, n);
    turns(&f);
    char want[32];
    snprintf(want, sizeof want, "HTTP/1.1 %d ", status);
    const char *o = mem_io_str(&f.io);
    if (strncmp(o, want, strlen(want)) != 0)
      fail_msg("expected %d for %s (%s), got: %.100s", status, req, bytewise ? "bytewise" : "whole", o);
    if (status >= 400) assert_true(f.io.close_requested);
    fx_close(&f);
  }
}

/* RFC 9112 strictness, each with its exact status. */
static void test_strict_rfc9112(void **state) {
  /* Host (3.2): required in HTTP/1.1, never twice; optional in HTTP/1.0 */
  expect_status_split("GET /hello HTTP/1.1\r\n\r\n", 400);
  expect_status_split("GET /hello HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400);
  expect_status_split("GET /hello HTTP/1.1\r\nHost: a\r\nhOsT: a\r\n\r\n", 400);
  expect_status_split("GET /hello HTTP/1.0\r\nHost: a\r\nHost: b\r\n\r\n", 400);
  expect_status_split("GET /hello HTTP/1.1\r\nHost: a\r\n\r\n", 200);
  expect_status_split("GET /hello HTTP/1.1\r\nHost:\r\n\r\n", 200); /* empty: allowed (no authority) */
  expect_status_split("GET /hello HTTP/1.0\r\n\r\n", 200);
  expect_status_split("GET /hello HTTP/1.1\r\nX-Host: a\r\nHosts: b\r\nHost: c\r\n\r\n", 200);
  /* request line (3): one SP between its parts */
  expect_status_split("GET  /hello HTTP/1.1\r\nHost: a\r\n\r\n", 400);
  expect_status_split("GET /hello  HTTP/1.1\r\nHost: a\r\n\r\n", 400);
  expect_status_split("\r\nGET /hello HTTP/1.1\r\nHost: a\r\n\r\n", 200); /* leading empty line */
  /* Transfer-Encoding in HTTP/1.0 (6.1): faulty framing */
  expect_status_split("POST /echo HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n", 400);
  /* obs-fold (5.2): refused, in framing headers and elsewhere */
  expect_status_split("POST /echo HTTP/1.1\r\nHost: a\r\nTransfer-Encoding:\r\n chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n", 400);
  expect_status_split("POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length:\r\n\t3\r\n\r\nabc", 400);
  expect_status_split("GET /hello HTTP/1.1\r\nHost: a\r\nX-A: b\r\n c\r\n\r\n", 400);
  /* ... but a body may hold "\n " */
  expect_status_split("POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\n\r\na\n b", 200);
  /* chunk extensions (7.1.1), quoted or not, are accepted and ignored */
  expect_status_split("POST /echo HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3;c=\"d\"\r\nabc\r\n0\r\n\r\n", 200);
  expect_status_split("POST /echo HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3;c=d;e\r\nabc\r\n0\r\n\r\n", 200);
  expect_status_split("POST /echo HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3;c=\"d;\\\"e\"\r\nabc\r\n0\r\n\r\n", 200);
  expect_status_split("POST /echo HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3 ; c = \"d\" ;e\r\nabc\r\n0;last\r\nX-T: v\r\n\r\n", 200);
  expect_status_split("POST /echo HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3;\"x\"\r\nabc\r\n0\r\n\r\n", 400);
  expect_status_split("POST /echo HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3;c=d e\r\nabc\r\n0\r\n\r\n", 400);
  expect_status_split("POST /echo HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3;c=\"d\r\nabc\r\n0\r\n\r\n", 400);
  expect_status_split("POST /echo HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n;c\r\nabc\r\n0\r\n\r\n", 400);
  /* the echoed body is the chunks' data, extensions dropped */
  fx f;
  fx_open(&f, NULL);
  feed(&f, "POST /echo HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
           "3;a=b\r\nabc\r\n2 ;q=\"x\\\"y\"\r\nde\r\n0\r\n\r\n");
  const char *o = mem_io_str(&f.io);
  assert_int_equal(strcmp(o + strlen(o) - 9, "\r\n\r\nabcde"), 0);
  fx_close(&f);
  /* extensions are bounded */
  char *big = malloc(8192);
  int n = sprintf(big, "POST /echo HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3;x=");
  memset(big + n, 'v', 5000);
  strcpy(big + n + 5000, "\r\nabc\r\n0\r\n\r\n");
  expect_status_split(big, 400);
  free(big);
}

static void test_timeouts(void **state) {
  ra_http_limits lim = {0};
  lim.header_timeout_ms = 40;
  lim.body_timeout_ms = 40;
  lim.keepalive_timeout_ms = 60;
  fx f;
  /* slowloris: headers never complete */
  fx_open(&f, &lim);
  feed(&f, "GET /hello HTTP/1.1\r\nHost: x\r\n");
  spin(&f, 20);
  feed(&f, "X-Slow: 1\r\n"); /* trickling does not extend the header deadline */
  spin(&f, 1000);
  assert_true(f.io.close_requested);
  assert_non_null(strstr(mem_io_str(&f.io), "HTTP/1.1 408 "));
  fx_close(&f);
  /* body never completes */
  fx_open(&f, &lim);
  feed(&f, "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nabc");
  spin(&f, 1000);
  assert_true(f.io.close_requested);
  assert_non_null(strstr(mem_io_str(&f.io), "HTTP/1.1 408 "));
  fx_close(&f);
  /* idle keep-alive: closed silently */
  fx_open(&f, &lim);
  feed(&f, "GET /hello HTTP/1.1\r\nHost: x\r\n\r\n");
  spin(&f, 1000);
  assert_true(f.io.close_requested);
  assert_int_equal(count(mem_io_str(&f.io), "HTTP/1.1 "), 1);
  fx_close(&f);
  /* a slow handler is not a timeout */
  fx_open(&f, &lim);
  feed(&f, "GET /async HTTP/1.1\r\nHost: x\r\n\r\n");
  spin(&f, 150);
  assert_false(f.io.close_requested);
  ra_res_send_text(held[0], 200, "late");
  assert_non_null(strstr(mem_io_str(&f.io), "late"));
  fx_close(&f);
}

/* A body that trickles (a byte well within body_timeout_ms each time)
 * still gets its 408 once body_deadline_ms has passed since its head. */
static void test_body_deadline(void **state) {
  ra_http_limits lim = {0};
  lim.body_timeout_ms = 100;
  lim.body_deadline_ms = 300;
  fx f;
  fx_open(&f, &lim);
  uint64_t start = ra_loop_update_time(f.loop), last = start, max_gap = 0;
  feed(&f, "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n");
  for (int i = 0; i < 40 && !f.io.close_requested; i++) {
    feed(&f, "a");
    spin(&f, 30);
    uint64_t now = ra_loop_update_time(f.loop);
    if (now - last > max_gap) max_gap = now - last;
    last = now;
  }
  uint64_t took = ra_loop_update_time(f.loop) - start;
  assert_true(f.io.close_requested);
  assert_non_null(strstr(mem_io_str(&f.io), "HTTP/1.1 408 "));
  /* before the deadline only if a busy machine stretched a 30 ms gap past
   * the 100 ms per-byte timeout, which then rightly answered first */
  if (!(took >= 280 || max_gap >= lim.body_timeout_ms) || took >= 800)
    fail_msg("408 after %llu ms (longest gap between bytes %llu ms)", (unsigned long long)took,
             (unsigned long long)max_gap);
  fx_close(&f);
  /* chunked: the same */
  fx_open(&f, &lim);
  feed(&f, "POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n64\r\n");
  for (int i = 0; i < 40 && !f.io.close_requested; i++) {
    feed(&f, "a");
    spin(&f, 30);
  }
  assert_true(f.io.close_requested);
  assert_non_null(strstr(mem_io_str(&f.io), "HTTP/1.1 408 "));
  fx_close(&f);
  /* a body that arrives in time is answered */
  fx_open(&f, &lim);
  feed(&f, "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\na");
  spin(&f, 50);
  feed(&f, "bc");
  assert_non_null(strstr(mem_io_str(&f.io), "HTTP/1.1 200 "));
  fx_close(&f);
}

/* A limit set huge (to mean "practically never") must not wrap its
 * deadline into the past and so disarm the other timeouts: the header
 * timeout still answers 408 on the next request. */
static void test_huge_timeout(void **state) {
  ra_http_limits lim = {0};
  lim.header_timeout_ms = 40;
  lim.keepalive_timeout_ms = UINT64_MAX;
  lim.body_timeout_ms = UINT64_MAX;
  fx f;
  fx_open(&f, &lim);
  feed(&f, "GET /hello HTTP/1.1\r\nHost: x\r\n\r\n");
  spin(&f, 80); /* idle keep-alive: not closed */
  assert_false(f.io.close_requested);
  feed(&f, "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\n\r\nab");
  spin(&f, 80); /* a body trickling in: not closed */
  assert_false(f.io.close_requested);
  feed(&f, "cd");
  feed(&f, "GET /hello HTTP/1.1\r\nHost: x\r\n"); /* never completes */
  spin(&f, 1000);
  assert_true(f.io.close_requested);
  const char *o = mem_io_str(&f.io);
  assert_int_equal(count(o, "HTTP/1.1 200 OK"), 2);
  assert_non_null(strstr(o, "HTTP/1.1 408 "));
  fx_close(&f);
}

static void test_async_cancel(void **state) {
  fx f;
  fx_open(&f, NULL);
  feed(&f, "GET /async HTTP/1.1\r\nHost: x\r\n\r\nGET /async HTTP/1.1\r\nHost: x\r\n\r\n");
  assert_int_equal(nheld, 2);
  ra_res *second = held[1];
  ra_res_on_cancel(second, NULL, NULL); /* this one is answered late instead */
  mem_io_drop(&f.io);
  assert_int_equal(ncancel, 1); /* the first one's callback ran */
  assert_true(ra_res_cancelled(second));
  assert_int_equal(ra_res_write(second, "x", 1), -ECANCELED);
  assert_int_equal(ra_res_send_text(second, 200, "too late"), -ECANCELED); /* frees it */
  fx_close(&f);
}

static void test_drain(void **state) {
  fx f;
  fx_open(&f, NULL);
  drains = 0;
  f.io.queued = 123456; /* pretend the peer is slow */
  feed(&f, "GET /paced HTTP/1.1\r\nHost: x\r\n\r\nGET /paced HTTP/1.1\r\nHost: x\r\n\r\n");
  assert_int_equal(nheld, 2);
  assert_int_equal(ra_res_pending(held[0]), 123456); /* head: the transport's queue */
  assert_true(ra_res_pending(held[1]) > 0);           /* later: its own held bytes */
  assert_non_null(strstr(mem_io_str(&f.io), "first"));
  assert_null(strstr(mem_io_str(&f.io), "second"));
  f.io.queued = 0;
  ra_http_conn_drain(f.io.conn); /* the head's drain callback runs */
  assert_int_equal(drains, 1);
  turns(&f); /* the second became head: told to go on, too */
  assert_int_equal(drains, 2);
  const char *o = mem_io_str(&f.io);
  assert_int_equal(count(o, "second"), 2);
  assert_int_equal(count(o, "0\r\n\r\n"), 2);
  fx_close(&f);
}

static int shutdown_done;
static void on_done(ra_http_server *srv, void *ud) { shutdown_done++; }
static int hook_ran;
static void on_hook(ra_http_server *srv, void *ud) { hook_ran++; }

static void test_shutdown(void **state) {
  fx f;
  fx_open(&f, NULL);
  mem_io idle;
  mem_io_open(&idle, f.srv);
  feed(&f, "GET /async HTTP/1.1\r\nHost: x\r\n\r\n");
  shutdown_done = hook_ran = 0;
  ra_http_server_on_shutdown(f.srv, on_hook, NULL);
  ra_http_server_shutdown(f.srv, 5000, on_done, NULL);
  assert_int_equal(hook_ran, 1);
  assert_true(idle.close_requested);  /* idle: closed now */
  assert_false(f.io.close_requested); /* busy: finishes first */
  mem_io_settle(&idle);
  ra_res_send_text(held[0], 200, "bye");
  const char *o = mem_io_str(&f.io);
  assert_non_null(strstr(o, "Connection: close\r\n"));
  assert_non_null(strstr(o, "bye"));
  assert_true(f.io.close_requested);
  mem_io_settle(&f.io);
  turns(&f);
  assert_int_equal(shutdown_done, 1);
  ra_buf_free(&idle.out);
  fx_close(&f);

  /* the deadline aborts what is left, cancelling it */
  fx_open(&f, NULL);
  feed(&f, "GET /async HTTP/1.1\r\nHost: x\r\n\r\n");
  shutdown_done = 0;
  ra_http_server_shutdown(f.srv, 30, on_done, NULL);
  for (int i = 0; i < 200 && !shutdown_done; i++) ra_loop_run_once(f.loop, 5);
  assert_int_equal(shutdown_done, 1);
  assert_int_equal(ncancel, 1);
  assert_true(f.io.gone);
  f.io.conn = NULL;
  fx_close(&f);
}

/* A shutdown while a request is half received: that request is dropped with
 * its header deadline (no 408 for it later), the in-flight one is answered,
 * then the connection closes. */
static void test_shutdown_mid_request(void **state) {
  ra_http_limits lim = {0};
  lim.header_timeout_ms = 30;
  fx f;
  fx_open(&f, &lim);
  feed(&f, "GET /async HTTP/1.1\r\nHost: x\r\n\r\nGET /hello HTTP/1.1\r\nHost: x\r\nHo");
  assert_int_equal(nheld, 1);
  ra_http_server_shutdown(f.srv, 5000, NULL, NULL);
  spin(&f, 150); /* past the header deadline of the partial request */
  assert_false(f.io.close_requested);
  ra_res_send_text(held[0], 200, "bye");
  const char *o = mem_io_str(&f.io);
  assert_int_equal(count(o, "HTTP/1.1 "), 1);
  assert_non_null(strstr(o, "HTTP/1.1 200 OK\r\n"));
  assert_non_null(strstr(o, "Connection: close\r\n"));
  assert_true(f.io.close_requested);
  fx_close(&f);
}

static void test_pool_reuse(void **state) {
  /* Many requests on one connection: the exchange objects are recycled. */
  fx f;
  fx_open(&f, NULL);
  for (int i = 0; i < 1000; i++) {
    feed(&f, "GET /hello HTTP/1.1\r\nHost: x\r\n\r\n");
    if (f.io.out.len > 100000) ra_buf_reset(&f.io.out);
  }
  assert_false(f.io.close_requested);
  assert_true(f.srv->npool >= 1 && f.srv->npool <= 2);
  fx_close(&f);
}

/* ---- a request with a body is routed once ---------------------------------------------
 * At the end of its head (streamed or not, the body limit), dispatched by
 * that route when whole: its parameters arrive, the router's answers (404,
 * 405 with Allow, 403) are those of a request routed at dispatch, and a
 * route removed or added while the body arrives is looked up again (never
 * a removed route's handler). */

static int calls_a, calls_b;

/* Answers "<tag> id=<:id> body=<body>". */
static void answer(ra_req *req, ra_res *res, const char *tag) {
  char out[256];
  ra_str id = RA_STR("-"), b = ra_req_body(req);
  ra_req_param(req, "id", &id);
  int n = snprintf(out, sizeof out, "%s id=%.*s body=%.*s", tag, (int)id.len, id.ptr, (int)b.len, b.ptr);
  ra_res_send(res, 200, "text/plain", out, (size_t)n);
}
static void h_a(ra_req *req, ra_res *res, void *ud) {
  (void)ud;
  calls_a++;
  answer(req, res, "A");
}
static void h_b(ra_req *req, ra_res *res, void *ud) {
  (void)ud;
  calls_b++;
  answer(req, res, "B");
}

static void fx_open_routes(fx *f) {
  fx_open(f, NULL);
  calls_a = calls_b = 0;
  assert_int_equal(ra_route(f->router, "POST", "/items/:id", h_a, NULL), 0);
  assert_int_equal(ra_route(f->router, "GET", "/only-get", h_a, NULL), 0);
  assert_int_equal(ra_route_ex(f->router, "POST", "/private", h_a, NULL, RA_ROUTE_ATTESTED_ONLY), 0);
}

static const char *out(fx *f) { return mem_io_str(&f->io); }

static void test_params_from_the_head(void **state) {
  (void)state;
  fx f;
  fx_open_routes(&f);
  feed(&f, "POST /items/42 HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhe");
  assert_int_equal(calls_a, 0);
  feed(&f, "llo");
  assert_int_equal(calls_a, 1);
  assert_non_null(strstr(out(&f), "HTTP/1.1 200 OK\r\n"));
  assert_non_null(strstr(out(&f), "\r\n\r\nA id=42 body=hello"));
  /* chunked, then a bodyless request on the same connection */
  ra_buf_reset(&f.io.out);
  feed(&f, "POST /items/7 HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n"
           "GET /only-get HTTP/1.1\r\nHost: x\r\n\r\n");
  assert_non_null(strstr(out(&f), "A id=7 body=abc"));
  assert_non_null(strstr(out(&f), "A id=- body="));
  assert_int_equal(calls_a, 3);
  fx_close(&f);
}

/* What a POST of one body byte to path gets, alone in the output. */
static const char *post_byte(fx *f, const char *path) {
  char req[160];
  snprintf(req, sizeof req, "POST %s HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\n\r\nx", path);
  ra_buf_reset(&f->io.out);
  feed(f, req);
  return out(f);
}

static void test_router_answers(void **state) {
  (void)state;
  fx f;
  fx_open_routes(&f);
  assert_non_null(strstr(post_byte(&f, "/nowhere"), "HTTP/1.1 404 Not Found\r\n"));
  assert_non_null(strstr(post_byte(&f, "/only-get"), "HTTP/1.1 405 Method Not Allowed\r\n"));
  assert_non_null(strstr(out(&f), "\r\nAllow: GET, HEAD, OPTIONS\r\n"));
  assert_non_null(strstr(post_byte(&f, "/private"), "HTTP/1.1 403 Forbidden\r\n"));
  assert_int_equal(calls_a, 0);
  fx_close(&f);
}

static void test_routes_changed_mid_body(void **state) {
  (void)state;
  fx f;
  fx_open_routes(&f);
  /* removed while its body arrives: the request finds no route */
  feed(&f, "POST /items/1 HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\n\r\nab");
  assert_int_equal(ra_router_remove(f.router, "POST", "/items/:id"), 0);
  feed(&f, "cd");
  assert_non_null(strstr(out(&f), "HTTP/1.1 404 Not Found\r\n"));
  assert_int_equal(calls_a, 0);
  /* added while its body arrives: found, with its parameter */
  ra_buf_reset(&f.io.out);
  feed(&f, "POST /items/2 HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\n\r\nab");
  assert_int_equal(ra_route(f.router, "POST", "/items/:id", h_b, NULL), 0);
  feed(&f, "cd");
  assert_non_null(strstr(out(&f), "\r\n\r\nB id=2 body=abcd"));
  assert_int_equal(calls_b, 1);
  assert_int_equal(calls_a, 0);
  fx_close(&f);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_simple),
      cmocka_unit_test(test_byte_at_a_time),
      cmocka_unit_test(test_pipelining_order),
      cmocka_unit_test(test_pipeline_limit),
      cmocka_unit_test(test_keepalive_versions),
      cmocka_unit_test(test_head_and_chunked),
      cmocka_unit_test(test_head_streamed_ends),
      cmocka_unit_test(test_stream_yields),
      cmocka_unit_test(test_expect_continue),
      cmocka_unit_test(test_limits),
      cmocka_unit_test(test_timeouts),
      cmocka_unit_test(test_huge_timeout),
      cmocka_unit_test(test_body_deadline),
      cmocka_unit_test(test_strict_rfc9112),
      cmocka_unit_test(test_async_cancel),
      cmocka_unit_test(test_drain),
      cmocka_unit_test(test_shutdown),
      cmocka_unit_test(test_shutdown_mid_request),
      cmocka_unit_test(test_pool_reuse),
      cmocka_unit_test(test_params_from_the_head),
      cmocka_unit_test(test_router_answers),
      cmocka_unit_test(test_routes_changed_mid_body),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
