/* attest/quote.h: Intel DCAP quote parser (SGX v3, TDX v4, TDX v5).
 *
 * Zero-copy, in the manner of picohttpparser: ra_quote_parse() fills a
 * ra_quote whose pointers are views into the caller's buffer; the views are
 * valid as long as that buffer is. Every length and offset is checked
 * against the buffer before use; the parser never allocates, never reads
 * out of bounds and keeps no state. Integers in the quote are
 * little-endian; the struct holds them decoded.
 *
 * Layout: header (48) | [v5: body_type u16, body_size u32] | body (SGX
 * report 384, TD report 584, TD 1.5 report 648) | signature_data_len u32 |
 * signature data. Signature data (ECDSA P-256 attestation key, type 2):
 * quote signature (64) | attestation public key (64) | then
 *   SGX v3:  QE report (384) | QE report sig (64) | QE auth data (u16 len + data)
 *            | certification data (u16 type, u32 size, data)
 *   TDX:     certification data of type 6, whose data is: QE report | QE
 *            report sig | QE auth data | nested certification data.
 * The innermost certification data of type 5 is the PCK certificate chain
 * (PEM or DER certificates, any order); types 1-3 carry only PPID material
 * and need a chain supplied by the verifier's caller. */
#ifndef RA_ATTEST_QUOTE_H
#define RA_ATTEST_QUOTE_H

#include "raloop/core/api.h"

#include "raloop/core/error.h"

#include <errno.h>
#include <stddef.h>
#include <stdint.h>

#include "raloop/core/str.h"

#define RA_QUOTE_HEADER_LEN 48
#define RA_SGX_REPORT_LEN   384
#define RA_TD10_REPORT_LEN  584
#define RA_TD15_REPORT_LEN  648

#define RA_TEE_SGX            0x00000000u
#define RA_TEE_TDX            0x00000081u
#define RA_ATT_KEY_ECDSA_P256 2

/* body types (v5 numbering; v3/v4 quotes are assigned 1 / 2) */
#define RA_BODY_SGX  1
#define RA_BODY_TD10 2
#define RA_BODY_TD15 3

/* certification data types */
#define RA_CERT_PPID_CLEAR        1
#define RA_CERT_PPID_RSA2048      2
#define RA_CERT_PPID_RSA3072      3
#define RA_CERT_PCK_LEAF          4
#define RA_CERT_PCK_CHAIN         5
#define RA_CERT_QE_REPORT         6
#define RA_CERT_PLATFORM_MANIFEST 7

/* Parser results are RA_ERR_QUOTE_TRUNCATED (a field runs past the end of
 * the buffer), RA_ERR_QUOTE_MALFORMED (inconsistent lengths or types) and
 * RA_ERR_QUOTE_UNSUPPORTED (version, key type, TEE or body type we do not
 * handle), codes of core/error.h. */


/* An SGX enclave report (the SGX quote body, and the QE report of both
 * kinds). Fixed-size fields point at exactly the size in the comment. */
typedef struct ra_sgx_report {
  const uint8_t *raw;     /* 384 bytes: what the QE report signature covers */
  const uint8_t *cpu_svn; /* 16 */
  uint32_t misc_select;
  const uint8_t *isv_ext_prod_id; /* 16 */
  const uint8_t *attributes;      /* 16; bit 1 of byte 0 = DEBUG */
  const uint8_t *mr_enclave;      /* 32 */
  const uint8_t *mr_signer;       /* 32 */
  const uint8_t *config_id;       /* 64 */
  uint16_t isv_prod_id;
  uint16_t isv_svn;
  uint16_t config_svn;
  const uint8_t *isv_family_id; /* 16 */
  const uint8_t *report_data;   /* 64 */
} ra_sgx_report;

/* A TD report (TDX quote body). tee_tcb_svn2 and mr_servicetd are NULL
 * unless the body is TD 1.5 (v5 body type 3). */
typedef struct ra_td_report {
  const uint8_t *tee_tcb_svn;     /* 16 */
  const uint8_t *mr_seam;         /* 48 */
  const uint8_t *mr_signer_seam;  /* 48 */
  const uint8_t *seam_attributes; /* 8 */
  const uint8_t *td_attributes;   /* 8; byte 0 = TUD group: bit 0 DEBUG, 4-6 profiling */
  const uint8_t *xfam;            /* 8 */
  const uint8_t *mrtd;            /* 48 */
  const uint8_t *mr_config_id;    /* 48 */
  const uint8_t *mr_owner;        /* 48 */
  const uint8_t *mr_owner_config; /* 48 */
  const uint8_t *rtmr[4];         /* 48 each */
  const uint8_t *report_data;     /* 64 */
  const uint8_t *tee_tcb_svn2;    /* 16, TD 1.5 only */
  const uint8_t *mr_servicetd;    /* 48, TD 1.5 only */
} ra_td_report;

typedef struct ra_quote {
  /* header */
  const uint8_t *header; /* 48 */
  uint16_t version;      /* 3, 4 or 5 */
  uint16_t att_key_type; /* 2 = ECDSA P-256 */
  uint32_t tee_type;     /* RA_TEE_SGX / RA_TEE_TDX */
  uint16_t qe_svn;
  uint16_t pce_svn;
  const uint8_t *qe_vendor_id; /* 16 */
  const uint8_t *user_data;    /* 20 */

  /* body */
  uint16_t body_type; /* RA_BODY_* */
  ra_str body;
  ra_sgx_report enclave;     /* when body_type == RA_BODY_SGX */
  ra_td_report td;           /* when body_type is TD10 or TD15 */
  ra_str signed_data; /* header .. end of body: what the quote signature covers */

  /* signature data */
  ra_str sig_data;
  const uint8_t *signature; /* 64: r || s, big-endian */
  const uint8_t *att_key;   /* 64: x || y, big-endian */
  uint16_t outer_cert_type; /* certification data type after att_key (6 for TDX) */
  ra_sgx_report qe_report;
  const uint8_t *qe_report_sig; /* 64 */
  ra_str qe_auth_data;
  uint16_t cert_type;      /* innermost certification data type */
  ra_str cert_data; /* its data (the PCK chain when cert_type == 5) */

  size_t quote_len; /* bytes the quote occupies */
  size_t trailing;  /* bytes after it in the buffer (padding), ignored */
} ra_quote;

/* Parses buf[0..len). On success returns 0 and fills *q with views into buf.
 * Errors: RA_ERR_QUOTE_TRUNCATED, _MALFORMED, _UNSUPPORTED (*q is then
 * partly filled; do not use it). Trailing bytes after the signature data
 * are tolerated (some providers pad quotes) and reported in q->trailing. */
RA_API int ra_quote_parse(const uint8_t *buf, size_t len, ra_quote *q);

/* True when the quote comes from a debug enclave (attributes bit 1) or a TD
 * under debug (any of td_attributes bits 7:0, the TUD group: DEBUG and the
 * TDX 1.5 profiling bits). */
RA_API int ra_quote_is_debug(const ra_quote *q);

/* The 64-byte report_data of the quote body (SGX or TD). */
RA_API const uint8_t *ra_quote_report_data(const ra_quote *q);

#endif
