/* attest/quote/qe_identity.c: Intel's QE identity (enclave identity v2, id
 * "QE" for SGX, "TD_QE" for TDX): parsing, and the QE report of a quote
 * against it as Intel's QVL does: MRSIGNER equal, ISVPRODID equal,
 * MISCSELECT and ATTRIBUTES equal under their masks; the QE's TCB status is
 * that of the first level (highest isvsvn first) whose isvsvn <= the QE's
 * ISVSVN, Revoked when there is none. */
#include "raloop/attest/quote/collateral_internal.h"

#include "raloop/attest/quote/crypto_internal.h"
#include "raloop/attest/quote/verdict_internal.h"

#include <stdlib.h>
#include <string.h>

void ra_qe_identity_clear(ra_qe_identity *q) {
  ra_levels_free(q->levels, q->n_levels);
  memset(q, 0, sizeof *q);
}

static int parse(json_t *d, ra_qe_identity *q) {
  const char *id = json_string_value(json_object_get(d, "id"));
  uint8_t m[4], mm[4];
  long v;
  json_t *lv;
  if (!id || strlen(id) >= sizeof q->id) return -1;
  memcpy(q->id, id, strlen(id) + 1);
  if (ra_json_int(d, "version", 2, 2, &v)) return -1;
  q->version = (int)v;
  if (ra_json_time(d, "issueDate", &q->issue) || ra_json_time(d, "nextUpdate", &q->next_update) ||
      ra_json_hex(d, "miscselect", m, 4) || ra_json_hex(d, "miscselectMask", mm, 4) ||
      ra_json_hex(d, "attributes", q->attributes, 16) ||
      ra_json_hex(d, "attributesMask", q->attributes_mask, 16) ||
      ra_json_hex(d, "mrsigner", q->mrsigner, 32) ||
      ra_json_int(d, "isvprodid", 0, 65535, &v))
    return -1;
  q->isvprodid = (uint16_t)v;
  /* the bytes as they lie in the report (little-endian u32) */
  q->miscselect = (uint32_t)m[0] | (uint32_t)m[1] << 8 | (uint32_t)m[2] << 16 | (uint32_t)m[3] << 24;
  q->miscselect_mask =
      (uint32_t)mm[0] | (uint32_t)mm[1] << 8 | (uint32_t)mm[2] << 16 | (uint32_t)mm[3] << 24;
  if (!ra_json_int(d, "tcbEvaluationDataNumber", 0, 1L << 30, &v)) q->eval_number = (int)v;
  lv = json_object_get(d, "tcbLevels");
  if (!json_is_array(lv) || json_array_size(lv) == 0 || json_array_size(lv) > 256) return -1;
  q->n_levels = json_array_size(lv);
  if (!(q->levels = calloc(q->n_levels, sizeof *q->levels))) return -1;
  for (size_t j = 0; j < q->n_levels; j++) {
    json_t *x = json_array_get(lv, j), *tcb = json_object_get(x, "tcb");
    if (!json_is_object(tcb) || ra_json_int(tcb, "isvsvn", 0, 65535, &v) ||
        ra_json_level_common(x, &q->levels[j]))
      return -1;
    q->levels[j].pcesvn = (uint16_t)v; /* a QE level's 16-bit isvsvn is kept in pcesvn */
  }
  /* highest isvsvn first (stable), whatever order the JSON has */
  for (size_t a = 1; a < q->n_levels; a++)
    for (size_t b = a; b > 0 && q->levels[b - 1].pcesvn < q->levels[b].pcesvn; b--) {
      ra_tcb_level t = q->levels[b];
      q->levels[b] = q->levels[b - 1];
      q->levels[b - 1] = t;
    }
  return 0;
}

int ra_qe_identity_parse(const char *body, size_t len, ra_qe_identity *out) {
  memset(out, 0, sizeof *out);
  json_t *d = json_loadb(body, len, JSON_REJECT_DUPLICATES, NULL);
  int rc = json_is_object(d) ? parse(d, out) : -1;
  json_decref(d);
  if (rc) ra_qe_identity_clear(out);
  return rc;
}

void ra_qe_identity_check(const ra_qe_identity *id, const ra_quote *q, ra_verdict *vd,
                          ra_tcb_eval *ev) {
  const ra_sgx_report *r = &q->qe_report;
  memset(ev, 0, sizeof *ev);
  if (!ra_ct_equal(r->mr_signer, id->mrsigner, 32)) {
    ra_verdict_fail(vd, RA_CHECK_QE_IDENTITY, RA_ERR_QE_IDENTITY,
                    "the QE's MRSIGNER is not the one of Intel's QE identity (%s)", id->id);
    return;
  }
  if (r->isv_prod_id != id->isvprodid) {
    ra_verdict_fail(vd, RA_CHECK_QE_IDENTITY, RA_ERR_QE_IDENTITY,
                    "the QE's ISVPRODID %u is not %u", r->isv_prod_id, id->isvprodid);
    return;
  }
  if ((r->misc_select & id->miscselect_mask) != (id->miscselect & id->miscselect_mask)) {
    ra_verdict_fail(vd, RA_CHECK_QE_IDENTITY, RA_ERR_QE_IDENTITY,
                    "the QE's MISCSELECT differs under the QE identity's mask");
    return;
  }
  for (int i = 0; i < 16; i++)
    if ((r->attributes[i] & id->attributes_mask[i]) != (id->attributes[i] & id->attributes_mask[i])) {
      ra_verdict_fail(vd, RA_CHECK_QE_IDENTITY, RA_ERR_QE_IDENTITY,
                      "the QE's ATTRIBUTES differ under the QE identity's mask (byte %d)", i);
      return;
    }
  ev->status = RA_TCB_REVOKED; /* below every level: Intel's "ISVSVN revoked" */
  for (size_t j = 0; j < id->n_levels; j++)
    if (r->isv_svn >= id->levels[j].pcesvn) {
      ev->status = id->levels[j].status;
      ev->date = id->levels[j].date;
      ev->adv = id->levels[j].adv;
      ev->n_adv = id->levels[j].n_adv;
      break;
    }
  ra_verdict_pass(vd, RA_CHECK_QE_IDENTITY);
}
