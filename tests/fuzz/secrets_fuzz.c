/* tests/fuzz/secrets_fuzz.c: what any network peer can make ra-secrets
 * serve (apps/secrets) read: the JSON of its two requests, and what follows
 * from them. Byte 0 picks:
 *   0  POST /v1/secrets/challenge: the request parser, then (when it parses
 *      with evidence) the attestation check against the seeds' simulated
 *      root and an app-id pin no seed has (nothing a fuzzer makes can pass
 *      it: that is asserted)
 *   1  POST /v1/secrets/fetch: the parser, then the challenge table (one
 *      live entry whose id is the input's, when it parses) and the
 *      signature check against a fixed key (a fuzzer cannot forge it:
 *      asserted)
 * The parsers must never accept a name or client id that is not valid. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "../../apps/secrets/attest.c"
#include "../../apps/secrets/crypto.c"
#include "../../apps/secrets/proto.c"
#include "secrets_root.h"

static ra_verifier *v;
static sec_policy pol;
static EVP_PKEY *key;
static uint8_t *spki;
static size_t spki_len;

int LLVMFuzzerInitialize(int *argc, char ***argv) {
  (void)argc;
  (void)argv;
  if (sodium_init() < 0 || ra_verifier_new(0, &v)) abort();
  /* the seeds' simulated root: their quotes verify, and the checks after
   * the chain run (the app-id pin below is not the seeds' c1c1..) */
  if (ra_verifier_add_root(v, (const uint8_t *)secrets_fuzz_root, strlen(secrets_fuzz_root)) <= 0)
    abort();
  pol.v = v;
  pol.strict = true;
  if (sec_policy_add_app_id(&pol, "eeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeee")) abort();
  key = sec_key_gen();
  if (!key || sec_spki(key, &spki, &spki_len)) abort();
  return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *d, size_t n) {
  if (n < 1) return 0;
  const char *body = (const char *)d + 1;
  size_t len = n - 1;
  char err[256];
  if (d[0] % 2 == 0) {
    sec_challenge_req r;
    sec_reason rc = sec_parse_challenge_req(body, len, &r, err, sizeof err);
    if (rc == SEC_OK) {
      if (!sec_client_id_valid(r.client_id) || !r.has_attestation) abort();
      sec_evidence ev = {.cert = r.cert,
                         .quote = r.quote,
                         .quote_len = r.quote_len,
                         .key = r.key,
                         .key_len = r.key_len,
                         .event_log = r.event_log};
      sec_peer peer;
      if (sec_attest_verify(&pol, &ev, &peer, err, sizeof err) == SEC_OK) abort();
    }
    sec_challenge_req_clear(&r);
    return 0;
  }
  sec_fetch_req r;
  if (sec_parse_fetch_req(body, len, &r, err, sizeof err) != SEC_OK) return 0;
  if (!sec_name_valid(r.name)) abort();
  sec_table t;
  if (sec_table_init(&t, 2)) abort();
  sec_challenge *c = sec_table_add(&t, spki, spki_len, "fuzz", 1000, 100);
  if (!c) abort();
  memcpy(c->id, r.id, SEC_ID_BYTES); /* the input names the live challenge */
  sec_challenge *got;
  if (sec_table_take(&t, r.id, 1050, &got) != SEC_OK || got != c) abort();
  uint8_t sh[32] = {0};
  size_t tl;
  uint8_t *tr = sec_fetch_transcript(c->id, c->challenge, sh, r.name, &tl);
  if (!tr || sec_verify(c->spki, c->spki_len, tr, tl, r.sig, r.sig_len) == 0) abort();
  free(tr);
  /* single use, then expiry */
  if (sec_table_take(&t, r.id, 1060, &got) != SEC_CHALLENGE_USED) abort();
  sec_table_free(&t);
  sec_fetch_req_clear(&r);
  return 0;
}
