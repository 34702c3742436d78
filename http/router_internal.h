/* http/router_internal.h: for the layers above http/ (not installed). */
#ifndef RA_HTTP_ROUTER_INTERNAL_H
#define RA_HTTP_ROUTER_INTERNAL_H

#include "raloop/http/router.h"

/* ra_route_ex, with the flags reserved to raloop's own layers allowed
 * (RA_ROUTE_WEBSOCKET, set by ra_ws_route_ex). */
int ra_router__add(ra_router *r, const char *method, const char *pattern, ra_handler handler,
                   void *ud, unsigned flags);

#endif
