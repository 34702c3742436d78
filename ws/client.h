/* ws/client.h: a WebSocket client on the loop (ws:// and wss:// URLs).
 *
 * Resolves the host (IPv4, IPv6 "[::1]", or a name), connects, performs the
 * RFC 6455 client handshake with a fresh random key and checks the server's
 * Sec-WebSocket-Accept, Upgrade, Connection, protocol and extensions; frames
 * are then masked with a key from the CSPRNG each. The connection is the
 * same ra_ws as on the server side: ra_ws_send/close/ping, and the
 * handlers' on_open/on_message/on_close (see ws/ws.h).
 *
 * wss:// runs the same over TLS (core/tls.h): SNI and the certificate's
 * host name are the URL's host (or tls_server_name), checked against the
 * system's CAs unless the caller gives its own client context (a CA file,
 * insecure_skip_verify for curl -k, or a peer-verify callback such as an
 * RA-TLS check).
 */
#ifndef RA_WS_CLIENT_H
#define RA_WS_CLIENT_H

#include "raloop/core/api.h"

#include <stddef.h>
#include <stdint.h>

#include "raloop/core/loop.h"
#include "raloop/core/tls.h"
#include "raloop/http/request.h"
#include "raloop/ws/ws.h"

typedef struct ra_ws_client_opts {
  ra_ws_opts ws;                   /* limits, pings, timeouts (ws/ws.h) */
  const char *const *protocols;    /* subprotocols to offer, in preference order */
  size_t nprotocols;
  const ra_header *headers;        /* extra request headers (Origin, ...) */
  size_t nheaders;
  uint64_t handshake_timeout_ms;   /* [10 s] connect + TLS + handshake */
  /* wss:// only: the client TLS context (a reference is taken for the
   * attempt); NULL: one verifying against the system's CAs is made. */
  ra_tls_ctx *tls;
  const char *tls_server_name;     /* SNI and host check; NULL: the URL's host */
} ra_ws_client_opts;

/* Starts connecting to url ("ws[s]://host[:port][/path][?query]"). opts
 * may be NULL; it and what it points to are copied (tls: referenced). On 0, *out (if out is not NULL) is the new
 * ra_ws, not yet open: sends fail with -ENOTCONN until on_open, and
 * ra_ws_close/ra_ws_terminate cancel the attempt. Afterwards either on_open
 * runs, or on_close with 1006 and a reason saying what failed (connect,
 * TLS handshake or certificate refused, handshake refused with its HTTP
 * status, bad accept value, timeout...) —
 * never from inside this call. Errors returned directly: -EINVAL (bad URL,
 * a header that is not a well-formed field, a subprotocol that is not an
 * RFC 9110 token, a wss:// default TLS context that cannot be made: the
 * system's CA store), -EPROTONOSUPPORT, -ENOMEM, or the connect's own error; no
 * callback follows those. */
RA_API int ra_ws_connect(ra_loop *loop, const char *url, const ra_ws_client_opts *opts,
                  const ra_ws_handlers *h, void *ud, ra_ws **out);

#endif
