/* tests/fuzz/dstack_fuzz.c: the dstack parsers on arbitrary bytes; the
 * first byte picks one (one target, so that the fuzz run stays short):
 *   0  the agent's HTTP/1.x answer framing (attest/quote/dstack_internal.h):
 *      the answer grows up to a split point (the second byte), each prefix
 *      must be "more" or a verdict, then the whole at the peer's close; a
 *      complete answer's body lies inside the buffer
 *   1  the versioned attestation (dstack_att.h): when it decodes, its
 *      runtime events always parse as an event log
 *   2  an app certificate (dstack_cert.h): parsed, and when it parses,
 *      verified in full with a verifier pinning Intel's root and the root of
 *      the simulated TEE that made the seeds (dstack_cert_root.h), at a time
 *      when that root's chain is valid, so that mutations of valid seeds
 *      reach the binding, the quote and the replay
 * (event logs alone: eventlog_fuzz.c). Seeds: corpus/dstack/, each with
 * its selector byte; regress/dstack/: crashes found. */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "attest/quote/dstack_internal.h"
#include "raloop/attest/quote/dstack_att.h"
#include "raloop/attest/quote/dstack_cert.h"
#include "raloop/attest/quote/eventlog.h"
#include "raloop/core/log.h"
#include "tests/fuzz/dstack_cert_root.h"

static void http_check(char *buf, size_t len, bool eof) {
  int status;
  char *body;
  size_t blen;
  int r = dstack_http_answer(buf, len, eof, &status, &body, &blen);
  if (r == 1) {
    if (status < 100 || status > 599 || body < buf || body + blen > buf + len) __builtin_trap();
  } else if (r != 0 && r != -EPROTO && r != -EMSGSIZE) {
    __builtin_trap();
  } else if (r == 0 && eof) {
    __builtin_trap(); /* at close there is always a verdict */
  }
}

static void fuzz_http(const uint8_t *data, size_t size) {
  if (size < 1) return;
  size_t split = data[0] % 64;
  data++;
  size--;
  char *buf = malloc(size + 1);
  if (!buf) return;
  for (size_t n = split < size ? size - split : 0; n < size; n++) {
    memcpy(buf, data, n);
    buf[n] = 0;
    http_check(buf, n, false);
  }
  memcpy(buf, data, size);
  buf[size] = 0;
  http_check(buf, size, true);
  free(buf);
}

static void fuzz_att(const uint8_t *data, size_t size) {
  ra_dstack_att a;
  if (ra_dstack_att_decode(data, size, &a) != 0) return;
  if (a.quote_len > size) __builtin_trap();
  ra_eventlog *log;
  if (ra_eventlog_parse(a.runtime, strlen(a.runtime), &log) != 0) __builtin_trap();
  ra_eventlog_free(log);
  if (ra_eventlog_parse(a.event_log, strlen(a.event_log), &log) == 0) ra_eventlog_free(log);
  ra_dstack_att_clear(&a);
}

static ra_verifier *g_v;

static void fuzz_cert(const uint8_t *data, size_t size) {
  if (!g_v) {
    if (ra_verifier_new(0, &g_v)) return;
    ra_verifier_add_root(g_v, (const uint8_t *)dstack_fuzz_sim_root, strlen(dstack_fuzz_sim_root));
  }
  ra_dstack_cert c;
  if (ra_dstack_cert_parse(data, size, &c) != 0) return;
  ra_dstack_cert_clear(&c);
  ra_policy pol = {.signature_only = true};
  ra_verdict vd;
  ra_dstack_identity id;
  ra_verify_opts opts = {.at = DSTACK_FUZZ_SIM_TIME};
  int rc = ra_dstack_cert_verify(g_v, data, size, &opts, &pol, &id, &vd);
  if (rc != 0 && rc != -EACCES && rc != -ENOMEM) __builtin_trap();
  if ((rc == 0) != (vd.err == 0)) __builtin_trap();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  ra_log_set_level(RA_LOG_OFF); /* the parsers log their reasons at debug */
  if (size < 1) return 0;
  switch (data[0] % 3) {
  case 0: fuzz_http(data + 1, size - 1); break;
  case 1: fuzz_att(data + 1, size - 1); break;
  default: fuzz_cert(data + 1, size - 1); break;
  }
  return 0;
}
