/* tests/relay/relay_test.c: the relay's strict parser and base64url
 * (ws/relay_internal.h), and ra_relay_new's options. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "raloop/ws/relay.h"
#include "raloop/ws/relay_internal.h"

#define K "lknD8VYBoULme75UaqFq_Rx23px9dsa8bRr38l0mXhg"
#define N "kVp6JGNfZGmC1sf25x-rBkBcQO9Bnk-y"
#define B54 "AZfeimzH8cy3flHLf3yRWpESKQZ2t3ukJL4vroX4H2PAcSVJPBuTDg"

static const char *parse(const char *s) {
  ra_relay_msg m;
  const char *r = ra_relay_parse((const uint8_t *)s, strlen(s), 1024, &m);
  ra_relay_msg_clear(&m);
  return r ? r : "ok";
}

static void test_b64url(void **st) {
  uint8_t in[40], out[40];
  char s[64];
  for (size_t n = 0; n <= sizeof in; n++) {
    for (size_t i = 0; i < n; i++) in[i] = (uint8_t)(i * 37 + n);
    size_t l = ra_b64url_encode(in, n, s);
    assert_int_equal(l, (n * 4 + 2) / 3);
    assert_int_equal(ra_b64url_decode(s, l, out, sizeof out), (long)n);
    assert_memory_equal(in, out, n);
  }
  assert_int_equal(ra_b64url_decode("A", 1, out, 40), -1);      /* length 1 mod 4 */
  assert_int_equal(ra_b64url_decode("AB", 2, out, 40), -1);     /* trailing bits set */
  assert_int_equal(ra_b64url_decode("AA==", 4, out, 40), -1);   /* padding */
  assert_int_equal(ra_b64url_decode("A+A/", 4, out, 40), -1);   /* standard alphabet */
  assert_int_equal(ra_b64url_decode("AAAAAA", 6, out, 3), -1);  /* over cap */
  assert_int_equal(ra_b64url_decode("AA", 2, out, 40), 1);
}

static void test_parse_ok(void **st) {
  assert_string_equal(parse("{\"type\":\"CHALLENGE_RESPONSE\",\"publicKey\":\"" K "\",\"boxNonce\":\"" N
                            "\",\"box\":\"" B54 "\"}"), "ok");
  assert_string_equal(parse(" {\"box\":\"AAAAAAAAAAAAAAAAAAAAAA\",\"nonce\":\"" N "\",\"to\":\"" K
                            "\",\"type\":\"MESSAGE\"} "), "ok");
  ra_relay_msg m;
  const char *s = "{\"type\":\"MESSAGE\",\"to\":\"" K "\",\"nonce\":\"" N "\",\"box\":\"AAAAAAAAAAAAAAAAAAAAAAAA\"}";
  assert_null(ra_relay_parse((const uint8_t *)s, strlen(s), 1024, &m));
  assert_int_equal(m.type, RA_RELAY_T_MESSAGE);
  assert_int_equal(m.key_s.len, 43);
  assert_int_equal(m.nonce_s.len, 32);
  assert_int_equal(m.box_len, 18);
  ra_relay_msg_clear(&m);
}

static void test_parse_refused(void **st) {
  assert_string_equal(parse(""), "bad json");
  assert_string_equal(parse("{"), "bad json");
  assert_string_equal(parse("[]"), "bad json");
  assert_string_equal(parse("{} {}"), "bad json");
  assert_string_equal(parse("{\"type\":1}"), "bad json");
  assert_string_equal(parse("{\"type\":\"MESSAGE\",\"type\":\"MESSAGE\"}"), "bad json");
  assert_string_equal(parse("{\"type\":\"CHALLENGE\"}"), "unknown type");
  assert_string_equal(parse("{\"type\":\"MESSAGE\\u0000\"}"), "bad json"); /* no NUL */
  assert_string_equal(parse("{\"type\":\"MESSAGE\"}"), "bad field");
  /* short key, long nonce, extra field, non-string, box below 16 bytes */
  assert_string_equal(parse("{\"type\":\"MESSAGE\",\"to\":\"AAAA\",\"nonce\":\"" N "\",\"box\":\"" B54 "\"}"), "bad field");
  assert_string_equal(parse("{\"type\":\"MESSAGE\",\"to\":\"" K "\",\"nonce\":\"" N "AAAA\",\"box\":\"" B54 "\"}"), "bad field");
  assert_string_equal(parse("{\"type\":\"MESSAGE\",\"to\":\"" K "\",\"nonce\":\"" N "\",\"box\":\"" B54 "\",\"x\":1}"), "bad field");
  assert_string_equal(parse("{\"type\":\"MESSAGE\",\"to\":\"" K "\",\"nonce\":\"" N "\",\"box\":7}"), "bad field");
  assert_string_equal(parse("{\"type\":\"MESSAGE\",\"to\":\"" K "\",\"nonce\":\"" N "\",\"box\":\"AAAA\"}"), "bad field");
  /* the challenge box is exactly 40 bytes */
  assert_string_equal(parse("{\"type\":\"CHALLENGE_RESPONSE\",\"publicKey\":\"" K "\",\"boxNonce\":\"" N
                            "\",\"box\":\"" B54 "AA\"}"), "bad field");
  /* a box beyond max_box, and a message beyond any MESSAGE */
  char *big = malloc(8192);
  int n = snprintf(big, 8192, "{\"type\":\"MESSAGE\",\"to\":\"" K "\",\"nonce\":\"" N "\",\"box\":\"");
  memset(big + n, 'A', 1400);
  strcpy(big + n + 1400, "\"}");
  assert_string_equal(parse(big), "bad field");
  memset(big + n, 'A', 4000);
  strcpy(big + n + 4000, "\"}");
  assert_string_equal(parse(big), "too large");
  free(big);
}

static void test_relay_new(void **st) {
  ra_relay *r;
  uint8_t zero[32] = {0}, sk[32], pk[32];
  ra_relay_opts o = {.secret_key = zero};
  assert_int_equal(ra_relay_new(&o, &r), -EINVAL);
  assert_null(r);
  memset(sk, 7, sizeof sk);
  o.secret_key = sk;
  assert_int_equal(ra_relay_new(&o, &r), 0);
  ra_relay_public_key(r, pk);
  ra_relay *r2;
  assert_int_equal(ra_relay_new(&o, &r2), 0);
  uint8_t pk2[32];
  ra_relay_public_key(r2, pk2);
  assert_memory_equal(pk, pk2, 32);
  assert_int_equal(ra_relay_count(r), 0);
  ra_relay_free(r);
  ra_relay_free(r2);
  ra_relay_free(NULL);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_b64url),
      cmocka_unit_test(test_parse_ok),
      cmocka_unit_test(test_parse_refused),
      cmocka_unit_test(test_relay_new),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
