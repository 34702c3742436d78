/* ws/ws_internal.h: shared between the files of ws/ (not installed): the
 * handle's layout, which rooms (room.c) and the transports read, and the
 * entry points the transports (stream_transport.c, client.c, route.c) use
 * beyond the public sink contract. */
#ifndef RA_WS_WS_INTERNAL_H
#define RA_WS_WS_INTERNAL_H

#include "raloop/core/buf.h"
#include "raloop/core/stream.h"
#include "raloop/http/response.h"
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

/* Before queuing len more bytes: 0, or -ENOBUFS when the peer let more
 * than send_limit pile up (ws is then closing with 1013). */
int ra_ws__check_limit(ra_ws *ws, size_t len);

/* A whole server (unmasked) frame shared by reference: a broadcast encodes
 * it once and every member on a stream queues a reference to it. */
typedef struct ra_ws__frame {
  size_t refs;
  size_t len;        /* header + payload */
  uint8_t bytes[];
} ra_ws__frame;
/* refs 1 (the caller's), or NULL. */
ra_ws__frame *ra_ws__frame_new(ra_ws_type type, const void *data, size_t len);
void ra_ws__frame_unref(void *f);
/* ra_ws__send_checked with the frame f already encoded for data: queued by
 * reference on a server stream, sent by the sink's send (a copy) otherwise. */
int ra_ws__send_shared(ra_ws *ws, ra_ws_type type, const void *data, size_t len, ra_ws__frame *f);

/* ---- room.c ---- */

/* ws leaves every room it is in (when it closes, or is freed). */
void ra_ws__leave_rooms(ra_ws *ws);

/* ---- stream_transport.c ---- */

/* Puts ws on a raw stream speaking RFC 6455 frames as `role`: takes over
 * the stream's callbacks, makes the stream ws's sink, delivers on_open,
 * then processes `rest` (bytes already read past the handshake). slot (may
 * be NULL): the connection's place on the HTTP server (route.c), taken
 * over: released when the stream closes, and the server's shutdown closes
 * ws (1001, or on_shutdown), at once if it started already. On -ENOMEM
 * nothing was changed (slot stays the caller's). */
int ra_ws__attach_stream(ra_ws *ws, ra_stream *s, ra_ws_role role,
                         const uint8_t *rest, size_t rest_len, ra_conn_slot *slot);
/* Queues a shared frame by reference if ws is on a server stream: 0 or
 * -errno (f's reference is then dropped already), or -ENOTSUP (untouched:
 * not a server stream). */
int ra_ws__stream_send_shared(ra_ws *ws, ra_ws__frame *f);

#endif
