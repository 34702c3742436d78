/* attest/quote/identity_internal.h: what a verdict depends on besides the
 * quote and the policy, as fixed-size identities for ra_vcache: the
 * verifier's configuration (pinned roots, CRLs) and a collateral's bytes.
 * Private to attest/quote. */
#ifndef RA_ATTEST_IDENTITY_INTERNAL_H
#define RA_ATTEST_IDENTITY_INTERNAL_H

#include <stdint.h>

#include "raloop/attest/quote/collateral.h"
#include "raloop/attest/quote/verify.h"

/* SHA-256 chained over every root and CRL blob added to v, in order (the
 * default root included): two verifiers with the same id give the same
 * verdicts. 32 bytes, valid while v lives; changes with every add. */
const uint8_t *ra_verifier_config_id(const ra_verifier *v);

/* SHA-256 over everything a collateral holds that a verdict can depend on
 * (both signed bodies and signatures, their issuer chains, the CRLs), taken
 * when it was loaded (it is immutable after). 32 bytes. */
const uint8_t *ra_collateral_id(const ra_collateral *c);

#endif
