/* apps/hello/ws_routes.h: ra-hello's WebSocket routes. */
#ifndef RA_HELLO_WS_ROUTES_H
#define RA_HELLO_WS_ROUTES_H

#include "raloop/http/router.h"
#include "raloop/http/server.h"
#include "raloop/ws/relay.h"

/* WS /relay's options (set before hello_ws_routes; zeros: the defaults). */
extern ra_relay_opts hello_relay_opts;

/* Adds WS /echo (every message back, same type) and WS /chat (every message
 * to every member of the room, sender included) and WS /relay (ws/relay.h). With srv (may be NULL),
 * a graceful shutdown of the server closes every WebSocket with 1001.
 * Returns 0 or -errno. The rooms are freed with the router. */
int hello_ws_routes(ra_router *r, ra_http_server *srv);

#endif
