/* attest/quote/x509.c: decoding certificates, with a cache of decoded ones. */
#include "raloop/attest/quote/x509_internal.h"

#include "raloop/attest/quote/chain_internal.h"
#include "raloop/attest/quote/hexb64.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/x509v3.h>

void ra_cert_cache_clear(ra_cert_cache *c) {
  for (int i = 0; i < RA_CERT_CACHE_SIZE; i++) {
    free(c->entries[i].der);
    X509_free(c->entries[i].x);
    c->entries[i].der = NULL;
    c->entries[i].x = NULL;
  }
}

/* A new reference to the cached certificate with exactly these bytes. */
static X509 *cache_find(ra_cert_cache *c, const uint8_t *der, size_t len) {
  for (int i = 0; i < RA_CERT_CACHE_SIZE; i++) {
    struct ra_cert_entry *e = &c->entries[i];
    if (e->x && e->len == len && !memcmp(e->der, der, len)) {
      X509_up_ref(e->x);
      return e->x;
    }
  }
  return NULL;
}

/* Keeps x in the oldest slot; out of memory only means no caching. */
static void cache_put(ra_cert_cache *c, const uint8_t *der, size_t len, X509 *x) {
  struct ra_cert_entry *e = &c->entries[c->next++ % RA_CERT_CACHE_SIZE];
  uint8_t *copy = malloc(len);
  if (!copy) return;
  free(e->der);
  X509_free(e->x);
  memcpy(copy, der, len);
  e->der = copy;
  e->len = len;
  X509_up_ref(x);
  e->x = x;
}

/* Length of the DER SEQUENCE at p (header included), 0 if malformed. */
static size_t der_seq_len(const uint8_t *p, size_t avail) {
  size_t n, hl;
  if (avail < 2 || p[0] != 0x30) return 0;
  if (p[1] < 0x80) {
    n = p[1];
    hl = 2;
  } else {
    size_t k = p[1] & 0x7f;
    if (k == 0 || k > 3 || avail < 2 + k) return 0;
    n = 0;
    for (size_t i = 0; i < k; i++) n = n << 8 | p[2 + i];
    hl = 2 + k;
  }
  return avail - hl < n ? 0 : hl + n;
}

X509 *ra_cert_cache_lookup(ra_cert_cache *c, const uint8_t *der, size_t len, bool *pinned) {
  X509 *x = c->pinned ? ra_roots_find_der(c->pinned, der, len) : NULL;
  if (pinned) *pinned = x != NULL;
  return x || c->off ? x : cache_find(c, der, len);
}

/* One DER certificate of exactly len bytes (through the cache when given
 * and on). */
static X509 *decode_cert(ra_cert_cache *c, const uint8_t *der, size_t len) {
  const uint8_t *p = der;
  X509 *x = c ? ra_cert_cache_lookup(c, der, len, NULL) : NULL;
  if (x) return x;
  x = d2i_X509(NULL, &p, (long)len);
  if (!x || p != der + len) {
    X509_free(x);
    return NULL;
  }
  if (c && !c->off && (!c->ca_only || X509_check_ca(x) == 1)) cache_put(c, der, len, x);
  return x;
}

static const char PEM_BEGIN[] = "-----BEGIN CERTIFICATE-----";
static const char PEM_END[] = "-----END CERTIFICATE-----";

static bool is_padding(uint8_t b) {
  return b == 0 || b == ' ' || b == '\n' || b == '\r' || b == '\t';
}

/* The base64 text of the PEM block at p (at its BEGIN line), [*body, *end)
 * with *end at its END line; false without one. One block at a time: an
 * END that belongs to a later block (this one's END garbled) must not
 * swallow that block. */
static bool pem_body(const uint8_t *p, const uint8_t *e, const uint8_t **body, const uint8_t **end) {
  const uint8_t *b = p + sizeof PEM_BEGIN - 1;
  const uint8_t *q = memmem(b, (size_t)(e - b), PEM_END, sizeof PEM_END - 1);
  if (!q || memmem(b, (size_t)(q - b), "-----", 5)) return false;
  *body = b;
  *end = q;
  return true;
}

/* Room the DER of n bytes of base64 may need. */
static size_t pem_der_room(size_t n) { return n / 4 * 3 + 3; }

/* The DER certificate a PEM body holds, decoded into out[0..cap): its
 * length, 0 when out is too small, the base64 is bad or it is not exactly
 * one DER SEQUENCE. */
static size_t pem_der(const uint8_t *body, const uint8_t *end, uint8_t *out, size_t cap) {
  size_t n = (size_t)(end - body), dlen;
  if (pem_der_room(n) > cap || ra_base64_decode(body, n, out, &dlen) || der_seq_len(out, dlen) != dlen)
    return 0;
  return dlen;
}

/* Whether der is the certificate d leaves out (then marked as found). */
static bool deferred(ra_cert_defer *d, const uint8_t *der, size_t len, int idx) {
  if (!d || d->at >= 0 || len != d->len || memcmp(der, d->der, len)) return false;
  d->at = idx;
  return true;
}

/* A placeholder for a certificate left out (never dereferenced). */
static X509 *const DEFERRED = (X509 *)&DEFERRED;

/* Decodes the PEM certificate block starting at *p (at its BEGIN line) and
 * moves *p past its END line. NULL when the block is malformed. */
static X509 *decode_pem_block(ra_cert_cache *c, ra_cert_defer *d, int idx, const uint8_t **p,
                              const uint8_t *e) {
  const uint8_t *body, *q;
  size_t dlen;
  X509 *x = NULL;
  if (!pem_body(*p, e, &body, &q)) return NULL;
  size_t room = pem_der_room((size_t)(q - body));
  uint8_t *der = malloc(room);
  if (der && (dlen = pem_der(body, q, der, room)))
    x = deferred(d, der, dlen, idx) ? DEFERRED : decode_cert(c, der, dlen);
  free(der);
  *p = q + sizeof PEM_END - 1;
  return x;
}

/* Decodes the DER certificate at *p and moves *p past it. */
static X509 *decode_der_block(ra_cert_cache *c, ra_cert_defer *d, int idx, const uint8_t **p,
                              const uint8_t *e) {
  size_t n = der_seq_len(*p, (size_t)(e - *p));
  if (!n) return NULL;
  X509 *x = deferred(d, *p, n, idx) ? DEFERRED : decode_cert(c, *p, n);
  *p += n;
  return x;
}

static bool at_pem_begin(const uint8_t *p, const uint8_t *e) {
  return (size_t)(e - p) >= sizeof PEM_BEGIN - 1 && !memcmp(p, PEM_BEGIN, sizeof PEM_BEGIN - 1);
}

STACK_OF(X509) * ra_certs_parse_defer(ra_cert_cache *c, const uint8_t *data, size_t len,
                                      ra_cert_defer *d) {
  STACK_OF(X509) *sk = sk_X509_new_null();
  const uint8_t *p = data, *e = data + len;
  int n = 0; /* certificates in the blob, the one left out included */
  if (d) d->at = -1;
  if (!sk) return NULL;
  while (p < e) {
    if (is_padding(*p)) {
      p++;
      continue;
    }
    if (n >= RA_MAX_CHAIN_CERTS) goto bad;
    X509 *x = at_pem_begin(p, e) ? decode_pem_block(c, d, n, &p, e)
                                 : decode_der_block(c, d, n, &p, e);
    if (!x) goto bad;
    n++;
    if (x == DEFERRED) continue;
    if (!sk_X509_push(sk, x)) {
      X509_free(x);
      goto bad;
    }
  }
  if (n == 0) goto bad;
  return sk;
bad:
  ERR_clear_error();
  sk_X509_pop_free(sk, X509_free);
  if (d) d->at = -1;
  return NULL;
}

/* The DER of the PEM block at *p (at its BEGIN line) decoded into
 * buf[*used..cap), *p moved past its END line; false when malformed (as
 * decode_pem_block would refuse it) or buf is full. */
static bool split_pem_block(const uint8_t **p, const uint8_t *e, uint8_t *buf, size_t cap,
                            size_t *used, ra_der_span *out) {
  const uint8_t *body, *q;
  size_t dlen;
  if (!pem_body(*p, e, &body, &q) || !(dlen = pem_der(body, q, buf + *used, cap - *used))) return false;
  *out = (ra_der_span){buf + *used, dlen};
  *used += dlen;
  *p = q + sizeof PEM_END - 1;
  return true;
}

int ra_certs_split(const uint8_t *data, size_t len, uint8_t *buf, size_t cap, ra_der_span *out,
                   int max) {
  const uint8_t *p = data, *e = data + len;
  size_t used = 0;
  int n = 0;
  while (p < e) {
    if (is_padding(*p)) {
      p++;
      continue;
    }
    if (n >= max || n >= RA_MAX_CHAIN_CERTS) return -EBADMSG;
    if (at_pem_begin(p, e)) {
      if (!split_pem_block(&p, e, buf, cap, &used, &out[n])) return -EBADMSG;
    } else {
      size_t m = der_seq_len(p, (size_t)(e - p));
      if (!m) return -EBADMSG;
      out[n] = (ra_der_span){p, m};
      p += m;
    }
    n++;
  }
  return n ? n : -EBADMSG;
}

STACK_OF(X509) * ra_certs_parse(ra_cert_cache *c, const uint8_t *data, size_t len) {
  return ra_certs_parse_defer(c, data, len, NULL);
}

size_t ra_intel_root_der(uint8_t *out, size_t cap) {
  const uint8_t *p = (const uint8_t *)ra_intel_sgx_root_ca_pem;
  const uint8_t *e = p + strlen(ra_intel_sgx_root_ca_pem);
  const uint8_t *b = memmem(p, (size_t)(e - p), PEM_BEGIN, sizeof PEM_BEGIN - 1), *body, *q;
  return b && pem_body(b, e, &body, &q) ? pem_der(body, q, out, cap) : 0;
}

bool ra_cert_self_issued(X509 *x) { return X509_check_issued(x, x) == X509_V_OK; }

/* Whether x issued another certificate of sk. */
static bool issued_another(STACK_OF(X509) * sk, int i) {
  X509 *x = sk_X509_value(sk, i);
  for (int j = 0; j < sk_X509_num(sk); j++)
    if (j != i && X509_check_issued(x, sk_X509_value(sk, j)) == X509_V_OK) return true;
  return false;
}

X509 *ra_certs_leaf(STACK_OF(X509) * sk) {
  X509 *leaf = NULL;
  for (int i = 0; i < sk_X509_num(sk); i++) {
    if (issued_another(sk, i)) continue;
    if (leaf) return NULL; /* two leaves: not one path */
    leaf = sk_X509_value(sk, i);
  }
  return leaf;
}

void ra_cert_subject_line(X509 *x, char *out, size_t n) {
  if (!X509_NAME_oneline(X509_get_subject_name(x), out, (int)n)) snprintf(out, n, "?");
}

time_t ra_asn1_time_to_unix(const ASN1_TIME *t) {
  struct tm tm;
  if (!t || !ASN1_TIME_to_tm(t, &tm)) return 0;
  return timegm(&tm);
}

int ra_cert_pck_ext(X509 *leaf, const ASN1_OBJECT *oid, ra_pck_info *out) {
  int idx = X509_get_ext_by_OBJ(leaf, oid, -1);
  X509_EXTENSION *ext = idx >= 0 ? X509_get_ext(leaf, idx) : NULL;
  ASN1_OCTET_STRING *os = ext ? X509_EXTENSION_get_data(ext) : NULL;
  if (!os) return -ENOENT;
  /* twice: which one would be the platform's? */
  if (X509_get_ext_by_OBJ(leaf, oid, idx) >= 0 ||
      ra_pck_parse_ext(ASN1_STRING_get0_data(os), (size_t)ASN1_STRING_length(os), out))
    return -EINVAL;
  return 0;
}
