/* attest/envelope.h: the tunnel's cryptography (PROTOCOL.md §2-3, §5).
 *
 * - the key exchange: the server's X25519 key pair, the client's symmetric
 *   key K sealed to it (libsodium sealed box: 32-byte ephemeral public key ||
 *   XSalsa20-Poly1305 box, 80 bytes for a 32-byte key);
 * - `enc` envelopes: crypto_secretbox (XSalsa20-Poly1305) of one CBOR inner
 *   message under K with a fresh random 24-byte nonce;
 * - replay detection: the set of envelope nonces a connection has accepted.
 *
 * Buffers: an ra_env_buf is grown to the largest message it has carried and
 * then reused, so steady-state sealing and opening allocate nothing. Sealing
 * works in place: the caller encodes the plaintext straight into the buffer
 * (after room reserved for the envelope head and the MAC), and the whole
 * envelope is produced around it without copying the plaintext.
 */
#ifndef RA_ATTEST_ENVELOPE_H
#define RA_ATTEST_ENVELOPE_H

#include "raloop/core/api.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define RA_ENV_KEY_BYTES 32
#define RA_ENV_NONCE_BYTES 24
#define RA_ENV_MAC_BYTES 16
#define RA_ENV_PK_BYTES 32
#define RA_ENV_SK_BYTES 32
#define RA_ENV_SEALED_KEY_BYTES 80 /* 32 ephemeral pk + 16 MAC + 32 key */

/* Must be called once before any other function (idempotent; sodium_init).
 * Returns 0 or -EIO. */
RA_API int ra_env_init(void);

/* A fresh X25519 key pair (crypto_box_keypair). */
RA_API int ra_env_keypair(uint8_t pk[RA_ENV_PK_BYTES], uint8_t sk[RA_ENV_SK_BYTES]);
/* A fresh random symmetric key. */
RA_API void ra_env_random_key(uint8_t key[RA_ENV_KEY_BYTES]);

/* Client: out = crypto_box_seal(key, server_pk). Returns 0 or -EINVAL (a
 * public key libsodium refuses, e.g. a small-order point). */
RA_API int ra_env_seal_key(const uint8_t key[RA_ENV_KEY_BYTES], const uint8_t server_pk[RA_ENV_PK_BYTES],
                    uint8_t out[RA_ENV_SEALED_KEY_BYTES]);
/* Server: opens a sealed key. Returns 0, or -EBADMSG when sealed is not
 * exactly 80 bytes or does not open with this key pair. */
RA_API int ra_env_open_key(const uint8_t *sealed, size_t sealed_len, const uint8_t pk[RA_ENV_PK_BYTES],
                    const uint8_t sk[RA_ENV_SK_BYTES], uint8_t key[RA_ENV_KEY_BYTES]);

/* A reusable message buffer. Zero-initialised is valid and empty. pool
 * (optional, see ra_env_pool below) is where an empty buffer takes its
 * memory from before it allocates. */
typedef struct ra_env_pool ra_env_pool;
/* 10 nonces = 240 bytes: libsodium reads getrandom() in chunks of at most
 * 256 bytes, so a batch is one system call (16 took two, issue 18) */
#define RA_ENV_NONCE_BATCH 10
typedef struct ra_env_buf {
  uint8_t *data;
  size_t cap;
  /* Sealing draws envelope nonces from the CSPRNG: through a pool,
   * RA_ENV_NONCE_BATCH at a time (one getrandom() per batch, the batch
   * kept by the pool, one per connection); without a pool, one per
   * message. (issue 18: the batch is no longer carried inline by every
   * buffer, 388 bytes each that pooled buffers never used.) */
  ra_env_pool *pool;
} ra_env_buf;
/* Frees b's memory (b stays usable, empty; its pool is kept). */
RA_API void ra_env_buf_free(ra_env_buf *b);
/* Empties b and gives its memory to b's pool as a spare (as
 * ra_env_buf_return does with a lent one), for the next buffer of the pool
 * to take without allocating; frees it when b has no pool or the pool is
 * full. For a buffer emptied after each message (a channel's decryption
 * buffer): no allocation per message, and at most max_spares blocks kept. */
RA_API void ra_env_buf_recycle(ra_env_buf *b);

/* Lending a buffer's memory out, for zero-copy hand-offs: a sealed message
 * queued by a stream (ra_ws_send_owned), a decrypted request body held by a
 * request (ra_req_set_body_ref). ra_env_buf_lend takes the memory of b (b
 * becomes empty; NULL if it had none) and returns a token;
 * ra_env_buf_return(token), shaped as a free callback, gives it back: into
 * the spares of b's pool, from which an empty ra_env_buf of that pool takes
 * memory again without allocating, or to free() when the pool is full, gone
 * or absent. A pool keeps at most max_spares buffers (each as large as the
 * message that used it last), none larger than RA_ENV_SPARE_MAX (an idle
 * connection does not pin the memory of its largest messages; beyond that
 * size the cipher costs far more than an allocation). ra_env_pool_free may come before buffers lent
 * out return: the pool is then freed with the last of them. Single-threaded,
 * like the loop. */
#define RA_ENV_SPARE_MAX ((size_t)4 << 20)
/* Returns 0 and *out, or -ENOMEM (*out NULL). */
RA_API int ra_env_pool_new(size_t max_spares, ra_env_pool **out);
RA_API void ra_env_pool_free(ra_env_pool *p);
/* Frees p's spare buffers (an idle connection's pool keeps nothing but its
 * nonce batch); lent buffers still come back as spares later. */
RA_API void ra_env_pool_trim(ra_env_pool *p);
RA_API void *ra_env_buf_lend(ra_env_buf *b);
RA_API void ra_env_buf_return(void *token);

/* Sealing, in three steps:
 *   size_t n = encode(NULL, 0, ...);                 // measure the plaintext
 *   uint8_t *p = ra_env_seal_begin(b, n);            // room for it
 *   encode(p, n, ...);                               // write it in place
 *   ra_env_seal_end(b, key, n, &msg, &msg_len);      // the whole `enc` CBOR
 * seal_begin returns NULL on -ENOMEM. msg points into b and stays valid until
 * the next seal_begin on b (or, once b was lent, until the token returns).
 * The RA_ENV_FRAME_ROOM bytes right before msg are part of b too and may be
 * overwritten: a WebSocket frame header is written there in place
 * (ra_ws_send_owned). */
#define RA_ENV_FRAME_ROOM 16
RA_API uint8_t *ra_env_seal_begin(ra_env_buf *b, size_t plain_len);
RA_API void ra_env_seal_end(ra_env_buf *b, const uint8_t key[RA_ENV_KEY_BYTES], size_t plain_len,
                     const uint8_t **msg, size_t *msg_len);
/* Growing a message while it is written (a response body arriving in
 * pieces): like seal_begin, but the first `keep` plaintext bytes already
 * written survive (copied if the buffer has to move). NULL on -ENOMEM. */
RA_API uint8_t *ra_env_seal_extend(ra_env_buf *b, size_t keep, size_t plain_len);
/* seal_end for a plaintext that starts `off` bytes after the pointer
 * seal_begin returned (e.g. a head moved forward once a length header
 * turned out shorter than the room left for it). */
RA_API void ra_env_seal_end_at(ra_env_buf *b, const uint8_t key[RA_ENV_KEY_BYTES], size_t off,
                        size_t plain_len, const uint8_t **msg, size_t *msg_len);

/* Opening: decrypts an envelope's ciphertext (MAC || encrypted bytes, as on
 * the wire) into b. Returns 0 and sets *plain / *plain_len (valid until the
 * next use of b), -EBADMSG if the ciphertext is shorter than the MAC or
 * does not authenticate, -ENOMEM. */
RA_API int ra_env_open(ra_env_buf *b, const uint8_t key[RA_ENV_KEY_BYTES],
                const uint8_t nonce[RA_ENV_NONCE_BYTES], const uint8_t *ct, size_t ct_len,
                const uint8_t **plain, size_t *plain_len);

/* Replay detection. Only envelopes that authenticated are recorded (forged
 * ones cannot fill the set). Each accepted nonce is remembered as a 64-bit
 * SipHash under a per-set random key (an attacker can neither predict nor
 * aim collisions; a false "replay" between two honest random nonces has
 * probability below n^2/2^65). The table is open-addressed, grows by doubling
 * (8 bytes per slot, load <= 1/2) and is bounded: once `limit` nonces have
 * been accepted under one key, every further envelope is refused with
 * -ENOSPC, and the tunnel closes the control channel so that the client
 * reconnects with a fresh key. Never forgetting within a key is what makes
 * the check sound: a window would let an old envelope be replayed once it
 * fell out. */
typedef struct ra_replay {
  uint64_t *slots; /* 0: empty */
  size_t cap;      /* power of two, or 0 */
  size_t count;
  size_t limit;
  uint8_t key[16];
} ra_replay;
#define RA_REPLAY_DEFAULT_LIMIT (1u << 18) /* 262144 envelopes: 4 MiB of table at most */
/* limit 0: the default. */
RA_API void ra_replay_init(ra_replay *r, size_t limit);
/* Returns 0 (new: recorded), -EEXIST (seen before), -ENOSPC (limit
 * reached), -ENOMEM. */
RA_API int ra_replay_check(ra_replay *r, const uint8_t nonce[RA_ENV_NONCE_BYTES]);
RA_API void ra_replay_free(ra_replay *r);

#endif
