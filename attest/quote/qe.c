/* attest/quote/qe.c: the QE report of a quote. */
#include "raloop/attest/quote/qe_internal.h"

#include "raloop/attest/quote/crypto_internal.h"
#include "raloop/attest/quote/verdict_internal.h"

#include <openssl/err.h>

#include <string.h>

void ra_qe_sig_memo_clear(ra_qe_sig_memo *m) {
  for (int i = 0; i < RA_QE_SIG_MEMO; i++) {
    X509_free(m->e[i].leaf);
    m->e[i].leaf = NULL;
    m->e[i].by_point = false;
  }
  m->next = 0;
}

/* The entry's key: the leaf object, or (point != NULL) the key's point. */
static bool same_key(const struct ra_qe_sig_entry *e, X509 *leaf, const uint8_t *point) {
  return point ? e->by_point && !memcmp(e->point, point, 64) : !e->by_point && e->leaf == leaf;
}

static bool memo_has(const ra_qe_sig_memo *m, const ra_quote *q, X509 *leaf,
                     const uint8_t *point) {
  for (int i = 0; m && i < RA_QE_SIG_MEMO; i++) {
    const struct ra_qe_sig_entry *e = &m->e[i];
    if ((e->leaf || e->by_point) && same_key(e, leaf, point) &&
        !memcmp(e->report, q->qe_report.raw, RA_SGX_REPORT_LEN) &&
        !memcmp(e->sig, q->qe_report_sig, 64))
      return true;
  }
  return false;
}

static void memo_put(ra_qe_sig_memo *m, const ra_quote *q, X509 *leaf, const uint8_t *point) {
  if (!m || (leaf && !X509_up_ref(leaf))) return;
  struct ra_qe_sig_entry *e = &m->e[m->next++ % RA_QE_SIG_MEMO];
  X509_free(e->leaf);
  e->leaf = leaf;
  e->by_point = point != NULL;
  if (point) memcpy(e->point, point, 64);
  memcpy(e->report, q->qe_report.raw, RA_SGX_REPORT_LEN);
  memcpy(e->sig, q->qe_report_sig, 64);
}

bool ra_qe_check_signature_xy(const ra_quote *q, const uint8_t point[64], ra_qe_sig_memo *memo,
                              ra_verdict *vd) {
  bool ok = memo_has(memo, q, NULL, point);
  if (!ok) {
    ok = ra_ecdsa_p256_verify_xy(point, q->qe_report.raw, RA_SGX_REPORT_LEN, q->qe_report_sig) ==
         1;
    if (ok) memo_put(memo, q, NULL, point);
  }
  if (ok) ra_verdict_pass(vd, RA_CHECK_QE_SIG);
  return ok;
}

void ra_qe_check_signature(const ra_quote *q, X509 *pck_leaf, ra_qe_sig_memo *memo,
                           ra_verdict *vd) {
  if (memo_has(memo, q, pck_leaf, NULL)) {
    ra_verdict_pass(vd, RA_CHECK_QE_SIG);
    return;
  }
  EVP_PKEY *pk = X509_get0_pubkey(pck_leaf);
  if (ra_is_p256(pk) &&
      ra_ecdsa_p256_verify(pk, q->qe_report.raw, RA_SGX_REPORT_LEN, q->qe_report_sig)) {
    ra_verdict_pass(vd, RA_CHECK_QE_SIG);
    memo_put(memo, q, pck_leaf, NULL);
  } else
    ra_verdict_fail(vd, RA_CHECK_QE_SIG, RA_ERR_QE_REPORT_SIGNATURE,
                    "QE report signature does not verify with the PCK key");
  ERR_clear_error();
}

void ra_qe_check_report_data(const ra_quote *q, ra_verdict *vd) {
  static const uint8_t zero[32];
  uint8_t h[32];
  ra_hash_part parts[] = {{q->att_key, 64}, {q->qe_auth_data.bytes, q->qe_auth_data.len}};
  if (!ra_hash_parts(EVP_sha256(), parts, 2, h))
    ra_verdict_fail(vd, RA_CHECK_QE_DATA, RA_ERR_INTERNAL, "cannot hash the attestation key");
  else if (!ra_ct_equal(h, q->qe_report.report_data, 32) ||
           !ra_ct_equal(zero, q->qe_report.report_data + 32, 32))
    ra_verdict_fail(vd, RA_CHECK_QE_DATA, RA_ERR_QE_REPORT_DATA,
                    "QE report_data != SHA-256(attestation key || QE auth data) || 0^32");
  /* A debug QE's attestation key can be read by whoever runs it: what it
   * signs proves nothing. Intel's QE identity (not evaluated here) says the
   * same; allow_debug is about the application, never the QE. */
  else if (q->qe_report.attributes[0] & 0x02)
    ra_verdict_fail(vd, RA_CHECK_QE_DATA, RA_ERR_QE_DEBUG,
                    "the QE report comes from a debug quoting enclave (attributes bit 1)");
  else
    ra_verdict_pass(vd, RA_CHECK_QE_DATA);
}
