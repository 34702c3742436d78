/* attest/quote.c: bounds-checked, zero-copy DCAP quote parser. */
#include "raloop/attest/quote/quote.h"

#include <string.h>

/* A read cursor over [p, end). A nested region (a length-prefixed field)
 * gets its own cursor; running past a region's end is malformed, running
 * past the whole buffer is truncation. */
typedef struct cur {
  const uint8_t *p, *end;
  int overrun; /* error to report when a read runs past end */
} cur;

static int take(cur *c, size_t n, const uint8_t **out) {
  if ((size_t)(c->end - c->p) < n) {
    *out = NULL;
    return c->overrun ? c->overrun : RA_ERR_QUOTE_MALFORMED;
  }
  *out = c->p;
  c->p += n;
  return 0;
}

static int u16le(cur *c, uint16_t *v) {
  const uint8_t *b = NULL;
  int rc = take(c, 2, &b);
  if (rc) return rc;
  *v = (uint16_t)(b[0] | b[1] << 8);
  return 0;
}

static int u32le(cur *c, uint32_t *v) {
  const uint8_t *b = NULL;
  int rc = take(c, 4, &b);
  if (rc) return rc;
  *v = (uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 | (uint32_t)b[3] << 24;
  return 0;
}

static uint16_t rd16(const uint8_t *b) { return (uint16_t)(b[0] | b[1] << 8); }
static uint32_t rd32(const uint8_t *b) {
  return (uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 | (uint32_t)b[3] << 24;
}

static void sgx_report(const uint8_t *r, ra_sgx_report *o) {
  o->raw = r;
  o->cpu_svn = r;
  o->misc_select = rd32(r + 16);
  o->isv_ext_prod_id = r + 32;
  o->attributes = r + 48;
  o->mr_enclave = r + 64;
  o->mr_signer = r + 128;
  o->config_id = r + 192;
  o->isv_prod_id = rd16(r + 256);
  o->isv_svn = rd16(r + 258);
  o->config_svn = rd16(r + 260);
  o->isv_family_id = r + 304;
  o->report_data = r + 320;
}

static void td_report(const uint8_t *r, int td15, ra_td_report *o) {
  o->tee_tcb_svn = r;
  o->mr_seam = r + 16;
  o->mr_signer_seam = r + 64;
  o->seam_attributes = r + 112;
  o->td_attributes = r + 120;
  o->xfam = r + 128;
  o->mrtd = r + 136;
  o->mr_config_id = r + 184;
  o->mr_owner = r + 232;
  o->mr_owner_config = r + 280;
  for (int i = 0; i < 4; i++) o->rtmr[i] = r + 328 + 48 * i;
  o->report_data = r + 520;
  o->tee_tcb_svn2 = td15 ? r + 584 : NULL;
  o->mr_servicetd = td15 ? r + 600 : NULL;
}

/* certification data header: u16 type, u32 size, then size bytes (a
 * region of its own inside c). */
static int cert_data(cur *c, uint16_t *type, cur *inner) {
  uint32_t size = 0;
  const uint8_t *d = NULL;
  int rc;
  if ((rc = u16le(c, type)) || (rc = u32le(c, &size)) || (rc = take(c, size, &d))) return rc;
  inner->p = d;
  inner->end = d + size;
  inner->overrun = RA_ERR_QUOTE_MALFORMED;
  return 0;
}

/* QE report | its signature | u16 auth len | auth data (common to SGX v3
 * signature data and TDX type-6 certification data) */
static int qe_part(cur *c, ra_quote *q) {
  const uint8_t *rep = NULL, *sig = NULL, *auth = NULL;
  uint16_t alen = 0;
  int rc;
  if ((rc = take(c, RA_SGX_REPORT_LEN, &rep)) || (rc = take(c, 64, &sig)) ||
      (rc = u16le(c, &alen)) || (rc = take(c, alen, &auth)))
    return rc;
  sgx_report(rep, &q->qe_report);
  q->qe_report_sig = sig;
  q->qe_auth_data.bytes = auth;
  q->qe_auth_data.len = alen;
  return 0;
}

int ra_quote_parse(const uint8_t *buf, size_t len, ra_quote *q) {
  cur c;
  const uint8_t *h, *body;
  uint32_t body_len, sig_len;
  int rc;

  memset(q, 0, sizeof *q);
  if (!buf) return len ? RA_ERR_QUOTE_MALFORMED : RA_ERR_QUOTE_TRUNCATED;
  c.p = buf;
  c.end = buf + len;
  c.overrun = RA_ERR_QUOTE_TRUNCATED;
  if ((rc = take(&c, RA_QUOTE_HEADER_LEN, &h))) return rc;
  q->header = h;
  q->version = rd16(h);
  q->att_key_type = rd16(h + 2);
  q->tee_type = rd32(h + 4);
  q->qe_svn = rd16(h + 8);
  q->pce_svn = rd16(h + 10);
  q->qe_vendor_id = h + 12;
  q->user_data = h + 28;

  if (q->att_key_type != RA_ATT_KEY_ECDSA_P256) return RA_ERR_QUOTE_UNSUPPORTED;
  switch (q->version) {
  case 3:
    /* v3 bytes 4..8 are reserved; only SGX has v3 quotes */
    if (q->tee_type != RA_TEE_SGX) return RA_ERR_QUOTE_UNSUPPORTED;
    q->body_type = RA_BODY_SGX;
    body_len = RA_SGX_REPORT_LEN;
    break;
  case 4:
    if (q->tee_type == RA_TEE_TDX) {
      q->body_type = RA_BODY_TD10;
      body_len = RA_TD10_REPORT_LEN;
    } else if (q->tee_type == RA_TEE_SGX) {
      q->body_type = RA_BODY_SGX;
      body_len = RA_SGX_REPORT_LEN;
    } else {
      return RA_ERR_QUOTE_UNSUPPORTED;
    }
    break;
  case 5: {
    uint16_t bt;
    if (q->tee_type != RA_TEE_TDX && q->tee_type != RA_TEE_SGX) return RA_ERR_QUOTE_UNSUPPORTED;
    if ((rc = u16le(&c, &bt)) || (rc = u32le(&c, &body_len))) return rc;
    if (bt == RA_BODY_SGX && q->tee_type == RA_TEE_SGX) {
      if (body_len != RA_SGX_REPORT_LEN) return RA_ERR_QUOTE_MALFORMED;
    } else if (bt == RA_BODY_TD10 && q->tee_type == RA_TEE_TDX) {
      if (body_len != RA_TD10_REPORT_LEN) return RA_ERR_QUOTE_MALFORMED;
    } else if (bt == RA_BODY_TD15 && q->tee_type == RA_TEE_TDX) {
      if (body_len != RA_TD15_REPORT_LEN) return RA_ERR_QUOTE_MALFORMED;
    } else {
      return RA_ERR_QUOTE_UNSUPPORTED;
    }
    q->body_type = bt;
    break;
  }
  default:
    return RA_ERR_QUOTE_UNSUPPORTED;
  }

  if ((rc = take(&c, body_len, &body))) return rc;
  q->body.bytes = body;
  q->body.len = body_len;
  q->signed_data.bytes = buf;
  q->signed_data.len = (size_t)(c.p - buf);
  if (q->body_type == RA_BODY_SGX)
    sgx_report(body, &q->enclave);
  else
    td_report(body, q->body_type == RA_BODY_TD15, &q->td);

  const uint8_t *sd;
  if ((rc = u32le(&c, &sig_len)) || (rc = take(&c, sig_len, &sd))) return rc;
  q->sig_data.bytes = sd;
  q->sig_data.len = sig_len;
  q->quote_len = (size_t)(c.p - buf);
  q->trailing = len - q->quote_len;

  /* Inside the signature data every length must fit the declared size. */
  cur s = {sd, sd + sig_len, RA_ERR_QUOTE_MALFORMED};
  cur cd;
  uint16_t type;
  if ((rc = take(&s, 64, &q->signature)) || (rc = take(&s, 64, &q->att_key))) return rc;
  if (q->version == 3) {
    if ((rc = qe_part(&s, q))) return rc;
    if ((rc = cert_data(&s, &type, &cd))) return rc;
    q->outer_cert_type = type;
  } else {
    /* v4/v5: the QE part is wrapped in certification data of type 6 */
    cur inner;
    if ((rc = cert_data(&s, &type, &cd))) return rc;
    q->outer_cert_type = type;
    if (type != RA_CERT_QE_REPORT) return RA_ERR_QUOTE_UNSUPPORTED;
    if ((rc = qe_part(&cd, q))) return rc;
    if ((rc = cert_data(&cd, &type, &inner))) return rc;
    if (cd.p != cd.end) return RA_ERR_QUOTE_MALFORMED;
    cd = inner;
  }
  if (s.p != s.end) return RA_ERR_QUOTE_MALFORMED;
  if (type == RA_CERT_QE_REPORT) return RA_ERR_QUOTE_MALFORMED; /* no nesting twice */
  q->cert_type = type;
  q->cert_data.bytes = cd.p;
  q->cert_data.len = (size_t)(cd.end - cd.p);
  return 0;
}

int ra_quote_is_debug(const ra_quote *q) {
  if (q->body_type == RA_BODY_SGX) return (q->enclave.attributes[0] & 0x02) != 0;
  /* TD attributes bits 7:0 are the TUD ("TD under debug") group: bit 0 is
   * DEBUG, 7:1 are reserved for further debug features, and the TDX module
   * spec says a TD with any of them set is not trustworthy. */
  return q->td.td_attributes[0] != 0;
}

const uint8_t *ra_quote_report_data(const ra_quote *q) {
  return q->body_type == RA_BODY_SGX ? q->enclave.report_data : q->td.report_data;
}
