/* tests/relay/relay_client_check.c: the C relay client (ws/relay.h) against
 * a relay.
 *   relay-client-check pair URL    two C clients exchange a message each
 *                                  way, then a message to an offline key
 *                                  gets ERROR offline; exit 0 if all right
 *   relay-client-check tunnel URL SIM_DIR
 *                                  the same, one client through the
 *                                  attested tunnel (ra_tunnel_ws_connect,
 *                                  quote checked against SIM_DIR's root)
 *                                  and one on plain WebSocket URL
 *   relay-client-check peer URL N  registers, prints "pk <base64url>",
 *                                  answers every message with "echo:" and
 *                                  the text, prints "got <from> <text>";
 *                                  exits 0 after N messages
 */
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "raloop/attest/quote/sim.h"
#include "raloop/attest/tunnel/client.h"
#include "raloop/core/log.h"
#include "raloop/core/loop.h"
#include "raloop/ws/relay.h"
#include "raloop/ws/relay_internal.h"

static ra_loop *loop;
static ra_relay_client *ca, *cb;
static int registered, got_a, got_b, offline, closed, fails, want = -1, got;
static ra_timer deadline;
static ra_tunnel_client *tunnel;
static ra_verifier *verifier;
static ra_defer free_tunnel;

/* the tunnel keeps the loop alive: free it once both clients are gone */
static void on_free_tunnel(ra_defer *d, void *ud) {
  ra_tunnel_client_free(tunnel);
  tunnel = NULL;
}

static void fail(const char *what) {
  fprintf(stderr, "FAIL %s\n", what);
  fails++;
  ra_loop_stop(loop);
}

static void finish(void) {
  if (ca) ra_relay_client_close(ca);
  if (cb) ra_relay_client_close(cb);
}

static void on_registered(ra_relay_client *c, void *ud) {
  if (want >= 0) {
    uint8_t pk[32];
    char s[48];
    ra_relay_client_public_key(c, pk);
    ra_b64url_encode(pk, 32, s);
    printf("pk %s\n", s);
    fflush(stdout);
    return;
  }
  if (++registered < 2) return;
  uint8_t pa[32], pb[32];
  ra_relay_client_public_key(ca, pa);
  ra_relay_client_public_key(cb, pb);
  if (ra_relay_client_send(ca, pb, "from a", 6) != 0) fail("send a");
  if (ra_relay_client_send(cb, pa, "from b", 6) != 0) fail("send b");
}

static void on_message(ra_relay_client *c, const uint8_t *from, const uint8_t *data, size_t len,
                       void *ud) {
  if (want >= 0) {
    char s[48];
    ra_b64url_encode(from, 32, s);
    printf("got %s %.*s\n", s, (int)len, (const char *)data);
    fflush(stdout);
    char *reply = malloc(len + 5);
    memcpy(reply, "echo:", 5);
    memcpy(reply + 5, data, len);
    if (ra_relay_client_send(c, from, reply, len + 5) != 0) fail("echo");
    free(reply);
    if (++got == want) ra_relay_client_close(c);
    return;
  }
  uint8_t other[32];
  ra_relay_client_public_key(c == ca ? cb : ca, other);
  if (memcmp(from, other, 32) != 0) fail("from");
  const char *exp = c == ca ? "from b" : "from a";
  if (len != 6 || memcmp(data, exp, 6) != 0) fail("plaintext");
  if (c == ca) got_a++;
  else got_b++;
  if (got_a && got_b) {
    uint8_t nobody[32];
    randombytes_buf(nobody, sizeof nobody);
    ra_relay_client_send(ca, nobody, "x", 1);
  }
}

static void on_error(ra_relay_client *c, ra_str reason, const uint8_t *to, void *ud) {
  if (ra_str_eq_cstr(reason, "offline") && to && c == ca) {
    offline++;
    finish();
  } else {
    fail("unexpected ERROR");
  }
}

static void on_close(ra_relay_client *c, uint16_t code, ra_str reason, void *ud) {
  if (c == ca) ca = NULL;
  if (c == cb) cb = NULL;
  if (code != 1000 && code != 1005) {
    fprintf(stderr, "closed %u %.*s\n", code, (int)reason.len, reason.ptr);
    fail("close code");
  }
  /* the loop ends by itself once both are gone */
  if (++closed == 2 && tunnel) ra_loop_defer(loop, &free_tunnel);
}

static void on_deadline(ra_timer *t, void *ud) { fail("timeout"); }

static int open_tunnelled(const ra_ws_handlers *h, void *ws_ud, ra_ws **out, void *arg) {
  return ra_tunnel_ws_connect(tunnel, "ws://h/relay", NULL, 0, h, ws_ud, out);
}

/* a tunnel client that checks the sim's quote (root from sim_dir, the sim's
 * default MRTD) */
static int start_tunnel(const char *url, const char *sim_dir) {
  static ra_tdx_expect ex;
  static ra_policy pol;
  char root[4096], origin[512];
  snprintf(root, sizeof root, "%s/%s", sim_dir, RA_SIM_ROOT_FILE);
  if (ra_verifier_new(0, &verifier) < 0 || ra_verifier_add_root_file(verifier, root) <= 0) return -1;
  memset(ex.mrtd, 0x5d, 48);
  ex.has = RA_TDX_MRTD;
  pol.tdx = &ex;
  pol.n_tdx = 1;
  /* ws://127.0.0.1:PORT/relay -> http://127.0.0.1:PORT */
  const char *host = url + 5, *slash = strchr(host, '/');
  snprintf(origin, sizeof origin, "http://%.*s", (int)(slash ? slash - host : (long)strlen(host)), host);
  ra_tunnel_client_opts o = {.verifier = verifier, .policy = &pol};
  return ra_tunnel_client_new(loop, origin, &o, &tunnel);
}

int main(int argc, char **argv) {
  if (argc < 3) return 2;
  const ra_relay_client_handlers h = {on_registered, on_message, on_error, on_close};
  ra_loop_new(&loop);
  ra_timer_init(loop, &deadline, on_deadline, NULL);
  ra_defer_init(&free_tunnel, on_free_tunnel, NULL);
  ra_timer_start(&deadline, 30000, 0);
  ra_timer_unref(&deadline);
  if (strcmp(argv[1], "peer") == 0 && argc > 3) {
    want = atoi(argv[3]);
    if (ra_relay_client_new(loop, argv[2], NULL, &h, NULL, &ca) != 0) return 1;
  } else if (strcmp(argv[1], "tunnel") == 0 && argc > 3) {
    if (start_tunnel(argv[2], argv[3]) != 0) return 1;
    if (ra_relay_client_new_over(open_tunnelled, NULL, NULL, &h, NULL, &ca) != 0 ||
        ra_relay_client_new(loop, argv[2], NULL, &h, NULL, &cb) != 0)
      return 1;
  } else {
    if (ra_relay_client_new(loop, argv[2], NULL, &h, NULL, &ca) != 0 ||
        ra_relay_client_new(loop, argv[2], NULL, &h, NULL, &cb) != 0)
      return 1;
  }
  ra_loop_run(loop);
  ra_timer_stop(&deadline);
  if (ca || cb) {
    finish();
    ra_loop_run_once(loop, 100);
  }
  ra_tunnel_client_free(tunnel);
  ra_loop_free(loop);
  ra_verifier_free(verifier);
  if (want < 0 && (got_a != 1 || got_b != 1 || offline != 1)) fails++;
  if (want >= 0 && got != want) fails++;
  printf("%s\n", fails ? "FAIL" : "ok");
  return fails ? 1 : 0;
}
