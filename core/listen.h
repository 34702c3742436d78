/* core/listen.h: non-blocking listening sockets (TCP v4/v6, unix). */
#ifndef RA_CORE_LISTEN_H
#define RA_CORE_LISTEN_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

#include "core/loop.h"

typedef struct ra_listener ra_listener;

/* A new connection: fd is non-blocking and close-on-exec and now belongs to
 * the callback. peer is valid during the call. Accepts run in batches (up to
 * 64 per readiness event). */
typedef void (*ra_accept_cb)(ra_listener *l, int fd, const struct sockaddr *peer,
                             socklen_t peer_len, void *ud);

typedef struct ra_listen_opts {
  int backlog;     /* 0: 1024 */
  bool reuseport;  /* SO_REUSEPORT: several processes share the port */
  bool v6only;     /* for [::]: IPv6 only (default: dual-stack) */
} ra_listen_opts;

/* addr: "HOST:PORT", "[V6]:PORT", ":PORT" (all interfaces), or "unix:PATH"
 * (an existing socket file at PATH is replaced). PORT 0 picks a free port
 * (see ra_listener_port). opts may be NULL. */
int ra_listen(ra_loop *loop, const char *addr, const ra_listen_opts *opts,
              ra_accept_cb cb, void *ud, ra_listener **out);

uint16_t ra_listener_port(const ra_listener *l); /* 0 for unix sockets */
int ra_listener_fd(const ra_listener *l);
void ra_listener_pause(ra_listener *l);  /* stop accepting (keeps the socket) */
void ra_listener_resume(ra_listener *l);
/* Closes the socket (and unlinks a unix path it created) and frees l. */
void ra_listener_close(ra_listener *l);

#endif
