/* bench/tunnel.c: the attested-tunnel transport of ra-bench, over
 * attest/tunnel_client. */
#include "bench/tunnel.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "raloop/attest/tunnel/envelope.h"
#include "raloop/attest/tunnel/msg.h"
#include "raloop/attest/quote/sim.h"
#include "raloop/attest/tunnel/client.h"
#include "raloop/attest/quote/vcache.h"
#include "raloop/attest/quote/verify.h"

typedef struct tpool tpool;

typedef struct tun {
  tpool *pool;
  ra_tunnel_client *c;
  struct tun *prev, *next;
  size_t inflight;
  bool retiring; /* one-shot: freed (deferred) once its request is answered */
  ra_defer free_later;
} tun;

/* A request in flight: slots are recycled through a free list, so the hot
 * path does not allocate once the pool has grown to the concurrency used. */
typedef struct tslot {
  tun *t;
  bench_done_cb cb;
  void *ud;
  struct tslot *next_free;
} tslot;

typedef struct slot_chunk {
  struct slot_chunk *next;
  tslot s[64];
} slot_chunk;

struct tpool {
  bench_target base;
  char origin[600];
  ra_verifier *v;
  ra_tdx_expect expect;
  ra_policy policy;
  bool no_binding;
  ra_collateral *coll; /* --collateral, shared by the tunnels (one loop) */
  ra_vcache *vcache;   /* --vcache, shared by the tunnels (one loop) */
  const char *pccs, *pccs_cache_dir, *pccs_ca_file; /* borrowed (argv) */
  bool pccs_no_cache;
  bool one_shot, freeing;
  size_t max_tunnels, ntunnels;
  tun *tunnels;  /* the pool's tunnels (not one-shot) */
  tun *oneshots; /* one-shot tunnels until freed */
  tslot *free_slots;
  slot_chunk *chunks;
  /* the first request's and response's inner messages as the tunnel encodes
   * them, in bytes (0: none yet): the plaintexts the cipher floor seals */
  size_t req_msg_len, resp_msg_len;
};

/* A request id as the client's after its first thousand requests ("ra"
 * and the request's number): the sizes below are the wire's to a byte or two. */
#define TYPICAL_REQUEST_ID "ra1000"

static size_t request_msg_len(const ra_tunnel_request *req) {
  ra_tmsg_http_request_out m = {
      .request_id = RA_STR(TYPICAL_REQUEST_ID), .method = ra_str_cstr(req->method),
      .url = ra_str_cstr(req->url), .headers = req->headers, .n_headers = req->n_headers,
      .has_body = req->has_body, .body = req->body, .body_len = req->body_len};
  return ra_tmsg_encode_http_request(NULL, 0, &m);
}

/* The server encodes its answer with the same codec: names lowercased and
 * values grouped by name, as re-encoding the received headers does. */
static size_t response_msg_len(const ra_tunnel_response *res) {
  ra_tmsg_http_response_out m = {
      .request_id = RA_STR(TYPICAL_REQUEST_ID), .status = res->status,
      .status_text = res->status_text, .headers = res->headers, .n_headers = res->n_headers,
      .has_body = res->body != NULL, .body_is_text = res->body_is_text, .body = res->body,
      .body_len = res->body_len};
  return ra_tmsg_encode_http_response(NULL, 0, &m);
}

static void list_del(tun **head, tun *t) {
  if (t->prev) t->prev->next = t->next;
  else *head = t->next;
  if (t->next) t->next->prev = t->prev;
  t->prev = t->next = NULL;
}

static void list_add(tun **head, tun *t) {
  t->prev = NULL;
  t->next = *head;
  if (*head) (*head)->prev = t;
  *head = t;
}

/* ra_tunnel_client_free must not run inside the client's callbacks. */
static void tun_free_later(ra_defer *d, void *ud) {
  tun *t = ud;
  list_del(&t->pool->oneshots, t);
  ra_tunnel_client_free(t->c);
  free(t);
}

static tun *tun_open(tpool *p) {
  tun *t = calloc(1, sizeof *t);
  if (!t) return NULL;
  t->pool = p;
  ra_defer_init(&t->free_later, tun_free_later, t);
  ra_tunnel_client_opts o = {
      .verifier = p->v,
      .policy = &p->policy,
      .no_binding = p->no_binding,
      .request_timeout_ms = 60000,
      .max_envelope = 256u << 20,
      .collateral = p->coll,
      .pccs_url = p->pccs,
      .pccs_cache_dir = p->pccs_cache_dir,
      .pccs_no_cache = p->pccs_no_cache,
      .pccs_ca_file = p->pccs_ca_file,
      .vcache = p->vcache,
  };
  if (ra_tunnel_client_new(p->base.loop, p->origin, &o, &t->c)) {
    free(t);
    return NULL;
  }
  return t;
}

static tslot *slot_get(tpool *p) {
  if (!p->free_slots) {
    slot_chunk *ch = calloc(1, sizeof *ch);
    if (!ch) return NULL;
    ch->next = p->chunks;
    p->chunks = ch;
    for (size_t i = 0; i < 64; i++) {
      ch->s[i].next_free = p->free_slots;
      p->free_slots = &ch->s[i];
    }
  }
  tslot *s = p->free_slots;
  p->free_slots = s->next_free;
  return s;
}

static void slot_put(tpool *p, tslot *s) {
  s->next_free = p->free_slots;
  p->free_slots = s;
}

static void on_fetch(ra_tunnel_client *c, int err, const ra_tunnel_response *res, const char *msg,
                     void *ud) {
  tslot *s = ud;
  tun *t = s->t;
  tpool *p = t->pool;
  bench_done_cb cb = s->cb;
  void *cud = s->ud;
  slot_put(p, s);
  t->inflight--;
  if (p->freeing) return; /* the pool is going: nobody is waiting */
  if (t->retiring && t->inflight == 0) ra_loop_defer(p->base.loop, &t->free_later);
  if (err) {
    cb(cud, err, 0, NULL, 0, msg);
    return;
  }
  if (!p->resp_msg_len) p->resp_msg_len = response_msg_len(res);
  cb(cud, 0, res->status, res->body, res->body_len, NULL);
}

static int tun_request(bench_target *bt, const bench_req *r, bench_done_cb cb, void *ud) {
  tpool *p = (tpool *)bt;
  tun *t = NULL;
  if (p->one_shot) {
    if (!(t = tun_open(p))) return -ENOMEM;
    list_add(&p->oneshots, t); /* it serves this one request */
    t->retiring = true;
  } else {
    for (tun *x = p->tunnels; x; x = x->next)
      if (!t || x->inflight < t->inflight) t = x;
    if ((!t || t->inflight > 0 || p->base.spread) && p->ntunnels < p->max_tunnels) {
      if (!(t = tun_open(p))) return -ENOMEM;
      list_add(&p->tunnels, t);
      p->ntunnels++;
    }
  }
  tslot *s = slot_get(p);
  if (!s) return -ENOMEM;
  *s = (tslot){.t = t, .cb = cb, .ud = ud};
  ra_header h = {RA_STR("content-type"), ra_str_cstr(r->content_type)};
  ra_tunnel_request req = {
      .method = r->method,
      .url = r->path,
      .headers = r->content_type ? &h : NULL,
      .n_headers = r->content_type ? 1 : 0,
      .has_body = r->body_len > 0,
      .body = r->body,
      .body_len = r->body_len,
  };
  if (!p->req_msg_len) p->req_msg_len = request_msg_len(&req);
  int rc = ra_tunnel_fetch(t->c, &req, on_fetch, s);
  if (rc) {
    slot_put(p, s);
    if (t->retiring) ra_loop_defer(p->base.loop, &t->free_later);
    return rc;
  }
  t->inflight++;
  return 0;
}

static void tun_pool_free(bench_target *bt) {
  tpool *p = (tpool *)bt;
  p->freeing = true;
  tun **lists[2] = {&p->tunnels, &p->oneshots};
  for (int i = 0; i < 2; i++)
    while (*lists[i]) {
      tun *t = *lists[i];
      list_del(lists[i], t);
      ra_defer_cancel(p->base.loop, &t->free_later);
      ra_tunnel_client_free(t->c); /* pending fetches: on_fetch(-ECANCELED), ignored */
      free(t);
    }
  while (p->chunks) {
    slot_chunk *ch = p->chunks;
    p->chunks = ch->next;
    free(ch);
  }
  if (p->vcache) { /* what the cache did, for whoever wonders why handshakes are fast */
    ra_vcache_stats st;
    ra_vcache_get_stats(p->vcache, &st);
    fprintf(stderr, "ra-bench: verified-quote cache: %llu hits, %llu misses, %llu expired\n",
            (unsigned long long)st.hits, (unsigned long long)st.misses,
            (unsigned long long)st.expired);
  }
  ra_verifier_free(p->v);
  ra_collateral_free(p->coll);
  ra_vcache_free(p->vcache);
  free(p);
}

static const bench_target_ops tun_ops = {.request = tun_request, .free = tun_pool_free};

int bench_tunnel_msg_sizes(const bench_target *t, size_t *req, size_t *resp) {
  const tpool *p = (const tpool *)t;
  if (t->ops != &tun_ops) return -EINVAL;
  if (!p->req_msg_len || !p->resp_msg_len) return -ENOENT;
  *req = p->req_msg_len;
  *resp = p->resp_msg_len;
  return 0;
}

bench_target *bench_tunnel_new(ra_loop *loop, const bench_origin *origin, const bench_policy *pol,
                               size_t ntunnels, bool one_shot, char *err, size_t errlen) {
  if (ra_env_init()) {
    snprintf(err, errlen, "libsodium failed to initialise");
    return NULL;
  }
  tpool *p = calloc(1, sizeof *p);
  if (!p) return NULL;
  p->base.ops = &tun_ops;
  p->base.loop = loop;
  snprintf(p->origin, sizeof p->origin, "%s", origin->url);
  p->max_tunnels = ntunnels ? ntunnels : 1;
  p->one_shot = one_shot;
  if (ra_verifier_new(0, &p->v)) {
    free(p);
    return NULL;
  }
  if (pol->trust_sim_dir) {
    char path[4200];
    snprintf(path, sizeof path, "%s/%s", pol->trust_sim_dir, RA_SIM_ROOT_FILE);
    if (ra_verifier_add_root_file(p->v, path) <= 0) {
      snprintf(err, errlen, "cannot read the simulated root %s", path);
      goto fail;
    }
  }
  for (size_t i = 0; i < pol->n_roots; i++)
    if (ra_verifier_add_root_file(p->v, pol->roots[i]) <= 0) {
      snprintf(err, errlen, "cannot read root certificate(s) from %s", pol->roots[i]);
      goto fail;
    }
  if (pol->has_mrtd) {
    p->expect.has |= RA_TDX_MRTD;
    memcpy(p->expect.mrtd, pol->mrtd, 48);
  }
  for (int i = 0; i < 4; i++)
    if (pol->has_rtmr[i]) {
      p->expect.has |= RA_TDX_RTMR0 << i;
      memcpy(p->expect.rtmr[i], pol->rtmr[i], 48);
    }
  if (pol->has_report_data) {
    p->expect.has |= RA_TDX_REPORT_DATA;
    memcpy(p->expect.report_data, pol->report_data, 64);
  }
  if (p->expect.has) {
    p->policy.tdx = &p->expect;
    p->policy.n_tdx = 1;
  }
  p->policy.allow_debug = pol->allow_debug;
  p->policy.accept_tcb = pol->accept_tcb;
  p->policy.allowed_advisories = pol->allowed_advisories;
  p->policy.n_allowed_advisories = pol->n_allowed_advisories;
  p->policy.allow_expired_collateral = pol->allow_expired_collateral;
  p->policy.require_sept_ve_disable = pol->require_sept_ve_disable;
  p->policy.allow_mr_servicetd = pol->allow_mr_servicetd;
  p->pccs = pol->pccs;
  p->pccs_cache_dir = pol->pccs_cache_dir;
  p->pccs_ca_file = pol->pccs_ca_file;
  p->pccs_no_cache = pol->pccs_no_cache;
  if (pol->collateral && pol->pccs) {
    snprintf(err, errlen, "--pccs and --collateral exclude each other");
    goto fail;
  }
  if (pol->collateral) {
    int rc = ra_collateral_load(pol->collateral, &p->coll);
    if (rc) {
      snprintf(err, errlen, "cannot load the collateral %s: %s", pol->collateral, ra_strerror(rc));
      goto fail;
    }
  }
  if (pol->vcache && ra_vcache_new(pol->vcache, &p->vcache)) {
    snprintf(err, errlen, "bad --vcache size %zu (1..65536)", pol->vcache);
    goto fail;
  }
  p->no_binding = pol->no_binding;
  /* As ra-curl: Intel's root alone vouches for anybody's TDX machine. */
  if (!p->expect.has && !pol->trust_sim_dir && !pol->n_roots && !pol->any_measurement) {
    snprintf(err, errlen, "with the Intel root, name the expected measurements (--mrtd, "
                          "--rtmr0..3, --report-data), or pin your own root (--root, --trust-sim), "
                          "or pass --any-measurement-insecure");
    goto fail;
  }
  if (!p->expect.has && p->no_binding) {
    snprintf(err, errlen, "the policy checks nothing: give measurements or keep the key binding");
    goto fail;
  }
  return &p->base;
fail:
  ra_verifier_free(p->v);
  ra_collateral_free(p->coll);
  ra_vcache_free(p->vcache);
  free(p);
  return NULL;
}
