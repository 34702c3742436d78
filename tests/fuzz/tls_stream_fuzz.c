/* tests/fuzz/tls_stream_fuzz.c: the TLS stream adaptor's states (core/tls.h
 * inside core/stream.c) driven by a script of operations read from the
 * input. OpenSSL's record layer is not the target (it has its own fuzzers);
 * what is: our handshake/pending/close_notify/pause/back-pressure logic
 * around it, in both roles.
 *
 * First byte: the mode.
 *   0: a server-role stream; the fuzzer is the client and writes raw bytes.
 *   1: a client-role stream; the fuzzer is the server.
 *   2: our client and our server, with the fuzzer in the middle forwarding
 *      (so handshakes complete and established states are reached), and
 *      injecting, dropping or corrupting bytes on command.
 * Then operations, one byte each (some take a length byte): raw bytes from
 * the peer, loop turns, plaintext writes, pause/resume, watermarks,
 * shutdown, close, abort, forwarding. Every stream must end with exactly
 * one on_close, and nothing may leak (LeakSanitizer). */
#include <errno.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "raloop/core/loop.h"
#include "raloop/core/stream.h"
#include "raloop/core/tls.h"
#include "tests/tls/certgen.h"

static ra_tls_ctx *g_srv, *g_cli;

typedef struct end {
  ra_stream *s;
  int closes;
  size_t got;
  uint8_t consume; /* on_read consumes at most this (0: all) */
  bool eof_close;
} end;

static size_t e_read(ra_stream *s, const uint8_t *d, size_t n, void *ud) {
  end *e = ud;
  size_t take = e->consume && n > e->consume ? e->consume : n;
  e->got += take;
  volatile uint8_t sink = 0;
  for (size_t i = 0; i < take; i++) sink ^= d[i]; /* touch every byte (ASan) */
  (void)sink;
  return take;
}
static void e_eof(ra_stream *s, void *ud) {
  end *e = ud;
  if (e->eof_close) ra_stream_close(s);
}
static void e_close(ra_stream *s, int err, void *ud) {
  end *e = ud;
  if (++e->closes != 1) abort();
  e->s = NULL;
}
static const ra_stream_cbs e_cbs = {.on_read = e_read, .on_eof = e_eof, .on_close = e_close};

int LLVMFuzzerInitialize(int *argc, char ***argv) {
  signal(SIGPIPE, SIG_IGN); /* the fuzzer's own writes to a closed peer */
  static test_cert c;
  if (!test_cert_make(&c, "fuzz.test", -1, 30)) abort();
  ra_tls_cert cert = {.cert = c.cert, .key = c.key};
  ra_tls_server_opts so = {.certs = &cert, .ncerts = 1, .handshake_timeout_ms = 5};
  ra_tls_client_opts co = {.insecure_skip_verify = true, .handshake_timeout_ms = 5};
  if (ra_tls_server_ctx_new(&so, &g_srv, NULL, 0) || ra_tls_client_ctx_new(&co, &g_cli, NULL, 0))
    abort();
  /* the contexts hold their own references to the certificate and key */
  test_cert_free(&c);
  return 0;
}

/* Moves what is readable on from to to, optionally altering it. */
static void forward(int from, int to, int mutate, uint8_t x) {
  uint8_t buf[8192];
  ssize_t n = read(from, buf, sizeof buf);
  if (n <= 0) return;
  if (mutate == 1) buf[(size_t)x % (size_t)n] ^= (uint8_t)(x | 1); /* corrupt a byte */
  if (mutate == 2) n = n > 1 ? n / 2 : n; /* drop the tail */
  (void)!write(to, buf, (size_t)n);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 1) return 0;
  int mode = data[0] % 3;
  data++;
  size--;
  ra_loop *loop;
  if (ra_loop_new(&loop)) return 0;
  end e[2] = {{0}, {0}};
  int peer[2] = {-1, -1}; /* the fuzzer's sockets */
  int sv[2];
  if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv)) abort();
  if (mode < 2) {
    if (ra_stream_new(loop, sv[0], &e_cbs, &e[0], &e[0].s)) abort();
    peer[0] = sv[1];
    if (ra_stream_start_tls(e[0].s, mode == 0 ? g_srv : g_cli, "fuzz.test")) abort();
  } else {
    int sv2[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv2)) abort();
    if (ra_stream_new(loop, sv[0], &e_cbs, &e[0], &e[0].s)) abort();  /* server */
    if (ra_stream_new(loop, sv2[0], &e_cbs, &e[1], &e[1].s)) abort(); /* client */
    peer[0] = sv[1];
    peer[1] = sv2[1];
    if (ra_stream_start_tls(e[0].s, g_srv, NULL)) abort();
    if (ra_stream_start_tls(e[1].s, g_cli, "fuzz.test")) abort();
  }
  static uint8_t plain[70000];
  size_t i = 0;
  while (i < size) {
    uint8_t op = data[i++];
    uint8_t arg = i < size ? data[i] : 0;
    int who = (op >> 4) & 1; /* which of our streams (mode 2) */
    if (mode < 2) who = 0;
    end *x = &e[who];
    switch (op & 15) {
    case 0: /* raw bytes from the peer (mode 2: injected towards who) */
    case 1: {
      size_t n = arg;
      i++;
      if (n > size - (i < size ? i : size)) n = size - (i < size ? i : size);
      if (peer[who] >= 0 && n) (void)!write(peer[who], data + i, n);
      i += n;
      break;
    }
    case 2:
    case 3:
      ra_loop_run_once(loop, 0);
      break;
    case 4: /* plaintext: small, or large enough to back up */
      i++;
      if (x->s) {
        size_t n = (arg & 0x80) ? (size_t)(arg & 0x7f) * 512 + 1 : arg;
        if (n > sizeof plain) n = sizeof plain;
        memset(plain, arg, n);
        ra_stream_write(x->s, plain, n);
      }
      break;
    case 5:
      if (x->s) ra_stream_pause_read(x->s);
      break;
    case 6:
      if (x->s) ra_stream_resume_read(x->s);
      break;
    case 7:
      i++;
      if (x->s) ra_stream_set_watermarks(x->s, (size_t)arg * 64, (size_t)arg * 16);
      break;
    case 8:
      if (x->s) ra_stream_shutdown(x->s);
      break;
    case 9:
      if (x->s) ra_stream_close(x->s);
      break;
    case 10:
      if (x->s && arg == 0xab) ra_stream_abort(x->s, ECONNRESET);
      i++;
      break;
    case 11: /* forwarding (mode 2): both ways, maybe altered */
    case 12:
      i++;
      if (mode == 2) {
        int mut = (op & 15) == 12 ? 1 + (arg & 1) : 0;
        forward(peer[0], peer[1], mut, arg);
        forward(peer[1], peer[0], mut, arg);
      } else if (peer[0] >= 0) {
        uint8_t sink[8192];
        (void)!read(peer[0], sink, sizeof sink); /* the peer reads our records */
      }
      break;
    case 13:
      x->consume = arg;
      i++;
      break;
    case 14:
      x->eof_close = !x->eof_close;
      break;
    case 15: /* the peer half-closes or goes away */
      if (peer[who] >= 0) {
        if (arg & 1) {
          close(peer[who]);
          peer[who] = -1;
        } else {
          shutdown(peer[who], SHUT_WR);
        }
      }
      i++;
      break;
    }
    if (mode == 2 && (op & 0x20)) { /* and let them talk */
      forward(peer[0], peer[1], 0, 0);
      forward(peer[1], peer[0], 0, 0);
      ra_loop_run_once(loop, 0);
    }
  }
  for (int k = 0; k < 2; k++)
    if (e[k].s) ra_stream_abort(e[k].s, ECANCELED);
  for (int k = 0; k < 2; k++)
    if (peer[k] >= 0) close(peer[k]);
  ra_loop_run(loop);
  ra_loop_free(loop);
  if (e[0].closes != 1 || (mode == 2 && e[1].closes != 1)) abort();
  return 0;
}
