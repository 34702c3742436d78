/* attest/envelope.c: see envelope.h. */
#include "raloop/attest/tunnel/envelope.h"

#include <errno.h>
#include <stddef.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>

#include "raloop/attest/tunnel/msg.h"

/* Layout of a sealing buffer:
 *   [0, HEADROOM)                 frame room, then the envelope head, right-aligned
 *   [HEADROOM, HEADROOM+16)       the MAC
 *   [HEADROOM+16, +plain_len)     plaintext, encrypted in place */
#define HEADROOM (RA_ENV_FRAME_ROOM + RA_TMSG_ENC_HEAD_MAX)

int ra_env_init(void) { return sodium_init() < 0 ? -EIO : 0; }

int ra_env_keypair(uint8_t pk[RA_ENV_PK_BYTES], uint8_t sk[RA_ENV_SK_BYTES]) {
  return crypto_box_keypair(pk, sk) == 0 ? 0 : -EIO;
}

void ra_env_random_key(uint8_t key[RA_ENV_KEY_BYTES]) { randombytes_buf(key, RA_ENV_KEY_BYTES); }

int ra_env_seal_key(const uint8_t key[RA_ENV_KEY_BYTES], const uint8_t server_pk[RA_ENV_PK_BYTES],
                    uint8_t out[RA_ENV_SEALED_KEY_BYTES]) {
  return crypto_box_seal(out, key, RA_ENV_KEY_BYTES, server_pk) == 0 ? 0 : -EINVAL;
}

int ra_env_open_key(const uint8_t *sealed, size_t sealed_len, const uint8_t pk[RA_ENV_PK_BYTES],
                    const uint8_t sk[RA_ENV_SK_BYTES], uint8_t key[RA_ENV_KEY_BYTES]) {
  if (!sealed || sealed_len != RA_ENV_SEALED_KEY_BYTES) return -EBADMSG;
  if (crypto_box_seal_open(key, sealed, sealed_len, pk, sk) != 0) {
    sodium_memzero(key, RA_ENV_KEY_BYTES);
    return -EBADMSG;
  }
  return 0;
}

/* Every buffer's memory is one block: this header, then the bytes data
 * points to. The header says where the block goes back to once lent. */
typedef struct blk_hdr {
  ra_env_pool *pool;
  size_t cap;
  _Alignas(16) uint8_t data[];
} blk_hdr;

#define POOL_MAX_SPARES 8
struct ra_env_pool {
  size_t lent;  /* blocks out on loan */
  bool dead;    /* ra_env_pool_free was called */
  size_t nspare, max_spares;
  blk_hdr *spare[POOL_MAX_SPARES];
  /* the nonce batch of every buffer of the pool (one per connection rather
   * than one per response buffer) */
  unsigned nonces_left;
  uint8_t nonces[RA_ENV_NONCE_BYTES * RA_ENV_NONCE_BATCH];
};

static blk_hdr *hdr_of(uint8_t *data) {
  return (blk_hdr *)(void *)(data - offsetof(blk_hdr, data));
}

void ra_env_buf_free(ra_env_buf *b) {
  if (b->data) free(hdr_of(b->data));
  b->data = NULL;
  b->cap = 0;
}

int ra_env_pool_new(size_t max_spares, ra_env_pool **out) {
  ra_env_pool *p = calloc(1, sizeof *p);
  *out = p;
  if (!p) return -ENOMEM;
  p->max_spares = max_spares < POOL_MAX_SPARES ? max_spares : POOL_MAX_SPARES;
  return 0;
}

void ra_env_pool_trim(ra_env_pool *p) {
  if (!p) return;
  for (size_t i = 0; i < p->nspare; i++) free(p->spare[i]);
  p->nspare = 0;
}

void ra_env_pool_free(ra_env_pool *p) {
  if (!p) return;
  ra_env_pool_trim(p);
  p->dead = true;
  if (!p->lent) free(p);
}

void *ra_env_buf_lend(ra_env_buf *b) {
  if (!b->data) return NULL;
  blk_hdr *h = hdr_of(b->data);
  h->pool = b->pool;
  if (b->pool) b->pool->lent++;
  b->data = NULL;
  b->cap = 0;
  return h;
}

void ra_env_buf_return(void *token) {
  blk_hdr *h = token;
  if (!h) return;
  ra_env_pool *p = h->pool;
  h->pool = NULL;
  if (!p) {
    free(h);
    return;
  }
  p->lent--;
  if (!p->dead && p->nspare < p->max_spares && h->cap <= RA_ENV_SPARE_MAX) {
    p->spare[p->nspare++] = h;
    return;
  }
  free(h);
  if (p->dead && !p->lent) free(p);
}

void ra_env_buf_recycle(ra_env_buf *b) {
  if (!b->data) return;
  if (!b->pool) {
    ra_env_buf_free(b);
    return;
  }
  ra_env_buf_return(ra_env_buf_lend(b));
}

static int buf_reserve(ra_env_buf *b, size_t need) {
  if (need <= b->cap) return 0;
  if (!b->data && b->pool) { /* a spare that is large enough: no allocation */
    ra_env_pool *p = b->pool;
    for (size_t i = 0; i < p->nspare; i++) {
      if (p->spare[i]->cap < need) continue;
      blk_hdr *h = p->spare[i];
      p->spare[i] = p->spare[--p->nspare];
      b->data = h->data;
      b->cap = h->cap;
      return 0;
    }
  }
  size_t cap = b->cap ? b->cap : 256;
  while (cap < need) {
    if (cap > (SIZE_MAX - sizeof(blk_hdr)) / 2) return -ENOMEM;
    cap *= 2;
  }
  /* the old content is never needed again: free + malloc, no copy */
  blk_hdr *h = malloc(sizeof *h + cap);
  if (!h) return -ENOMEM;
  ra_env_buf_free(b);
  h->pool = NULL;
  h->cap = cap;
  b->data = h->data;
  b->cap = cap;
  return 0;
}

uint8_t *ra_env_seal_begin(ra_env_buf *b, size_t plain_len) {
  if (plain_len > SIZE_MAX - HEADROOM - RA_ENV_MAC_BYTES) return NULL;
  if (buf_reserve(b, HEADROOM + RA_ENV_MAC_BYTES + plain_len)) return NULL;
  return b->data + HEADROOM + RA_ENV_MAC_BYTES;
}

uint8_t *ra_env_seal_extend(ra_env_buf *b, size_t keep, size_t plain_len) {
  if (plain_len > SIZE_MAX - HEADROOM - RA_ENV_MAC_BYTES) return NULL;
  size_t need = HEADROOM + RA_ENV_MAC_BYTES + plain_len;
  if (need > b->cap && keep && b->data) {
    if (keep > plain_len) keep = plain_len;
    ra_env_buf nb = {.pool = b->pool};
    size_t want = b->cap * 2 > need ? b->cap * 2 : need;
    if (buf_reserve(&nb, want) && buf_reserve(&nb, need)) return NULL;
    memcpy(nb.data + HEADROOM + RA_ENV_MAC_BYTES, b->data + HEADROOM + RA_ENV_MAC_BYTES, keep);
    ra_env_buf_free(b);
    b->data = nb.data;
    b->cap = nb.cap;
  } else if (buf_reserve(b, need)) {
    return NULL;
  }
  return b->data + HEADROOM + RA_ENV_MAC_BYTES;
}

void ra_env_seal_end_at(ra_env_buf *b, const uint8_t key[RA_ENV_KEY_BYTES], size_t off,
                        size_t plain_len, const uint8_t **msg, size_t *msg_len) {
  uint8_t lone[RA_ENV_NONCE_BYTES], *nonce = lone;
  ra_env_pool *pool = b->pool;
  if (pool) {
    if (!pool->nonces_left) {
      randombytes_buf(pool->nonces, sizeof pool->nonces);
      pool->nonces_left = RA_ENV_NONCE_BATCH;
    }
    nonce = pool->nonces + (size_t)(--pool->nonces_left) * RA_ENV_NONCE_BYTES;
  } else {
    randombytes_buf(lone, sizeof lone);
  }
  uint8_t *mac = b->data + HEADROOM + off;
  uint8_t *p = mac + RA_ENV_MAC_BYTES;
  crypto_secretbox_detached(p, mac, p, plain_len, nonce, key); /* in place */
  uint8_t head[RA_TMSG_ENC_HEAD_MAX];
  size_t hl = ra_tmsg_encode_enc_head(head, sizeof head, nonce, plain_len + RA_ENV_MAC_BYTES);
  sodium_memzero(nonce, RA_ENV_NONCE_BYTES); /* never used twice */
  memcpy(mac - hl, head, hl);
  *msg = mac - hl;
  *msg_len = hl + RA_ENV_MAC_BYTES + plain_len;
}

void ra_env_seal_end(ra_env_buf *b, const uint8_t key[RA_ENV_KEY_BYTES], size_t plain_len,
                     const uint8_t **msg, size_t *msg_len) {
  ra_env_seal_end_at(b, key, 0, plain_len, msg, msg_len);
}

int ra_env_open(ra_env_buf *b, const uint8_t key[RA_ENV_KEY_BYTES],
                const uint8_t nonce[RA_ENV_NONCE_BYTES], const uint8_t *ct, size_t ct_len,
                const uint8_t **plain, size_t *plain_len) {
  if (ct_len < RA_ENV_MAC_BYTES) return -EBADMSG;
  size_t n = ct_len - RA_ENV_MAC_BYTES;
  if (buf_reserve(b, n ? n : 1)) return -ENOMEM;
  if (crypto_secretbox_open_detached(b->data, ct + RA_ENV_MAC_BYTES, ct, n, nonce, key) != 0)
    return -EBADMSG;
  *plain = b->data;
  *plain_len = n;
  return 0;
}

/* ---- replay set --------------------------------------------------------- */

void ra_replay_init(ra_replay *r, size_t limit) {
  memset(r, 0, sizeof *r);
  r->limit = limit ? limit : RA_REPLAY_DEFAULT_LIMIT;
  randombytes_buf(r->key, sizeof r->key);
}

void ra_replay_free(ra_replay *r) {
  free(r->slots);
  r->slots = NULL;
  r->cap = r->count = 0;
}

static uint64_t nonce_hash(const ra_replay *r, const uint8_t nonce[RA_ENV_NONCE_BYTES]) {
  uint8_t h[crypto_shorthash_BYTES];
  crypto_shorthash(h, nonce, RA_ENV_NONCE_BYTES, r->key);
  uint64_t v;
  memcpy(&v, h, sizeof v);
  return v ? v : 1; /* 0 marks an empty slot */
}

static void insert(uint64_t *slots, size_t cap, uint64_t v) {
  size_t i = (size_t)v & (cap - 1);
  while (slots[i]) i = (i + 1) & (cap - 1);
  slots[i] = v;
}

int ra_replay_check(ra_replay *r, const uint8_t nonce[RA_ENV_NONCE_BYTES]) {
  uint64_t v = nonce_hash(r, nonce);
  if (r->cap) {
    for (size_t i = (size_t)v & (r->cap - 1); r->slots[i]; i = (i + 1) & (r->cap - 1))
      if (r->slots[i] == v) return -EEXIST;
  }
  if (r->count >= r->limit) return -ENOSPC;
  if ((r->count + 1) * 2 > r->cap) {
    size_t cap = r->cap ? r->cap * 2 : 64;
    uint64_t *s = calloc(cap, sizeof *s);
    if (!s) return -ENOMEM;
    for (size_t i = 0; i < r->cap; i++)
      if (r->slots[i]) insert(s, cap, r->slots[i]);
    free(r->slots);
    r->slots = s;
    r->cap = cap;
  }
  insert(r->slots, r->cap, v);
  r->count++;
  return 0;
}
