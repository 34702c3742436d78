/* http/proxy.h: a reverse proxy as a route handler.
 *
 *   ra_proxy_opts o = {.upstream = "http://127.0.0.1:8080"};
 *   ra_proxy *px;
 *   ra_proxy_new(loop, &o, &px);
 *   ra_proxy_route(router, "/", px, RA_PROXY_PASS);
 *   ra_proxy_route(router, "/admin", px, RA_PROXY_ATTESTED_ONLY);
 *
 * Forwards what the router hands it (in plaintext or through the attested
 * tunnel) to one HTTP/1.1 upstream, "http://HOST:PORT" or "unix:PATH",
 * over a bounded pool of keep-alive connections on the loop:
 * - the request body is forwarded as the transport buffered it; the
 *   response body is streamed back with back-pressure (the upstream is not
 *   read while the client is slow);
 * - hop-by-hop headers (RFC 9110 7.6.1: Connection and the headers it
 *   names, Keep-Alive, TE, Trailer, Transfer-Encoding, Upgrade, Proxy-*)
 *   are removed both ways; X-Forwarded-For, X-Forwarded-Proto and Forwarded
 *   are added; the attested header (X-Attested) is always removed from what
 *   the client sent and set to "1" only when ra_req_attested(req);
 * - upstream failures are answered with a text body: 502 (refused, reset,
 *   bad response), 504 (connect, first-byte timeouts), 503 (pool and queue
 *   full); a timeout while the body streams cuts the response short;
 * - a request is retried once, on a new connection, only when it is
 *   idempotent (GET, HEAD, OPTIONS, PUT, DELETE, TRACE) and the pooled
 *   keep-alive connection it was sent on closed before any byte of answer.
 * Targets with "." or ".." segments are refused (400), so the upstream sees
 * the path the policy was decided on.
 */
#ifndef RA_HTTP_PROXY_H
#define RA_HTTP_PROXY_H

#include "raloop/core/api.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "raloop/core/loop.h"
#include "raloop/core/str.h"
#include "raloop/http/router.h"

typedef struct ra_proxy ra_proxy;

typedef struct ra_proxy_opts {
  const char *upstream;           /* "http://HOST:PORT" or "unix:PATH" (copied) */
  size_t max_conns;               /* open upstream connections [64] */
  size_t max_idle;                /* of which kept idle [max_conns] */
  size_t max_queue;               /* requests waiting for a connection [4096]; then 503 */
  uint64_t connect_timeout_ms;    /* [5000] then 504 */
  uint64_t first_byte_timeout_ms; /* request sent -> response head [60000] then 504 */
  uint64_t idle_timeout_ms;       /* between response bytes [60000] */
  uint64_t keepalive_ms;          /* an idle pooled connection is closed after [30000] */
  const char *attested_header;    /* [X-Attested] (copied) */
  const char *proto;              /* X-Forwarded-Proto / Forwarded proto= ["http"] */
} ra_proxy_opts;

/* 0 and *out, or -EINVAL (no or malformed upstream), -ENOMEM. opts copied. */
RA_API int ra_proxy_new(ra_loop *loop, const ra_proxy_opts *opts, ra_proxy **out);
/* Closes the upstream connections; requests in flight are answered 502
 * (WebSocket relays already open go on by themselves). Free it once no
 * server dispatches to it any more (the loop stopped, or its routes
 * removed) and before ra_loop_free: its connections close on the loop.
 * NULL: no-op. */
RA_API void ra_proxy_free(ra_proxy *px);

/* The route handler (ud: the ra_proxy). */
RA_API void ra_proxy_handle(ra_req *req, ra_res *res, void *px);

/* For transports that open WebSockets themselves (the tunnel's ws_connect):
 * when m is a match of ra_proxy_handle, replaces it with the proxy's
 * WebSocket route for path (a relay to the upstream, see ra_ws_route) and
 * returns true; else false and m is unchanged. */
RA_API bool ra_proxy_ws_match(ra_route_match *m, ra_str path, ra_req *req);

/* Per-path policy for ra_proxy_route. */
typedef enum ra_proxy_policy {
  RA_PROXY_PASS = 0,          /* forwarded, plaintext or tunnelled */
  RA_PROXY_ATTESTED_ONLY = 1, /* forwarded only through the tunnel; 403 in plaintext */
  RA_PROXY_REFUSE = 2,        /* 404, never forwarded */
} ra_proxy_policy;

/* Mounts px on the path prefix (every method): "/api" covers "/api" and
 * "/api/..." (not "/apix"); "/" covers everything. Prefixes are matched
 * segment-wise by the router, the longest prefix wins. px may be NULL for
 * RA_PROXY_REFUSE. Returns 0, -EINVAL (prefix not starting with '/', or
 * holding '*', ':' segments), -EEXIST, -ENOMEM. */
RA_API int ra_proxy_route(ra_router *r, const char *prefix, ra_proxy *px, ra_proxy_policy policy);

/* Hop-by-hop test (RFC 9110 7.6.1): true for Connection, Keep-Alive, TE,
 * Trailer, Transfer-Encoding, Upgrade, Proxy-* and any name listed in
 * `connection` (the Connection header values joined by ',', may be empty). */
RA_API bool ra_proxy_hop_by_hop(ra_str name, ra_str connection);

#endif
