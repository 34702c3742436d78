/* ws/room.c: rooms. Membership is kept on both sides (the room's members,
 * each ws's rooms) so that a closing ws leaves all its rooms by itself and
 * a freed room detaches from its members: neither may outlive the other. */
#include "raloop/ws/room.h"

#include <errno.h>
#include <stdlib.h>

#include "raloop/ws/utf8.h"
#include "raloop/ws/ws_internal.h"

/* Broadcasts from this size share one encoded frame between members. */
#define SHARE_MIN 1024

struct ra_ws_room {
  ra_ws **m;
  size_t n, cap;
};

static void room_remove(ra_ws_room *room, ra_ws *ws) {
  for (size_t i = 0; i < room->n; i++)
    if (room->m[i] == ws) {
      room->m[i] = room->m[--room->n];
      return;
    }
}

/* Drops room from ws's rooms; false when ws was not in it. */
static bool ws_drop_room(ra_ws *ws, const ra_ws_room *room) {
  for (size_t j = 0; j < ws->nrooms; j++)
    if (ws->rooms[j] == room) {
      ws->rooms[j] = ws->rooms[--ws->nrooms];
      return true;
    }
  return false;
}

void ra_ws__leave_rooms(ra_ws *ws) {
  for (size_t i = 0; i < ws->nrooms; i++) room_remove(ws->rooms[i], ws);
  ws->nrooms = 0;
}

int ra_ws_room_new(ra_ws_room **out) {
  *out = calloc(1, sizeof(ra_ws_room));
  return *out ? 0 : -ENOMEM;
}

void ra_ws_room_free(ra_ws_room *room) {
  if (!room) return;
  for (size_t i = 0; i < room->n; i++) ws_drop_room(room->m[i], room);
  free(room->m);
  free(room);
}

int ra_ws_room_join(ra_ws_room *room, ra_ws *ws) {
  if (ws->closed || ws->closing) return -EPIPE;
  for (size_t j = 0; j < ws->nrooms; j++)
    if (ws->rooms[j] == room) return -EEXIST;
  if (room->n == room->cap) {
    size_t cap = room->cap ? room->cap * 2 : 8;
    ra_ws **m = realloc(room->m, cap * sizeof *m);
    if (!m) return -ENOMEM;
    room->m = m;
    room->cap = cap;
  }
  if (ws->nrooms == ws->caprooms) {
    size_t cap = ws->caprooms ? ws->caprooms * 2 : 2;
    ra_ws_room **r = realloc(ws->rooms, cap * sizeof *r);
    if (!r) return -ENOMEM;
    ws->rooms = r;
    ws->caprooms = cap;
  }
  room->m[room->n++] = ws;
  ws->rooms[ws->nrooms++] = room;
  return 0;
}

void ra_ws_room_leave(ra_ws_room *room, ra_ws *ws) {
  if (ws_drop_room(ws, room)) room_remove(room, ws);
}

size_t ra_ws_room_size(const ra_ws_room *room) { return room->n; }

size_t ra_ws_room_broadcast(ra_ws_room *room, ra_ws_type type, const void *data, size_t len,
                            const ra_ws *except) {
  if (type != RA_WS_TEXT && type != RA_WS_BINARY) return 0;
  if (type == RA_WS_TEXT && !ra_utf8_valid(data, len)) return 0; /* checked once */
  size_t sent = 0;
  /* The frame is encoded once (server frames are not masked: the bytes are
   * the same for every member) and members on a stream queue a reference
   * to it: a large message to members that do not read costs its size
   * once, not once per member. Small ones are copied per member (no
   * allocation: the kernel usually takes them whole). */
  ra_ws__frame *f = len >= SHARE_MIN ? ra_ws__frame_new(type, data, len) : NULL;
  /* Backwards: a member that leaves during its own send (dropped) swaps in
   * one we have already visited. */
  for (size_t i = room->n; i-- > 0;) {
    if (i >= room->n) continue;
    ra_ws *ws = room->m[i];
    if (ws == except || !ra_ws_is_open(ws) || ws->frag_op) continue;
    int rc = f ? ra_ws__send_shared(ws, type, data, len, f) : ra_ws__send_checked(ws, type, data, len);
    if (rc >= 0) sent++;
  }
  if (f) ra_ws__frame_unref(f);
  return sent;
}

void ra_ws_room_close_all(ra_ws_room *room, uint16_t code, const char *reason) {
  for (size_t i = room->n; i-- > 0;) {
    if (i >= room->n) continue;
    ra_ws *ws = room->m[i];
    if (ra_ws_is_open(ws)) ra_ws_close(ws, code, reason);
  }
}
