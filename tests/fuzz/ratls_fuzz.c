/* tests/fuzz/ratls_fuzz.c: the RA-TLS certificate parser and verifier
 * (attest/quote/ratls.h) on arbitrary bytes (seeds: an RA-TLS certificate
 * from the simulated TEE with event log and app id, a plain certificate, a
 * bare extension value). The input goes to the DER certificate parser and
 * extractor, the whole verification (validity checked and skipped, binding
 * checked and skipped), and the extension-value decoder; every view must
 * lie inside the input, and nothing may crash or leak. */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "raloop/attest/quote/ratls.h"
#include "raloop/attest/quote/verify.h"
#include "raloop/core/log.h"

static ra_verifier *g_v;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (!g_v) {
    ra_log_set_level(RA_LOG_OFF);
    if (ra_verifier_new(0, &g_v)) abort();
  }
  ra_ratls_ext e;
  if (ra_ratls_parse_der(data, size, &e) == 0) {
    /* copies, with lengths within the caps */
    if (e.quote && e.quote_len > RA_RATLS_MAX_QUOTE) abort();
    if (!e.spki || !e.spki_len) abort();
    volatile uint8_t sink = 0;
    for (size_t i = 0; i < e.quote_len; i++) sink ^= e.quote[i];
    for (size_t i = 0; i < e.event_log_len; i++) sink ^= e.event_log[i];
    for (size_t i = 0; i < e.app_id_len; i++) sink ^= e.app_id[i];
    (void)sink;
    ra_ratls_ext_clear(&e);
  }
  ra_policy none = {0};
  ra_tdx_expect want;
  memset(&want, 0x5d, sizeof want);
  want.has = RA_TDX_MRTD;
  ra_policy pol = {.tdx = &want, .n_tdx = 1};
  ra_ratls_result res;
  ra_ratls_verify_opts o1 = {0}, o2 = {.skip_binding = true, .skip_validity = true};
  int rc = ra_ratls_verify_der(g_v, data, size, NULL, &none, &o1, &res);
  if (rc != 0 && rc != -EACCES) abort();
  if (rc == 0) abort(); /* nothing chains to Intel's root here */
  if (!memchr(res.msg, '\0', sizeof res.msg)) abort();
  rc = ra_ratls_verify_der(g_v, data, size, NULL, &pol, &o2, &res);
  if (rc != -EACCES) abort();

  const uint8_t *c;
  size_t n;
  if (ra_ratls_octet_string(data, size, &c, &n) == 0 && (c < data || c + n != data + size))
    abort();
  return 0;
}
