/* attest/tunnel_client.c: see tunnel_client.h. */
#include "raloop/attest/tunnel/client.h"

#include <errno.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "raloop/attest/tunnel/envelope.h"
#include "raloop/core/list.h"
#include "raloop/core/log.h"
#include "raloop/ws/client.h"
#include "raloop/ws/utf8.h"

typedef struct creq creq;
typedef struct cws cws;

enum { ST_IDLE, ST_CONNECTING, ST_READY, ST_CLOSED };

struct ra_tunnel_client {
  ra_loop *loop;
  char *ctl_url;
  ra_tunnel_client_opts o;
  ra_policy policy;
  bool has_policy;
  ra_ws *ctl;
  struct ctl_link *link; /* ctl's user data */
  int state;
  int fail;            /* why the current/last connection failed (for pending requests) */
  char fail_msg[512];
  uint8_t key[RA_ENV_KEY_BYTES];
  uint8_t server_pk[32];
  bool has_server_pk;
  ra_verdict vd;
  bool has_vd;
  uint8_t *quote; /* copy of the last server_kx quote (for -v style reports) */
  size_t quote_len;
  ra_env_buf rx, tx;
  ra_env_pool *pool;
  creq *reqs;
  cws *socks;
  unsigned socks_gen; /* bumped whenever a socket leaves socks (ctl_drain) */
  uint64_t next_id;
  creq **map; /* pending requests by id number (see map_put) */
  size_t map_cap, map_n;
  ra_timer connect_timer, reconnect_timer;
  bool freeing;
};

struct creq {
  ra_tunnel_client *c;
  creq *next, *prev;
  ra_timer timer;
  bool sent;
  int fail; /* set: the timer reports this error */
  ra_tunnel_fetch_cb cb;
  void *ud;
  uint8_t *plain; /* the encoded http_request, sealed when the channel is ready */
  size_t plain_len;
  uint64_t num; /* the N of id "raN" */
  char id[32];
};

struct cws {
  ra_tunnel_client *c;
  cws *next, *prev;
  ra_ws *ws;
  bool sent_connect, gone;
  bool opened; /* on_open delivered (ws_event open, or the first message) */
  ra_defer later;
  uint8_t *plain; /* the encoded ws_connect until sent */
  size_t plain_len;
  char id[40];
};

static void start_connect(ra_tunnel_client *c);
static int map_put(ra_tunnel_client *c, creq *q);
static void map_del(ra_tunnel_client *c, creq *q);

/* ---- sealing ----------------------------------------------------------------- */

/* Seals the n plaintext bytes written at the pointer ra_env_seal_begin(&c->tx)
 * returned and lends the buffer to the stream (no copy, even when queued). */
static int send_tx(ra_tunnel_client *c, size_t n) {
  const uint8_t *msg;
  size_t len;
  ra_env_seal_end(&c->tx, c->key, n, &msg, &len);
  int rc = ra_ws_send_owned(c->ctl, RA_WS_BINARY, (uint8_t *)msg, len, ra_env_buf_return,
                            ra_env_buf_lend(&c->tx));
  return rc < 0 ? rc : 0;
}

static int send_plain(ra_tunnel_client *c, const uint8_t *plain, size_t n) {
  if (c->state != ST_READY || !c->ctl) return -ENOTCONN;
  uint8_t *p = ra_env_seal_begin(&c->tx, n);
  if (!p) return -ENOMEM;
  memcpy(p, plain, n);
  return send_tx(c, n);
}

/* Encodes with enc(out, cap, arg) into a fresh heap buffer. */
typedef size_t (*encode_fn)(uint8_t *out, size_t cap, const void *arg);
static uint8_t *encode_alloc(encode_fn enc, const void *arg, size_t *len) {
  size_t n = enc(NULL, 0, arg);
  uint8_t *p = malloc(n ? n : 1);
  if (!p) return NULL;
  enc(p, n, arg);
  *len = n;
  return p;
}

/* Encodes straight into the seal buffer. */
static int send_encoded(ra_tunnel_client *c, encode_fn enc, const void *arg) {
  if (c->state != ST_READY || !c->ctl) return -ENOTCONN;
  size_t n = enc(NULL, 0, arg);
  uint8_t *p = ra_env_seal_begin(&c->tx, n);
  if (!p) return -ENOMEM;
  enc(p, n, arg);
  return send_tx(c, n);
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
  bool now = c->state == ST_READY && c->ctl;
  if (now) {
    ra_ws_cork(c->ctl); /* many fetches in one turn: one write */
    int rc = send_encoded(c, enc_request, &o);
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
 * Responses come back in any order with many requests in flight: an
 * open-addressed table keyed by the number in our "ra<N>" ids finds each in
 * O(1) (linear probing, backward-shift deletion, load <= 1/2). */

static uint64_t id_hash(uint64_t k) {
  k ^= k >> 33;
  k *= 0xff51afd7ed558ccdULL;
  k ^= k >> 33;
  return k;
}

static int map_put(ra_tunnel_client *c, creq *q) {
  if ((c->map_n + 1) * 2 > c->map_cap) {
    size_t cap = c->map_cap ? c->map_cap * 2 : 16;
    creq **s = calloc(cap, sizeof *s);
    if (!s) return -ENOMEM;
    for (size_t i = 0; i < c->map_cap; i++) {
      creq *x = c->map[i];
      if (!x) continue;
      size_t j = (size_t)id_hash(x->num) & (cap - 1);
      while (s[j]) j = (j + 1) & (cap - 1);
      s[j] = x;
    }
    free(c->map);
    c->map = s;
    c->map_cap = cap;
  }
  size_t j = (size_t)id_hash(q->num) & (c->map_cap - 1);
  while (c->map[j]) j = (j + 1) & (c->map_cap - 1);
  c->map[j] = q;
  c->map_n++;
  return 0;
}

static void map_del(ra_tunnel_client *c, creq *q) {
  if (!c->map_cap) return;
  size_t mask = c->map_cap - 1, i = (size_t)id_hash(q->num) & mask;
  while (c->map[i] && c->map[i] != q) i = (i + 1) & mask;
  if (!c->map[i]) return;
  c->map[i] = NULL;
  c->map_n--;
  /* backward shift: move up entries that probed past the hole */
  for (size_t j = (i + 1) & mask; c->map[j]; j = (j + 1) & mask) {
    size_t home = (size_t)id_hash(c->map[j]->num) & mask;
    if (((j - home) & mask) >= ((j - i) & mask)) {
      c->map[i] = c->map[j];
      c->map[j] = NULL;
      i = j;
    }
  }
}

static creq *find_req(ra_tunnel_client *c, ra_str id) {
  /* our ids are "ra" and a decimal number: anything else is not ours */
  if (id.len < 3 || id.len > 22 || id.ptr[0] != 'r' || id.ptr[1] != 'a' || !c->map_cap) return NULL;
  uint64_t num = 0;
  for (size_t i = 2; i < id.len; i++) {
    if (id.ptr[i] < '0' || id.ptr[i] > '9') return NULL;
    num = num * 10 + (uint64_t)(id.ptr[i] - '0');
  }
  size_t mask = c->map_cap - 1;
  for (size_t j = (size_t)id_hash(num) & mask; c->map[j]; j = (j + 1) & mask)
    if (c->map[j]->num == num && ra_str_eq_cstr(id, c->map[j]->id)) return c->map[j];
  return NULL;
}

/* ---- tunnelled WebSockets (client side) ----------------------------------------- */

typedef struct msg_arg {
  ra_str id;
  bool text;
  const void *data;
  size_t len;
} msg_arg;
static size_t enc_message(uint8_t *out, size_t cap, const void *a) {
  const msg_arg *m = a;
  return ra_tmsg_encode_ws_message(out, cap, m->id, m->text, m->data, m->len);
}
typedef struct close_arg {
  ra_str id;
  int code;
  ra_str reason;
} close_arg;
static size_t enc_close(uint8_t *out, size_t cap, const void *a) {
  const close_arg *m = a;
  return ra_tmsg_encode_ws_close(out, cap, m->id, m->code, m->reason);
}

static void cws_release(cws *w) {
  if (w->c) {
    RA_LIST_DEL(w->c->socks, w);
    w->c->socks_gen++;
    w->c = NULL;
  }
  free(w->plain);
  w->plain = NULL;
}

static int cws_send(void *sink, ra_ws_type type, const void *data, size_t len) {
  cws *w = sink;
  if (w->gone || !w->c) return -EPIPE;
  msg_arg a = {ra_str_cstr(w->id), type == RA_WS_TEXT, data, len};
  return send_encoded(w->c, enc_message, &a);
}

static int cws_close(void *sink, uint16_t code, ra_str reason) {
  cws *w = sink;
  if (w->gone) return -EALREADY;
  w->gone = true;
  if (w->c && w->sent_connect) {
    close_arg a = {ra_str_cstr(w->id), code ? code : -1, reason.len ? reason : ra_str_make(NULL, 0)};
    send_encoded(w->c, enc_close, &a);
  }
  cws_release(w);
  ra_ws_deliver_close(w->ws, code ? code : 1005, reason);
  free(w);
  return 0;
}

static void cws_close_later(ra_defer *d, void *ud) {
  cws *w = ud;
  ra_ws_deliver_close(w->ws, 1006, RA_STR(""));
  free(w);
}

static void cws_terminate(void *sink) {
  cws *w = sink;
  if (w->gone) return;
  w->gone = true;
  ra_loop *loop = NULL;
  if (w->c) {
    loop = w->c->loop;
    if (w->sent_connect) {
      close_arg a = {ra_str_cstr(w->id), -1, ra_str_make(NULL, 0)};
      send_encoded(w->c, enc_close, &a);
    }
  }
  cws_release(w);
  if (loop) {
    ra_defer_init(&w->later, cws_close_later, w);
    ra_loop_defer(loop, &w->later);
  }
}

static size_t cws_buffered(void *sink) {
  cws *w = sink;
  return w->c && w->c->ctl ? ra_ws_buffered(w->c->ctl) : 0;
}

static const ra_ws_sink_ops cws_ops = {
  .send = cws_send, .close = cws_close, .terminate = cws_terminate, .buffered = cws_buffered,
};

typedef struct connect_arg {
  ra_str id, url;
  const ra_str *protocols;
  size_t n;
} connect_arg;
static size_t enc_connect(uint8_t *out, size_t cap, const void *a) {
  const connect_arg *m = a;
  return ra_tmsg_encode_ws_connect(out, cap, m->id, m->url, m->protocols, m->n);
}

static void cws_flush(cws *w) {
  if (w->sent_connect || !w->plain || !w->c) return;
  if (send_plain(w->c, w->plain, w->plain_len) == 0) {
    w->sent_connect = true;
    free(w->plain);
    w->plain = NULL;
  }
}

int ra_tunnel_ws_connect(ra_tunnel_client *c, const char *url, const char *const *protocols,
                         size_t n_protocols, const ra_ws_handlers *h, void *ud, ra_ws **out) {
  cws *w = calloc(1, sizeof *w);
  ra_str ps[16];
  if (!w) return -ENOMEM;
  if (n_protocols > 16) n_protocols = 16;
  for (size_t i = 0; i < n_protocols; i++) ps[i] = ra_str_cstr(protocols[i]);
  snprintf(w->id, sizeof w->id, "ws_%llu", (unsigned long long)++c->next_id);
  connect_arg a = {ra_str_cstr(w->id), ra_str_cstr(url), ps, n_protocols};
  w->plain = encode_alloc(enc_connect, &a, &w->plain_len);
  w->ws = w->plain ? ra_ws_new_with_sink(c->loop, &cws_ops, w, h, ud, NULL) : NULL;
  if (!w->ws) {
    free(w->plain);
    free(w);
    return -ENOMEM;
  }
  /* the path, for ra_ws_path() */
  const char *p = strstr(url, "://");
  p = p ? strchr(p + 3, '/') : url;
  ra_ws_set_info(w->ws, ra_str_cstr(p ? p : "/"), RA_STR(""), true);
  w->c = c;
  RA_LIST_ADD(c->socks, w);
  if (c->state == ST_READY) cws_flush(w);
  else if (c->state == ST_IDLE) start_connect(c);
  else if (c->state == ST_CLOSED) cws_terminate(w);
  if (out) *out = w->ws;
  return 0;
}

static cws *find_sock(ra_tunnel_client *c, ra_str id) {
  for (cws *w = c->socks; w; w = w->next)
    if (ra_str_eq_cstr(id, w->id)) return w;
  return NULL;
}

/* ---- the control channel ----------------------------------------------------------- */

static void on_inner(ra_tunnel_client *c, const ra_tmsg *m) {
  if (m->type == RA_TMSG_HTTP_RESPONSE) {
    creq *q = find_req(c, m->http_response.request_id);
    if (!q || !q->sent) return;
    if (m->http_response.has_error) {
      char msg[300];
      snprintf(msg, sizeof msg, "%.*s", (int)m->http_response.error.len, m->http_response.error.ptr);
      creq_finish(q, -EPROTO, NULL, msg);
      return;
    }
    /* header text back to the bytes plain HTTP would have carried */
    ra_tmsg_seq hs = m->http_response.headers;
    uint8_t *owned;
    int rc = ra_tmsg_headers_to_bytes(&hs, &owned);
    if (rc) {
      creq_finish(q, rc == -ENOMEM ? -ENOMEM : -EPROTO, NULL,
                  rc == -ENOMEM ? "out of memory" : "response header with a character above U+00FF");
      return;
    }
    ra_tunnel_response r = {
      .status = m->http_response.status, .status_text = m->http_response.status_text,
      .headers = hs,
      .body = m->http_response.has_body ? (m->http_response.body.ptr ? m->http_response.body.ptr : (const uint8_t *)"") : NULL,
      .body_len = m->http_response.body.len, .body_is_text = m->http_response.body_is_text,
    };
    creq_finish(q, 0, &r, NULL);
    free(owned);
  } else if (m->type == RA_TMSG_WS_EVENT) {
    cws *w = find_sock(c, m->ws_event.connection_id);
    if (!w || w->gone) return;
    if (m->ws_event.event == RA_TMSG_EV_OPEN) {
      if (!w->opened) { /* not after a message that opened it already */
        w->opened = true;
        ra_ws_deliver_open(w->ws);
      }
      return;
    }
    w->gone = true;
    cws_release(w);
    if (m->ws_event.event == RA_TMSG_EV_CLOSE)
      ra_ws_deliver_close(w->ws, m->ws_event.has_code ? (uint16_t)m->ws_event.code : 1005,
                          m->ws_event.has_reason ? m->ws_event.reason : RA_STR(""));
    else
      ra_ws_deliver_close(w->ws, 1006, m->ws_event.has_error ? m->ws_event.error : RA_STR("error"));
    free(w);
  } else if (m->type == RA_TMSG_WS_MESSAGE) {
    cws *w = find_sock(c, m->ws_message.connection_id);
    if (!w || w->gone) return;
    if (!w->opened) {
      /* The reference server runs the application's connection handler
       * before it sends ws_event open, so a greeting can come first: it
       * opens the socket (ws.h promises on_open before any on_message). */
      w->opened = true;
      ra_ws_deliver_open(w->ws);
      w = find_sock(c, m->ws_message.connection_id); /* on_open may have closed it */
      if (!w || w->gone) return;
    }
    if (m->ws_message.is_text && !ra_utf8_valid(m->ws_message.data.ptr, m->ws_message.data.len)) {
      ra_ws_close(w->ws, 1007, "invalid UTF-8");
      return;
    }
    ra_ws_deliver_message(w->ws, m->ws_message.is_text ? RA_WS_TEXT : RA_WS_BINARY,
                          m->ws_message.data.ptr, m->ws_message.data.len);
  }
}

static void fail_connection(ra_tunnel_client *c, int err, const char *fmt, const char *detail) {
  if (!c->fail) {
    c->fail = err;
    snprintf(c->fail_msg, sizeof c->fail_msg, fmt, detail ? detail : "");
  }
  if (c->ctl) ra_ws_close(c->ctl, 1000, "");
}

static void on_server_kx(ra_tunnel_client *c, const ra_tmsg *m) {
  if (c->state == ST_READY || c->has_server_pk) return; /* only the first one counts */
  const ra_tmsg_server_kx *k = &m->server_kx;
  memcpy(c->server_pk, k->x25519_public_key.ptr, 32);
  c->has_server_pk = true;
  free(c->quote);
  c->quote_len = 0;
  c->quote = malloc(k->quote.len ? k->quote.len : 1);
  if (c->quote) {
    if (k->quote.len) memcpy(c->quote, k->quote.ptr, k->quote.len);
    c->quote_len = k->quote.len;
  }
  ra_policy p;
  if (c->has_policy) p = c->policy;
  else memset(&p, 0, sizeof p);
  if (!c->o.no_binding) {
    p.x25519_pub = c->server_pk;
    if (k->vd_kind == RA_TMSG_VD_NONCE) {
      p.binding_val = k->vd_val.ptr;
      p.binding_val_len = k->vd_val.len;
      p.binding_iat = k->vd_iat.ptr;
      p.binding_iat_len = k->vd_iat.len;
    }
  }
  int rc = k->quote.len ? ra_verify_quote(c->o.verifier, k->quote.ptr, k->quote.len, NULL, &p, &c->vd) : -EACCES;
  if (!k->quote.len) {
    memset(&c->vd, 0, sizeof c->vd);
    c->vd.err = RA_ERR_QUOTE_TRUNCATED;
    snprintf(c->vd.msg, sizeof c->vd.msg, "empty quote");
  }
  c->has_vd = true;
  ra_timer_stop(&c->connect_timer);
  if (rc) {
    char why[300];
    snprintf(why, sizeof why, "%s: %s", ra_err_name(c->vd.err), c->vd.msg);
    ra_warn("tunnel client: attestation refused: %s", why);
    fail_connection(c, -EACCES, "attestation refused: %s", why);
    if (c->o.on_ready) c->o.on_ready(c, -EACCES, &c->vd, c->o.ud);
    return;
  }
  uint8_t sealed[RA_ENV_SEALED_KEY_BYTES];
  ra_env_random_key(c->key);
  if (ra_env_seal_key(c->key, c->server_pk, sealed)) {
    fail_connection(c, -EPROTO, "%s", "the server's X25519 key is unusable");
    if (c->o.on_ready) c->o.on_ready(c, -EPROTO, &c->vd, c->o.ud);
    return;
  }
  uint8_t msg[160];
  size_t n = ra_tmsg_encode_client_kx(msg, sizeof msg, sealed, sizeof sealed);
  ra_ws_send(c->ctl, RA_WS_BINARY, msg, n);
  c->state = ST_READY;
  /* flush what waited for the key, oldest first (the lists are LIFO) */
  creq *last = c->reqs;
  while (last && last->next) last = last->next;
  for (creq *q = last; q; q = q->prev) {
    if (q->sent || q->fail || !q->plain) continue;
    if (send_plain(c, q->plain, q->plain_len) == 0) {
      q->sent = true;
      free(q->plain);
      q->plain = NULL;
    }
  }
  cws *wl = c->socks;
  while (wl && wl->next) wl = wl->next;
  for (cws *w = wl; w; w = w->prev) cws_flush(w);
  if (c->o.on_ready) c->o.on_ready(c, 0, &c->vd, c->o.ud);
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
  if (!c || ws != c->ctl) return;
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
  if (ra_env_open(&c->rx, c->key, m.enc.nonce.ptr, m.enc.ciphertext.ptr, m.enc.ciphertext.len, &plain, &plen)) {
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

static void ctl_close(ra_ws *ws, uint16_t code, ra_str reason, void *ud) {
  ra_tunnel_client *c = ((ctl_link *)ud)->c;
  free(ud); /* the last callback of this connection */
  if (!c || ws != c->ctl) return;
  c->link = NULL;
  c->ctl = NULL;
  ra_timer_stop(&c->connect_timer);
  if (!c->fail) {
    c->fail = c->state == ST_READY ? -ECONNRESET : -ECONNREFUSED;
    snprintf(c->fail_msg, sizeof c->fail_msg, "%s (%u %.*s)",
             c->state == ST_READY ? "tunnel disconnected" : "cannot open the tunnel", code,
             (int)(reason.len > 200 ? 200 : reason.len), reason.ptr ? reason.ptr : "");
  }
  if (c->state != ST_READY && c->o.on_ready && !c->has_vd) c->o.on_ready(c, c->fail, NULL, c->o.ud);
  sodium_memzero(c->key, sizeof c->key);
  c->has_server_pk = false;
  bool again = c->o.reconnect && !c->freeing;
  c->state = again ? ST_IDLE : ST_CLOSED;
  int err = c->fail;
  /* pending requests fail; tunnelled sockets close */
  for (creq *q = c->reqs; q; q = q->next) {
    if (q->fail) continue;
    q->fail = err;
    ra_timer_start(&q->timer, 0, 0);
  }
  while (c->socks) {
    cws *w = c->socks;
    w->gone = true;
    cws_release(w);
    ra_ws_deliver_close(w->ws, 1006, RA_STR("tunnel closed"));
    free(w);
  }
  if (again) ra_timer_start(&c->reconnect_timer, c->o.reconnect_delay_ms, 0);
}

static void ctl_drain(ra_ws *ws, void *ud) {
  ra_tunnel_client *c = ((ctl_link *)ud)->c;
  if (!c || ws != c->ctl) return;
  /* a drain handler may close any socket, not only its own (each is freed
   * at once): then start over (a socket drained does not get it twice) */
  for (cws *w = c->socks; w;) {
    cws *next = w->next;
    unsigned gen = c->socks_gen;
    if (!w->gone) ra_ws_deliver_drain(w->ws);
    w = gen == c->socks_gen ? next : c->socks;
  }
}

static const ra_ws_handlers ctl_handlers = {
  .on_open = ctl_open, .on_message = ctl_message, .on_close = ctl_close, .on_drain = ctl_drain,
};

static void connect_timeout(ra_timer *t, void *ud) {
  ra_tunnel_client *c = ud;
  fail_connection(c, -ETIMEDOUT, "%s", "timed out opening the tunnel");
  if (c->ctl) ra_ws_terminate(c->ctl);
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
  ctl_link *link = calloc(1, sizeof *link);
  int rc = link ? ra_ws_connect(c->loop, c->ctl_url, &wo, &ctl_handlers, link, &c->ctl) : -ENOMEM;
  if (!rc) {
    link->c = c;
    c->link = link;
  }
  if (rc) {
    free(link);
    c->ctl = NULL;
    c->state = c->o.reconnect ? ST_IDLE : ST_CLOSED;
    c->fail = rc;
    snprintf(c->fail_msg, sizeof c->fail_msg, "cannot connect: %s", strerror(-rc));
    for (creq *q = c->reqs; q; q = q->next)
      if (!q->fail) { q->fail = rc; ra_timer_start(&q->timer, 0, 0); }
    if (c->o.reconnect) ra_timer_start(&c->reconnect_timer, c->o.reconnect_delay_ms, 0);
    return;
  }
  ra_timer_start(&c->connect_timer, c->o.connect_timeout_ms, 0);
}

int ra_tunnel_client_new(ra_loop *loop, const char *origin, const ra_tunnel_client_opts *opts,
                         ra_tunnel_client **out) {
  *out = NULL;
  if (!origin || !opts || !opts->verifier) return -EINVAL;
  const char *rest;
  if (!strncmp(origin, "http://", 7)) rest = origin + 7;
  else if (!strncmp(origin, "ws://", 5)) rest = origin + 5;
  else if (!strncmp(origin, "https://", 8) || !strncmp(origin, "wss://", 6)) return -EPROTONOSUPPORT;
  else return -EINVAL;
  size_t hostlen = strcspn(rest, "/?#");
  if (hostlen == 0) return -EINVAL;
  if (ra_env_init()) return -EIO;
  ra_tunnel_client *c = calloc(1, sizeof *c);
  if (!c) return -ENOMEM;
  c->ctl_url = malloc(hostlen + 16);
  c->pool = c->ctl_url ? ra_env_pool_new(2) : NULL;
  if (!c->pool) { free(c->ctl_url); free(c); return -ENOMEM; }
  c->rx.pool = c->tx.pool = c->pool;
  snprintf(c->ctl_url, hostlen + 16, "ws://%.*s/__ra__", (int)hostlen, rest);
  c->loop = loop;
  c->o = *opts;
  if (opts->policy) { c->policy = *opts->policy; c->has_policy = true; }
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
  ra_timer_stop(&c->connect_timer);
  ra_timer_stop(&c->reconnect_timer);
  while (c->reqs) creq_finish(c->reqs, -ECANCELED, NULL, "tunnel closed");
  while (c->socks) {
    cws *w = c->socks;
    w->gone = true;
    cws_release(w);
    ra_ws_deliver_close(w->ws, 1006, RA_STR("tunnel closed"));
    free(w);
  }
  if (c->ctl) {
    ra_ws *ws = c->ctl;
    c->ctl = NULL;
    if (c->link) c->link->c = NULL; /* its on_close (from the loop) finds nothing */
    ra_ws_close(ws, 1000, ""); /* not NULL: ws.c memcpy()s the reason */
  }
  ra_env_buf_free(&c->rx);
  ra_env_buf_free(&c->tx);
  ra_env_pool_free(c->pool);
  sodium_memzero(c->key, sizeof c->key);
  free(c->quote);
  free(c->ctl_url);
  free(c->map);
  free(c);
}

bool ra_tunnel_client_ready(const ra_tunnel_client *c) { return c->state == ST_READY; }
const ra_verdict *ra_tunnel_client_verdict(const ra_tunnel_client *c) { return c->has_vd ? &c->vd : NULL; }
const uint8_t *ra_tunnel_client_quote(const ra_tunnel_client *c, size_t *len) {
  *len = c->quote ? c->quote_len : 0;
  return c->quote;
}
const uint8_t *ra_tunnel_client_server_key(const ra_tunnel_client *c) {
  return c->has_server_pk ? c->server_pk : NULL;
}
