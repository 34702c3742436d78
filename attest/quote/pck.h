/* attest/pck.h: the Intel SGX extensions of a PCK certificate
 * (OID 1.2.840.113741.1.13.1): PPID, TCB (16 component SVNs, PCESVN,
 * CPUSVN), PCE ID, FMSPC, SGX type. */
#ifndef RA_ATTEST_PCK_H
#define RA_ATTEST_PCK_H

#include "raloop/core/api.h"

#include <stddef.h>
#include <stdint.h>

#define RA_PCK_SGX_EXT_OID "1.2.840.113741.1.13.1"

typedef struct ra_pck_info {
  uint8_t ppid[16];
  uint8_t tcb_comp_svn[16]; /* SGX TCB components 01..16 */
  uint16_t pcesvn;
  uint8_t cpusvn[16];
  uint8_t pceid[2];
  uint8_t fmspc[6];
  int sgx_type;                 /* 0 standard, 1 scalable, 2 scalable with integrity */
  int has_platform_instance_id; /* processor PCK certs have none */
  uint8_t platform_instance_id[16];
} ra_pck_info;

/* Parses the extension's value (the DER SEQUENCE inside the extension's
 * OCTET STRING). Returns 0, or -EBADMSG when the DER is malformed or a
 * mandatory field (PPID, TCB, PCE ID, FMSPC, SGX type) is missing or has
 * the wrong size. Does not keep der. */
RA_API int ra_pck_parse_ext(const uint8_t *der, size_t len, ra_pck_info *out);

#endif
