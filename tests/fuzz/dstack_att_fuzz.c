/* tests/fuzz/dstack_att_fuzz.c: dstack's versioned attestation bytes
 * (attest/quote/dstack_att.h); when they decode, both logs must parse as
 * event logs (the decoder writes them) and the quote bytes lie within. */
#include <stdint.h>
#include <string.h>

#include "raloop/attest/quote/dstack_att.h"
#include "raloop/attest/quote/eventlog.h"
#include "raloop/core/log.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  ra_log_set_level(RA_LOG_OFF);
  ra_dstack_att a;
  if (ra_dstack_att_decode(data, size, &a) != 0) return 0;
  if (a.quote_len > size) __builtin_trap();
  ra_eventlog *log;
  /* the runtime events always make a valid log (names are UTF-8 then) */
  if (ra_eventlog_parse(a.runtime, strlen(a.runtime), &log) != 0) __builtin_trap();
  ra_eventlog_free(log);
  if (ra_eventlog_parse(a.event_log, strlen(a.event_log), &log) == 0) ra_eventlog_free(log);
  ra_dstack_att_clear(&a);
  return 0;
}
