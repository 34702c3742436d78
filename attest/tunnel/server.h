/* attest/tunnel_server.h: the server side of the RA-HTTPS / RA-WSS tunnel
 * (PROTOCOL.md), as a transport beneath the router.
 *
 * ra_tunnel_server_new() registers the control channel, a WebSocket route on
 * "/__ra__" (any query string is ignored), on the application's router, so
 * the tunnel shares the listener of plain HTTP. Per control connection:
 *   open        -> server_kx (X25519 key, quote, runtime_data, verifier_data)
 *   client_kx   -> the sealed key is opened; the connection's key is set
 *                  (a second client_kx is ignored; one that does not open is
 *                  dropped and counted)
 *   enc         -> decrypted, replay-checked, decoded:
 *     http_request -> an ra_req marked attested, through ra_router_handle;
 *                  its ra_res writes to a sink that sends one http_response
 *                  (lowercase headers, repeated ones as arrays, body bytes;
 *                  no body for 204/205/304/HEAD). Async handlers and any
 *                  number of requests in flight, answered in any order.
 *                  Header text maps to header bytes as in a browser's
 *                  fetch: each code point up to U+00FF is one byte (a
 *                  request header with a higher one gets a 400), and
 *                  response header bytes go out as those code points.
 *                  What HTTP/1.1 could not carry gets a 400 too: a method
 *                  or header name that is not a token, a header value with
 *                  NUL, CR or LF. A response leaves whole, at its end
 *                  (at most max_response body bytes): ra_res_pending
 *                  reports what was written since the last on_drain plus
 *                  what the control channel holds unsent, and on_drain
 *                  runs from the loop (a later turn, once the control
 *                  channel is below its high-water mark), so a handler
 *                  paced on them yields to other clients as over HTTP/1.1.
 *                  On a tunnel whose client opted in to streamed bodies
 *                  (PROTOCOL.md §11; see no_body_streams below), request
 *                  bodies may come as http_body pieces and long responses
 *                  leave as http_body pieces within the client's credit.
 *     ws_connect   -> the WebSocket route matching the URL's path: an ra_ws
 *                  whose sink sends ws_message / ws_event envelopes; ws_event
 *                  open, or error when no route matches / on_request refuses.
 *     ws_message / ws_close -> that ra_ws.
 *     http_body / http_credit / http_cancel (§11, negotiated tunnels only)
 *                  -> that request's body stream / response stream.
 * Everything else is dropped (and counted), as the reference does: CBOR that
 * does not decode, messages before the key other than client_kx, plaintext
 * after it, envelopes that do not authenticate, replayed envelope nonces.
 * When a control connection ends, every response still pending on it is
 * cancelled (ra_res_cancel) and every tunnelled WebSocket gets on_close 1006.
 *
 * One current X25519 key pair per tunnel server, made in
 * ra_tunnel_server_new, and its evidence from the quote provider, obtained
 * right then (this may block: a provider talks to the kernel or reads
 * files); with an adopted provider, renewed on a schedule or on demand (key
 * rotation: see key_lifetime_ms), each channel keeping the key generation
 * whose server_kx it got.
 */
#ifndef RA_ATTEST_TUNNEL_SERVER_H
#define RA_ATTEST_TUNNEL_SERVER_H

#include "raloop/core/api.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "raloop/attest/quote/provider.h"
#include "raloop/attest/quote/verify.h"
#include "raloop/core/loop.h"
#include "raloop/http/router.h"
#include "raloop/http/server.h"

typedef struct ra_tunnel_server ra_tunnel_server;

/* What a client's own attestation must satisfy (PROTOCOL.md §10). With one,
 * every server_kx carries a fresh clientChallenge; a client_kx that brings
 * a clientAttestation gets it verified right there, before the tunnel is
 * keyed:
 *   - the quote with `verifier` (its pinned roots: the Intel root, a
 *     simulated TEE's...), `policy` (measurement sets, allow_debug, TCB
 *     acceptance; x25519_pub and binding_* are not used: the client's
 *     report_data must instead be the session binding of PROTOCOL.md §10, checked in a
 *     callback that runs before policy.callback, if any) and `collateral`
 *     (optional: the TCB status);
 *   - the dstack event log when the client sent one: replayed against the
 *     quote's RTMR0-3, then app_id / compose_hash compared when pinned here
 *     (a pin without a log from the client refuses).
 * Fail closed: an attestation that is present and fails closes the control
 * channel with 1008 "client attestation refused: CHECK: why" (logged at
 * warning level), the tunnel is never keyed. A client_kx without one (the
 * reference client's) is accepted as before: its requests carry no
 * ra_req_client_identity and routes flagged RA_ROUTE_CLIENT_ATTESTED
 * answer them 403. The verification runs on the loop thread when the
 * client_kx arrives (one quote verification, plus an event-log replay when
 * one came: of the order of a millisecond). Borrowed: everything here must
 * outlive the server. */
typedef struct ra_tunnel_client_policy {
  ra_verifier *verifier;     /* required */
  ra_policy policy;          /* signature_only may be set: roots alone decide */
  ra_collateral *collateral; /* NULL: signatures only ("TCB not evaluated") */
  const uint8_t *app_id;     /* NULL: any */
  size_t app_id_len;
  const uint8_t *compose_hash; /* NULL: any */
  size_t compose_hash_len;
} ra_tunnel_client_policy;

/* Each field: 0 means the default in brackets. */
typedef struct ra_tunnel_server_opts {
  uint64_t heartbeat_interval_ms; /* [30 s] ping each control channel this often */
  uint64_t heartbeat_timeout_ms;  /* [60 s] drop one silent (no pong, no message) this long */
  size_t max_envelope;            /* [16 MiB] larger control messages: close 1009 */
  size_t max_inflight;            /* [4096] requests awaiting their response per tunnel;
                                     beyond: an immediate 503 http_response */
  size_t max_tunnels;             /* [10000] control channels per server; beyond: close 1008 */
  size_t max_sockets;             /* [1024] tunnelled WebSockets per tunnel; beyond: ws_event error */
  size_t max_headers;             /* [100] headers of one http_request; beyond: 431 */
  size_t max_envelopes_per_key;   /* [RA_REPLAY_DEFAULT_LIMIT] envelopes under one key (the
                                     replay set's bound, see ra_replay). The http_request
                                     that crosses it, and any after it, get a 503
                                     http_response with `error` (the client fails that fetch
                                     and may retry on a new tunnel); responses still pending
                                     get drain_timeout_ms to finish; then close 1008 (the
                                     client reconnects with a fresh key) */
  const char *path;               /* ["/__ra__"] */
  uint64_t drain_timeout_ms;      /* [5 s] see max_envelopes_per_key */
  /* Optional: called as each tunnelled response completes (also for the
   * tunnel's own 400/431 answers), like the HTTP server's (http/server.h);
   * duration_us runs from the http_request's arrival. */
  ra_access_log_cb access_log;
  void *access_log_ud;
  /* [8,388,608] envelope nonces remembered across all tunnels (the replay
   * sets' memory: 16 bytes each at most, so 128 MiB). Past it, a tunnel that
   * holds at least its fair share (this / tunnels open) is recycled as if it
   * had reached max_envelopes_per_key; lighter tunnels go on. */
  size_t max_replay_entries;
  /* Before the key exchange. A control channel that has not sent a valid
   * client_kx within kx_timeout_ms is closed with 1008 "key exchange
   * timeout". Channels awaiting their client_kx are bounded apart from
   * keyed tunnels (max_tunnels counts keyed ones only, so they never
   * starve them): past max_unkeyed (server-wide) or max_unkeyed_per_addr
   * (from one client IP address) a new channel is closed with 1008 right
   * after the upgrade. */
  uint64_t kx_timeout_ms;      /* [5 s] */
  size_t max_unkeyed;          /* [1024] */
  size_t max_unkeyed_per_addr; /* [128]: raise it for clients that open more tunnels at
                                  once from one address (load tests, a NAT) */
  /* [16 MiB] bytes of one tunnelled response body (a response is sent
   * whole, so it is held until it ends). Past it the client gets a 502
   * http_response ("response too large for the tunnel") at once and the
   * handler's ra_res is cancelled (on_cancel runs; writes fail). */
  size_t max_response;
  /* Bytes held for requests awaiting their response (their request bodies
   * and the response bodies written so far): per tunnel [64 MiB] and over
   * all tunnels [256 MiB]. An http_request whose body would cross either
   * gets a 503 http_response at once (413 when its body alone is above the
   * per-tunnel bound); a response whose body would cross either gets a 503
   * at once and its ra_res is cancelled (as past max_response). */
  size_t max_buffered_per_tunnel;
  size_t max_buffered;
  /* NULL: no client attestation is asked for (no clientChallenge) and any
   * that comes is ignored. See ra_tunnel_client_policy. */
  const ra_tunnel_client_policy *client_policy;
  /* Key rotation (needs adopt_provider). Every key_lifetime_ms [24 h;
   * RA_TUNNEL_KEY_FOREVER: only on demand] the server makes a new X25519
   * key pair and gets the provider's evidence for it, from a loop timer
   * (the provider may block the loop for its call: never inside a request),
   * and only then switches: new control channels get the new server_kx;
   * those already open keep their key. old_key_grace_ms [1 h] after a key
   * was replaced, the tunnels still on it drain: new requests get a 503
   * http_response with `error` (retry on a new tunnel), what is in flight is
   * answered (drain_timeout_ms at most), then the control channel closes
   * with 1012 "service restart" so the client rekeys; a channel not keyed
   * yet on it closes 1012 at once. A replaced secret key is wiped
   * (sodium_memzero) as soon as no tunnel uses it. A failed rotation
   * (provider error) keeps the current key, logs, and is retried a minute
   * later. */
  uint64_t key_lifetime_ms;
  uint64_t old_key_grace_ms;
  /* true: the server keeps `provider` (it must then not be freed by the
   * caller once ra_tunnel_server_new succeeds: ra_tunnel_server_free frees
   * it) and can rotate its key. false: the provider is used in
   * ra_tunnel_server_new only and the key never changes. On failure the
   * caller still owns the provider. */
  bool adopt_provider;
  /* Streamed bodies (PROTOCOL.md §11, a raloop extension the reference
   * ignores): on unless no_body_streams. server_kx announces
   * bodyStreams {window, chunk}: the credit in bytes each request body
   * stream gets before any http_credit [1 MiB], and the most data bytes
   * in one http_body [256 KiB] (ranges: ra_tmsg_body_streams_valid, else
   * ra_tunnel_server_new fails with -EINVAL). A client whose client_kx
   * announces its own may then send a request body as http_body pieces
   * (bodyStream: true) and receives long response bodies that way:
   *   - a route flagged RA_ROUTE_STREAM_BODY gets the body as it arrives
   *     (ra_req_on_body); other routes get it assembled, as a whole body,
   *     bounded like one (413 / 503 over max_buffered_per_tunnel /
   *     max_buffered); credit is granted as the handler consumes it, so a
   *     paused handler holds at most `window` bytes of that stream;
   *   - each streamed request reserves `window` bytes of
   *     max_buffered(_per_tunnel) while its body is coming (503 when it
   *     cannot);
   *   - a response whose body grows past the client's chunk before it
   *     ends goes as http_response {bodyStream: true, body: null} and
   *     http_body pieces within the client's credit (no max_response
   *     bound: ra_res_pending reports what waits for credit plus the
   *     control channel's backlog, so a paced handler stays bounded);
   *     shorter answers go whole, byte for byte as without the extension;
   *   - http_cancel from the client cancels that response (on_cancel);
   *     a response ended before its request body is followed by
   *     http_cancel for the rest; a protocol violation (over the credit or
   *     the chunk, an unknown stream...) fails that stream only: 400 and
   *     http_cancel. */
  bool no_body_streams;
  uint64_t body_stream_window; /* [1 MiB] */
  uint64_t body_stream_chunk;  /* [256 KiB] */
} ra_tunnel_server_opts;

#define RA_TUNNEL_KEY_FOREVER UINT64_MAX

/* Creates the server: a key pair, the provider's evidence for it, and the
 * control-channel route on router. loop and router must outlive the tunnel
 * server; the provider is used only here, and may be freed once this
 * returns, unless opts->adopt_provider (then the server owns it on success). Returns 0 and *out, or a negative code (-ENOMEM, -EIO, the
 * provider's error, the router's -EEXIST / -EINVAL) with *out NULL; why
 * (the provider's message, a route conflict...) goes to the log. */
RA_API int ra_tunnel_server_new(ra_loop *loop, ra_router *router, ra_quote_provider *provider,
                         const ra_tunnel_server_opts *opts, ra_tunnel_server **out);

/* Removes the control-channel route from the router (a later request to it
 * gets the router's 404), drops every control connection (their pending
 * responses are cancelled, their tunnelled WebSockets closed) and frees the
 * server. May come before or after the HTTP server's free. */
RA_API void ra_tunnel_server_free(ra_tunnel_server *ts);

/* Graceful stop: from now on no new control channel is accepted (close
 * 1001 right after the upgrade), and on the open ones a new http_request
 * gets a 503 http_response with `error` ("server shutting down": the
 * client fails that fetch and may retry elsewhere), a new ws_connect a
 * ws_event error; tunnelled WebSockets are closed with 1001. Requests
 * already in flight are answered; each control channel is closed with
 * 1001 once nothing is pending on it, or when deadline_ms has passed
 * (what is still pending is then cancelled; a closing handshake not done
 * a second after the deadline is cut). done (may be NULL) runs once
 * from the loop when no control channel is left; free the server then (or
 * later). A second call changes nothing. The route stays registered until
 * the free. */
typedef void (*ra_tunnel_shutdown_cb)(ra_tunnel_server *ts, void *ud);
RA_API void ra_tunnel_server_shutdown(ra_tunnel_server *ts, uint64_t deadline_ms, ra_tunnel_shutdown_cb done,
                               void *ud);

/* The server's current X25519 public key (32 bytes, valid until the next
 * rotation or as long as ts without one). */
RA_API const uint8_t *ra_tunnel_server_public_key(const ra_tunnel_server *ts);

typedef struct ra_tunnel_stats {
  uint64_t tunnels_open;      /* control connections now */
  uint64_t tunnels_total;     /* ever opened */
  uint64_t tunnels_refused;   /* over max_tunnels */
  uint64_t keyed;             /* client_kx accepted */
  uint64_t bad_cbor;          /* control messages or inner messages that did not decode */
  uint64_t bad_sealed_key;    /* client_kx that did not open */
  uint64_t dropped_before_key;/* non-client_kx before the key */
  uint64_t dropped_plaintext; /* non-enc after the key */
  uint64_t decrypt_failed;    /* enc that did not authenticate */
  uint64_t replays;           /* enc whose nonce was seen before on that connection */
  uint64_t requests;          /* http_request dispatched */
  uint64_t requests_refused;  /* over max_inflight, or after max_envelopes_per_key */
  uint64_t responses_cancelled;
  uint64_t sockets_opened;    /* tunnelled WebSockets */
  uint64_t heartbeat_drops;
  uint64_t kx_timeouts;       /* closed without a key exchange in time */
  uint64_t unkeyed_refused;   /* over max_unkeyed / max_unkeyed_per_addr */
  uint64_t nested_refused;    /* ws_connect to a control channel inside a tunnel */
  uint64_t responses_too_large; /* over max_response: 502 */
  uint64_t buffered_refused;  /* over max_buffered(_per_tunnel): 503 / 413 */
  /* with a client policy: keyed tunnels whose client attestation passed,
   * keyed tunnels without one, and channels closed on one that failed */
  uint64_t clients_attested, clients_unattested, clients_refused;
  /* key rotation */
  uint64_t rotations;        /* successful: a new key is current */
  uint64_t rotations_failed; /* provider (or memory) error: the key stayed */
  uint64_t tunnels_rekeyed;  /* tunnels drained for 1012 because their key was replaced */
  uint64_t key_generations;  /* live keys: the current one plus those tunnels still use */
  uint64_t key_age_ms;       /* of the current key */
  /* streamed bodies (PROTOCOL.md §11) */
  uint64_t body_streams_negotiated; /* keyed tunnels whose client announced bodyStreams */
  uint64_t body_streams_in;         /* request bodies received as http_body */
  uint64_t body_streams_out;        /* response bodies sent as http_body */
  uint64_t body_stream_violations;  /* streams failed with 400 + http_cancel */
  uint64_t body_stream_cancels;     /* http_cancel received from clients */
} ra_tunnel_stats;
RA_API void ra_tunnel_server_stats(const ra_tunnel_server *ts, ra_tunnel_stats *st);

/* Rotates the key now (see key_lifetime_ms): a new key pair and the
 * provider's evidence for it, then the switch; the schedule restarts from
 * now. Runs the provider on the calling thread (it may block): call it from
 * a loop callback (a signal handler registered with ra_loop_on_signal, a
 * timer), not while a request is being handled if that matters. Returns 0,
 * -ENOTSUP without an adopted provider, -ECANCELED once shutting down,
 * -EALREADY while ra_tunnel_server_rotate_start is under way, or the
 * provider's error (the current key then stays; logged). */
RA_API int ra_tunnel_server_rotate(ra_tunnel_server *ts);

/* The same rotation with the provider on a thread of its own
 * (core/work.h): the loop serves on while the evidence is made (a TDX
 * quote through the quoting service takes milliseconds to seconds). The
 * key pair is made and the switch done on the loop; cb (may be NULL) then
 * gets 0, the provider's error (the current key stays; logged), -ENOMEM or
 * -ECANCELED (the server began to shut down meanwhile), on the loop, never
 * inside this call. The scheduled rotations (key_lifetime_ms) and
 * ra_serve's SIGUSR1 take this path. Returns 0 (cb will be called),
 * -EALREADY (a rotation is under way; its own cb will tell), -ENOTSUP,
 * -ECANCELED, or a thread's error (cb will not be called).
 * ra_tunnel_server_free waits for the provider to return (cb is then not
 * called). The provider is called from that thread while the loop goes
 * on: it must not be used from the loop at the same time (raloop's
 * providers are only used by the server that adopted them). */
typedef void (*ra_tunnel_rotate_cb)(ra_tunnel_server *ts, int status, void *ud);
RA_API int ra_tunnel_server_rotate_start(ra_tunnel_server *ts, ra_tunnel_rotate_cb cb, void *ud);

/* Changes key_lifetime_ms (0: RA_TUNNEL_KEY_FOREVER) and, when not 0,
 * old_key_grace_ms; the next rotation is lifetime_ms from now. -ENOTSUP
 * without an adopted provider. */
RA_API int ra_tunnel_server_set_key_lifetime(ra_tunnel_server *ts, uint64_t lifetime_ms, uint64_t grace_ms);

/* Milliseconds since the current key was made (for metrics). */
RA_API uint64_t ra_tunnel_server_key_age_ms(const ra_tunnel_server *ts);

#endif
