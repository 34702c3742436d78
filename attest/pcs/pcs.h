/* attest/pcs/pcs.h: getting Intel collateral from the PCS v4 API or a PCCS,
 * on the loop, with an on-disk cache.
 *
 * What a quote needs (ra_pcs_key: TEE kind, FMSPC and the CA that issued
 * its PCK certificate) is fetched with four GETs under base_url:
 *   /{sgx|tdx}/certification/v4/tcb?fmspc=HEX        (TCB-Info-Issuer-Chain or
 *                                                    SGX-TCB-Info-Issuer-Chain)
 *   /{sgx|tdx}/certification/v4/qe/identity         (SGX-Enclave-Identity-Issuer-Chain)
 *   /sgx/certification/v4/pckcrl?ca=platform|processor&encoding=der
 *                                                    (SGX-PCK-CRL-Issuer-Chain)
 *   /sgx/certification/v4/rootcacrl                  (PCCS; for Intel's PCS the root
 *                                                    CA's CRL URL; root_crl_url overrides)
 * and assembled into one JSON document in the shape Phala's dcap-qvl uses
 * (pck_crl_issuer_chain, root_ca_crl, pck_crl, tcb_info_issuer_chain,
 * tcb_info, tcb_info_signature, qe_identity_issuer_chain, qe_identity,
 * qe_identity_signature: chains PEM, CRLs hex DER, signatures hex, tcb_info
 * and qe_identity the signed bodies exactly as served). Nothing here
 * verifies signatures or evaluates TCB levels: the verifier does, with the
 * document. https:// base URLs (Intel's api.trustedservices.intel.com) go
 * through http/client's TLS, verified against the system's CA store. Errors
 * are logged with the URL and what was wrong. */
#ifndef RA_ATTEST_PCS_H
#define RA_ATTEST_PCS_H

#include "raloop/core/api.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "raloop/core/loop.h"
#include "raloop/core/str.h"

typedef enum ra_pcs_tee { RA_PCS_SGX = 0, RA_PCS_TDX = 1 } ra_pcs_tee;
typedef enum ra_pcs_ca { RA_PCS_CA_PLATFORM = 0, RA_PCS_CA_PROCESSOR = 1 } ra_pcs_ca;

/* What to fetch: also the cache key. */
typedef struct ra_pcs_key {
  ra_pcs_tee tee;
  ra_pcs_ca ca;
  uint8_t fmspc[6];
} ra_pcs_key;

/* From a DCAP quote (binary): its TEE kind, and from the PCK certificate of
 * the chain it carries, the FMSPC and the issuing CA (issuer CN "Intel SGX
 * PCK Platform CA" or "... Processor CA"; the simulated TEE's CA names are
 * accepted the same way). quote borrowed for the call. Returns 0, the
 * quote parser's RA_ERR_QUOTE_* code, RA_ERR_NO_PCK_CHAIN (no PEM chain in
 * the quote), RA_ERR_CERT_PARSE, RA_ERR_PCK_EXTENSION, or -ENOTSUP for a
 * PCK issued by neither CA. */
RA_API int ra_pcs_key_from_quote(const uint8_t *quote, size_t len, ra_pcs_key *out);

/* The earliest nextUpdate (seconds since the epoch) of the document's TCB
 * info, QE identity and both CRLs. doc borrowed for the call. Returns 0, or
 * -EBADMSG when the document is not one (a key missing, not JSON, a CRL
 * that does not parse, a date that is not ISO 8601 UTC). */
RA_API int ra_pcs_doc_next_update(ra_str doc, int64_t *out);

/* ---- the cache: one file per key, <dir>/<tee>-<FMSPC>-<ca>.json -------- */

/* The default directory: $XDG_CACHE_HOME/raloop/collateral, else
 * $HOME/.cache/raloop/collateral. Writes a NUL-terminated path into buf.
 * Returns 0, -ENOENT (neither variable set) or -ENAMETOOLONG. */
RA_API int ra_pcs_cache_default_dir(char *buf, size_t cap);

/* The file name of key's entry (no directory): "tdx-00806F050000-platform.json". */
RA_API int ra_pcs_cache_name(const ra_pcs_key *key, char *buf, size_t cap);

/* Reads key's entry from dir. It is fresh when now + refresh_before <
 * its earliest nextUpdate. Returns 0 with *doc (malloc'd, NUL-terminated,
 * the caller frees), *len and *next_update for a fresh entry; -ENOENT
 * (none), -ESTALE (due for refresh; *doc not set), -EBADMSG (garbled:
 * ignored by callers, which fetch again and overwrite it). */
RA_API int ra_pcs_cache_load(const char *dir, const ra_pcs_key *key, int64_t now,
                             int64_t refresh_before, char **doc, size_t *len,
                             int64_t *next_update);

/* Writes key's entry atomically (a temporary file in dir, fsync, rename),
 * creating dir (0700) when missing. doc borrowed for the call; it must be a
 * document ra_pcs_doc_next_update accepts (else -EBADMSG, nothing
 * written). Returns 0 or a negative errno. */
RA_API int ra_pcs_cache_store(const char *dir, const ra_pcs_key *key, ra_str doc);

/* ---- fetching ---------------------------------------------------------- */

/* Intel's PCS (https://api.trustedservices.intel.com) serves no /rootcacrl;
 * the Intel SGX Root CA's CRL is published here (its CRL distribution point). */
#define RA_PCS_INTEL_ROOT_CRL_URL "https://certificates.trustedservices.intel.com/IntelSGXRootCA.der"

typedef struct ra_pcs_opts {
  const char *base_url;     /* "http://pccs:8081", "https://api.trustedservices.intel.com"
                               (the paths above are appended); required */
  const char *root_crl_url; /* NULL: RA_PCS_INTEL_ROOT_CRL_URL for Intel's PCS, else
                               base_url + /sgx/certification/v4/rootcacrl */
  const char *cache_dir;    /* NULL: ra_pcs_cache_default_dir() */
  const char *ca_file;      /* https: PEM CAs to trust instead of the system's store */
  bool no_cache;            /* neither read nor write the cache */
  uint64_t timeout_ms;      /* per request; 0: 30 s */
  size_t max_response;      /* per response body; 0: 4 MiB */
  int64_t now;              /* seconds since the epoch; 0: time(NULL) (tests pass their own) */
  int64_t refresh_before;   /* seconds before nextUpdate an entry is refreshed; 0: 1 hour,
                               negative: until nextUpdate itself */
} ra_pcs_opts;

typedef struct ra_pcs_result {
  ra_str doc;          /* the JSON document; valid until the callback returns */
  int64_t next_update; /* its earliest nextUpdate */
  bool from_cache;     /* served from the cache, no request made */
  bool cache_written;  /* fetched and stored in the cache */
  int refresh_failed;  /* not 0: the entry was due for refresh, the fetch failed with this
                          code, and the cached entry (not past its nextUpdate) is served */
} ra_pcs_result;

/* err 0: res is set. Else res is NULL and err is -ENOENT (a 404), -EPROTO
 * (another status), -EBADMSG (an answer that is not what PCS serves: not
 * JSON, no signature, no issuer chain header, a CRL that does not parse),
 * -ETIMEDOUT, -EMSGSIZE, -EACCES (https: the server's certificate did not
 * verify), or a connect error.
 * A failed fetch writes nothing to the cache. When the cached entry was
 * only due for refresh (within refresh_before of its nextUpdate) and the
 * refresh fails, that entry is served (err 0, refresh_failed set). A cache
 * write failure is logged, not an error. */
typedef void (*ra_pcs_cb)(int err, const ra_pcs_result *res, void *ud);

typedef struct ra_pcs_fetch ra_pcs_fetch;

/* Gets key's collateral: from the cache when fresh, else over the network
 * (the four requests in parallel), then stores it. opts and key are copied.
 * Returns 0 and cb follows exactly once, always from the loop (a cache hit
 * too), unless ra_pcs_fetch_cancel comes first; *out (may be NULL) is valid
 * until the callback starts. Errors (cb not called): -EINVAL, -ENOMEM, and
 * ra_http_get_start's (-EPROTONOSUPPORT for a scheme other than http and
 * https, -ENOENT when the CAs cannot be loaded). */
RA_API int ra_pcs_fetch_start(ra_loop *loop, const ra_pcs_opts *opts, const ra_pcs_key *key,
                              ra_pcs_cb cb, void *ud, ra_pcs_fetch **out);

/* Cancels a fetch whose callback has not run: cb is never called, the
 * requests are dropped. NULL is a no-op. */
RA_API void ra_pcs_fetch_cancel(ra_pcs_fetch *f);

#endif
