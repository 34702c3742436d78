/* attest/quote/provider_internal.h: what the quote providers (provider.c:
 * sim, tsm, file; dstack.c; snp_provider.c) share to build evidence.
 * Private to attest/quote. */
#ifndef RA_ATTEST_PROVIDER_INTERNAL_H
#define RA_ATTEST_PROVIDER_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "raloop/attest/quote/provider.h"

/* A malloc'd copy of the n bytes at p; never NULL for n == 0 (a valid
 * pointer that encoders may memcpy from) unless memory is out. */
uint8_t *ra_quote_dup_bytes(const void *p, size_t n);

/* The TDX binding of provider.h (sim, tsm, dstack): a fresh val, iat now,
 * runtime_data = pub, an empty signature (no one here can sign for Intel
 * Trust Authority) in ev, and report_data = SHA-512(val || iat || pub) in
 * rd. Returns 0, -ENOMEM or -EIO (logged, but for -ENOMEM). */
int ra_quote_ev_tdx_binding(const uint8_t pub[32], ra_quote_evidence *ev, uint8_t rd[64]);

/* Reads path (at most max bytes) and decodes it as hex, base64 or binary
 * (ra_decode_auto) into *out (malloc'd, caller frees) and *len. On failure
 * logs "cannot read <noun> <path>" or "<noun> <path>: malformed
 * hex/base64" and returns the read's negative errno, -EINVAL or -ENOMEM. */
int ra_quote_read_decoded(const char *path, size_t max, const char *noun, uint8_t **out,
                          size_t *len);

#endif
