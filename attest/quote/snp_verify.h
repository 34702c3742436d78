/* attest/quote/snp_verify.h: AMD SEV-SNP attestation report verification.
 * Pure, like verify.h for Intel: never reads the network; the VCEK (or
 * VLEK) and optionally its ASK/ASVK and ARK, and AMD's CRLs, are passed in.
 *
 * Usage:
 *   ra_snp_verifier *v;  ra_snp_verifier_new(0, &v);  // pins AMD's ARKs
 *   ra_snp_verify_opts o = {.vcek = pem, .vcek_len = n};
 *   ra_snp_expect e = {.has = RA_SNP_MEASUREMENT, .measurement = {...}};
 *   ra_snp_policy pol = {.sets = &e, .n_sets = 1};
 *   ra_snp_verdict vd;
 *   if (ra_snp_verify(v, report, len, &o, &pol, &vd) == 0) ... valid
 *   else printf("%s failed: %s\n", ra_snp_check_name(vd.failed), vd.msg);
 *   ra_snp_verifier_free(v);
 *
 * Checks, in order (each gets a status in the verdict; the first failure
 * gives vd.err and vd.failed):
 *   parse             1184 bytes, version 2..5, ECDSA P-384 SHA-384
 *   chain             VCEK <- ASK (or VLEK <- ASVK) <- a pinned ARK: names,
 *                     RSA-PSS SHA-384 signatures, CA flags, ARK self-signed,
 *                     every certificate valid at the chosen time
 *   crl               the verifier's CRLs whose issuer is the ARK or the
 *                     ASK: signature, thisUpdate..nextUpdate, revocation
 *   vcek_extensions   product, SPLs == reported_tcb, hwID == chip_id (VCEK)
 *   report_signature  the 672-byte body signed by the VCEK key (P-384)
 *   debug, guest_policy, vmpl, tcb, measurements, binding, callback
 *                     the policy (snp_policy.h)
 *
 * Error codes (core/error.h; the failing step says which rule): parse:
 * RA_ERR_QUOTE_TRUNCATED/_MALFORMED/_UNSUPPORTED; chain: RA_ERR_CERT_PARSE,
 * _CHAIN_BROKEN, _ROOT_UNTRUSTED, _CHAIN_SIGNATURE, _CERT_EXPIRED,
 * _CERT_NOT_YET_VALID, _CHAIN_INVALID; crl: RA_ERR_CRL_SIGNATURE,
 * _CRL_EXPIRED, _CERT_REVOKED; vcek_extensions: RA_ERR_PCK_EXTENSION (the
 * endorsement key's extensions: missing, or SPLs/hwID/product not the
 * report's); report_signature: RA_ERR_QUOTE_SIGNATURE; debug: RA_ERR_DEBUG;
 * guest_policy: RA_ERR_TD_ATTRIBUTES (the guest's attributes: migration
 * agent, SMT, reserved bit 17); vmpl and measurements: RA_ERR_MEASUREMENT;
 * tcb: RA_ERR_TCB_STATUS; binding: RA_ERR_BINDING; callback:
 * RA_ERR_CALLBACK; empty policy: RA_ERR_POLICY_EMPTY (step measurements). */
#ifndef RA_ATTEST_SNP_VERIFY_H
#define RA_ATTEST_SNP_VERIFY_H

#include "raloop/core/api.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "raloop/attest/quote/snp_policy.h"
#include "raloop/attest/quote/snp_report.h"
#include "raloop/attest/quote/snp_vcek.h"
#include "raloop/attest/quote/verify.h" /* ra_check_status */

#define RA_SNP_TEE_NAME "SEV-SNP"

typedef enum ra_snp_check {
  RA_SNP_CHECK_PARSE,
  RA_SNP_CHECK_CHAIN,
  RA_SNP_CHECK_CRL,
  RA_SNP_CHECK_VCEK_EXT,
  RA_SNP_CHECK_REPORT_SIG,
  RA_SNP_CHECK_DEBUG,
  RA_SNP_CHECK_GUEST_POLICY,
  RA_SNP_CHECK_VMPL,
  RA_SNP_CHECK_TCB,
  RA_SNP_CHECK_MEASUREMENTS,
  RA_SNP_CHECK_BINDING,
  RA_SNP_CHECK_CALLBACK,
  RA_SNP_CHECK__COUNT
} ra_snp_check;

/* "parse", "chain", "crl", "vcek_extensions", "report_signature", "debug",
 * "guest_policy", "vmpl", "tcb", "measurements", "binding", "callback";
 * "?" otherwise. */
RA_API const char *ra_snp_check_name(ra_snp_check c);

typedef struct ra_snp_verdict {
  int err;       /* 0 when valid, else the RA_ERR_* code of the first failure */
  int failed;    /* the ra_snp_check of that failure, -1 when valid */
  char msg[256]; /* why, for the first failure */
  ra_check_status checks[RA_SNP_CHECK__COUNT];
  const char *tee; /* RA_SNP_TEE_NAME, always (static) */
  time_t at;       /* the verification time used */

  /* The report (copied: valid after the call), when it parsed. */
  bool parsed;
  uint32_t version, guest_svn, vmpl;
  uint64_t policy, platform_info;
  bool debug; /* policy bit 19 */
  ra_snp_signing_key signing_key;
  ra_snp_product product; /* from the VCEK when it parsed, else the CPUID fields */
  ra_snp_tcb current_tcb, reported_tcb, committed_tcb, launch_tcb;
  uint8_t measurement[48], host_data[32], report_data[64];
  uint8_t family_id[16], image_id[16];
  uint8_t id_key_digest[48], author_key_digest[48];
  uint8_t chip_id[64];

  /* The endorsement key and its chain. */
  bool has_vcek; /* vcek valid: its extensions parsed */
  ra_snp_vcek_info vcek;
  time_t vcek_not_before, vcek_not_after;
  char ark_subject[128];  /* one-line subject of the pinned ARK used */
  uint8_t ark_sha256[32]; /* its SHA-256 fingerprint (DER) */
  bool ask_builtin;       /* the compiled-in ASK/ASVK was used (none given) */
  int crls_applied;
  int matched_set; /* index of the accepted set, -1 if none */
} ra_snp_verdict;

typedef struct ra_snp_verifier ra_snp_verifier;

enum {
  /* Pin no AMD ARK (only those added with ra_snp_verifier_add_ark, e.g. the
   * simulated TEE's). */
  RA_SNP_VERIFIER_NO_AMD_ROOTS = 1,
  /* Decode every certificate anew and validate every path again (cold
   * benchmarks). By default a verifier keeps the last 8 certificate blobs
   * it decoded (by exact bytes) and the last path it validated (those
   * certificate objects, reused only at a time inside all their validity
   * windows and while no ARK was pinned since); the report signature, the
   * VCEK extension match, CRLs and the policy always run again. */
  RA_SNP_VERIFIER_NO_CACHE = 2,
};

/* Creates a verifier pinning the ARKs of Milan, Genoa and Turin (and
 * knowing their ASKs/ASVKs) unless flags says otherwise. Returns 0,
 * -EINVAL, -ENOMEM. Not thread-safe; verifies any number of reports. */
RA_API int ra_snp_verifier_new(unsigned flags, ra_snp_verifier **out);
RA_API void ra_snp_verifier_free(ra_snp_verifier *v);

/* Pins further ARKs: every certificate in data (PEM, or one DER) must be a
 * self-signed CA certificate, else -EINVAL and none is added. Returns the
 * number added, -EINVAL, -ENOMEM (file: also -errno). */
RA_API int ra_snp_verifier_add_ark(ra_snp_verifier *v, const uint8_t *data, size_t len);
RA_API int ra_snp_verifier_add_ark_file(ra_snp_verifier *v, const char *path);

/* Adds CRLs (DER, or PEM with one or more), AMD's
 * https://kdsintf.amd.com/vcek/v1/{product}/crl. A CRL whose issuer is the
 * ARK or ASK of a chain verified later is applied to it (a bad signature
 * or a time outside thisUpdate..nextUpdate then fails the verification);
 * others are ignored. All or nothing; returns the number added, -EINVAL,
 * -ENOMEM (file: also -errno). */
RA_API int ra_snp_verifier_add_crl(ra_snp_verifier *v, const uint8_t *data, size_t len);
RA_API int ra_snp_verifier_add_crl_file(ra_snp_verifier *v, const char *path);

typedef struct ra_snp_verify_opts {
  time_t at; /* verification time; 0 = now */
  /* The VCEK or VLEK (required), PEM or DER. */
  const uint8_t *vcek;
  size_t vcek_len;
  /* The ASK/ASVK and the ARK, PEM or DER, each optional; either may also
   * hold both (AMD's cert_chain file: ASK then ARK). Without an ASK the
   * compiled-in one that issued the VCEK is used; an ARK given must be a
   * pinned one (a caller cannot add trust through it). */
  const uint8_t *ask;
  size_t ask_len;
  const uint8_t *ark;
  size_t ark_len;
} ra_snp_verify_opts;

/* Parses and verifies report[0..len) with the certificates of opts under
 * policy. Fills *vd (always). Returns 0 when every check passed, -EACCES
 * when one failed (vd->err, vd->failed, vd->msg say which and why), -EINVAL
 * when v, opts, policy or vd is NULL. Checks that do not depend on a
 * failed one still run, so that vd->checks shows everything wrong. The
 * inputs are borrowed for the call. */
RA_API int ra_snp_verify(ra_snp_verifier *v, const uint8_t *report, size_t len,
                         const ra_snp_verify_opts *opts, const ra_snp_policy *policy,
                         ra_snp_verdict *vd);

#endif
