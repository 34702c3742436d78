/* attest/sim.h: the simulated TEE.
 *
 * A stand-in for TDX hardware so that quote generation, key binding, chain
 * verification and measurement policy all run on machines without a TEE
 * (laptops, CI). It owns a certificate hierarchy shaped like Intel's:
 *
 *   "raloop Simulated SGX Root CA"            self-signed, ECDSA P-256, CA
 *    └ "raloop Simulated SGX PCK Platform CA" CA, pathlen 0
 *       └ "raloop Simulated SGX PCK Certificate"  the PCK leaf, carrying the
 *         SGX extensions (OID 1.2.840.113741.1.13.1) in Intel's exact
 *         layout: PPID, TCB (16 component SVNs, PCESVN, CPUSVN), PCE-ID,
 *         FMSPC, SGX type, PlatformInstanceID, Configuration
 *
 * plus an attestation key and a QE report signed by the PCK key whose
 * report_data[0..32] = SHA-256(attestation key || QE auth data). Quotes are
 * TDX v4, byte for byte in the layout real Intel quotes have (header 48,
 * TD report 584, signature data with certification data type 6 nesting the
 * PEM chain as type 5: leaf, intermediate, root, NUL-terminated).
 *
 * None of the names look like Intel's: a verifier that pins only the Intel
 * SGX Root CA refuses every simulated quote; it accepts one only when the
 * caller pins the simulated root (ra_sim_root_pem_path()). A simulated quote
 * proves nothing about the machine that produced it.
 *
 * The keys live in the directory the caller names, so that a server and a
 * client (or two processes) share one root:
 *   DIR/sim-hierarchy.pem   all keys and certificates (0600)
 *   DIR/root-ca.pem         the root certificate, for clients to pin (0644)
 *   DIR/pck-chain.pem       leaf, intermediate, root (0644)
 * Not thread-safe per handle; separate handles (and processes) may share a
 * directory. */
#ifndef RA_ATTEST_SIM_H
#define RA_ATTEST_SIM_H

#include "raloop/core/api.h"

#include <stddef.h>
#include <stdint.h>
#include <time.h>

/* File names inside the directory: a client that only needs to trust the
 * sim (e.g. `ra-curl --trust-sim DIR`) pins DIR/RA_SIM_ROOT_FILE without
 * opening the sim (which would create a hierarchy if there were none). */
#define RA_SIM_ROOT_FILE  "root-ca.pem"
#define RA_SIM_CHAIN_FILE "pck-chain.pem"

typedef struct ra_sim ra_sim;

/* What the simulated TD reports. Integers are host order here; the quote
 * stores them little-endian. */
typedef struct ra_sim_td {
  uint8_t mrtd[48], rtmr[4][48], mr_config_id[48], mr_owner[48], mr_owner_config[48];
  uint64_t td_attributes, xfam;
  uint8_t tee_tcb_svn[16];
} ra_sim_td;

/* Default TD: fixed, recognisable, non-zero measurements, not debug:
 *   mrtd     = 48 x 0x5d ("sim TD")
 *   rtmr[i]  = 48 x (0xa0 + i)
 *   mr_config_id, mr_owner, mr_owner_config = zero (as on most real TDs)
 *   td_attributes = 0x0000000010000000 (bit 28 SEPT_VE_DISABLE; bit 0 DEBUG
 *                   clear; it was bit 36, a reserved bit, before the TD
 *                   attribute rules)
 *   xfam     = 0x00000000000602e7
 *   tee_tcb_svn = 05 01 02 00 .. 00 */
RA_API void ra_sim_td_default(ra_sim_td *td);

/* Opens the simulated TEE whose keys live in dir. On first use creates dir
 * (mode 0700, parents too) and the hierarchy; afterwards loads it. Processes
 * racing on first use end up with the same hierarchy (the bundle is written
 * to a temporary file and linked into place exclusively; the loser loads the
 * winner's). dir is copied. *out is freed with ra_sim_free().
 * Returns 0, -EINVAL (bad arguments, or a corrupt/mismatched bundle),
 * -ENOMEM, -EIO (OpenSSL failure), or -errno from the file system. */
RA_API int ra_sim_open(const char *dir, ra_sim **out);

/* Emits a TDX v4 quote for report_data (64 bytes) with the given TD
 * (NULL: ra_sim_td_default()). *quote is malloc'd, the caller frees it.
 * Returns 0, -EINVAL, -ENOMEM, -EIO. */
RA_API int ra_sim_quote(ra_sim *sim, const ra_sim_td *td, const uint8_t report_data[64], uint8_t **quote,
                 size_t *len);

/* Path of the root certificate (PEM), to pin in a verifier. Valid until
 * ra_sim_free(). */
RA_API const char *ra_sim_root_pem_path(const ra_sim *sim);
/* Path of the PCK chain (PEM: leaf, intermediate, root). Valid until
 * ra_sim_free(). */
RA_API const char *ra_sim_chain_pem_path(const ra_sim *sim);
/* The directory (as given). Valid until ra_sim_free(). */
RA_API const char *ra_sim_dir(const ra_sim *sim);

/* A CRL issued by the simulated root (which = 0: lists the intermediate
 * when revoke is non-zero) or by the simulated PCK Platform CA (which = 1:
 * lists the PCK leaf when revoke is non-zero), DER-encoded, valid from
 * now-1 day for 30 days. For tests of CRL handling. *der is malloc'd, the
 * caller frees it. Returns 0, -EINVAL, -ENOMEM, -EIO. */
RA_API int ra_sim_crl(ra_sim *sim, int which, int revoke, uint8_t **der, size_t *len);

/* Collateral for the simulated platform, in the dcap-qvl JSON shape
 * (collateral.h): a TDX v3 TCB info for the sim's FMSPC (b0c06f000000, PCE
 * ID 0000) whose first level is the sim's (UpToDate; a lower OutOfDate one
 * lists INTEL-SA-00106 and -00115) with tdxModule and TDX_01 (zero
 * MRSIGNERSEAM, as Intel's module), a TD_QE identity (the sim QE's MRSIGNER
 * and ISVPRODID, Intel's masks; ISVSVN >= 4 UpToDate), both signed by a
 * fresh "raloop Simulated SGX TCB Signing" certificate under the sim root,
 * and both CRLs (root's, PCK Platform CA's). Options (all optional, opts
 * may be NULL) forge what tests need: another validity window (CRLs
 * follow it), bodies of the caller's to sign instead of the sim's own
 * (exact JSON text), another signing key (a forged signature), a PCK CRL
 * that revokes the PCK. *json is malloc'd (NUL-terminated), the caller
 * frees it. Returns 0, -EINVAL, -ENOMEM, -EIO. */
typedef struct ra_sim_collateral_opts {
  time_t issue_date;  /* 0: now - 1 day */
  time_t next_update; /* 0: issue_date + 30 days */
  const char *tcb_info;    /* NULL: the sim's */
  const char *qe_identity; /* NULL: the sim's */
  struct evp_pkey_st *tcb_signing_key; /* sign with this instead (EVP_PKEY) */
  int revoke_pck;
} ra_sim_collateral_opts;
RA_API int ra_sim_collateral_json(ra_sim *sim, const ra_sim_collateral_opts *opts, char **json,
                                  size_t *len);

/* The sim's own TCB info and QE identity bodies for a validity window, to
 * edit and hand back through ra_sim_collateral_opts. malloc'd; NULL on
 * ENOMEM. */
RA_API char *ra_sim_tcb_info_body(time_t issue_date, time_t next_update);
RA_API char *ra_sim_qe_identity_body(time_t issue_date, time_t next_update);

RA_API void ra_sim_free(ra_sim *sim);

/* Where the simulated TEE keeps its keys by default (for --sim-dir):
 * $XDG_STATE_HOME/raloop/sim, else $HOME/.local/state/raloop/sim (each only
 * if absolute). Returns 0, -EINVAL, -ENOENT (neither set), -ENAMETOOLONG. */
RA_API int ra_sim_default_dir(char *out, size_t outlen);

/* The TDX key binding of PROTOCOL.md §4, as the reference client checks it:
 * report_data = SHA-512(val || iat || x25519_pub). Returns 0, or -ENOMEM/-EIO
 * (report_data is then zeroed, so that it matches nothing). */
RA_API int ra_sim_tdx_binding(const uint8_t *val, size_t val_len, const uint8_t *iat, size_t iat_len,
                       const uint8_t x25519_pub[32], uint8_t report_data[64]);

#endif
