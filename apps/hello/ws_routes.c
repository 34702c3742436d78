/* apps/hello/ws_routes.c: WS /echo, WS /chat and WS /relay (ws/relay.h). */
#include "apps/hello/ws_routes.h"

#include <errno.h>
#include <stdlib.h>

#include "raloop/core/log.h"
#include "raloop/ws/relay.h"
#include "raloop/ws/ws.h"

ra_relay_opts hello_relay_opts;

/* Limits sized for an example. /echo takes the 16 MiB message of the
 * integration test; it answers only its own client, so one that does not
 * read can hold at most a couple of messages (send_limit) before it is
 * closed with 1013.
 * /chat is a room: every message is queued to every member (one shared
 * frame, not a copy each), so a member that does not read is closed with
 * 1013 once 4 MiB waits for it, and messages stay small (1 MiB; larger:
 * 1009). Both ping every 30 s and drop a peer silent for 60 s (the
 * defaults). */
static const ra_ws_opts echo_opts = {
    .max_message = (uint64_t)16 << 20,
    .send_limit = (size_t)32 << 20,
};
static const ra_ws_opts chat_opts = {
    .max_message = (uint64_t)1 << 20,
    .send_limit = (size_t)4 << 20,
};

typedef struct hello_ws {
  ra_ws_room *all;  /* every open WebSocket, to close them on shutdown */
  ra_ws_room *chat;
  ra_relay *relay; /* WS /relay: its own limits (docs/RELAY.md) */
} hello_ws;

static void echo_open(ra_ws *ws, void *ud) {
  hello_ws *hw = ud;
  ra_ws_room_join(hw->all, ws);
}

static void echo_message(ra_ws *ws, ra_ws_type type, const uint8_t *data, size_t len, void *ud) {
  int rc = ra_ws_send(ws, type, data, len);
  if (rc < 0 && rc != -EPIPE) ra_warn("ws /echo: send failed: %d", rc);
}

static const ra_ws_handlers echo_handlers = {.on_open = echo_open, .on_message = echo_message};

static void chat_open(ra_ws *ws, void *ud) {
  hello_ws *hw = ud;
  ra_ws_room_join(hw->all, ws);
  if (ra_ws_room_join(hw->chat, ws) < 0) ra_ws_close(ws, RA_WS_CLOSE_INTERNAL, "cannot join");
}

static void chat_message(ra_ws *ws, ra_ws_type type, const uint8_t *data, size_t len, void *ud) {
  hello_ws *hw = ud;
  ra_ws_room_broadcast(hw->chat, type, data, len, NULL);
}

static const ra_ws_handlers chat_handlers = {.on_open = chat_open, .on_message = chat_message};

static void hello_ws_free(void *p) {
  hello_ws *hw = p;
  ra_ws_room_free(hw->all);
  ra_ws_room_free(hw->chat);
  ra_relay_free(hw->relay);
  free(hw);
}

/* Plain WebSockets are closed with 1001 by the library when the server
 * shuts down (also one whose upgrade completes after it started); this
 * covers the tunnelled ones too. */
static void on_shutdown(ra_http_server *srv, void *ud) {
  hello_ws *hw = ud;
  ra_ws_room_close_all(hw->all, RA_WS_CLOSE_GOING_AWAY, "server shutting down");
  ra_relay_close_all(hw->relay, RA_WS_CLOSE_GOING_AWAY, "server shutting down");
}

int hello_ws_routes(ra_router *r, ra_http_server *srv) {
  hello_ws *hw = calloc(1, sizeof *hw);
  if (!hw) return -ENOMEM;
  ra_ws_room_new(&hw->all);
  ra_ws_room_new(&hw->chat);
  ra_relay_new(&hello_relay_opts, &hw->relay);
  int rc = -ENOMEM;
  if (!hw->all || !hw->chat || !hw->relay || (rc = ra_router_on_free(r, hello_ws_free, hw)) < 0) {
    hello_ws_free(hw);
    return rc;
  }
  /* from here on the router owns hw */
  if ((rc = ra_ws_route_ex(r, "/echo", &echo_handlers, hw, &echo_opts, 0)) < 0) return rc;
  if ((rc = ra_ws_route_ex(r, "/chat", &chat_handlers, hw, &chat_opts, 0)) < 0) return rc;
  if ((rc = ra_relay_route(r, "/relay", hw->relay)) < 0) return rc;
  if (srv && (rc = ra_http_server_on_shutdown(srv, on_shutdown, hw)) < 0) return rc;
  return 0;
}
