/* bench/floor.c: the crypto floor of the `large` scenario. */
#include "bench/floor.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "bench/bench.h"

int bench_crypto_floor(size_t size, size_t n, size_t warmup, bench_samples *out, uint64_t *wall_ns) {
  const size_t mac = crypto_secretbox_MACBYTES;
  uint8_t *msg = malloc(size), *ct = malloc(size + mac), *pt = malloc(size);
  int rc = 0;
  if (!msg || !ct || !pt) {
    rc = -ENOMEM;
    goto out;
  }
  uint8_t key[crypto_secretbox_KEYBYTES], nonce[crypto_secretbox_NONCEBYTES];
  randombytes_buf(key, sizeof key);
  randombytes_buf(msg, size);
  uint64_t t0 = 0;
  for (size_t i = 0; i < warmup + n && rc == 0; i++) {
    if (i == warmup) t0 = bench_now_ns();
    uint64_t s = bench_now_ns();
    /* the nonces are drawn per message, as the tunnel does */
    randombytes_buf(nonce, sizeof nonce);
    crypto_secretbox_easy(ct, msg, size, nonce, key);                   /* client seals */
    if (crypto_secretbox_open_easy(pt, ct, size + mac, nonce, key)) rc = -EIO; /* server opens */
    randombytes_buf(nonce, sizeof nonce);
    crypto_secretbox_easy(ct, pt, size, nonce, key);                    /* server seals */
    if (crypto_secretbox_open_easy(pt, ct, size + mac, nonce, key)) rc = -EIO; /* client opens */
    uint64_t e = bench_now_ns();
    if (i >= warmup && bench_samples_add(out, (double)(e - s) / 1e6)) rc = -ENOMEM;
  }
  if (rc == 0 && memcmp(pt, msg, size)) rc = -EIO;
  *wall_ns = bench_now_ns() - t0;
out:
  free(msg);
  free(ct);
  free(pt);
  return rc;
}
