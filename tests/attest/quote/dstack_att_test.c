/* tests/attest/quote/dstack_att_test.c: dstack's versioned attestation,
 * SCALE V0 (dstack_att.h), on dstack's own fixture
 * (tests/vectors/dstack/attestation-v0.bin = Dstack-TEE/dstack
 * sdk/simulator/attestation.bin, a real TDX quote with its full event log
 * and runtime events), and malformed inputs. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "raloop/attest/quote/dstack_att.h"
#include "raloop/attest/quote/eventlog.h"
#include "raloop/attest/quote/hexb64.h"
#include "raloop/attest/quote/quote.h"
#include "raloop/attest/quote/verify.h"
#include "raloop/core/error.h"
#include "raloop/core/file.h"
#include "raloop/core/log.h"

static uint8_t *g_buf;
static size_t g_len;

static int setup(void **state) {
  (void)state;
  char path[512];
  snprintf(path, sizeof path, "%s/dstack/attestation-v0.bin",
           getenv("RA_VECTORS") ? getenv("RA_VECTORS") : RA_VECTORS_DIR);
  ra_log_set_level(RA_LOG_OFF); /* the malformed cases log at debug */
  return ra_file_read(path, 1 << 20, &g_buf, &g_len);
}

static int teardown(void **state) {
  (void)state;
  free(g_buf);
  return 0;
}

static void test_real(void **state) {
  (void)state;
  ra_dstack_att a;
  assert_int_equal(ra_dstack_att_decode(g_buf, g_len, &a), 0);
  assert_int_equal(a.quote_len, 5010);
  ra_quote q;
  assert_int_equal(ra_quote_parse(a.quote, a.quote_len, &q), 0);
  assert_memory_equal(a.report_data, ra_quote_report_data(&q), 64);
  assert_non_null(strstr(a.config, "\"kms_urls\""));
  /* the quote is Intel-signed */
  ra_verifier *v;
  assert_int_equal(ra_verifier_new(0, &v), 0);
  ra_policy pol = {.signature_only = true};
  ra_verdict vd;
  assert_int_equal(ra_verify_quote(v, a.quote, a.quote_len, NULL, &pol, &vd), 0);
  ra_verifier_free(v);
  /* the full event log replays RTMR0-3 */
  ra_eventlog *log;
  ra_eventlog_verdict ev;
  assert_int_equal(ra_eventlog_parse(a.event_log, strlen(a.event_log), &log), 0);
  assert_int_equal(ra_eventlog_count(log), 33);
  assert_int_equal(ra_eventlog_check(log, &q, &ev), 0);
  ra_eventlog_free(log);
  /* the runtime events replay RTMR3, and say who it is */
  assert_int_equal(ra_eventlog_parse(a.runtime, strlen(a.runtime), &log), 0);
  assert_int_equal(ra_eventlog_count(log), 9);
  assert_int_equal(ra_eventlog_check_rtmrs(log, &q, 0x8, &ev), 0);
  assert_string_equal(ev.msg, "RTMR 3 replayed from 9 events match the quote");
  assert_int_equal(ra_eventlog_check(log, &q, &ev), RA_ERR_MEASUREMENT);
  assert_int_equal(ev.rtmr, 0); /* no boot events here */
  ra_dstack_identity id;
  assert_int_equal(ra_dstack_identity_from(log, &q, &id), 0);
  char h[129];
  ra_hex_encode(id.app_id, id.app_id_len, h);
  assert_string_equal(h, "5bb4ff9a3837357f19dc176407a5709c62eb6c56");
  ra_hex_encode(id.compose_hash, id.compose_hash_len, h);
  assert_string_equal(h, "c143116fef3940e7f776bfc0919c256232ae5338a6e948c96b711e0b2383483a");
  ra_hex_encode(id.instance_id, id.instance_id_len, h);
  assert_string_equal(h, "1691ed1b47506cad7d08834668691d88246f5b1f");
  assert_true(id.has_os_image_hash);
  assert_memory_equal(id.key_provider, "{\"name\":\"kms\"", 13);
  ra_eventlog_free(log);
  ra_dstack_att_clear(&a);
}

static void test_malformed(void **state) {
  (void)state;
  ra_dstack_att a;
  /* every truncation fails cleanly */
  for (size_t n = 0; n < g_len; n += (n < 64 ? 1 : 97)) {
    int rc = ra_dstack_att_decode(g_buf, n, &a);
    if (rc != -EINVAL) fail_msg("prefix %zu: %d", n, rc);
    assert_null(a.quote);
  }
  /* trailing bytes */
  uint8_t *more = malloc(g_len + 1);
  memcpy(more, g_buf, g_len);
  more[g_len] = 0;
  assert_int_equal(ra_dstack_att_decode(more, g_len + 1, &a), -EINVAL);
  /* a quote length past the end */
  memcpy(more, g_buf, g_len);
  more[2] = 0xff;
  more[3] = 0xff;
  assert_int_equal(ra_dstack_att_decode(more, g_len, &a), -EINVAL);
  /* other TEEs, and the msgpack form */
  memcpy(more, g_buf, g_len);
  more[1] = 0x03; /* DstackAmdSevSnp */
  assert_int_equal(ra_dstack_att_decode(more, g_len, &a), -ENOTSUP);
  more[0] = 0x83; /* a msgpack map of 3 */
  assert_int_equal(ra_dstack_att_decode(more, g_len, &a), -ENOTSUP);
  /* a NUL in a runtime event's name (the last "app-id" is the runtime one) */
  memcpy(more, g_buf, g_len);
  uint8_t *hit = NULL;
  for (size_t i = 0; i + 6 <= g_len; i++)
    if (!memcmp(more + i, "app-id", 6)) hit = more + i;
  assert_non_null(hit);
  hit[3] = 0;
  assert_int_equal(ra_dstack_att_decode(more, g_len, &a), -EINVAL);
  free(more);
  assert_int_equal(ra_dstack_att_decode(NULL, 0, &a), -EINVAL);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_real),
      cmocka_unit_test(test_malformed),
  };
  return cmocka_run_group_tests(tests, setup, teardown);
}
