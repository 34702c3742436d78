/* http/conn_internal.h: the HTTP/1.1 connection state machine and the
 * server state it shares.
 *
 * A connection never touches a socket: it is fed bytes and writes through a
 * small I/O interface. The server plugs a core stream under it; unit tests
 * and the fuzz target plug a memory buffer (no sockets), feed bytes in any
 * split and read back what the server answered.
 */
#ifndef RA_HTTP_CONN_INTERNAL_H
#define RA_HTTP_CONN_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/uio.h>

#include "raloop/core/buf.h"
#include "raloop/core/listen.h"
#include "raloop/core/loop.h"
#include "raloop/core/stream.h"
#include "raloop/http/server.h"

typedef struct ra_http_conn ra_http_conn;
typedef struct ra_http_ex ra_http_ex;

typedef struct ra_http_io_ops {
  /* Copies the bytes out (or queues them). <0: the I/O is broken (it will
   * report ra_http_conn_closed() later). */
  int (*writev)(void *io, const struct iovec *iov, int n);
  /* Bytes written but not yet taken by the peer. */
  size_t (*queued)(void *io);
  void (*set_reading)(void *io, bool on);
  /* Flush what is queued, then close; ra_http_conn_closed() follows, from
   * a later loop turn (never from inside this call). */
  void (*close)(void *io);
  /* Drop everything now; ra_http_conn_closed() is NOT called: the caller is
   * destroying the connection itself. */
  void (*destroy)(void *io);
  /* Upgrade: stop delivering events to the connection and hand over the
   * raw stream. NULL (or returning NULL): upgrades unsupported. */
  ra_stream *(*detach)(void *io);
} ra_http_io_ops;

typedef struct ra_http_hook {
  ra_http_shutdown_hook fn;
  void *ud;
} ra_http_hook;

struct ra_http_server {
  ra_loop *loop;
  ra_router *router;
  ra_http_limits lim;
  char server_name[64];
  ra_access_log_cb access_log;
  void *access_log_ud;
  ra_listener **listeners;
  struct ra_tls_ctx **listener_tls; /* per listener: a reference, NULL for plain */
  size_t nlisteners;
  bool accept_paused;
  ra_http_conn *conns; /* doubly linked */
  size_t nconns;       /* HTTP connections and upgraded ones (slots) */
  struct ra_conn_slot *slots; /* upgraded connections, doubly linked */
  /* Recycled per-request objects: the hot path reuses them instead of
   * malloc'ing; idle connections hold none. */
  ra_http_ex *pool;
  size_t npool;
  /* One output buffer shared by all connections: the connection being fed
   * collects all its responses here and writes them with one syscall. */
  ra_buf cork;
  ra_http_conn *cork_owner;
  /* shutdown */
  bool shutting_down;
  ra_timer shutdown_timer;
  ra_defer done_defer;
  ra_http_shutdown_cb done;
  void *done_ud;
  ra_http_hook *hooks;
  size_t nhooks;
  struct ra_proxy_proto_gate *pp; /* opts.proxy_protocol: headers first */
};

/* Creates a connection on srv over io: 0 and *out, or -ENOMEM and *out
 * NULL. */
int ra_http_conn_new(ra_http_server *srv, const ra_http_io_ops *ops, void *io, ra_http_conn **out);
/* The client's address, passed to every request (ra_req_peer). */
struct sockaddr;
void ra_http_conn_set_peer(ra_http_conn *c, const struct sockaddr *sa);
/* Feeds received bytes; always consumes all of them (keeps what it cannot
 * parse yet). */
size_t ra_http_conn_feed(ra_http_conn *c, const uint8_t *data, size_t len);
/* The peer half-closed. */
void ra_http_conn_eof(ra_http_conn *c);
/* The I/O's write queue fell low. */
void ra_http_conn_drain(ra_http_conn *c);
/* The I/O is gone: cancels pending responses and frees c. */
void ra_http_conn_closed(ra_http_conn *c);
/* Destroys c and its I/O now (io->destroy). */
void ra_http_conn_destroy(ra_http_conn *c);
/* Shutdown: idle connections close, busy ones close after their in-flight
 * responses. */
void ra_http_conn_shutdown(ra_http_conn *c);

ra_http_conn *ra_http_conn_next(ra_http_conn *c);

/* server.c: a slot for a connection being handed over by an upgrade
 * (counted in nconns until released), or NULL when out of memory. */
ra_conn_slot *ra_http_server_slot_new(ra_http_server *srv);
/* server.c, called by conn.c when a connection is freed. */
void ra_http_server_conn_gone(ra_http_server *srv);
/* conn.c: frees the server's pool of recycled exchanges. */
void ra_http_server_pool_free(ra_http_server *srv);

#endif
