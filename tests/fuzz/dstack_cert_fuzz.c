/* tests/fuzz/dstack_cert_fuzz.c: dstack's attested app certificates
 * (attest/quote/dstack_cert.h): parse any bytes as PEM/DER; when they
 * parse, run the whole verification (binding, quote, event log, app id)
 * with a verifier pinning the seeds' simulated root as well as Intel's,
 * so that inputs mutated from valid certificates reach the replay. */
#include <errno.h>
#include <stdint.h>
#include <string.h>

#include "raloop/attest/quote/dstack_cert.h"
#include "raloop/core/log.h"

/* The root of the sim that made the seeds (corpus/dstack_cert/), and a
 * time when its chain is valid. */
#include "tests/fuzz/dstack_cert_root.h"

static ra_verifier *g_v;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (!g_v) {
    ra_log_set_level(RA_LOG_OFF);
    if (ra_verifier_new(0, &g_v)) return 0;
    ra_verifier_add_root(g_v, (const uint8_t *)dstack_fuzz_sim_root, strlen(dstack_fuzz_sim_root));
  }
  ra_dstack_cert c;
  if (ra_dstack_cert_parse(data, size, &c) != 0) return 0;
  ra_dstack_cert_clear(&c);
  ra_policy pol = {.signature_only = true};
  ra_verdict vd;
  ra_dstack_identity id;
  /* a fixed time inside the seeds' validity */
  ra_verify_opts opts = {.at = 1796198226};
  int rc = ra_dstack_cert_verify(g_v, data, size, &opts, &pol, &id, &vd);
  if (rc != 0 && rc != -EACCES && rc != -ENOMEM) __builtin_trap();
  if ((rc == 0) != (vd.err == 0)) __builtin_trap();
  return 0;
}
