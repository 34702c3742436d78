/* attest/quote/tcb_info.c: Intel's TCB info (SGX v2/v3, TDX v3): parsing,
 * and the TCB level of a platform exactly as Intel's QVL selects it:
 *  - levels in Intel's order (highest first: SGX components, then PCESVN,
 *    then for TDX the TDX components, each lexicographically), as QVL keeps
 *    them in a sorted set whatever order the JSON has;
 *  - the first level whose 16 SGX components (from the PCK certificate) and
 *    PCESVN are all >= the level's; for TDX also tee_tcb_svn >= the level's
 *    tdxtcbcomponents, where a TDX module major version (tee_tcb_svn[1]) > 0
 *    skips bytes 0-1 (the module's own SVN and version, judged by the module
 *    identity instead);
 *  - TDX module: with major version > 0 the identity "TDX_%02X" of
 *    tdxModuleIdentities (else tdxModule): MRSIGNERSEAM equal, SEAM
 *    attributes equal under the mask; its level (first isvsvn <=
 *    tee_tcb_svn[0]) gives the module status, converged with the platform's
 *    (OutOfDate makes UpToDate/SWHardeningNeeded OutOfDate and the
 *    Configuration ones OutOfDateConfigurationNeeded; Revoked wins).
 *  - no level: NotSupported. */
#include "raloop/attest/quote/collateral_internal.h"

#include "raloop/attest/quote/crypto_internal.h"
#include "raloop/attest/quote/verdict_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

void ra_tcb_info_clear(ra_tcb_info *t) {
  ra_levels_free(t->levels, t->n_levels);
  for (size_t i = 0; t->ids && i < t->n_ids; i++) ra_levels_free(t->ids[i].levels, t->ids[i].n_levels);
  free(t->ids);
  memset(t, 0, sizeof *t);
}

/* [{"svn": n, ...} x16] */
static int components(json_t *a, uint8_t out[16]) {
  if (!json_is_array(a) || json_array_size(a) != 16) return -1;
  for (size_t i = 0; i < 16; i++) {
    long v;
    if (ra_json_int(json_array_get(a, i), "svn", 0, 255, &v)) return -1;
    out[i] = (uint8_t)v;
  }
  return 0;
}

static int parse_level(json_t *lv, int version, bool tdx, ra_tcb_level *l) {
  json_t *tcb = json_object_get(lv, "tcb");
  long v;
  if (!json_is_object(tcb) || ra_json_level_common(lv, l)) return -1;
  if (ra_json_int(tcb, "pcesvn", 0, 65535, &v)) return -1;
  l->pcesvn = (uint16_t)v;
  if (version == 2) {
    for (int i = 0; i < 16; i++) {
      char k[24];
      snprintf(k, sizeof k, "sgxtcbcomp%02dsvn", i + 1);
      if (ra_json_int(tcb, k, 0, 255, &v)) return -1;
      l->sgx[i] = (uint8_t)v;
    }
    return 0;
  }
  if (components(json_object_get(tcb, "sgxtcbcomponents"), l->sgx)) return -1;
  if (tdx) {
    if (components(json_object_get(tcb, "tdxtcbcomponents"), l->tdx)) return -1;
    l->has_tdx = true;
  }
  return 0;
}

static int parse_module(json_t *m, uint8_t mrsigner[48], uint8_t attr[8], uint8_t mask[8]) {
  return json_is_object(m) && !ra_json_hex(m, "mrsigner", mrsigner, 48) &&
                 !ra_json_hex(m, "attributes", attr, 8) &&
                 !ra_json_hex(m, "attributesMask", mask, 8)
             ? 0
             : -1;
}

static int parse_module_ids(json_t *a, ra_tcb_info *t) {
  if (!a) return 0;
  if (!json_is_array(a) || json_array_size(a) > 64) return -1;
  t->n_ids = json_array_size(a);
  if (!t->n_ids) return 0;
  if (!(t->ids = calloc(t->n_ids, sizeof *t->ids))) return -1;
  for (size_t i = 0; i < t->n_ids; i++) {
    json_t *m = json_array_get(a, i), *lv;
    ra_tdx_module_identity *id = &t->ids[i];
    const char *s = json_string_value(json_object_get(m, "id"));
    if (!s || strlen(s) >= sizeof id->id) return -1;
    memcpy(id->id, s, strlen(s) + 1);
    if (parse_module(m, id->mrsigner, id->attributes, id->mask)) return -1;
    lv = json_object_get(m, "tcbLevels");
    if (!json_is_array(lv) || json_array_size(lv) == 0 || json_array_size(lv) > 256) return -1;
    id->n_levels = json_array_size(lv);
    if (!(id->levels = calloc(id->n_levels, sizeof *id->levels))) return -1;
    for (size_t j = 0; j < id->n_levels; j++) {
      json_t *x = json_array_get(lv, j), *tcb = json_object_get(x, "tcb");
      long v;
      if (!json_is_object(tcb) || ra_json_int(tcb, "isvsvn", 0, 255, &v) ||
          ra_json_level_common(x, &id->levels[j]))
        return -1;
      id->levels[j].isvsvn = (uint8_t)v;
    }
  }
  return 0;
}

static int cmp_level(const void *pa, const void *pb) {
  const ra_tcb_level *a = pa, *b = pb;
  int c = memcmp(b->sgx, a->sgx, 16);
  if (c) return c;
  if (a->pcesvn != b->pcesvn) return b->pcesvn > a->pcesvn ? 1 : -1;
  return memcmp(b->tdx, a->tdx, 16);
}

static int parse(json_t *d, ra_tcb_info *t) {
  const char *id = json_string_value(json_object_get(d, "id"));
  long v;
  json_t *lv;
  if (ra_json_int(d, "version", 2, 3, &v)) return -1;
  t->version = (int)v;
  /* v2 has no id and is SGX only */
  if (t->version == 2 ? id && strcmp(id, "SGX") : !id || (strcmp(id, "SGX") && strcmp(id, "TDX")))
    return -1;
  t->tdx = id && !strcmp(id, "TDX");
  if (ra_json_time(d, "issueDate", &t->issue) || ra_json_time(d, "nextUpdate", &t->next_update) ||
      ra_json_hex(d, "fmspc", t->fmspc, 6) || ra_json_hex(d, "pceId", t->pceid, 2))
    return -1;
  if (ra_json_int(d, "tcbEvaluationDataNumber", 0, 1L << 30, &v)) return -1;
  t->eval_number = (int)v;
  if (!ra_json_int(d, "tcbType", 0, 1L << 30, &v)) t->tcb_type = (int)v;
  if (t->tdx) {
    if (parse_module(json_object_get(d, "tdxModule"), t->mod_mrsigner, t->mod_attributes,
                     t->mod_mask))
      return -1;
    t->has_module = true;
    if (parse_module_ids(json_object_get(d, "tdxModuleIdentities"), t)) return -1;
  }
  lv = json_object_get(d, "tcbLevels");
  if (!json_is_array(lv) || json_array_size(lv) == 0 || json_array_size(lv) > 1024) return -1;
  t->n_levels = json_array_size(lv);
  if (!(t->levels = calloc(t->n_levels, sizeof *t->levels))) return -1;
  for (size_t i = 0; i < t->n_levels; i++)
    if (parse_level(json_array_get(lv, i), t->version, t->tdx, &t->levels[i])) return -1;
  qsort(t->levels, t->n_levels, sizeof *t->levels, cmp_level);
  return 0;
}

int ra_tcb_info_parse(const char *body, size_t len, ra_tcb_info *out) {
  memset(out, 0, sizeof *out);
  json_t *d = json_loadb(body, len, JSON_REJECT_DUPLICATES, NULL);
  int rc = json_is_object(d) ? parse(d, out) : -1;
  json_decref(d);
  if (rc) ra_tcb_info_clear(out);
  return rc;
}

/* ---- the level of a platform ---- */

static bool level_matches(const ra_tcb_level *l, const ra_pck_info *pck, const uint8_t *tee_svn) {
  for (int i = 0; i < 16; i++)
    if (pck->tcb_comp_svn[i] < l->sgx[i]) return false;
  if (pck->pcesvn < l->pcesvn) return false;
  if (!tee_svn) return true;
  for (int i = tee_svn[1] > 0 ? 2 : 0; i < 16; i++)
    if (tee_svn[i] < l->tdx[i]) return false;
  return true;
}

/* Intel's convergence of a platform status with a TDX module's or a QE's:
 * an out-of-date module/QE makes the platform out of date. */
static ra_tcb_status converge(ra_tcb_status platform, ra_tcb_status other) {
  if (other == RA_TCB_REVOKED) return RA_TCB_REVOKED;
  if (other == RA_TCB_NOT_SUPPORTED) return RA_TCB_NOT_SUPPORTED;
  if (other == RA_TCB_OUT_OF_DATE) {
    if (platform == RA_TCB_UP_TO_DATE || platform == RA_TCB_SW_HARDENING_NEEDED)
      return RA_TCB_OUT_OF_DATE;
    if (platform == RA_TCB_CONFIGURATION_NEEDED ||
        platform == RA_TCB_CONFIGURATION_AND_SW_HARDENING_NEEDED)
      return RA_TCB_OUT_OF_DATE_CONFIGURATION_NEEDED;
  }
  return platform;
}

ra_tcb_status ra_tcb_converge(ra_tcb_status platform, ra_tcb_status other) {
  return converge(platform, other);
}

static void hex48(const uint8_t *p, char out[97]) {
  static const char h[] = "0123456789abcdef";
  for (int i = 0; i < 48; i++) {
    out[2 * i] = h[p[i] >> 4];
    out[2 * i + 1] = h[p[i] & 15];
  }
  out[96] = '\0';
}

/* The TDX module identity; false after recording a mismatch. */
static bool check_module(const ra_tcb_info *t, const ra_td_report *td, ra_verdict *vd,
                         ra_tcb_eval *module) {
  const uint8_t *mrsigner = t->mod_mrsigner, *attr = t->mod_attributes, *mask = t->mod_mask;
  const ra_tdx_module_identity *id = NULL;
  uint8_t ver = td->tee_tcb_svn[1], isvsvn = td->tee_tcb_svn[0];
  if (ver > 0 && t->n_ids > 0) {
    char want[16];
    snprintf(want, sizeof want, "TDX_%02X", ver);
    for (size_t i = 0; i < t->n_ids && !id; i++)
      if (!strcasecmp(t->ids[i].id, want)) id = &t->ids[i];
    if (!id) {
      ra_verdict_fail(vd, RA_CHECK_TCB, RA_ERR_TDX_MODULE,
                      "the TCB info has no TDX module identity %s (module version %u)", want, ver);
      return false;
    }
    mrsigner = id->mrsigner;
    attr = id->attributes;
    mask = id->mask;
  }
  if (!ra_ct_equal(td->mr_signer_seam, mrsigner, 48)) {
    char a[97], b[97];
    hex48(td->mr_signer_seam, a);
    hex48(mrsigner, b);
    ra_verdict_fail(vd, RA_CHECK_TCB, RA_ERR_TDX_MODULE,
                    "MRSIGNERSEAM %.16s... is not the TDX module's %.16s... (%s)", a, b,
                    id ? id->id : "tdxModule");
    return false;
  }
  for (int i = 0; i < 8; i++)
    if ((td->seam_attributes[i] & mask[i]) != (attr[i] & mask[i])) {
      ra_verdict_fail(vd, RA_CHECK_TCB, RA_ERR_TDX_MODULE,
                      "SEAM attributes differ from the TDX module's under its mask (%s)",
                      id ? id->id : "tdxModule");
      return false;
    }
  if (!id) return true;
  for (size_t j = 0; j < id->n_levels; j++)
    if (isvsvn >= id->levels[j].isvsvn) {
      module->status = id->levels[j].status;
      module->date = id->levels[j].date;
      module->adv = id->levels[j].adv;
      module->n_adv = id->levels[j].n_adv;
      return true;
    }
  module->status = RA_TCB_NOT_SUPPORTED;
  return true;
}

void ra_tcb_info_check(const ra_tcb_info *t, const ra_quote *q, ra_verdict *vd,
                       ra_tcb_eval *platform, ra_tcb_eval *module) {
  const uint8_t *tee_svn = t->tdx ? q->td.tee_tcb_svn : NULL;
  memset(platform, 0, sizeof *platform);
  memset(module, 0, sizeof *module);
  vd->tcb_level = -1;
  for (size_t i = 0; i < t->n_levels; i++) {
    const ra_tcb_level *l = &t->levels[i];
    if (!level_matches(l, &vd->pck, tee_svn)) continue;
    vd->tcb_level = (int)i;
    platform->status = l->status;
    platform->date = l->date;
    platform->adv = l->adv;
    platform->n_adv = l->n_adv;
    break;
  }
  if (vd->tcb_level < 0) {
    platform->status = RA_TCB_NOT_SUPPORTED;
    ra_verdict_fail(vd, RA_CHECK_TCB, RA_ERR_TCB_NOT_SUPPORTED,
                    "TCB not supported: no TCB level of the TCB info matches the platform "
                    "(PCESVN %u)",
                    vd->pck.pcesvn);
    return;
  }
  if (t->tdx && !check_module(t, &q->td, vd, module)) return;
  if (module->status == RA_TCB_NOT_SUPPORTED) {
    ra_verdict_fail(vd, RA_CHECK_TCB, RA_ERR_TCB_NOT_SUPPORTED,
                    "TCB not supported: the TDX module's SVN %u matches no level of TDX_%02X",
                    q->td.tee_tcb_svn[0], q->td.tee_tcb_svn[1]);
    return;
  }
  ra_verdict_pass(vd, RA_CHECK_TCB);
}
