/* attest/quote/snp_cert_table.h: AMD's SEV-SNP certificate table, what a
 * guest gets beside its report from an extended report request (the
 * configfs-tsm `auxblob`, SNP_GET_EXT_REPORT's certificate buffer, Azure's
 * and GCP's host-provided certificates): a list of (GUID, offset, length)
 * entries of 24 bytes ending with an all-zero entry, then the certificates
 * (DER) at those offsets. GUIDs (RFC 4122 byte order, as go-sev-guest reads
 * them on real hardware; the UEFI mixed-endian form is accepted too):
 *   VCEK 63da758d-e664-4564-adc5-f4b93be8accd
 *   VLEK a8074bc2-a25a-483e-aae6-39c045a0b8a1
 *   ASK  4ab7b379-bbac-4fe4-a02f-05aef327c782  (the ASVK with a VLEK)
 *   ARK  c0b406a4-a803-4952-9743-3fb6014cd0ae
 *   CRL  92f81bc3-5811-4d3d-97ff-d19f88dc67ea
 * The views go straight into ra_snp_verify_opts (vcek, ask, ark) and
 * ra_snp_verifier_add_crl. */
#ifndef RA_ATTEST_SNP_CERT_TABLE_H
#define RA_ATTEST_SNP_CERT_TABLE_H

#include "raloop/core/api.h"

#include <stddef.h>
#include <stdint.h>

typedef struct ra_snp_cert_table {
  /* Views into the caller's buffer (valid while it is); NULL/0 when the
   * table has no such entry. */
  const uint8_t *vcek, *vlek, *ask, *ark, *crl;
  size_t vcek_len, vlek_len, ask_len, ark_len, crl_len;
  int n_entries; /* all entries, unknown GUIDs included (they are skipped) */
} ra_snp_cert_table;

/* Parses buf[0..len) (len 0: an empty table). Returns 0, or -EINVAL: no
 * terminating entry, an entry whose data lies in the header or past the
 * end, an empty entry, a known GUID twice, more than 64 entries. *out is
 * zeroed first. */
RA_API int ra_snp_cert_table_parse(const uint8_t *buf, size_t len, ra_snp_cert_table *out);

#endif
