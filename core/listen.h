/* core/listen.h: non-blocking listening sockets (TCP v4/v6, unix). */
#ifndef RA_CORE_LISTEN_H
#define RA_CORE_LISTEN_H

#include "raloop/core/api.h"

#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

#include "raloop/core/loop.h"

typedef struct ra_listener ra_listener;

/* A new connection: fd is non-blocking and close-on-exec (TCP: with
 * TCP_NODELAY) and now belongs to the callback. peer is valid during the
 * call. Accepts run in batches (up to 64 per readiness event). The callback
 * may pause or close the listener. When descriptors run out (EMFILE), the
 * listener stops accepting for 100 ms rather than spin. */
typedef void (*ra_accept_cb)(ra_listener *l, int fd, const struct sockaddr *peer,
                             socklen_t peer_len, void *ud);

typedef struct ra_listen_opts {
  int backlog;     /* 0: 1024 */
  bool reuseport;  /* SO_REUSEPORT: several processes share the port */
  bool v6only;     /* for [::]: IPv6 only (default: dual-stack) */
} ra_listen_opts;

/* addr: "HOST:PORT", "[V6]:PORT", ":PORT" (all interfaces), "unix:PATH"
 * (an existing socket file at PATH is replaced), "vsock:CID:PORT" (CID
 * empty or -1: any), or "fd:N": descriptor N, a socket already listening
 * (inherited from a supervisor: serve/workers.h), adopted as it is (opts
 * are not applied; made non-blocking and close-on-exec; the listener owns
 * it from then on; -EINVAL if it is not listening). PORT 0 picks a free
 * port (see ra_listener_port). opts may be NULL (reuseport and v6only apply to TCP only). Errors: -EINVAL for
 * a malformed addr, -EADDRNOTAVAIL for a host that does not resolve, else
 * the errno of socket/bind/listen (-EADDRINUSE...). */
RA_API int ra_listen(ra_loop *loop, const char *addr, const ra_listen_opts *opts,
              ra_accept_cb cb, void *ud, ra_listener **out);

RA_API uint16_t ra_listener_port(const ra_listener *l); /* 0 for unix and vsock */
RA_API int ra_listener_fd(const ra_listener *l);
RA_API void ra_listener_pause(ra_listener *l);  /* stop accepting (keeps the socket) */
RA_API void ra_listener_resume(ra_listener *l);
/* Closes the socket (and unlinks a unix path it created) and frees l (safe
 * from inside its own accept callback). A paused listener does not keep
 * ra_loop_run alive. */
RA_API void ra_listener_close(ra_listener *l);

#endif
