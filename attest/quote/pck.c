/* attest/pck.c: a minimal DER walker for the PCK SGX extension. Only what
 * Intel's PCK certificates use: single-byte tags, definite lengths. */
#include "raloop/attest/quote/pck.h"

#include <errno.h>
#include <string.h>

typedef struct der {
  const uint8_t *p, *end;
} der;

/* Reads one TLV; val/vlen view its contents. */
static int tlv(der *d, uint8_t *tag, const uint8_t **val, size_t *vlen) {
  size_t avail = (size_t)(d->end - d->p), n, hl = 2;
  if (avail < 2) return -EBADMSG;
  *tag = d->p[0];
  if ((*tag & 0x1f) == 0x1f) return -EBADMSG; /* multi-byte tags: not in PCK certs */
  n = d->p[1];
  if (n & 0x80) {
    size_t k = n & 0x7f;
    if (k == 0 || k > 4 || avail < 2 + k) return -EBADMSG;
    n = 0;
    for (size_t i = 0; i < k; i++) n = n << 8 | d->p[2 + i];
    hl += k;
  }
  if (avail - hl < n) return -EBADMSG;
  *val = d->p + hl;
  *vlen = n;
  d->p += hl + n;
  return 0;
}

/* 1.2.840.113741.1.13.1 */
static const uint8_t SGX_OID[] = {0x2a, 0x86, 0x48, 0x86, 0xf8, 0x4d, 0x01, 0x0d, 0x01};

/* If oid is SGX_OID.sub (or SGX_OID.sub.subsub when subsub >= 0) */
static int oid_is(const uint8_t *oid, size_t len, int sub, int subsub) {
  size_t base = sizeof SGX_OID;
  if (len != base + 1 + (subsub >= 0) || memcmp(oid, SGX_OID, base) || oid[base] != sub) return 0;
  return subsub < 0 || oid[base + 1] == subsub;
}

static int octets(uint8_t tag, const uint8_t *v, size_t n, uint8_t *out, size_t want) {
  if (tag != 0x04 || n != want) return -EBADMSG;
  memcpy(out, v, want);
  return 0;
}

/* Non-negative INTEGER (or ENUMERATED) up to 16 bits. */
static int small_int(uint8_t tag, const uint8_t *v, size_t n, unsigned *out, uint8_t want_tag) {
  unsigned x = 0;
  if (tag != want_tag || n == 0 || n > 3 || (v[0] & 0x80)) return -EBADMSG;
  for (size_t i = 0; i < n; i++) x = x << 8 | v[i];
  if (x > 0xffff) return -EBADMSG;
  *out = x;
  return 0;
}

/* Each element: SEQUENCE { OID, value } */
static int pair(der *d, const uint8_t **oid, size_t *oidlen, uint8_t *vtag, const uint8_t **val,
                size_t *vlen) {
  uint8_t tag;
  const uint8_t *s;
  size_t sl;
  if (tlv(d, &tag, &s, &sl) || tag != 0x30) return -EBADMSG;
  der in = {s, s + sl};
  if (tlv(&in, &tag, oid, oidlen) || tag != 0x06) return -EBADMSG;
  if (tlv(&in, vtag, val, vlen) || in.p != in.end) return -EBADMSG;
  return 0;
}

static int parse_tcb(const uint8_t *v, size_t n, ra_pck_info *o) {
  der d = {v, v + n};
  unsigned seen = 0;
  while (d.p < d.end) {
    const uint8_t *oid, *val;
    size_t oidlen, vlen;
    uint8_t vtag;
    unsigned x;
    if (pair(&d, &oid, &oidlen, &vtag, &val, &vlen)) return -EBADMSG;
    for (int i = 1; i <= 18; i++) {
      if (!oid_is(oid, oidlen, 2, i)) continue;
      if (i <= 16) {
        if (small_int(vtag, val, vlen, &x, 0x02) || x > 255) return -EBADMSG;
        o->tcb_comp_svn[i - 1] = (uint8_t)x;
      } else if (i == 17) {
        if (small_int(vtag, val, vlen, &x, 0x02)) return -EBADMSG;
        o->pcesvn = (uint16_t)x;
      } else if (octets(vtag, val, vlen, o->cpusvn, 16)) {
        return -EBADMSG;
      }
      if (seen & 1u << i) return -EBADMSG;
      seen |= 1u << i;
    }
  }
  return seen == 0x7fffeu ? 0 : -EBADMSG; /* bits 1..18 */
}

int ra_pck_parse_ext(const uint8_t *buf, size_t len, ra_pck_info *o) {
  uint8_t tag;
  const uint8_t *s;
  size_t sl;
  unsigned seen = 0;
  der top;

  memset(o, 0, sizeof *o);
  if (!buf) return -EBADMSG;
  top.p = buf;
  top.end = buf + len;
  if (tlv(&top, &tag, &s, &sl) || tag != 0x30 || top.p != top.end) return -EBADMSG;
  der d = {s, s + sl};
  while (d.p < d.end) {
    const uint8_t *oid, *val;
    size_t oidlen, vlen;
    uint8_t vtag;
    unsigned x;
    int which = 0;
    if (pair(&d, &oid, &oidlen, &vtag, &val, &vlen)) return -EBADMSG;
    for (int i = 1; i <= 7; i++)
      if (oid_is(oid, oidlen, i, -1)) which = i;
    switch (which) {
    case 1:
      if (octets(vtag, val, vlen, o->ppid, 16)) return -EBADMSG;
      break;
    case 2:
      if (vtag != 0x30 || parse_tcb(val, vlen, o)) return -EBADMSG;
      break;
    case 3:
      if (octets(vtag, val, vlen, o->pceid, 2)) return -EBADMSG;
      break;
    case 4:
      if (octets(vtag, val, vlen, o->fmspc, 6)) return -EBADMSG;
      break;
    case 5:
      if (small_int(vtag, val, vlen, &x, 0x0a)) return -EBADMSG;
      o->sgx_type = (int)x;
      break;
    case 6:
      if (octets(vtag, val, vlen, o->platform_instance_id, 16)) return -EBADMSG;
      o->has_platform_instance_id = 1;
      break;
    default:
      break; /* configuration (7) and unknown: ignored */
    }
    if (which) {
      if (seen & 1u << which) return -EBADMSG;
      seen |= 1u << which;
    }
  }
  return (seen & 0x3e) == 0x3e ? 0 : -EBADMSG; /* 1..5 mandatory */
}
