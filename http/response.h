/* http/response.h: a transport-neutral HTTP response (ra_res) and the sink
 * interface a transport implements to carry it.
 *
 * Lifetime: a handler must end every response exactly once, now or later
 * (ra_res_send, ra_res_send_text, or ra_res_end after writes); the ra_res and
 * its ra_req are freed then, and the pointers become invalid. If the
 * transport goes away first (client disconnected, tunnel dropped), the
 * response is *cancelled*: the on_cancel callback runs, every later write is
 * a no-op returning -ECANCELED, and the eventual end still frees it. So a
 * late answer from a timer is always safe.
 *
 * Yielding (a handler cannot monopolise the loop): a response accepts at most
 * RA_RES_TURN_BUDGET body bytes per loop turn before it asks the producer to
 * wait: from then until the next turn ra_res_pending() reports at least
 * RA_RES_PENDING_YIELD (more than any window), and on_drain is called on a
 * later turn even if the transport has nothing queued (a sink that discards,
 * or a kernel that takes everything). A producer that ignores ra_res_pending
 * gets -EAGAIN from ra_res_write once RA_RES_TURN_MAX bytes were written in
 * the turn (nothing of that call is sent; write it again from on_drain). One
 * write is never refused for its size alone: the budget is checked before it.
 *
 * HEAD: the answer is complete once its head is sent (the first write, or
 * the end). The transport is done with it then (a pipelined request behind
 * it is answered without waiting), and the response behaves as cancelled:
 * ra_res_cancelled() is true, ra_res_pending() reports RA_RES_PENDING_YIELD,
 * later writes return -ECANCELED at once, and on_cancel (if set) runs from
 * the loop, never inside a write, so a streaming producer stops. The handler
 * still ends it (ra_res_end returns 0); ra_res_send on HEAD returns 0.
 */
#ifndef RA_HTTP_RESPONSE_H
#define RA_HTTP_RESPONSE_H

#include "raloop/core/api.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "raloop/core/loop.h"
#include "raloop/core/stream.h"
#include "raloop/http/request.h"

typedef struct ra_res ra_res;

/* Complete response. content_type may be NULL (no Content-Type header). */
RA_API int ra_res_send(ra_res *res, int status, const char *content_type, const void *body, size_t len);
/* Complete response with text/plain; charset=utf-8. */
RA_API int ra_res_send_text(ra_res *res, int status, const char *text);
/* ra_res_send_text with printf-style text (formatted on the stack when
 * short, else in a buffer freed before return). The response is always
 * ended: if the text cannot be made (-ENOMEM, -EINVAL for a bad format),
 * with a bodiless 500 instead, and that code is returned. */
RA_API int ra_res_sendf(ra_res *res, int status, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* Building a streamed response: set status and headers, then write chunks
 * and end. Without ra_res_set_content_length, an HTTP/1.1 transport uses
 * chunked encoding. ra_res_write: the first call sends the head. Returns 0,
 * -ECANCELED (cancelled, or a HEAD answer that is complete: stop producing),
 * -EAGAIN (RA_RES_TURN_MAX written in this turn: nothing was taken; wait for
 * on_drain), -EMSGSIZE (past the Content-Length), -EALREADY (ended), or the
 * transport's error. */
#define RA_RES_TURN_BUDGET ((size_t)64 * 1024)
#define RA_RES_TURN_MAX ((size_t)8 * 1024 * 1024)
#define RA_RES_PENDING_YIELD (SIZE_MAX / 2)
RA_API int ra_res_set_status(ra_res *res, int status);
/* Copies name and value. Several headers with one name are allowed. */
RA_API int ra_res_add_header(ra_res *res, const char *name, const char *value);
RA_API int ra_res_add_header_n(ra_res *res, ra_str name, ra_str value);
RA_API int ra_res_set_content_length(ra_res *res, uint64_t len);
RA_API int ra_res_write(ra_res *res, const void *data, size_t len);
RA_API int ra_res_end(ra_res *res);
/* Ends a response whose body is incomplete (a proxy's upstream failed
 * mid-body): like ra_res_end, but an HTTP/1.1 transport closes the
 * connection instead of completing the framing (no last chunk), so the
 * client sees the answer cut short rather than a shorter one. The tunnel
 * answers 502 in place of a whole answer, and cancels a streamed one
 * (http_cancel: the client sees it fail, PROTOCOL.md §11), never passing a
 * shorter body off as complete. Same returns as ra_res_end. */
RA_API int ra_res_abort(ra_res *res);

/* The request this response answers (valid as long as res). */
RA_API ra_req *ra_res_req(const ra_res *res);
RA_API ra_loop *ra_res_loop(const ra_res *res);
RA_API bool ra_res_cancelled(const ra_res *res);
/* Called once if the transport goes away before the response ends, or
 * (HEAD) from the loop after the head was sent, if the handler has not
 * ended the response by then. It should stop producing and end it. */
typedef void (*ra_res_cancel_cb)(ra_res *res, void *ud);
RA_API void ra_res_on_cancel(ra_res *res, ra_res_cancel_cb cb, void *ud);
/* For streaming handlers: bytes the transport holds unsent (0 if unknown),
 * or at least RA_RES_PENDING_YIELD while the turn's budget is spent (see
 * "Yielding" above) and once the response is cancelled or, for HEAD,
 * complete. So `while (more && ra_res_pending(res) < WINDOW) write` always
 * stops within one turn. */
RA_API size_t ra_res_pending(const ra_res *res);
/* For streaming handlers: cb runs whenever bytes held unsent fell low again
 * (the peer is reading), and on a later turn after the turn's budget was
 * spent: write while ra_res_pending() is small, then wait for this instead
 * of buffering without bound. It may run when nothing drained: check
 * ra_res_pending() again. NULL clears it. Never inside a write; not called
 * after the response ended or was cancelled. */
typedef void (*ra_res_drain_cb)(ra_res *res, void *ud);
RA_API void ra_res_on_drain(ra_res *res, ra_res_drain_cb cb, void *ud);

/* Protocol upgrade (WebSocket): sends "101 Switching Protocols" with the
 * headers added to res and hands the raw stream to cb, with the bytes the
 * connection had already read past the request (valid during the call). The
 * response is ended. Returns -ENOTSUP on transports without a raw stream.
 * On 0, cb is called exactly once, and never inside this call:
 * with the stream, which it then owns (set its callbacks, close it), or with
 * s == NULL (rest NULL, rest_len 0) when the connection went away before the
 * hand-over (peer reset, server freed or shut down): cb must then only
 * release what ud holds. On an error return cb is never called. */
typedef struct ra_conn_slot ra_conn_slot;
typedef void (*ra_upgrade_cb)(ra_stream *s, const uint8_t *rest, size_t rest_len,
                              ra_conn_slot *slot, void *ud);
RA_API int ra_res_upgrade(ra_res *res, ra_upgrade_cb cb, void *ud);

/* The upgraded connection's place on the server that accepted it (NULL on
 * transports without one, and with s == NULL). Until released it counts
 * toward the server's max_connections, and a graceful shutdown of the server
 * waits for it and tells it to stop. The new owner of the stream must call
 * ra_conn_slot_release exactly once, when the connection is over (its
 * stream closed); the slot may outlive the server (then release only frees
 * it). */
/* on_stop(ud, now): now false: the server started a graceful shutdown (close
 * soon, e.g. WebSocket 1001); now true: its deadline passed or it is being
 * freed (drop the connection at once). Called from the loop, never from
 * inside a call into the slot, except that watching a slot whose server is
 * already shutting down calls on_stop(ud, false) at once. NULL stops
 * watching. */
typedef void (*ra_conn_slot_stop_cb)(void *ud, bool now);
RA_API void ra_conn_slot_watch(ra_conn_slot *slot, ra_conn_slot_stop_cb on_stop, void *ud);
/* NULL is a no-op. */
RA_API void ra_conn_slot_release(ra_conn_slot *slot);

/* ---- for transports ----------------------------------------------------- */

typedef struct ra_res_sink_ops {
  /* Status and headers, once, before any body. content_length is -1 when
   * the length is unknown (streamed). `headers` is valid during the call. */
  int (*head)(void *sink, int status, const ra_header *headers, size_t n,
              int64_t content_length);
  /* A piece of the body; data valid during the call. */
  int (*body)(void *sink, const void *data, size_t len);
  /* The response is complete. The ra_res and ra_req are freed right after. */
  int (*end)(void *sink);
  /* Optional (NULL: -ENOTSUP). */
  int (*upgrade)(void *sink, int status, const ra_header *headers, size_t n,
                 ra_upgrade_cb cb, void *ud);
  /* Optional: bytes held unsent. */
  size_t (*pending)(void *sink);
  /* Optional: ra_res_abort instead of end (the body is incomplete), for a
   * transport that can say so otherwise than by closing (the tunnel).
   * NULL: end is called and the transport reads the abort off the
   * response. Same contract as end. */
  int (*abort)(void *sink);
} ra_res_sink_ops;

/* Takes ownership of req on success (freed with the response): 0 and *out;
 * on -ENOMEM *out is NULL and req stays the caller's. ops must outlive the
 * response. */
RA_API int ra_res_new(ra_loop *loop, ra_req *req, const ra_res_sink_ops *ops, void *sink, ra_res **out);
/* The transport is gone: runs on_cancel, detaches the sink (never called
 * again). Frees the response now if it had already ended. */
RA_API void ra_res_cancel(ra_res *res);
/* The transport's unsent bytes fell low: runs the on_drain callback. */
RA_API void ra_res_drained(ra_res *res);

#endif
