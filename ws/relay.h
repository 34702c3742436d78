/* ws/relay.h: the secure WebSocket relay (issue 14, docs/RELAY.md).
 *
 * Clients name themselves by an X25519 public key, prove they hold its
 * secret key by answering a fresh challenge with a crypto_box to the
 * relay's own key, and then send each other crypto_box messages (sender to
 * recipient) that the relay routes by public key. The relay holds only its
 * own key pair: it cannot open what clients send each other, never stores
 * messages and never logs their contents.
 *
 * Server: ra_relay_new, then ra_relay_route on a router (an ra_ws route,
 * so plain WebSockets and the attested tunnel get the same handlers).
 * Client: ra_relay_client_new (over ws/client.h).
 */
#ifndef RA_WS_RELAY_H
#define RA_WS_RELAY_H

#include "raloop/core/api.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "raloop/core/loop.h"
#include "raloop/core/str.h"
#include "raloop/http/router.h"
#include "raloop/ws/ws.h"

#define RA_RELAY_KEY_BYTES 32   /* X25519 public and secret keys */
#define RA_RELAY_NONCE_BYTES 24 /* crypto_box nonces, and the challenge */

/* Close codes the relay sends (besides 1009 for an oversized message,
 * 1001 on shutdown). */
#define RA_RELAY_CLOSE_POLICY 1008   /* registration refused, too many errors */
#define RA_RELAY_CLOSE_SLOW 1013     /* the client's queue reached queue_limit */
#define RA_RELAY_CLOSE_REPLACED 4001 /* another connection registered this key */

typedef struct ra_relay ra_relay;

/* Each field: 0 means the default in brackets. */
typedef struct ra_relay_opts {
  /* The relay's X25519 secret key (32 bytes, copied), or NULL for a fresh
   * key pair (crypto_box_keypair). */
  const uint8_t *secret_key;
  uint64_t challenge_ttl_ms; /* [30 s] unanswered: REGISTER_FAILURE, close 1008 */
  size_t max_box;            /* [64 KiB] largest box in a MESSAGE (bytes) */
  size_t queue_limit;        /* [1 MiB] bytes waiting for a client; beyond: 1013 */
  unsigned max_errors;       /* [5] ERRORs for bad input; one more: close 1008 */
  uint32_t rate_per_s;       /* [200] MESSAGEs per second per key (refill) */
  uint32_t rate_burst;       /* [400] bucket size */
  size_t max_clients;        /* [100000] registered keys; beyond: REGISTER_FAILURE */
} ra_relay_opts;

/* Creates a relay. opts may be NULL (copied). Returns 0 and *out, or
 * -ENOMEM, -EINVAL (a zero secret key). */
RA_API int ra_relay_new(const ra_relay_opts *opts, ra_relay **out);
/* Frees the relay: after the router it is mounted on (or after removing
 * the route). Connections still open keep it alive until their on_close.
 * NULL is a no-op. */
RA_API void ra_relay_free(ra_relay *r);
/* Mounts the relay as a WebSocket route (ra_ws_route_ex with the relay's
 * limits) on path. Returns 0 or the router's error. */
RA_API int ra_relay_route(ra_router *router, const char *path, ra_relay *r);
/* The relay's public key (32 bytes). */
RA_API void ra_relay_public_key(const ra_relay *r, uint8_t out[RA_RELAY_KEY_BYTES]);
/* Registered keys now. */
RA_API size_t ra_relay_count(const ra_relay *r);
/* Closes every connection with code/reason (shutdown). */
RA_API void ra_relay_close_all(ra_relay *r, uint16_t code, const char *reason);

/* ---- client ----------------------------------------------------------- */

typedef struct ra_relay_client ra_relay_client;

typedef struct ra_relay_client_handlers {
  /* REGISTER_SUCCESS: sends are possible. */
  void (*on_registered)(ra_relay_client *c, void *ud);
  /* A box from `from` (32 bytes) that opened: plaintext valid during the
   * call. A box that does not open is dropped (logged without content). */
  void (*on_message)(ra_relay_client *c, const uint8_t *from, const uint8_t *data, size_t len,
                     void *ud);
  /* ERROR or REGISTER_FAILURE from the relay: reason (e.g. "offline") and
   * `to` (32 bytes, or NULL), valid during the call. */
  void (*on_error)(ra_relay_client *c, ra_str reason, const uint8_t *to, void *ud);
  /* The last callback: the client is freed when it returns. */
  void (*on_close)(ra_relay_client *c, uint16_t code, ra_str reason, void *ud);
} ra_relay_client_handlers;

/* Connects to url (ws://HOST:PORT/relay) with the secret key sk (32 bytes,
 * copied; NULL: a fresh key pair), answers the challenge and registers.
 * handlers copied. Callbacks never run from inside this call. Returns 0 and
 * *out (valid until on_close returns), or -EINVAL, -ENOMEM, or
 * ra_ws_connect's errors. */
RA_API int ra_relay_client_new(ra_loop *loop, const char *url, const uint8_t *sk,
                               const ra_relay_client_handlers *h, void *ud,
                               ra_relay_client **out);
/* The same over another transport, e.g. the attested tunnel: open(h,
 * ws_ud, out, arg) is called once, from inside this call, and must start a
 * WebSocket to the relay route with exactly those handlers and ud and set
 * *out (e.g. `return ra_tunnel_ws_connect(tc, "ws://h/relay", NULL, 0, h,
 * ws_ud, out);`), returning 0 or -errno (then returned here, no callback
 * follows). */
typedef int (*ra_relay_client_open_fn)(const ra_ws_handlers *h, void *ws_ud, ra_ws **out,
                                       void *arg);
RA_API int ra_relay_client_new_over(ra_relay_client_open_fn open, void *arg, const uint8_t *sk,
                                    const ra_relay_client_handlers *h, void *ud,
                                    ra_relay_client **out);
/* Encrypts data for `to` (32 bytes) with a fresh random nonce and sends it.
 * Returns 0, -ENOTCONN before on_registered, -EMSGSIZE, -ENOMEM, or
 * ra_ws_send's errors. */
RA_API int ra_relay_client_send(ra_relay_client *c, const uint8_t *to, const void *data,
                                size_t len);
RA_API void ra_relay_client_public_key(const ra_relay_client *c, uint8_t out[RA_RELAY_KEY_BYTES]);
/* Closes the WebSocket (1000); on_close follows. */
RA_API void ra_relay_client_close(ra_relay_client *c);

#endif
