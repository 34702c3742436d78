/* attest/quote/snp_sim.h: the simulated SEV-SNP TEE.
 *
 * A stand-in for an AMD SEV-SNP guest, so that report generation, key
 * binding, chain verification and policy run on machines without one. It
 * owns a hierarchy shaped like AMD's:
 *
 *   "raloop Simulated ARK"    self-signed, RSA 2048, RSA-PSS SHA-384, CA
 *    └ "raloop Simulated ASK" CA, pathlen 0, RSA-PSS SHA-384
 *       └ "raloop Simulated VCEK"  ECDSA P-384 with AMD's VCEK extensions
 *         (structVersion, productName "Milan-B0", bl/tee/snp/ucode SPLs,
 *         hwID = the simulated chip_id)
 *
 * and signs version-5 reports with the VCEK key, byte for byte in AMD's
 * layout (little-endian r and s in 72-byte fields). No name looks like
 * AMD's: a verifier pinning only AMD's ARKs refuses every simulated
 * report; it accepts one only when the caller pins the simulated ARK by
 * name (ra_snp_verifier_add_ark_file(v, DIR/RA_SNP_SIM_ARK_FILE), `ra-quote
 * verify --trust-snp-sim DIR`). A simulated report proves nothing.
 *
 * The keys live in the directory the caller names (the Intel sim's
 * directory may be the same one: the file names differ):
 *   DIR/snp-sim-hierarchy.pem  all keys and certificates (0600)
 *   DIR/snp-ark.pem            the ARK, for verifiers to pin (0644)
 *   DIR/snp-cert-chain.pem     ASK then ARK, as AMD's cert_chain (0644)
 *   DIR/snp-vcek.pem           the VCEK (0644)
 * Not thread-safe per handle; processes may share a directory (the first
 * creates the hierarchy, the others load it). */
#ifndef RA_ATTEST_SNP_SIM_H
#define RA_ATTEST_SNP_SIM_H

#include "raloop/core/api.h"

#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "raloop/attest/quote/snp_report.h"

#define RA_SNP_SIM_ARK_FILE   "snp-ark.pem"
#define RA_SNP_SIM_CHAIN_FILE "snp-cert-chain.pem"
#define RA_SNP_SIM_VCEK_FILE  "snp-vcek.pem"

typedef struct ra_snp_sim ra_snp_sim;

/* What the simulated guest reports. */
typedef struct ra_snp_sim_guest {
  uint32_t version; /* 2..5 */
  uint32_t guest_svn;
  uint64_t policy;
  uint32_t vmpl;
  uint64_t platform_info;
  uint8_t measurement[48], host_data[32], family_id[16], image_id[16];
  uint8_t id_key_digest[48], author_key_digest[48];
  ra_snp_signing_key signing_key; /* the flags' key field: VCEK (default) or VLEK */
} ra_snp_sim_guest;

/* Default guest: version 5, policy 0x30000 (SMT allowed, bit 17; not
 * debug, no migration agent), VMPL 0, platform_info 0x25 (SMT, ECC, alias
 * check: as GCP's sample), measurement 48 x 0x5e, everything else zero. */
RA_API void ra_snp_sim_guest_default(ra_snp_sim_guest *g);

/* The sim's TCB (reported = current = committed = launch; its VCEK's
 * SPLs): bl 3, tee 0, snp 8, ucode 115, in Milan's layout. */
RA_API void ra_snp_sim_tcb(ra_snp_tcb *out);

/* Opens the simulated SEV-SNP TEE whose keys live in dir, creating dir
 * (0700) and the hierarchy on first use. *out is freed with
 * ra_snp_sim_free(). Returns 0, -EINVAL (bad arguments, corrupt bundle),
 * -ENOMEM, -EIO (OpenSSL), -errno. */
RA_API int ra_snp_sim_open(const char *dir, ra_snp_sim **out);
RA_API void ra_snp_sim_free(ra_snp_sim *sim);

/* Paths of the files above (valid while sim is open). */
RA_API const char *ra_snp_sim_ark_path(const ra_snp_sim *sim);
RA_API const char *ra_snp_sim_chain_path(const ra_snp_sim *sim);
RA_API const char *ra_snp_sim_vcek_path(const ra_snp_sim *sim);
/* The VCEK and the chain (ASK, ARK) as PEM text, NUL-terminated (valid
 * while sim is open): what a server sends in sev_snp_data. */
RA_API const char *ra_snp_sim_vcek_pem(const ra_snp_sim *sim);
RA_API const char *ra_snp_sim_chain_pem(const ra_snp_sim *sim);
/* The simulated chip_id (64 bytes: SHA-512 of the VCEK's public key). */
RA_API const uint8_t *ra_snp_sim_chip_id(const ra_snp_sim *sim);

/* Writes a signed report for report_data (64 bytes) with the given guest
 * (NULL: the default) into out. Returns 0, -EINVAL, -EIO. */
RA_API int ra_snp_sim_report(ra_snp_sim *sim, const ra_snp_sim_guest *g,
                             const uint8_t report_data[64], uint8_t out[RA_SNP_REPORT_LEN]);

/* For tests: another certificate for the same key, issued by the sim's
 * ASK, with the given SPLs (NULL: the sim's), hwID (NULL: the sim's
 * chip_id) and validity (0, 0: a day ago for ten years); with csp_id
 * non-NULL a VLEK instead (cspID, no hwID). *pem is malloc'd
 * (NUL-terminated). Returns 0, -EINVAL, -ENOMEM, -EIO. */
RA_API int ra_snp_sim_issue_vcek(ra_snp_sim *sim, const ra_snp_tcb *tcb, const uint8_t hwid[64],
                                 const char *csp_id, time_t not_before, time_t not_after,
                                 char **pem);

/* For tests: a CRL signed by the sim's ARK (revoking its ASK when
 * revoke_ask) valid from this_update to next_update; DER, malloc'd.
 * Returns 0, -EINVAL, -ENOMEM, -EIO. */
RA_API int ra_snp_sim_crl(ra_snp_sim *sim, int revoke_ask, time_t this_update, time_t next_update,
                          uint8_t **der, size_t *len);

#endif
