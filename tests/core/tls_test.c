/* tests/core/tls_test.c: TLS inside ra_stream, both roles, over socketpairs
 * and loopback TCP, with certificates made in memory. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "raloop/core/error.h"
#include "raloop/core/listen.h"
#include "raloop/core/stream.h"
#include "raloop/core/tls.h"
#include "tests/tls/certgen.h"

static test_cert g_a, g_b; /* "a.test" and "b.test" */

/* One side of a connection: what its callbacks saw. */
typedef struct side {
  ra_stream *s;
  uint8_t *in;
  size_t in_len, in_cap;
  int reads, eofs, closes, close_err, handshakes, drains;
  bool echo;          /* write back what is read */
  bool close_on_eof;  /* close when the peer half-closes */
  bool reply_on_eof;  /* write "bye" then close */
  bool pause_first;   /* pause in the first on_read */
  char err[200];
} side;

static size_t s_read(ra_stream *s, const uint8_t *d, size_t n, void *ud) {
  side *x = ud;
  x->reads++;
  if (x->in_len + n > x->in_cap) {
    x->in_cap = (x->in_len + n) * 2;
    x->in = realloc(x->in, x->in_cap);
    assert_non_null(x->in);
  }
  memcpy(x->in + x->in_len, d, n);
  x->in_len += n;
  if (x->echo) assert_int_equal(ra_stream_write(s, d, n), 0);
  if (x->pause_first && x->reads == 1) ra_stream_pause_read(s);
  return n;
}
static void s_drain(ra_stream *s, void *ud) { ((side *)ud)->drains++; }
static void s_eof(ra_stream *s, void *ud) {
  side *x = ud;
  x->eofs++;
  if (x->reply_on_eof) assert_int_equal(ra_stream_write(s, "bye", 3), 0);
  if (x->close_on_eof || x->reply_on_eof) ra_stream_close(s);
}
static void s_close(ra_stream *s, int err, void *ud) {
  side *x = ud;
  x->closes++;
  x->close_err = err;
  snprintf(x->err, sizeof x->err, "%s", ra_stream_tls_error(s));
  x->s = NULL;
}
static void s_hs(ra_stream *s, int status, void *ud) {
  assert_int_equal(status, 0);
  ((side *)ud)->handshakes++;
}
static const ra_stream_cbs side_cbs = {s_read, s_drain, s_eof, s_close};

static void on_guard(ra_timer *t, void *ud) { fail_msg("test timed out"); }

typedef struct world {
  ra_loop *loop;
  ra_timer guard;
  ra_tls_ctx *srv_ctx, *cli_ctx;
} world;

static void world_init(world *w) {
  memset(w, 0, sizeof *w);
  assert_int_equal(ra_loop_new(&w->loop), 0);
  ra_timer_init(w->loop, &w->guard, on_guard, w);
  ra_timer_unref(&w->guard);
  ra_timer_start(&w->guard, 20000, 0);
}
static void world_done(world *w) {
  ra_timer_stop(&w->guard);
  assert_int_equal(ra_loop_run(w->loop), 0);
  ra_loop_free(w->loop);
  ra_tls_ctx_unref(w->srv_ctx);
  ra_tls_ctx_unref(w->cli_ctx);
}
static void run_until(world *w, const int *flag, int value) {
  while (*flag < value) assert_true(ra_loop_run_once(w->loop, 1000) >= 0);
}

static ra_tls_ctx *server_ctx(uint64_t hs_ms) {
  ra_tls_cert certs[2] = {{.cert = g_a.cert, .key = g_a.key}, {.cert = g_b.cert, .key = g_b.key}};
  ra_tls_server_opts o = {.certs = certs, .ncerts = 2, .handshake_timeout_ms = hs_ms};
  ra_tls_ctx *t;
  char err[256];
  int rc = ra_tls_server_ctx_new(&o, &t, err, sizeof err);
  if (rc) fail_msg("server ctx: %s", err);
  assert_true(ra_tls_ctx_is_server(t));
  return t;
}

static ra_tls_ctx *client_ctx(const ra_tls_client_opts *o) {
  ra_tls_ctx *t;
  char err[256];
  int rc = ra_tls_client_ctx_new(o, &t, err, sizeof err);
  if (rc) fail_msg("client ctx: %s", err);
  return t;
}

/* A socketpair with a TLS server stream on one end and a TLS client stream
 * on the other, both driven by the loop. */
static void pair(world *w, side *srv, side *cli, const char *sni) {
  int sv[2];
  assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv), 0);
  assert_int_equal(ra_stream_new(w->loop, sv[0], &side_cbs, srv, &srv->s), 0);
  assert_int_equal(ra_stream_new(w->loop, sv[1], &side_cbs, cli, &cli->s), 0);
  assert_int_equal(ra_stream_start_tls(srv->s, w->srv_ctx, NULL), 0);
  ra_stream_tls_on_handshake(srv->s, s_hs);
  assert_int_equal(ra_stream_start_tls(cli->s, w->cli_ctx, sni), 0);
  ra_stream_tls_on_handshake(cli->s, s_hs);
  assert_int_equal(ra_stream_start_tls(cli->s, w->cli_ctx, sni), -EALREADY);
  assert_true(ra_stream_is_tls(srv->s));
}

static void side_free(side *x) { free(x->in); }

/* Echo, written before the handshake completes, then a half-close from the
 * client answered by the server; ALPN, version, SNI, peer certificate. */
static void test_echo_halfclose(void **state) {
  world w;
  world_init(&w);
  w.srv_ctx = server_ctx(0);
  ra_tls_client_opts co = {.insecure_skip_verify = true};
  w.cli_ctx = client_ctx(&co);
  side srv = {.echo = true, .reply_on_eof = true}, cli = {0};
  pair(&w, &srv, &cli, "b.test");
  assert_int_equal(ra_stream_write(cli.s, "hello ", 6), 0); /* before the handshake */
  assert_true(ra_stream_queued(cli.s) >= 6);
  assert_int_equal(ra_stream_write_ref(cli.s, "world", 5, NULL, NULL), 0);
  run_until(&w, &cli.handshakes, 1);
  run_until(&w, &srv.handshakes, 1);
  assert_string_equal(ra_stream_tls_alpn(cli.s), "http/1.1");
  assert_string_equal(ra_stream_tls_alpn(srv.s), "http/1.1");
  assert_string_equal(ra_stream_tls_version(srv.s), "TLSv1.3");
  assert_string_equal(ra_stream_tls_sni(srv.s), "b.test");
  X509 *peer = ra_stream_tls_peer_cert(cli.s);
  assert_non_null(peer);
  assert_int_equal(X509_cmp(peer, g_b.cert), 0); /* SNI picked the second certificate */
  assert_false(ra_stream_tls_session_reused(cli.s));
  while (cli.in_len < 11) assert_true(ra_loop_run_once(w.loop, 1000) >= 0);
  assert_memory_equal(cli.in, "hello world", 11);
  ra_stream_shutdown(cli.s); /* close_notify then FIN */
  assert_int_equal(ra_stream_write(cli.s, "x", 1), -EPIPE);
  run_until(&w, &cli.eofs, 1);
  assert_int_equal(srv.eofs, 1);
  assert_int_equal(cli.in_len, 14);
  assert_memory_equal(cli.in + 11, "bye", 3);
  ra_stream_close(cli.s);
  run_until(&w, &cli.closes, 1);
  run_until(&w, &srv.closes, 1);
  assert_int_equal(cli.close_err, 0);
  assert_int_equal(srv.close_err, 0);
  world_done(&w);
  side_free(&srv);
  side_free(&cli);
}

/* 4 MiB each way with watermarks: the reader pauses, the writer waits for
 * on_drain; everything arrives in order. */
static void test_bulk_backpressure(void **state) {
  world w;
  world_init(&w);
  w.srv_ctx = server_ctx(0);
  ra_tls_client_opts co = {.insecure_skip_verify = true};
  w.cli_ctx = client_ctx(&co);
  side srv = {.pause_first = true, .close_on_eof = true}, cli = {.close_on_eof = true};
  pair(&w, &srv, &cli, NULL);
  size_t total = 4u << 20;
  uint8_t *big = malloc(total);
  assert_non_null(big);
  for (size_t i = 0; i < total; i++) big[i] = (uint8_t)(i * 7 + (i >> 12));
  run_until(&w, &cli.handshakes, 1);
  ra_stream_set_watermarks(cli.s, 256 * 1024, 64 * 1024);
  struct iovec iov[2] = {{big, 1000}, {big + 1000, total - 1000}};
  assert_int_equal(ra_stream_writev(cli.s, iov, 2), 0);
  run_until(&w, &srv.reads, 1);
  /* paused: the rest waits in the kernel and in the client's queue */
  for (int i = 0; i < 5; i++) ra_loop_run_once(w.loop, 10);
  assert_true(srv.in_len < total);
  assert_true(ra_stream_queued(cli.s) > 0);
  ra_stream_resume_read(srv.s);
  while (srv.in_len < total) assert_true(ra_loop_run_once(w.loop, 1000) >= 0);
  assert_memory_equal(srv.in, big, total);
  assert_true(cli.drains >= 1);
  ra_stream_close(cli.s);
  run_until(&w, &srv.closes, 1);
  run_until(&w, &cli.closes, 1);
  assert_int_equal(srv.close_err, 0);
  free(big);
  world_done(&w);
  side_free(&srv);
  side_free(&cli);
}

/* Client verification: a self-signed certificate is refused by the system
 * store and by a CA file that does not hold it, accepted with it as CA, and
 * refused for a wrong host name; the verify callback's code comes back. */
static int refuse_cb(X509 *leaf, void *ud) {
  (*(int *)ud)++;
  assert_non_null(leaf);
  return RA_ERR_MEASUREMENT;
}
static int accept_cb(X509 *leaf, void *ud) {
  (*(int *)ud)++;
  return X509_cmp(leaf, g_a.cert) == 0 ? 0 : -EPERM;
}

static int one_client(const ra_tls_client_opts *co, const char *sni, char *err, size_t errlen) {
  world w;
  world_init(&w);
  w.srv_ctx = server_ctx(0);
  w.cli_ctx = client_ctx(co);
  side srv = {.close_on_eof = true}, cli = {.close_on_eof = true};
  pair(&w, &srv, &cli, sni);
  while (!cli.handshakes && !cli.closes) assert_true(ra_loop_run_once(w.loop, 1000) >= 0);
  if (cli.s) ra_stream_close(cli.s);
  run_until(&w, &cli.closes, 1);
  run_until(&w, &srv.closes, 1);
  int rc = cli.handshakes ? 0 : cli.close_err;
  snprintf(err, errlen, "%s", cli.err);
  world_done(&w);
  side_free(&srv);
  side_free(&cli);
  return rc;
}

static void test_client_verify(void **state) {
  char err[200], dir[] = "/tmp/ra_tls_test_XXXXXX", ca[64], other[64];
  assert_non_null(mkdtemp(dir));
  snprintf(ca, sizeof ca, "%s/a.pem", dir);
  snprintf(other, sizeof other, "%s/b.pem", dir);
  assert_true(test_cert_write(&g_a, ca, NULL));
  assert_true(test_cert_write(&g_b, other, NULL));

  ra_tls_client_opts sys = {0};
  assert_int_equal(one_client(&sys, "a.test", err, sizeof err), RA_ERR_TLS_CERT);
  assert_non_null(strstr(err, "self-signed"));
  ra_tls_client_opts wrong_ca = {.ca_file = other};
  assert_int_equal(one_client(&wrong_ca, "a.test", err, sizeof err), RA_ERR_TLS_CERT);
  ra_tls_client_opts good = {.ca_file = ca};
  assert_int_equal(one_client(&good, "a.test", err, sizeof err), 0);
  assert_int_equal(one_client(&good, "127.0.0.1", err, sizeof err), 0); /* IP SAN */
  assert_int_equal(one_client(&good, "evil.test", err, sizeof err), RA_ERR_TLS_CERT);
  assert_non_null(strstr(err, "mismatch"));

  int calls = 0;
  ra_tls_client_opts refuse = {.ca_file = ca, .verify = refuse_cb, .verify_ud = &calls};
  assert_int_equal(one_client(&refuse, "a.test", err, sizeof err), RA_ERR_MEASUREMENT);
  assert_int_equal(calls, 1);
  calls = 0;
  ra_tls_client_opts only = {.verify = accept_cb, .verify_ud = &calls, .verify_cb_only = true};
  assert_int_equal(one_client(&only, "whatever", err, sizeof err), 0); /* self-signed, any name */
  assert_int_equal(calls, 1);
  assert_int_equal(one_client(&only, "b.test", err, sizeof err), -EPERM); /* b's cert */

  ra_tls_client_opts missing = {.ca_file = "/nonexistent/ca.pem"};
  ra_tls_ctx *t;
  assert_int_equal(ra_tls_client_ctx_new(&missing, &t, err, sizeof err), RA_ERR_TLS_CONFIG);
  assert_non_null(strstr(err, "cannot read /nonexistent/ca.pem"));
  unlink(ca);
  unlink(other);
  rmdir(dir);
}

/* Server start-up errors: unreadable files, a key that is not the
 * certificate's, garbage PEM. */
static void test_server_config_errors(void **state) {
  char dir[] = "/tmp/ra_tls_test_XXXXXX", cert[64], key[64], bkey[64], junk[64];
  assert_non_null(mkdtemp(dir));
  snprintf(cert, sizeof cert, "%s/cert.pem", dir);
  snprintf(key, sizeof key, "%s/key.pem", dir);
  snprintf(bkey, sizeof bkey, "%s/bkey.pem", dir);
  snprintf(junk, sizeof junk, "%s/junk.pem", dir);
  assert_true(test_cert_write(&g_a, cert, key));
  char ignore[64];
  snprintf(ignore, sizeof ignore, "%s/bcert.pem", dir);
  assert_true(test_cert_write(&g_b, ignore, bkey));
  FILE *f = fopen(junk, "w");
  fputs("not a certificate\n", f);
  fclose(f);
  char err[256];
  ra_tls_ctx *t;
  ra_tls_cert c = {.cert_file = cert, .key_file = key};
  ra_tls_server_opts o = {.certs = &c, .ncerts = 1};
  assert_int_equal(ra_tls_server_ctx_new(&o, &t, err, sizeof err), 0);
  ra_tls_ctx_unref(t);

  c.key_file = bkey;
  assert_int_equal(ra_tls_server_ctx_new(&o, &t, err, sizeof err), RA_ERR_TLS_CONFIG);
  char want[200];
  snprintf(want, sizeof want, "%s does not match %s", bkey, cert);
  assert_string_equal(err, want);
  assert_null(t);

  c.key_file = "/nonexistent/key.pem";
  assert_int_equal(ra_tls_server_ctx_new(&o, &t, err, sizeof err), RA_ERR_TLS_CONFIG);
  assert_string_equal(err, "cannot read /nonexistent/key.pem: No such file or directory");

  c.key_file = key;
  c.cert_file = junk;
  assert_int_equal(ra_tls_server_ctx_new(&o, &t, err, sizeof err), RA_ERR_TLS_CONFIG);
  assert_non_null(strstr(err, junk));

  ra_tls_cert m = {.cert = g_a.cert, .key = g_b.key};
  o.certs = &m;
  assert_int_equal(ra_tls_server_ctx_new(&o, &t, err, sizeof err), RA_ERR_TLS_CONFIG);
  assert_string_equal(err, "the key does not match the certificate");

  /* PEM buffers (how an RA-TLS certificate made at start-up is given) */
  char *cp = NULL, *kp = NULL;
  size_t cl = 0, kl = 0;
  FILE *cf = open_memstream(&cp, &cl), *kf = open_memstream(&kp, &kl);
  PEM_write_X509(cf, g_a.cert);
  PEM_write_PrivateKey(kf, g_a.key, NULL, NULL, 0, NULL, NULL);
  fclose(cf);
  fclose(kf);
  ra_tls_cert pem = {.cert_pem = cp, .cert_pem_len = cl, .key_pem = kp};
  o.certs = &pem;
  assert_int_equal(ra_tls_server_ctx_new(&o, &t, err, sizeof err), 0);
  ra_tls_ctx_unref(t);
  free(cp);
  free(kp);
  o.ncerts = 0;
  assert_int_equal(ra_tls_server_ctx_new(&o, &t, err, sizeof err), -EINVAL);

  unlink(cert), unlink(key), unlink(bkey), unlink(junk), unlink(ignore);
  rmdir(dir);
}

/* A peer that sends nothing (or half a ClientHello) is closed after the
 * handshake timeout; garbage instead of a ClientHello fails at once. */
static void test_timeout_and_garbage(void **state) {
  world w;
  world_init(&w);
  w.srv_ctx = server_ctx(150);
  for (int round = 0; round < 3; round++) {
    int sv[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv), 0);
    side srv = {0};
    assert_int_equal(ra_stream_new(w.loop, sv[0], &side_cbs, &srv, &srv.s), 0);
    assert_int_equal(ra_stream_start_tls(srv.s, w.srv_ctx, NULL), 0);
    if (round == 1) /* a TLS record header announcing more than is sent */
      assert_int_equal(write(sv[1], "\x16\x03\x01\x02\x00\x01", 6), 6);
    if (round == 2)
      assert_int_equal(write(sv[1], "GET / HTTP/1.1\r\nHost: x\r\n\r\n", 27), 27);
    run_until(&w, &srv.closes, 1);
    if (round < 2) {
      assert_int_equal(srv.close_err, RA_ERR_TLS_TIMEOUT);
      assert_non_null(strstr(srv.err, "150 ms"));
    } else {
      assert_int_equal(srv.close_err, RA_ERR_TLS_HANDSHAKE);
      assert_true(strlen(srv.err) > 0);
    }
    assert_int_equal(srv.reads, 0);
    close(sv[1]);
    side_free(&srv);
  }
  world_done(&w);
}

/* ra_stream_connect_tls over loopback TCP; a reload swaps the listener's
 * context while a connection made with the old one keeps working; a
 * failed reload keeps the old one. */
typedef struct acceptor {
  world *w;
  ra_tls_ctx **ctx;
  side *srv;
} acceptor;

static void on_acc(ra_listener *l, int fd, const struct sockaddr *peer, socklen_t plen, void *ud) {
  acceptor *a = ud;
  assert_null(a->srv->s);
  assert_int_equal(ra_stream_new(a->w->loop, fd, &side_cbs, a->srv, &a->srv->s), 0);
  assert_int_equal(ra_stream_start_tls(a->srv->s, *a->ctx, NULL), 0);
}

static void on_conn(ra_stream *s, int status, void *ud) {
  side *x = ud;
  x->s = s;
  x->handshakes++;
  x->close_err = status;
}

static void test_connect_tls_and_reload(void **state) {
  world w;
  world_init(&w);
  w.srv_ctx = server_ctx(0);
  ra_tls_client_opts co = {.insecure_skip_verify = true};
  w.cli_ctx = client_ctx(&co);
  side srv1 = {.echo = true, .close_on_eof = true}, srv2 = {.echo = true, .close_on_eof = true};
  acceptor a = {&w, &w.srv_ctx, &srv1};
  ra_listener *l;
  assert_int_equal(ra_listen(w.loop, "127.0.0.1:0", NULL, on_acc, &a, &l), 0);
  uint16_t port = ra_listener_port(l);

  side c1 = {0};
  assert_int_equal(ra_stream_connect_tls(w.loop, "127.0.0.1", port, w.cli_ctx, "a.test",
                                         &side_cbs, on_conn, &c1), 0);
  run_until(&w, &c1.handshakes, 1);
  assert_int_equal(c1.close_err, 0);
  assert_non_null(c1.s);
  assert_int_equal(X509_cmp(ra_stream_tls_peer_cert(c1.s), g_a.cert), 0);
  SSL_SESSION *sess = NULL;

  /* reload: b's certificate as the only one */
  ra_tls_cert nb = {.cert = g_b.cert, .key = g_b.key};
  ra_tls_server_opts o = {.certs = &nb, .ncerts = 1};
  char err[256];
  assert_int_equal(ra_tls_ctx_reload(&w.srv_ctx, &o, err, sizeof err), 0);
  ra_tls_cert bad = {.cert_file = "/nonexistent/c.pem", .key_file = "/nonexistent/k.pem"};
  ra_tls_server_opts ob = {.certs = &bad, .ncerts = 1};
  ra_tls_ctx *before = w.srv_ctx;
  assert_int_equal(ra_tls_ctx_reload(&w.srv_ctx, &ob, err, sizeof err), RA_ERR_TLS_CONFIG);
  assert_ptr_equal(w.srv_ctx, before);

  /* the old connection still echoes */
  assert_int_equal(ra_stream_write(c1.s, "ping", 4), 0);
  while (c1.in_len < 4) assert_true(ra_loop_run_once(w.loop, 1000) >= 0);
  sess = SSL_get1_session(ra_stream_tls_ssl(c1.s));
  assert_non_null(sess);

  /* a new one gets b's certificate */
  a.srv = &srv2;
  side c2 = {0};
  assert_int_equal(ra_stream_connect_tls(w.loop, "127.0.0.1", port, w.cli_ctx, "a.test",
                                         &side_cbs, on_conn, &c2), 0);
  run_until(&w, &c2.handshakes, 1);
  assert_int_equal(c2.close_err, 0);
  assert_int_equal(X509_cmp(ra_stream_tls_peer_cert(c2.s), g_b.cert), 0);
  SSL_SESSION_free(sess);

  /* refused connection: on_connect gets the error and no stream */
  side c3 = {0};
  ra_tls_client_opts strict = {0};
  ra_tls_ctx *sctx = client_ctx(&strict);
  assert_int_equal(ra_stream_connect_tls(w.loop, "127.0.0.1", port, sctx, "b.test", &side_cbs,
                                         on_conn, &c3), 0);
  side srv3 = {.close_on_eof = true};
  a.srv = &srv3;
  run_until(&w, &c3.handshakes, 1);
  assert_null(c3.s);
  assert_int_equal(c3.close_err, RA_ERR_TLS_CERT);
  ra_tls_ctx_unref(sctx);

  ra_stream_close(c1.s);
  ra_stream_close(c2.s);
  run_until(&w, &srv1.closes, 1);
  run_until(&w, &srv2.closes, 1);
  run_until(&w, &srv3.closes, 1);
  ra_listener_close(l);
  world_done(&w);
  side_free(&srv1), side_free(&srv2), side_free(&srv3), side_free(&c1), side_free(&c2);
  side_free(&c3);
}

static int setup_all(void **state) {
  srandom(1);
  if (!test_cert_make(&g_a, "a.test", -1, 30) || !test_cert_make(&g_b, "b.test", -1, 30))
    return -1;
  return 0;
}
static int teardown_all(void **state) {
  test_cert_free(&g_a);
  test_cert_free(&g_b);
  return 0;
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_echo_halfclose),
      cmocka_unit_test(test_bulk_backpressure),
      cmocka_unit_test(test_client_verify),
      cmocka_unit_test(test_server_config_errors),
      cmocka_unit_test(test_timeout_and_garbage),
      cmocka_unit_test(test_connect_tls_and_reload),
  };
  return cmocka_run_group_tests(tests, setup_all, teardown_all);
}
