/* attest/tunnel/channel.c: see channel_internal.h. */
#include "raloop/attest/tunnel/channel_internal.h"

#include <errno.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>

#include "raloop/core/list.h"

int ra_tchan_init(ra_tchan *ch, ra_loop *loop, ra_tchan_role role, size_t pool_spares) {
  memset(ch, 0, sizeof *ch);
  ch->loop = loop;
  ch->role = role;
  int rc = ra_env_pool_new(pool_spares, &ch->pool);
  if (rc) return rc;
  ch->rx.pool = ch->tx.pool = ch->pool;
  return 0;
}

void ra_tchan_free(ra_tchan *ch) {
  ra_tchan_drop(ch);
  ra_env_buf_free(&ch->rx);
  ra_env_buf_free(&ch->tx);
  ra_env_pool_free(ch->pool);
  ch->pool = NULL;
  ra_tindex_free(&ch->by_id);
}

/* ---- sealed sending ------------------------------------------------------ */

int ra_tchan_send_buf(ra_tchan *ch, ra_env_buf *b, size_t off, size_t n) {
  const uint8_t *msg;
  size_t len;
  ra_env_seal_end_at(b, ch->key, off, n, &msg, &len);
  int rc = ra_ws_send_owned(ch->ctl, RA_WS_BINARY, (uint8_t *)msg, len, ra_env_buf_return,
                            ra_env_buf_lend(b));
  return rc < 0 ? rc : 0;
}

int ra_tchan_send(ra_tchan *ch, ra_tchan_encode_fn enc, const void *arg) {
  if (!ch->keyed || !ch->ctl) return -ENOTCONN;
  size_t n = enc(NULL, 0, arg);
  uint8_t *p = ra_env_seal_begin(&ch->tx, n);
  if (!p) return -ENOMEM;
  enc(p, n, arg);
  return ra_tchan_send_buf(ch, &ch->tx, 0, n);
}

int ra_tchan_send_plain(ra_tchan *ch, const uint8_t *plain, size_t n) {
  if (!ch->keyed || !ch->ctl) return -ENOTCONN;
  uint8_t *p = ra_env_seal_begin(&ch->tx, n);
  if (!p) return -ENOMEM;
  memcpy(p, plain, n);
  return ra_tchan_send_buf(ch, &ch->tx, 0, n);
}

typedef struct ev_arg {
  ra_str id;
  ra_tmsg_event ev;
  int code;
  ra_str reason;
  const char *error;
} ev_arg;
static size_t enc_event(uint8_t *out, size_t cap, const void *a) {
  const ev_arg *e = a;
  return ra_tmsg_encode_ws_event(out, cap, e->id, e->ev, e->code, e->reason, e->error);
}

void ra_tchan_send_event(ra_tchan *ch, ra_str id, ra_tmsg_event ev, int code, ra_str reason,
                         const char *error) {
  ev_arg a = {id, ev, code, reason, error};
  ra_tchan_send(ch, enc_event, &a);
}

typedef struct cancel_arg {
  ra_str id;
  const char *reason;
} cancel_arg;
static size_t enc_cancel(uint8_t *out, size_t cap, const void *a) {
  const cancel_arg *m = a;
  return ra_tmsg_encode_http_cancel(out, cap, m->id, m->reason);
}

int ra_tchan_send_http_cancel(ra_tchan *ch, ra_str id, const char *reason) {
  cancel_arg a = {id, reason};
  return ra_tchan_send(ch, enc_cancel, &a);
}

typedef struct credit_arg {
  ra_str id;
  uint64_t bytes;
} credit_arg;
static size_t enc_credit(uint8_t *out, size_t cap, const void *a) {
  const credit_arg *m = a;
  return ra_tmsg_encode_http_credit(out, cap, m->id, m->bytes);
}

int ra_tchan_send_http_credit(ra_tchan *ch, ra_str id, uint64_t bytes) {
  credit_arg a = {id, bytes};
  return ra_tchan_send(ch, enc_credit, &a);
}

int ra_tchan_open(ra_tchan *ch, const ra_tmsg *env, const uint8_t **plain, size_t *plain_len) {
  return ra_env_open(&ch->rx, ch->key, env->enc.nonce.bytes, env->enc.ciphertext.bytes,
                     env->enc.ciphertext.len, plain, plain_len);
}

/* ---- the index -------------------------------------------------------------- */

static void slot_put(ra_tindex_slot *slots, size_t mask, ra_tindex_slot e) {
  size_t j = (size_t)e.hash & mask;
  while (slots[j].p) j = (j + 1) & mask;
  slots[j] = e;
}

int ra_tindex_put(ra_tindex *x, uint64_t hash, void *p) {
  if ((x->n + 1) * 2 > x->cap) {
    size_t cap = x->cap ? x->cap * 2 : 16;
    ra_tindex_slot *s = calloc(cap, sizeof *s);
    if (!s) return -ENOMEM;
    for (size_t i = 0; i < x->cap; i++)
      if (x->slots[i].p) slot_put(s, cap - 1, x->slots[i]);
    free(x->slots);
    x->slots = s;
    x->cap = cap;
  }
  slot_put(x->slots, x->cap - 1, (ra_tindex_slot){hash, p});
  x->n++;
  return 0;
}

void ra_tindex_del(ra_tindex *x, uint64_t hash, const void *p) {
  if (!x->cap) return;
  size_t mask = x->cap - 1, i = (size_t)hash & mask;
  while (x->slots[i].p && x->slots[i].p != p) i = (i + 1) & mask;
  if (!x->slots[i].p) return;
  x->slots[i].p = NULL;
  x->n--;
  /* backward shift: move up entries that probed past the hole */
  for (size_t j = (i + 1) & mask; x->slots[j].p; j = (j + 1) & mask) {
    size_t home = (size_t)x->slots[j].hash & mask;
    if (((j - home) & mask) >= ((j - i) & mask)) {
      x->slots[i] = x->slots[j];
      x->slots[j].p = NULL;
      i = j;
    }
  }
}

void *ra_tindex_next(const ra_tindex *x, uint64_t hash, size_t *pos) {
  if (!x->cap) return NULL;
  size_t mask = x->cap - 1;
  /* *pos counts the slots looked at from the hash's home */
  for (size_t j = ((size_t)hash + *pos) & mask; x->slots[j].p; j = (j + 1) & mask) {
    ++*pos;
    if (x->slots[j].hash == hash) return x->slots[j].p;
  }
  return NULL;
}

void ra_tindex_free(ra_tindex *x) {
  free(x->slots);
  memset(x, 0, sizeof *x);
}

/* ---- sockets by id ----------------------------------------------------------- */

static uint64_t id_hash(ra_tchan *ch, ra_str id) {
  if (!ch->hash_keyed) {
    randombytes_buf(ch->hash_key, sizeof ch->hash_key);
    ch->hash_keyed = true;
  }
  uint8_t h[crypto_shorthash_BYTES];
  crypto_shorthash(h, id.bytes, id.len, ch->hash_key);
  uint64_t v;
  memcpy(&v, h, sizeof v);
  return v;
}

uint64_t ra_tchan_hash(ra_tchan *ch, ra_str id) { return id_hash(ch, id); }

ra_tchan_sock *ra_tchan_find(ra_tchan *ch, ra_str id) {
  uint64_t h = id_hash(ch, id);
  ra_tchan_sock *w;
  for (size_t pos = 0; (w = ra_tindex_next(&ch->by_id, h, &pos));)
    if (w->id_len == id.len && memcmp(w->id, id.ptr, id.len) == 0) return w;
  return NULL;
}

int ra_tchan_sock_add(ra_tchan *ch, ra_tchan_sock *w) {
  w->hash = id_hash(ch, ra_str_make(w->id, w->id_len));
  if (ra_tindex_put(&ch->by_id, w->hash, w)) return -ENOMEM;
  w->ch = ch;
  RA_LIST_ADD(ch->socks, w);
  ch->n_socks++;
  return 0;
}

/* Takes w out of its channel: no more lookups, no more sends. */
static void sock_release(ra_tchan_sock *w) {
  ra_tchan *ch = w->ch;
  if (ch) {
    ra_tindex_del(&ch->by_id, w->hash, w);
    RA_LIST_DEL(ch->socks, w);
    ch->n_socks--;
    ch->socks_gen++;
    w->ch = NULL;
  }
  free(w->connect);
  w->connect = NULL;
}

/* ---- the ra_ws sink ------------------------------------------------------ */

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

static ra_str sock_id(const ra_tchan_sock *w) { return ra_str_make(w->id, w->id_len); }

/* Tells the peer this end closed (code < 0: no code): a client sends
 * ws_close, a server ws_event close (what each role's peer listens for). */
static void send_close(ra_tchan_sock *w, int code, ra_str reason) {
  ra_tchan *ch = w->ch;
  if (!ch || !w->peer_knows) return;
  if (ch->role == RA_TCHAN_SERVER) {
    ra_tchan_send_event(ch, sock_id(w), RA_TMSG_EV_CLOSE, code, reason, NULL);
    return;
  }
  close_arg a = {sock_id(w), code, reason};
  ra_tchan_send(ch, enc_close, &a);
}

static int sock_send(void *sink, ra_ws_type type, const void *data, size_t len) {
  ra_tchan_sock *w = sink;
  if (w->gone || !w->ch) return -EPIPE;
  msg_arg a = {sock_id(w), type == RA_WS_TEXT, data, len};
  return ra_tchan_send(w->ch, enc_message, &a);
}

/* The application closes: tell the peer, and the ra_ws is done (the tunnel
 * has no closing handshake). */
static int sock_close(void *sink, uint16_t code, ra_str reason) {
  ra_tchan_sock *w = sink;
  if (w->gone) return -EALREADY;
  w->gone = true;
  send_close(w, code ? code : -1, reason.len ? reason : ra_str_make(NULL, 0));
  sock_release(w);
  ra_ws_deliver_close(w->ws, code ? code : 1005, reason);
  free(w); /* the closed ra_ws never calls its sink again */
  return 0;
}

static void sock_close_later(ra_defer *d, void *ud) {
  (void)d;
  ra_tchan_sock *w = ud;
  ra_ws_deliver_close(w->ws, 1006, RA_STR(""));
  free(w);
}

/* The reference client sends a bare ws_close, the reference server a
 * ws_event close with 1006: each role keeps what its peer expects. */
static void sock_terminate(void *sink) {
  ra_tchan_sock *w = sink;
  if (w->gone || !w->ch) return;
  w->gone = true;
  ra_loop *loop = w->ch->loop;
  send_close(w, w->ch->role == RA_TCHAN_SERVER ? 1006 : -1, ra_str_make(NULL, 0));
  sock_release(w);
  ra_defer_init(&w->later, sock_close_later, w);
  ra_loop_defer(loop, &w->later);
}

static size_t sock_buffered(void *sink) {
  ra_tchan_sock *w = sink;
  return w->ch && w->ch->ctl ? ra_ws_buffered(w->ch->ctl) : 0;
}

static const ra_ws_sink_ops sock_ops = {
  .send = sock_send, .close = sock_close, .terminate = sock_terminate, .buffered = sock_buffered,
};

ra_tchan_sock *ra_tchan_sock_new(ra_tchan *ch, ra_str id, const ra_ws_handlers *h, void *ud,
                                 const ra_ws_opts *opts) {
  ra_tchan_sock *w = calloc(1, sizeof *w + id.len + 1);
  if (!w) return NULL;
  memcpy(w->id, id.ptr, id.len);
  w->id_len = id.len;
  w->peer_knows = ch->role == RA_TCHAN_SERVER; /* the client named it */
  if (ra_ws_new_with_sink(ch->loop, &sock_ops, w, h, ud, opts, &w->ws) < 0) {
    free(w);
    return NULL;
  }
  return w;
}

void ra_tchan_sock_discard(ra_tchan_sock *w) {
  w->gone = true;
  free(w->connect);
  ra_ws_deliver_close(w->ws, 1006, RA_STR(""));
  free(w);
}

void ra_tchan_sock_open(ra_tchan_sock *w) {
  if (w->opened) return;
  w->opened = true;
  ra_ws_deliver_open(w->ws);
}

void ra_tchan_sock_closed(ra_tchan_sock *w, uint16_t code, ra_str reason) {
  w->gone = true;
  sock_release(w);
  ra_ws_deliver_close(w->ws, code, reason);
  free(w);
}

void ra_tchan_on_ws_message(ra_tchan *ch, const ra_tmsg *m) {
  ra_str id = m->ws_message.connection_id;
  ra_tchan_sock *w = ra_tchan_find(ch, id);
  if (!w || w->gone) return;
  if (!w->opened) {
    /* The reference server runs the application's connection handler
     * before it sends ws_event open, so a greeting can come first: it
     * opens the socket (ws.h promises on_open before any on_message). */
    ra_tchan_sock_open(w);
    w = ra_tchan_find(ch, id); /* on_open may have closed it */
    if (!w || w->gone) return;
  }
  ra_ws_deliver_message(w->ws, m->ws_message.is_text ? RA_WS_TEXT : RA_WS_BINARY,
                        m->ws_message.data.bytes, m->ws_message.data.len);
}

void ra_tchan_drain(ra_tchan *ch) {
  /* a drain handler may close any socket of the tunnel, not only its own
   * (each is freed at once): then start over; a socket already drained
   * does not get it twice (ra_ws_deliver_drain wants a new back-pressure) */
  for (ra_tchan_sock *w = ch->socks; w;) {
    ra_tchan_sock *next = w->next;
    unsigned gen = ch->socks_gen;
    if (!w->gone) ra_ws_deliver_drain(w->ws);
    w = gen == ch->socks_gen ? next : ch->socks;
  }
}

/* The first socket ra_tchan_unkey ends: any (all), else the first one
 * the peer knows that is not ending already. */
static ra_tchan_sock *first_to_close(ra_tchan *ch, bool all) {
  ra_tchan_sock *w = ch->socks;
  if (!all)
    while (w && (w->gone || !w->peer_knows)) w = w->next;
  return w;
}

void ra_tchan_unkey(ra_tchan *ch, bool all, uint16_t code, ra_str reason) {
  /* the key first: nothing an on_close sends is sealed with it (on a key
   * rotation, a ws opened from on_close may already start the next
   * control channel) */
  ch->keyed = false;
  sodium_memzero(ch->key, sizeof ch->key);
  /* from the list's head each time: an on_close may close other sockets
   * (each is freed at once) or open new ones (not known to the peer) */
  for (ra_tchan_sock *w; (w = first_to_close(ch, all));) {
    if (w->gone) sock_release(w); /* a deferred close is already on its way */
    else ra_tchan_sock_closed(w, code, reason);
  }
}

void ra_tchan_drop(ra_tchan *ch) { ra_tchan_unkey(ch, true, 1006, RA_STR("tunnel closed")); }

void ra_tunnel_client_binding(const uint8_t server_pk[32], const uint8_t challenge[32],
                              const uint8_t *sealed, size_t sealed_len, uint8_t out[64]) {
  crypto_hash_sha512_state h;
  crypto_hash_sha512_init(&h);
  crypto_hash_sha512_update(&h, (const uint8_t *)RA_TUNNEL_CLIENT_BINDING_LABEL,
                            sizeof RA_TUNNEL_CLIENT_BINDING_LABEL - 1);
  crypto_hash_sha512_update(&h, server_pk, 32);
  crypto_hash_sha512_update(&h, challenge, 32);
  crypto_hash_sha512_update(&h, sealed, sealed_len);
  crypto_hash_sha512_final(&h, out);
}
