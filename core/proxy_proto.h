/* core/proxy_proto.h: the PROXY protocol (HAProxy's, versions 2 and 1).
 *
 * A proxy that forwards a connection byte for byte (ra-proxy, HAProxy in
 * TCP mode, nginx's stream module) can send, before the client's first
 * byte, a header naming the client's address, so the server behind it can
 * log or rate-limit the real client instead of the proxy. Spec:
 * https://www.haproxy.org/download/2.9/doc/proxy-protocol.txt
 *
 *  - ra_proxy_proto_encode writes a version 2 header (binary; PROXY
 *    command, TCP over IPv4/IPv6 or a unix stream, or LOCAL/UNSPEC when
 *    the addresses cannot be told).
 *  - ra_proxy_proto_parse is a pure engine over the bytes received so far:
 *    need more / a complete header (its length and the addresses) / an
 *    error. Both versions are accepted (v1 is text: "PROXY TCP4 ...\r\n").
 *    TLVs of v2 are skipped (their length is checked).
 *  - ra_proxy_proto_read reads exactly the header off a socket on the loop
 *    and nothing after it, so what follows (e.g. a TLS ClientHello) is
 *    still in the socket for whatever takes the fd next.
 */
#ifndef RA_CORE_PROXY_PROTO_H
#define RA_CORE_PROXY_PROTO_H

#include "raloop/core/api.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "raloop/core/listen.h"
#include "raloop/core/loop.h"

/* Longest header encode writes: 16 bytes + two unix paths of 108. */
#define RA_PROXY_PROTO_V2_MAX (16 + 216)
/* Longest header parse accepts (v2 with TLVs); longer is an error. */
#define RA_PROXY_PROTO_MAX 4096

/* Encodes a v2 header announcing a connection from src to dst (the
 * proxy's address the client connected to). Both AF_INET, both AF_INET6
 * (an IPv4 one is mapped when the other is IPv6), both AF_UNIX: PROXY
 * command; anything else (NULL, vsock, mixed unix/inet): LOCAL command
 * with no address. src and dst are borrowed for the call. Returns the
 * number of bytes written to out, or -ENOSPC if cap is too small
 * (RA_PROXY_PROTO_V2_MAX always suffices). */
RA_API int ra_proxy_proto_encode(const struct sockaddr *src, const struct sockaddr *dst,
                                 uint8_t *out, size_t cap);

typedef struct ra_proxy_proto_info {
  int version;                 /* 1 or 2 */
  bool local;                  /* LOCAL (v2) or UNKNOWN (v1): no addresses
                                  conveyed, use the socket's own */
  struct sockaddr_storage src; /* the client (ss_family AF_UNSPEC if none) */
  struct sockaddr_storage dst; /* the address it connected to */
  socklen_t src_len, dst_len;
} ra_proxy_proto_info;

/* Parses the start of a connection's bytes (data borrowed for the call).
 * Returns the header's length (> 0) and fills *info; 0 if data is a
 * proper prefix of a header (every byte of it belongs to the header: a
 * reader may consume them all and call again with more); or
 * -EPROTO: not a PROXY header, or a malformed one;
 * -E2BIG: longer than RA_PROXY_PROTO_MAX. */
RA_API int ra_proxy_proto_parse(const uint8_t *data, size_t len, ra_proxy_proto_info *info);

/* Formats an address as "1.2.3.4:5", "[::1]:5", "unix:PATH" or "-"
 * (nothing conveyed) into buf (always NUL-terminated). Returns buf. */
RA_API char *ra_proxy_proto_addr_str(const struct sockaddr_storage *ss, char *buf, size_t cap);

/* Reads the header on fd (non-blocking, connected) from the loop, then
 * calls done exactly once, from the loop: err 0 and info (valid during the
 * call) once the header has been consumed, or a negative error (-EPROTO,
 * -E2BIG, -ETIMEDOUT after timeout_ms (0: 10 s), -ECONNRESET when the peer
 * closed first, ...) and info NULL. fd is never closed here: it belongs to
 * done, in both cases. Returns 0 (done will be called), or -ENOMEM / the
 * watch's -errno (it will not: the fd is still the caller's). */
typedef void (*ra_proxy_proto_cb)(int fd, int err, const ra_proxy_proto_info *info, void *ud);
typedef struct ra_proxy_proto_reader ra_proxy_proto_reader;
RA_API int ra_proxy_proto_read(ra_loop *loop, int fd, uint64_t timeout_ms,
                               ra_proxy_proto_cb done, void *ud, ra_proxy_proto_reader **out);
/* Stops a reader before it finished: done is not called, fd is not
 * closed. NULL is a no-op. Not after done was called (the reader is freed
 * then). */
RA_API void ra_proxy_proto_read_cancel(ra_proxy_proto_reader *r);

/* A gate in front of an accept callback, for a server behind a proxy that
 * always sends the header: each fd handed to ra_proxy_proto_gate_accept
 * first has its header read (ra_proxy_proto_read, timeout_ms), then goes on
 * to next(l, fd, addr, len, ud) (l: the listener that accepted it) where
 * addr is the client the header
 * names, or the connection's own peer for LOCAL / UNKNOWN (a health check
 * of the proxy itself). A connection whose header is missing, malformed or
 * late is closed (logged at debug). Only where every connection comes
 * through such a proxy: a client connecting directly could claim any
 * address. Returns 0 and *out, -EINVAL, -ENOMEM. */
typedef struct ra_proxy_proto_gate ra_proxy_proto_gate;
RA_API int ra_proxy_proto_gate_new(ra_loop *loop, uint64_t timeout_ms, ra_accept_cb next, void *ud,
                                   ra_proxy_proto_gate **out);
/* An ra_accept_cb: give it to ra_listen with the gate as ud. Takes fd. */
RA_API void ra_proxy_proto_gate_accept(ra_listener *l, int fd, const struct sockaddr *peer,
                                       socklen_t peer_len, void *gate);
/* Connections still waiting for their header. */
RA_API size_t ra_proxy_proto_gate_pending(const ra_proxy_proto_gate *g);
/* Closes the connections still waiting for their header and frees the
 * gate. NULL is a no-op. Not from inside next. */
RA_API void ra_proxy_proto_gate_free(ra_proxy_proto_gate *g);

#endif
