/* ws/relay.c: the secure WebSocket relay's server side (docs/RELAY.md).
 * Never logs message contents, keys or boxes. */
#include "raloop/ws/relay.h"

#include <errno.h>
#include <jansson.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "raloop/core/list.h"
#include "raloop/core/log.h"
#include "raloop/ws/relay_internal.h"
#include "raloop/ws/ws.h"

/* ---- base64url and the parser ------------------------------------------ */

static const char b64url_chars[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

static int b64url_val(unsigned char c) {
  if (c >= 'A' && c <= 'Z') return c - 'A';
  if (c >= 'a' && c <= 'z') return c - 'a' + 26;
  if (c >= '0' && c <= '9') return c - '0' + 52;
  if (c == '-') return 62;
  if (c == '_') return 63;
  return -1;
}

long ra_b64url_decode(const char *s, size_t n, uint8_t *out, size_t cap) {
  if (n % 4 == 1) return -1;
  size_t outlen = n / 4 * 3 + (n % 4 ? n % 4 - 1 : 0);
  if (outlen > cap) return -1;
  uint32_t acc = 0;
  unsigned bits = 0;
  size_t o = 0;
  for (size_t i = 0; i < n; i++) {
    int v = b64url_val((unsigned char)s[i]);
    if (v < 0) return -1;
    acc = (acc << 6) | (uint32_t)v;
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      if (out) out[o] = (uint8_t)(acc >> bits);
      o++;
      acc &= (1u << bits) - 1;
    }
  }
  if (acc != 0) return -1; /* non-canonical: leftover bits set */
  return (long)o;
}

size_t ra_b64url_encode(const uint8_t *in, size_t n, char *out) {
  size_t o = 0, i = 0;
  for (; i + 3 <= n; i += 3) {
    uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8 | in[i + 2];
    out[o++] = b64url_chars[v >> 18];
    out[o++] = b64url_chars[(v >> 12) & 63];
    out[o++] = b64url_chars[(v >> 6) & 63];
    out[o++] = b64url_chars[v & 63];
  }
  if (n - i == 1) {
    uint32_t v = (uint32_t)in[i] << 16;
    out[o++] = b64url_chars[v >> 18];
    out[o++] = b64url_chars[(v >> 12) & 63];
  } else if (n - i == 2) {
    uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8;
    out[o++] = b64url_chars[v >> 18];
    out[o++] = b64url_chars[(v >> 12) & 63];
    out[o++] = b64url_chars[(v >> 6) & 63];
  }
  out[o] = 0;
  return o;
}

void ra_relay_msg_clear(ra_relay_msg *m) {
  if (m->root) json_decref(m->root);
  m->root = NULL;
}

/* A string field of exactly `want` decoded bytes (want 0: box, 16..cap). */
static int field(json_t *o, const char *name, uint8_t *out, size_t want, size_t cap, ra_str *s,
                 size_t *got) {
  json_t *v = json_object_get(o, name);
  if (!json_is_string(v)) return -1;
  const char *p = json_string_value(v);
  size_t n = json_string_length(v);
  long d = ra_b64url_decode(p, n, out, want ? want : cap);
  if (d < 0) return -1;
  if (want && (size_t)d != want) return -1;
  if (!want && (size_t)d < 16) return -1;
  *s = (ra_str){.ptr = p, .len = n};
  if (got) *got = (size_t)d;
  return 0;
}

const char *ra_relay_parse(const uint8_t *data, size_t len, size_t max_box, ra_relay_msg *m) {
  memset(m, 0, sizeof *m);
  if (max_box > SIZE_MAX / 2) max_box = SIZE_MAX / 2;
  if (len > (max_box + 16) / 3 * 4 + 8 + RA_RELAY_JSON_OVERHEAD) return "too large";
  json_error_t err;
  json_t *root = json_loadb((const char *)data, len, JSON_REJECT_DUPLICATES, &err);
  if (!root) return "bad json";
  m->root = root;
  if (!json_is_object(root)) return "bad json";
  json_t *t = json_object_get(root, "type");
  if (!json_is_string(t)) return "bad json";
  const char *type = json_string_value(t);
  if (strlen(type) != json_string_length(t)) return "unknown type"; /* embedded NUL */
  if (strcmp(type, "CHALLENGE_RESPONSE") == 0) {
    m->type = RA_RELAY_T_CHALLENGE_RESPONSE;
    if (json_object_size(root) != 4) return "bad field";
    if (field(root, "publicKey", m->key, RA_RELAY_KEY_BYTES, 0, &m->key_s, NULL) < 0 ||
        field(root, "boxNonce", m->nonce, RA_RELAY_NONCE_BYTES, 0, &m->nonce_s, NULL) < 0 ||
        field(root, "box", m->box, sizeof m->box, 0, &m->box_s, &m->box_len) < 0)
      return "bad field";
    return NULL;
  }
  if (strcmp(type, "MESSAGE") == 0) {
    m->type = RA_RELAY_T_MESSAGE;
    if (json_object_size(root) != 4) return "bad field";
    if (field(root, "to", m->key, RA_RELAY_KEY_BYTES, 0, &m->key_s, NULL) < 0 ||
        field(root, "nonce", m->nonce, RA_RELAY_NONCE_BYTES, 0, &m->nonce_s, NULL) < 0 ||
        field(root, "box", NULL, 0, max_box + 16, &m->box_s, &m->box_len) < 0)
      return "bad field";
    return NULL;
  }
  return "unknown type";
}

/* ---- the relay ---------------------------------------------------------- */

typedef struct rconn rconn;
struct rconn {
  ra_relay *r;
  ra_ws *ws;
  uint8_t challenge[RA_RELAY_NONCE_BYTES];
  bool answered;   /* a CHALLENGE_RESPONSE was processed */
  bool registered; /* in the table */
  uint8_t pk[RA_RELAY_KEY_BYTES];
  char pk_b64[48];
  double tokens;
  uint64_t refill_ms;
  unsigned errors;
  ra_timer timer;
  rconn *hnext;
  rconn *prev, *next; /* every connection */
};

struct ra_relay {
  uint8_t pk[RA_RELAY_KEY_BYTES], sk[RA_RELAY_KEY_BYTES];
  char pk_b64[48];
  ra_relay_opts o;
  ra_ws_opts wso;
  uint8_t hkey[crypto_shorthash_KEYBYTES];
  rconn **buckets;
  size_t nbuckets, count;
  rconn *all;
  size_t nconns;
  bool freed;
};

static void relay_destroy(ra_relay *r) {
  sodium_memzero(r->sk, sizeof r->sk);
  free(r->buckets);
  free(r);
}

int ra_relay_new(const ra_relay_opts *opts, ra_relay **out) {
  *out = NULL;
  if (sodium_init() < 0) return -ENOMEM;
  ra_relay *r = calloc(1, sizeof *r);
  if (!r) return -ENOMEM;
  if (opts) r->o = *opts;
  if (r->o.secret_key) {
    static const uint8_t zero[RA_RELAY_KEY_BYTES];
    if (sodium_memcmp(r->o.secret_key, zero, sizeof zero) == 0) {
      free(r);
      return -EINVAL;
    }
    memcpy(r->sk, r->o.secret_key, sizeof r->sk);
    crypto_scalarmult_base(r->pk, r->sk);
    r->o.secret_key = NULL;
  } else {
    crypto_box_keypair(r->pk, r->sk);
  }
  if (!r->o.challenge_ttl_ms) r->o.challenge_ttl_ms = 30000;
  if (!r->o.max_box) r->o.max_box = 64 * 1024;
  if (!r->o.queue_limit) r->o.queue_limit = 1 << 20;
  if (!r->o.max_errors) r->o.max_errors = 5;
  if (!r->o.rate_per_s) r->o.rate_per_s = 200;
  if (!r->o.rate_burst) r->o.rate_burst = 400;
  if (!r->o.max_clients) r->o.max_clients = 100000;
  r->wso.max_message = (r->o.max_box + 16) / 3 * 4 + 8 + RA_RELAY_JSON_OVERHEAD;
  r->wso.send_limit = r->o.queue_limit;
  ra_b64url_encode(r->pk, sizeof r->pk, r->pk_b64);
  randombytes_buf(r->hkey, sizeof r->hkey);
  r->nbuckets = 64;
  r->buckets = calloc(r->nbuckets, sizeof *r->buckets);
  if (!r->buckets) {
    free(r);
    return -ENOMEM;
  }
  *out = r;
  return 0;
}

void ra_relay_free(ra_relay *r) {
  if (!r) return;
  if (r->nconns) {
    r->freed = true; /* the last on_close frees it */
    return;
  }
  relay_destroy(r);
}

void ra_relay_public_key(const ra_relay *r, uint8_t out[RA_RELAY_KEY_BYTES]) {
  memcpy(out, r->pk, RA_RELAY_KEY_BYTES);
}

size_t ra_relay_count(const ra_relay *r) { return r->count; }

void ra_relay_close_all(ra_relay *r, uint16_t code, const char *reason) {
  for (rconn *c = r->all; c; c = c->next)
    if (ra_ws_is_open(c->ws)) ra_ws_close(c->ws, code, reason);
}

static size_t bucket_of(const ra_relay *r, const uint8_t *pk) {
  uint8_t h[crypto_shorthash_BYTES];
  crypto_shorthash(h, pk, RA_RELAY_KEY_BYTES, r->hkey);
  uint64_t v;
  memcpy(&v, h, sizeof v);
  return (size_t)(v & (r->nbuckets - 1));
}

static rconn *lookup(const ra_relay *r, const uint8_t *pk) {
  for (rconn *c = r->buckets[bucket_of(r, pk)]; c; c = c->hnext)
    if (memcmp(c->pk, pk, RA_RELAY_KEY_BYTES) == 0) return c;
  return NULL;
}

static void table_remove(ra_relay *r, rconn *c) {
  if (!c->registered) return;
  for (rconn **p = &r->buckets[bucket_of(r, c->pk)]; *p; p = &(*p)->hnext)
    if (*p == c) {
      *p = c->hnext;
      break;
    }
  c->hnext = NULL;
  c->registered = false;
  r->count--;
}

static int table_insert(ra_relay *r, rconn *c) {
  if (r->count + 1 > r->nbuckets) {
    size_t nb = r->nbuckets * 2;
    rconn **b = calloc(nb, sizeof *b);
    if (b) {
      rconn **old = r->buckets;
      size_t on = r->nbuckets;
      r->buckets = b;
      r->nbuckets = nb;
      for (size_t i = 0; i < on; i++)
        for (rconn *x = old[i], *nx; x; x = nx) {
          nx = x->hnext;
          size_t k = bucket_of(r, x->pk);
          x->hnext = b[k];
          b[k] = x;
        }
      free(old);
    } /* else: keep the longer chains */
  }
  size_t k = bucket_of(r, c->pk);
  c->hnext = r->buckets[k];
  r->buckets[k] = c;
  c->registered = true;
  r->count++;
  return 0;
}

static void send_json(rconn *c, const char *s) {
  if (ra_ws_is_open(c->ws)) (void)ra_ws_send_text(c->ws, s);
}

static void send_error(rconn *c, const char *reason, const char *to) {
  char buf[160];
  if (to)
    snprintf(buf, sizeof buf, "{\"type\":\"ERROR\",\"reason\":\"%s\",\"to\":\"%s\"}", reason, to);
  else
    snprintf(buf, sizeof buf, "{\"type\":\"ERROR\",\"reason\":\"%s\"}", reason);
  send_json(c, buf);
}

static void refuse(rconn *c, const char *reason) {
  char buf[128];
  snprintf(buf, sizeof buf, "{\"type\":\"REGISTER_FAILURE\",\"reason\":\"%s\"}", reason);
  send_json(c, buf);
  c->answered = true;
  ra_timer_stop(&c->timer);
  if (ra_ws_is_open(c->ws)) ra_ws_close(c->ws, RA_RELAY_CLOSE_POLICY, "registration refused");
}

/* Bad input: ERROR, and past max_errors a close with 1008. */
static void bad_input(rconn *c, const char *reason) {
  if (++c->errors > c->r->o.max_errors) {
    if (ra_ws_is_open(c->ws)) ra_ws_close(c->ws, RA_RELAY_CLOSE_POLICY, "too many errors");
    return;
  }
  send_error(c, reason, NULL);
}

static void on_challenge_timeout(ra_timer *t, void *ud) {
  rconn *c = ud;
  if (!c->answered) refuse(c, "challenge expired");
}

static void relay_open(ra_ws *ws, void *ud) {
  ra_relay *r = ud;
  rconn *c = calloc(1, sizeof *c);
  if (!c) {
    ra_ws_close(ws, RA_WS_CLOSE_INTERNAL, "out of memory");
    return;
  }
  c->r = r;
  c->ws = ws;
  RA_LIST_ADD(r->all, c);
  r->nconns++;
  ra_ws_set_userdata(ws, c);
  randombytes_buf(c->challenge, sizeof c->challenge);
  char nonce[48], buf[192];
  ra_b64url_encode(c->challenge, sizeof c->challenge, nonce);
  snprintf(buf, sizeof buf, "{\"type\":\"CHALLENGE\",\"serverPublicKey\":\"%s\",\"nonce\":\"%s\"}",
           r->pk_b64, nonce);
  ra_timer_init(ra_ws_loop(ws), &c->timer, on_challenge_timeout, c);
  ra_timer_start(&c->timer, r->o.challenge_ttl_ms, 0);
  send_json(c, buf);
}

static void do_register(rconn *c, const ra_relay_msg *m) {
  ra_relay *r = c->r;
  uint8_t plain[RA_RELAY_NONCE_BYTES];
  if (m->box_len != sizeof m->box ||
      crypto_box_open_easy(plain, m->box, m->box_len, m->nonce, m->key, r->sk) != 0) {
    refuse(c, "invalid box");
    return;
  }
  if (sodium_memcmp(plain, c->challenge, sizeof plain) != 0) {
    refuse(c, "wrong challenge");
    return;
  }
  rconn *old = lookup(r, m->key);
  if (!old && r->count >= r->o.max_clients) {
    refuse(c, "relay full");
    return;
  }
  c->answered = true;
  ra_timer_stop(&c->timer);
  /* fresh challenge material is never reused */
  randombytes_buf(c->challenge, sizeof c->challenge);
  if (old) {
    table_remove(r, old);
    if (ra_ws_is_open(old->ws)) ra_ws_close(old->ws, RA_RELAY_CLOSE_REPLACED, "replaced");
  }
  memcpy(c->pk, m->key, sizeof c->pk);
  ra_b64url_encode(c->pk, sizeof c->pk, c->pk_b64);
  c->tokens = r->o.rate_burst;
  c->refill_ms = ra_loop_now(ra_ws_loop(c->ws));
  table_insert(r, c);
  send_json(c, "{\"type\":\"REGISTER_SUCCESS\"}");
}

static bool take_token(rconn *c) {
  uint64_t now = ra_loop_now(ra_ws_loop(c->ws));
  if (now > c->refill_ms) {
    c->tokens += (double)(now - c->refill_ms) * c->r->o.rate_per_s / 1000.0;
    if (c->tokens > c->r->o.rate_burst) c->tokens = c->r->o.rate_burst;
    c->refill_ms = now;
  }
  if (c->tokens < 1.0) return false;
  c->tokens -= 1.0;
  return true;
}

static void do_message(rconn *c, const ra_relay_msg *m) {
  char to[48];
  memcpy(to, m->key_s.ptr, m->key_s.len);
  to[m->key_s.len] = 0;
  if (!take_token(c)) {
    send_error(c, "rate limited", to);
    return;
  }
  rconn *d = lookup(c->r, m->key);
  if (!d || !ra_ws_is_open(d->ws)) {
    send_error(c, "offline", to);
    return;
  }
  static const char a[] = "{\"type\":\"MESSAGE\",\"from\":\"", b[] = "\",\"nonce\":\"",
                    e[] = "\",\"box\":\"", z[] = "\"}";
  size_t n = sizeof a - 1 + 43 + sizeof b - 1 + m->nonce_s.len + sizeof e - 1 + m->box_s.len +
             sizeof z - 1;
  /* built in place and handed over: the frame header goes in the room
   * before it, so the box is not copied again */
  uint8_t *buf = malloc(RA_WS_SEND_ROOM + n);
  if (!buf) {
    send_error(c, "internal", to);
    return;
  }
  uint8_t *p = buf + RA_WS_SEND_ROOM;
#define PUT(s, l) (memcpy(p, (s), (l)), p += (l))
  PUT(a, sizeof a - 1);
  PUT(c->pk_b64, 43);
  PUT(b, sizeof b - 1);
  PUT(m->nonce_s.ptr, m->nonce_s.len);
  PUT(e, sizeof e - 1);
  PUT(m->box_s.ptr, m->box_s.len);
  PUT(z, sizeof z - 1);
#undef PUT
  int rc = ra_ws_send_owned(d->ws, RA_WS_TEXT, buf + RA_WS_SEND_ROOM, n, free, buf);
  if (rc == -ENOBUFS) {
    ra_info("relay: a recipient too slow to read was closed (1013)");
    send_error(c, "offline", to);
  } else if (rc < 0) {
    send_error(c, "offline", to);
  }
}

static void relay_message(ra_ws *ws, ra_ws_type type, const uint8_t *data, size_t len, void *ud) {
  rconn *c = ra_ws_userdata(ws);
  if (!c || !ra_ws_is_open(ws)) return;
  if (type != RA_WS_TEXT) {
    bad_input(c, "bad json");
    return;
  }
  ra_relay_msg m;
  const char *why = ra_relay_parse(data, len, c->r->o.max_box, &m);
  if (why) {
    ra_relay_msg_clear(&m);
    if (!c->registered && !c->answered && strcmp(why, "bad field") == 0 &&
        m.type == RA_RELAY_T_CHALLENGE_RESPONSE) {
      refuse(c, "bad field");
      return;
    }
    bad_input(c, why);
    return;
  }
  if (m.type == RA_RELAY_T_CHALLENGE_RESPONSE) {
    if (c->registered || c->answered)
      bad_input(c, "already registered");
    else
      do_register(c, &m);
  } else if (!c->registered) {
    bad_input(c, "not registered");
  } else {
    do_message(c, &m);
  }
  ra_relay_msg_clear(&m);
}

static void relay_close(ra_ws *ws, uint16_t code, ra_str reason, void *ud) {
  rconn *c = ra_ws_userdata(ws);
  if (!c) return;
  ra_relay *r = c->r;
  ra_timer_stop(&c->timer);
  table_remove(r, c);
  RA_LIST_DEL(r->all, c);
  ra_ws_set_userdata(ws, NULL);
  free(c);
  if (--r->nconns == 0 && r->freed) relay_destroy(r);
}

static void relay_shutdown(ra_ws *ws, void *ud) {
  ra_ws_close(ws, RA_WS_CLOSE_GOING_AWAY, "server shutting down");
}

static const ra_ws_handlers relay_handlers = {
    .on_open = relay_open,
    .on_message = relay_message,
    .on_close = relay_close,
    .on_shutdown = relay_shutdown,
};

int ra_relay_route(ra_router *router, const char *path, ra_relay *r) {
  if (!router || !path || !r) return -EINVAL;
  return ra_ws_route_ex(router, path, &relay_handlers, r, &r->wso, 0);
}
