/* attest/quote/snp_vcek.h: the AMD extensions of a VCEK or VLEK
 * certificate (OIDs under 1.3.6.1.4.1.3704.1, AMD's "Versioned Chip
 * Endorsement Key (VCEK) Certificate and KDS Interface Specification"):
 *
 *   .1     structVersion  INTEGER
 *   .2     productName    IA5String  "Milan-B0", "Genoa-B1", "Turin-..."
 *   .3.1   blSPL          INTEGER    bootloader security patch level
 *   .3.2   teeSPL         INTEGER
 *   .3.3   snpSPL         INTEGER
 *   .3.8   ucodeSPL       INTEGER
 *   .3.9   fmcSPL         INTEGER    (Turin)
 *   .4     hwID           OCTET STRING  the chip_id (64 bytes; 8 on Turin); VCEK only
 *   .5     cspID          IA5String  the cloud provider; VLEK only
 *
 * A report is signed by the VCEK of exactly its chip and its reported_tcb:
 * ra_snp_verify() requires these SPLs to equal the report's reported_tcb
 * and (for a VCEK) hwID to equal its chip_id. */
#ifndef RA_ATTEST_SNP_VCEK_H
#define RA_ATTEST_SNP_VCEK_H

#include "raloop/core/api.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "raloop/attest/quote/snp_report.h"

typedef struct ra_snp_vcek_info {
  int struct_version;     /* -1 when absent */
  char product_name[32];  /* as in the certificate, "Milan-B0" */
  ra_snp_product product; /* from its prefix; UNKNOWN for anything else */
  bool has_fmc;
  ra_snp_tcb tcb; /* the SPLs (raw is 0: not an encoding) */
  uint8_t hwid[64];
  size_t hwid_len; /* 0: absent (a VLEK) */
  char csp_id[64]; /* "" when absent (a VCEK) */
  bool is_vlek;    /* cspID present */
} ra_snp_vcek_info;

/* Reads the AMD extensions of the certificate in cert[0..len) (one
 * certificate, PEM or DER). Returns 0, -ENOENT (not a VCEK/VLEK: no
 * productName or no blSPL/teeSPL/snpSPL/ucodeSPL), -EINVAL (does not parse,
 * an extension present twice or malformed, hwID longer than 64 bytes, a
 * VCEK without hwID), -ENOMEM. */
RA_API int ra_snp_vcek_parse(const uint8_t *cert, size_t len, ra_snp_vcek_info *out);

#endif
