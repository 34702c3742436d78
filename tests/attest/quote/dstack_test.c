/* tests/attest/quote/dstack_test.c: the dstack guest agent client and the
 * "dstack" quote provider (dstack.h), against the stand-in agent of
 * tests/attest/dstack/agent_core.c run in a thread on a unix socket in a
 * temporary directory: its quotes come from the simulated TEE, its event
 * log replays to their RTMRs. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <pthread.h>
#include <signal.h>

#include "tests/attest/dstack/agent_core.c"

#include "raloop/attest/quote/dstack.h"
#include "attest/quote/dstack_internal.h"
#include "raloop/attest/quote/provider.h"
#include "raloop/attest/quote/verify.h"
#include "raloop/core/error.h"
#include "raloop/core/log.h"

static char g_tmp[256];
static char g_log[8192];

static void capture_log(ra_log_level level, const char *msg, void *ud) {
  (void)level;
  (void)ud;
  size_t n = strlen(g_log);
  if (n + strlen(msg) + 2 > sizeof g_log) n = 0;
  snprintf(g_log + n, sizeof g_log - n, "%s\n", msg);
}

static const char *sub(const char *name) {
  static char p[4][512];
  static int i;
  i = (i + 1) % 4;
  snprintf(p[i], sizeof p[i], "%s/%s", g_tmp, name);
  return p[i];
}

typedef struct running {
  pthread_t th;
  agent_opts o;
  volatile int stop, ready;
  char sock[512];
} running;

static void *agent_thread(void *arg) {
  running *r = arg;
  agent_run(&r->o, &r->stop, 0, &r->ready);
  return NULL;
}

static void start(running *r, const char *sockname, const char *mode) {
  memset(r, 0, sizeof *r);
  snprintf(r->sock, sizeof r->sock, "%s", sub(sockname));
  r->o.socket = r->sock;
  r->o.sim_dir = sub("sim");
  r->o.mode = mode;
  assert_int_equal(pthread_create(&r->th, NULL, agent_thread, r), 0);
  for (int i = 0; i < 500 && !r->ready; i++) usleep(10000);
  assert_true(r->ready);
}

static void stop(running *r) {
  r->stop = 1;
  pthread_join(r->th, NULL);
}

static int setup(void **state) {
  (void)state;
  snprintf(g_tmp, sizeof g_tmp, "/tmp/ra-dstack-test-XXXXXX");
  assert_non_null(mkdtemp(g_tmp));
  ra_log_set_sink(capture_log, NULL);
  return 0;
}

static int teardown(void **state) {
  (void)state;
  char cmd[400];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", g_tmp);
  return system(cmd) == 0 ? 0 : -1;
}

/* A verifier pinning the sim root (the agent's quotes are simulated). */
static ra_verifier *sim_verifier(void) {
  ra_verifier *v;
  assert_int_equal(ra_verifier_new(RA_VERIFIER_NO_DEFAULT_ROOT, &v), 0);
  assert_true(ra_verifier_add_root_file(v, sub("sim/" RA_SIM_ROOT_FILE)) > 0);
  return v;
}

static void check_quote_and_log(const ra_dstack_quote *dq) {
  ra_quote q;
  assert_int_equal(ra_quote_parse(dq->quote, dq->quote_len, &q), 0);
  assert_non_null(dq->event_log);
  ra_eventlog *log;
  assert_int_equal(ra_eventlog_parse(dq->event_log, dq->event_log_len, &log), 0);
  ra_eventlog_verdict evd;
  assert_int_equal(ra_eventlog_check(log, &q, &evd), 0);
  ra_dstack_identity id;
  assert_int_equal(ra_dstack_identity_from(log, &q, &id), 0);
  char h[129];
  ra_hex_encode(id.app_id, id.app_id_len, h);
  assert_string_equal(h, AGENT_APP_ID);
  ra_hex_encode(id.compose_hash, id.compose_hash_len, h);
  assert_string_equal(h, AGENT_COMPOSE_HASH);
  assert_string_equal(id.key_provider, "{\"name\":\"kms\",\"id\":\"sim\"}");
  ra_eventlog_free(log);
  /* and the quote verifies against the sim root */
  ra_verifier *v = sim_verifier();
  ra_policy pol = {.signature_only = true};
  ra_verdict vd;
  assert_int_equal(ra_verify_quote(v, dq->quote, dq->quote_len, NULL, &pol, &vd), 0);
  ra_verifier_free(v);
}

static void test_get_quote_dstack(void **state) {
  (void)state;
  running r;
  start(&r, "dstack.sock", NULL);
  ra_dstack_quote dq;
  const uint8_t rd[4] = {0x12, 0x34, 0xde, 0xad};
  assert_int_equal(ra_dstack_get_quote(r.sock, 0, rd, sizeof rd, &dq), 0);
  /* padded with zeros to 64 bytes, echoed */
  assert_true(dq.has_report_data);
  uint8_t want[64] = {0x12, 0x34, 0xde, 0xad};
  assert_memory_equal(dq.report_data, want, 64);
  check_quote_and_log(&dq);
  ra_dstack_quote_clear(&dq);
  stop(&r);
}

static void test_get_quote_tappd(void **state) {
  (void)state;
  running r;
  start(&r, "tappd.sock", NULL);
  assert_true(ra_dstack_is_tappd(r.sock));
  ra_dstack_quote dq;
  uint8_t rd[64];
  memset(rd, 0x42, sizeof rd);
  assert_int_equal(ra_dstack_get_quote(r.sock, 0, rd, 64, &dq), 0);
  assert_false(dq.has_report_data); /* tappd does not echo it */
  check_quote_and_log(&dq);
  ra_dstack_quote_clear(&dq);
  stop(&r);
}

static void test_chunked(void **state) {
  (void)state;
  running r;
  start(&r, "dstack.sock", "chunked");
  ra_dstack_quote dq;
  assert_int_equal(ra_dstack_get_quote(r.sock, 0, (const uint8_t *)"x", 1, &dq), 0);
  check_quote_and_log(&dq);
  ra_dstack_quote_clear(&dq);
  stop(&r);
}

static void test_info(void **state) {
  (void)state;
  const char *names[] = {"dstack.sock", "tappd.sock"};
  for (int k = 0; k < 2; k++) {
    running r;
    start(&r, names[k], NULL);
    ra_dstack_info info;
    assert_int_equal(ra_dstack_get_info(r.sock, 0, &info), 0);
    assert_string_equal(info.app_id, AGENT_APP_ID);
    assert_string_equal(info.instance_id, AGENT_INSTANCE_ID);
    assert_non_null(info.tcb_info);
    /* its event log, from tcb_info */
    ra_eventlog *log;
    assert_int_equal(ra_eventlog_parse(info.tcb_info, strlen(info.tcb_info), &log), 0);
    assert_non_null(ra_eventlog_find(log, "app-id"));
    ra_eventlog_free(log);
    ra_dstack_info_clear(&info);
    stop(&r);
  }
}

/* The provider: the evidence binds the key as the tunnel's client checks */
static void test_provider(void **state) {
  (void)state;
  running r;
  start(&r, "dstack.sock", NULL);
  char spec[600];
  snprintf(spec, sizeof spec, "dstack:%s", r.sock);
  ra_quote_provider *p;
  assert_int_equal(ra_quote_provider_open(spec, NULL, &p), 0);
  assert_string_equal(ra_quote_provider_name(p), "dstack");
  assert_true(ra_quote_provider_binds_key(p));
  assert_false(ra_quote_provider_simulated(p));
  uint8_t key[32];
  memset(key, 7, sizeof key);
  ra_quote_evidence ev = {0};
  assert_int_equal(ra_quote_provider_get(p, key, &ev), 0);
  assert_true(ev.binds_key && ev.has_verifier_data);
  assert_int_equal(ev.val_len, 32);
  assert_memory_equal(ev.runtime_data, key, 32);
  ra_verifier *v = sim_verifier();
  ra_policy pol = {.x25519_pub = key, .binding_val = ev.val, .binding_val_len = ev.val_len,
                   .binding_iat = ev.iat, .binding_iat_len = ev.iat_len};
  ra_verdict vd;
  assert_int_equal(ra_verify_quote(v, ev.quote, ev.quote_len, NULL, &pol, &vd), 0);
  /* another key does not verify */
  uint8_t other[32] = {0};
  pol.x25519_pub = other;
  assert_int_equal(ra_verify_quote(v, ev.quote, ev.quote_len, NULL, &pol, &vd), -EACCES);
  assert_int_equal(vd.err, RA_ERR_BINDING);
  ra_verifier_free(v);
  ra_quote_evidence_clear(&ev);
  ra_quote_provider_free(p);
  stop(&r);
}

static void expect_error(const char *mode, int timeout_ms, int want, const char *says) {
  running r;
  start(&r, "dstack.sock", mode);
  ra_dstack_quote dq;
  g_log[0] = 0;
  assert_int_equal(ra_dstack_get_quote(r.sock, timeout_ms, (const uint8_t *)"a", 1, &dq), want);
  assert_null(dq.quote);
  if (!strstr(g_log, says)) fail_msg("%s: '%s' does not say '%s'", mode, g_log, says);
  assert_non_null(strstr(g_log, r.sock)); /* names the socket */
  /* the provider logs the same words */
  if (timeout_ms == 0) {
    char spec[600];
    snprintf(spec, sizeof spec, "dstack:%s", r.sock);
    ra_quote_provider *p;
    assert_int_equal(ra_quote_provider_open(spec, NULL, &p), 0);
    uint8_t key[32] = {1};
    ra_quote_evidence ev = {0};
    g_log[0] = 0;
    assert_int_equal(ra_quote_provider_get(p, key, &ev), want);
    assert_null(ev.quote);
    if (!strstr(g_log, says)) fail_msg("provider log '%s' does not say '%s'", g_log, says);
    ra_quote_provider_free(p);
  }
  stop(&r);
}

static void test_errors(void **state) {
  (void)state;
  expect_error("500", 0, -EPROTO, "HTTP 500: simulated agent failure");
  expect_error("garbled", 0, -EBADMSG, "garbled JSON");
  expect_error("short-quote", 0, -EBADMSG, "(100 bytes) does not parse");
  expect_error("wrong-rd", 0, -EBADMSG, "other report_data");
  expect_error("hang", 300, -ETIMEDOUT, "within 300 ms");
}

static void test_socket_missing(void **state) {
  (void)state;
  const char *path = sub("nowhere/dstack.sock");
  ra_dstack_quote dq;
  g_log[0] = 0;
  assert_int_equal(ra_dstack_get_quote(path, 0, NULL, 0, &dq), -ENOENT);
  assert_non_null(strstr(g_log, path));
  assert_non_null(strstr(g_log, "no such socket"));
  char spec[600];
  snprintf(spec, sizeof spec, "dstack:%s", path);
  ra_quote_provider *p = (ra_quote_provider *)1;
  g_log[0] = 0;
  assert_int_equal(ra_quote_provider_open(spec, NULL, &p), -ENOENT);
  assert_null(p);
  assert_non_null(strstr(g_log, path));
  /* too much report_data */
  uint8_t big[65] = {0};
  assert_int_equal(ra_dstack_get_quote(path, 0, big, 65, &dq), -EINVAL);
}

/* The answer's framing (dstack_internal.h), case by case */
static int frame(const char *text, bool eof, int *status, char *body, size_t cap) {
  char buf[512];
  size_t n = strlen(text);
  memcpy(buf, text, n + 1);
  char *b;
  size_t bl;
  int r = dstack_http_answer(buf, n, eof, status, &b, &bl);
  if (r == 1) {
    assert_true(bl < cap);
    memcpy(body, b, bl);
    body[bl] = 0;
  }
  return r;
}

static void test_http_framing(void **state) {
  (void)state;
  int st;
  char body[256];
  assert_int_equal(frame("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}", false, &st, body, sizeof body), 1);
  assert_int_equal(st, 200);
  assert_string_equal(body, "{}");
  /* more needed: headers, then body */
  assert_int_equal(frame("HTTP/1.1 200 OK\r\nContent-Le", false, &st, body, sizeof body), 0);
  assert_int_equal(frame("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n{}", false, &st, body, sizeof body), 0);
  /* ... and cut short at close */
  assert_int_equal(frame("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n{}", true, &st, body, sizeof body), -EPROTO);
  /* no length: until close */
  assert_int_equal(frame("HTTP/1.0 500 Oops\r\n\r\nboom", false, &st, body, sizeof body), 0);
  assert_int_equal(frame("HTTP/1.0 500 Oops\r\n\r\nboom", true, &st, body, sizeof body), 1);
  assert_int_equal(st, 500);
  assert_string_equal(body, "boom");
  /* chunked, with an extension, decoded */
  assert_int_equal(frame("HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n3;x=y\r\nabc\r\n2\r\nde\r\n0\r\n\r\n",
                         false, &st, body, sizeof body), 1);
  assert_string_equal(body, "abcde");
  assert_int_equal(frame("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n", false, &st, body, sizeof body), 0);
  /* refused: ambiguity, duplicates, junk */
  assert_int_equal(frame("HTTP/1.1 200 OK\r\nContent-Length: 2\r\nTransfer-Encoding: chunked\r\n\r\n{}", false, &st, body, sizeof body), -EPROTO);
  assert_int_equal(frame("HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 2\r\n\r\n{}", false, &st, body, sizeof body), -EPROTO);
  assert_int_equal(frame("HTTP/1.1 200 OK\r\nContent-Length: 2x\r\n\r\n{}", false, &st, body, sizeof body), -EPROTO);
  assert_int_equal(frame("HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n{}", false, &st, body, sizeof body), -EPROTO);
  assert_int_equal(frame("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", false, &st, body, sizeof body), -EPROTO);
  assert_int_equal(frame("HTTP/1.1 002 OK\r\n\r\n", true, &st, body, sizeof body), -EPROTO);
  assert_int_equal(frame("SSH-2.0-OpenSSH\r\n\r\n", false, &st, body, sizeof body), -EPROTO);
  assert_int_equal(frame("HTTP/1.1 200 OK\r\nContent-Length: 99999999999\r\n\r\n", false, &st, body, sizeof body), -EMSGSIZE);
}

int main(void) {
  signal(SIGPIPE, SIG_IGN);
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_get_quote_dstack), cmocka_unit_test(test_get_quote_tappd),
      cmocka_unit_test(test_chunked),          cmocka_unit_test(test_info),
      cmocka_unit_test(test_provider),         cmocka_unit_test(test_errors),
      cmocka_unit_test(test_socket_missing),   cmocka_unit_test(test_http_framing),
  };
  return cmocka_run_group_tests(tests, setup, teardown);
}
