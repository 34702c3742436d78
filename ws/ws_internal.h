/* ws/ws_internal.h: shared between ws.c and client.c (not installed). */
#ifndef RA_WS_WS_INTERNAL_H
#define RA_WS_WS_INTERNAL_H

#include "raloop/core/stream.h"
#include "raloop/ws/frame.h"
#include "raloop/ws/ws.h"

/* Puts ws on a raw stream speaking RFC 6455 frames as `role`: takes over
 * the stream's callbacks, makes the stream ws's sink, delivers on_open,
 * then processes `rest` (bytes already read past the handshake). On
 * -ENOMEM nothing was changed. */
int ra_ws__attach_stream(ra_ws *ws, ra_stream *s, ra_ws_role role,
                         const uint8_t *rest, size_t rest_len);
/* The options with defaults filled in. */
const ra_ws_opts *ra_ws__opts(const ra_ws *ws);
/* Frees a ws that was never reported to the application (no on_close). */
void ra_ws__free(ra_ws *ws);

#endif
