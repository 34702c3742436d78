/* tests/fuzz/eventlog_fuzz.c: dstack event logs (attest/quote/eventlog.h):
 * parse any bytes, then replay, look up the identity events and check
 * against a fixed TD quote's RTMRs when the input parsed. */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "raloop/attest/quote/eventlog.h"
#include "raloop/core/log.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  ra_log_set_level(RA_LOG_OFF); /* parse failures are logged at debug */
  ra_eventlog *log = NULL;
  if (ra_eventlog_parse((const char *)data, size, &log) != 0) return 0;
  uint8_t r[4][48];
  ra_eventlog_replay(log, r);
  for (size_t i = 0; i < ra_eventlog_count(log); i++) {
    const ra_evlog_event *e = ra_eventlog_event(log, i);
    volatile size_t n = strlen(e->name) + e->payload_len;
    (void)n;
  }
  /* a TD report whose RTMRs are the replay's: check must accept */
  static uint8_t rtmr[4][48];
  memcpy(rtmr, r, sizeof rtmr);
  ra_quote q;
  memset(&q, 0, sizeof q);
  q.body_type = RA_BODY_TD10;
  static const uint8_t mrtd[48];
  q.td.mrtd = mrtd;
  for (int i = 0; i < 4; i++) q.td.rtmr[i] = rtmr[i];
  ra_eventlog_verdict vd;
  if (ra_eventlog_check(log, &q, &vd) != 0 || vd.rtmr != -1) __builtin_trap();
  ra_dstack_identity id;
  (void)ra_dstack_identity_from(log, &q, &id);
  ra_eventlog_free(log);
  return 0;
}
