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
 * SHA-2, policy.c measurements, debug, binding and the callback;
 * collateral.c, tcb_info.c and qe_identity.c Intel's collateral (TCB
 * status, QE identity, TDX module identity) when ra_verify_opts.collateral
 * is given. Without collateral the verdict is "signatures only: TCB not
 * evaluated" (vd->tcb_evaluated false). */
#ifndef RA_ATTEST_VERIFY_H
#define RA_ATTEST_VERIFY_H

#include "raloop/core/api.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "raloop/attest/quote/collateral.h"
#include "raloop/attest/quote/pck.h"
#include "raloop/core/error.h"
#include "raloop/attest/quote/quote.h"

/* Failures are RA_ERR_* codes of core/error.h (RA_ERR_QUOTE_TRUNCATED ...
 * RA_ERR_QE_DEBUG); name them with ra_err_name(), describe them with
 * ra_strerror(). */

/* Checks. Each gets a status in the verdict. The first eleven run in
 * their order; the collateral checks (appended, so that the values never
 * change) run after RA_CHECK_QUOTE_SIG and before RA_CHECK_DEBUG. */
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
  RA_CHECK_COLLATERAL,    /* TCB info and QE identity: signatures by the TCB signing
                             certificate chained to a pinned root (CRLs applied),
                             freshness, id/FMSPC/PCE ID match */
  RA_CHECK_QE_IDENTITY,   /* QE report vs Intel's QE identity; QE TCB status */
  RA_CHECK_TCB,           /* a TCB level matches; TDX module identity */
  RA_CHECK_TCB_STATUS,    /* the combined status (and advisories) accepted by the policy */
  RA_CHECK_TD_ATTRIBUTES, /* reserved TD attribute bits, SEPT_VE_DISABLE, MR_SERVICETD */
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

/* Intel's TCB statuses. RA_TCB_NONE: not evaluated (no collateral). */
typedef enum ra_tcb_status {
  RA_TCB_NONE = 0,
  RA_TCB_UP_TO_DATE,
  RA_TCB_SW_HARDENING_NEEDED,
  RA_TCB_CONFIGURATION_NEEDED,
  RA_TCB_CONFIGURATION_AND_SW_HARDENING_NEEDED,
  RA_TCB_OUT_OF_DATE,
  RA_TCB_OUT_OF_DATE_CONFIGURATION_NEEDED,
  RA_TCB_REVOKED,
  RA_TCB_NOT_SUPPORTED,
  RA_TCB__COUNT
} ra_tcb_status;

/* Intel's spelling: "UpToDate", "SWHardeningNeeded", ...; "None" for
 * RA_TCB_NONE. */
RA_API const char *ra_tcb_status_name(ra_tcb_status s);
/* The status named s (Intel's spelling, exact); -EINVAL for anything else
 * (including "None"). */
RA_API int ra_tcb_status_from_name(const char *s, ra_tcb_status *out);
/* A bit of ra_policy.accept_tcb. */
#define RA_TCB_ACCEPT(s) (1u << (s))

#define RA_MAX_ADVISORIES 32

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

  /* Collateral. tcb_evaluated false: no collateral was given, the verdict
     * covers signatures only ("signatures only: TCB not evaluated"). */
  bool tcb_evaluated;
  ra_tcb_status tcb_status;      /* platform, TDX module and QE combined as Intel's QVL */
  ra_tcb_status platform_status; /* of the matched TCB level */
  ra_tcb_status module_status;   /* TDX module identity level (RA_TCB_NONE: none applies) */
  ra_tcb_status qe_status;       /* the QE's, from the QE identity */
  int tcb_level;                 /* the matched level, an index in Intel's order of the TCB
                                    info's levels (highest first, as QVL sorts them), -1 */
  time_t tcb_date;               /* tcbDate of the matched level */
  time_t qe_tcb_date;
  /* advisories of the platform level, the module level and the QE level
     * (union, in that order; at most RA_MAX_ADVISORIES) */
  char advisory_ids[RA_MAX_ADVISORIES][32];
  int n_advisory_ids;
  time_t collateral_expiry;  /* earliest nextUpdate of TCB info, QE identity and CRLs used */
  bool collateral_expired;   /* expired, and accepted only because the policy allows it */
  int tcb_eval_number;       /* tcbEvaluationDataNumber of the TCB info */

  /* The window around `at` in which every time-dependent check that ran
     * gives the same answer: the latest notBefore / thisUpdate / issueDate
     * and the earliest notAfter / nextUpdate of every certificate (PCK path,
     * collateral issuer chains), CRL, TCB info and QE identity the
     * verification used: valid_from <= at < valid_until. valid_until 0: a
     * time could not be read, or a window was already past (collateral
     * accepted past nextUpdate): no window to reuse the verdict in. What
     * ra_vcache (vcache.h) bounds an entry's life with. */
  time_t valid_from, valid_until;
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

  /* Collateral (when ra_verify_opts.collateral is given). accept_tcb: the
     * RA_TCB_ACCEPT() bits of the accepted statuses; 0 = UpToDate only.
     * Revoked and NotSupported are never accepted. A status not in
     * accept_tcb is still accepted when it lists advisories and every one
     * of them is in allowed_advisories (exact IDs, "INTEL-SA-00615"). */
  unsigned accept_tcb;
  const char *const *allowed_advisories;
  size_t n_allowed_advisories;
  /* Accept TCB info / QE identity / CRLs past nextUpdate (the verdict says
     * so: collateral_expired). Off by default. */
  bool allow_expired_collateral;
  /* TD attributes (TDX): reserved bits are always refused; optionally
     * require SEPT_VE_DISABLE (bit 28); a TD 1.5 report's MR_SERVICETD
     * must be zero unless allow_mr_servicetd. */
  bool require_sept_ve_disable;
  bool allow_mr_servicetd;
} ra_policy;

typedef struct ra_verify_opts {
  time_t at; /* verification time; 0 = now */
  /* PCK chain (PEM and/or DER certificates, any order) for quotes that
     * carry none (cert data types 1-4); if set it is used even when the
     * quote carries a chain. Borrowed for the call. */
  const uint8_t *pck_chain;
  size_t pck_chain_len;
  /* Intel's collateral (ra_collateral_load/_parse_json): TCB status, QE
     * identity, TDX module identity, and its CRLs, which are then required
     * to cover every CA of the PCK chain (fail closed). NULL: signatures
     * only. Borrowed for the call; it memoises the body signatures it
     * verified, so one collateral serves one thread at a time. */
  ra_collateral *collateral;
} ra_verify_opts;

typedef struct ra_verifier ra_verifier;

enum {
  RA_VERIFIER_NO_DEFAULT_ROOT = 1,
  /* Decode every certificate anew (for cold benchmarks). By default a
     * verifier keeps the last 32 decoded certificates (by exact DER) since
     * decoding dominates the cost, and the last few PCK paths it validated
     * (those same certificate objects, to a pinned root): one is reused
     * only while the verification time is inside the validity of every
     * certificate on it and no root was pinned since; the shape, CRL and
     * quote signature checks always run again. It also remembers the last
     * few QE report signatures it verified (the same PCK certificate, the
     * exact report and signature bytes: every quote of a platform carries
     * the same), so a new quote of a platform seen before costs one ECDSA
     * verification. A PCK leaf of Intel's shape under a PCK CA whose path
     * it validated before is read rather than decoded (see
     * RA_VERIFIER_CACHE_CA_ONLY), and its verified signature and QE report
     * signature are remembered the same way (by exact leaf bytes and CA;
     * by key point, report and signature). With this flag none of this is
     * kept, and every leaf is decoded. */
  RA_VERIFIER_NO_CERT_CACHE = 2,
  /* Keep decoded CA certificates only (the pinned root and the PCK
     * Platform/Processor CAs that every platform's chain repeats), for a
     * client that sees each platform once: a PCK leaf of Intel's shape under
     * a CA whose path to a pinned root it validated before is not decoded
     * but read by a strict DER reader (attest/quote/der.c) and checked
     * alone (its signature by that CA, validity, issuer, extensions, CRLs);
     * any other leaf is decoded and its path validated anew, and the
     * attestation key object is not kept. Verdicts are the same either way
     * (tests/attest/quote/der_test.c). What a verifier costs for a quote of
     * a platform it has never seen (bench/verify_bench: "cold"). */
  RA_VERIFIER_CACHE_CA_ONLY = 4,
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
