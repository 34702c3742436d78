/* client-att-replay: a client attestation recorded in one tunnel session is
 * worthless in another (PROTOCOL.md §10). Speaks the tunnel by hand (the
 * WebSocket client, msg.h, libsodium) against a raloop server with a client
 * policy (ra-hello --client-trust-sim DIR):
 *
 *   client-att-replay ORIGIN SIM_DIR
 *
 *   1. genuine: a quote from the simulated TEE in SIM_DIR over this
 *      session's binding; GET /whoami through the tunnel answers 200 with
 *      the client's identity;
 *   2. the recorded clientAttestation with a fresh sealed key on a new
 *      connection (a new challenge): closed 1008 "client attestation
 *      refused: binding ...";
 *   3. the recorded client_kx byte for byte on a new connection: the same
 *      (and its sealed key is the first session's, useless to a replayer);
 *   4. a quote over the right binding but for another server key (as if
 *      made for another server and relayed by it): refused too.
 * Prints one line per check; exits 0 only if all passed.
 */
#include <errno.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "raloop/attest/quote/provider.h"
#include "raloop/attest/tunnel/channel_internal.h"
#include "raloop/attest/tunnel/msg.h"
#include "raloop/core/loop.h"
#include "raloop/ws/client.h"

static int failures;
#define CHECK(cond, ...)                                   \
  do {                                                     \
    if (cond) printf("ok   " __VA_ARGS__);                 \
    else { printf("FAIL " __VA_ARGS__); failures++; }      \
    printf("\n");                                          \
  } while (0)

enum { MODE_GENUINE, MODE_REPLAY_ATT, MODE_REPLAY_KX, MODE_OTHER_KEY };

typedef struct session {
  ra_loop *loop;
  int mode;
  ra_quote_provider *prov;
  uint8_t key[32];
  bool keyed;
  uint8_t challenge[32];
  bool got_challenge;
  /* outcome */
  bool closed;
  uint16_t code;
  char reason[200];
  int status; /* of the /whoami response */
  char body[2048];
  ra_timer timer;
} session;

/* what session 1 sent */
static uint8_t *rec_kx, *rec_quote;
static size_t rec_kx_len, rec_quote_len;
static uint8_t rec_challenge[32];

static void send_whoami(session *s, ra_ws *ws) {
  uint8_t plain[512], out[1024], nonce[24];
  ra_tmsg_http_request_out r = {.request_id = RA_STR("r1"), .method = RA_STR("GET"),
                                .url = RA_STR("http://x/whoami")};
  size_t n = ra_tmsg_encode_http_request(plain, sizeof plain, &r);
  uint8_t ct[sizeof plain + crypto_secretbox_MACBYTES];
  randombytes_buf(nonce, sizeof nonce);
  crypto_secretbox_easy(ct, plain, n, nonce, s->key);
  size_t m = ra_tmsg_encode_enc(out, sizeof out, nonce, ct, n + crypto_secretbox_MACBYTES);
  ra_ws_send(ws, RA_WS_BINARY, out, m);
}

static void on_kx(session *s, ra_ws *ws, const ra_tmsg *m) {
  const ra_tmsg_server_kx *k = &m->server_kx;
  if (!k->has_client_challenge) {
    ra_ws_close(ws, 1000, "no challenge");
    return;
  }
  s->got_challenge = true;
  memcpy(s->challenge, k->client_challenge.bytes, 32);
  if (s->mode == MODE_REPLAY_KX) { /* the recorded message, byte for byte */
    ra_ws_send(ws, RA_WS_BINARY, rec_kx, rec_kx_len);
    return;
  }
  uint8_t sealed[RA_ENV_SEALED_KEY_BYTES];
  ra_env_random_key(s->key);
  ra_env_seal_key(s->key, k->x25519_public_key.bytes, sealed);
  uint8_t *quote = NULL;
  size_t qlen = 0;
  if (s->mode == MODE_REPLAY_ATT) {
    quote = rec_quote;
    qlen = rec_quote_len;
  } else {
    uint8_t rd[64], other_pk[32];
    const uint8_t *pk = k->x25519_public_key.bytes;
    if (s->mode == MODE_OTHER_KEY) {
      randombytes_buf(other_pk, sizeof other_pk);
      pk = other_pk;
    }
    ra_tunnel_client_binding(pk, s->challenge, sealed, sizeof sealed, rd);
    if (ra_quote_provider_get_report(s->prov, rd, &quote, &qlen)) {
      ra_ws_close(ws, 1000, "no quote");
      return;
    }
  }
  ra_tmsg_client_att_out att = {.quote = ra_bytes_make(quote, qlen)};
  size_t n = ra_tmsg_encode_client_kx_att(NULL, 0, sealed, sizeof sealed, &att);
  uint8_t *msg = malloc(n);
  ra_tmsg_encode_client_kx_att(msg, n, sealed, sizeof sealed, &att);
  ra_ws_send(ws, RA_WS_BINARY, msg, n);
  if (s->mode == MODE_GENUINE) {
    rec_kx = msg;
    rec_kx_len = n;
    rec_quote = quote;
    rec_quote_len = qlen;
    memcpy(rec_challenge, s->challenge, 32);
  } else {
    free(msg);
    if (quote != rec_quote) free(quote);
  }
  s->keyed = true;
  send_whoami(s, ws); /* sent right after client_kx, as our client does */
}

static void on_message(ra_ws *ws, ra_ws_type type, const uint8_t *data, size_t len, void *ud) {
  (void)type;
  session *s = ud;
  ra_tmsg m;
  if (ra_tmsg_decode(data, len, &m)) return;
  if (m.type == RA_TMSG_SERVER_KX) {
    on_kx(s, ws, &m);
    return;
  }
  if (m.type != RA_TMSG_ENC || !s->keyed) return;
  size_t ctl = m.enc.ciphertext.len;
  uint8_t *pt = malloc(ctl);
  if (pt && crypto_secretbox_open_easy(pt, m.enc.ciphertext.bytes, ctl, m.enc.nonce.bytes, s->key) == 0) {
    ra_tmsg in;
    if (ra_tmsg_decode(pt, ctl - crypto_secretbox_MACBYTES, &in) == 0 && in.type == RA_TMSG_HTTP_RESPONSE) {
      s->status = in.http_response.status;
      size_t b = in.http_response.body.len < sizeof s->body - 1 ? in.http_response.body.len : sizeof s->body - 1;
      memcpy(s->body, in.http_response.body.ptr, b);
      s->body[b] = '\0';
      ra_ws_close(ws, 1000, "done");
    }
  }
  free(pt);
}

static void on_close(ra_ws *ws, uint16_t code, ra_str reason, void *ud) {
  (void)ws;
  session *s = ud;
  s->closed = true;
  s->code = code;
  snprintf(s->reason, sizeof s->reason, "%.*s", (int)reason.len, reason.ptr ? reason.ptr : "");
  ra_timer_stop(&s->timer);
  ra_loop_stop(s->loop);
}

static void on_timeout(ra_timer *t, void *ud) {
  (void)t;
  ra_loop_stop(((session *)ud)->loop);
}

static const ra_ws_handlers handlers = {.on_message = on_message, .on_close = on_close};

static void run(ra_loop *loop, const char *url, ra_quote_provider *prov, int mode, session *s) {
  memset(s, 0, sizeof *s);
  s->loop = loop;
  s->mode = mode;
  s->prov = prov;
  ra_timer_init(loop, &s->timer, on_timeout, s);
  ra_timer_start(&s->timer, 5000, 0);
  ra_ws *ws;
  if (ra_ws_connect(loop, url, NULL, &handlers, s, &ws)) {
    printf("FAIL cannot connect to %s\n", url);
    failures++;
    ra_timer_stop(&s->timer);
    return;
  }
  ra_loop_run(loop);
  if (!s->closed) { /* timed out: end it and let its on_close run */
    ra_ws_close(ws, 1000, "timeout");
    ra_timer_start(&s->timer, 2000, 0);
    ra_loop_run(loop);
  }
  /* on_close stopped the loop: let the connection's teardown finish */
  ra_timer_start(&s->timer, 50, 0);
  ra_loop_run(loop);
  ra_timer_stop(&s->timer);
}

int main(int argc, char **argv) {
  if (argc != 3) {
    fprintf(stderr, "usage: client-att-replay ORIGIN SIM_DIR\n");
    return 2;
  }
  if (ra_env_init()) return 1;
  char url[512];
  const char *o = argv[1];
  snprintf(url, sizeof url, "ws://%s/__ra__", strncmp(o, "http://", 7) == 0 ? o + 7 : o);
  ra_quote_provider *prov;
  if (ra_quote_provider_sim(argv[2], &prov)) return 1;
  ra_loop *loop;
  ra_loop_new(&loop);
  session s;

  run(loop, url, prov, MODE_GENUINE, &s);
  CHECK(s.got_challenge, "server_kx carries a clientChallenge");
  CHECK(s.status == 200 && strstr(s.body, "\"tee\":\"tdx\"") && strstr(s.body, "\"mrtd\":\""),
        "genuine: GET /whoami 200 with the client's identity (%d %.80s)", s.status, s.body);

  run(loop, url, prov, MODE_REPLAY_ATT, &s);
  CHECK(memcmp(s.challenge, rec_challenge, 32) != 0, "a new connection gets a new challenge");
  CHECK(s.closed && s.code == 1008 && strstr(s.reason, "client attestation refused: binding") && s.status == 0,
        "replayed attestation, fresh key: closed %u \"%s\", no response", s.code, s.reason);

  run(loop, url, prov, MODE_REPLAY_KX, &s);
  CHECK(s.closed && s.code == 1008 && strstr(s.reason, "client attestation refused: binding"),
        "replayed client_kx byte for byte: closed %u \"%s\"", s.code, s.reason);

  run(loop, url, prov, MODE_OTHER_KEY, &s);
  CHECK(s.closed && s.code == 1008 && strstr(s.reason, "client attestation refused: binding") && s.status == 0,
        "a quote bound to another server key: closed %u \"%s\"", s.code, s.reason);

  free(rec_kx);
  free(rec_quote);
  ra_quote_provider_free(prov);
  ra_loop_free(loop);
  return failures ? 1 : 0;
}
