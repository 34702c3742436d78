/* apps/common/policy_flags.h: the verification-policy flags of the
 * programs (ra-quote verify/bench, ra-curl, ra-bench), parsed in one place.
 *
 * Flags come in groups; a program accepts the groups it names, so that
 * each keeps exactly the flags it always had:
 *   POLICY_FLAGS_BASIC   --root PEM, --mrtd HEX, --rtmr0..3 HEX,
 *                        --report-data HEX, --allow-debug
 *   POLICY_FLAGS_TUNNEL  --trust-sim DIR, --no-binding,
 *                        --any-measurement-insecure           (ra-curl, ra-bench)
 *   POLICY_FLAGS_QUOTE   --pck-chain PEM, --crl FILE, --at TIME, --mr-config-id,
 *                        --mr-owner, --mr-owner-config, --xfam, --td-attributes,
 *                        --mr-enclave, --mr-signer, --isv-prod-id N,
 *                        --min-isv-svn N, --x25519 HEX, --binding-val HEX,
 *                        --binding-iat HEX                        (ra-quote)
 *   POLICY_FLAGS_COLLATERAL --collateral PATH, --accept-tcb LIST,
 *                        --allow-advisory ID (repeatable), --allow-expired-collateral,
 *                        --require-sept-ve-disable, --allow-mr-servicetd
 *                        (ra-quote, ra-curl, ra-bench: build the policy with
 *                        policy_flags_collateral_policy() and load the
 *                        collateral with policy_flags_load_collateral())
 *   POLICY_FLAGS_PCCS    --pccs URL, --collateral-cache DIR, --no-collateral-cache,
 *                        --ca-file PEM: fetch the collateral for the server's
 *                        quote from a PCCS / Intel's PCS (ra-curl, ra-bench;
 *                        with POLICY_FLAGS_COLLATERAL; --pccs and --collateral
 *                        exclude each other: policy_flags_check_collateral())
 *   POLICY_FLAGS_DSTACK  --app-id HEX, --compose-hash HEX: identities read
 *                        from a dstack event log (ra-hello's client policy)
 *   POLICY_FLAGS_SNP     AMD SEV-SNP servers: --sev-measurement HEX (48
 *                        bytes; repeatable, any of them), --sev-host-data
 *                        HEX (32 bytes), each also spelt as ra-quote does
 *                        (--snp-measurement, --snp-host-data),
 *                        --trust-snp-sim DIR (pin the simulated SNP TEE's
 *                        ARK, DIR/snp-ark.pem), --snp-ark PEM (pin another
 *                        ARK; repeatable). --allow-debug (BASIC) applies to
 *                        SEV-SNP too. Build the policy with
 *                        policy_flags_snp_policy().            (ra-curl)
 * A prefix (pf->prefix, e.g. "--client-") renames every flag of the
 * accepted groups: --mrtd becomes --client-mrtd, --trust-sim
 * --client-trust-sim (ra-hello's policy for the clients of its tunnel,
 * next to flags of its own); the unprefixed names are then not accepted.
 * Parsing only records what was asked; the programs build their verifier
 * and ra_policy from it (they differ in defaults and in what they refuse).
 * Errors are recorded, not printed: each program words them as it always
 * has. Strings (paths) are borrowed from argv. */
#ifndef RA_APPS_POLICY_FLAGS_H
#define RA_APPS_POLICY_FLAGS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "raloop/attest/quote/snp_policy.h"
#include "raloop/attest/quote/verify.h"

enum {
  POLICY_FLAGS_BASIC = 1u << 0,
  POLICY_FLAGS_TUNNEL = 1u << 1,
  POLICY_FLAGS_QUOTE = 1u << 2,
  POLICY_FLAGS_COLLATERAL = 1u << 3,
  POLICY_FLAGS_PCCS = 1u << 4,
  POLICY_FLAGS_DSTACK = 1u << 5,
  POLICY_FLAGS_SNP = 1u << 6,
};

#define POLICY_FLAGS_MAX_SNP_SETS 8
#define POLICY_FLAGS_MAX_SNP_ARKS 4

#define POLICY_FLAGS_MAX_ROOTS 16
#define POLICY_FLAGS_MAX_CRLS  16
#define POLICY_FLAGS_MAX_ADVISORIES 32

/* What went wrong with the last flag (policy_flags_parse/_apply < 0). */
typedef enum policy_flag_error {
  POLICY_FLAG_OK = 0,
  POLICY_FLAG_NO_VALUE,   /* the flag takes a value and none followed */
  POLICY_FLAG_BAD_HEX,    /* not exactly `bytes` bytes of hex */
  POLICY_FLAG_BAD_HEX_VAR, /* not hex of at most `bytes` bytes */
  POLICY_FLAG_BAD_NUMBER, /* not an integer 0..65535 */
  POLICY_FLAG_BAD_TIME,   /* not YYYY-MM-DD[THH:MM:SS[Z]] or @unix */
  POLICY_FLAG_TOO_MANY,   /* more --root / --crl / --allow-advisory than allowed */
  POLICY_FLAG_BAD_STATUS, /* --accept-tcb: not a comma-separated list of Intel's TCB statuses */
} policy_flag_error;

/* One flag of the table. */
typedef struct policy_flag {
  const char *name; /* "--mrtd" */
  bool has_value;
  unsigned group;   /* POLICY_FLAGS_* */
  int id;           /* internal */
} policy_flag;

typedef struct policy_flags {
  /* set by the program before parsing */
  unsigned groups;  /* POLICY_FLAGS_* accepted */
  size_t max_roots; /* 0: POLICY_FLAGS_MAX_ROOTS */
  const char *prefix; /* NULL: the names as in the table; "--client-": --client-mrtd ... */

  const char *roots[POLICY_FLAGS_MAX_ROOTS];
  size_t n_roots;
  const char *crls[POLICY_FLAGS_MAX_CRLS];
  size_t n_crls;
  const char *pck_chain;
  const char *trust_sim_dir;
  time_t at; /* 0: now */
  /* --report-data is recorded in both: it applies to either kind of quote */
  ra_tdx_expect tdx;
  ra_sgx_expect sgx;
  uint8_t x25519[32];
  bool has_x25519;
  uint8_t bval[256], biat[256];
  size_t bval_len, biat_len;
  bool has_bval, has_biat;
  bool allow_debug, no_binding, any_measurement;
  /* POLICY_FLAGS_COLLATERAL */
  const char *collateral;
  unsigned accept_tcb; /* RA_TCB_ACCEPT bits; 0: the library's default (UpToDate) */
  const char *advisories[POLICY_FLAGS_MAX_ADVISORIES];
  size_t n_advisories;
  bool allow_expired_collateral, require_sept_ve_disable, allow_mr_servicetd;
  /* POLICY_FLAGS_PCCS */
  const char *pccs, *collateral_cache, *ca_file;
  bool no_collateral_cache;
  /* POLICY_FLAGS_DSTACK (at most 32 bytes each) */
  uint8_t app_id[32], compose_hash[32];
  size_t app_id_len, compose_hash_len;
  bool has_app_id, has_compose_hash;
  /* POLICY_FLAGS_SNP */
  uint8_t snp_measurements[POLICY_FLAGS_MAX_SNP_SETS][48];
  size_t n_snp_measurements;
  uint8_t snp_host_data[32];
  bool has_snp_host_data;
  const char *trust_snp_sim_dir;
  const char *snp_arks[POLICY_FLAGS_MAX_SNP_ARKS];
  size_t n_snp_arks;
  bool any_snp; /* a flag of the SNP group was given */
  /* any flag of the accepted groups was given */
  bool any;

  /* the last error */
  policy_flag_error error;
  const char *error_flag; /* the flag's name as the command line spells it */
  char error_flag_buf[64]; /* (with a prefix, error_flag points here) */
  size_t error_bytes;     /* for BAD_HEX(_VAR): the bytes wanted / at most */
} policy_flags;

/* Zeroes pf and sets the accepted groups. */
void policy_flags_init(policy_flags *pf, unsigned groups);

/* The table, for programs that hand it to getopt_long: *n entries. */
const policy_flag *policy_flags_table(size_t *n);

/* The flag of an accepted group named exactly `arg`, or NULL. */
const policy_flag *policy_flags_find(const policy_flags *pf, const char *arg);

/* Records flag f with value (NULL for flags without one). Returns 0, or -1
 * with pf->error set. */
int policy_flags_apply(policy_flags *pf, const policy_flag *f, const char *value);

/* For argv loops: arg is the current argument, next the one after it (NULL
 * at the end). Returns 0 when arg is not a policy flag of an accepted
 * group, 1 when it was a flag without value, 2 when it consumed next too,
 * -1 with pf->error set. */
int policy_flags_parse(policy_flags *pf, const char *arg, const char *next);

/* Copies the collateral part of the flags into pol (accept_tcb, allowed
 * advisories: pointers into pf, valid as long as pf is; the flags). */
void policy_flags_collateral_policy(const policy_flags *pf, ra_policy *pol);

/* Loads --collateral (when given) into *out (NULL otherwise). Returns 0 or
 * the code of ra_collateral_load. */
int policy_flags_load_collateral(const policy_flags *pf, ra_collateral **out);

/* NULL when the collateral flags go together, else what is wrong:
 * "--pccs and --collateral exclude each other", "--collateral-cache,
 * --no-collateral-cache and --ca-file need --pccs". */
const char *policy_flags_check_collateral(const policy_flags *pf);

/* The SEV-SNP policy of the SNP flags: one set per --sev-measurement (each
 * with --sev-host-data when given), or one set of --sev-host-data alone;
 * allow_debug. sets (POLICY_FLAGS_MAX_SNP_SETS entries) holds the sets
 * pol points to. Returns the number of sets (0: no expected fields). */
size_t policy_flags_snp_policy(const policy_flags *pf, ra_snp_expect *sets, ra_snp_policy *pol);

/* "UpToDate,SWHardeningNeeded" -> RA_TCB_ACCEPT bits. Returns 0 or -1. */
int policy_flags_parse_statuses(const char *s, unsigned *bits);

/* --at's format: YYYY-MM-DD[THH:MM:SS[Z]] (also with a space), or @unix.
 * Returns 0 or -1. */
int policy_flags_parse_time(const char *s, time_t *t);

#endif
