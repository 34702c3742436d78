/* attest/quote/snp_policy.c: the caller's SEV-SNP policy applied to a
 * report (snp_policy.h). Each rule records its own step in the verdict. */
#include "raloop/attest/quote/snp_policy.h"

#include <string.h>

#include <openssl/crypto.h>

#include "raloop/attest/quote/snp_internal.h"
#include "raloop/core/error.h"

static bool eq(const uint8_t *a, const uint8_t *b, size_t n) { return CRYPTO_memcmp(a, b, n) == 0; }

static bool set_matches(const ra_snp_report *r, const ra_snp_expect *e) {
  bool ok = true;
  if (e->has & RA_SNP_MEASUREMENT) ok &= eq(r->measurement, e->measurement, 48);
  if (e->has & RA_SNP_HOST_DATA) ok &= eq(r->host_data, e->host_data, 32);
  if (e->has & RA_SNP_FAMILY_ID) ok &= eq(r->family_id, e->family_id, 16);
  if (e->has & RA_SNP_IMAGE_ID) ok &= eq(r->image_id, e->image_id, 16);
  if (e->has & RA_SNP_ID_KEY_DIGEST) ok &= eq(r->id_key_digest, e->id_key_digest, 48);
  if (e->has & RA_SNP_AUTHOR_KEY_DIGEST) ok &= eq(r->author_key_digest, e->author_key_digest, 48);
  if (e->has & RA_SNP_REPORT_DATA) ok &= eq(r->report_data, e->report_data, 64);
  if (e->has & RA_SNP_MIN_GUEST_SVN) ok &= r->guest_svn >= e->min_guest_svn;
  return ok;
}

static void check_guest_policy(const ra_snp_report *r, const ra_snp_policy *pol,
                               ra_snp_verdict *vd) {
  const ra_snp_check C = RA_SNP_CHECK_GUEST_POLICY;
  if (!(r->policy & RA_SNP_POLICY_RESERVED1)) {
    ra_snp_fail(vd, C, RA_ERR_TD_ATTRIBUTES, "guest policy bit 17 (reserved, must be 1) is clear");
  } else if ((r->policy & RA_SNP_POLICY_MIGRATE_MA) && !pol->allow_migration_agent) {
    ra_snp_fail(vd, C, RA_ERR_TD_ATTRIBUTES,
                "the guest policy allows a migration agent (bit 18), which is refused");
  } else if ((r->platform_info & RA_SNP_PLATFORM_SMT_EN) && !(r->policy & RA_SNP_POLICY_SMT)) {
    ra_snp_fail(vd, C, RA_ERR_TD_ATTRIBUTES,
                "SMT is enabled on the platform but the guest policy forbids it");
  } else if ((r->platform_info & RA_SNP_PLATFORM_SMT_EN) && pol->require_no_smt) {
    ra_snp_fail(vd, C, RA_ERR_TD_ATTRIBUTES, "SMT is enabled on the platform, which is refused");
  } else {
    ra_snp_pass(vd, C);
  }
}

static void check_tcb(const ra_snp_report *r, const ra_snp_policy *pol, ra_snp_verdict *vd) {
  if (!pol->check_min_tcb) {
    ra_snp_skip(vd, RA_SNP_CHECK_TCB);
    return;
  }
  const ra_snp_tcb *t = &vd->reported_tcb, *m = &pol->min_tcb;
  bool turin = vd->product == RA_SNP_PRODUCT_TURIN;
  if (t->bootloader < m->bootloader || t->tee < m->tee || t->snp < m->snp ||
      t->microcode < m->microcode || (turin && t->fmc < m->fmc)) {
    ra_snp_fail(
        vd, RA_SNP_CHECK_TCB, RA_ERR_TCB_STATUS,
        "reported_tcb (bl %u tee %u snp %u ucode %u fmc %u) is below the minimum (bl %u tee "
        "%u snp %u ucode %u fmc %u)",
        t->bootloader, t->tee, t->snp, t->microcode, t->fmc, m->bootloader, m->tee, m->snp,
        m->microcode, m->fmc);
    return;
  }
  ra_snp_pass(vd, RA_SNP_CHECK_TCB);
}

void ra_snp_policy_apply(const ra_snp_report *r, const ra_snp_policy *pol, ra_snp_verdict *vd) {
  if ((r->policy & RA_SNP_POLICY_DEBUG) && !pol->allow_debug)
    ra_snp_fail(vd, RA_SNP_CHECK_DEBUG, RA_ERR_DEBUG,
                "the guest policy allows debugging (bit 19): the host can read its memory");
  else
    ra_snp_pass(vd, RA_SNP_CHECK_DEBUG);

  check_guest_policy(r, pol, vd);

  if (!pol->check_vmpl)
    ra_snp_skip(vd, RA_SNP_CHECK_VMPL);
  else if (r->vmpl > pol->max_vmpl)
    ra_snp_fail(vd, RA_SNP_CHECK_VMPL, RA_ERR_MEASUREMENT, "VMPL %u is above the maximum %u",
                r->vmpl, pol->max_vmpl);
  else
    ra_snp_pass(vd, RA_SNP_CHECK_VMPL);

  check_tcb(r, pol, vd);

  /* measurements: any-of; an empty set would accept anything */
  bool identified = false;
  if (pol->n_sets) {
    identified = true;
    int match = -1;
    bool empty = !pol->sets;
    for (size_t i = 0; !empty && i < pol->n_sets; i++) {
      if (!pol->sets[i].has)
        empty = true;
      else if (match < 0 && set_matches(r, &pol->sets[i]))
        match = (int)i;
    }
    if (empty)
      ra_snp_fail(vd, RA_SNP_CHECK_MEASUREMENTS, RA_ERR_POLICY_EMPTY,
                  "a measurement set compares nothing");
    else if (match < 0)
      ra_snp_fail(vd, RA_SNP_CHECK_MEASUREMENTS, RA_ERR_MEASUREMENT,
                  "no accepted set matches the report (%zu tried)", pol->n_sets);
    else
      ra_snp_pass(vd, RA_SNP_CHECK_MEASUREMENTS);
    vd->matched_set = match;
  }

  if (pol->x25519_pub) {
    identified = true;
    uint8_t want[64];
    if (!pol->nonce) {
      ra_snp_fail(vd, RA_SNP_CHECK_BINDING, RA_ERR_BINDING,
                  "no nonce to check the key binding with");
    } else if (ra_snp_binding(pol->nonce, pol->nonce_len, pol->x25519_pub, want) != 0) {
      ra_snp_fail(vd, RA_SNP_CHECK_BINDING, RA_ERR_INTERNAL, "SHA-512 failed");
    } else if (!eq(want, r->report_data, 64)) {
      ra_snp_fail(vd, RA_SNP_CHECK_BINDING, RA_ERR_BINDING,
                  "report_data is not SHA-512(nonce || X25519 key)");
    } else {
      ra_snp_pass(vd, RA_SNP_CHECK_BINDING);
    }
  } else {
    ra_snp_skip(vd, RA_SNP_CHECK_BINDING);
  }

  if (!identified && !pol->callback && !pol->signature_only) {
    ra_snp_fail(vd, RA_SNP_CHECK_MEASUREMENTS, RA_ERR_POLICY_EMPTY,
                "the policy checks nothing that identifies the guest (no measurement set, no key "
                "binding, no callback) and is not signature_only");
  } else if (!pol->n_sets) {
    ra_snp_skip(vd, RA_SNP_CHECK_MEASUREMENTS);
  }

  if (!pol->callback) {
    ra_snp_skip(vd, RA_SNP_CHECK_CALLBACK);
  } else if (vd->err) {
    vd->checks[RA_SNP_CHECK_CALLBACK] = RA_CHECK_NOT_RUN;
  } else {
    char saved[sizeof vd->msg];
    memcpy(saved, vd->msg, sizeof saved);
    vd->msg[0] = '\0';
    if (pol->callback(r, vd, pol->callback_ud) != 0) {
      if (!vd->msg[0]) memcpy(vd->msg, "the callback refused the report", 32);
      char why[sizeof vd->msg];
      memcpy(why, vd->msg, sizeof why);
      ra_snp_fail(vd, RA_SNP_CHECK_CALLBACK, RA_ERR_CALLBACK, "%s", why);
    } else {
      memcpy(vd->msg, saved, sizeof saved);
      ra_snp_pass(vd, RA_SNP_CHECK_CALLBACK);
    }
  }
}
