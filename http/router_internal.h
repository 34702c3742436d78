/* http/router_internal.h: for the layers above http/ (not installed). */
#ifndef RA_HTTP_ROUTER_INTERNAL_H
#define RA_HTTP_ROUTER_INTERNAL_H

#include <stdint.h>

#include "raloop/http/router.h"

/* ra_route_ex, with the flags reserved to raloop's own layers allowed
 * (RA_ROUTE_WEBSOCKET, set by ra_ws_route_ex). */
int ra_router__add(ra_router *r, const char *method, const char *pattern, ra_handler handler,
                   void *ud, unsigned flags);

/* A request's route, looked up once and dispatched later: http/conn.c
 * needs it at the end of a head with a body (streamed or not, the body
 * limit), and dispatches when the request is whole. */
typedef struct ra_route_lookup {
  int rc;           /* ra_router_match's */
  ra_route_match m; /* when rc is 0 */
  uint64_t gen;     /* the router's routes then */
} ra_route_lookup;
/* ra_router_match for the request's method and path, its params set. */
void ra_router__lookup(ra_router *r, ra_req *req, ra_route_lookup *out);
/* ra_router_handle with the route l found (NULL: looked up now, as is a
 * route looked up before the router last changed). */
void ra_router__dispatch(ra_router *r, ra_req *req, ra_res *res, const ra_route_lookup *l);

#endif
