/* attest/quote/snp_policy.h: what a verifier of SEV-SNP reports accepts,
 * in the shape of the TDX policy (verify.h, ra_policy): any-of sets of
 * expected fields, the guest's debug/migration/SMT policy, VMPL, a minimum
 * TCB, the tunnel's X25519 key binding and a callback. A policy that
 * checks nothing that identifies the guest (no set, no binding, no
 * callback) is refused with RA_ERR_POLICY_EMPTY unless signature_only says
 * that is meant. Applied by ra_snp_verify() (snp_verify.h). */
#ifndef RA_ATTEST_SNP_POLICY_H
#define RA_ATTEST_SNP_POLICY_H

#include "raloop/core/api.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "raloop/attest/quote/snp_report.h"

/* Expected fields of one set; only those whose bit is in `has` are
 * compared (constant time); a set must compare at least one. */
enum {
  RA_SNP_MEASUREMENT = 1u << 0,
  RA_SNP_HOST_DATA = 1u << 1,
  RA_SNP_FAMILY_ID = 1u << 2,
  RA_SNP_IMAGE_ID = 1u << 3,
  RA_SNP_ID_KEY_DIGEST = 1u << 4,
  RA_SNP_AUTHOR_KEY_DIGEST = 1u << 5,
  RA_SNP_REPORT_DATA = 1u << 6,
  RA_SNP_MIN_GUEST_SVN = 1u << 7,
};
typedef struct ra_snp_expect {
  uint32_t has;
  uint8_t measurement[48];
  uint8_t host_data[32];
  uint8_t family_id[16];
  uint8_t image_id[16];
  uint8_t id_key_digest[48];
  uint8_t author_key_digest[48];
  uint8_t report_data[64];
  uint32_t min_guest_svn;
} ra_snp_expect;

struct ra_snp_verdict;
/* Called after every other check passed. Return 0 to accept; anything else
 * refuses with RA_ERR_CALLBACK (the callback may write a reason into
 * vd->msg). r's views are valid during the call only. */
typedef int (*ra_snp_policy_cb)(const ra_snp_report *r, struct ra_snp_verdict *vd, void *ud);

typedef struct ra_snp_policy {
  /* any-of: the report must match one set */
  const ra_snp_expect *sets;
  size_t n_sets;

  /* Guest policy bits. Debug (bit 19: the host may read and write the
   * guest's memory) is refused unless allow_debug; a guest that may be
   * associated with a migration agent (bit 18) unless
   * allow_migration_agent. SMT: a report whose platform has SMT enabled
   * while the guest policy forbids it is always refused (the reference's
   * enforceSmtPolicy default); require_no_smt also refuses SMT enabled on
   * the platform at all. */
  bool allow_debug;
  bool allow_migration_agent;
  bool require_no_smt;

  /* VMPL: when check_vmpl, the report's VMPL must be <= max_vmpl (0 is the
   * most privileged; an SVSM or paravisor puts the guest OS at 1 or more,
   * as GCP's sample does). */
  bool check_vmpl;
  uint32_t max_vmpl;

  /* Minimum TCB: when check_min_tcb, every SPL of reported_tcb (boot
   * loader, TEE, SNP, microcode; FMC on Turin) must be >= min_tcb's. */
  bool check_min_tcb;
  ra_snp_tcb min_tcb;

  /* X25519 key binding of the reference tunnel, checked when x25519_pub
   * != NULL: report_data == SHA-512(nonce || x25519_pub), the nonce being
   * server_kx.verifier_data; it must be given (non-NULL; length may be 0),
   * as the reference client refuses a server_kx without it. */
  const uint8_t *x25519_pub; /* 32 bytes */
  const uint8_t *nonce;
  size_t nonce_len;

  ra_snp_policy_cb callback;
  void *callback_ud;

  /* Explicit opt-out: accept any guest once the signature chain and the
   * rules above pass (`ra-quote verify` without measurement options). */
  bool signature_only;
} ra_snp_policy;

#endif
