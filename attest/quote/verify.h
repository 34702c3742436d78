/* attest/quote/verify.h: DCAP quote verification (TDX v4/v5, SGX v3) and the
 * measurement / key-binding policy. Pure: never reads the network; all
 * collateral (extra roots, CRLs, a PCK chain for quotes without one) is
 * passed in.
 *
 * Usage:
 *   ra_verifier *v;  ra_verifier_new(0, &v);           // pins the Intel SGX Root CA
 *   ra_verifier_add_crl(v, crl, crl_len);              // optional, DER or PEM
 *   ra_policy pol = {.tdx = &expect, .n_tdx = 1, .x25519_pub = key, ...};
 *   ra_verdict vd;
 *   if (ra_verify_quote(v, quote, quote_len, NULL, &pol, &vd) == 0) ... valid
 *   else printf("%s: %s\n", ra_err_name(vd.err), vd.msg);
 *   ra_verifier_free(v);
 *
 * A verifier holds the pinned roots (parsed once) and CRLs; it is not
 * thread-safe but may verify any number of quotes.
 *
 * Inside (private *_internal.h interfaces): verify.c runs the checks in
 * RA_CHECK_* order and fills the verdict; x509.c decodes certificates
 * (with a cache), chain.c holds the pinned roots and checks the PCK path,
 * crl.c the CRL set, qe.c the QE report, crypto.c raw ECDSA P-256 and
 * SHA-2, policy.c measurements, debug, binding and the callback. */
#ifndef RA_ATTEST_VERIFY_H
#define RA_ATTEST_VERIFY_H

#include "raloop/core/api.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "raloop/attest/quote/pck.h"
#include "raloop/core/error.h"
#include "raloop/attest/quote/quote.h"

/* Failures are RA_ERR_* codes of core/error.h (RA_ERR_QUOTE_TRUNCATED ...
 * RA_ERR_QE_DEBUG); name them with ra_err_name(), describe them with
 * ra_strerror(). */

/* Checks, in the order they run. Each gets a status in the verdict. */
typedef enum ra_check {
  RA_CHECK_PARSE,
  RA_CHECK_CHAIN,     /* PCK chain to a pinned root, validity at the chosen time */
  RA_CHECK_CRL,       /* CRLs applied to every certificate of the chain */
  RA_CHECK_PCK_EXT,   /* PCK SGX extensions */
  RA_CHECK_QE_SIG,    /* QE report signed by the PCK key */
  RA_CHECK_QE_DATA,   /* attestation key hash in the QE report; not a debug QE */
  RA_CHECK_QUOTE_SIG, /* quote signed by the attestation key */
  RA_CHECK_DEBUG,
  RA_CHECK_MEASUREMENTS,
  RA_CHECK_BINDING,
  RA_CHECK_CALLBACK,
  RA_CHECK__COUNT
} ra_check;

typedef enum ra_check_status {
  RA_CHECK_NOT_RUN = 0, /* could not run (an earlier failure) */
  RA_CHECK_PASS,
  RA_CHECK_FAIL,
  RA_CHECK_SKIPPED, /* not requested by the policy / options */
} ra_check_status;

RA_API const char *ra_check_name(ra_check c); /* "chain", "qe_signature", ... */
RA_API const char *ra_check_status_name(ra_check_status s);

typedef struct ra_verdict {
  int err;       /* 0 when valid, else the RA_ERR_* code of the first failure */
  char msg[256];     /* human-readable: why, for the first failure */
  ra_check_status checks[RA_CHECK__COUNT];
  uint32_t tee_type; /* RA_TEE_* of the quote (when parsed) */
  uint16_t version;
  bool debug;   /* debug enclave/TD */
  bool has_pck; /* pck valid when the PCK extensions parsed */
  ra_pck_info pck;
  time_t pck_not_before, pck_not_after;
  int chain_len;           /* certificates in the validated path incl. root */
  char root_subject[128];  /* one-line subject of the pinned root used */
  uint8_t root_sha256[32]; /* and its SHA-256 fingerprint (DER) */
  bool chain_from_quote;   /* false: the caller's chain was used */
  int crls_applied;        /* CRLs whose issuer was in the chain (and verified) */
  int matched_set;         /* index of the accepted measurement set, -1 if none */
  time_t at;               /* the verification time used */
} ra_verdict;

/* Expected TDX measurements. Only the fields whose RA_TDX_* bit is in
 * `has` are compared; a set must compare at least one field. */
enum {
  RA_TDX_MRTD = 1u << 0,
  RA_TDX_RTMR0 = 1u << 1,
  RA_TDX_RTMR1 = 1u << 2,
  RA_TDX_RTMR2 = 1u << 3,
  RA_TDX_RTMR3 = 1u << 4,
  RA_TDX_REPORT_DATA = 1u << 5,
  RA_TDX_MR_CONFIG_ID = 1u << 6,
  RA_TDX_MR_OWNER = 1u << 7,
  RA_TDX_MR_OWNER_CONFIG = 1u << 8,
  RA_TDX_XFAM = 1u << 9,
  RA_TDX_TD_ATTRIBUTES = 1u << 10,
};
typedef struct ra_tdx_expect {
  uint32_t has;
  uint8_t mrtd[48];
  uint8_t rtmr[4][48];
  uint8_t report_data[64];
  uint8_t mr_config_id[48];
  uint8_t mr_owner[48];
  uint8_t mr_owner_config[48];
  uint8_t xfam[8];
  uint8_t td_attributes[8];
} ra_tdx_expect;

enum {
  RA_SGX_MR_ENCLAVE = 1u << 0,
  RA_SGX_MR_SIGNER = 1u << 1,
  RA_SGX_ISV_PROD_ID = 1u << 2,
  RA_SGX_MIN_ISV_SVN = 1u << 3,
  RA_SGX_REPORT_DATA = 1u << 4,
};
typedef struct ra_sgx_expect {
  uint32_t has;
  uint8_t mr_enclave[32];
  uint8_t mr_signer[32];
  uint16_t isv_prod_id;
  uint16_t min_isv_svn;
  uint8_t report_data[64];
} ra_sgx_expect;

/* Called after every other check passed. Return 0 to accept; anything else
 * refuses with RA_ERR_CALLBACK (the callback may write a reason into
 * vd->msg). q's views are valid during the call only. */
typedef int (*ra_policy_cb)(const ra_quote *q, ra_verdict *vd, void *ud);

typedef struct ra_policy {
  /* any-of: the quote must match one set of its TEE kind. A TDX quote
     * against a policy with only SGX sets (or the reverse) fails. */
  const ra_tdx_expect *tdx;
  size_t n_tdx;
  const ra_sgx_expect *sgx;
  size_t n_sgx;
  bool allow_debug;

  /* X25519 key binding (PROTOCOL.md §4), checked when x25519_pub != NULL:
     * TDX report_data == SHA-512(binding_val || binding_iat || pub), and
     * both must be present (non-NULL; length may be 0), as the reference
     * client refuses a server_kx without verifier_data.val/iat;
     * SGX report_data == SHA-256(pub) || 0^32 (val/iat unused). */
  const uint8_t *x25519_pub; /* 32 bytes */
  const uint8_t *binding_val;
  size_t binding_val_len;
  const uint8_t *binding_iat;
  size_t binding_iat_len;

  ra_policy_cb callback;
  void *callback_ud;

  /* Explicit opt-out of measurement checks: accept any measurements once
     * the signature chain is valid (what `ra-quote verify` does without
     * measurement options). Without it, a policy with no sets, no binding
     * and no callback is refused with RA_ERR_POLICY_EMPTY. */
  bool signature_only;
} ra_policy;

typedef struct ra_verify_opts {
  time_t at; /* verification time; 0 = now */
  /* PCK chain (PEM and/or DER certificates, any order) for quotes that
     * carry none (cert data types 1-4); if set it is used even when the
     * quote carries a chain. Borrowed for the call. */
  const uint8_t *pck_chain;
  size_t pck_chain_len;
} ra_verify_opts;

typedef struct ra_verifier ra_verifier;

enum {
  RA_VERIFIER_NO_DEFAULT_ROOT = 1,
  /* Decode every certificate anew (for cold benchmarks). By default a
     * verifier keeps the last 32 decoded certificates (by exact DER) since
     * decoding dominates the cost; signatures are always checked again. */
  RA_VERIFIER_NO_CERT_CACHE = 2,
};

/* Creates a verifier pinning the Intel SGX Root CA (compiled in), unless
 * flags has RA_VERIFIER_NO_DEFAULT_ROOT. Returns 0, -ENOMEM. */
RA_API int ra_verifier_new(unsigned flags, ra_verifier **out);
RA_API void ra_verifier_free(ra_verifier *v);

/* Pins further roots: every certificate in data (PEM, one or more; or
 * DER), each of which must be a self-signed CA certificate (basicConstraints
 * CA:TRUE, signature verifying with its own key), else -EINVAL and none is
 * added. Returns the number added (> 0), -EINVAL, -ENOMEM; the _file
 * variant also -errno. data is not kept. */
RA_API int ra_verifier_add_root(ra_verifier *v, const uint8_t *data, size_t len);
RA_API int ra_verifier_add_root_file(ra_verifier *v, const char *path);

/* Adds a CRL (DER, or PEM with one or more CRLs). It is applied to every
 * certificate of each chain verified later whose issuer it names, once its
 * signature is checked against that issuer in the chain (a CRL naming an
 * issuer of the chain but not signed by it, or by an issuer whose key usage
 * excludes cRLSign, fails the verification with RA_ERR_CRL_SIGNATURE; one
 * outside thisUpdate..nextUpdate, without nextUpdate or with a time that
 * does not parse, with RA_ERR_CRL_EXPIRED; a CRL of a CA not in the chain
 * is not applied). All or nothing: every PEM block must be a CRL that
 * parses, DER must be exactly one CRL (trailing whitespace/NULs aside);
 * otherwise -EINVAL and nothing is added. Returns the number added,
 * -EINVAL, -ENOMEM (file: also -errno). */
RA_API int ra_verifier_add_crl(ra_verifier *v, const uint8_t *data, size_t len);
RA_API int ra_verifier_add_crl_file(ra_verifier *v, const char *path);

/* Parses and verifies quote[0..len). Fills *vd (always). Returns 0 when
 * every check passed, else -EACCES (vd->err says why), or -EINVAL when v
 * or policy is NULL. opts may be NULL. Checks that do not depend on a
 * failed one still run, so that vd->checks shows everything wrong; vd->err
 * is the first failure in RA_CHECK_* order. The quote is borrowed for the
 * call. */
RA_API int ra_verify_quote(ra_verifier *v, const uint8_t *quote, size_t len, const ra_verify_opts *opts,
                    const ra_policy *policy, ra_verdict *vd);

/* The Intel SGX Root CA compiled into the library (PEM, NUL-terminated). */
RA_API extern const char ra_intel_sgx_root_ca_pem[];

#endif
