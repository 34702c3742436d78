/* attest/quote/collateral_internal.h: the parsed collateral (collateral.c),
 * TCB info (tcb_info.c) and QE identity (qe_identity.c), and their checks
 * against a quote. Private to attest/quote. */
#ifndef RA_ATTEST_COLLATERAL_INTERNAL_H
#define RA_ATTEST_COLLATERAL_INTERNAL_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include <openssl/x509.h>

#include "raloop/attest/quote/chain_internal.h"
#include "raloop/attest/quote/collateral.h"
#include "raloop/attest/quote/crl_internal.h"
#include "raloop/attest/quote/verify.h"

#define RA_ADVISORY_LEN 32

/* A status and its advisories (Intel's "INTEL-SA-00615", ...). */
typedef struct ra_tcb_eval {
  ra_tcb_status status;
  time_t date;
  char (*adv)[RA_ADVISORY_LEN]; /* borrowed from the level */
  size_t n_adv;
} ra_tcb_eval;

typedef struct ra_tcb_level {
  uint8_t sgx[16];
  uint16_t pcesvn;
  uint8_t tdx[16];
  bool has_tdx;
  uint8_t isvsvn; /* module identity levels */
  ra_tcb_status status;
  time_t date;
  char (*adv)[RA_ADVISORY_LEN];
  size_t n_adv;
} ra_tcb_level;

typedef struct ra_tdx_module_identity {
  char id[16]; /* "TDX_01" */
  uint8_t mrsigner[48], attributes[8], mask[8];
  ra_tcb_level *levels;
  size_t n_levels;
} ra_tdx_module_identity;

typedef struct ra_tcb_info {
  bool tdx; /* id "TDX", else "SGX" */
  int version;
  time_t issue, next_update;
  uint8_t fmspc[6], pceid[2];
  int tcb_type, eval_number;
  bool has_module;
  uint8_t mod_mrsigner[48], mod_attributes[8], mod_mask[8];
  ra_tdx_module_identity *ids;
  size_t n_ids;
  ra_tcb_level *levels; /* in Intel's order: highest first */
  size_t n_levels;
} ra_tcb_info;

typedef struct ra_qe_identity {
  char id[8]; /* "QE", "TD_QE", "QVE" */
  int version;
  time_t issue, next_update;
  uint32_t miscselect, miscselect_mask;
  uint8_t attributes[16], attributes_mask[16];
  uint8_t mrsigner[32];
  uint16_t isvprodid;
  int eval_number;
  ra_tcb_level *levels; /* isvsvn, status, date, advisories */
  size_t n_levels;
} ra_qe_identity;

/* One signed body: the exact bytes the signature covers, and r||s. */
typedef struct ra_signed_body {
  char *raw;
  size_t len;
  uint8_t sig[64];
  STACK_OF(X509) * chain; /* the issuer chain (signing certificate, root) */
  /* The Intel root as the chain carries it is not decoded when parsing:
   * its DER is exactly the compiled-in root's, and the verification
   * inserts the verifier's pinned object for it (or decodes it then, when
   * the verifier pins another root) at index root_at. -1: none left out. */
  int root_at;
  int sig_memo;           /* 0 unknown, 1 verified, -1 failed */
  /* the path last validated to a pinned root (signatures, shape), and the
   * window in which all its certificates are valid: reused while the
   * verification time is inside it and its root is pinned by the verifier
   * at hand */
  STACK_OF(X509) * validated;
  time_t valid_from, valid_to;
  uint8_t chain_id[32]; /* SHA-256 of the issuer chain's bytes as given */
} ra_signed_body;

struct ra_collateral {
  ra_signed_body tcb_body, qe_body;
  ra_tcb_info tcb;
  ra_qe_identity qe;
  ra_crl_set crls; /* root CA CRL and PCK CA CRL */
  uint8_t crls_id[32]; /* SHA-256 chained over each CRL's bytes as given */
  uint8_t id[32];  /* identity_internal.h: taken by finish() */
};

/* Shared parsing helpers (collateral.c). Each returns 0 or -1. */
int ra_json_time(json_t *o, const char *key, time_t *t);
int ra_json_hex(json_t *o, const char *key, uint8_t *out, size_t n);
int ra_json_int(json_t *o, const char *key, long lo, long hi, long *v);
int ra_tcb_status_parse(const char *s, ra_tcb_status *st); /* 0 or -1 */
/* "tcbDate", "tcbStatus", "advisoryIDs" of one level. */
int ra_json_level_common(json_t *lv, ra_tcb_level *l);
void ra_levels_free(ra_tcb_level *l, size_t n);
/* The exact bytes of the value of top-level member key of the JSON object
 * doc[0..len) (a PCS response: {"tcbInfo":{..},"signature":".."}), which is
 * what Intel signed. Scans without allocating; the document should have
 * been validated as JSON first (a malformed one gives -1 or a wrong span,
 * never a read outside doc). 0 or -1. */
int ra_json_raw_member(const char *doc, size_t len, const char *key, const char **v, size_t *vlen);

/* tcb_info.c */
int ra_tcb_info_parse(const char *body, size_t len, ra_tcb_info *out);
void ra_tcb_info_clear(ra_tcb_info *t);
/* Matches the quote's platform (PCK SVNs in vd->pck, tee_tcb_svn, module
 * identity) against the TCB info: records RA_CHECK_TCB, fills
 * vd->platform_status/module_status/tcb_level. */
void ra_tcb_info_check(const ra_tcb_info *t, const ra_quote *q, ra_verdict *vd,
                       ra_tcb_eval *platform, ra_tcb_eval *module);

/* qe_identity.c */
int ra_qe_identity_parse(const char *body, size_t len, ra_qe_identity *out);
void ra_qe_identity_clear(ra_qe_identity *q);
/* Records RA_CHECK_QE_IDENTITY; fills *ev with the QE's TCB status. */
void ra_qe_identity_check(const ra_qe_identity *id, const ra_quote *q, ra_verdict *vd,
                          ra_tcb_eval *ev);

/* collateral.c: RA_CHECK_COLLATERAL: both bodies' issuer chains (to a
 * pinned root, with a CRL for it from the collateral or the verifier) and
 * signatures, freshness at `at` (or allowed past nextUpdate), TCB info of
 * the quote's kind with the PCK's FMSPC and PCE ID, QE identity of the
 * quote's QE. Fills vd->collateral_expiry. False after a failure. */
bool ra_collateral_check(ra_collateral *c, const ra_roots *roots, ra_crl_set *vcrls, const ra_quote *q, time_t at,
                         const ra_policy *pol, ra_verdict *vd);

/* Intel's convergence of the platform's status with the TDX module's or
 * the QE's status. */
ra_tcb_status ra_tcb_converge(ra_tcb_status platform, ra_tcb_status other);

#endif
