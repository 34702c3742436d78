/* apps/secrets/attest.h: one check of a peer's attestation, used both ways:
 * the server checks the client's (its client policy), the client checks the
 * server's (its --expect-server-* pins).
 *
 * Evidence is either a certificate (PEM: a dstack app certificate whose
 * event log gives the app id, or a raloop RA-TLS certificate) or a quote
 * bundle (quote, DER SubjectPublicKeyInfo, optional dstack event log) whose
 * report_data must be SHA-512(SEC_TAG_KEY || SPKI). The order of the
 * checks, each with its own refusal (proto.h):
 *   1. the quote's key binding              key_not_bound
 *   2. the quote (chain to a pinned root, QE, signatures)  attestation_invalid
 *   3. the event log replays to the quote   event_log_mismatch
 *   4. not a debug TD (strict only)         debug_td
 *   5. MRTD in the pinned list (if any)     measurement_mismatch
 *   6. app id (from the replayed events) in the pinned list (if any)
 *                                           app_id_mismatch
 * Blocking-free and pure apart from the verifier's caches. */
#ifndef RA_APPS_SECRETS_ATTEST_H
#define RA_APPS_SECRETS_ATTEST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "proto.h"
#include "raloop/attest/quote/verify.h"

#define SEC_MAX_PINS 16

typedef struct sec_policy {
  ra_verifier *v; /* the pinned roots (borrowed) */
  uint8_t app_id[SEC_MAX_PINS][64];
  size_t app_id_len[SEC_MAX_PINS], n_app_id;
  uint8_t mrtd[SEC_MAX_PINS][48];
  size_t n_mrtd;
  bool strict;
} sec_policy;

typedef struct sec_evidence {
  const char *cert; /* PEM, or NULL for a bundle */
  const uint8_t *quote, *key;
  size_t quote_len, key_len;
  const char *event_log; /* may be NULL */
} sec_evidence;

/* Who the peer is, once accepted. spki is malloc'd: sec_peer_clear. */
typedef struct sec_peer {
  uint8_t *spki;
  size_t spki_len;
  uint8_t mrtd[48];
  bool has_app_id;
  uint8_t app_id[64];
  size_t app_id_len;
  bool simulated; /* the quote chains to a simulated root */
  bool debug;
} sec_peer;

void sec_peer_clear(sec_peer *p);

/* What a bundle's quote must carry for key spki: SHA-512(SEC_TAG_KEY || spki). */
void sec_key_report_data(const uint8_t *spki, size_t len, uint8_t rd[64]);

/* SEC_OK and *peer, or the refusal with why in msg (no secret material). */
sec_reason sec_attest_verify(const sec_policy *pol, const sec_evidence *ev, sec_peer *peer,
                             char *msg, size_t msglen);

/* Adds a hex pin ("--client-app-id HEX": up to 64 bytes; "--client-mrtd":
 * exactly 48). 0 or -1 (bad hex, too many). */
int sec_policy_add_app_id(sec_policy *pol, const char *hex);
int sec_policy_add_mrtd(sec_policy *pol, const char *hex);

/* Pins the nr root files in v, then (when trust_sim is given) the
 * simulated TEE's root in that directory, whose path is left in sim_root
 * (cap bytes). 0, or -1 with why said on stderr. */
int sec_load_roots(ra_verifier *v, const char *const *roots, size_t nr, const char *trust_sim,
                   char *sim_root, size_t cap);

#endif
