/* bench/floor.c: the cipher floor of a tunnelled round trip (floor.h). */
#include "bench/floor.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "bench/bench.h"

enum { MAC = crypto_secretbox_MACBYTES, NONCE = crypto_secretbox_NONCEBYTES };

typedef struct floor_bufs {
  uint8_t key[crypto_secretbox_KEYBYTES];
  uint8_t *up, *down, *ct, *pt; /* plaintexts, one ciphertext and one opened buffer */
  uint8_t *nonces;              /* 2 per round trip of a batch */
} floor_bufs;

/* One round trip: 0 or -EIO. */
static int round_trip(floor_bufs *b, size_t up, size_t down, const uint8_t *nonce) {
  int rc = 0;
  crypto_secretbox_easy(b->ct, b->up, up, nonce, b->key);                       /* client seals */
  if (crypto_secretbox_open_easy(b->pt, b->ct, up + MAC, nonce, b->key)) rc = -EIO; /* server opens */
  crypto_secretbox_easy(b->ct, b->down, down, nonce + NONCE, b->key);           /* server seals */
  if (crypto_secretbox_open_easy(b->pt, b->ct, down + MAC, nonce + NONCE, b->key)) rc = -EIO; /* client */
  return rc;
}

int bench_crypto_floor(size_t up, size_t down, size_t batch, size_t n, size_t warmup,
                       bench_samples *out, uint64_t *wall_ns) {
  if (!up || !down || !batch) return -EINVAL;
  size_t big = up > down ? up : down;
  floor_bufs b = {.up = malloc(up), .down = malloc(down), .ct = malloc(big + MAC),
                  .pt = malloc(big), .nonces = malloc(batch * 2 * NONCE)};
  int rc = 0;
  if (!b.up || !b.down || !b.ct || !b.pt || !b.nonces) {
    rc = -ENOMEM;
    goto out;
  }
  randombytes_buf(b.key, sizeof b.key);
  randombytes_buf(b.up, up);
  randombytes_buf(b.down, down);
  uint64_t t0 = 0;
  for (size_t i = 0; i < warmup + n && rc == 0; i++) {
    randombytes_buf(b.nonces, batch * 2 * NONCE);
    if (i == warmup) t0 = bench_now_ns();
    uint64_t s = bench_now_ns();
    for (size_t j = 0; j < batch && rc == 0; j++) rc = round_trip(&b, up, down, b.nonces + j * 2 * NONCE);
    uint64_t e = bench_now_ns();
    if (i >= warmup && bench_samples_add(out, (double)(e - s) / 1e6 / (double)batch)) rc = -ENOMEM;
  }
  if (rc == 0 && memcmp(b.pt, b.down, down)) rc = -EIO;
  *wall_ns = bench_now_ns() - t0;
out:
  sodium_memzero(b.key, sizeof b.key);
  free(b.up);
  free(b.down);
  free(b.ct);
  free(b.pt);
  free(b.nonces);
  return rc;
}
