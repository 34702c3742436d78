/* http/server.h: HTTP/1.1 over core streams, dispatching to a router.
 *
 * Per connection: llhttp parses whatever the split of the bytes; keep-alive
 * (HTTP/1.1 by default, HTTP/1.0 with "Connection: keep-alive");
 * pipelining with answers strictly in request order (a later answer that is
 * ready early is held until the ones before it ended; at most
 * max_pipelined requests are read ahead); chunked request bodies (trailers
 * are read and dropped); "Expect: 100-continue" answered once the head
 * is read (sent when the request reaches the head of the queue); answers
 * carry Date and Server, and
 * Content-Length, or chunked encoding for streamed bodies (HTTP/1.0: the
 * connection closes instead). Bad input gets its status with
 * "Connection: close", then the connection closes (lingering).
 * An idle connection holds no buffer: request/response objects come from a
 * per-server pool, input is parsed from the loop's shared read buffer.
 *
 * Streamed request bodies (RA_ROUTE_STREAM_BODY, request.h): a request with
 * a body (Content-Length > 0 or chunked) to such a route is dispatched as
 * soon as its head is read (the only requests that pay a route lookup
 * before dispatch); each piece llhttp reads goes to the handler's
 * ra_req_on_body callback, in the bytes it was read into. While the handler
 * takes nothing (no callback yet, or paused) parsing stops and the socket
 * is not read: what was read already is held (at most one read's worth),
 * nothing is lost and memory stays bounded. "Expect: 100-continue" is
 * answered when the handler first wants the body; a handler that answers
 * without wanting it sends no 100 and its answer says "Connection: close".
 * max_body does not apply; body_timeout_ms does while the handler wants
 * bytes (not while it paused: the server's choice), body_deadline_ms does
 * not (a large upload over a slow link is not cut). A body that cannot
 * complete (the client left, the idle timeout, malformed chunked framing,
 * the server's shutdown) cancels the handler's response (on_cancel, no more
 * body calls) and the connection closes. A handler that ends its response
 * before the body's end: the rest is read and dropped when it is at most
 * 1 MiB (a Content-Length known to be larger, or a chunked body past 1 MiB,
 * closes the connection after the answer), and keep-alive goes on.
 *
 * Strictness (RFC 9112), each choice on purpose:
 *  - Host: an HTTP/1.1 request without one, or any request with two, is 400
 *    (3.2). Its value is not checked (the router does not use it).
 *  - Request line: exactly one SP between method, target and version (3
 *    also allows parsing on whitespace: we do not); 400.
 *  - obs-fold (a field line starting with SP/HTAB) is 400 in every header
 *    (5.2 allows refusing it; in Transfer-Encoding or Content-Length it could
 *    make a proxy and us frame a message differently).
 *  - Transfer-Encoding in an HTTP/1.0 request is faulty framing (6.1): 400.
 *    Codings other than chunked: 501. Content-Length with
 *    Transfer-Encoding: 400 (llhttp, 6.3).
 *  - Chunk extensions (7.1.1) are checked against the grammar (BWS, tokens,
 *    quoted-strings with quoted-pairs) and dropped; at most 4 KiB of them
 *    per chunk line; a malformed one is 400. Trailers are read and dropped.
 *  - Timeouts: the header section must complete within header_timeout_ms of
 *    its first byte; a body must not pause longer than body_timeout_ms and
 *    must complete within body_deadline_ms of its head (both 408); a
 *    response whose bytes the client does not take for write_timeout_ms is
 *    dropped (no status: the client is not reading).
 */
#ifndef RA_HTTP_SERVER_H
#define RA_HTTP_SERVER_H

#include "raloop/core/api.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "raloop/core/listen.h"
#include "raloop/core/loop.h"
#include "raloop/http/router.h"

typedef struct ra_http_server ra_http_server;

/* Each limit: 0 means the default in brackets. Past a limit, the connection
 * gets the status named, then is closed. */
typedef struct ra_http_limits {
  size_t max_request_line;     /* [8 KiB]   414 */
  size_t max_header_bytes;     /* [16 KiB]  431 (whole header section) */
  size_t max_headers;          /* [100]     431 */
  size_t max_body;             /* [8 MiB]   413 (buffered bodies; streamed
                                *           ones are the handler's to bound) */
  uint64_t header_timeout_ms;  /* [10 s]    408 (slowloris) */
  uint64_t body_timeout_ms;    /* [30 s]    408 between body bytes (a
                                *           streamed body: while its handler
                                *           wants bytes; its response is
                                *           cancelled) */
  uint64_t body_deadline_ms;   /* [120 s]   408 whole body, from the end of
                                *           the head, whatever its pace (a
                                *           trickle of bytes): raise it for
                                *           large uploads over slow links, or
                                *           stream them: it does not apply to
                                *           RA_ROUTE_STREAM_BODY routes */
  uint64_t write_timeout_ms;   /* [60 s]    a response's queued bytes make
                                *           no progress (the client does not
                                *           read): the connection is dropped
                                *           (ra_stream_set_write_timeout) */
  uint64_t keepalive_timeout_ms; /* [60 s] idle keep-alive, silent close */
  size_t max_pipelined;        /* [32] requests read ahead of responses */
  size_t max_connections;      /* [100000] accept pauses past it; upgraded
                                  connections (WebSockets) count until they
                                  close */
} ra_http_limits;

/* Called when a response has been fully handed to the transport (also for
 * the server's own error answers, 400/408/413/414/431/501/505, where req
 * holds whatever part of the request had arrived: the method may be empty).
 * req is valid during the call. duration_us runs from the first byte of the
 * request. */
typedef void (*ra_access_log_cb)(const ra_req *req, int status,
                                 uint64_t duration_us, void *ud);

typedef struct ra_http_server_opts {
  ra_http_limits limits;
  const char *server_name;     /* Server header [raloop] */
  ra_access_log_cb access_log;
  void *access_log_ud;
  /* Every connection starts with a PROXY protocol header (v2 or v1:
   * ra-proxy --proxy-protocol, HAProxy send-proxy-v2, nginx proxy_protocol),
   * read before anything else (before TLS) within header_timeout_ms; the
   * client it names is the connection's peer (ra_req_peer). Without a valid
   * header the connection is closed. Only behind such a proxy: a client
   * connecting directly could claim any address (core/proxy_proto.h). */
  bool proxy_protocol;
} ra_http_server_opts;

/* router must outlive the server. opts may be NULL (defaults). Returns 0
 * and *out, or -EINVAL (no loop or router), -ENOMEM and *out NULL. */
RA_API int ra_http_server_new(ra_loop *loop, ra_router *router, const ra_http_server_opts *opts,
                       ra_http_server **out);
/* Adds a listener; addr as in ra_listen(). May be called several times. */
RA_API int ra_http_server_listen(ra_http_server *srv, const char *addr,
                          const ra_listen_opts *opts);
/* A TLS listener (core/tls.h): every connection it accepts runs TLS under
 * the same HTTP/1.1 and WebSocket code. tls must be a server context; the
 * listener takes its own reference. Plain and TLS listeners can be mixed. */
typedef struct ra_tls_ctx ra_tls_ctx;
RA_API int ra_http_server_listen_tls(ra_http_server *srv, const char *addr,
                                     const ra_listen_opts *opts, ra_tls_ctx *tls);
/* Swaps the context of every TLS listener (certificate reload on SIGHUP):
 * new connections use tls, open ones keep the context they started with.
 * Returns how many listeners were switched (0 if tls is not a server one). */
RA_API size_t ra_http_server_set_tls(ra_http_server *srv, ra_tls_ctx *tls);
/* Port of the first TLS listener, 0 if none. */
RA_API uint16_t ra_http_server_tls_port(const ra_http_server *srv);
/* Port of the first TCP listener (useful with port 0). */
RA_API uint16_t ra_http_server_port(const ra_http_server *srv);
/* For metrics (serve/metrics.h). connections: HTTP connections now;
 * upgraded: connections handed over (WebSockets, tunnel control channels)
 * still open; bytes_in/bytes_out: HTTP bytes (plaintext side of TLS, up to
 * an upgrade) read and written by every server on this thread so far. */
typedef struct ra_http_stats {
  uint64_t connections, upgraded, bytes_in, bytes_out;
} ra_http_stats;
RA_API void ra_http_server_stats(const ra_http_server *srv, ra_http_stats *st);
RA_API ra_loop *ra_http_server_loop(const ra_http_server *srv);
RA_API ra_router *ra_http_server_router(const ra_http_server *srv);

/* Stops accepting: closes the listeners now; connections go on. A worker
 * handing over (serve/workers.h) calls it a moment before its graceful
 * shutdown, so that connections it has just accepted deliver their request
 * (the shutdown closes idle ones) while the socket, shared with its
 * replacement, keeps its queue. */
RA_API void ra_http_server_close_listeners(ra_http_server *srv);
/* Graceful stop: closes the listeners, closes idle keep-alive connections,
 * lets in-flight responses finish (Connection: close), tells upgraded
 * connections to stop (ra_conn_slot_watch: WebSockets close with 1001),
 * also those whose hand-over comes after this call, and after deadline_ms
 * aborts what is left. done is called once no connection is left,
 * upgraded ones included. */
typedef void (*ra_http_shutdown_cb)(ra_http_server *srv, void *ud);
RA_API void ra_http_server_shutdown(ra_http_server *srv, uint64_t deadline_ms,
                             ra_http_shutdown_cb done, void *ud);
/* Hooks run at the start of a shutdown (e.g. the WebSocket layer closing
 * upgraded connections with 1001). */
typedef void (*ra_http_shutdown_hook)(ra_http_server *srv, void *ud);
RA_API int ra_http_server_on_shutdown(ra_http_server *srv, ra_http_shutdown_hook hook, void *ud);

/* Aborts every connection and frees the server. */
RA_API void ra_http_server_free(ra_http_server *srv);

/* Formats the current time as an IMF-fixdate. Cached per second in a
 * thread-local buffer (valid until the next call on this thread). */
RA_API const char *ra_http_date(ra_loop *loop);
RA_API const char *ra_http_status_text(int status);

#endif
