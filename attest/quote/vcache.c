/* attest/quote/vcache.c: the verified-quote cache (vcache.h, docs/VCACHE.md). */
#include "raloop/attest/quote/vcache.h"

#include "raloop/attest/quote/identity_internal.h"
#include "raloop/attest/quote/policy_internal.h"
#include "raloop/attest/quote/verdict_internal.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

#define VCACHE_MAX 65536

/* Every field of these decides a verdict and is in the key (put_policy,
 * make_key). A field added to one of them must be added there too, or two
 * policies that differ in it would share an entry: the sizes are pinned so
 * that the build says so (x86_64 / LP64; the check is off elsewhere). */
#if defined(__x86_64__) && defined(__LP64__)
_Static_assert(sizeof(ra_policy) == 128, "ra_policy changed: put the new field in put_policy()");
_Static_assert(sizeof(ra_tdx_expect) == 468, "ra_tdx_expect changed: put_policy()");
_Static_assert(sizeof(ra_sgx_expect) == 136, "ra_sgx_expect changed: put_policy()");
_Static_assert(sizeof(ra_verify_opts) == 32, "ra_verify_opts changed: make_key()");
#endif

struct vc_entry {
  uint8_t key[32];
  bool used;
  uint64_t last; /* for LRU */
  ra_verdict vd; /* a success, with its window */
};

struct ra_vcache {
  struct vc_entry *e;
  size_t cap;
  uint64_t tick;
  ra_vcache_stats st;
};

int ra_vcache_new(size_t capacity, ra_vcache **out) {
  if (!out) return -EINVAL;
  *out = NULL;
  if (capacity == 0 || capacity > VCACHE_MAX) return -EINVAL;
  ra_vcache *c = calloc(1, sizeof *c);
  if (!c || !(c->e = calloc(capacity, sizeof *c->e))) {
    free(c);
    return -ENOMEM;
  }
  c->cap = capacity;
  *out = c;
  return 0;
}

void ra_vcache_free(ra_vcache *c) {
  if (!c) return;
  free(c->e);
  free(c);
}

void ra_vcache_clear(ra_vcache *c) {
  if (!c) return;
  memset(c->e, 0, c->cap * sizeof *c->e);
  c->st.entries = 0;
}

void ra_vcache_get_stats(const ra_vcache *c, ra_vcache_stats *out) {
  if (c)
    *out = c->st;
  else
    memset(out, 0, sizeof *out);
}

/* ---- the key ---- */

/* Every field goes in with its length, so that no two different inputs
 * concatenate alike. */
static void put(EVP_MD_CTX *md, const void *p, size_t n) {
  uint8_t l[8];
  for (int i = 0; i < 8; i++) l[i] = (uint8_t)((uint64_t)n >> (8 * i));
  EVP_DigestUpdate(md, l, 8);
  if (n) EVP_DigestUpdate(md, p, n);
}

static void put_u64(EVP_MD_CTX *md, uint64_t v) {
  uint8_t b[8];
  for (int i = 0; i < 8; i++) b[i] = (uint8_t)(v >> (8 * i));
  put(md, b, 8);
}

/* The policy's canonical form without its per-session part: every field
 * that decides a verdict, field by field (no struct padding). The key
 * binding's values (x25519_pub, binding_val, binding_iat) and the
 * callback (function, user data) are re-checked on every hit; only
 * whether they are present is part of the key (it decides whether the
 * policy is empty). */
static void put_policy(EVP_MD_CTX *md, const ra_policy *p) {
  put(md, "policy-v1", 9);
  put_u64(md, p->tdx ? p->n_tdx : 0);
  for (size_t i = 0; p->tdx && i < p->n_tdx; i++) {
    const ra_tdx_expect *t = &p->tdx[i];
    put_u64(md, t->has);
    put(md, t->mrtd, sizeof t->mrtd);
    put(md, t->rtmr, sizeof t->rtmr);
    put(md, t->report_data, sizeof t->report_data);
    put(md, t->mr_config_id, sizeof t->mr_config_id);
    put(md, t->mr_owner, sizeof t->mr_owner);
    put(md, t->mr_owner_config, sizeof t->mr_owner_config);
    put(md, t->xfam, sizeof t->xfam);
    put(md, t->td_attributes, sizeof t->td_attributes);
  }
  put_u64(md, p->sgx ? p->n_sgx : 0);
  for (size_t i = 0; p->sgx && i < p->n_sgx; i++) {
    const ra_sgx_expect *s = &p->sgx[i];
    put_u64(md, s->has);
    put(md, s->mr_enclave, sizeof s->mr_enclave);
    put(md, s->mr_signer, sizeof s->mr_signer);
    put_u64(md, s->isv_prod_id);
    put_u64(md, s->min_isv_svn);
    put(md, s->report_data, sizeof s->report_data);
  }
  put_u64(md, p->allow_debug);
  put_u64(md, p->x25519_pub != NULL);
  put_u64(md, p->binding_val != NULL);
  put_u64(md, p->binding_iat != NULL);
  put_u64(md, p->callback != NULL);
  put_u64(md, p->signature_only);
  put_u64(md, p->accept_tcb);
  put_u64(md, p->allowed_advisories ? p->n_allowed_advisories : 0);
  for (size_t i = 0; p->allowed_advisories && i < p->n_allowed_advisories; i++) {
    const char *a = p->allowed_advisories[i];
    put_u64(md, a != NULL);
    if (a) put(md, a, strlen(a));
  }
  put_u64(md, p->allow_expired_collateral);
  put_u64(md, p->require_sept_ve_disable);
  put_u64(md, p->allow_mr_servicetd);
}

static bool make_key(ra_verifier *v, const uint8_t *quote, size_t len, const ra_verify_opts *o,
                     const ra_policy *pol, uint8_t key[32]) {
  EVP_MD_CTX *md = EVP_MD_CTX_new();
  bool ok = md && EVP_DigestInit_ex(md, EVP_sha256(), NULL) == 1;
  if (ok) {
    put(md, "ra-vcache-v1", 12);
    put(md, quote, len);
    put(md, ra_verifier_config_id(v), 32);
    if (o && o->collateral)
      put(md, ra_collateral_id(o->collateral), 32);
    else
      put(md, NULL, 0);
    if (o && o->pck_chain && o->pck_chain_len)
      put(md, o->pck_chain, o->pck_chain_len);
    else
      put(md, NULL, 0);
    put_policy(md, pol);
    ok = EVP_DigestFinal_ex(md, key, NULL) == 1;
  }
  EVP_MD_CTX_free(md);
  return ok;
}

/* ---- entries ---- */

static struct vc_entry *find(ra_vcache *c, const uint8_t key[32]) {
  for (size_t i = 0; i < c->cap; i++)
    if (c->e[i].used && !memcmp(c->e[i].key, key, 32)) return &c->e[i];
  return NULL;
}

static void drop(ra_vcache *c, struct vc_entry *e) {
  memset(e, 0, sizeof *e);
  c->st.entries--;
}

static void store(ra_vcache *c, const uint8_t key[32], const ra_verdict *vd) {
  struct vc_entry *slot = NULL;
  for (size_t i = 0; i < c->cap && !slot; i++)
    if (!c->e[i].used) slot = &c->e[i];
  if (!slot) { /* full: the least recently used goes */
    slot = &c->e[0];
    for (size_t i = 1; i < c->cap; i++)
      if (c->e[i].last < slot->last) slot = &c->e[i];
    drop(c, slot);
    c->st.evictions++;
  }
  memcpy(slot->key, key, 32);
  slot->vd = *vd;
  slot->used = true;
  slot->last = ++c->tick;
  c->st.entries++;
}

/* A hit: the stored verdict, then what is per session. */
static int replay(const struct vc_entry *e, const uint8_t *quote, size_t len, time_t at,
                  const ra_policy *pol, ra_verdict *vd) {
  ra_quote q;
  *vd = e->vd;
  vd->at = at;
  /* the same bytes parsed before; parsed again for the views the binding
   * and the callback read (no signature is checked) */
  if (ra_quote_parse(quote, len, &q)) {
    ra_verdict_fail(vd, RA_CHECK_PARSE, RA_ERR_INTERNAL, "cached quote does not parse");
    return -EACCES;
  }
  vd->checks[RA_CHECK_BINDING] = RA_CHECK_NOT_RUN;
  vd->checks[RA_CHECK_CALLBACK] = RA_CHECK_NOT_RUN;
  ra_policy_check_binding(&q, pol, vd);
  ra_policy_run_callback(&q, pol, vd);
  return vd->err == 0 ? 0 : -EACCES;
}

int ra_vcache_verify(ra_vcache *c, ra_verifier *v, const uint8_t *quote, size_t len,
                     const ra_verify_opts *opts, const ra_policy *pol, ra_verdict *vd) {
  uint8_t key[32];
  time_t at = opts && opts->at ? opts->at : time(NULL);
  if (!c || !v || !pol || !quote) {
    memset(vd, 0, sizeof *vd);
    ra_verdict_fail(vd, RA_CHECK_PARSE, RA_ERR_INTERNAL, "no cache, verifier, quote or policy");
    return -EINVAL;
  }
  bool keyed = make_key(v, quote, len, opts, pol, key);
  struct vc_entry *e = keyed ? find(c, key) : NULL;
  if (e && e->vd.valid_from <= at && at < e->vd.valid_until) {
    c->st.hits++;
    e->last = ++c->tick;
    return replay(e, quote, len, at, pol, vd);
  }
  if (e) { /* outside its window: never used again */
    drop(c, e);
    c->st.expired++;
  }
  c->st.misses++;
  /* the time the window is compared with is the time verified at */
  ra_verify_opts o = opts ? *opts : (ra_verify_opts){0};
  o.at = at;
  int rc = ra_verify_quote(v, quote, len, &o, pol, vd);
  if (rc == 0 && keyed && vd->valid_until > at && vd->valid_from <= at) store(c, key, vd);
  return rc;
}
