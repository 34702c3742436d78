/* attest/quote/collateral.h: Intel's verification collateral for a quote:
 * TCB info (SGX or TDX, formats v2/v3) and QE identity (v2) as Intel signs
 * them, their issuer chain (TCB signing certificate, root), and the CRLs of
 * the PCK chain (root CA CRL, PCK Platform/Processor CA CRL).
 *
 * Two ways in, both files, never the network (a PCS/PCCS client writes the
 * same JSON document):
 *  - one JSON document in the shape Phala's dcap-qvl uses:
 *      { "pck_crl_issuer_chain": PEM, "root_ca_crl": HEX DER,
 *        "pck_crl": HEX DER, "tcb_info_issuer_chain": PEM,
 *        "tcb_info": "<the signed tcbInfo body, as a string>",
 *        "tcb_info_signature": HEX (r||s, 64 bytes),
 *        "qe_identity_issuer_chain": PEM,
 *        "qe_identity": "<the signed enclaveIdentity body>",
 *        "qe_identity_signature": HEX }
 *    (CRLs may also be PEM text; unknown keys are ignored);
 *  - a directory of Intel PCS v4 responses: the bodies as served
 *    (tcb.json or tcbInfo.json: {"tcbInfo":{..},"signature":".."};
 *    qe_identity.json or qeIdentity.json: {"enclaveIdentity":{..},
 *    "signature":".."}), the issuer-chain headers URL-decoded into PEM files
 *    (tcb_info_issuer_chain.pem or tcbSignChain.pem; qe_identity_issuer_chain.pem,
 *    default: the TCB one), and the CRLs (pck_crl.der|.pem or
 *    intermediateCaCrl.der|.pem; root_ca_crl.der|.pem or rootCaCrl.der|.pem).
 *
 * Parsing checks shape only (every field Intel defines that the evaluation
 * reads, with its type and size); signatures, freshness and matching are
 * checked when a quote is verified with it (ra_verify_opts.collateral), at
 * the verification time. A collateral is immutable after loading except for
 * a memo of the body signatures it already verified; share it between
 * verifications of one thread. */
#ifndef RA_ATTEST_COLLATERAL_H
#define RA_ATTEST_COLLATERAL_H

#include "raloop/core/api.h"

#include <stddef.h>
#include <stdint.h>
#include <time.h>

typedef struct ra_collateral ra_collateral;

/* Parses the dcap-qvl JSON document json[0..len) (need not be
 * NUL-terminated; copied). Returns 0, RA_ERR_COLLATERAL_PARSE (with the
 * reason at debug log level), -ENOMEM. */
RA_API int ra_collateral_parse_json(const char *json, size_t len, ra_collateral **out);

/* Loads path: a dcap-qvl JSON file, or a directory of PCS responses (see
 * above). Returns 0, RA_ERR_COLLATERAL_PARSE, -ENOMEM, -errno. */
RA_API int ra_collateral_load(const char *path, ra_collateral **out);

RA_API void ra_collateral_free(ra_collateral *c);

/* Facts for display (zero when c is NULL): "SGX"/"TDX", the FMSPC (6
 * bytes), the earliest nextUpdate of TCB info and QE identity, and the TCB
 * evaluation data number. */
typedef struct ra_collateral_info {
  char tcb_id[8];
  uint8_t fmspc[6];
  uint8_t pceid[2];
  int tcb_info_version;
  int tcb_eval_number;
  time_t tcb_info_issue, tcb_info_next_update;
  time_t qe_identity_issue, qe_identity_next_update;
  int n_tcb_levels;
} ra_collateral_info;
RA_API void ra_collateral_get_info(const ra_collateral *c, ra_collateral_info *info);

#endif
