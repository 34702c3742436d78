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
  }
  m->next = 0;
}

static bool memo_has(const ra_qe_sig_memo *m, const ra_quote *q, X509 *leaf) {
  for (int i = 0; m && i < RA_QE_SIG_MEMO; i++) {
    const struct ra_qe_sig_entry *e = &m->e[i];
    if (e->leaf == leaf && !memcmp(e->report, q->qe_report.raw, RA_SGX_REPORT_LEN) &&
        !memcmp(e->sig, q->qe_report_sig, 64))
      return true;
  }
  return false;
}

static void memo_put(ra_qe_sig_memo *m, const ra_quote *q, X509 *leaf) {
  if (!m || !X509_up_ref(leaf)) return;
  struct ra_qe_sig_entry *e = &m->e[m->next++ % RA_QE_SIG_MEMO];
  X509_free(e->leaf);
  e->leaf = leaf;
  memcpy(e->report, q->qe_report.raw, RA_SGX_REPORT_LEN);
  memcpy(e->sig, q->qe_report_sig, 64);
}

void ra_qe_check_signature(const ra_quote *q, X509 *pck_leaf, ra_qe_sig_memo *memo,
                           ra_verdict *vd) {
  if (memo_has(memo, q, pck_leaf)) {
    ra_verdict_pass(vd, RA_CHECK_QE_SIG);
    return;
  }
  EVP_PKEY *pk = X509_get0_pubkey(pck_leaf);
  if (ra_is_p256(pk) &&
      ra_ecdsa_p256_verify(pk, q->qe_report.raw, RA_SGX_REPORT_LEN, q->qe_report_sig)) {
    ra_verdict_pass(vd, RA_CHECK_QE_SIG);
    memo_put(memo, q, pck_leaf);
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
