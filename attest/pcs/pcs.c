/* attest/pcs/pcs.c: Intel collateral from PCS/PCCS on the loop, and its
 * on-disk cache (see pcs.h). */
#include "raloop/attest/pcs/pcs.h"

#include <errno.h>
#include <stdarg.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/objects.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "raloop/attest/pcs/pcs_internal.h"
#include "raloop/attest/quote/hexb64.h"
#include "raloop/attest/quote/pck.h"
#include "raloop/attest/quote/quote.h"
#include "raloop/core/error.h"
#include "raloop/core/file.h"
#include "raloop/core/log.h"
#include "raloop/http/client.h"

#define MAX_DOC (1u << 22)

/* A view of a buffer's content (never a NULL pointer). */
static ra_str buf_str(const ra_buf *b) {
  return ra_str_make(b->len ? (const char *)ra_buf_ptr(b) : "", b->len);
}

/* ---- minimal strict JSON ------------------------------------------------------ */

static void skip_ws(const char **p, const char *end) {
  while (*p < end && (**p == ' ' || **p == '\t' || **p == '\n' || **p == '\r')) (*p)++;
}

static int hexval(int c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

static int skip_string(const char **pp, const char *end) {
  const char *p = *pp;
  if (p >= end || *p != '"') return -EBADMSG;
  p++;
  while (p < end && *p != '"') {
    unsigned char c = (unsigned char)*p;
    if (c < 0x20) return -EBADMSG;
    if (c == '\\') {
      if (++p >= end) return -EBADMSG;
      if (*p == 'u') {
        if (end - p < 5) return -EBADMSG;
        for (int i = 1; i <= 4; i++)
          if (hexval(p[i]) < 0) return -EBADMSG;
        p += 4;
      } else if (!strchr("\"\\/bfnrt", *p) || !*p) {
        return -EBADMSG;
      }
    }
    p++;
  }
  if (p >= end) return -EBADMSG;
  *pp = p + 1;
  return 0;
}

static int skip_number(const char **pp, const char *end) {
  const char *p = *pp;
  if (p < end && *p == '-') p++;
  if (p >= end) return -EBADMSG;
  if (*p == '0') p++;
  else if (*p >= '1' && *p <= '9')
    while (p < end && *p >= '0' && *p <= '9') p++;
  else return -EBADMSG;
  if (p < end && *p == '.') {
    p++;
    if (p >= end || *p < '0' || *p > '9') return -EBADMSG;
    while (p < end && *p >= '0' && *p <= '9') p++;
  }
  if (p < end && (*p == 'e' || *p == 'E')) {
    p++;
    if (p < end && (*p == '+' || *p == '-')) p++;
    if (p >= end || *p < '0' || *p > '9') return -EBADMSG;
    while (p < end && *p >= '0' && *p <= '9') p++;
  }
  *pp = p;
  return 0;
}

int ra_pcs_json_skip(const char **pp, const char *end, int depth) {
  if (depth > 64) return -EBADMSG;
  skip_ws(pp, end);
  const char *p = *pp;
  if (p >= end) return -EBADMSG;
  int rc;
  switch (*p) {
  case '"':
    return skip_string(pp, end);
  case '{':
  case '[': {
    char close = *p == '{' ? '}' : ']';
    bool obj = *p == '{';
    p++;
    skip_ws(&p, end);
    if (p < end && *p == close) {
      *pp = p + 1;
      return 0;
    }
    for (;;) {
      if (obj) {
        skip_ws(&p, end);
        if ((rc = skip_string(&p, end))) return rc;
        skip_ws(&p, end);
        if (p >= end || *p != ':') return -EBADMSG;
        p++;
      }
      if ((rc = ra_pcs_json_skip(&p, end, depth + 1))) return rc;
      skip_ws(&p, end);
      if (p >= end) return -EBADMSG;
      if (*p == ',') {
        p++;
        continue;
      }
      if (*p != close) return -EBADMSG;
      *pp = p + 1;
      return 0;
    }
  }
  case 't':
    if (end - p >= 4 && !memcmp(p, "true", 4)) return *pp = p + 4, 0;
    return -EBADMSG;
  case 'f':
    if (end - p >= 5 && !memcmp(p, "false", 5)) return *pp = p + 5, 0;
    return -EBADMSG;
  case 'n':
    if (end - p >= 4 && !memcmp(p, "null", 4)) return *pp = p + 4, 0;
    return -EBADMSG;
  default:
    return skip_number(pp, end);
  }
}

int ra_pcs_json_member(ra_str obj, const char *key, ra_str *raw) {
  const char *p = obj.ptr, *end = obj.ptr + obj.len;
  if (!p) return -EBADMSG;
  /* the whole text must be one object */
  const char *q = p;
  if (ra_pcs_json_skip(&q, end, 0)) return -EBADMSG;
  skip_ws(&q, end);
  if (q != end) return -EBADMSG;
  skip_ws(&p, end);
  if (*p != '{') return -EBADMSG;
  p++;
  size_t klen = strlen(key);
  int found = -ENOENT;
  skip_ws(&p, end);
  if (*p == '}') return found;
  for (;;) {
    skip_ws(&p, end);
    const char *ks = p;
    if (skip_string(&p, end)) return -EBADMSG;
    bool match = (size_t)(p - ks) == klen + 2 && !memcmp(ks + 1, key, klen);
    skip_ws(&p, end);
    p++; /* ':' (checked by the skip above) */
    skip_ws(&p, end);
    const char *vs = p;
    if (ra_pcs_json_skip(&p, end, 1)) return -EBADMSG;
    if (match) {
      if (found == 0) return -EBADMSG; /* a duplicate key: ambiguous */
      *raw = ra_str_make(vs, (size_t)(p - vs));
      found = 0;
    }
    skip_ws(&p, end);
    if (*p == ',') {
      p++;
      continue;
    }
    return found;
  }
}

static int put_utf8(ra_buf *out, uint32_t cp) {
  char b[4];
  size_t n;
  if (cp < 0x80) b[0] = (char)cp, n = 1;
  else if (cp < 0x800) b[0] = (char)(0xc0 | cp >> 6), b[1] = (char)(0x80 | (cp & 0x3f)), n = 2;
  else if (cp < 0x10000)
    b[0] = (char)(0xe0 | cp >> 12), b[1] = (char)(0x80 | ((cp >> 6) & 0x3f)),
    b[2] = (char)(0x80 | (cp & 0x3f)), n = 3;
  else
    b[0] = (char)(0xf0 | cp >> 18), b[1] = (char)(0x80 | ((cp >> 12) & 0x3f)),
    b[2] = (char)(0x80 | ((cp >> 6) & 0x3f)), b[3] = (char)(0x80 | (cp & 0x3f)), n = 4;
  return ra_buf_append(out, b, n);
}

static uint32_t hex4(const char *p) {
  return (uint32_t)(hexval(p[0]) << 12 | hexval(p[1]) << 8 | hexval(p[2]) << 4 | hexval(p[3]));
}

int ra_pcs_json_unescape(ra_str raw, ra_buf *out) {
  const char *p = raw.ptr, *end = raw.ptr + raw.len;
  const char *q = p;
  if (!p || skip_string(&q, end) || q != end) return -EBADMSG;
  p++;
  end--;
  while (p < end) {
    const char *s = p;
    while (p < end && *p != '\\') p++;
    if (p > s && ra_buf_append(out, s, (size_t)(p - s))) return -ENOMEM;
    if (p >= end) break;
    p++;
    char c = *p++, r;
    switch (c) {
    case 'b': r = '\b'; break;
    case 'f': r = '\f'; break;
    case 'n': r = '\n'; break;
    case 'r': r = '\r'; break;
    case 't': r = '\t'; break;
    case 'u': {
      uint32_t cp = hex4(p);
      p += 4;
      if (cp >= 0xd800 && cp < 0xdc00) {
        if (end - p < 6 || p[0] != '\\' || p[1] != 'u') return -EBADMSG;
        uint32_t lo = hex4(p + 2);
        if (lo < 0xdc00 || lo > 0xdfff) return -EBADMSG;
        cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
        p += 6;
      } else if (cp >= 0xdc00 && cp <= 0xdfff) {
        return -EBADMSG;
      }
      if (put_utf8(out, cp)) return -ENOMEM;
      continue;
    }
    default: r = c; break; /* " \ / */
    }
    if (ra_buf_append(out, &r, 1)) return -ENOMEM;
  }
  return 0;
}

int ra_pcs_json_escape(ra_buf *out, ra_str s) {
  static const char hx[] = "0123456789abcdef";
  if (ra_buf_append(out, "\"", 1)) return -ENOMEM;
  size_t run = 0;
  for (size_t i = 0; i < s.len; i++) {
    unsigned char c = s.bytes[i];
    const char *e = NULL;
    char u[7];
    if (c == '"') e = "\\\"";
    else if (c == '\\') e = "\\\\";
    else if (c == '\n') e = "\\n";
    else if (c == '\r') e = "\\r";
    else if (c == '\t') e = "\\t";
    else if (c == '\b') e = "\\b";
    else if (c == '\f') e = "\\f";
    else if (c < 0x20) {
      memcpy(u, "\\u00", 4);
      u[4] = hx[c >> 4];
      u[5] = hx[c & 15];
      u[6] = 0;
      e = u;
    }
    if (!e) {
      run++;
      continue;
    }
    if (run && ra_buf_append(out, s.ptr + i - run, run)) return -ENOMEM;
    run = 0;
    if (ra_buf_append_str(out, e)) return -ENOMEM;
  }
  if (run && ra_buf_append(out, s.ptr + s.len - run, run)) return -ENOMEM;
  return ra_buf_append(out, "\"", 1) ? -ENOMEM : 0;
}

/* ---- dates -------------------------------------------------------------------- */

static int digits(const char *p, int n) {
  int v = 0;
  for (int i = 0; i < n; i++) {
    if (p[i] < '0' || p[i] > '9') return -1;
    v = v * 10 + (p[i] - '0');
  }
  return v;
}

int ra_pcs_parse_date(ra_str s, int64_t *out) {
  const char *p = s.ptr;
  if (!p || s.len < 20) return -EBADMSG;
  if (p[4] != '-' || p[7] != '-' || p[10] != 'T' || p[13] != ':' || p[16] != ':') return -EBADMSG;
  struct tm tm = {0};
  int y = digits(p, 4), mo = digits(p + 5, 2), d = digits(p + 8, 2), h = digits(p + 11, 2),
      mi = digits(p + 14, 2), se = digits(p + 17, 2);
  if (y < 1970 || mo < 1 || mo > 12 || d < 1 || d > 31 || h < 0 || h > 23 || mi < 0 || mi > 59 ||
      se < 0 || se > 60)
    return -EBADMSG;
  size_t i = 19;
  if (p[i] == '.') {
    i++;
    size_t st = i;
    while (i < s.len && p[i] >= '0' && p[i] <= '9') i++;
    if (i == st) return -EBADMSG;
  }
  if (i + 1 != s.len || p[i] != 'Z') return -EBADMSG;
  tm.tm_year = y - 1900;
  tm.tm_mon = mo - 1;
  tm.tm_mday = d;
  tm.tm_hour = h;
  tm.tm_min = mi;
  tm.tm_sec = se;
  time_t t = timegm(&tm);
  if (t == (time_t)-1) return -EBADMSG;
  *out = (int64_t)t;
  return 0;
}

/* nextUpdate of a signed body (the tcbInfo / enclaveIdentity object). */
static int body_next_update(ra_str body, int64_t *out) {
  ra_str raw;
  if (ra_pcs_json_member(body, "nextUpdate", &raw)) return -EBADMSG;
  ra_buf b = {0};
  int rc = ra_pcs_json_unescape(raw, &b);
  if (rc == 0) rc = ra_pcs_parse_date(buf_str(&b), out);
  ra_buf_free(&b);
  return rc ? -EBADMSG : 0;
}

static int crl_next_update(const uint8_t *der, size_t len, int64_t *out) {
  const unsigned char *p = der;
  X509_CRL *crl = d2i_X509_CRL(NULL, &p, (long)len);
  if (!crl) return -EBADMSG;
  int rc = -EBADMSG;
  struct tm tm;
  const ASN1_TIME *nu = X509_CRL_get0_nextUpdate(crl);
  if (p == der + len && nu && ASN1_TIME_to_tm(nu, &tm) == 1) {
    time_t t = timegm(&tm);
    if (t != (time_t)-1) {
      *out = (int64_t)t;
      rc = 0;
    }
  }
  X509_CRL_free(crl);
  return rc;
}

/* ---- the pieces of PCS answers ------------------------------------------------ */

static bool is_hex(ra_str s) {
  if (!s.len || s.len % 2) return false;
  for (size_t i = 0; i < s.len; i++)
    if (hexval(s.ptr[i]) < 0) return false;
  return true;
}

int ra_pcs_split_signed(ra_str body, const char *member, ra_str *signed_body, ra_str *sig_hex) {
  ra_str raw, sig;
  if (ra_pcs_json_member(body, member, &raw) || raw.len == 0 || raw.ptr[0] != '{') return -EBADMSG;
  if (ra_pcs_json_member(body, "signature", &sig) || sig.len < 2 || sig.ptr[0] != '"')
    return -EBADMSG;
  sig = ra_str_make(sig.ptr + 1, sig.len - 2);
  if (sig.len != 128 || !is_hex(sig)) return -EBADMSG; /* ECDSA P-256 r||s */
  *signed_body = raw;
  *sig_hex = sig;
  return 0;
}

int ra_pcs_decode_chain(ra_str hdr, ra_buf *out) {
  size_t start = out->len;
  for (size_t i = 0; i < hdr.len; i++) {
    char c = hdr.ptr[i];
    if (c == '%') {
      int a = i + 2 < hdr.len ? hexval(hdr.ptr[i + 1]) : -1, b = a >= 0 ? hexval(hdr.ptr[i + 2]) : -1;
      if (a < 0 || b < 0) return -EBADMSG;
      c = (char)(a << 4 | b);
      i += 2;
    }
    if (ra_buf_append(out, &c, 1)) return -ENOMEM;
  }
  ra_str s = buf_str(out);
  s.ptr += start;
  s.len -= start;
  if (s.len < 60 || !memmem(s.ptr, s.len, "-----BEGIN CERTIFICATE-----", 27) ||
      !memmem(s.ptr, s.len, "-----END CERTIFICATE-----", 25) || memchr(s.ptr, 0, s.len))
    return -EBADMSG;
  return 0;
}

static int append_hex(ra_buf *out, const uint8_t *b, size_t n) {
  if (ra_buf_reserve(out, 2 * n + 1)) return -ENOMEM;
  ra_hex_encode(b, n, (char *)ra_buf_ptr(out) + out->len);
  out->len += 2 * n;
  return 0;
}

int ra_pcs_crl_to_hex(ra_str body, ra_buf *hex, int64_t *next_update) {
  uint8_t *der = NULL;
  size_t n = 0;
  int rc = -EBADMSG;
  if (body.len && body.bytes[0] == 0x30) {
    der = malloc(body.len);
    if (!der) return -ENOMEM;
    memcpy(der, body.bytes, body.len);
    n = body.len;
  } else if (body.len > 10 && !memcmp(body.ptr, "-----BEGIN", 10)) {
    BIO *bio = BIO_new_mem_buf(body.ptr, (int)body.len);
    X509_CRL *crl = bio ? PEM_read_bio_X509_CRL(bio, NULL, NULL, NULL) : NULL;
    int l = crl ? i2d_X509_CRL(crl, NULL) : -1;
    if (l > 0 && (der = malloc((size_t)l))) {
      unsigned char *w = der;
      n = (size_t)i2d_X509_CRL(crl, &w);
    }
    X509_CRL_free(crl);
    BIO_free(bio);
  } else {
    ra_str t = body;
    while (t.len && (t.ptr[t.len - 1] == '\n' || t.ptr[t.len - 1] == '\r')) t.len--;
    if (is_hex(t) && (der = malloc(t.len / 2))) {
      n = t.len / 2;
      if (ra_hex_decode_exact(t.ptr, t.len, der, n)) n = 0;
    }
  }
  if (der && n && crl_next_update(der, n, next_update) == 0) rc = append_hex(hex, der, n);
  free(der);
  return rc;
}

/* ---- the document ------------------------------------------------------------- */

const char *const ra_pcs_part_names[RA_PCS_NPARTS] = {
    "pck_crl_issuer_chain", "root_ca_crl", "pck_crl", "tcb_info_issuer_chain", "tcb_info",
    "tcb_info_signature", "qe_identity_issuer_chain", "qe_identity", "qe_identity_signature"};

int ra_pcs_doc_write(ra_buf *out, const ra_str parts[RA_PCS_NPARTS]) {
  if (ra_buf_append_str(out, "{\n")) return -ENOMEM;
  for (int i = 0; i < RA_PCS_NPARTS; i++) {
    if (ra_buf_printf(out, "  \"%s\": ", ra_pcs_part_names[i])) return -ENOMEM;
    if (ra_pcs_json_escape(out, parts[i])) return -ENOMEM;
    if (ra_buf_append_str(out, i + 1 < RA_PCS_NPARTS ? ",\n" : "\n}")) return -ENOMEM;
  }
  return 0;
}

static int doc_string(ra_str doc, const char *key, ra_buf *out) {
  ra_str raw;
  if (ra_pcs_json_member(doc, key, &raw) || !raw.len || raw.ptr[0] != '"') return -EBADMSG;
  return ra_pcs_json_unescape(raw, out);
}


int ra_pcs_doc_next_update(ra_str doc, int64_t *out) {
  if (!doc.ptr || !out) return -EINVAL;
  ra_buf v[RA_PCS_NPARTS];
  memset(v, 0, sizeof v);
  int rc = 0;
  for (int i = 0; i < RA_PCS_NPARTS && !rc; i++) rc = doc_string(doc, ra_pcs_part_names[i], &v[i]);
  int64_t t, best = INT64_MAX;
  if (!rc) {
    /* the shape of each part */
    for (int i = 0; i < RA_PCS_NPARTS && !rc; i++) {
      ra_str s = buf_str(&v[i]);
      if (i == RA_PCS_PCK_CRL_CHAIN || i == RA_PCS_TCB_CHAIN || i == RA_PCS_QE_CHAIN)
        rc = memmem(s.ptr, s.len, "-----BEGIN CERTIFICATE-----", 27) ? 0 : -EBADMSG;
      else if (i == RA_PCS_TCB_SIG || i == RA_PCS_QE_SIG)
        rc = s.len == 128 && is_hex(s) ? 0 : -EBADMSG;
    }
  }
  if (!rc) {
    int crls[2] = {RA_PCS_ROOT_CRL, RA_PCS_PCK_CRL};
    for (int k = 0; k < 2 && !rc; k++) {
      ra_str s = buf_str(&v[crls[k]]);
      uint8_t *der = is_hex(s) ? malloc(s.len / 2) : NULL;
      rc = der && !ra_hex_decode_exact(s.ptr, s.len, der, s.len / 2) &&
                   !crl_next_update(der, s.len / 2, &t)
               ? 0
               : -EBADMSG;
      free(der);
      if (!rc && t < best) best = t;
    }
    int bodies[2] = {RA_PCS_TCB_INFO, RA_PCS_QE_ID};
    for (int k = 0; k < 2 && !rc; k++) {
      rc = body_next_update(buf_str(&v[bodies[k]]), &t);
      if (!rc && t < best) best = t;
    }
  }
  for (int i = 0; i < RA_PCS_NPARTS; i++) ra_buf_free(&v[i]);
  if (rc) return rc == -ENOMEM ? rc : -EBADMSG;
  *out = best;
  return 0;
}

/* ---- the key from a quote ------------------------------------------------------ */

int ra_pcs_key_from_quote(const uint8_t *quote, size_t len, ra_pcs_key *out) {
  if (!quote || !out) return -EINVAL;
  ra_quote q;
  int rc = ra_quote_parse(quote, len, &q);
  if (rc) return rc;
  if (q.cert_type != RA_CERT_PCK_CHAIN || !q.cert_data.len) return RA_ERR_NO_PCK_CHAIN;
  memset(out, 0, sizeof *out);
  out->tee = q.tee_type == RA_TEE_TDX ? RA_PCS_TDX : RA_PCS_SGX;
  BIO *bio = BIO_new_mem_buf(q.cert_data.ptr, (int)q.cert_data.len);
  ASN1_OBJECT *oid = OBJ_txt2obj(RA_PCK_SGX_EXT_OID, 1);
  if (!bio || !oid) {
    BIO_free(bio);
    ASN1_OBJECT_free(oid);
    return RA_ERR_INTERNAL;
  }
  rc = RA_ERR_NO_PCK_CHAIN;
  int ncerts = 0;
  X509 *c;
  while ((c = PEM_read_bio_X509(bio, NULL, NULL, NULL))) {
    ncerts++;
    int idx = X509_get_ext_by_OBJ(c, oid, -1);
    if (idx >= 0 && rc == RA_ERR_NO_PCK_CHAIN) {
      X509_EXTENSION *ext = X509_get_ext(c, idx);
      ASN1_OCTET_STRING *os = X509_EXTENSION_get_data(ext);
      ra_pck_info info;
      if (!os || ra_pck_parse_ext(ASN1_STRING_get0_data(os), (size_t)ASN1_STRING_length(os), &info)) {
        rc = RA_ERR_PCK_EXTENSION;
      } else {
        memcpy(out->fmspc, info.fmspc, 6);
        char cn[256] = "";
        X509_NAME_get_text_by_NID(X509_get_issuer_name(c), NID_commonName, cn, sizeof cn);
        if (strstr(cn, "PCK Platform CA")) out->ca = RA_PCS_CA_PLATFORM, rc = 0;
        else if (strstr(cn, "PCK Processor CA")) out->ca = RA_PCS_CA_PROCESSOR, rc = 0;
        else {
          ra_log(RA_LOG_ERROR, "pcs: PCK certificate issued by \"%s\", neither PCK CA", cn);
          rc = -ENOTSUP;
        }
      }
    }
    X509_free(c);
  }
  ERR_clear_error();
  BIO_free(bio);
  ASN1_OBJECT_free(oid);
  if (!ncerts) return RA_ERR_CERT_PARSE;
  return rc;
}

/* ---- the cache ------------------------------------------------------------------ */

int ra_pcs_cache_default_dir(char *buf, size_t cap) {
  const char *x = getenv("XDG_CACHE_HOME"), *h = getenv("HOME");
  int n;
  if (x && x[0] == '/') n = snprintf(buf, cap, "%s/raloop/collateral", x);
  else if (h && h[0]) n = snprintf(buf, cap, "%s/.cache/raloop/collateral", h);
  else return -ENOENT;
  return n < 0 || (size_t)n >= cap ? -ENAMETOOLONG : 0;
}

int ra_pcs_cache_name(const ra_pcs_key *key, char *buf, size_t cap) {
  if (!key) return -EINVAL;
  char f[13];
  ra_hex_encode(key->fmspc, 6, f);
  for (int i = 0; i < 12; i++)
    if (f[i] >= 'a' && f[i] <= 'f') f[i] = (char)(f[i] - 'a' + 'A');
  int n = snprintf(buf, cap, "%s-%s-%s.json", key->tee == RA_PCS_TDX ? "tdx" : "sgx", f,
                   key->ca == RA_PCS_CA_PROCESSOR ? "processor" : "platform");
  return n < 0 || (size_t)n >= cap ? -ENAMETOOLONG : 0;
}

static int cache_path(const char *dir, const ra_pcs_key *key, char *buf, size_t cap) {
  char name[64];
  int rc = ra_pcs_cache_name(key, name, sizeof name);
  if (rc) return rc;
  int n = snprintf(buf, cap, "%s/%s", dir, name);
  return n < 0 || (size_t)n >= cap ? -ENAMETOOLONG : 0;
}

int ra_pcs_cache_load(const char *dir, const ra_pcs_key *key, int64_t now, int64_t refresh_before,
                      char **doc, size_t *len, int64_t *next_update) {
  if (!dir || !key || !doc || !len) return -EINVAL;
  char path[4096];
  int rc = cache_path(dir, key, path, sizeof path);
  if (rc) return rc;
  uint8_t *raw;
  size_t n;
  rc = ra_file_read(path, MAX_DOC, &raw, &n);
  if (rc) return rc == -EFBIG ? -EBADMSG : rc;
  int64_t nu;
  rc = ra_pcs_doc_next_update(ra_str_make((const char *)raw, n), &nu);
  if (rc) {
    ra_log(RA_LOG_WARN, "pcs: cache entry %s is garbled: ignored", path);
    free(raw);
    return -EBADMSG;
  }
  if (next_update) *next_update = nu;
  if (now + refresh_before >= nu) {
    free(raw);
    return -ESTALE;
  }
  char *d = realloc(raw, n + 1);
  if (!d) {
    free(raw);
    return -ENOMEM;
  }
  d[n] = 0;
  *doc = d;
  *len = n;
  return 0;
}

static int mkdirs(const char *dir) {
  char p[4096];
  size_t n = strlen(dir);
  if (!n || n >= sizeof p) return -ENAMETOOLONG;
  memcpy(p, dir, n + 1);
  for (size_t i = 1; i <= n; i++) {
    if (p[i] == '/' || p[i] == 0) {
      char c = p[i];
      p[i] = 0;
      if (mkdir(p, 0700) && errno != EEXIST) return -errno;
      p[i] = c;
    }
  }
  struct stat st;
  if (stat(dir, &st)) return -errno;
  return S_ISDIR(st.st_mode) ? 0 : -ENOTDIR;
}

/* Writes doc as the entry of key (atomically and durably: a crash leaves the
 * old entry or the new one, never half of one); doc is known to be well
 * formed. */
static int cache_write(const char *dir, const ra_pcs_key *key, ra_str doc) {
  char path[4096];
  int rc = cache_path(dir, key, path, sizeof path);
  if (rc) return rc;
  if ((rc = mkdirs(dir))) return rc;
  return ra_file_write_atomic(path, doc.ptr, doc.len, 0600);
}

int ra_pcs_cache_store(const char *dir, const ra_pcs_key *key, ra_str doc) {
  if (!dir || !key || !doc.ptr) return -EINVAL;
  int64_t nu;
  if (ra_pcs_doc_next_update(doc, &nu)) return -EBADMSG;
  return cache_write(dir, key, doc);
}

/* ---- fetching -------------------------------------------------------------------- */

enum { R_TCB, R_QE, R_PCKCRL, R_ROOTCRL, R_N };
static const char *const req_names[R_N] = {"TCB info", "QE identity", "PCK CRL", "root CA CRL"};

struct ra_pcs_fetch {
  ra_loop *loop;
  ra_pcs_cb cb;
  void *ud;
  ra_pcs_key key;
  ra_pcs_opts opts;
  char *base_url, *root_crl_url, *cache_dir, *ca_file;
  ra_defer defer; /* cache hits answer from here */
  int deferred_err;
  struct sub {
    ra_pcs_fetch *f;
    int which;
    ra_http_get *g;
    bool done;
    char *url;
  } sub[R_N];
  int ndone;
  bool finished;
  ra_buf parts[RA_PCS_NPARTS];
  int64_t next_update;
  char *doc; /* a fresh cache entry, or one due for refresh but not past nextUpdate */
  size_t doc_len;
  int64_t doc_next_update;
};

static void fetch_free(ra_pcs_fetch *f) {
  for (int i = 0; i < R_N; i++) {
    ra_http_get_cancel(f->sub[i].g);
    free(f->sub[i].url);
  }
  for (int i = 0; i < RA_PCS_NPARTS; i++) ra_buf_free(&f->parts[i]);
  ra_defer_cancel(f->loop, &f->defer);
  free(f->base_url);
  free(f->root_crl_url);
  free(f->cache_dir);
  free(f->ca_file);
  free(f->doc);
  free(f);
}

/* Fails the fetch, unless the cache still holds an entry that is only due
 * for refresh (not past its nextUpdate): that one is served instead. */
static void finish(ra_pcs_fetch *f, int err) {
  f->finished = true;
  for (int i = 0; i < R_N; i++) {
    if (!f->sub[i].done) ra_http_get_cancel(f->sub[i].g);
    f->sub[i].g = NULL;
  }
  if (f->doc) {
    ra_log(RA_LOG_WARN, "pcs: refresh failed (%s): serving the cached collateral, valid until its "
           "nextUpdate", ra_strerror(err));
    ra_pcs_result res = {.doc = ra_str_make(f->doc, f->doc_len), .next_update = f->doc_next_update,
                         .from_cache = true, .refresh_failed = err};
    f->cb(0, &res, f->ud);
  } else {
    f->cb(err, NULL, f->ud);
  }
  fetch_free(f);
}

static int take_chain(const ra_http_response *r, const char *const *names, ra_buf *out) {
  for (; *names; names++) {
    ra_str h = ra_http_response_header(r, *names);
    if (h.ptr) return ra_pcs_decode_chain(h, out);
  }
  return -EBADMSG;
}

/* Turns one response into its parts of the document. */
static int take(ra_pcs_fetch *f, int which, const ra_http_response *r) {
  static const char *const tcb_hdrs[] = {"TCB-Info-Issuer-Chain", "SGX-TCB-Info-Issuer-Chain", NULL};
  static const char *const qe_hdrs[] = {"SGX-Enclave-Identity-Issuer-Chain",
                                        "Enclave-Identity-Issuer-Chain", NULL};
  static const char *const crl_hdrs[] = {"SGX-PCK-CRL-Issuer-Chain", NULL};
  ra_str body, sig;
  int64_t nu = 0;
  int rc;
  switch (which) {
  case R_TCB:
  case R_QE:
    rc = ra_pcs_split_signed(r->body, which == R_TCB ? "tcbInfo" : "enclaveIdentity", &body, &sig);
    if (rc) return rc;
    if ((rc = body_next_update(body, &nu))) return rc;
    rc = take_chain(r, which == R_TCB ? tcb_hdrs : qe_hdrs,
                    &f->parts[which == R_TCB ? RA_PCS_TCB_CHAIN : RA_PCS_QE_CHAIN]);
    if (rc) return rc;
    if (ra_buf_append(&f->parts[which == R_TCB ? RA_PCS_TCB_INFO : RA_PCS_QE_ID], body.ptr, body.len) ||
        ra_buf_append(&f->parts[which == R_TCB ? RA_PCS_TCB_SIG : RA_PCS_QE_SIG], sig.ptr, sig.len))
      return -ENOMEM;
    break;
  case R_PCKCRL:
    if ((rc = ra_pcs_crl_to_hex(r->body, &f->parts[RA_PCS_PCK_CRL], &nu))) return rc;
    if ((rc = take_chain(r, crl_hdrs, &f->parts[RA_PCS_PCK_CRL_CHAIN]))) return rc;
    break;
  default:
    if ((rc = ra_pcs_crl_to_hex(r->body, &f->parts[RA_PCS_ROOT_CRL], &nu))) return rc;
    break;
  }
  if (nu < f->next_update) f->next_update = nu;
  return 0;
}

static void assemble(ra_pcs_fetch *f) {
  ra_str parts[RA_PCS_NPARTS];
  for (int i = 0; i < RA_PCS_NPARTS; i++) parts[i] = buf_str(&f->parts[i]);
  ra_buf doc = {0};
  if (ra_pcs_doc_write(&doc, parts)) {
    ra_buf_free(&doc);
    finish(f, -ENOMEM);
    return;
  }
  ra_pcs_result res = {.doc = buf_str(&doc), .next_update = f->next_update};
  int64_t now = f->opts.now ? f->opts.now : (int64_t)time(NULL);
  if (f->next_update <= now)
    ra_log(RA_LOG_WARN, "pcs: the collateral served for this FMSPC is already past its nextUpdate");
  if (!f->opts.no_cache) {
    /* the parts were each checked as they came: no second parse of the document */
    int rc = cache_write(f->cache_dir, &f->key, res.doc);
    if (rc) ra_log(RA_LOG_WARN, "pcs: cannot write the cache in %s: %s", f->cache_dir, ra_strerror(rc));
    else res.cache_written = true;
  }
  f->finished = true;
  f->cb(0, &res, f->ud);
  ra_buf_free(&doc);
  fetch_free(f);
}

static void on_got(int err, const ra_http_response *r, void *ud) {
  struct sub *s = ud;
  ra_pcs_fetch *f = s->f;
  s->done = true;
  s->g = NULL;
  if (f->finished) return;
  if (!err) {
    if (r->status == 404) {
      ra_log(RA_LOG_ERROR, "pcs: %s: 404 Not Found (%s)", s->url, req_names[s->which]);
      err = -ENOENT;
    } else if (r->status != 200) {
      ra_log(RA_LOG_ERROR, "pcs: %s: HTTP status %d (%s)", s->url, r->status, req_names[s->which]);
      err = -EPROTO;
    } else if ((err = take(f, s->which, r))) {
      ra_log(RA_LOG_ERROR, "pcs: %s: not a valid %s answer (%s)", s->url, req_names[s->which],
             ra_strerror(err));
    }
  } else {
    ra_log(RA_LOG_ERROR, "pcs: %s: %s", s->url, ra_strerror(err));
  }
  if (err) {
    finish(f, err);
    return;
  }
  if (++f->ndone == R_N) assemble(f);
}

static void on_deferred(ra_defer *d, void *ud) {
  ra_pcs_fetch *f = ud;
  ra_pcs_result res = {.doc = ra_str_make(f->doc, f->doc_len), .next_update = f->doc_next_update,
                       .from_cache = true};
  f->finished = true;
  f->cb(0, &res, f->ud);
  fetch_free(f);
}

static char *dup_or_null(const char *s, bool *oom) {
  if (!s) return NULL;
  char *d = strdup(s);
  if (!d) *oom = true;
  return d;
}

static char *url_of(const char *base, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static char *url_of(const char *base, const char *fmt, ...) {
  ra_buf b = {0};
  size_t bl = strlen(base);
  while (bl && base[bl - 1] == '/') bl--;
  va_list ap;
  va_start(ap, fmt);
  char tail[256];
  int n = vsnprintf(tail, sizeof tail, fmt, ap);
  va_end(ap);
  if (n < 0 || (size_t)n >= sizeof tail || ra_buf_append(&b, base, bl) || ra_buf_append_str(&b, tail) ||
      ra_buf_append(&b, "", 1)) {
    ra_buf_free(&b);
    return NULL;
  }
  size_t len;
  return (char *)ra_buf_steal(&b, &len);
}

int ra_pcs_fetch_start(ra_loop *loop, const ra_pcs_opts *opts, const ra_pcs_key *key, ra_pcs_cb cb,
                       void *ud, ra_pcs_fetch **out) {
  if (out) *out = NULL;
  if (!loop || !opts || !opts->base_url || !key || !cb) return -EINVAL;
  ra_pcs_fetch *f = calloc(1, sizeof *f);
  if (!f) return -ENOMEM;
  f->loop = loop;
  f->cb = cb;
  f->ud = ud;
  f->key = *key;
  f->opts = *opts;
  f->next_update = INT64_MAX;
  ra_defer_init(&f->defer, on_deferred, f);
  bool oom = false;
  f->base_url = dup_or_null(opts->base_url, &oom);
  f->root_crl_url = dup_or_null(opts->root_crl_url, &oom);
  f->ca_file = dup_or_null(opts->ca_file, &oom);
  if (!opts->no_cache) {
    if (opts->cache_dir) {
      f->cache_dir = dup_or_null(opts->cache_dir, &oom);
    } else {
      char d[4096];
      if (ra_pcs_cache_default_dir(d, sizeof d)) {
        ra_log(RA_LOG_WARN, "pcs: no cache directory (neither XDG_CACHE_HOME nor HOME): not caching");
        f->opts.no_cache = true;
      } else {
        f->cache_dir = dup_or_null(d, &oom);
      }
    }
  }
  f->opts.base_url = f->opts.root_crl_url = f->opts.cache_dir = f->opts.ca_file = NULL;
  if (oom) {
    fetch_free(f);
    return -ENOMEM;
  }
  int64_t now = opts->now ? opts->now : (int64_t)time(NULL);
  int64_t before = opts->refresh_before > 0 ? opts->refresh_before : opts->refresh_before < 0 ? 0 : 3600;
  if (!f->opts.no_cache) {
    int rc = ra_pcs_cache_load(f->cache_dir, key, now, before, &f->doc, &f->doc_len,
                               &f->doc_next_update);
    if (rc == 0) {
      ra_loop_defer(loop, &f->defer);
      if (out) *out = f;
      return 0;
    }
    if (rc == -ESTALE) {
      ra_log(RA_LOG_INFO, "pcs: cached collateral due for refresh: fetching");
      /* kept as a fallback while it has not reached its nextUpdate */
      if (ra_pcs_cache_load(f->cache_dir, key, now, 0, &f->doc, &f->doc_len, &f->doc_next_update))
        f->doc = NULL;
    }
  }
  const char *tee = key->tee == RA_PCS_TDX ? "tdx" : "sgx";
  char fm[13];
  ra_hex_encode(key->fmspc, 6, fm);
  for (int i = 0; i < 12; i++)
    if (fm[i] >= 'a' && fm[i] <= 'f') fm[i] = (char)(fm[i] - 'a' + 'A');
  f->sub[R_TCB].url = url_of(f->base_url, "/%s/certification/v4/tcb?fmspc=%s", tee, fm);
  f->sub[R_QE].url = url_of(f->base_url, "/%s/certification/v4/qe/identity", tee);
  f->sub[R_PCKCRL].url = url_of(f->base_url, "/sgx/certification/v4/pckcrl?ca=%s&encoding=der",
                                key->ca == RA_PCS_CA_PROCESSOR ? "processor" : "platform");
  /* Intel's PCS has no /rootcacrl: the root CA's CRL is where its
   * certificate's CRL distribution point says */
  const char *root_crl = f->root_crl_url;
  if (!root_crl && strcasestr(f->base_url, "://api.trustedservices.intel.com"))
    root_crl = RA_PCS_INTEL_ROOT_CRL_URL;
  f->sub[R_ROOTCRL].url = root_crl ? strdup(root_crl)
                                   : url_of(f->base_url, "/sgx/certification/v4/rootcacrl");
  ra_http_get_opts go = {.timeout_ms = opts->timeout_ms,
                         .max_body = opts->max_response ? opts->max_response : MAX_DOC,
                         .ca_file = f->ca_file};
  for (int i = 0; i < R_N; i++) {
    f->sub[i].f = f;
    f->sub[i].which = i;
    if (!f->sub[i].url) {
      fetch_free(f);
      return -ENOMEM;
    }
  }
  for (int i = 0; i < R_N; i++) {
    int rc = ra_http_get_start(loop, f->sub[i].url, &go, on_got, &f->sub[i], &f->sub[i].g);
    if (rc) {
      ra_log(RA_LOG_ERROR, "pcs: %s: %s", f->sub[i].url, ra_strerror(rc));
      fetch_free(f);
      return rc;
    }
  }
  if (out) *out = f;
  return 0;
}

void ra_pcs_fetch_cancel(ra_pcs_fetch *f) {
  if (!f || f->finished) return;
  f->finished = true;
  fetch_free(f);
}
