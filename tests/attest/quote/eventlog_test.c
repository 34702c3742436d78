/* tests/attest/quote/eventlog_test.c: dstack event logs (eventlog.h).
 *
 * Real vectors: two GetQuote answers of dstack guest agents on TDX
 * (tests/vectors/dstack/, from Dstack-TEE/dstack's verifier fixtures): the
 * replay must give the quotes' four RTMRs, and the decoded identity the
 * payloads of the app-id/compose-hash/instance-id/key-provider events.
 * Digest rules: known answers computed with Python's hashlib from dstack's
 * definitions (cc-eventlog/src/runtime_events.rs). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "raloop/attest/quote/eventlog.h"
#include "raloop/attest/quote/hexb64.h"
#include "raloop/attest/quote/quote.h"
#include "raloop/core/error.h"
#include "raloop/core/file.h"
#include "raloop/core/log.h"

/* the parser's reasons, logged at debug level, captured */
static char g_log[4096];
static void capture_log(ra_log_level level, const char *msg, void *ud) {
  (void)level;
  (void)ud;
  size_t n = strlen(g_log);
  if (n + strlen(msg) + 2 > sizeof g_log) n = 0;
  snprintf(g_log + n, sizeof g_log - n, "%s\n", msg);
}

static const char *vectors(void) {
  return getenv("RA_VECTORS") ? getenv("RA_VECTORS") : RA_VECTORS_DIR;
}

/* Loads a GetQuote answer: its text, and the quote decoded. */
static char *load_getquote(const char *name, size_t *len, uint8_t **quote, size_t *qlen) {
  char path[512];
  snprintf(path, sizeof path, "%s/dstack/%s", vectors(), name);
  uint8_t *buf;
  assert_int_equal(ra_file_read(path, 1 << 20, &buf, len), 0);
  json_t *root = json_loadb((const char *)buf, *len, 0, NULL);
  assert_non_null(root);
  const char *qh = json_string_value(json_object_get(root, "quote"));
  assert_non_null(qh);
  *qlen = strlen(qh) / 2;
  *quote = malloc(*qlen);
  assert_int_equal(ra_hex_decode_exact(qh, strlen(qh), *quote, *qlen), 0);
  json_decref(root);
  return (char *)buf;
}

static void hexeq(const uint8_t *b, size_t n, const char *hex) {
  char h[256];
  assert_true(n * 2 < sizeof h);
  ra_hex_encode(b, n, h);
  assert_string_equal(h, hex);
}

static void real_vector(const char *name, const char *app_id, const char *compose,
                        const char *instance, const char *kp_prefix) {
  size_t len, qlen;
  uint8_t *qb;
  char *text = load_getquote(name, &len, &qb, &qlen);
  ra_quote q;
  assert_int_equal(ra_quote_parse(qb, qlen, &q), 0);
  ra_eventlog *log;
  assert_int_equal(ra_eventlog_parse(text, len, &log), 0);
  assert_true(ra_eventlog_count(log) > 20);
  ra_eventlog_verdict vd;
  assert_int_equal(ra_eventlog_check(log, &q, &vd), 0);
  assert_int_equal(vd.rtmr, -1);
  for (int i = 0; i < 4; i++) assert_memory_equal(vd.replayed[i], q.td.rtmr[i], 48);
  ra_dstack_identity id;
  assert_int_equal(ra_dstack_identity_from(log, &q, &id), 0);
  assert_int_equal(id.tee, RA_TEE_TDX);
  assert_memory_equal(id.mrtd, q.td.mrtd, 48);
  assert_true(id.has_app_id && id.has_compose_hash && id.has_instance_id && id.has_key_provider);
  hexeq(id.app_id, id.app_id_len, app_id);
  hexeq(id.compose_hash, id.compose_hash_len, compose);
  hexeq(id.instance_id, id.instance_id_len, instance);
  assert_memory_equal(id.key_provider, kp_prefix, strlen(kp_prefix));
  ra_eventlog_free(log);
  free(text);
  free(qb);
}

static void test_real_getquote(void **state) {
  (void)state;
  real_vector("getquote-tdx.json", "3763bc34552cf3a27ff71ad5f7a90471562a1a2d",
              "3763bc34552cf3a27ff71ad5f7a90471562a1a2df552dfc1998cba2d60da27e7",
              "c3714eb66990eace777b4e664c16e09375dec4c9", "{\"name\":\"local-sgx\"");
}

/* runtime events there have their digests stripped: recomputed */
static void test_real_getquote_lite(void **state) {
  (void)state;
  real_vector("getquote-tdx-lite.json", "86b0e55f2fa8e4fb69d890f14f54d5612707646e",
              "86b0e55f2fa8e4fb69d890f14f54d5612707646e2573d54e0d2ddaaade77caa9",
              "050bf89570575fe8fab4cb8f0a62a9e64efe8ead", "{\"name\":\"kms\"");
}

/* Edits one event of the vector's log, re-serialises, expects a mismatch
 * of rtmr `want`. */
static void tamper(const char *event_name, int imr0_index, const char *field, const char *value,
                   int want) {
  size_t len, qlen;
  uint8_t *qb;
  char *text = load_getquote("getquote-tdx.json", &len, &qb, &qlen);
  json_t *root = json_loadb(text, len, 0, NULL);
  json_t *arr = json_loads(json_string_value(json_object_get(root, "event_log")), 0, NULL);
  assert_non_null(arr);
  size_t i;
  json_t *ev;
  int seen = 0;
  json_array_foreach(arr, i, ev) {
    const char *nm = json_string_value(json_object_get(ev, "event"));
    bool hit = event_name ? !strcmp(nm, event_name)
                          : json_integer_value(json_object_get(ev, "imr")) == 0 && seen++ == imr0_index;
    if (hit) {
      json_object_set_new(ev, field, json_string(value));
      break;
    }
  }
  char *s = json_dumps(arr, JSON_COMPACT);
  ra_quote q;
  assert_int_equal(ra_quote_parse(qb, qlen, &q), 0);
  ra_eventlog *log;
  assert_int_equal(ra_eventlog_parse(s, strlen(s), &log), 0);
  ra_eventlog_verdict vd;
  assert_int_equal(ra_eventlog_check(log, &q, &vd), RA_ERR_MEASUREMENT);
  assert_int_equal(vd.err, RA_ERR_MEASUREMENT);
  assert_int_equal(vd.rtmr, want);
  char prefix[32];
  snprintf(prefix, sizeof prefix, "RTMR%d mismatch: quoted ", want);
  assert_non_null(strstr(vd.msg, prefix));
  ra_eventlog_free(log);
  free(s);
  json_decref(arr);
  json_decref(root);
  free(text);
  free(qb);
}

static void test_tampered(void **state) {
  (void)state;
  /* another app id: RTMR3 */
  tamper("app-id", 0, "event_payload", "0000000000000000000000000000000000000000", 3);
  /* another compose hash: RTMR3 */
  tamper("compose-hash", 0, "event_payload", "00", 3);
  /* a boot-time digest of RTMR0 */
  tamper(NULL, 1, "digest",
         "000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000",
         0);
}

static void test_digest_rules(void **state) {
  (void)state;
  const char *j =
      "[{\"imr\":3,\"event_type\":134217729,\"event\":\"app-id\",\"event_payload\":\"deadbeef\"},"
      "{\"imr\":3,\"event_type\":134217729,\"event\":\"compose-hash\",\"event_payload\":\"abcd\","
      "\"version\":2},"
      "{\"imr\":3,\"event_type\":134217729,\"event\":\"event\\\"with\\\\special\\nchars\\u0001\","
      "\"event_payload\":\"ff\",\"version\":2}]";
  ra_eventlog *log;
  assert_int_equal(ra_eventlog_parse(j, strlen(j), &log), 0);
  assert_int_equal(ra_eventlog_count(log), 3);
  hexeq(ra_eventlog_event(log, 0)->digest, 48,
        "67b4be4efed0893cfa2bb1d35dca209ad8348b4c97f980807bcde8b9a0f26398dd0923d6eccb5aa2096d98046da8740f");
  hexeq(ra_eventlog_event(log, 1)->digest, 48,
        "9dde1673f544faa94b921825209593ddde08d0baf9cd6990175dffaf3081f1bb10311d56de189491feb33842a050ad7b");
  hexeq(ra_eventlog_event(log, 2)->digest, 48,
        "41c3e5bbafc19d7755a5916c2ef284b24d8bd3d596f3698543fbfa8214392dc3577c66b581519e33d5e8359bfee5caaf");
  assert_null(ra_eventlog_event(log, 3));
  uint8_t r[4][48], zero[48] = {0};
  ra_eventlog_replay(log, r);
  assert_memory_equal(r[0], zero, 48);
  assert_memory_not_equal(r[3], zero, 48);
  ra_eventlog_free(log);
}

/* names after system-ready are the application's: not the identity */
static void test_system_ready(void **state) {
  (void)state;
  const char *j = "[{\"imr\":3,\"event_type\":134217729,\"event\":\"instance-id\",\"event_payload\":\"01\"},"
                  "{\"imr\":3,\"event_type\":134217729,\"event\":\"system-ready\",\"event_payload\":\"\"},"
                  "{\"imr\":3,\"event_type\":134217729,\"event\":\"app-id\",\"event_payload\":\"aa\"}]";
  ra_eventlog *log;
  assert_int_equal(ra_eventlog_parse(j, strlen(j), &log), 0);
  assert_non_null(ra_eventlog_find(log, "instance-id"));
  assert_null(ra_eventlog_find(log, "app-id"));
  ra_eventlog_free(log);
}

/* The Info answer: tcb_info is a JSON string whose event_log is an array */
static void test_info_shape(void **state) {
  (void)state;
  const char *j = "{\"app_id\":\"aa\",\"tcb_info\":\"{\\\"mrtd\\\":\\\"00\\\",\\\"event_log\\\":"
                  "[{\\\"imr\\\":3,\\\"event_type\\\":134217729,\\\"event\\\":\\\"app-id\\\","
                  "\\\"event_payload\\\":\\\"aa\\\"}]}\"}";
  ra_eventlog *log;
  assert_int_equal(ra_eventlog_parse(j, strlen(j), &log), 0);
  assert_int_equal(ra_eventlog_count(log), 1);
  assert_int_equal(ra_eventlog_find(log, "app-id")->payload[0], 0xaa);
  ra_eventlog_free(log);
}

static void bad(const char *j, const char *why) {
  ra_eventlog *log = (ra_eventlog *)1;
  g_log[0] = 0;
  assert_int_equal(ra_eventlog_parse(j, strlen(j), &log), -EINVAL);
  assert_null(log);
  if (!strstr(g_log, why)) fail_msg("'%s' does not say '%s'", g_log, why);
}

static void test_errors(void **state) {
  (void)state;
  bad("[{", "garbled JSON");
  bad("{\"quote\":\"00\"}", "no event_log");
  bad("{\"event_log\":\"[nope\"}", "event_log: garbled JSON");
  bad("[{\"imr\":4,\"event_type\":1,\"digest\":\"\"}]", "imr must be 0..3");
  bad("[{\"imr\":0,\"event_type\":1,\"digest\":\"00\"}]", "digest must be 48 bytes");
  bad("[{\"imr\":3,\"event_type\":134217729,\"event_payload\":\"0g\"}]", "event_payload must be hex");
  bad("[{\"imr\":3,\"event_type\":-1}]", "event_type");
  bad("[{\"imr\":3,\"event_type\":134217729,\"version\":3}]", "version");
  bad("[1]", "not an object");
  /* a quote without a TD report */
  ra_eventlog *log;
  assert_int_equal(ra_eventlog_parse("[]", 2, &log), 0);
  ra_eventlog_verdict vd;
  assert_int_equal(ra_eventlog_check(log, NULL, &vd), -EINVAL);
  assert_non_null(strstr(vd.msg, "not a TDX quote"));
  assert_int_equal(ra_eventlog_check(log, NULL, NULL), -EINVAL);
  ra_eventlog_free(log);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_real_getquote), cmocka_unit_test(test_real_getquote_lite),
      cmocka_unit_test(test_tampered),      cmocka_unit_test(test_digest_rules),
      cmocka_unit_test(test_system_ready),  cmocka_unit_test(test_info_shape),
      cmocka_unit_test(test_errors),
  };
  ra_log_set_sink(capture_log, NULL);
  ra_log_set_level(RA_LOG_DEBUG);
  return cmocka_run_group_tests(tests, NULL, NULL);
}
