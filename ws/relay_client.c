/* ws/relay_client.c: the relay's C client (docs/RELAY.md) over ws/client.h. */
#include <errno.h>
#include <jansson.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "raloop/core/log.h"
#include "raloop/ws/client.h"
#include "raloop/ws/relay.h"
#include "raloop/ws/relay_internal.h"
#include "raloop/ws/ws.h"

struct ra_relay_client {
  ra_ws *ws;
  uint8_t pk[RA_RELAY_KEY_BYTES], sk[RA_RELAY_KEY_BYTES];
  bool registered;
  ra_relay_client_handlers h;
  void *ud;
};

static const char *str_field(json_t *o, const char *k, size_t *n) {
  json_t *v = json_object_get(o, k);
  if (!json_is_string(v)) return NULL;
  *n = json_string_length(v);
  return json_string_value(v);
}

static int key_field(json_t *o, const char *k, uint8_t *out, size_t want) {
  size_t n;
  const char *s = str_field(o, k, &n);
  if (!s) return -1;
  long d = ra_b64url_decode(s, n, out, want);
  return d == (long)want ? 0 : -1;
}

static void answer_challenge(ra_relay_client *c, json_t *o) {
  uint8_t spk[RA_RELAY_KEY_BYTES], ch[RA_RELAY_NONCE_BYTES], nonce[RA_RELAY_NONCE_BYTES];
  uint8_t box[RA_RELAY_NONCE_BYTES + crypto_box_MACBYTES];
  if (key_field(o, "serverPublicKey", spk, sizeof spk) < 0 || key_field(o, "nonce", ch, sizeof ch) < 0) {
    ra_ws_close(c->ws, RA_WS_CLOSE_POLICY, "bad challenge");
    return;
  }
  randombytes_buf(nonce, sizeof nonce);
  if (crypto_box_easy(box, ch, sizeof ch, nonce, spk, c->sk) != 0) {
    ra_ws_close(c->ws, RA_WS_CLOSE_INTERNAL, "crypto_box failed");
    return;
  }
  char pk64[48], n64[48], b64[64], buf[256];
  ra_b64url_encode(c->pk, sizeof c->pk, pk64);
  ra_b64url_encode(nonce, sizeof nonce, n64);
  ra_b64url_encode(box, sizeof box, b64);
  snprintf(buf, sizeof buf,
           "{\"type\":\"CHALLENGE_RESPONSE\",\"publicKey\":\"%s\",\"boxNonce\":\"%s\",\"box\":\"%s\"}",
           pk64, n64, b64);
  ra_ws_send_text(c->ws, buf);
}

static void got_message(ra_relay_client *c, json_t *o) {
  uint8_t from[RA_RELAY_KEY_BYTES], nonce[RA_RELAY_NONCE_BYTES];
  size_t n;
  const char *b = str_field(o, "box", &n);
  if (!b || key_field(o, "from", from, sizeof from) < 0 ||
      key_field(o, "nonce", nonce, sizeof nonce) < 0) {
    ra_warn("relay client: a malformed MESSAGE was dropped");
    return;
  }
  size_t cap = n / 4 * 3 + 3;
  uint8_t *box = malloc(cap + 1); /* opened in place (libsodium allows the overlap) */
  long bl = box ? ra_b64url_decode(b, n, box, cap) : -1;
  if (bl < (long)crypto_box_MACBYTES ||
      crypto_box_open_easy(box, box, (size_t)bl, nonce, from, c->sk) != 0) {
    ra_warn("relay client: a box that does not open was dropped");
  } else if (c->h.on_message) {
    c->h.on_message(c, from, box, (size_t)bl - crypto_box_MACBYTES, c->ud);
  }
  free(box);
}

static void cl_message(ra_ws *ws, ra_ws_type type, const uint8_t *data, size_t len, void *ud) {
  ra_relay_client *c = ud;
  json_error_t err;
  json_t *o = json_loadb((const char *)data, len, JSON_REJECT_DUPLICATES, &err);
  size_t n;
  const char *t = o && json_is_object(o) ? str_field(o, "type", &n) : NULL;
  if (!t) {
    ra_warn("relay client: the relay sent something that is not a message");
  } else if (strcmp(t, "CHALLENGE") == 0) {
    answer_challenge(c, o);
  } else if (strcmp(t, "REGISTER_SUCCESS") == 0) {
    c->registered = true;
    if (c->h.on_registered) c->h.on_registered(c, c->ud);
  } else if (strcmp(t, "MESSAGE") == 0) {
    got_message(c, o);
  } else if (strcmp(t, "ERROR") == 0 || strcmp(t, "REGISTER_FAILURE") == 0) {
    const char *reason = str_field(o, "reason", &n);
    ra_str rs = reason ? (ra_str){.ptr = reason, .len = n} : ra_str_cstr("");
    uint8_t to[RA_RELAY_KEY_BYTES];
    bool has_to = key_field(o, "to", to, sizeof to) == 0;
    if (c->h.on_error) c->h.on_error(c, rs, has_to ? to : NULL, c->ud);
  }
  if (o) json_decref(o);
}

static void cl_close(ra_ws *ws, uint16_t code, ra_str reason, void *ud) {
  ra_relay_client *c = ud;
  if (c->h.on_close) c->h.on_close(c, code, reason, c->ud);
  sodium_memzero(c->sk, sizeof c->sk);
  free(c);
}

static const ra_ws_handlers client_handlers = {.on_message = cl_message, .on_close = cl_close};

typedef struct {
  ra_loop *loop;
  const char *url;
} ws_target;

static int open_ws(const ra_ws_handlers *h, void *ws_ud, ra_ws **out, void *arg) {
  const ws_target *t = arg;
  return ra_ws_connect(t->loop, t->url, NULL, h, ws_ud, out);
}

int ra_relay_client_new_over(ra_relay_client_open_fn open, void *arg, const uint8_t *sk,
                             const ra_relay_client_handlers *h, void *ud, ra_relay_client **out) {
  if (out) *out = NULL;
  if (!open || !h) return -EINVAL;
  if (sodium_init() < 0) return -ENOMEM;
  ra_relay_client *c = calloc(1, sizeof *c);
  if (!c) return -ENOMEM;
  if (sk) {
    memcpy(c->sk, sk, sizeof c->sk);
    crypto_scalarmult_base(c->pk, c->sk);
  } else {
    crypto_box_keypair(c->pk, c->sk);
  }
  c->h = *h;
  c->ud = ud;
  int rc = open(&client_handlers, c, &c->ws, arg);
  if (rc < 0 || !c->ws) {
    sodium_memzero(c->sk, sizeof c->sk);
    free(c);
    return rc < 0 ? rc : -EINVAL;
  }
  if (out) *out = c;
  return 0;
}

int ra_relay_client_new(ra_loop *loop, const char *url, const uint8_t *sk,
                        const ra_relay_client_handlers *h, void *ud, ra_relay_client **out) {
  if (out) *out = NULL;
  if (!loop || !url || !h) return -EINVAL;
  ws_target t = {loop, url};
  return ra_relay_client_new_over(open_ws, &t, sk, h, ud, out);
}

int ra_relay_client_send(ra_relay_client *c, const uint8_t *to, const void *data, size_t len) {
  if (!c->registered || !ra_ws_is_open(c->ws)) return -ENOTCONN;
  if (len > (64u << 20)) return -EMSGSIZE;
  size_t bl = len + crypto_box_MACBYTES;
  uint8_t nonce[RA_RELAY_NONCE_BYTES];
  randombytes_buf(nonce, sizeof nonce);
  uint8_t *box = malloc(bl);
  size_t cap = 4 * ((bl + 2) / 3) + 256;
  uint8_t *owned = malloc(RA_WS_SEND_ROOM + cap); /* handed to ra_ws_send_owned */
  if (!box || !owned) {
    free(box);
    free(owned);
    return -ENOMEM;
  }
  if (crypto_box_easy(box, data, len, nonce, to, c->sk) != 0) {
    free(box);
    free(owned);
    return -EINVAL;
  }
  char *buf = (char *)owned + RA_WS_SEND_ROOM;
  char to64[48], n64[48];
  ra_b64url_encode(to, RA_RELAY_KEY_BYTES, to64);
  ra_b64url_encode(nonce, sizeof nonce, n64);
  int n = snprintf(buf, cap, "{\"type\":\"MESSAGE\",\"to\":\"%s\",\"nonce\":\"%s\",\"box\":\"", to64, n64);
  n += (int)ra_b64url_encode(box, bl, buf + n);
  buf[n++] = '"';
  buf[n++] = '}';
  free(box);
  int rc = ra_ws_send_owned(c->ws, RA_WS_TEXT, (uint8_t *)buf, (size_t)n, free, owned);
  return rc < 0 ? rc : 0;
}

void ra_relay_client_public_key(const ra_relay_client *c, uint8_t out[RA_RELAY_KEY_BYTES]) {
  memcpy(out, c->pk, RA_RELAY_KEY_BYTES);
}

void ra_relay_client_close(ra_relay_client *c) {
  (void)ra_ws_close(c->ws, RA_WS_CLOSE_NORMAL, NULL);
}
