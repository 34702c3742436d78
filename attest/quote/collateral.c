/* attest/quote/collateral.c: the collateral set (collateral.h): loading
 * the dcap-qvl JSON document or a directory of PCS responses, and the
 * collateral check of a verification (signatures, issuer chains, CRLs,
 * freshness, matching). TCB info and QE identity bodies are parsed by
 * tcb_info.c and qe_identity.c. */
#include "raloop/attest/quote/collateral.h"

#include "raloop/attest/quote/chain_internal.h"
#include "raloop/attest/quote/collateral_internal.h"
#include "raloop/attest/quote/identity_internal.h"
#include "raloop/attest/quote/crl_internal.h"
#include "raloop/attest/quote/crypto_internal.h"
#include "raloop/attest/quote/hexb64.h"
#include "raloop/attest/quote/verdict_internal.h"
#include "raloop/attest/quote/x509_internal.h"
#include "raloop/core/file.h"
#include "raloop/core/log.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <openssl/err.h>

#define MAX_DOC (16u << 20)

/* ---- helpers shared with tcb_info.c and qe_identity.c ---- */

static const char *const STATUS_NAMES[RA_TCB__COUNT] = {
    "None",      "UpToDate", "SWHardeningNeeded", "ConfigurationNeeded",
    "ConfigurationAndSWHardeningNeeded",  "OutOfDate", "OutOfDateConfigurationNeeded",
    "Revoked",   "NotSupported",
};

const char *ra_tcb_status_name(ra_tcb_status s) {
  return (unsigned)s < RA_TCB__COUNT ? STATUS_NAMES[s] : "?";
}

int ra_tcb_status_from_name(const char *s, ra_tcb_status *out) {
  for (int i = 1; s && i < RA_TCB__COUNT; i++)
    if (!strcmp(s, STATUS_NAMES[i])) {
      *out = (ra_tcb_status)i;
      return 0;
    }
  return -EINVAL;
}

int ra_tcb_status_parse(const char *s, ra_tcb_status *st) {
  return ra_tcb_status_from_name(s, st) ? -1 : 0;
}

/* "2024-03-13T09:54:15Z" (Intel's form; fractional seconds tolerated). */
static int parse_time(const char *s, time_t *t) {
  struct tm tm = {0};
  int n = 0;
  if (sscanf(s, "%4d-%2d-%2dT%2d:%2d:%2d%n", &tm.tm_year, &tm.tm_mon, &tm.tm_mday, &tm.tm_hour,
             &tm.tm_min, &tm.tm_sec, &n) != 6)
    return -1;
  const char *p = s + n;
  if (*p == '.')
    for (p++; *p >= '0' && *p <= '9'; p++);
  if (strcmp(p, "Z") != 0 || tm.tm_mon < 1 || tm.tm_mon > 12 || tm.tm_mday < 1 ||
      tm.tm_mday > 31 || tm.tm_hour > 23 || tm.tm_min > 59 || tm.tm_sec > 60 ||
      tm.tm_year < 1970)
    return -1;
  tm.tm_year -= 1900;
  tm.tm_mon -= 1;
  *t = timegm(&tm);
  return 0;
}

int ra_json_time(json_t *o, const char *key, time_t *t) {
  const char *s = json_string_value(json_object_get(o, key));
  return s ? parse_time(s, t) : -1;
}

int ra_json_hex(json_t *o, const char *key, uint8_t *out, size_t n) {
  json_t *v = json_object_get(o, key);
  const char *s = json_string_value(v);
  return s && ra_hex_decode_exact(s, json_string_length(v), out, n) == 0 ? 0 : -1;
}

int ra_json_int(json_t *o, const char *key, long lo, long hi, long *v) {
  json_t *j = json_object_get(o, key);
  if (!json_is_integer(j)) return -1;
  json_int_t x = json_integer_value(j);
  if (x < lo || x > hi) return -1;
  *v = (long)x;
  return 0;
}

int ra_json_level_common(json_t *lv, ra_tcb_level *l) {
  const char *st = json_string_value(json_object_get(lv, "tcbStatus"));
  if (!st || ra_tcb_status_parse(st, &l->status)) return -1;
  if (ra_json_time(lv, "tcbDate", &l->date)) return -1;
  json_t *adv = json_object_get(lv, "advisoryIDs");
  if (!adv) return 0;
  if (!json_is_array(adv) || json_array_size(adv) > RA_MAX_ADVISORIES) return -1;
  l->n_adv = json_array_size(adv);
  if (l->n_adv == 0) return 0;
  l->adv = calloc(l->n_adv, sizeof *l->adv);
  if (!l->adv) return -1;
  for (size_t i = 0; i < l->n_adv; i++) {
    const char *a = json_string_value(json_array_get(adv, i));
    if (!a || strlen(a) == 0 || strlen(a) >= RA_ADVISORY_LEN) return -1;
    memcpy(l->adv[i], a, strlen(a) + 1);
  }
  return 0;
}

void ra_levels_free(ra_tcb_level *l, size_t n) {
  for (size_t i = 0; l && i < n; i++) free(l[i].adv);
  free(l);
}

/* ---- the collateral ---- */

void ra_collateral_free(ra_collateral *c) {
  if (!c) return;
  free(c->tcb_body.raw);
  free(c->qe_body.raw);
  sk_X509_pop_free(c->tcb_body.chain, X509_free);
  sk_X509_pop_free(c->qe_body.chain, X509_free);
  sk_X509_pop_free(c->tcb_body.validated, X509_free);
  sk_X509_pop_free(c->qe_body.validated, X509_free);
  ra_crl_set_clear(&c->crls);
  ra_tcb_info_clear(&c->tcb);
  ra_qe_identity_clear(&c->qe);
  free(c);
}

static int fail(const char *what) {
  ra_debug("collateral: %s", what);
  return RA_ERR_COLLATERAL_PARSE;
}

/* A CRL given as hex DER (dcap-qvl), raw DER or PEM. */
static int add_crl(ra_collateral *c, const uint8_t *p, size_t n) {
  /* the identity covers the bytes as given, not a re-encoding */
  ra_hash_part idp[2] = {{c->crls_id, 32}, {p, n}};
  if (!ra_hash_parts(EVP_sha256(), idp, 2, c->crls_id)) return -ENOMEM;
  /* plain hex (dcap-qvl's form) decodes in one pass; anything else (hex
   * with whitespace or 0x, DER, PEM) goes by the detected encoding */
  uint8_t *plain = n >= 2 && n % 2 == 0 ? malloc(n / 2) : NULL;
  if (plain && !ra_hex_decode_exact((const char *)p, n, plain, n / 2)) {
    int rc = ra_crl_set_add(&c->crls, plain, n / 2);
    free(plain);
    return rc == -ENOMEM ? rc : rc < 0 ? fail("a CRL does not parse") : 0;
  }
  free(plain);
  if (n >= 2 && ra_detect_encoding(p, n) == RA_ENC_HEX) {
    uint8_t *der = malloc(n / 2 + 1);
    if (!der) return -ENOMEM;
    int rc = ra_hex_decode_exact((const char *)p, n, der, n / 2);
    if (!rc) rc = ra_crl_set_add(&c->crls, der, n / 2);
    free(der);
    return rc == -ENOMEM ? rc : rc < 0 ? fail("a CRL does not parse") : 0;
  }
  int rc = ra_crl_set_add(&c->crls, p, n);
  return rc == -ENOMEM ? rc : rc < 0 ? fail("a CRL does not parse") : 0;
}

static int set_body(ra_signed_body *b, const char *raw, size_t len, const char *sighex,
                    size_t siglen, const char *what) {
  if (len == 0 || len > MAX_DOC) return fail(what);
  b->raw = malloc(len + 1);
  if (!b->raw) return -ENOMEM;
  memcpy(b->raw, raw, len);
  b->raw[len] = '\0';
  b->len = len;
  /* Intel's signature is r||s, 64 bytes of hex */
  if (!sighex || ra_hex_decode_exact(sighex, siglen, b->sig, 64)) return fail(what);
  return 0;
}

/* The issuer chain of b; the Intel root in it is left for the verification
 * to supply (ra_signed_body.root_at). */
static int set_chain(ra_signed_body *b, const char *pem, size_t len, const char *what) {
  uint8_t root[2048];
  ra_cert_defer d = {root, 0, -1};
  if (!pem || len == 0) return fail(what);
  ra_hash_part idp[1] = {{(const uint8_t *)pem, len}};
  if (!ra_hash_parts(EVP_sha256(), idp, 1, b->chain_id)) return -ENOMEM;
  d.len = ra_intel_root_der(root, sizeof root);
  b->chain = ra_certs_parse_defer(NULL, (const uint8_t *)pem, len, d.len ? &d : NULL);
  b->root_at = d.at;
  ERR_clear_error();
  return b->chain ? 0 : fail(what);
}

/* b's chain with the verifier's pinned object for the Intel root left out
 * when parsing, or that root decoded now (the verifier pins another). The
 * same object as `have` when given (the QE identity's chain is then the TCB
 * info's). False on ENOMEM only: the bytes are the compiled-in root's. */
static bool complete_chain(ra_signed_body *b, const ra_roots *roots, X509 *have) {
  uint8_t root[2048];
  size_t n;
  X509 *x = have;
  if (b->root_at < 0) return true;
  if (x ? !X509_up_ref(x) : !(n = ra_intel_root_der(root, sizeof root))) return false;
  if (!x && !(x = ra_roots_find_der(roots, root, n))) {
    const uint8_t *p = root;
    x = d2i_X509(NULL, &p, (long)n);
    ERR_clear_error();
  }
  if (!x || !sk_X509_insert(b->chain, x, b->root_at)) {
    X509_free(x);
    return false;
  }
  b->root_at = -1;
  return true;
}

/* One DER into the identity hash (its length first, so that the
 * concatenation is unambiguous). */
static bool id_add(EVP_MD_CTX *md, const uint8_t *p, size_t n) {
  uint8_t l[8];
  for (int i = 0; i < 8; i++) l[i] = (uint8_t)((uint64_t)n >> (8 * i));
  return EVP_DigestUpdate(md, l, 8) == 1 && (!n || EVP_DigestUpdate(md, p, n) == 1);
}

/* A body, its signature and its issuer chain (the bytes as given: two
 * encodings of one certificate are two identities, as they may verify
 * differently). */
static bool id_add_body(EVP_MD_CTX *md, const ra_signed_body *b) {
  return id_add(md, (const uint8_t *)b->raw, b->len) && id_add(md, b->sig, 64) &&
         id_add(md, b->chain_id, 32);
}

/* ra_collateral_id: everything a verdict can depend on, once loaded. */
static int take_id(ra_collateral *c) {
  EVP_MD_CTX *md = EVP_MD_CTX_new();
  bool ok = md && EVP_DigestInit_ex(md, EVP_sha256(), NULL) == 1 &&
            id_add_body(md, &c->tcb_body) && id_add_body(md, &c->qe_body) &&
            id_add(md, c->crls_id, 32);
  ok = ok && EVP_DigestFinal_ex(md, c->id, NULL) == 1;
  EVP_MD_CTX_free(md);
  ERR_clear_error();
  return ok ? 0 : -ENOMEM;
}

const uint8_t *ra_collateral_id(const ra_collateral *c) { return c->id; }

/* Parses the bodies once the raw pieces are in. */
static int finish(ra_collateral *c) {
  if (ra_tcb_info_parse(c->tcb_body.raw, c->tcb_body.len, &c->tcb))
    return fail("tcb_info does not parse as Intel's TCB info (v2/v3)");
  if (ra_qe_identity_parse(c->qe_body.raw, c->qe_body.len, &c->qe))
    return fail("qe_identity does not parse as Intel's enclave identity (v2)");
  return take_id(c);
}

static ra_collateral *coll_new(void) {
  ra_collateral *c = calloc(1, sizeof *c);
  if (c) c->tcb_body.root_at = c->qe_body.root_at = -1;
  if (c && ra_crl_set_init(&c->crls)) {
    free(c);
    return NULL;
  }
  return c;
}

static const char *jstr(json_t *o, const char *k, size_t *len) {
  json_t *v = json_object_get(o, k);
  *len = json_string_length(v);
  return json_string_value(v);
}

int ra_collateral_parse_json(const char *json, size_t len, ra_collateral **out) {
  json_error_t e;
  ra_collateral *c;
  int rc;
  if (!out) return -EINVAL;
  *out = NULL;
  if (!json || len == 0 || len > MAX_DOC) return fail("empty or oversized document");
  json_t *d = json_loadb(json, len, JSON_REJECT_DUPLICATES, &e);
  if (!d || !json_is_object(d)) {
    json_decref(d);
    ra_debug("collateral: JSON: %s (line %d)", e.text, e.line);
    return RA_ERR_COLLATERAL_PARSE;
  }
  if (!(c = coll_new())) {
    json_decref(d);
    return -ENOMEM;
  }
  size_t n1, n2;
  const char *s1, *s2;
  s1 = jstr(d, "tcb_info", &n1);
  s2 = jstr(d, "tcb_info_signature", &n2);
  rc = s1 ? set_body(&c->tcb_body, s1, n1, s2, n2, "tcb_info / tcb_info_signature")
          : fail("no tcb_info");
  if (!rc) {
    s1 = jstr(d, "qe_identity", &n1);
    s2 = jstr(d, "qe_identity_signature", &n2);
    rc = s1 ? set_body(&c->qe_body, s1, n1, s2, n2, "qe_identity / qe_identity_signature")
            : fail("no qe_identity");
  }
  if (!rc) {
    s1 = jstr(d, "tcb_info_issuer_chain", &n1);
    rc = set_chain(&c->tcb_body, s1, n1, "tcb_info_issuer_chain");
  }
  if (!rc) {
    /* Intel signs both with the same TCB signing certificate: the same
     * chain is decoded once (decoding dominates the cost of a cold load) */
    s2 = jstr(d, "tcb_info_issuer_chain", &n2);
    s1 = jstr(d, "qe_identity_issuer_chain", &n1);
    if (s1 && s2 && n1 == n2 && !memcmp(s1, s2, n1)) {
      rc = (c->qe_body.chain = X509_chain_up_ref(c->tcb_body.chain)) ? 0 : -ENOMEM;
      c->qe_body.root_at = c->tcb_body.root_at;
      memcpy(c->qe_body.chain_id, c->tcb_body.chain_id, 32);
    } else {
      rc = set_chain(&c->qe_body, s1, n1, "qe_identity_issuer_chain");
    }
  }
  /* pck_crl_issuer_chain is not needed: a CRL is checked against the
   * issuer in the validated PCK chain itself. Its shape is checked (a
   * string when present), not its certificates. */
  if (!rc && json_object_get(d, "pck_crl_issuer_chain") &&
      !json_is_string(json_object_get(d, "pck_crl_issuer_chain")))
    rc = fail("pck_crl_issuer_chain");
  for (int i = 0; !rc && i < 2; i++) {
    const char *k = i ? "pck_crl" : "root_ca_crl";
    s1 = jstr(d, k, &n1);
    rc = s1 && n1 ? add_crl(c, (const uint8_t *)s1, n1) : fail(k);
  }
  json_decref(d);
  if (!rc) rc = finish(c);
  if (rc) {
    ra_collateral_free(c);
    return rc;
  }
  *out = c;
  return 0;
}

/* ---- a directory of PCS responses ---- */

static void skip_ws(const char **p, const char *e) {
  while (*p < e && (**p == ' ' || **p == '\n' || **p == '\r' || **p == '\t')) (*p)++;
}

/* Skips one JSON string at *p ('"'); false when unterminated. */
static bool skip_string(const char **p, const char *e) {
  if (*p >= e || **p != '"') return false;
  for ((*p)++; *p < e; (*p)++) {
    if (**p == '\\') {
      (*p)++;
      continue;
    }
    if (**p == '"') {
      (*p)++;
      return true;
    }
  }
  return false;
}

/* Skips one JSON value (the document was validated by jansson first; on
 * anything else it stops, false, and never reads outside [*p, e)). */
static bool skip_value(const char **p, const char *e) {
  int depth = 0;
  do {
    skip_ws(p, e);
    if (*p >= e) return false;
    const char *start = *p;
    char ch = **p;
    if (ch == '"') {
      if (!skip_string(p, e)) return false;
    } else if (ch == '{' || ch == '[') {
      depth++;
      (*p)++;
    } else if (ch == '}' || ch == ']') {
      depth--;
      (*p)++;
    } else {
      while (*p < e && **p && !strchr(",}] \n\r\t", **p)) (*p)++;
    }
    if (*p == start) return false; /* a NUL, or ',' where a value belongs */
    skip_ws(p, e);
    if (depth > 0 && *p < e && (**p == ',' || **p == ':')) (*p)++;
  } while (depth > 0 && depth < 64);
  return depth == 0;
}

/* The exact bytes of the value of top-level member key: what Intel signed. */
int ra_json_raw_member(const char *doc, size_t len, const char *key, const char **v, size_t *vlen) {
  const char *p = doc, *e = doc + len;
  size_t kl = strlen(key);
  skip_ws(&p, e);
  if (p >= e || *p++ != '{') return -1;
  for (;;) {
    skip_ws(&p, e);
    const char *k = p;
    if (!skip_string(&p, e)) return -1;
    bool match = (size_t)(p - k) == kl + 2 && !memcmp(k + 1, key, kl);
    skip_ws(&p, e);
    if (p >= e || *p++ != ':') return -1;
    skip_ws(&p, e);
    const char *s = p;
    if (!skip_value(&p, e)) return -1;
    if (match) {
      const char *t = p;
      while (t > s && strchr(" \n\r\t", t[-1])) t--;
      *v = s;
      *vlen = (size_t)(t - s);
      return 0;
    }
    skip_ws(&p, e);
    if (p >= e || *p != ',') return -1;
    p++;
  }
}

/* {"<key>": {...}, "signature": "hex"} as PCS serves it. */
static int load_pcs_body(ra_signed_body *b, const uint8_t *doc, size_t len, const char *key) {
  json_error_t e;
  json_t *d = json_loadb((const char *)doc, len, JSON_REJECT_DUPLICATES, &e);
  const char *raw;
  size_t rawlen, sl;
  int rc;
  if (!d || !json_is_object(json_object_get(d, key))) {
    json_decref(d);
    return fail(key);
  }
  const char *sig = jstr(d, "signature", &sl);
  if (ra_json_raw_member((const char *)doc, len, key, &raw, &rawlen))
    rc = fail(key);
  else
    rc = set_body(b, raw, rawlen, sig, sl, key);
  json_decref(d);
  return rc;
}

/* Reads the first of names that exists in dir. -ENOENT when none does. */
static int read_one(const char *dir, const char *const *names, uint8_t **out, size_t *len) {
  char path[4096];
  for (; *names; names++) {
    if ((size_t)snprintf(path, sizeof path, "%s/%s", dir, *names) >= sizeof path)
      return -ENAMETOOLONG;
    int rc = ra_file_read(path, MAX_DOC, out, len);
    if (rc != -ENOENT) return rc;
  }
  return -ENOENT;
}

static int load_dir(const char *dir, ra_collateral **out) {
  static const char *const tcb_n[] = {"tcb.json", "tcb_info.json", "tcbInfo.json", NULL};
  static const char *const qe_n[] = {"qe_identity.json", "qeIdentity.json", "identity.json",
                                     NULL};
  static const char *const tcbc_n[] = {"tcb_info_issuer_chain.pem", "tcbSignChain.pem", NULL};
  static const char *const qec_n[] = {"qe_identity_issuer_chain.pem",
                                      "enclave_identity_issuer_chain.pem",
                                      "tcb_info_issuer_chain.pem", "tcbSignChain.pem", NULL};
  static const char *const root_crl_n[] = {"root_ca_crl.der", "root_ca_crl.pem", "rootcacrl.der",
                                           "rootCaCrl.der", "rootCaCrl.pem", NULL};
  static const char *const pck_crl_n[] = {"pck_crl.der", "pck_crl.pem", "pckcrl.der",
                                          "intermediateCaCrl.der", "intermediateCaCrl.pem", NULL};
  ra_collateral *c = coll_new();
  uint8_t *b = NULL;
  size_t n;
  int rc;
  if (!c) return -ENOMEM;
  rc = read_one(dir, tcb_n, &b, &n);
  if (!rc) rc = load_pcs_body(&c->tcb_body, b, n, "tcbInfo");
  free(b), b = NULL;
  if (!rc) rc = read_one(dir, qe_n, &b, &n);
  if (!rc) rc = load_pcs_body(&c->qe_body, b, n, "enclaveIdentity");
  free(b), b = NULL;
  uint8_t *tb = NULL;
  size_t tn = 0;
  if (!rc) rc = read_one(dir, tcbc_n, &tb, &tn);
  if (!rc) rc = set_chain(&c->tcb_body, (const char *)tb, tn, "TCB info issuer chain");
  if (!rc) rc = read_one(dir, qec_n, &b, &n);
  if (!rc && n == tn && !memcmp(b, tb, n)) { /* the same chain: decoded once */
    rc = (c->qe_body.chain = X509_chain_up_ref(c->tcb_body.chain)) ? 0 : -ENOMEM;
    c->qe_body.root_at = c->tcb_body.root_at;
    memcpy(c->qe_body.chain_id, c->tcb_body.chain_id, 32);
  } else if (!rc) {
    rc = set_chain(&c->qe_body, (const char *)b, n, "QE identity issuer chain");
  }
  free(b), b = NULL;
  free(tb);
  if (!rc) rc = read_one(dir, root_crl_n, &b, &n);
  if (!rc) rc = add_crl(c, b, n);
  free(b), b = NULL;
  if (!rc) rc = read_one(dir, pck_crl_n, &b, &n);
  if (!rc) rc = add_crl(c, b, n);
  free(b), b = NULL;
  if (!rc) rc = finish(c);
  if (rc == -ENOENT) rc = fail("a file of the collateral directory is missing");
  if (rc) {
    ra_collateral_free(c);
    return rc;
  }
  *out = c;
  return 0;
}

int ra_collateral_load(const char *path, ra_collateral **out) {
  struct stat st;
  if (!path || !out) return -EINVAL;
  *out = NULL;
  if (stat(path, &st) != 0) return -errno;
  if (S_ISDIR(st.st_mode)) return load_dir(path, out);
  uint8_t *b;
  size_t n;
  int rc = ra_file_read(path, MAX_DOC, &b, &n);
  if (rc) return rc;
  rc = ra_collateral_parse_json((const char *)b, n, out);
  free(b);
  return rc;
}

void ra_collateral_get_info(const ra_collateral *c, ra_collateral_info *i) {
  memset(i, 0, sizeof *i);
  if (!c) return;
  snprintf(i->tcb_id, sizeof i->tcb_id, "%s", c->tcb.tdx ? "TDX" : "SGX");
  memcpy(i->fmspc, c->tcb.fmspc, 6);
  memcpy(i->pceid, c->tcb.pceid, 2);
  i->tcb_info_version = c->tcb.version;
  i->tcb_eval_number = c->tcb.eval_number;
  i->tcb_info_issue = c->tcb.issue;
  i->tcb_info_next_update = c->tcb.next_update;
  i->qe_identity_issue = c->qe.issue;
  i->qe_identity_next_update = c->qe.next_update;
  i->n_tcb_levels = (int)c->tcb.n_levels;
}

/* ---- the check of a verification ---- */

static void note_expiry(ra_verdict *vd, time_t next) {
  if (next && (!vd->collateral_expiry || next < vd->collateral_expiry))
    vd->collateral_expiry = next;
}

/* One signed body: issuer chain to a pinned root at `at`, the chain's CRLs
 * (required: the root's CRL), the signature by the signing certificate. */
/* The issuer chain validated to a pinned root at `at`: the memoised path
 * when `at` is inside its certificates' common window and its root is
 * pinned here, else a full validation (then memoised). */
static STACK_OF(X509) * signer_chain(ra_signed_body *b, X509 *leaf, const ra_roots *roots,
                                     time_t at, const char *what, ra_verdict *vd) {
  STACK_OF(X509) *chain;
  if (b->validated && at >= b->valid_from && at < b->valid_to &&
      ra_roots_has(roots, sk_X509_value(b->validated, sk_X509_num(b->validated) - 1))) {
    ra_verdict_window(vd, b->valid_from, b->valid_to);
    return X509_chain_up_ref(b->validated);
  }
  chain = ra_chain_check_signer(roots, b->chain, leaf, at, RA_CHECK_COLLATERAL, what, vd);
  if (!chain) return NULL;
  sk_X509_pop_free(b->validated, X509_free);
  b->validated = X509_chain_up_ref(chain);
  b->valid_from = 0;
  b->valid_to = (time_t)INT64_MAX;
  for (int i = 0; i < sk_X509_num(chain); i++) {
    X509 *x = sk_X509_value(chain, i);
    time_t nb = ra_asn1_time_to_unix(X509_get0_notBefore(x)),
           na = ra_asn1_time_to_unix(X509_get0_notAfter(x));
    if (!nb || !na) b->valid_to = 0; /* unreadable: never reuse */
    if (nb > b->valid_from) b->valid_from = nb;
    if (na < b->valid_to) b->valid_to = na;
  }
  if (b->valid_to)
    ra_verdict_window(vd, b->valid_from ? b->valid_from : 1, b->valid_to);
  else
    vd->valid_until = 0;
  return chain;
}

static bool check_body(ra_signed_body *b, const char *what, const ra_roots *roots,
                       ra_crl_set *const *crls, int ncrls, time_t at, bool allow_expired,
                       ra_verdict *vd) {
  X509 *leaf = ra_certs_leaf(b->chain);
  STACK_OF(X509) *chain = leaf ? signer_chain(b, leaf, roots, at, what, vd) : NULL;
  bool ok = false;
  if (!leaf)
    ra_verdict_fail(vd, RA_CHECK_COLLATERAL, RA_ERR_COLLATERAL_SIGNATURE,
                    "%s issuer chain is not a single path", what);
  if (!chain) goto out;
  int uncovered = 0;
  if (!ra_crls_apply(crls, ncrls, chain, at, allow_expired, RA_CHECK_COLLATERAL, vd, &uncovered))
    goto out;
  if (uncovered) {
    ra_verdict_fail(vd, RA_CHECK_COLLATERAL, RA_ERR_CRL_MISSING,
                    "no CRL covers the root of the %s issuer chain", what);
    goto out;
  }
  if (b->sig_memo == 0) {
    EVP_PKEY *k = X509_get0_pubkey(leaf);
    b->sig_memo = ra_is_p256(k) && ra_ecdsa_p256_verify(k, (const uint8_t *)b->raw, b->len, b->sig)
                      ? 1
                      : -1;
    ERR_clear_error();
  }
  if (b->sig_memo != 1) {
    ra_verdict_fail(vd, RA_CHECK_COLLATERAL, RA_ERR_COLLATERAL_SIGNATURE,
                    "%s signature does not verify with its signing certificate", what);
    goto out;
  }
  ok = true;
out:
  sk_X509_pop_free(chain, X509_free);
  return ok;
}

static bool fresh(time_t issue, time_t next, const char *what, time_t at, bool allow_expired,
                  ra_verdict *vd) {
  note_expiry(vd, next);
  if (issue <= at && at < next) {
    ra_verdict_window(vd, issue, next);
    return true;
  }
  if (allow_expired && at >= next) {
    vd->collateral_expired = true;
    vd->valid_until = 0; /* already past: no window to reuse it in */
    return true;
  }
  char a[32], b2[32];
  struct tm tm;
  strftime(a, sizeof a, "%Y-%m-%dT%H:%M:%SZ", gmtime_r(&issue, &tm));
  strftime(b2, sizeof b2, "%Y-%m-%dT%H:%M:%SZ", gmtime_r(&next, &tm));
  ra_verdict_fail(vd, RA_CHECK_COLLATERAL, RA_ERR_COLLATERAL_EXPIRED,
                  "%s is not valid at the verification time (issueDate %s, nextUpdate %s)", what,
                  a, b2);
  return false;
}

bool ra_collateral_check(ra_collateral *c, const ra_roots *roots, ra_crl_set *vcrls,
                         const ra_quote *q, time_t at, const ra_policy *pol, ra_verdict *vd) {
  ra_crl_set *crls[2] = {&c->crls, vcrls};
  bool ax = pol->allow_expired_collateral, tdx = q->body_type != RA_BODY_SGX;
  /* the root left out when parsing: the same object in both chains when
   * they were one (Intel's case) */
  int tat = c->tcb_body.root_at, qat = c->qe_body.root_at;
  X509 *troot = NULL;
  bool one = tat >= 0 && qat == tat &&
             sk_X509_num(c->qe_body.chain) == sk_X509_num(c->tcb_body.chain);
  for (int i = 0; one && i < sk_X509_num(c->qe_body.chain); i++)
    one = sk_X509_value(c->qe_body.chain, i) == sk_X509_value(c->tcb_body.chain, i);
  if (!complete_chain(&c->tcb_body, roots, NULL) ||
      (tat >= 0 && !(troot = sk_X509_value(c->tcb_body.chain, tat))) ||
      !complete_chain(&c->qe_body, roots, one ? troot : NULL)) {
    ra_verdict_fail(vd, RA_CHECK_COLLATERAL, RA_ERR_INTERNAL, "out of memory");
    return false;
  }
  bool ok = check_body(&c->tcb_body, "TCB info", roots, crls, 2, at, ax, vd);
  /* one issuer chain for both (Intel's case, decoded once): its validated
   * path serves the QE identity too */
  if (ok && !c->qe_body.validated && c->tcb_body.validated &&
      sk_X509_num(c->qe_body.chain) == sk_X509_num(c->tcb_body.chain)) {
    bool same = true;
    for (int i = 0; i < sk_X509_num(c->qe_body.chain) && same; i++)
      same = sk_X509_value(c->qe_body.chain, i) == sk_X509_value(c->tcb_body.chain, i);
    if (same && (c->qe_body.validated = X509_chain_up_ref(c->tcb_body.validated))) {
      c->qe_body.valid_from = c->tcb_body.valid_from;
      c->qe_body.valid_to = c->tcb_body.valid_to;
    }
  }
  ok = check_body(&c->qe_body, "QE identity", roots, crls, 2, at, ax, vd) && ok;
  ok = fresh(c->tcb.issue, c->tcb.next_update, "TCB info", at, ax, vd) && ok;
  ok = fresh(c->qe.issue, c->qe.next_update, "QE identity", at, ax, vd) && ok;
  for (int i = 0; i < sk_X509_CRL_num(c->crls.crls); i++)
    note_expiry(vd, ra_asn1_time_to_unix(X509_CRL_get0_nextUpdate(sk_X509_CRL_value(c->crls.crls, i))));
  vd->tcb_eval_number = c->tcb.eval_number;
  if (!ok) return false;
  /* matching: TCB info of the quote's kind, for the PCK's platform */
  if (c->tcb.tdx != tdx || (tdx && c->tcb.version < 3)) {
    ra_verdict_fail(vd, RA_CHECK_COLLATERAL, RA_ERR_COLLATERAL_MISMATCH,
                    "a %s quote with %s TCB info (v%d)", tdx ? "TDX" : "SGX",
                    c->tcb.tdx ? "TDX" : "SGX", c->tcb.version);
    return false;
  }
  if (strcmp(c->qe.id, tdx ? "TD_QE" : "QE") != 0) {
    ra_verdict_fail(vd, RA_CHECK_COLLATERAL, RA_ERR_COLLATERAL_MISMATCH,
                    "a %s quote with the QE identity of \"%s\"", tdx ? "TDX" : "SGX", c->qe.id);
    return false;
  }
  if (!vd->has_pck) {
    ra_verdict_fail(vd, RA_CHECK_COLLATERAL, RA_ERR_PCK_EXTENSION,
                    "no PCK extensions to match the TCB info with");
    return false;
  }
  if (!ra_ct_equal(c->tcb.fmspc, vd->pck.fmspc, 6)) {
    char a[13], b[13];
    ra_hex_encode(c->tcb.fmspc, 6, a);
    ra_hex_encode(vd->pck.fmspc, 6, b);
    ra_verdict_fail(vd, RA_CHECK_COLLATERAL, RA_ERR_COLLATERAL_MISMATCH,
                    "TCB info is for FMSPC %s, the PCK's is %s", a, b);
    return false;
  }
  if (!ra_ct_equal(c->tcb.pceid, vd->pck.pceid, 2)) {
    ra_verdict_fail(vd, RA_CHECK_COLLATERAL, RA_ERR_COLLATERAL_MISMATCH,
                    "TCB info is for PCE ID %02x%02x, the PCK's is %02x%02x", c->tcb.pceid[0],
                    c->tcb.pceid[1], vd->pck.pceid[0], vd->pck.pceid[1]);
    return false;
  }
  ra_verdict_pass(vd, RA_CHECK_COLLATERAL);
  return true;
}
