/* attest/tunnel/channel_internal.h: what both ends of a tunnel share (not
 * installed).
 *
 * A channel is one control WebSocket once keyed: its symmetric key, the rx /
 * tx envelope buffers and their pool, sealed sending of inner messages, and
 * the tunnelled WebSockets it carries, hashed by their id. The sockets are
 * ordinary ra_ws handles whose sink is implemented here once for both roles;
 * the roles differ only in how a socket's end is told to the peer (the
 * client sends ws_close, the server ws_event close) and in whether the peer
 * already knows the id (a client's ws_connect may still wait for the key).
 * The role-specific parts (key exchange, http_request / http_response,
 * replay budget, reconnects) stay in client.c and server.c.
 */
#ifndef RA_ATTEST_TUNNEL_CHANNEL_INTERNAL_H
#define RA_ATTEST_TUNNEL_CHANNEL_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "raloop/attest/tunnel/envelope.h"
#include "raloop/attest/tunnel/msg.h"
#include "raloop/core/loop.h"
#include "raloop/core/str.h"
#include "raloop/ws/ws.h"

typedef enum { RA_TCHAN_CLIENT, RA_TCHAN_SERVER } ra_tchan_role;

/* Pointers by 64-bit hash, for what arrives by id in any order (sockets by
 * connection id, the client's requests by number): open addressing, linear
 * probing, backward-shift deletion, load <= 1/2. Entries with one hash are
 * told apart by the caller while walking them. Zero-initialised is empty. */
typedef struct ra_tindex_slot {
  uint64_t hash;
  void *p; /* NULL: empty */
} ra_tindex_slot;
typedef struct ra_tindex {
  ra_tindex_slot *slots;
  size_t cap, n; /* cap: power of two, or 0 */
} ra_tindex;
int ra_tindex_put(ra_tindex *x, uint64_t hash, void *p); /* 0 or -ENOMEM */
void ra_tindex_del(ra_tindex *x, uint64_t hash, const void *p);
/* The entries with this hash: start with *pos = 0; NULL when done. */
void *ra_tindex_next(const ra_tindex *x, uint64_t hash, size_t *pos);
void ra_tindex_free(ra_tindex *x);

typedef struct ra_tchan_sock ra_tchan_sock;

typedef struct ra_tchan {
  ra_loop *loop;
  ra_tchan_role role;
  ra_ws *ctl;   /* the control WebSocket; NULL once it is gone */
  bool keyed;   /* key is set: sealed messages may be sent */
  uint8_t key[RA_ENV_KEY_BYTES];
  ra_env_buf rx, tx;
  ra_env_pool *pool; /* rx / tx and lent buffers take and return memory here */
  /* tunnelled WebSockets: a list (newest first) for walks, and an
   * open-addressed table of the same sockets by id for lookups */
  ra_tchan_sock *socks;
  size_t n_socks;
  unsigned socks_gen; /* bumped whenever a socket leaves (see ra_tchan_drain) */
  ra_tindex by_id;
  uint8_t hash_key[16]; /* ids may be the peer's choice: a keyed hash */
  bool hash_keyed;      /* hash_key drawn: on first use, as a tunnel that
                         * carries only HTTP never needs it (one getrandom
                         * less per tunnel, issue 18) */
} ra_tchan;

struct ra_tchan_sock {
  ra_tchan *ch; /* NULL once released */
  ra_ws *ws;
  ra_tchan_sock *next, *prev;
  ra_defer later;    /* terminate: on_close from the loop */
  bool gone;         /* ra_ws_deliver_close done or scheduled */
  bool opened;       /* on_open delivered */
  bool peer_knows;   /* the peer has the id (client: ws_connect was sent) */
  uint8_t *connect;  /* client: the encoded ws_connect until it is sent */
  size_t connect_len;
  uint64_t hash;
  size_t id_len;
  char id[];
};

/* pool_spares: how many spare buffers the channel's pool keeps. Returns 0
 * or -ENOMEM. */
int ra_tchan_init(ra_tchan *ch, ra_loop *loop, ra_tchan_role role, size_t pool_spares);
/* Closes every socket (1006, "tunnel closed"), frees buffers, pool, table,
 * and wipes the key. */
void ra_tchan_free(ra_tchan *ch);
/* The control channel is gone: every socket gets on_close 1006 ("tunnel
 * closed"), the key is wiped; buffers and pool stay for the next one. */
void ra_tchan_drop(ra_tchan *ch);
/* The key goes (wiped; nothing more is sealed) and tunnelled sockets end
 * with on_close(code, reason): all of them (ra_tchan_drop), or only those
 * the peer knows that are not ending already (a key rotation: a socket
 * whose ws_connect never left waits for the next key). */
void ra_tchan_unkey(ra_tchan *ch, bool all, uint16_t code, ra_str reason);

/* ---- sealed sending ------------------------------------------------------ */

/* Writes a message into out (cap bytes) and returns its size (cap 0:
 * measures), like the ra_tmsg_encode_* functions. */
typedef size_t (*ra_tchan_encode_fn)(uint8_t *out, size_t cap, const void *arg);
/* Encodes the inner message straight into the tx buffer, seals it there and
 * lends the buffer to the control stream (no copy, even when queued).
 * Returns 0, -ENOTCONN (no key or no channel), -ENOMEM, or the stream's
 * error. */
int ra_tchan_send(ra_tchan *ch, ra_tchan_encode_fn enc, const void *arg);
/* The same for n plaintext bytes already encoded elsewhere (copied). */
int ra_tchan_send_plain(ra_tchan *ch, const uint8_t *plain, size_t n);
/* Seals the plaintext written `off` bytes after what ra_env_seal_begin(b)
 * returned (a response built in its own buffer) and lends b to the stream. */
int ra_tchan_send_buf(ra_tchan *ch, ra_env_buf *b, size_t off, size_t n);
/* ws_event for connection id (code < 0, reason.ptr NULL, error NULL: left
 * out). */
void ra_tchan_send_event(ra_tchan *ch, ra_str id, ra_tmsg_event ev, int code, ra_str reason,
                         const char *error);
/* http_cancel (reason NULL: none) and http_credit for request id
 * (PROTOCOL.md §11); returns as ra_tchan_send. */
int ra_tchan_send_http_cancel(ra_tchan *ch, ra_str id, const char *reason);
int ra_tchan_send_http_credit(ra_tchan *ch, ra_str id, uint64_t bytes);
/* Opens an `enc` envelope into the rx buffer: 0 and the plaintext (valid
 * until the next use of rx), or -EBADMSG. */
int ra_tchan_open(ra_tchan *ch, const ra_tmsg *env, const uint8_t **plain, size_t *plain_len);

/* ---- tunnelled WebSockets ------------------------------------------------ */

/* A socket with connection id `id` whose ra_ws (h, ud, opts as for
 * ra_ws_new_with_sink) sends through the channel. Not yet in the table:
 * ra_tchan_sock_add puts it there; until then ra_tchan_sock_discard undoes
 * it. NULL on -ENOMEM. */
ra_tchan_sock *ra_tchan_sock_new(ra_tchan *ch, ra_str id, const ra_ws_handlers *h, void *ud,
                                 const ra_ws_opts *opts);
/* Returns 0 or -ENOMEM (then the socket is still the caller's). */
int ra_tchan_sock_add(ra_tchan *ch, ra_tchan_sock *w);
/* A socket that never was added: its ra_ws ends (1006) and it is freed. */
void ra_tchan_sock_discard(ra_tchan_sock *w);
/* The channel's keyed 64-bit hash of an id (ids are the peer's choice):
 * for the role's own tables of things named by id (the server's streamed
 * bodies, PROTOCOL.md §11). */
uint64_t ra_tchan_hash(ra_tchan *ch, ra_str id);
/* The socket with that id, or NULL. */
ra_tchan_sock *ra_tchan_find(ra_tchan *ch, ra_str id);
/* Delivers on_open once. */
void ra_tchan_sock_open(ra_tchan_sock *w);
/* The peer ended the socket: on_close(code, reason), then it is freed. */
void ra_tchan_sock_closed(ra_tchan_sock *w, uint16_t code, ra_str reason);
/* A ws_message from the peer: to its socket (opening it first if no
 * ws_event open came yet; the ra_ws checks text for UTF-8 and closes 1007). */
void ra_tchan_on_ws_message(ra_tchan *ch, const ra_tmsg *m);
/* The control channel drained: so did every socket it carries. */
void ra_tchan_drain(ra_tchan *ch);

/* ---- client attestation (PROTOCOL.md §10) -------------------------------- */

/* The report_data a client quote carries for one session:
 * SHA-512("raloop-client-v1" || server X25519 key || clientChallenge ||
 * sealedSymmetricKey exactly as sent in client_kx). */
#define RA_TUNNEL_CLIENT_BINDING_LABEL "raloop-client-v1"
void ra_tunnel_client_binding(const uint8_t server_pk[32], const uint8_t challenge[32],
                              const uint8_t *sealed, size_t sealed_len, uint8_t out[64]);

#endif
