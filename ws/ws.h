/* ws/ws.h: WebSocket connections (ra_ws), server routes, rooms, and the sink
 * interface that lets other transports (the attested tunnel) carry the same
 * handlers.
 *
 * Rooms (broadcast to a set of connections) are in ws/room.h, included here.
 *
 * An ra_ws is one WebSocket, whatever carries it: frames on a TCP stream
 * (server routes here, the client in ws/client.h), or ws_message envelopes
 * in the tunnel. Applications see whole messages (on_message) and send whole
 * or fragmented messages; pings, pongs and the closing handshake are handled
 * by the transport.
 *
 * Lifetime: an ra_ws is valid from on_open (or from its creation, for the
 * transport that made it) until on_close returns; it is freed right after.
 * on_close is always the last callback and always comes, exactly once:
 * after a closing handshake either side started, after a protocol error,
 * or when the connection dropped (code 1006). Callbacks run on the loop
 * thread; every ra_ws_* function may be called from inside any of them.
 */
#ifndef RA_WS_WS_H
#define RA_WS_WS_H

#include "raloop/core/api.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "raloop/core/buf.h"
#include "raloop/core/loop.h"
#include "raloop/http/request.h"
#include "raloop/http/router.h"
#include "raloop/ws/frame.h"

typedef struct ra_ws ra_ws;

typedef enum { RA_WS_TEXT = RA_WS_OP_TEXT, RA_WS_BINARY = RA_WS_OP_BINARY } ra_ws_type;

/* ra_ws_send's positive answer: the message was accepted but the transport
 * now holds more than send_high_water bytes; stop sending until on_drain. */
#define RA_WS_BACKPRESSURE 1

typedef struct ra_ws_handlers {
  /* Server only, optional: vet the upgrade request before it is accepted
   * (authentication, Origin...). Return 0 to accept, or an HTTP status
   * (400..599) to refuse with. req is valid during the call. */
  int (*on_request)(ra_req *req, void *ud);
  /* Server only, optional: pick one of the subprotocols the client offered
   * (Sec-WebSocket-Protocol, in the client's order). Return its index, or
   * -1 for none (the answer then names no protocol). Views valid during the
   * call. Without this hook no protocol is ever selected. */
  int (*select_protocol)(const ra_req *req, const ra_str *offered, size_t n, void *ud);
  /* The connection is open: messages may be sent. Optional. */
  void (*on_open)(ra_ws *ws, void *ud);
  /* A whole message (reassembled from its fragments; text is valid UTF-8).
   * data is valid during the call only. Optional. */
  void (*on_message)(ra_ws *ws, ra_ws_type type, const uint8_t *data, size_t len, void *ud);
  /* The last callback; ws is freed when it returns. code: the peer's close
   * code; 1005 if its close frame had none; 1006 if the connection dropped
   * without a closing handshake (also for idle/close timeouts, and a peer
   * closed for back-pressure, 1013, that never answered); the code we sent
   * when we failed the
   * connection for a protocol error (1002, 1007, 1009). reason is valid
   * during the call. Optional. */
  void (*on_close)(ra_ws *ws, uint16_t code, ra_str reason, void *ud);
  /* The transport's send buffer fell back to its low-water mark after a send
   * returned RA_WS_BACKPRESSURE. Optional. */
  void (*on_drain)(ra_ws *ws, void *ud);
  /* A pong arrived (answer to ra_ws_ping or the periodic ping). Optional. */
  void (*on_pong)(ra_ws *ws, const uint8_t *data, size_t len, void *ud);
  /* Server routes on an HTTP server: the server started a graceful
   * shutdown (also when the upgrade completes after it started). Optional:
   * without it the connection is closed with 1001 "server shutting down".
   * Either way it must close before the server's shutdown deadline, when
   * it is dropped (on_close 1006). */
  void (*on_shutdown)(ra_ws *ws, void *ud);
} ra_ws_handlers;

/* For the timeouts below: the feature is off (0 means the default). */
#define RA_WS_OFF UINT64_MAX

/* Each field: 0 means the default in brackets. */
typedef struct ra_ws_opts {
  uint64_t max_message;      /* [16 MiB] larger incoming messages: close 1009 */
  uint64_t ping_interval_ms; /* [30 s; RA_WS_OFF: never] ping this often
                                (frames on a stream; the tunnel has its own
                                heartbeat) */
  uint64_t idle_timeout_ms;  /* [2 x ping_interval_ms, else 60 s; RA_WS_OFF:
                                never] a peer from which nothing (no frame,
                                no pong) arrived for this long is dropped
                                (on_close 1006); checked at each ping */
  uint64_t close_timeout_ms; /* [5 s] wait for the peer's close frame (and,
                                client side, for the opening handshake),
                                then drop the connection */
  size_t send_high_water;    /* [1 MiB] sends return RA_WS_BACKPRESSURE past it */
  size_t send_limit;         /* [64 MiB] a message that would make more than
                                this pile up unsent is not queued: the peer
                                is closed with 1013 instead (a message is
                                always queued when nothing is pending) */
} ra_ws_opts;

/* ---- server routes ------------------------------------------------------ */

/* Registers a GET route on `pattern` (router syntax, so ":param" works) whose
 * handler performs the whole RFC 6455 server handshake: GET, HTTP/1.1,
 * "Upgrade: websocket", "Connection" containing "upgrade", a valid
 * Sec-WebSocket-Key (else 400), "Sec-WebSocket-Version: 13" (else 426 with
 * "Sec-WebSocket-Version: 13"), then on_request and select_protocol, then
 * 101 with Sec-WebSocket-Accept, and hands the connection to the handlers.
 * handlers is copied; ud is passed to every handler. opts may be NULL.
 * flags: as for ra_route_ex (RA_ROUTE_ATTESTED_ONLY).
 * Returns 0 or the router's error (-EINVAL, -EEXIST), -ENOMEM.
 * The route's bookkeeping is freed with the router (ra_router_on_free), or
 * when the route is removed (ra_router_remove(r, "GET", pattern)); an
 * upgrade still in flight on a removed route is dropped, not opened. */
RA_API int ra_ws_route(ra_router *r, const char *pattern, const ra_ws_handlers *h, void *ud);
RA_API int ra_ws_route_ex(ra_router *r, const char *pattern, const ra_ws_handlers *h, void *ud,
                   const ra_ws_opts *opts, unsigned flags);

/* For transports that resolve a WebSocket route themselves (the tunnel's
 * ws_connect): true when m is a route made by ra_ws_route, and then sets
 * *h and *ud to what it was registered with (and ra_ws_route_opts gives its
 * options); the pointers live as long as the router. */
RA_API bool ra_ws_route_handlers(const ra_route_match *m, const ra_ws_handlers **h, void **ud);
RA_API const ra_ws_opts *ra_ws_route_opts(const ra_route_match *m);

/* ---- sending ----------------------------------------------------------- */

/* Sends a whole message. Text must be valid UTF-8 (-EILSEQ otherwise).
 * Returns 0; RA_WS_BACKPRESSURE (sent, but slow down until on_drain);
 * -EPIPE once closing or closed; -EBUSY while a fragmented message is
 * being sent; -ENOBUFS when the message was not sent because the peer let
 * too much pile up (send_limit): the closing handshake with 1013 "peer too
 * slow" was started instead (on_close follows; 1006 if the peer never
 * reads it);
 * -ENOTCONN before on_open; -ENOMEM. data is copied or written before
 * the call returns. */
RA_API int ra_ws_send(ra_ws *ws, ra_ws_type type, const void *data, size_t len);
RA_API int ra_ws_send_text(ra_ws *ws, const char *text);

/* Zero-copy send for transports that build whole messages in their own
 * buffers (the tunnel): like ra_ws_send, but the buffer is handed over. The
 * RA_WS_SEND_ROOM bytes before data must be writable and belong to the same
 * buffer: on a stream the frame header is written there and the frame
 * (masked in place, client side) is queued by reference, never copied.
 * data's contents are undefined afterwards. free_cb(ud) (may be NULL) runs
 * exactly once when the buffer is no longer needed: possibly before this
 * returns, also when it fails. Other sinks get a plain send. Same returns
 * as ra_ws_send. */
#define RA_WS_SEND_ROOM 14
RA_API int ra_ws_send_owned(ra_ws *ws, ra_ws_type type, uint8_t *data, size_t len,
                     void (*free_cb)(void *), void *ud);

/* Batching for a burst of small messages (the tunnel answering many
 * requests that arrived in one read): until the end of the loop's current
 * turn, frames of up to 16 KiB are gathered (copied) and written with few
 * system calls (one per 4 KiB gathered, so the first answers leave while
 * later ones are still being made); larger ones go out at once, after what
 * gathered. Frame order and the bytes on the wire are
 * unchanged. Idempotent within a turn; no-op on sinks without a cork op
 * (the stream transport has one) and on a closing connection. */
RA_API void ra_ws_cork(ra_ws *ws);

/* Gives back the memory a connection keeps between messages for reuse (the
 * write staging buffer when nothing is gathered, the message buffer when no
 * message is half received, the ra_ws_send_frame gathering buffer when no
 * message is being sent): for a connection that has been idle a while,
 * so that thousands of idle ones cost little (issue 18). The next message
 * allocates again. No-op on sinks without a trim op. */
RA_API void ra_ws_trim(ra_ws *ws);

/* Sends a message in pieces: the first call starts a message of `type`,
 * later calls continue it (their type is ignored), the call with fin ends
 * it. Text is UTF-8-checked across pieces (a code point may be split); a
 * refused piece (-EILSEQ) leaves the message as it was, still open.
 * Control frames (ping, close) may be sent in between; other messages may
 * not (-EBUSY). Same returns as ra_ws_send. On transports without
 * fragments (the tunnel), pieces are gathered and sent whole at fin. */
RA_API int ra_ws_send_fragment(ra_ws *ws, ra_ws_type type, const void *data, size_t len, bool fin);

/* Sends a ping with up to 125 bytes (-EINVAL beyond). -ENOTSUP on
 * transports without pings (the tunnel). Pongs are sent automatically. */
RA_API int ra_ws_ping(ra_ws *ws, const void *data, size_t len);

/* Starts the closing handshake: sends a close frame with code (0: none, an
 * empty close payload) and reason (NULL or UTF-8, at most 123 bytes), then
 * waits close_timeout_ms for the peer's close before dropping the
 * connection. on_close follows. code must be one a peer may send
 * (ra_ws_close_code_valid: 1000-1003, 1007-1014, 3000-4999) and a reason
 * needs a code (-EINVAL otherwise). -EALREADY if already closing. */
RA_API int ra_ws_close(ra_ws *ws, uint16_t code, const char *reason);

/* Drops the connection without a closing handshake; on_close (1006)
 * follows from the loop, not from inside this call. */
RA_API void ra_ws_terminate(ra_ws *ws);

/* ---- inspection --------------------------------------------------------- */

RA_API ra_loop *ra_ws_loop(const ra_ws *ws);
/* Bytes the transport holds unsent. */
RA_API size_t ra_ws_buffered(const ra_ws *ws);
/* The negotiated subprotocol (empty if none), the request path it was opened
 * on (empty for client connections), both valid as long as ws. */
RA_API ra_str ra_ws_protocol(const ra_ws *ws);
RA_API ra_str ra_ws_path(const ra_ws *ws);
/* The socket carrying the WebSocket (a server's upgraded connection or a
 * client's), or -1 for one carried otherwise (inside the tunnel) or once
 * closed. For getpeername and the like; do not read or write it. */
RA_API int ra_ws_fd(const ra_ws *ws);
/* True when the WebSocket runs inside an attested tunnel. */
RA_API bool ra_ws_attested(const ra_ws *ws);
/* True from on_open until closing starts (either side). */
RA_API bool ra_ws_is_open(const ra_ws *ws);
/* A pointer of the application's, per connection (NULL initially). */
RA_API void *ra_ws_userdata(const ra_ws *ws);
RA_API void ra_ws_set_userdata(ra_ws *ws, void *p);

/* ---- for transports ------------------------------------------------------
 * A transport (e.g. the attested tunnel) creates an ra_ws with its own sink,
 * then feeds it events. Contract: the transport calls ra_ws_deliver_open
 * once when the WebSocket is established, ra_ws_deliver_message for each
 * incoming message, and ra_ws_deliver_close exactly once at the end
 * (after the closing handshake, or when the carrier drops), after which ws
 * is gone. Sink callbacks must not call ra_ws_deliver_close synchronously
 * from inside `terminate` (defer it to the loop); from `close` they may, if
 * the transport has no closing handshake of its own. */
typedef struct ra_ws_sink_ops {
  /* A whole message; data valid during the call. Returns 0 or -errno. */
  int (*send)(void *sink, ra_ws_type type, const void *data, size_t len);
  /* Optional: one data frame of a fragmented message (opcode TEXT/BINARY
   * for the first, RA_WS_OP_CONT after). NULL: ra_ws gathers the pieces
   * and calls send. */
  int (*send_frame)(void *sink, unsigned opcode, bool fin, const void *data, size_t len);
  /* Optional (NULL: ra_ws_ping returns -ENOTSUP). */
  int (*ping)(void *sink, const void *data, size_t len);
  /* Start closing: code 0 means no code. The transport later calls
   * ra_ws_deliver_close. */
  int (*close)(void *sink, uint16_t code, ra_str reason);
  /* Drop now; ra_ws_deliver_close(ws, 1006, ...) later, from the loop. */
  void (*terminate)(void *sink);
  /* Optional: bytes held unsent (for back-pressure). */
  size_t (*buffered)(void *sink);
  /* Optional: a whole message in a buffer that is handed over (the
   * contract of ra_ws_send_owned: RA_WS_SEND_ROOM writable bytes before
   * data, free_cb(ud) exactly once, also on failure). NULL: ra_ws calls
   * send and then free_cb. */
  int (*send_owned)(void *sink, ra_ws_type type, uint8_t *data, size_t len,
                    void (*free_cb)(void *), void *ud);
  /* Optional: gather the frames sent until the end of the loop's turn
   * (ra_ws_cork). NULL: ra_ws_cork does nothing. */
  void (*cork)(void *sink);
  /* Optional: give back memory kept for reuse (ra_ws_trim). */
  void (*trim)(void *sink);
} ra_ws_sink_ops;

/* Creates a WebSocket handle that sends through ops/sink (ops must outlive
 * it). handlers is copied; opts may be NULL. Returns 0 and *out, or
 * -ENOMEM and *out NULL. */
RA_API int ra_ws_new_with_sink(ra_loop *loop, const ra_ws_sink_ops *ops, void *sink,
                        const ra_ws_handlers *h, void *ud, const ra_ws_opts *opts, ra_ws **out);
/* Describes the connection (copied): request path, negotiated protocol,
 * whether the carrier is attested. Call before ra_ws_deliver_open. */
RA_API int ra_ws_set_info(ra_ws *ws, ra_str path, ra_str protocol, bool attested);
/* Replaces the sink (e.g. a client whose connection got established). */
RA_API void ra_ws_set_sink(ra_ws *ws, const ra_ws_sink_ops *ops, void *sink);
RA_API void ra_ws_deliver_open(ra_ws *ws);
/* data valid during the call. Text that is not UTF-8 is not delivered:
 * the WebSocket is closed with 1007 instead. */
RA_API void ra_ws_deliver_message(ra_ws *ws, ra_ws_type type, const uint8_t *data, size_t len);
RA_API void ra_ws_deliver_pong(ra_ws *ws, const uint8_t *data, size_t len);
/* The sink's buffer fell to its low-water mark. */
RA_API void ra_ws_deliver_drain(ra_ws *ws);
/* The server carrying ws is shutting down gracefully: runs on_shutdown, or
 * by default closes with 1001. No-op once closing. */
RA_API void ra_ws_deliver_shutdown(ra_ws *ws);
/* The end, exactly once: runs on_close, then frees ws as soon as no ra_ws
 * callback is running (at once when called from outside them). */
RA_API void ra_ws_deliver_close(ra_ws *ws, uint16_t code, ra_str reason);

/* Rooms (ra_ws_room_*) are declared in ws/room.h, part of this API. */
#include "raloop/ws/room.h"

#endif
