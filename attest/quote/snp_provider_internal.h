/* attest/quote/snp_provider_internal.h: the SEV-SNP parts of the quote
 * providers (snp_provider.c), shared with the tsm provider (provider.c). */
#ifndef RA_ATTEST_SNP_PROVIDER_INTERNAL_H
#define RA_ATTEST_SNP_PROVIDER_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "raloop/attest/quote/provider.h"

#define RA_SNP_NONCE_LEN 32

/* SEV-SNP evidence for pub: ev->tee, a fresh nonce in ev->snp_nonce, and
 * report_data = SHA-512(nonce || pub) in rd. Returns 0, -ENOMEM, -EIO. */
int ra_snp_ev_binding(const uint8_t pub[32], ra_quote_evidence *ev, uint8_t rd[64]);

/* Fills ev's vcek/ask/ark PEM from AMD's certificate table (DER inside).
 * A VLEK stands in for a VCEK. Returns 0, -EINVAL (no table, no VCEK, a
 * certificate that does not parse), -ENOMEM; logged. */
int ra_snp_ev_certs_from_table(const uint8_t *tab, size_t len, ra_quote_evidence *ev);

/* The sim-snp provider's directory when ops is its, else NULL. */
const char *ra_snp_provider_sim_dir(const ra_quote_provider_ops *ops, void *self);

#endif
