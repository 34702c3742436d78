/* http/router.h: method + path pattern -> handler.
 *
 * Patterns: static segments ("/a/b"), parameters ("/users/:id"), and a
 * trailing wildcard (a last segment "*", as in "/static/" followed by "*":
 * the rest of the path, available as param "*"). Paths are matched after
 * percent-decoding, segment by segment; static segments win over
 * parameters, parameters over the wildcard, and the search backtracks to
 * the next candidate when a node has no route for the method. A parameter
 * never matches an empty segment. One parameter name per position
 * ("/u/:id" and "/u/:name/x" conflict: -EINVAL).
 * Unmatched path: 404. Path matched but not the method: 405 with Allow.
 * HEAD is answered by GET routes (the body is suppressed by ra_res);
 * OPTIONS is answered with 204 and Allow unless a route handles it, and
 * "OPTIONS *" with every method the router knows.
 * Targets the router refuses with 400 (fail closed): malformed
 * percent-escapes, an encoded '/' (%2F) or NUL (%00) in the path, and ".."
 * climbing above the root; "." and ".." segments are otherwise resolved
 * before matching (RFC 3986 remove_dot_segments).
 */
#ifndef RA_HTTP_ROUTER_H
#define RA_HTTP_ROUTER_H

#include "raloop/core/api.h"

#include <stdbool.h>

#include "raloop/http/request.h"
#include "raloop/http/response.h"

typedef struct ra_router ra_router;
typedef void (*ra_handler)(ra_req *req, ra_res *res, void *ud);

enum {
  /* 403 unless the request came through an attested tunnel. */
  RA_ROUTE_ATTESTED_ONLY = 1u << 0,
  /* A route made by ra_ws_route (its ud is the WebSocket layer's block,
   * which ra_ws_route_handlers reads). Only ws/ sets it: ra_route_ex
   * refuses it (-EINVAL), so the flag can be trusted in a match. */
  RA_ROUTE_WEBSOCKET = 1u << 1,
  /* 403 unless the request carries a verified client identity
   * (ra_req_client_identity: the client's own quote, checked by the tunnel
   * against its client policy, PROTOCOL.md §10). The answer is JSON
   * {"error": "client attestation required", "reason": ...}. Implies
   * RA_ROUTE_ATTESTED_ONLY (an identity only comes through the tunnel). */
  RA_ROUTE_CLIENT_ATTESTED = 1u << 2,
  /* The handler runs once the head has arrived and takes the body as it
   * arrives with ra_req_on_body (request.h), unbuffered and not bounded by
   * the server's max_body. */
  RA_ROUTE_STREAM_BODY = 1u << 3,
};

/* 0 and *out, or -ENOMEM and *out NULL. */
RA_API int ra_router_new(ra_router **out);
/* Frees the routes, then runs the ra_router_on_free callbacks (last
 * registered first). */
RA_API void ra_router_free(ra_router *r);
/* Registers fn(ud) to run when the router is freed: for state a layer above
 * allocated for its routes (e.g. a WebSocket route's handler block), so it
 * lives exactly as long as the routes pointing at it. */
RA_API int ra_router_on_free(ra_router *r, void (*fn)(void *ud), void *ud);

/* method: "GET", "POST", ... (an RFC 9110 token) or "*" for any. pattern is copied. Returns 0,
 * -EINVAL for a malformed pattern, -EEXIST for a duplicate method+pattern. */
RA_API int ra_route(ra_router *r, const char *method, const char *pattern,
             ra_handler handler, void *ud);
RA_API int ra_route_ex(ra_router *r, const char *method, const char *pattern,
                ra_handler handler, void *ud, unsigned flags);

/* Removes the route method + pattern (both exactly as registered).
 * Cleanups registered with ra_router_on_free for its user data run now if
 * no other route has that user data (so a WebSocket route's handler block
 * goes with its route). Returns 0, -ENOENT (no such route), -EINVAL. */
RA_API int ra_router_remove(ra_router *r, const char *method, const char *pattern);

/* A lookup without dispatch (used by transports, e.g. the tunnel resolving
 * a WebSocket route). Fills params into req when req is not NULL. */
typedef struct ra_route_match {
  ra_handler handler;
  void *ud;
  unsigned flags;
} ra_route_match;
/* Returns 0 and fills *m; -ENOENT when no path matched; -EPERM when the
 * path matched but not the method. */
RA_API int ra_router_match(ra_router *r, ra_str method, ra_str path, ra_req *req,
                    ra_route_match *m);

/* Dispatches: match, then 404 / 405+Allow / 403 (attested-only) / OPTIONS /
 * HEAD-via-GET or the handler. Always ends up with res owned by the handler
 * or ended. */
RA_API void ra_router_handle(ra_router *r, ra_req *req, ra_res *res);

#endif
