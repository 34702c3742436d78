/* attest/dstack_att.h: dstack's "versioned attestation" bytes — what
 * recent dstack agents (0.5.6+) put in the app certificate's extension
 * 1.3.6.1.4.1.62397.1.8 and return from /Attest — decoded for TDX.
 *
 * Wire formats (dstack-attest/src/attestation.rs, VersionedAttestation::
 * from_bytes): a first byte 0x00 is the legacy SCALE encoding
 * LegacyVersionedAttestation::V0 { Attestation }, used while every runtime
 * event is v1; a msgpack map is AttestationV1 (v1.rs), used once a v2 event
 * exists. Only the SCALE form with a TDX quote is decoded here:
 *   0x00 (V0) | 0x00 (AttestationQuote::DstackTdx)
 *   | quote: compact length, bytes
 *   | event_log: compact count, TdxEvent {imr u32 LE, event_type u32 LE,
 *       digest bytes, event string, event_payload bytes}
 *   | runtime_events: compact count, RuntimeEvent {event string, payload bytes}
 *   | report_data: 64 bytes | config: string
 * (SCALE: "bytes" and "string" are a compact length then the bytes.)
 * The rest (msgpack; GCP TDX, Nitro, SEV-SNP quotes) gives -ENOTSUP.
 * Pure. Checked on dstack's own fixture (tests/vectors/dstack/). */
#ifndef RA_ATTEST_DSTACK_ATT_H
#define RA_ATTEST_DSTACK_ATT_H

#include "raloop/core/api.h"

#include <stddef.h>
#include <stdint.h>

#define RA_DSTACK_ATT_MAX (10u << 20) /* dstack's MAX_ATTESTATION_BYTES */

/* A decoded attestation; owned buffers, released by
 * ra_dstack_att_clear. The two logs are JSON arrays in the GetQuote shape
 * (ra_eventlog_parse takes them): event_log as carried (stripped in
 * certificates: RTMR3 events and RTMR0's ACPI digests only), runtime as
 * imr-3 events of type 0x08000001, the ones dstack replays for RTMR3. */
typedef struct ra_dstack_att {
  uint8_t *quote;
  size_t quote_len;
  char *event_log; /* NUL-terminated JSON */
  char *runtime;   /* NUL-terminated JSON */
  uint8_t report_data[64];
  char *config; /* the VM config JSON text as carried (may be "") */
} ra_dstack_att;

/* Decodes buf[0..len) (borrowed). Returns 0, -ENOTSUP (a form not decoded
 * here: msgpack, not TDX), -EINVAL (malformed, trailing bytes, over
 * RA_DSTACK_ATT_MAX; why at debug log level), -ENOMEM. *out is zeroed
 * first and cleared on failure. */
RA_API int ra_dstack_att_decode(const uint8_t *buf, size_t len, ra_dstack_att *out);
RA_API void ra_dstack_att_clear(ra_dstack_att *a);

#endif
