/* attest/quote/snp_chain.h: AMD's SEV-SNP certificate hierarchy.
 *
 *   ARK-{Milan,Genoa,Turin}   AMD Root Key: self-signed, RSA 4096, RSA-PSS SHA-384
 *    ├ SEV-{product}          ASK: signs VCEKs (RSA-PSS SHA-384)
 *    │  └ SEV-VCEK            one per chip and TCB version, ECDSA P-384; signs reports
 *    └ SEV-VLEK-{product}     ASVK: signs VLEKs
 *       └ SEV-VLEK            one per cloud provider and TCB version
 *
 * The three ARKs are compiled in and pinned by every SNP verifier unless
 * told otherwise (snp_verify.h); the ASKs and ASVKs are compiled in too, so
 * that a caller with only a VCEK (what a guest's certificate table or the
 * reference tunnel's server_kx often carries) can verify. Origins and
 * fingerprints: attest/quote/amd_roots.c and docs/SEV-SNP.md. The chain
 * checks themselves run inside ra_snp_verify(). */
#ifndef RA_ATTEST_SNP_CHAIN_H
#define RA_ATTEST_SNP_CHAIN_H

#include "raloop/core/api.h"

#include "raloop/attest/quote/snp_report.h"

/* PEM, NUL-terminated. */
RA_API extern const char ra_amd_ark_milan_pem[];
RA_API extern const char ra_amd_ark_genoa_pem[];
RA_API extern const char ra_amd_ark_turin_pem[];
RA_API extern const char ra_amd_ask_milan_pem[];
RA_API extern const char ra_amd_ask_genoa_pem[];
RA_API extern const char ra_amd_ask_turin_pem[];
RA_API extern const char ra_amd_asvk_milan_pem[];
RA_API extern const char ra_amd_asvk_genoa_pem[];
RA_API extern const char ra_amd_asvk_turin_pem[];

/* The ARK / ASK / ASVK of a product (PEM), NULL for RA_SNP_PRODUCT_UNKNOWN. */
RA_API const char *ra_amd_ark_pem(ra_snp_product p);
RA_API const char *ra_amd_ask_pem(ra_snp_product p);
RA_API const char *ra_amd_asvk_pem(ra_snp_product p);

#endif
