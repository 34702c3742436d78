/* tests/apps/secrets/proto_test.c: ra-secrets' pure parts (apps/secrets
 * proto.c, crypto.c): the challenge table's lifecycle (single use, expiry,
 * what is remembered and for how long, a full table), the request parsers'
 * refusals, the transcripts, and the sealing of a secret to a key. */
/* memmem: _GNU_SOURCE is set by the build */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <sodium.h>

#include "../../../apps/secrets/crypto.c"
#include "../../../apps/secrets/proto.c"

static const uint8_t spki_a[] = {1, 2, 3};

static void table_lifecycle(void **st) {
  (void)st;
  sec_table t;
  assert_int_equal(sec_table_init(&t, 4), 0);
  sec_challenge *c = sec_table_add(&t, spki_a, sizeof spki_a, "svc", 1000, 100), *got;
  assert_non_null(c);
  assert_int_equal(c->expires_ms, 1100);
  uint8_t id[SEC_ID_BYTES];
  memcpy(id, c->id, sizeof id);
  uint8_t other[SEC_ID_BYTES];
  memcpy(other, id, sizeof other);
  other[0] ^= 1;
  assert_int_equal(sec_table_take(&t, other, 1050, &got), SEC_UNKNOWN_CHALLENGE);
  assert_null(got);
  assert_int_equal(sec_table_take(&t, id, 1050, &got), SEC_OK);
  assert_ptr_equal(got, c);
  assert_memory_equal(got->spki, spki_a, sizeof spki_a);
  /* single use */
  assert_int_equal(sec_table_take(&t, id, 1051, &got), SEC_CHALLENGE_USED);
  /* expiry: at expires_ms it is over */
  sec_challenge *e = sec_table_add(&t, spki_a, sizeof spki_a, "svc", 1000, 100);
  memcpy(id, e->id, sizeof id);
  assert_int_equal(sec_table_take(&t, id, 1100, &got), SEC_CHALLENGE_EXPIRED);
  /* remembered for the grace period, then forgotten */
  sec_table_purge(&t, 1100 + SEC_GRACE_MS);
  assert_int_equal(sec_table_take(&t, id, 1100 + SEC_GRACE_MS, &got), SEC_CHALLENGE_EXPIRED);
  sec_table_purge(&t, 1101 + SEC_GRACE_MS);
  assert_int_equal(sec_table_take(&t, id, 1101 + SEC_GRACE_MS, &got), SEC_UNKNOWN_CHALLENGE);
  assert_int_equal(t.count, 0);
  sec_table_free(&t);
}

static void table_full(void **st) {
  (void)st;
  sec_table t;
  assert_int_equal(sec_table_init(&t, 2), 0);
  sec_challenge *a = sec_table_add(&t, spki_a, sizeof spki_a, "a", 0, 1000);
  assert_non_null(a);
  uint8_t ida[SEC_ID_BYTES];
  memcpy(ida, a->id, sizeof ida);
  assert_non_null(sec_table_add(&t, spki_a, sizeof spki_a, "b", 0, 1000));
  /* two live challenges: full */
  assert_null(sec_table_add(&t, spki_a, sizeof spki_a, "c", 10, 1000));
  /* a used one makes room (it was only remembered to name a refusal) */
  sec_challenge *got;
  assert_int_equal(sec_table_take(&t, ida, 20, &got), SEC_OK);
  assert_non_null(sec_table_add(&t, spki_a, sizeof spki_a, "c", 30, 1000));
  assert_int_equal(t.count, 2);
  /* distinct random ids and challenges */
  assert_memory_not_equal(t.slots[0].id, t.slots[1].id, SEC_ID_BYTES);
  assert_memory_not_equal(t.slots[0].challenge, t.slots[1].challenge, SEC_CHALLENGE_BYTES);
  sec_table_free(&t);
}

#define PARSE_C(json) sec_parse_challenge_req(json, strlen(json), &r, err, sizeof err)

static void parse_challenge(void **st) {
  (void)st;
  sec_challenge_req r;
  char err[256];
  assert_int_equal(PARSE_C("{\"client_id\":\"a\"}"), SEC_ATTESTATION_MISSING);
  sec_challenge_req_clear(&r);
  assert_int_equal(PARSE_C("{\"client_id\":\"a\",\"attestation\":{}}"), SEC_ATTESTATION_MISSING);
  sec_challenge_req_clear(&r);
  assert_int_equal(PARSE_C("{\"client_id\":\"a\",\"attestation\":{\"cert\":\"PEM\"}}"), SEC_OK);
  assert_string_equal(r.cert, "PEM");
  assert_string_equal(r.client_id, "a");
  sec_challenge_req_clear(&r);
  assert_int_equal(
      PARSE_C("{\"client_id\":\"a\",\"attestation\":{\"quote\":\"AAEC\",\"key\":\"AwQF\","
              "\"event_log\":\"[]\"}}"),
      SEC_OK);
  assert_int_equal(r.quote_len, 3);
  assert_int_equal(r.key[2], 5);
  assert_string_equal(r.event_log, "[]");
  sec_challenge_req_clear(&r);
  /* refused: both forms, no client_id, a space in it, not base64, an array, duplicates, garbage */
  const char *bad[] = {
      "{\"client_id\":\"a\",\"attestation\":{\"cert\":\"P\",\"quote\":\"AAEC\"}}",
      "{\"attestation\":{\"cert\":\"P\"}}",
      "{\"client_id\":\"a b\",\"attestation\":{\"cert\":\"P\"}}",
      "{\"client_id\":\"\",\"attestation\":{\"cert\":\"P\"}}",
      "{\"client_id\":\"a\",\"attestation\":{\"quote\":\"!!\",\"key\":\"AwQF\"}}",
      "{\"client_id\":\"a\",\"attestation\":{\"quote\":\"AAEC\"}}",
      "{\"client_id\":\"a\",\"client_id\":\"b\",\"attestation\":{\"cert\":\"P\"}}",
      "[1]",
      "{\"client_id\":",
  };
  for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
    assert_int_equal(PARSE_C(bad[i]), SEC_BAD_REQUEST);
    if (i == 2 || i == 3) assert_null(r.client_id); /* an invalid id is never handed out (logs) */
    assert_true(err[0] != 0);
    sec_challenge_req_clear(&r);
  }
}

#define PARSE_F(json) sec_parse_fetch_req(json, strlen(json), &f, err, sizeof err)

static void parse_fetch(void **st) {
  (void)st;
  sec_fetch_req f;
  char err[256];
  assert_int_equal(
      PARSE_F("{\"challenge_id\":\"00112233445566778899aabbccddeeff\",\"name\":\"db.v1\","
              "\"signature\":\"AAEC\"}"),
      SEC_OK);
  assert_int_equal(f.id[15], 0xff);
  assert_string_equal(f.name, "db.v1");
  assert_int_equal(f.sig_len, 3);
  sec_fetch_req_clear(&f);
  assert_int_equal(
      PARSE_F("{\"challenge_id\":\"00112233445566778899aabbccddeeff\",\"name\":\"../x\","
              "\"signature\":\"AAEC\"}"),
      SEC_BAD_NAME);
  assert_int_equal(
      PARSE_F("{\"challenge_id\":\"00112233445566778899aabbccddeeff\",\"name\":\".hidden\","
              "\"signature\":\"AAEC\"}"),
      SEC_BAD_NAME);
  assert_int_equal(PARSE_F("{\"challenge_id\":\"0011\",\"name\":\"x\",\"signature\":\"AAEC\"}"),
                   SEC_BAD_REQUEST);
  assert_int_equal(PARSE_F("{\"challenge_id\":\"zz112233445566778899aabbccddeeff\",\"name\":\"x\","
                           "\"signature\":\"AAEC\"}"),
                   SEC_BAD_REQUEST);
  assert_int_equal(
      PARSE_F("{\"challenge_id\":\"00112233445566778899aabbccddeeff\",\"name\":\"x\"}"),
      SEC_BAD_REQUEST);
  assert_int_not_equal(
      PARSE_F("{\"challenge_id\":\"00112233445566778899aabbccddeeff\",\"name\":\"x\\u0000y\","
              "\"signature\":\"AAEC\"}"),
      SEC_OK);
}

static void reason_names(void **st) {
  (void)st;
  for (int i = 0; i < SEC__COUNT; i++)
    assert_int_equal(sec_reason_from_name(sec_reason_name(i)), i);
  assert_int_equal(sec_reason_status(SEC_CHALLENGE_USED), 403);
  assert_int_equal(sec_reason_status(SEC_NOT_FOUND), 404);
  assert_int_equal(sec_reason_status(SEC_TOO_MANY), 503);
  assert_int_equal(sec_reason_from_name("nope"), -1);
}

static void transcripts(void **st) {
  (void)st;
  uint8_t id[SEC_ID_BYTES] = {1}, ch[SEC_CHALLENGE_BYTES] = {2}, h[32] = {3};
  size_t a, b;
  uint8_t *t1 = sec_fetch_transcript(id, ch, h, "db", &a);
  uint8_t *t2 = sec_fetch_transcript(id, ch, h, "dc", &b);
  assert_int_equal(a, strlen(SEC_TAG_FETCH) + 1 + 16 + 32 + 32 + 2);
  assert_int_equal(a, b);
  assert_memory_not_equal(t1, t2, a);
  assert_memory_equal(t1, SEC_TAG_FETCH "", strlen(SEC_TAG_FETCH) + 1);
  free(t2);
  t2 = sec_challenge_transcript(id, ch, 0x0102030405060708ull, h, "svc", &b);
  assert_int_equal(b, strlen(SEC_TAG_CHALLENGE) + 1 + 16 + 32 + 8 + 32 + 3);
  size_t off = strlen(SEC_TAG_CHALLENGE) + 1 + 16 + 32;
  assert_int_equal(t2[off], 1);
  assert_int_equal(t2[off + 7], 8);
  free(t1);
  free(t2);
}

static void seal_sign(void **st) {
  (void)st;
  EVP_PKEY *k = sec_key_gen(), *other = sec_key_gen();
  assert_non_null(k);
  uint8_t *spki, *ospki;
  size_t sl, osl;
  assert_int_equal(sec_spki(k, &spki, &sl), 0);
  assert_int_equal(sec_spki(other, &ospki, &osl), 0);
  assert_true(sec_key_is_p256(spki, sl));
  assert_false(sec_key_is_p256(spki, sl - 1));
  uint8_t id[SEC_ID_BYTES] = {9}, ch[SEC_CHALLENGE_BYTES] = {8};
  const char *secret = "hunter2";
  sec_box b;
  assert_int_equal(sec_seal(spki, sl, id, ch, "db", (const uint8_t *)secret, 7, &b), 0);
  assert_int_equal(b.ct_len, 7 + 16);
  assert_null(memmem(b.ct, b.ct_len, secret, 7));
  uint8_t *pt;
  size_t pl;
  assert_int_equal(sec_open(k, id, ch, "db", &b, &pt, &pl), 0);
  assert_int_equal(pl, 7);
  assert_memory_equal(pt, secret, 7);
  free(pt);
  /* another key, another name, another challenge, a flipped byte: nothing */
  assert_int_equal(sec_open(other, id, ch, "db", &b, &pt, &pl), -1);
  assert_int_equal(sec_open(k, id, ch, "dc", &b, &pt, &pl), -1);
  ch[0] ^= 1;
  assert_int_equal(sec_open(k, id, ch, "db", &b, &pt, &pl), -1);
  ch[0] ^= 1;
  b.ct[0] ^= 1;
  assert_int_equal(sec_open(k, id, ch, "db", &b, &pt, &pl), -1);
  sec_box_clear(&b);
  /* an empty secret seals too */
  assert_int_equal(sec_seal(spki, sl, id, ch, "e", NULL, 0, &b), 0);
  assert_int_equal(sec_open(k, id, ch, "e", &b, &pt, &pl), 0);
  assert_int_equal(pl, 0);
  free(pt);
  sec_box_clear(&b);
  /* signatures */
  uint8_t *sig;
  size_t sgl;
  const uint8_t msg[] = "transcript";
  assert_int_equal(sec_sign(k, msg, sizeof msg, &sig, &sgl), 0);
  assert_int_equal(sec_verify(spki, sl, msg, sizeof msg, sig, sgl), 0);
  assert_int_equal(sec_verify(ospki, osl, msg, sizeof msg, sig, sgl), -1);
  assert_int_equal(sec_verify(spki, sl, msg, sizeof msg - 1, sig, sgl), -1);
  free(sig);
  /* a P-384 key is not accepted */
  EVP_PKEY *p384 = EVP_EC_gen("P-384");
  uint8_t *s384;
  size_t l384;
  assert_int_equal(sec_spki(p384, &s384, &l384), 0);
  assert_false(sec_key_is_p256(s384, l384));
  assert_int_not_equal(sec_seal(s384, l384, id, ch, "db", (const uint8_t *)secret, 7, &b), 0);
  free(s384);
  EVP_PKEY_free(p384);
  free(spki);
  free(ospki);
  EVP_PKEY_free(k);
  EVP_PKEY_free(other);
}

int main(void) {
  if (sodium_init() < 0) return 1;
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(table_lifecycle), cmocka_unit_test(table_full),
      cmocka_unit_test(parse_challenge), cmocka_unit_test(parse_fetch),
      cmocka_unit_test(reason_names),    cmocka_unit_test(transcripts),
      cmocka_unit_test(seal_sign),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
