/* core/tls_internal.h: the per-stream TLS engine (core/tls.c) that
 * core/stream.c drives. The engine never touches a socket: ciphertext goes
 * in with ra_tls_conn_feed and comes out of ra_tls_conn_out; the stream
 * does the I/O, the timeouts and the callbacks. */
#ifndef RA_CORE_TLS_INTERNAL_H
#define RA_CORE_TLS_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <openssl/ssl.h>

#include "raloop/core/buf.h"
#include "raloop/core/loop.h"
#include "raloop/core/stream.h"
#include "raloop/core/tls.h"

enum { RA_TLS_AGAIN = 1, RA_TLS_EOF = 2 };

typedef struct ra_tls_conn {
  ra_tls_ctx *ctx; /* a reference */
  SSL *ssl;
  BIO *rbio, *wbio; /* owned by ssl */
  ra_buf pending;   /* plaintext written before the handshake completed */
  ra_timer hs_timer;
  ra_connect_cb on_handshake;
  int verify_err;   /* a refusal by the verify callback or the CA checks */
  bool hs_done, shut_pending, notify_sent, verify_called;
  char err[200];    /* OpenSSL's reason for the failure */
} ra_tls_conn;

int ra_tls_conn_new(ra_tls_ctx *ctx, const char *server_name, ra_tls_conn **out);
void ra_tls_conn_free(ra_tls_conn *c);
uint64_t ra_tls_ctx_handshake_ms(const ra_tls_ctx *ctx);
/* Ciphertext from the peer. 0 or -ENOMEM. */
int ra_tls_conn_feed(ra_tls_conn *c, const void *p, size_t n);
/* 1: done (c->hs_done set), 0: needs more input, else a negative code. */
int ra_tls_conn_handshake(ra_tls_conn *c);
/* 0 and *n > 0 bytes of plaintext, RA_TLS_AGAIN, RA_TLS_EOF (close_notify),
 * or a negative code. */
int ra_tls_conn_read(ra_tls_conn *c, uint8_t *buf, size_t cap, size_t *n);
/* Encrypts all of p (only after the handshake). 0 or a negative code. */
int ra_tls_conn_write(ra_tls_conn *c, const void *p, size_t n);
void ra_tls_conn_close_notify(ra_tls_conn *c);
/* Ciphertext to send: *p valid until ra_tls_conn_out_clear. */
size_t ra_tls_conn_out(ra_tls_conn *c, const uint8_t **p);
void ra_tls_conn_out_clear(ra_tls_conn *c);
/* Unread records or buffered plaintext. */
bool ra_tls_conn_has_input(const ra_tls_conn *c);

#endif
