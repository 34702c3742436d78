/* attest/tunnel/client.c: see client.h. The keyed channel and its tunnelled
 * WebSockets are channel.c's, shared with the server. */
#include "raloop/attest/tunnel/client.h"

#include "raloop/attest/quote/vcache.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "raloop/attest/pcs/pcs.h"
#include "raloop/attest/tunnel/channel_internal.h"
#include "raloop/attest/tunnel/envelope.h"
#include "raloop/attest/tunnel/msg.h"
#include "raloop/core/list.h"
#include "raloop/core/log.h"
#include "raloop/ws/client.h"

typedef struct creq creq;

enum { ST_IDLE, ST_CONNECTING, ST_READY, ST_CLOSED };

struct ra_tunnel_client {
  ra_loop *loop;
  char *ctl_url;
  ra_tunnel_client_opts o;
  ra_policy policy;
  bool has_policy;
  ra_tchan ch;           /* the control ws, key, envelope buffers, sockets */
  struct ctl_link *link; /* ch.ctl's user data */
  int state;
  int fail;            /* why the current/last connection failed (for pending requests) */
  char fail_msg[512];
  uint8_t server_pk[32];
  bool has_server_pk;
  ra_verdict vd;
  bool has_vd;
  uint8_t *quote; /* copy of the last server_kx quote (for -v style reports) */
  size_t quote_len;
  /* the last server_kx's binding values (copies: verification may wait for
   * a collateral fetch) */
  uint8_t *bval, *biat;
  size_t bval_len, biat_len;
  bool has_nonce;
  /* SEV-SNP (the last server_kx carried sev_snp_data): its nonce and
   * certificates (copies), the policy, the verdict */
  bool snp;
  uint8_t *snonce;
  size_t snonce_len;
  bool has_snonce;
  char *vcek, *ask, *ark;
  ra_snp_policy snp_policy;
  bool has_snp_policy;
  ra_snp_verdict svd;
  bool has_svd;
  /* client attestation (PROTOCOL.md §10) */
  uint8_t challenge[RA_TMSG_CHALLENGE_BYTES];
  bool has_challenge; /* the last server_kx asked for one */
  bool sent_attestation;
  char *client_event_log;
  /* collateral from a PCCS/PCS (opts.pccs_url): the fetch in flight, and
   * the last parsed document, kept for later handshakes while fresh */
  char *pccs_url, *pccs_cache_dir, *pccs_ca_file;
  ra_tls_ctx *tls;       /* https/wss origins: our reference (NULL: the ws client's default) */
  char *tls_server_name;
  ra_pcs_fetch *fetch;
  ra_pcs_key fetch_key, fetched_key;
  ra_collateral *fetched;
  int64_t fetched_next_update;
  creq *reqs;
  uint64_t next_id;
  ra_tindex reqs_by_num; /* pending requests by id number (see map_put) */
  ra_timer connect_timer, reconnect_timer;
  bool freeing;
};

struct creq {
  ra_tunnel_client *c;
  creq *next, *prev;
  ra_timer timer;
  bool sent;
  bool retry; /* GET/HEAD: plain is kept after sending, to resend on a new tunnel
                 after a key rotation (see ctl_close) */
  int fail; /* set: the timer reports this error */
  ra_tunnel_fetch_cb cb;
  void *ud;
  uint8_t *plain; /* the encoded http_request, sealed when the channel is ready */
  size_t plain_len;
  uint64_t num; /* the N of id "raN" */
  char id[32];
};

static void start_connect(ra_tunnel_client *c);
static int map_put(ra_tunnel_client *c, creq *q);
static void map_del(ra_tunnel_client *c, creq *q);

/* ---- encoding ---------------------------------------------------------------- */

/* Encodes with enc(out, cap, arg) into a fresh heap buffer. */
static uint8_t *encode_alloc(ra_tchan_encode_fn enc, const void *arg, size_t *len) {
  size_t n = enc(NULL, 0, arg);
  uint8_t *p = malloc(n ? n : 1);
  if (!p) return NULL;
  enc(p, n, arg);
  *len = n;
  return p;
}

/* ---- requests ----------------------------------------------------------------- */

static void creq_free(creq *q) {
  ra_timer_stop(&q->timer);
  free(q->plain);
  free(q);
}

static void creq_finish(creq *q, int err, const ra_tunnel_response *res, const char *msg) {
  ra_tunnel_client *c = q->c;
  RA_LIST_DEL(c->reqs, q);
  map_del(c, q);
  ra_tunnel_fetch_cb cb = q->cb;
  void *ud = q->ud;
  creq_free(q);
  cb(c, err, res, msg, ud);
}

static const char *err_msg(int err) {
  switch (err) {
  case -ETIMEDOUT: return "request timeout";
  case -ECONNRESET: return "tunnel disconnected";
  case -EACCES: return "attestation refused";
  case -ECANCELED: return "tunnel closed";
  default: return strerror(-err);
  }
}

static void creq_timer(ra_timer *t, void *ud) {
  creq *q = ud;
  int err = q->fail ? q->fail : -ETIMEDOUT;
  ra_tunnel_client *c = q->c;
  creq_finish(q, err, NULL, err == c->fail && c->fail_msg[0] ? c->fail_msg : err_msg(err));
}

static size_t enc_request(uint8_t *out, size_t cap, const void *a) {
  return ra_tmsg_encode_http_request(out, cap, a);
}

int ra_tunnel_fetch(ra_tunnel_client *c, const ra_tunnel_request *req, ra_tunnel_fetch_cb cb, void *ud) {
  if (!req || !req->url || !cb) return -EINVAL;
  creq *q = calloc(1, sizeof *q);
  if (!q) return -ENOMEM;
  q->c = c;
  q->cb = cb;
  q->ud = ud;
  q->num = ++c->next_id;
  snprintf(q->id, sizeof q->id, "ra%llu", (unsigned long long)q->num);
  if (map_put(c, q)) {
    free(q);
    return -ENOMEM;
  }
  ra_tmsg_http_request_out o = {
    .request_id = ra_str_cstr(q->id), .method = ra_str_cstr(req->method ? req->method : "GET"),
    .url = ra_str_cstr(req->url), .headers = req->headers, .n_headers = req->n_headers,
    .has_body = req->has_body, .body_is_text = req->body_is_text, .body = req->body,
    .body_len = req->body_len,
  };
  bool now = c->state == ST_READY && c->ch.ctl;
  const char *meth = req->method ? req->method : "GET";
  q->retry = !strcmp(meth, "GET") || !strcmp(meth, "HEAD");
  if (now && q->retry) { /* kept to be resent after a rotation: GET/HEAD are small */
    if (!(q->plain = encode_alloc(enc_request, &o, &q->plain_len))) {
      map_del(c, q);
      free(q);
      return -ENOMEM;
    }
    ra_ws_cork(c->ch.ctl);
    int rc = ra_tchan_send_plain(&c->ch, q->plain, q->plain_len);
    if (rc == -ENOMEM) {
      map_del(c, q);
      free(q->plain);
      free(q);
      return rc;
    }
    q->sent = true;
  } else if (now) {
    ra_ws_cork(c->ch.ctl); /* many fetches in one turn: one write */
    int rc = ra_tchan_send(&c->ch, enc_request, &o);
    if (rc == -ENOMEM) {
      map_del(c, q);
      free(q);
      return rc;
    }
    /* sent; or the channel just failed: its on_close fails q like the rest */
    q->sent = true;
  } else if (!(q->plain = encode_alloc(enc_request, &o, &q->plain_len))) {
    map_del(c, q);
    free(q);
    return -ENOMEM;
  }
  RA_LIST_ADD(c->reqs, q);
  ra_timer_init(c->loop, &q->timer, creq_timer, q);
  if (c->state == ST_CLOSED) { /* refused for good: fail from the loop */
    q->fail = c->fail ? c->fail : -ECONNRESET;
    ra_timer_start(&q->timer, 0, 0);
    return 0;
  }
  ra_timer_start(&q->timer, req->timeout_ms ? req->timeout_ms : c->o.request_timeout_ms, 0);
  if (c->state == ST_IDLE) start_connect(c);
  return 0;
}

/* ---- pending requests by id ------------------------------------------------
 * Responses come back in any order with many requests in flight: an index
 * keyed by the number in our "ra<N>" ids finds each in O(1). */

static uint64_t num_hash(uint64_t k) {
  k ^= k >> 33;
  k *= 0xff51afd7ed558ccdULL;
  k ^= k >> 33;
  return k;
}

static int map_put(ra_tunnel_client *c, creq *q) { return ra_tindex_put(&c->reqs_by_num, num_hash(q->num), q); }
static void map_del(ra_tunnel_client *c, creq *q) { ra_tindex_del(&c->reqs_by_num, num_hash(q->num), q); }

static creq *find_req(ra_tunnel_client *c, ra_str id) {
  /* our ids are "ra" and a decimal number: anything else is not ours */
  if (id.len < 3 || id.len > 22 || id.ptr[0] != 'r' || id.ptr[1] != 'a') return NULL;
  uint64_t num = 0;
  for (size_t i = 2; i < id.len; i++) {
    if (id.ptr[i] < '0' || id.ptr[i] > '9') return NULL;
    num = num * 10 + (uint64_t)(id.ptr[i] - '0');
  }
  creq *q;
  for (size_t pos = 0; (q = ra_tindex_next(&c->reqs_by_num, num_hash(num), &pos));)
    if (q->num == num && ra_str_eq_cstr(id, q->id)) return q;
  return NULL;
}

/* ---- tunnelled WebSockets (client side) ----------------------------------------- */

typedef struct connect_arg {
  ra_str id, url;
  const ra_str *protocols;
  size_t n;
} connect_arg;
static size_t enc_connect(uint8_t *out, size_t cap, const void *a) {
  const connect_arg *m = a;
  return ra_tmsg_encode_ws_connect(out, cap, m->id, m->url, m->protocols, m->n);
}

/* Sends the ws_connect that waited for the key. */
static void sock_flush(ra_tchan *ch, ra_tchan_sock *w) {
  if (w->peer_knows || !w->connect) return;
  if (ra_tchan_send_plain(ch, w->connect, w->connect_len) == 0) {
    w->peer_knows = true;
    free(w->connect);
    w->connect = NULL;
  }
}

/* The path of a ws:// URL, for ra_ws_path(). */
static ra_str url_path(const char *url) {
  const char *p = strstr(url, "://");
  p = p ? strchr(p + 3, '/') : url;
  return ra_str_cstr(p ? p : "/");
}

int ra_tunnel_ws_connect(ra_tunnel_client *c, const char *url, const char *const *protocols,
                         size_t n_protocols, const ra_ws_handlers *h, void *ud, ra_ws **out) {
  char id[40];
  ra_str ps[16];
  if (n_protocols > 16) n_protocols = 16;
  for (size_t i = 0; i < n_protocols; i++) ps[i] = ra_str_cstr(protocols[i]);
  snprintf(id, sizeof id, "ws_%llu", (unsigned long long)++c->next_id);
  connect_arg a = {ra_str_cstr(id), ra_str_cstr(url), ps, n_protocols};
  size_t len;
  uint8_t *connect = encode_alloc(enc_connect, &a, &len);
  ra_tchan_sock *w = connect ? ra_tchan_sock_new(&c->ch, ra_str_cstr(id), h, ud, NULL) : NULL;
  if (!w) {
    free(connect);
    return -ENOMEM;
  }
  w->connect = connect;
  w->connect_len = len;
  ra_ws_set_info(w->ws, url_path(url), RA_STR(""), true);
  if (ra_tchan_sock_add(&c->ch, w)) {
    ra_tchan_sock_discard(w); /* on_close 1006 from inside this call */
    return -ENOMEM;
  }
  if (c->state == ST_READY) sock_flush(&c->ch, w);
  else if (c->state == ST_IDLE) start_connect(c);
  else if (c->state == ST_CLOSED) ra_ws_terminate(w->ws);
  if (out) *out = w->ws;
  return 0;
}

/* ---- the control channel ----------------------------------------------------------- */

/* Counts the pairs ra_tmsg_headers_next yields. */
static size_t header_count(ra_str seq) {
  ra_tmsg_iter it;
  ra_str k, v;
  size_t n = 0;
  ra_tmsg_iter_init(&it, seq);
  while (ra_tmsg_headers_next(&it, &k, &v)) n++;
  return n;
}

/* Hands the response to q's callback with its headers as ra_header views
 * (on the stack unless there are many). */
static void deliver_response(creq *q, const ra_tmsg *m, ra_str hs) {
  ra_header small[32], *h = small;
  size_t n = header_count(hs);
  if (n > sizeof small / sizeof small[0] && !(h = malloc(n * sizeof *h))) {
    creq_finish(q, -ENOMEM, NULL, "out of memory");
    return;
  }
  ra_tmsg_iter it;
  ra_tmsg_iter_init(&it, hs);
  for (size_t i = 0; i < n; i++) ra_tmsg_headers_next(&it, &h[i].name, &h[i].value);
  ra_str body = m->http_response.body;
  ra_tunnel_response r = {
    .status = m->http_response.status, .status_text = m->http_response.status_text,
    .headers = h, .n_headers = n,
    .body = m->http_response.has_body ? (body.bytes ? body.bytes : (const uint8_t *)"") : NULL,
    .body_len = body.len, .body_is_text = m->http_response.body_is_text,
  };
  creq_finish(q, 0, &r, NULL);
  if (h != small) free(h);
}

static void on_http_response(ra_tunnel_client *c, const ra_tmsg *m) {
  creq *q = find_req(c, m->http_response.request_id);
  if (!q || !q->sent) return;
  if (m->http_response.has_error) {
    static const char rotated[] = "tunnel key rotated"; /* the server refused it unprocessed */
    if (q->retry && q->plain && m->http_response.error.len >= sizeof rotated - 1 &&
        !memcmp(m->http_response.error.ptr, rotated, sizeof rotated - 1)) {
      q->sent = false; /* resent on the new tunnel, once this one closes 1012 */
      return;
    }
    char msg[300];
    snprintf(msg, sizeof msg, "%.*s", (int)m->http_response.error.len, m->http_response.error.ptr);
    creq_finish(q, -EPROTO, NULL, msg);
    return;
  }
  /* header text back to the bytes plain HTTP would have carried */
  ra_str hs = m->http_response.headers;
  uint8_t *owned;
  int rc = ra_tmsg_headers_to_bytes(&hs, &owned);
  if (rc) {
    creq_finish(q, rc == -ENOMEM ? -ENOMEM : -EPROTO, NULL,
                rc == -ENOMEM ? "out of memory" : "response header with a character above U+00FF");
    return;
  }
  deliver_response(q, m, hs);
  free(owned);
}

static void on_ws_event(ra_tunnel_client *c, const ra_tmsg *m) {
  ra_tchan_sock *w = ra_tchan_find(&c->ch, m->ws_event.connection_id);
  if (!w || w->gone) return;
  if (m->ws_event.event == RA_TMSG_EV_OPEN) /* not after a message that opened it already */
    ra_tchan_sock_open(w);
  else if (m->ws_event.event == RA_TMSG_EV_CLOSE)
    ra_tchan_sock_closed(w, m->ws_event.has_code ? (uint16_t)m->ws_event.code : 1005,
                         m->ws_event.has_reason ? m->ws_event.reason : RA_STR(""));
  else
    ra_tchan_sock_closed(w, 1006, m->ws_event.has_error ? m->ws_event.error : RA_STR("error"));
}

static void on_inner(ra_tunnel_client *c, const ra_tmsg *m) {
  switch (m->type) {
  case RA_TMSG_HTTP_RESPONSE: on_http_response(c, m); break;
  case RA_TMSG_WS_EVENT: on_ws_event(c, m); break;
  case RA_TMSG_WS_MESSAGE: ra_tchan_on_ws_message(&c->ch, m); break;
  default: break; /* not for a client: dropped */
  }
}

static void fail_connection(ra_tunnel_client *c, int err, const char *fmt, const char *detail) {
  if (!c->fail) {
    c->fail = err;
    snprintf(c->fail_msg, sizeof c->fail_msg, fmt, detail ? detail : "");
  }
  if (c->ch.ctl) ra_ws_close(c->ch.ctl, 1000, "");
}

/* Refuses the server: the verdict in c->vd says why. */
static void kx_refuse(ra_tunnel_client *c) {
  c->has_vd = true;
  ra_timer_stop(&c->connect_timer);
  char why[300];
  snprintf(why, sizeof why, "%s: %s", ra_err_name(c->vd.err), c->vd.msg);
  ra_warn("tunnel client: attestation refused: %s", why);
  fail_connection(c, -EACCES, "attestation refused: %s", why);
  if (c->o.on_ready) c->o.on_ready(c, -EACCES, &c->vd, c->o.ud);
}

/* The policy for this handshake: the caller's, plus the key binding. */
static void kx_policy(ra_tunnel_client *c, ra_policy *p) {
  if (c->has_policy) *p = c->policy;
  else memset(p, 0, sizeof *p);
  if (!c->o.no_binding) {
    p->x25519_pub = c->server_pk;
    if (c->has_nonce) {
      p->binding_val = c->bval ? c->bval : (const uint8_t *)"";
      p->binding_val_len = c->bval_len;
      p->binding_iat = c->biat ? c->biat : (const uint8_t *)"";
      p->binding_iat_len = c->biat_len;
    }
  }
}

/* The collateral could not be had: fail closed. The signatures are still
 * checked so that the verdict carries the quote's facts (and its own first
 * failure, if the quote is bad anyway); never accepted. */
static void kx_refuse_collateral(ra_tunnel_client *c, int code, const char *msg) {
  ra_policy p;
  kx_policy(c, &p);
  ra_verify_quote(c->o.verifier, c->quote, c->quote_len, NULL, &p, &c->vd);
  if (c->vd.err == 0 || c->vd.checks[RA_CHECK_QUOTE_SIG] == RA_CHECK_PASS) {
    c->vd.err = code;
    snprintf(c->vd.msg, sizeof c->vd.msg, "%s", msg);
  }
  c->vd.checks[RA_CHECK_COLLATERAL] = RA_CHECK_FAIL;
  c->vd.tcb_evaluated = false;
  kx_refuse(c);
}

/* client_kx with our own quote over this session's binding (PROTOCOL.md
 * §10). Returns 0 (sent), or -1 after failing the connection. */
static int send_client_kx_att(ra_tunnel_client *c, const uint8_t *sealed, size_t sealed_len) {
  uint8_t rd[64];
  ra_tunnel_client_binding(c->server_pk, c->challenge, sealed, sealed_len, rd);
  uint8_t *quote = NULL, *msg = NULL;
  size_t quote_len = 0;
  int rc = ra_quote_provider_get_report(c->o.client_provider, rd, &quote, &quote_len);
  if (rc == 0 && !ra_quote_provider_binds_key(c->o.client_provider))
    ra_warn("tunnel client: the %s provider cannot bind its quote to this session: the server "
            "will refuse it", ra_quote_provider_name(c->o.client_provider));
  if (rc == 0) {
    ra_tmsg_client_att_out att = {
      .quote = ra_bytes_make(quote, quote_len),
      .event_log = c->client_event_log ? ra_str_cstr(c->client_event_log) : ra_str_make(NULL, 0),
    };
    size_t n = ra_tmsg_encode_client_kx_att(NULL, 0, sealed, sealed_len, &att);
    msg = malloc(n);
    if (!msg) rc = -ENOMEM;
    else {
      ra_tmsg_encode_client_kx_att(msg, n, sealed, sealed_len, &att);
      ra_ws_send(c->ch.ctl, RA_WS_BINARY, msg, n);
    }
  }
  free(quote);
  free(msg);
  if (rc) {
    ra_warn("tunnel client: no client attestation: the %s provider: %s",
            ra_quote_provider_name(c->o.client_provider), ra_strerror(rc));
    fail_connection(c, -EIO, "cannot produce the client attestation: %s", ra_strerror(rc));
    if (c->o.on_ready) c->o.on_ready(c, -EIO, &c->vd, c->o.ud);
    return -1;
  }
  c->sent_attestation = true;
  return 0;
}

static void kx_accept(ra_tunnel_client *c);

/* Verifies the quote of server_kx (with coll, when not NULL); sends
 * client_kx when every check passes. */
static void kx_verify(ra_tunnel_client *c, ra_collateral *coll) {
  ra_policy p;
  kx_policy(c, &p);
  ra_verify_opts vo = {.collateral = coll};
  int rc = c->o.vcache ? ra_vcache_verify(c->o.vcache, c->o.verifier, c->quote, c->quote_len,
                                          coll ? &vo : NULL, &p, &c->vd)
                       : ra_verify_quote(c->o.verifier, c->quote, c->quote_len, coll ? &vo : NULL,
                                         &p, &c->vd);
  c->has_vd = true;
  ra_timer_stop(&c->connect_timer);
  if (rc) {
    kx_refuse(c);
    return;
  }
  kx_accept(c);
}

/* The server's quote passed: seal a fresh key to it, send client_kx, flush
 * what waited for the key. */
static void kx_accept(ra_tunnel_client *c) {
  uint8_t sealed[RA_ENV_SEALED_KEY_BYTES];
  ra_env_random_key(c->ch.key);
  if (ra_env_seal_key(c->ch.key, c->server_pk, sealed)) {
    fail_connection(c, -EPROTO, "%s", "the server's X25519 key is unusable");
    if (c->o.on_ready) c->o.on_ready(c, -EPROTO, &c->vd, c->o.ud);
    return;
  }
  c->sent_attestation = false;
  if (c->has_challenge && c->o.client_provider) {
    if (send_client_kx_att(c, sealed, sizeof sealed)) return; /* failed: connection closing */
  } else {
    uint8_t msg[160];
    size_t n = ra_tmsg_encode_client_kx(msg, sizeof msg, sealed, sizeof sealed);
    ra_ws_send(c->ch.ctl, RA_WS_BINARY, msg, n);
  }
  c->state = ST_READY;
  c->ch.keyed = true;
  /* flush what waited for the key, oldest first (the lists are LIFO) */
  creq *last = c->reqs;
  while (last && last->next) last = last->next;
  for (creq *q = last; q; q = q->prev) {
    if (q->sent || q->fail || !q->plain) continue;
    if (ra_tchan_send_plain(&c->ch, q->plain, q->plain_len) == 0) {
      q->sent = true;
      if (!q->retry) {
        free(q->plain);
        q->plain = NULL;
      }
    }
  }
  ra_tchan_sock *wl = c->ch.socks;
  while (wl && wl->next) wl = wl->next;
  for (ra_tchan_sock *w = wl; w; w = w->prev) sock_flush(&c->ch, w);
  if (c->o.on_ready) c->o.on_ready(c, 0, &c->vd, c->o.ud);
}

/* The server is of a kind this client has no verifier for: refused. */
static void kx_refuse_kind(ra_tunnel_client *c, const char *why) {
  memset(&c->vd, 0, sizeof c->vd);
  c->vd.err = RA_ERR_QUOTE_UNSUPPORTED;
  snprintf(c->vd.msg, sizeof c->vd.msg, "tee: %s", why);
  kx_refuse(c);
}

/* A SEV-SNP server_kx: the report against the certificates it came with,
 * under the caller's SNP policy plus the reference's key binding. */
static void kx_verify_snp(ra_tunnel_client *c) {
  if (!c->o.snp_verifier) {
    kx_refuse_kind(c, "the server presents SEV-SNP evidence (sev_snp_data) and this client is set "
                      "up for Intel TDX/SGX only (no SEV-SNP verifier or policy)");
    return;
  }
  ra_snp_policy p;
  if (c->has_snp_policy) p = c->snp_policy;
  else memset(&p, 0, sizeof p);
  if (!c->o.no_binding) {
    p.x25519_pub = c->server_pk;
    /* absent: NULL, which the verifier refuses (as the reference client) */
    p.nonce = c->has_snonce ? (c->snonce ? c->snonce : (const uint8_t *)"") : NULL;
    p.nonce_len = c->snonce_len;
  }
  ra_snp_verify_opts vo = {
    .vcek = (const uint8_t *)c->vcek, .vcek_len = strlen(c->vcek),
    .ask = (const uint8_t *)c->ask, .ask_len = c->ask ? strlen(c->ask) : 0,
    .ark = (const uint8_t *)c->ark, .ark_len = c->ark ? strlen(c->ark) : 0,
  };
  int rc = ra_snp_verify(c->o.snp_verifier, c->quote, c->quote_len, &vo, &p, &c->svd);
  c->has_svd = true;
  /* the summary every caller reads (on_ready's vd): err and the step */
  memset(&c->vd, 0, sizeof c->vd);
  c->vd.err = c->svd.err;
  c->vd.debug = c->svd.debug;
  c->vd.matched_set = c->svd.matched_set;
  c->vd.at = c->svd.at;
  if (rc)
    snprintf(c->vd.msg, sizeof c->vd.msg, "%s: %.200s",
             ra_snp_check_name((ra_snp_check)c->svd.failed), c->svd.msg);
  c->has_vd = true;
  ra_timer_stop(&c->connect_timer);
  if (rc) {
    kx_refuse(c);
    return;
  }
  kx_accept(c);
}

static bool key_eq(const ra_pcs_key *a, const ra_pcs_key *b) {
  return a->tee == b->tee && a->ca == b->ca && !memcmp(a->fmspc, b->fmspc, 6);
}

static void fetch_done(int err, const ra_pcs_result *res, void *ud) {
  ra_tunnel_client *c = ud;
  char msg[256];
  c->fetch = NULL;
  if (err) {
    snprintf(msg, sizeof msg, "fetching the collateral from %s failed: %s", c->pccs_url, ra_strerror(err));
    kx_refuse_collateral(c, RA_ERR_COLLATERAL_UNAVAILABLE, msg);
    return;
  }
  if (res->refresh_failed)
    ra_warn("tunnel client: collateral refresh from %s failed (%s): the cached collateral is used",
            c->pccs_url, ra_strerror(res->refresh_failed));
  ra_collateral *coll;
  int rc = ra_collateral_parse_json(res->doc.ptr, res->doc.len, &coll);
  if (rc) {
    snprintf(msg, sizeof msg, "the collateral from %s does not parse: %s", c->pccs_url, ra_strerror(rc));
    kx_refuse_collateral(c, RA_ERR_COLLATERAL_PARSE, msg);
    return;
  }
  ra_collateral_free(c->fetched);
  c->fetched = coll;
  c->fetched_key = c->fetch_key;
  c->fetched_next_update = res->next_update;
  ra_debug("tunnel client: collateral %s %s", res->from_cache ? "from the cache" : "fetched from", c->pccs_url);
  kx_verify(c, coll);
}

/* Gets the collateral for the server's quote, then verifies. */
static void kx_fetch(ra_tunnel_client *c) {
  char msg[256];
  ra_pcs_key key;
  int rc = ra_pcs_key_from_quote(c->quote, c->quote_len, &key);
  if (rc) {
    snprintf(msg, sizeof msg, "cannot tell which collateral the quote needs: %s", ra_strerror(rc));
    kx_refuse_collateral(c, RA_ERR_COLLATERAL_UNAVAILABLE, msg);
    return;
  }
  /* the last document, while fresh (an hour before nextUpdate it is
   * fetched again, as the on-disk cache does) */
  if (c->fetched && key_eq(&key, &c->fetched_key) && (int64_t)time(NULL) + 3600 < c->fetched_next_update) {
    kx_verify(c, c->fetched);
    return;
  }
  ra_pcs_opts po;
  memset(&po, 0, sizeof po);
  po.base_url = c->pccs_url;
  po.cache_dir = c->pccs_cache_dir;
  po.ca_file = c->pccs_ca_file;
  po.no_cache = c->o.pccs_no_cache;
  po.timeout_ms = c->o.pccs_timeout_ms ? c->o.pccs_timeout_ms : c->o.connect_timeout_ms;
  c->fetch_key = key;
  rc = ra_pcs_fetch_start(c->loop, &po, &key, fetch_done, c, &c->fetch);
  if (rc) {
    c->fetch = NULL;
    snprintf(msg, sizeof msg, "cannot fetch the collateral from %s: %s", c->pccs_url, ra_strerror(rc));
    kx_refuse_collateral(c, RA_ERR_COLLATERAL_UNAVAILABLE, msg);
  }
}

static void fetch_cancel(ra_tunnel_client *c) {
  if (c->fetch) ra_pcs_fetch_cancel(c->fetch);
  c->fetch = NULL;
}

/* Copies len bytes (NULL for none). */
static uint8_t *dup_bytes(const uint8_t *p, size_t len) {
  uint8_t *d = malloc(len ? len : 1);
  if (d && len) memcpy(d, p, len);
  return d;
}

static void on_server_kx(ra_tunnel_client *c, const ra_tmsg *m) {
  if (c->state == ST_READY || c->has_server_pk) return; /* only the first one counts */
  const ra_tmsg_server_kx *k = &m->server_kx;
  memcpy(c->server_pk, k->x25519_public_key.bytes, 32);
  c->has_server_pk = true;
  c->has_challenge = k->has_client_challenge;
  if (c->has_challenge) memcpy(c->challenge, k->client_challenge.bytes, sizeof c->challenge);
  free(c->quote);
  c->quote_len = 0;
  c->quote = dup_bytes(k->quote.bytes, k->quote.len);
  if (c->quote) c->quote_len = k->quote.len;
  free(c->bval);
  free(c->biat);
  c->bval = c->biat = NULL;
  c->bval_len = c->biat_len = 0;
  c->has_nonce = k->vd_kind == RA_TMSG_VD_NONCE;
  if (c->has_nonce) {
    c->bval = dup_bytes(k->vd_val.bytes, k->vd_val.len);
    c->biat = dup_bytes(k->vd_iat.bytes, k->vd_iat.len);
    if (!c->bval || !c->biat) {
      fail_connection(c, -ENOMEM, "%s", "out of memory");
      return;
    }
    c->bval_len = k->vd_val.len;
    c->biat_len = k->vd_iat.len;
  }
  free(c->snonce);
  free(c->vcek);
  free(c->ask);
  free(c->ark);
  c->snonce = NULL;
  c->vcek = c->ask = c->ark = NULL;
  c->snonce_len = 0;
  c->has_svd = false;
  c->snp = k->has_sev_snp;
  if (c->snp) {
    /* the nonce is verifier_data, a byte string (or its val, should a map
     * arrive: what the reference client reads) */
    ra_str n = k->vd_kind == RA_TMSG_VD_BYTES ? k->vd_bytes : k->vd_val;
    c->has_snonce = k->vd_kind == RA_TMSG_VD_BYTES || (k->vd_kind == RA_TMSG_VD_NONCE && k->vd_val.ptr);
    c->snonce = c->has_snonce ? dup_bytes(n.bytes, n.len) : NULL;
    c->snonce_len = c->snonce ? n.len : 0;
    c->vcek = strndup((const char *)k->vcek_cert.ptr, k->vcek_cert.len);
    if (k->has_ask_cert) c->ask = strndup((const char *)k->ask_cert.ptr, k->ask_cert.len);
    if (k->has_ark_cert) c->ark = strndup((const char *)k->ark_cert.ptr, k->ark_cert.len);
    if ((c->has_snonce && !c->snonce) || !c->vcek || (k->has_ask_cert && !c->ask) ||
        (k->has_ark_cert && !c->ark)) {
      fail_connection(c, -ENOMEM, "%s", "out of memory");
      return;
    }
  }
  if (!k->quote.len || !c->quote) {
    memset(&c->vd, 0, sizeof c->vd);
    c->vd.err = k->quote.len ? RA_ERR_INTERNAL : RA_ERR_QUOTE_TRUNCATED;
    snprintf(c->vd.msg, sizeof c->vd.msg, "%s", k->quote.len ? "out of memory" : "empty quote");
    kx_refuse(c);
    return;
  }
  if (c->snp) kx_verify_snp(c); /* Intel's collateral does not apply */
  else if (!c->o.verifier)
    kx_refuse_kind(c, "the server presents an Intel TDX/SGX quote (no sev_snp_data) and this "
                      "client is set up for SEV-SNP only (no TDX verifier or policy)");
  else if (c->pccs_url) kx_fetch(c); /* verifies when the collateral is here */
  else kx_verify(c, c->o.collateral);
}

/* The control ws's user data: a link that outlives the client if the
 * client is freed before the connection's last callback. */
typedef struct ctl_link {
  ra_tunnel_client *c;
} ctl_link;

static void ctl_open(ra_ws *ws, void *ud) {
  ra_tunnel_client *c = ((ctl_link *)ud)->c;
  if (!c) return;
  uint8_t hello[32];
  size_t n = ra_tmsg_encode_client_kx_ready(hello, sizeof hello);
  ra_ws_send(ws, RA_WS_BINARY, hello, n);
  (void)c;
}

static void ctl_message(ra_ws *ws, ra_ws_type type, const uint8_t *data, size_t len, void *ud) {
  ra_tunnel_client *c = ((ctl_link *)ud)->c;
  if (!c || ws != c->ch.ctl) return;
  ra_tmsg m;
  if (ra_tmsg_decode(data, len, &m) != 0) {
    ra_debug("tunnel client: undecodable control message dropped");
    if (!c->has_server_pk) fail_connection(c, -EPROTO, "%s", "malformed server_kx");
    return;
  }
  if (m.type == RA_TMSG_SERVER_KX) {
    on_server_kx(c, &m);
    return;
  }
  if (m.type != RA_TMSG_ENC || c->state != ST_READY) return;
  const uint8_t *plain;
  size_t plen;
  if (ra_tchan_open(&c->ch, &m, &plain, &plen)) {
    ra_debug("tunnel client: envelope does not authenticate, dropped");
    return;
  }
  ra_tmsg inner;
  if (ra_tmsg_decode(plain, plen, &inner) == 0) on_inner(c, &inner);
}

static void reconnect_fire(ra_timer *t, void *ud) {
  ra_tunnel_client *c = ud;
  if (c->state == ST_IDLE) start_connect(c);
}

/* Fails every pending request not failed already (each on its timer, so
 * not from inside the caller). */
static void fail_pending(ra_tunnel_client *c, int err) {
  for (creq *q = c->reqs; q; q = q->next) {
    if (q->fail) continue;
    q->fail = err;
    ra_timer_start(&q->timer, 0, 0);
  }
}

static void ctl_close(ra_ws *ws, uint16_t code, ra_str reason, void *ud) {
  ra_tunnel_client *c = ((ctl_link *)ud)->c;
  free(ud); /* the last callback of this connection */
  if (!c || ws != c->ch.ctl) return;
  c->link = NULL;
  c->ch.ctl = NULL;
  ra_timer_stop(&c->connect_timer);
  fetch_cancel(c); /* a fetch for this connection's handshake: moot */
  if (!c->fail) {
    c->fail = c->state == ST_READY ? -ECONNRESET : -ECONNREFUSED;
    snprintf(c->fail_msg, sizeof c->fail_msg, "%s (%u %.*s)",
             c->state == ST_READY ? "tunnel disconnected" : "cannot open the tunnel", code,
             (int)(reason.len > 200 ? 200 : reason.len), reason.ptr ? reason.ptr : "");
  }
  if (c->state != ST_READY && c->o.on_ready && !c->has_vd) c->o.on_ready(c, c->fail, NULL, c->o.ud);
  c->has_server_pk = false;
  if (code == 1012 && c->state == ST_READY && !c->freeing) {
    /* the server rotated its key ("service restart"): a new tunnel at once.
     * Requests not sent yet and GET/HEAD (their bytes kept) go on it;
     * other requests in flight fail: the server may have acted on them,
     * so they are not replayed. */
    snprintf(c->fail_msg, sizeof c->fail_msg, "%s",
             "tunnel closed for key rotation (1012): request in flight not replayed");
    for (creq *q = c->reqs; q; q = q->next) {
      if (q->fail || (q->plain && (!q->sent || q->retry))) {
        q->sent = false;
        continue;
      }
      q->fail = -ECONNRESET;
      ra_timer_start(&q->timer, 0, 0);
    }
    c->state = ST_IDLE;
    ra_tchan_drop(&c->ch); /* wipes the key too */
    ra_timer_start(&c->reconnect_timer, 0, 0);
    return;
  }
  bool again = c->o.reconnect && !c->freeing;
  c->state = again ? ST_IDLE : ST_CLOSED;
  int err = c->fail;
  /* pending requests fail; tunnelled sockets close */
  fail_pending(c, err);
  ra_tchan_drop(&c->ch); /* wipes the key too */
  if (again) ra_timer_start(&c->reconnect_timer, c->o.reconnect_delay_ms, 0);
}

static void ctl_drain(ra_ws *ws, void *ud) {
  ra_tunnel_client *c = ((ctl_link *)ud)->c;
  if (c && ws == c->ch.ctl) ra_tchan_drain(&c->ch);
}

static const ra_ws_handlers ctl_handlers = {
  .on_open = ctl_open, .on_message = ctl_message, .on_close = ctl_close, .on_drain = ctl_drain,
};

static void connect_timeout(ra_timer *t, void *ud) {
  ra_tunnel_client *c = ud;
  if (c->fetch) fail_connection(c, -ETIMEDOUT, "timed out fetching the collateral from %s", c->pccs_url);
  else fail_connection(c, -ETIMEDOUT, "%s", "timed out opening the tunnel");
  fetch_cancel(c);
  if (c->ch.ctl) ra_ws_terminate(c->ch.ctl);
}

static void start_connect(ra_tunnel_client *c) {
  c->fail = 0;
  c->fail_msg[0] = 0;
  c->has_vd = false;
  c->has_server_pk = false;
  c->state = ST_CONNECTING;
  ra_ws_client_opts wo;
  memset(&wo, 0, sizeof wo);
  wo.ws.max_message = c->o.max_envelope;
  wo.handshake_timeout_ms = c->o.connect_timeout_ms;
  wo.tls = c->tls;
  wo.tls_server_name = c->tls_server_name;
  ctl_link *link = calloc(1, sizeof *link);
  int rc = link ? ra_ws_connect(c->loop, c->ctl_url, &wo, &ctl_handlers, link, &c->ch.ctl) : -ENOMEM;
  if (!rc) {
    link->c = c;
    c->link = link;
  }
  if (rc) {
    free(link);
    c->ch.ctl = NULL;
    c->state = c->o.reconnect ? ST_IDLE : ST_CLOSED;
    c->fail = rc;
    snprintf(c->fail_msg, sizeof c->fail_msg, "cannot connect: %s", strerror(-rc));
    fail_pending(c, rc);
    if (c->o.reconnect) ra_timer_start(&c->reconnect_timer, c->o.reconnect_delay_ms, 0);
    return;
  }
  ra_timer_start(&c->connect_timer, c->o.connect_timeout_ms, 0);
}

int ra_tunnel_client_new(ra_loop *loop, const char *origin, const ra_tunnel_client_opts *opts,
                         ra_tunnel_client **out) {
  *out = NULL;
  if (!origin || !opts || (!opts->verifier && !opts->snp_verifier) || (opts->collateral && opts->pccs_url))
    return -EINVAL;
  const char *rest;
  bool tls = false;
  if (!strncmp(origin, "http://", 7)) rest = origin + 7;
  else if (!strncmp(origin, "ws://", 5)) rest = origin + 5;
  else if (!strncmp(origin, "https://", 8)) rest = origin + 8, tls = true;
  else if (!strncmp(origin, "wss://", 6)) rest = origin + 6, tls = true;
  else return -EINVAL;
  size_t hostlen = strcspn(rest, "/?#");
  if (hostlen == 0) return -EINVAL;
  if (ra_env_init()) return -EIO;
  ra_tunnel_client *c = calloc(1, sizeof *c);
  if (!c) return -ENOMEM;
  c->ctl_url = malloc(hostlen + 16);
  if (!c->ctl_url || ra_tchan_init(&c->ch, loop, RA_TCHAN_CLIENT, 2)) {
    free(c->ctl_url);
    free(c);
    return -ENOMEM;
  }
  snprintf(c->ctl_url, hostlen + 16, "%s://%.*s/__ra__", tls ? "wss" : "ws", (int)hostlen, rest);
  c->loop = loop;
  c->o = *opts;
  if ((opts->pccs_url && !(c->pccs_url = strdup(opts->pccs_url))) ||
      (opts->pccs_cache_dir && !(c->pccs_cache_dir = strdup(opts->pccs_cache_dir))) ||
      (opts->pccs_ca_file && !(c->pccs_ca_file = strdup(opts->pccs_ca_file))) ||
      (opts->tls_server_name && !(c->tls_server_name = strdup(opts->tls_server_name))) ||
      (opts->client_event_log && !(c->client_event_log = strdup(opts->client_event_log)))) {
    free(c->client_event_log);
    free(c->tls_server_name);
    free(c->pccs_url);
    free(c->pccs_cache_dir);
    free(c->pccs_ca_file);
    ra_tchan_free(&c->ch);
    free(c->ctl_url);
    free(c);
    return -ENOMEM;
  }
  c->o.pccs_url = c->pccs_url;
  if (opts->tls) c->tls = ra_tls_ctx_ref(opts->tls);
  c->o.tls = NULL; /* c->tls holds it */
  c->o.tls_server_name = NULL;
  c->o.pccs_cache_dir = c->pccs_cache_dir;
  c->o.pccs_ca_file = c->pccs_ca_file;
  c->o.client_event_log = NULL; /* c->client_event_log holds it */
  if (opts->policy) { c->policy = *opts->policy; c->has_policy = true; }
  if (opts->snp_policy) { c->snp_policy = *opts->snp_policy; c->has_snp_policy = true; }
  if (!c->o.request_timeout_ms) c->o.request_timeout_ms = 30000;
  if (!c->o.connect_timeout_ms) c->o.connect_timeout_ms = 10000;
  if (!c->o.reconnect_delay_ms) c->o.reconnect_delay_ms = 1000;
  if (!c->o.max_envelope) c->o.max_envelope = 64u << 20;
  ra_timer_init(loop, &c->connect_timer, connect_timeout, c);
  ra_timer_init(loop, &c->reconnect_timer, reconnect_fire, c);
  start_connect(c);
  *out = c;
  return 0;
}

void ra_tunnel_client_free(ra_tunnel_client *c) {
  if (!c) return;
  c->freeing = true;
  fetch_cancel(c);
  ra_timer_stop(&c->connect_timer);
  ra_timer_stop(&c->reconnect_timer);
  while (c->reqs) creq_finish(c->reqs, -ECANCELED, NULL, "tunnel closed");
  ra_tchan_drop(&c->ch);
  if (c->ch.ctl) {
    ra_ws *ws = c->ch.ctl;
    c->ch.ctl = NULL;
    if (c->link) c->link->c = NULL; /* its on_close (from the loop) finds nothing */
    ra_ws_close(ws, 1000, ""); /* not NULL: ws.c memcpy()s the reason */
  }
  ra_tchan_free(&c->ch);
  free(c->quote);
  free(c->bval);
  free(c->biat);
  free(c->snonce);
  free(c->vcek);
  free(c->ask);
  free(c->ark);
  ra_collateral_free(c->fetched);
  free(c->pccs_url);
  free(c->pccs_cache_dir);
  free(c->pccs_ca_file);
  free(c->tls_server_name);
  free(c->client_event_log);
  ra_tls_ctx_unref(c->tls);
  free(c->ctl_url);
  ra_tindex_free(&c->reqs_by_num);
  free(c);
}

bool ra_tunnel_client_ready(const ra_tunnel_client *c) { return c->state == ST_READY; }
const ra_verdict *ra_tunnel_client_verdict(const ra_tunnel_client *c) { return c->has_vd ? &c->vd : NULL; }
const uint8_t *ra_tunnel_client_quote(const ra_tunnel_client *c, size_t *len) {
  *len = c->quote ? c->quote_len : 0;
  return c->quote;
}
bool ra_tunnel_client_attested(const ra_tunnel_client *c) { return c->sent_attestation; }
const ra_snp_verdict *ra_tunnel_client_snp_verdict(const ra_tunnel_client *c) {
  return c->snp && c->has_svd ? &c->svd : NULL;
}
bool ra_tunnel_client_server_is_snp(const ra_tunnel_client *c) { return c->snp; }
const uint8_t *ra_tunnel_client_server_key(const ra_tunnel_client *c) {
  return c->has_server_pk ? c->server_pk : NULL;
}
