/* attest/quote/der.c: the strict DER reader for Intel's PCK leaf
 * (der_internal.h says which shape, and why a subset only). */
#include "raloop/attest/quote/der_internal.h"

#include <errno.h>
#include <stdbool.h>
#include <string.h>

/* A cursor over DER bytes. */
typedef struct cur {
  const uint8_t *p, *end;
} cur;

/* One TLV with its tag checked: single-byte tag, definite minimal length
 * (short form below 128, 0x81 from 128, 0x82 from 256; certificates are
 * smaller than 64 KiB). v views the contents, whole the TLV. */
static bool take(cur *c, uint8_t tag, ra_der_span *v, ra_der_span *whole) {
  size_t avail = (size_t)(c->end - c->p), n, hl;
  if (avail < 2 || c->p[0] != tag) return false;
  uint8_t l0 = c->p[1];
  if (l0 < 0x80) {
    n = l0;
    hl = 2;
  } else if (l0 == 0x81 && avail >= 3 && c->p[2] >= 0x80) {
    n = c->p[2];
    hl = 3;
  } else if (l0 == 0x82 && avail >= 4 && c->p[2] != 0) {
    n = (size_t)c->p[2] << 8 | c->p[3];
    hl = 4;
  } else {
    return false;
  }
  if (avail - hl < n) return false;
  if (v) *v = (ra_der_span){c->p + hl, n};
  if (whole) *whole = (ra_der_span){c->p, hl + n};
  c->p += hl + n;
  return true;
}

/* Enters the contents of a constructed TLV. */
static bool enter(cur *c, uint8_t tag, cur *in) {
  ra_der_span v;
  if (!take(c, tag, &v, NULL)) return false;
  *in = (cur){v.p, v.p + v.len};
  return true;
}

static bool at_end(const cur *c) { return c->p == c->end; }

/* Exactly these bytes next. */
static bool expect(cur *c, const uint8_t *b, size_t n) {
  if ((size_t)(c->end - c->p) < n || memcmp(c->p, b, n)) return false;
  c->p += n;
  return true;
}

static bool span_is(ra_der_span s, const uint8_t *b, size_t n) {
  return s.len == n && !memcmp(s.p, b, n);
}

/* An OBJECT IDENTIFIER's contents as c2i_ASN1_OBJECT accepts them, and a
 * little stricter: no 0x80 leading a sub-identifier, the last byte ends
 * one, at most 32 bytes. */
static bool oid_ok(ra_der_span o) {
  if (o.len == 0 || o.len > 32 || (o.p[o.len - 1] & 0x80)) return false;
  for (size_t i = 0; i < o.len; i++)
    if (o.p[i] == 0x80 && (i == 0 || !(o.p[i - 1] & 0x80))) return false;
  return true;
}

static bool printable_char(uint8_t b) {
  return (b >= 'a' && b <= 'z') || (b >= 'A' && b <= 'Z') || (b >= '0' && b <= '9') ||
         (b && strchr(" '()+,-./:=?", b) != NULL);
}

/* A directory string: PrintableString of its charset, or UTF8String /
 * IA5String of printable ASCII (valid UTF-8 whatever OpenSSL does with it),
 * 1..64 bytes. */
static bool name_string_ok(cur *c) {
  uint8_t tag = c->p < c->end ? c->p[0] : 0;
  ra_der_span v;
  if ((tag != 0x13 && tag != 0x0c && tag != 0x16) || !take(c, tag, &v, NULL) || v.len == 0 ||
      v.len > 64)
    return false;
  for (size_t i = 0; i < v.len; i++)
    if (tag == 0x13 ? !printable_char(v.p[i]) : v.p[i] < 0x20 || v.p[i] > 0x7e) return false;
  return true;
}

/* Name: SEQUENCE OF (at least one) SET of exactly one
 * AttributeTypeAndValue { OID, directory string }. */
static bool name_ok(cur *c, ra_der_span *whole) {
  cur n, rdn, atv;
  ra_der_span oid;
  const uint8_t *start = c->p;
  if (!enter(c, 0x30, &n) || at_end(&n)) return false;
  while (!at_end(&n)) {
    if (!enter(&n, 0x31, &rdn) || !enter(&rdn, 0x30, &atv) || !at_end(&rdn)) return false;
    if (!take(&atv, 0x06, &oid, NULL) || !oid_ok(oid) || !name_string_ok(&atv) || !at_end(&atv))
      return false;
  }
  *whole = (ra_der_span){start, (size_t)(c->p - start)};
  return true;
}

/* ---- times ---- */

static bool digits(const uint8_t *p, int n, int *out) {
  int v = 0;
  for (int i = 0; i < n; i++) {
    if (p[i] < '0' || p[i] > '9') return false;
    v = v * 10 + (p[i] - '0');
  }
  *out = v;
  return true;
}

static bool leap(int y) { return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0; }

/* Days since 1970-01-01 of a proleptic Gregorian date (Hinnant's
 * days_from_civil), as timegm counts them. */
static long days_from_civil(int y, int m, int d) {
  y -= m <= 2;
  long era = (y >= 0 ? y : y - 399) / 400;
  long yoe = y - era * 400;
  long doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
  long doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + doe - 719468;
}

/* UTCTime YYMMDDHHMMSSZ (YY < 50: 20YY, as RFC 5280 and OpenSSL) before
 * 2050, GeneralizedTime YYYYMMDDHHMMSSZ from 2050, a real date from 1971
 * on. */
static bool time_ok(cur *c, time_t *out) {
  static const int mdays[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  uint8_t tag = c->p < c->end ? c->p[0] : 0;
  ra_der_span v;
  int y, mo, d, h, mi, s, yl = tag == 0x17 ? 2 : 4;
  if ((tag != 0x17 && tag != 0x18) || !take(c, tag, &v, NULL) || v.len != (size_t)yl + 11 ||
      v.p[v.len - 1] != 'Z')
    return false;
  const uint8_t *p = v.p;
  if (!digits(p, yl, &y) || !digits(p + yl, 2, &mo) || !digits(p + yl + 2, 2, &d) ||
      !digits(p + yl + 4, 2, &h) || !digits(p + yl + 6, 2, &mi) || !digits(p + yl + 8, 2, &s))
    return false;
  if (yl == 2) y += y < 50 ? 2000 : 1900;
  /* RFC 5280: UTCTime through 2049, GeneralizedTime from 2050 */
  if (y < 1971 || (yl == 4) != (y >= 2050) || mo < 1 || mo > 12 || d < 1 || h > 23 || mi > 59 ||
      s > 59)
    return false;
  if (d > mdays[mo - 1] + (mo == 2 && leap(y))) return false;
  *out = (time_t)days_from_civil(y, mo, d) * 86400 + h * 3600 + mi * 60 + s;
  return true;
}

/* ---- the pieces of a certificate ---- */

/* ecdsa-with-SHA256 (1.2.840.10045.4.3.2), parameters absent */
static const uint8_t ALG_ECDSA_SHA256[] = {0x30, 0x0a, 0x06, 0x08, 0x2a, 0x86,
                                           0x48, 0xce, 0x3d, 0x04, 0x03, 0x02};
/* SubjectPublicKeyInfo up to the point: id-ecPublicKey, prime256v1,
 * BIT STRING of 66 bytes, 0 unused bits, uncompressed point */
static const uint8_t SPKI_P256[] = {0x30, 0x59, 0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48,
                                    0xce, 0x3d, 0x02, 0x01, 0x06, 0x08, 0x2a, 0x86, 0x48,
                                    0xce, 0x3d, 0x03, 0x01, 0x07, 0x03, 0x42, 0x00, 0x04};
static const uint8_t VERSION_3[] = {0xa0, 0x03, 0x02, 0x01, 0x02};

/* A positive INTEGER in minimal form, 1..max content bytes. */
static bool uint_ok(ra_der_span v, size_t max) {
  if (v.len == 0 || v.len > max || (v.p[0] & 0x80)) return false;
  return v.len == 1 || v.p[0] != 0 || (v.p[1] & 0x80);
}

/* One INTEGER of an ECDSA-Sig-Value into 32 big-endian bytes. */
static bool sig_int(cur *c, uint8_t out[32]) {
  ra_der_span v;
  if (!take(c, 0x02, &v, NULL) || !uint_ok(v, 33)) return false;
  if (v.len == 33) { /* 0x00 before a value with its top bit set, nothing else */
    if (v.p[0] != 0) return false;
    v.p++;
    v.len--;
  }
  memset(out, 0, 32);
  memcpy(out + 32 - v.len, v.p, v.len);
  return true;
}

/* signatureValue: BIT STRING, 0 unused bits, of SEQUENCE { r, s } in DER
 * (OpenSSL re-encodes and compares, so only canonical ones verify). */
static bool signature_ok(cur *c, uint8_t sig[64]) {
  ra_der_span bits;
  cur b, seq;
  if (!take(c, 0x03, &bits, NULL) || bits.len < 1 || bits.p[0] != 0) return false;
  b = (cur){bits.p + 1, bits.p + bits.len};
  return enter(&b, 0x30, &seq) && at_end(&b) && sig_int(&seq, sig) && sig_int(&seq, sig + 32) &&
         at_end(&seq);
}

/* ---- extensions ---- */

enum ext_kind { EXT_AKID, EXT_SKID, EXT_KU, EXT_BC, EXT_CRLDP, EXT_SGX, EXT__COUNT };

static const struct {
  uint8_t oid[9];
  uint8_t len;
  bool may_be_critical;
} EXT_OIDS[EXT__COUNT] = {
    [EXT_AKID] = {{0x55, 0x1d, 0x23}, 3, false},
    [EXT_SKID] = {{0x55, 0x1d, 0x0e}, 3, false},
    [EXT_KU] = {{0x55, 0x1d, 0x0f}, 3, true},
    [EXT_BC] = {{0x55, 0x1d, 0x13}, 3, true},
    [EXT_CRLDP] = {{0x55, 0x1d, 0x1f}, 3, false},
    /* 1.2.840.113741.1.13.1 */
    [EXT_SGX] = {{0x2a, 0x86, 0x48, 0x86, 0xf8, 0x4d, 0x01, 0x0d, 0x01}, 9, false},
};

static int ext_kind_of(ra_der_span oid) {
  for (int k = 0; k < EXT__COUNT; k++)
    if (span_is(oid, EXT_OIDS[k].oid, EXT_OIDS[k].len)) return k;
  return -1;
}

/* AuthorityKeyIdentifier: SEQUENCE { [0] keyIdentifier } and nothing else. */
static bool akid_ok(ra_der_span v, ra_pck_leaf *o) {
  cur c = {v.p, v.p + v.len}, seq;
  return enter(&c, 0x30, &seq) && at_end(&c) && take(&seq, 0x80, &o->akid, NULL) && at_end(&seq) &&
         o->akid.len >= 1 && o->akid.len <= 64;
}

static bool skid_ok(ra_der_span v, ra_pck_leaf *o) {
  cur c = {v.p, v.p + v.len};
  return take(&c, 0x04, &o->skid, NULL) && at_end(&c) && o->skid.len >= 1 && o->skid.len <= 64;
}

/* KeyUsage BIT STRING of 1 or 2 bytes, trailing zero bits dropped (DER);
 * the bits as OpenSSL keeps them (first byte low, second byte << 8). */
static bool ku_ok(ra_der_span v, ra_pck_leaf *o) {
  cur c = {v.p, v.p + v.len};
  ra_der_span b;
  if (!take(&c, 0x03, &b, NULL) || !at_end(&c) || b.len < 2 || b.len > 3) return false;
  uint8_t unused = b.p[0], last = b.p[b.len - 1];
  if (unused > 7 || (last & ((1u << unused) - 1)) || !(last & (1u << unused))) return false;
  o->key_usage = b.p[1] | (b.len == 3 ? (unsigned)b.p[2] << 8 : 0);
  return true;
}

/* BasicConstraints of an end entity: the empty SEQUENCE (cA FALSE). */
static bool bc_ok(ra_der_span v) {
  static const uint8_t empty[] = {0x30, 0x00};
  return span_is(v, empty, sizeof empty);
}

/* CRLDistributionPoints: 1..4 points, each SEQUENCE { [0] { [0] fullName
 * { one or more URIs (printable ASCII) } } } and nothing else. */
static bool crldp_ok(ra_der_span v) {
  cur c = {v.p, v.p + v.len}, seq, dp, dpn, full;
  int n = 0;
  if (!enter(&c, 0x30, &seq) || !at_end(&c)) return false;
  while (!at_end(&seq)) {
    if (++n > 4 || !enter(&seq, 0x30, &dp) || !enter(&dp, 0xa0, &dpn) || !at_end(&dp) ||
        !enter(&dpn, 0xa0, &full) || !at_end(&dpn) || at_end(&full))
      return false;
    while (!at_end(&full)) {
      ra_der_span uri;
      if (!take(&full, 0x86, &uri, NULL) || uri.len == 0 || uri.len > 255) return false;
      for (size_t i = 0; i < uri.len; i++)
        if (uri.p[i] < 0x21 || uri.p[i] > 0x7e) return false;
    }
  }
  return n > 0;
}

static bool ext_value_ok(int kind, ra_der_span v, ra_pck_leaf *o) {
  switch (kind) {
  case EXT_AKID:
    return akid_ok(v, o);
  case EXT_SKID:
    return skid_ok(v, o);
  case EXT_KU:
    return ku_ok(v, o);
  case EXT_BC:
    return bc_ok(v);
  case EXT_CRLDP:
    return crldp_ok(v);
  case EXT_SGX:
    o->sgx_ext = v;
    return v.len > 0;
  default:
    return false;
  }
}

/* [3] { SEQUENCE OF Extension { OID, critical TRUE (only when true: DER
 * leaves the FALSE default out), OCTET STRING } }: the known ones, each
 * once, the required ones present. */
static bool extensions_ok(cur *c, ra_pck_leaf *o) {
  cur outer, list, ext;
  unsigned seen = 0;
  static const uint8_t TRUE_[] = {0x01, 0x01, 0xff};
  if (!enter(c, 0xa3, &outer) || !enter(&outer, 0x30, &list) || !at_end(&outer)) return false;
  while (!at_end(&list)) {
    ra_der_span oid, val;
    if (!enter(&list, 0x30, &ext) || !take(&ext, 0x06, &oid, NULL)) return false;
    int kind = ext_kind_of(oid);
    bool critical = expect(&ext, TRUE_, sizeof TRUE_);
    if (kind < 0 || (seen & 1u << kind) || (critical && !EXT_OIDS[kind].may_be_critical) ||
        !take(&ext, 0x04, &val, NULL) || !at_end(&ext) || !ext_value_ok(kind, val, o))
      return false;
    seen |= 1u << kind;
  }
  const unsigned required = 1u << EXT_AKID | 1u << EXT_KU | 1u << EXT_SGX;
  return (seen & required) == required;
}

/* What makes the key usage a PCK leaf's: it signs (QE reports), it does
 * not certify (OpenSSL's KU_DIGITAL_SIGNATURE 0x80, KU_KEY_CERT_SIGN 0x04). */
static bool pck_key_usage(unsigned ku) { return (ku & 0x80) && !(ku & 0x04); }

static bool tbs_ok(cur *c, ra_pck_leaf *o) {
  cur t, validity;
  ra_der_span serial;
  if (!enter(c, 0x30, &t)) return false;
  if (!expect(&t, VERSION_3, sizeof VERSION_3) || !take(&t, 0x02, &serial, &o->serial) ||
      !uint_ok(serial, 21) || !expect(&t, ALG_ECDSA_SHA256, sizeof ALG_ECDSA_SHA256) ||
      !name_ok(&t, &o->issuer) || !enter(&t, 0x30, &validity) ||
      !time_ok(&validity, &o->not_before) || !time_ok(&validity, &o->not_after) ||
      !at_end(&validity) || !name_ok(&t, &o->subject) || !expect(&t, SPKI_P256, sizeof SPKI_P256) ||
      (size_t)(t.end - t.p) < 64)
    return false;
  memcpy(o->pub, t.p, 64);
  t.p += 64;
  return extensions_ok(&t, o) && at_end(&t);
}

int ra_der_pck_leaf(const uint8_t *der, size_t len, ra_pck_leaf *o) {
  memset(o, 0, sizeof *o);
  if (!der) return -EBADMSG;
  cur c = {der, der + len}, cert;
  if (!enter(&c, 0x30, &cert) || !at_end(&c)) return -EBADMSG;
  const uint8_t *tbs = cert.p;
  if (!tbs_ok(&cert, o)) return -EBADMSG;
  o->tbs = (ra_der_span){tbs, (size_t)(cert.p - tbs)};
  if (!expect(&cert, ALG_ECDSA_SHA256, sizeof ALG_ECDSA_SHA256) || !signature_ok(&cert, o->sig) ||
      !at_end(&cert))
    return -EBADMSG;
  /* a self-issued leaf is not Intel's shape (and OpenSSL treats it apart) */
  if (!pck_key_usage(o->key_usage) || o->not_before >= o->not_after ||
      (o->issuer.len == o->subject.len && !memcmp(o->issuer.p, o->subject.p, o->issuer.len)))
    return -EBADMSG;
  return 0;
}
