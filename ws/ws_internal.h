/* ws/ws_internal.h: shared between the files of ws/ (not installed): the
 * handle's layout, which rooms (room.c) and the transports read, and the
 * entry points the transports (stream_transport.c, client.c, route.c) use
 * beyond the public sink contract. */
#ifndef RA_WS_WS_INTERNAL_H
#define RA_WS_WS_INTERNAL_H

#include "raloop/core/buf.h"
#include "raloop/core/stream.h"
#include "raloop/ws/frame.h"
#include "raloop/ws/utf8.h"
#include "raloop/ws/ws.h"

#define RA_WS__MAX_REASON 123

struct ra_ws {
  ra_loop *loop;
  const ra_ws_sink_ops *ops;
  void *sink;
  ra_ws_handlers h;
  void *ud;
  void *user;
  ra_ws_opts opts;
  char *path, *protocol;
  size_t path_len, protocol_len;
  bool attested;
  bool open;       /* on_open delivered */
  bool closing;    /* a close or terminate was started here */
  bool closed;     /* on_close delivered: free once depth is 0 */
  bool want_drain;
  int depth;       /* ra_ws callbacks / sink calls in progress */
  uint8_t frag_op; /* fragmented message being sent */
  ra_utf8 frag_utf8;
  ra_buf frag_buf; /* pieces, for sinks without send_frame */
  ra_ws_room **rooms;
  size_t nrooms, caprooms;
};

/* ---- ws.c ---- */

/* Copies `in` (NULL: all defaults) into *o with the defaults filled in. */
void ra_ws__fill_opts(ra_ws_opts *o, const ra_ws_opts *in);
/* The options with defaults filled in. */
const ra_ws_opts *ra_ws__opts(const ra_ws *ws);
/* Frees a ws that was never reported to the application (no on_close). */
void ra_ws__free(ra_ws *ws);
/* on_message for a payload the transport validated already (the frame
 * transport checks UTF-8 while reassembling). */
void ra_ws__deliver_checked(ra_ws *ws, ra_ws_type type, const uint8_t *data, size_t len);
/* ra_ws_send once type and payload are known to be acceptable (a room
 * checks a broadcast's UTF-8 once for all members). */
int ra_ws__send_checked(ra_ws *ws, ra_ws_type type, const void *data, size_t len);

/* ---- room.c ---- */

/* ws leaves every room it is in (when it closes, or is freed). */
void ra_ws__leave_rooms(ra_ws *ws);

/* ---- stream_transport.c ---- */

/* Puts ws on a raw stream speaking RFC 6455 frames as `role`: takes over
 * the stream's callbacks, makes the stream ws's sink, delivers on_open,
 * then processes `rest` (bytes already read past the handshake). On
 * -ENOMEM nothing was changed. */
int ra_ws__attach_stream(ra_ws *ws, ra_stream *s, ra_ws_role role,
                         const uint8_t *rest, size_t rest_len);

#endif
