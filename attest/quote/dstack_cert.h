/* attest/dstack_cert.h: dstack's attested app certificate (its RA-TLS
 * certificate, Dstack-TEE/dstack ra-tls/src/{oids,cert,attestation}.rs):
 * parse it, check that the quote binds the certificate's key, verify the
 * quote, replay the event log, and say who the app is.
 *
 * The extensions (each extnValue is a DER OCTET STRING holding the bytes,
 * ra-tls cert.rs add_ext):
 *   1.3.6.1.4.1.62397.1.1  the TDX quote (raw bytes)
 *   1.3.6.1.4.1.62397.1.2  the event log (JSON array of TdxEvent, as
 *                          GetQuote's event_log)
 *   1.3.6.1.4.1.62397.1.3  the app id (raw bytes, 20 for dstack)
 *   1.3.6.1.4.1.62397.1.8  dstack's "versioned attestation" (quote, event
 *                          log, runtime events, report_data, VM config),
 *                          which replaces 1.1/1.2 in agents since 0.5.6:
 *                          its SCALE form with a TDX quote is decoded
 *                          (dstack_att.h); the msgpack form (agents whose
 *                          log has v2 events) gives -ENOTSUP, said so
 * Binding (attestation.rs verify_with_ra_pubkey):
 *   report_data = SHA-512("ratls-cert:" || the DER SubjectPublicKeyInfo)
 * Replay: like dstack (verify_tdx_quote_with_events), RTMR3 must equal
 * the replay of the runtime events (from 1.2's log, or 1.8's runtime
 * events); certificates carry stripped logs, so RTMR0-2 are compared only
 * to say so when they happen to replay too. Like dstack, the identity comes
 * from the attested events; the app-id extension is an issuer's claim, so
 * here it must agree with the log's app-id event when both are present
 * (else refused).
 * These OIDs are also defined by attest/quote/ratls.h (another branch);
 * the constants here are kept local so that this module stands alone.
 * Pure: no I/O. */
#ifndef RA_ATTEST_DSTACK_CERT_H
#define RA_ATTEST_DSTACK_CERT_H

#include "raloop/core/api.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "raloop/attest/quote/eventlog.h"
#include "raloop/attest/quote/ratls.h"
#include "raloop/attest/quote/verify.h"

/* One convention, one reader: the extensions and the key binding are
 * attest/quote/ratls.h's (dstack's RA-TLS); these names are its aliases. */
#define RA_DSTACK_OID_QUOTE       RA_RATLS_OID_QUOTE
#define RA_DSTACK_OID_EVENT_LOG   RA_RATLS_OID_EVENT_LOG
#define RA_DSTACK_OID_APP_ID      RA_RATLS_OID_APP_ID
#define RA_DSTACK_OID_ATTESTATION RA_RATLS_OID_ATTESTATION
#define RA_DSTACK_CERT_TAG        RA_RATLS_REPORT_DATA_TAG
#define RA_DSTACK_CERT_MAX        RA_RATLS_MAX_CERT

/* What the certificate carries. Owned buffers: ra_dstack_cert_clear. */
typedef struct ra_dstack_cert {
  uint8_t *spki; /* DER SubjectPublicKeyInfo */
  size_t spki_len;
  uint8_t *quote; /* NULL when absent */
  size_t quote_len;
  char *event_log; /* NUL-terminated JSON, NULL when absent */
  size_t event_log_len;
  bool has_app_id;
  uint8_t app_id[64];
  size_t app_id_len;
  uint8_t *attestation; /* the 1.8 extension's bytes (dstack_att.h), NULL when absent */
  size_t attestation_len;
} ra_dstack_cert;

RA_API void ra_dstack_cert_clear(ra_dstack_cert *c);

/* Parses a certificate, PEM (the first one) or DER, data[0..len) at most
 * RA_DSTACK_CERT_MAX (borrowed for the call). Returns 0, -EINVAL (not a
 * certificate, an extension that is not an OCTET STRING or appears twice,
 * an app id over 64 bytes; which, at debug log level), -ENOMEM. *out is
 * zeroed first and cleared on failure. */
RA_API int ra_dstack_cert_parse(const uint8_t *data, size_t len, ra_dstack_cert *out);

/* SHA-512("ratls-cert:" || spki): what the quote's report_data must be. */
RA_API int ra_dstack_cert_report_data(const uint8_t *spki, size_t spki_len, uint8_t rd[64]);

/* Parses and verifies data[0..len) (borrowed for the call), in this order:
 * a quote must be present (1.1, or inside 1.8; 1.8's report_data must be
 * its quote's), the quote's report_data must bind the certificate's key,
 * the quote must pass ra_verify_quote with v, opts (may be NULL) and
 * policy (its measurement sets, TCB rules and callback apply; leave its
 * x25519 binding unset: the key binding is the one above), the events (1.2,
 * or 1.8's runtime events) must replay to the quote's RTMR3, and the
 * app-id extension must agree with them. Fills *vd always (the quote's
 * verdict, with err and msg of the first failure of any step). Returns 0
 * (and fills *id, which may be NULL), or -EACCES with vd->err:
 *   RA_ERR_CERT_PARSE       not a certificate (or a malformed extension)
 *   -EINVAL                 no quote, no event log, a malformed 1.8, a log
 *                           that is not dstack's
 *   -ENOTSUP                1.8 in its msgpack form or not TDX, or a
 *                           gzip-compressed event log
 *   RA_ERR_QUOTE_MALFORMED  the quote does not parse
 *   RA_ERR_BINDING          report_data != SHA-512("ratls-cert:" || SPKI),
 *                           or 1.8's report_data is not its quote's
 *   RA_ERR_*                what ra_verify_quote refused
 *   RA_ERR_MEASUREMENT      RTMR3 does not replay (msg says so), or the
 *                           app-id extension disagrees with the events
 * or -EINVAL (v, policy or vd NULL), -ENOMEM. */
RA_API int ra_dstack_cert_verify(ra_verifier *v, const uint8_t *data, size_t len,
                                 const ra_verify_opts *opts, const ra_policy *policy,
                                 ra_dstack_identity *id, ra_verdict *vd);

#endif
