/* Unit tests for attest/envelope: sealed key, secretbox envelopes, replay set.
 * The interop vector comes from an independent implementation
 * (libsodium-wrappers + cbor-x in Node: tests/attest/gen_envelope_vector.js). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <errno.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "raloop/attest/tunnel/envelope.h"
#include "raloop/attest/tunnel/msg.h"

static const char *V_SK = "77788f1a0cea001a2631dae5d05dbd062008d5b30f50b9e29beb2a7822289004";
static const char *V_PK = "4a3807d064d077181cc070989e76891d20dca5559548dc2c77c1a50273882b38";
static const char *V_K = "a0a1a2a3a4a5a6a7a8a9aaabacadaeafb0b1b2b3b4b5b6b7b8b9babbbcbdbebf";
static const char *V_SEALED =
    "f1b8b297a33793f219e9d2c2d236e82972a9f954e42a69f0445e4985d424bb398ced93f546048dbba5eba12066bd50"
    "76a677ff7095d4cc455a4993fa1742014fd154ab3adaa3cf1185bea7c124238f67";
static const char *V_PT =
    "b9000664747970656c687474705f72657175657374697265717565737449646131666d6574686f64634745546375726c"
    "662f68656c6c6f6768656164657273b9000064626f6479f7";
static const char *V_NONCE = "303132333435363738393a3b3c3d3e3f4041424344454647";
static const char *V_CT =
    "c3da647b85eef1bf8748bdff47559879e780a9ae31b2a10eb7e9a304465b237d6ef9b4be48f4f2276d0eb1ffc83f13ed"
    "7ad3c777eef8b91e23b3cdf5844dacf7d79bbbc669fcc3b45b9a03f272b981ed5bb88eefe1987c48";
static const char *V_ENV =
    "b90003647479706563656e63656e6f6e6365d8405818303132333435363738393a3b3c3d3e3f4041424344454647"
    "6a63697068657274657874d8405858c3da647b85eef1bf8748bdff47559879e780a9ae31b2a10eb7e9a304465b23"
    "7d6ef9b4be48f4f2276d0eb1ffc83f13ed7ad3c777eef8b91e23b3cdf5844dacf7d79bbbc669fcc3b45b9a03f272"
    "b981ed5bb88eefe1987c48";

static size_t unhex(const char *h, uint8_t *out, size_t cap) {
  size_t n = strlen(h) / 2;
  assert_true(n <= cap);
  for (size_t i = 0; i < n; i++) {
    unsigned v;
    assert_int_equal(sscanf(h + 2 * i, "%2x", &v), 1);
    out[i] = (uint8_t)v;
  }
  return n;
}

static int setup(void **st) {
  (void)st;
  return ra_env_init();
}

static void test_interop_sealed_key(void **st) {
  (void)st;
  uint8_t sk[32], pk[32], k[32], sealed[80], got[32];
  unhex(V_SK, sk, 32);
  unhex(V_PK, pk, 32);
  unhex(V_K, k, 32);
  assert_int_equal(unhex(V_SEALED, sealed, 80), 80);
  /* the key pair: pk is X25519(sk) */
  uint8_t pk2[32];
  crypto_scalarmult_base(pk2, sk);
  assert_memory_equal(pk, pk2, 32);
  assert_int_equal(ra_env_open_key(sealed, 80, pk, sk, got), 0);
  assert_memory_equal(got, k, 32);
  /* a flipped bit anywhere: refused */
  for (size_t i = 0; i < 80; i += 7) {
    sealed[i] ^= 0x10;
    assert_int_equal(ra_env_open_key(sealed, 80, pk, sk, got), -EBADMSG);
    sealed[i] ^= 0x10;
  }
  assert_int_equal(ra_env_open_key(sealed, 79, pk, sk, got), -EBADMSG);
  assert_int_equal(ra_env_open_key(NULL, 0, pk, sk, got), -EBADMSG);
  /* another key pair cannot open it */
  uint8_t pk3[32], sk3[32];
  assert_int_equal(ra_env_keypair(pk3, sk3), 0);
  assert_int_equal(ra_env_open_key(sealed, 80, pk3, sk3, got), -EBADMSG);
}

static void test_interop_envelope(void **st) {
  (void)st;
  uint8_t k[32], env[256], pt[256];
  unhex(V_K, k, 32);
  size_t envn = unhex(V_ENV, env, sizeof env);
  size_t ptn = unhex(V_PT, pt, sizeof pt);
  ra_tmsg m;
  assert_int_equal(ra_tmsg_decode(env, envn, &m), 0);
  assert_int_equal(m.type, RA_TMSG_ENC);
  ra_env_buf rx = {0};
  const uint8_t *plain;
  size_t plen;
  assert_int_equal(ra_env_open(&rx, k, m.enc.nonce.bytes, m.enc.ciphertext.bytes, m.enc.ciphertext.len, &plain, &plen), 0);
  assert_int_equal(plen, ptn);
  assert_memory_equal(plain, pt, ptn);
  ra_tmsg inner;
  assert_int_equal(ra_tmsg_decode(plain, plen, &inner), 0);
  assert_int_equal(inner.type, RA_TMSG_HTTP_REQUEST);
  assert_int_equal(inner.http_request.url.len, 6);
  assert_memory_equal(inner.http_request.url.ptr, "/hello", 6);
  /* same nonce, key and plaintext: our secretbox gives the same bytes */
  uint8_t nonce[24], ct[256], ours[256];
  unhex(V_NONCE, nonce, 24);
  size_t ctn = unhex(V_CT, ct, sizeof ct);
  assert_int_equal(ctn, ptn + 16);
  crypto_secretbox_easy(ours, pt, ptn, nonce, k);
  assert_memory_equal(ours, ct, ctn);
  ra_env_buf_free(&rx);
}

static void test_seal_open_round_trip_in_place(void **st) {
  (void)st;
  uint8_t key[32];
  ra_env_random_key(key);
  ra_env_buf tx = {0}, rx = {0};
  size_t sizes[] = {0, 1, 100, 65536, 1u << 20, 10};
  uint8_t *first_data = NULL;
  for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++) {
    size_t body_len = sizes[s];
    uint8_t *body = malloc(body_len + 1);
    randombytes_buf(body, body_len);
    size_t n = ra_tmsg_encode_ws_message(NULL, 0, RA_STR("c1"), false, body, body_len);
    uint8_t *p = ra_env_seal_begin(&tx, n);
    assert_non_null(p);
    assert_int_equal(ra_tmsg_encode_ws_message(p, n, RA_STR("c1"), false, body, body_len), n);
    const uint8_t *msg;
    size_t msg_len;
    ra_env_seal_end(&tx, key, n, &msg, &msg_len);
    assert_true(msg >= tx.data && msg + msg_len <= tx.data + tx.cap);
    if (s == 4) first_data = tx.data;
    if (s == 5) assert_ptr_equal(tx.data, first_data); /* reused, not re-allocated */

    ra_tmsg outer;
    assert_int_equal(ra_tmsg_decode(msg, msg_len, &outer), 0);
    assert_int_equal(outer.type, RA_TMSG_ENC);
    assert_int_equal(outer.enc.ciphertext.len, n + 16);
    const uint8_t *plain;
    size_t plen;
    assert_int_equal(ra_env_open(&rx, key, outer.enc.nonce.bytes, outer.enc.ciphertext.bytes,
                                 outer.enc.ciphertext.len, &plain, &plen), 0);
    ra_tmsg inner;
    assert_int_equal(ra_tmsg_decode(plain, plen, &inner), 0);
    assert_int_equal(inner.type, RA_TMSG_WS_MESSAGE);
    assert_int_equal(inner.ws_message.data.len, body_len);
    if (body_len) assert_memory_equal(inner.ws_message.data.ptr, body, body_len);
    /* a flipped bit in the ciphertext, the MAC or the nonce: refused */
    uint8_t *copy = malloc(msg_len);
    memcpy(copy, msg, msg_len);
    ra_tmsg o2;
    assert_int_equal(ra_tmsg_decode(copy, msg_len, &o2), 0);
    size_t flips[] = {0, 15, 16, o2.enc.ciphertext.len - 1};
    for (size_t f = 0; f < 4; f++) {
      uint8_t *bp = (uint8_t *)o2.enc.ciphertext.bytes + flips[f];
      *bp ^= 1;
      assert_int_equal(ra_env_open(&rx, key, o2.enc.nonce.bytes, o2.enc.ciphertext.bytes,
                                   o2.enc.ciphertext.len, &plain, &plen), -EBADMSG);
      *bp ^= 1;
    }
    ((uint8_t *)o2.enc.nonce.bytes)[3] ^= 0x80;
    assert_int_equal(ra_env_open(&rx, key, o2.enc.nonce.bytes, o2.enc.ciphertext.bytes,
                                 o2.enc.ciphertext.len, &plain, &plen), -EBADMSG);
    free(copy);
    free(body);
  }
  /* shorter than a MAC */
  const uint8_t *plain;
  size_t plen;
  uint8_t z[24] = {0};
  assert_int_equal(ra_env_open(&rx, key, z, z, 15, &plain, &plen), -EBADMSG);
  ra_env_buf_free(&tx);
  ra_env_buf_free(&rx);
}

static void test_seal_key_round_trip(void **st) {
  (void)st;
  uint8_t pk[32], sk[32], k[32], sealed[80], got[32];
  assert_int_equal(ra_env_keypair(pk, sk), 0);
  ra_env_random_key(k);
  assert_int_equal(ra_env_seal_key(k, pk, sealed), 0);
  assert_int_equal(ra_env_open_key(sealed, 80, pk, sk, got), 0);
  assert_memory_equal(k, got, 32);
  /* crypto_box_seal_open of libsodium itself agrees */
  assert_int_equal(crypto_box_seal_open(got, sealed, 80, pk, sk), 0);
  assert_memory_equal(k, got, 32);
}

static void test_replay(void **st) {
  (void)st;
  ra_replay r;
  ra_replay_init(&r, 0);
  assert_int_equal(r.limit, RA_REPLAY_DEFAULT_LIMIT);
  enum { N = 100000 };
  uint8_t (*nonces)[24] = malloc(sizeof(*nonces) * N);
  randombytes_buf(nonces, sizeof(*nonces) * N);
  for (size_t i = 0; i < N; i++) assert_int_equal(ra_replay_check(&r, nonces[i]), 0);
  for (size_t i = 0; i < N; i += 1) assert_int_equal(ra_replay_check(&r, nonces[i]), -EEXIST);
  assert_int_equal(r.count, N);
  assert_true(r.cap <= 4 * (size_t)N); /* load >= 1/4 after doubling */
  /* nonces that differ in one bit are distinct */
  uint8_t x[24];
  memcpy(x, nonces[0], 24);
  x[23] ^= 1;
  assert_int_equal(ra_replay_check(&r, x), 0);
  ra_replay_free(&r);

  ra_replay_init(&r, 3);
  uint8_t a[24] = {1}, b[24] = {2}, c[24] = {3}, d[24] = {4};
  assert_int_equal(ra_replay_check(&r, a), 0);
  assert_int_equal(ra_replay_check(&r, b), 0);
  assert_int_equal(ra_replay_check(&r, c), 0);
  assert_int_equal(ra_replay_check(&r, d), -ENOSPC);
  assert_int_equal(ra_replay_check(&r, a), -EEXIST); /* still known */
  ra_replay_free(&r);
  free(nonces);
}

/* Lending: a buffer lent out and returned is reused by the next message
 * without allocating; a pool freed while buffers are out goes with the last
 * of them (ASan/LSan check the frees). */
static void test_pool_lend_return(void **st) {
  (void)st;
  uint8_t key[32];
  ra_env_random_key(key);
  ra_env_pool *pool = NULL;
  assert_int_equal(ra_env_pool_new(2, &pool), 0);
  assert_non_null(pool);
  ra_env_buf tx = {.pool = pool};
  assert_null(ra_env_buf_lend(&tx)); /* nothing to lend yet */
  uint8_t *p = ra_env_seal_begin(&tx, 1000);
  assert_non_null(p);
  memset(p, 'a', 1000);
  const uint8_t *msg;
  size_t len;
  ra_env_seal_end(&tx, key, 1000, &msg, &len);
  /* the frame room before msg is ours to write (ASan checks it) */
  memset((uint8_t *)msg - RA_ENV_FRAME_ROOM, 0x82, RA_ENV_FRAME_ROOM);
  uint8_t *first = tx.data;
  void *tok = ra_env_buf_lend(&tx);
  assert_non_null(tok);
  assert_null(tx.data);
  assert_int_equal(tx.cap, 0);
  ra_env_buf_return(tok);
  /* taken back from the spares: the same memory, no allocation */
  p = ra_env_seal_begin(&tx, 500);
  assert_ptr_equal(tx.data, first);
  /* larger than every spare: a new buffer */
  ra_env_buf rx = {.pool = pool};
  assert_non_null(ra_env_seal_begin(&rx, 1u << 20));
  void *t1 = ra_env_buf_lend(&tx), *t2 = ra_env_buf_lend(&rx);
  ra_env_buf other = {0}; /* no pool: returning frees */
  assert_non_null(ra_env_seal_begin(&other, 10));
  void *t3 = ra_env_buf_lend(&other);
  ra_env_buf_return(t3);
  ra_env_buf_return(t1);
  ra_env_pool_free(pool); /* t2 still out */
  ra_env_buf_return(t2);  /* frees the buffer and the pool */
  ra_env_buf_return(NULL);
  ra_env_buf_free(&tx);
  ra_env_buf_free(&rx);
  ra_env_pool_free(NULL);
}

/* Recycling (issue 18): a decryption buffer emptied after each message goes
 * to its pool's spares and the next message decrypts into the same memory;
 * without a pool it is freed; ra_env_pool_trim frees the spares (LSan checks
 * that nothing leaks, ASan that nothing is freed twice). Sealing through a
 * pool-less buffer draws a fresh nonce per message. */
static void test_recycle_and_trim(void **st) {
  (void)st;
  uint8_t key[32];
  ra_env_random_key(key);
  ra_env_pool *pool = NULL;
  assert_int_equal(ra_env_pool_new(2, &pool), 0);
  ra_env_buf tx = {0}, rx = {.pool = pool};
  uint8_t *first = NULL;
  for (int i = 0; i < 3; i++) {
    uint8_t *p = ra_env_seal_begin(&tx, 100);
    memset(p, 'a' + i, 100);
    const uint8_t *msg;
    size_t len;
    ra_env_seal_end(&tx, key, 100, &msg, &len);
    ra_tmsg m;
    assert_int_equal(ra_tmsg_decode(msg, len, &m), 0);
    const uint8_t *plain;
    size_t plen;
    assert_int_equal(ra_env_open(&rx, key, m.enc.nonce.bytes, m.enc.ciphertext.bytes,
                                 m.enc.ciphertext.len, &plain, &plen), 0);
    assert_int_equal(plen, 100);
    assert_int_equal(plain[99], 'a' + i);
    if (i == 0) first = rx.data;
    else assert_ptr_equal(rx.data, first); /* from the spares: no allocation */
    ra_env_buf_recycle(&rx);
    assert_null(rx.data);
    assert_int_equal(rx.cap, 0);
  }
  ra_env_buf_recycle(&rx); /* empty: nothing to do */
  ra_env_pool_trim(pool);  /* the spare goes */
  assert_non_null(ra_env_seal_begin(&rx, 10));
  ra_env_buf_recycle(&rx);
  ra_env_buf_recycle(&tx); /* no pool: freed */
  assert_null(tx.data);
  ra_env_pool_free(pool); /* with its spare */
  /* pool-less sealing: two messages, two different nonces */
  uint8_t n[2][RA_ENV_NONCE_BYTES];
  for (int i = 0; i < 2; i++) {
    assert_non_null(ra_env_seal_begin(&tx, 1));
    const uint8_t *msg;
    size_t len;
    ra_env_seal_end(&tx, key, 1, &msg, &len);
    ra_tmsg m;
    assert_int_equal(ra_tmsg_decode(msg, len, &m), 0);
    memcpy(n[i], m.enc.nonce.bytes, sizeof n[i]);
  }
  assert_memory_not_equal(n[0], n[1], sizeof n[0]);
  ra_env_buf_free(&tx);
  ra_env_pool_trim(NULL);
}

/* seal_extend keeps what was written; seal_end_at seals a plaintext that
 * starts further in; both open to the same bytes; nonces never repeat
 * across batches. */
static void test_seal_extend_and_offset(void **st) {
  (void)st;
  uint8_t key[32];
  ra_env_random_key(key);
  ra_env_pool *pool = NULL;
  assert_int_equal(ra_env_pool_new(1, &pool), 0);
  ra_env_buf tx = {.pool = pool}, rx = {0};
  uint8_t *p = ra_env_seal_begin(&tx, 10);
  memcpy(p, "0123456789", 10);
  size_t n = 10;
  for (int i = 0; i < 12; i++) { /* grow past several reallocations */
    p = ra_env_seal_extend(&tx, n, n * 2);
    assert_non_null(p);
    memcpy(p + n, p, n);
    n *= 2;
  }
  for (size_t i = 0; i < n; i++) assert_int_equal(p[i], '0' + (int)(i % 10));
  /* the plaintext starts 3 bytes in */
  const uint8_t *msg;
  size_t len;
  ra_env_seal_end_at(&tx, key, 3, n - 3, &msg, &len);
  ra_tmsg m;
  assert_int_equal(ra_tmsg_decode(msg, len, &m), 0);
  assert_int_equal(m.type, RA_TMSG_ENC);
  const uint8_t *plain;
  size_t plen;
  assert_int_equal(ra_env_open(&rx, key, m.enc.nonce.bytes, m.enc.ciphertext.bytes, m.enc.ciphertext.len,
                               &plain, &plen), 0);
  assert_int_equal(plen, n - 3);
  assert_memory_equal(plain, "3456789", 7);
  /* nonces: distinct over several batches (pooled and pool-less buffers) */
  uint8_t seen[3 * RA_ENV_NONCE_BATCH][24];
  ra_env_buf lone = {0};
  for (size_t i = 0; i < 3 * RA_ENV_NONCE_BATCH; i++) {
    ra_env_buf *b = i % 2 ? &tx : &lone;
    p = ra_env_seal_begin(b, 1);
    p[0] = 1;
    ra_env_seal_end(b, key, 1, &msg, &len);
    assert_int_equal(ra_tmsg_decode(msg, len, &m), 0);
    memcpy(seen[i], m.enc.nonce.bytes, 24);
    for (size_t j = 0; j < i; j++) assert_memory_not_equal(seen[i], seen[j], 24);
    assert_int_equal(ra_env_open(&rx, key, m.enc.nonce.bytes, m.enc.ciphertext.bytes,
                                 m.enc.ciphertext.len, &plain, &plen), 0);
  }
  ra_env_buf_free(&tx);
  ra_env_buf_free(&rx);
  ra_env_buf_free(&lone);
  ra_env_pool_free(pool);
}


int main(void) {
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_interop_sealed_key),
    cmocka_unit_test(test_interop_envelope),
    cmocka_unit_test(test_seal_open_round_trip_in_place),
    cmocka_unit_test(test_seal_key_round_trip),
    cmocka_unit_test(test_replay),
    cmocka_unit_test(test_pool_lend_return),
    cmocka_unit_test(test_recycle_and_trim),
    cmocka_unit_test(test_seal_extend_and_offset),
  };
  return cmocka_run_group_tests(tests, setup, NULL);
}
