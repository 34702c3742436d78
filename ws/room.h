/* ws/room.h: rooms, sets of WebSockets to broadcast to (a chat room, the
 * subscribers of a topic). A member is any ra_ws, whatever carries it.
 * Included by ws/ws.h. */
#ifndef RA_WS_ROOM_H
#define RA_WS_ROOM_H

#include "raloop/core/api.h"

#include <stddef.h>
#include <stdint.h>

#include "raloop/ws/ws.h"

typedef struct ra_ws_room ra_ws_room;

/* 0 and *out, or -ENOMEM and *out NULL. */
RA_API int ra_ws_room_new(ra_ws_room **out);
/* Members leave (they are not closed). */
RA_API void ra_ws_room_free(ra_ws_room *room);
/* A ws leaves every room by itself when it closes (before its on_close).
 * join: 0, -EEXIST if already a member, -EPIPE if ws is closing, -ENOMEM. */
RA_API int ra_ws_room_join(ra_ws_room *room, ra_ws *ws);
RA_API void ra_ws_room_leave(ra_ws_room *room, ra_ws *ws);
RA_API size_t ra_ws_room_size(const ra_ws_room *room);
/* Sends the message to every open member except `except` (may be NULL).
 * The frame is encoded once and members on a stream queue a reference to
 * it (one copy in memory whatever the number of members that have not read
 * it yet); members on other transports (the tunnel) get a copy through
 * their sink. A member that let more than its send_limit pile up is closed
 * with 1013 instead (ra_ws_send). Returns how many members it was sent
 * to. */
RA_API size_t ra_ws_room_broadcast(ra_ws_room *room, ra_ws_type type, const void *data, size_t len,
                            const ra_ws *except);
/* Starts the closing handshake (ra_ws_close) with every open member, e.g.
 * 1001 when the server shuts down. Members stay until their on_close. */
RA_API void ra_ws_room_close_all(ra_ws_room *room, uint16_t code, const char *reason);

#endif
