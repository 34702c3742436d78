/* Unit tests for attest/tunnel_msg: the control-channel CBOR codec. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "raloop/attest/tunnel/msg.h"
#include "cborx_vectors.inc"

static uint8_t *unhex(const char *h, size_t *len) {
  size_t n = strlen(h) / 2;
  uint8_t *b = malloc(n ? n : 1);
  assert_non_null(b);
  for (size_t i = 0; i < n; i++) {
    unsigned v;
    assert_int_equal(sscanf(h + 2 * i, "%2x", &v), 1);
    b[i] = (uint8_t)v;
  }
  *len = n;
  return b;
}

static char *tohex(const uint8_t *b, size_t n) {
  char *s = malloc(2 * n + 1);
  assert_non_null(s);
  for (size_t i = 0; i < n; i++) sprintf(s + 2 * i, "%02x", b[i]);
  s[2 * n] = 0;
  return s;
}

static bool str_eq(ra_str s, const char *c) { return s.len == strlen(c) && memcmp(s.ptr, c, s.len) == 0; }
#define assert_str(s, c) assert_true(str_eq((s), (c)))

static int decode_hex(const char *h, ra_tmsg *m, uint8_t **keep) {
  size_t n;
  uint8_t *b = unhex(h, &n);
  int rc = ra_tmsg_decode(b, n, m);
  *keep = b;
  return rc;
}

/* ---- PROTOCOL.md §6 captured vectors ----------------------------------- */

static void test_captured_client_kx_ready(void **st) {
  (void)st;
  ra_tmsg m;
  uint8_t *b;
  assert_int_equal(decode_hex("b9000164747970656f636c69656e745f6b785f7265616479", &m, &b), 0);
  assert_int_equal(m.type, RA_TMSG_CLIENT_KX_READY);
  free(b);
}

static void test_captured_http_request_get(void **st) {
  (void)st;
  ra_tmsg m;
  uint8_t *b;
  assert_int_equal(decode_hex("b9000664747970656c687474705f7265717565737469726571756573744964763137393534393836313536383633766a6d706177716f666d6574686f64634745546375726c662f68656c6c6f6768656164657273b9000064626f6479f7", &m, &b), 0);
  assert_int_equal(m.type, RA_TMSG_HTTP_REQUEST);
  assert_str(m.http_request.request_id, "17954986156863vjmpawqo");
  assert_str(m.http_request.method, "GET");
  assert_str(m.http_request.url, "/hello");
  assert_false(m.http_request.has_body); /* undefined = absent */
  assert_false(m.http_request.has_timeout);
  ra_tmsg_iter it;
  ra_str k, v;
  ra_tmsg_iter_init(&it, m.http_request.headers);
  assert_false(ra_tmsg_headers_next(&it, &k, &v));
  free(b);
}

static void test_captured_http_response(void **st) {
  (void)st;
  ra_tmsg m;
  uint8_t *b;
  assert_int_equal(decode_hex("b9000664747970656d687474705f726573706f6e736569726571756573744964763137393534393836313536383633766a6d706177716f6673746174757318c86a73746174757354657874624f4b6768656164657273b900016c782d706f77657265642d6279674578707265737364626f647965776f726c64", &m, &b), 0);
  assert_int_equal(m.type, RA_TMSG_HTTP_RESPONSE);
  assert_int_equal(m.http_response.status, 200);
  assert_str(m.http_response.status_text, "OK");
  assert_true(m.http_response.has_body);
  assert_true(m.http_response.body_is_text);
  assert_int_equal(m.http_response.body.len, 5);
  assert_memory_equal(m.http_response.body.ptr, "world", 5);
  ra_tmsg_iter it;
  ra_str k, v;
  ra_tmsg_iter_init(&it, m.http_response.headers);
  assert_true(ra_tmsg_headers_next(&it, &k, &v));
  assert_str(k, "x-powered-by");
  assert_str(v, "Express");
  assert_false(ra_tmsg_headers_next(&it, &k, &v));
  free(b);
  /* the Hono variant: body as tag 64 bytes */
  assert_int_equal(decode_hex("b9000664747970656d687474705f726573706f6e736569726571756573744964763137393534393836313536383633766a6d706177716f6673746174757318c86a73746174757354657874624f4b6768656164657273b900016c782d706f77657265642d6279674578707265737364626f6479d84045776f726c64", &m, &b), 0);
  assert_true(m.http_response.has_body);
  assert_false(m.http_response.body_is_text);
  assert_memory_equal(m.http_response.body.ptr, "world", 5);
  free(b);
}

static void test_captured_ws(void **st) {
  (void)st;
  ra_tmsg m;
  uint8_t *b;
  assert_int_equal(decode_hex("b9000464747970656a77735f636f6e6e6563746c636f6e6e656374696f6e4964781977735f313739353439383631353735306961326339346f6c6f6375726c781977733a2f2f3132372e302e302e313a33363334392f6563686f6970726f746f636f6c7381627031", &m, &b), 0);
  assert_int_equal(m.type, RA_TMSG_WS_CONNECT);
  assert_str(m.ws_connect.connection_id, "ws_1795498615750ia2c94olo");
  assert_str(m.ws_connect.url, "ws://127.0.0.1:36349/echo");
  ra_tmsg_iter it;
  ra_str v;
  ra_tmsg_iter_init(&it, m.ws_connect.protocols);
  assert_true(ra_tmsg_strings_next(&it, &v));
  assert_str(v, "p1");
  assert_false(ra_tmsg_strings_next(&it, &v));
  free(b);

  assert_int_equal(decode_hex("b9000364747970656877735f6576656e746c636f6e6e656374696f6e4964781977735f313739353439383631353735306961326339346f6c6f696576656e7454797065646f70656e", &m, &b), 0);
  assert_int_equal(m.type, RA_TMSG_WS_EVENT);
  assert_int_equal(m.ws_event.event, RA_TMSG_EV_OPEN);
  assert_false(m.ws_event.has_code);
  free(b);

  assert_int_equal(decode_hex("b9000464747970656a77735f6d6573736167656c636f6e6e656374696f6e4964781977735f313739353439383631353735306961326339346f6c6f6464617461d840430102036864617461547970656b6172726179627566666572", &m, &b), 0);
  assert_int_equal(m.type, RA_TMSG_WS_MESSAGE);
  assert_false(m.ws_message.is_text);
  assert_int_equal(m.ws_message.data_type, RA_TMSG_DT_ARRAYBUFFER);
  assert_int_equal(m.ws_message.data.len, 3);
  assert_memory_equal(m.ws_message.data.ptr, "\x01\x02\x03", 3);
  free(b);
}

/* ---- cbor-x generated vectors: decode, re-encode, compare ---------------- */

static size_t reencode(const ra_tmsg *m, uint8_t *out, size_t cap) {
  ra_header hs[64];
  size_t n = 0;
  ra_tmsg_iter it;
  switch (m->type) {
  case RA_TMSG_CLIENT_KX_READY:
    return ra_tmsg_encode_client_kx_ready(out, cap);
  case RA_TMSG_SERVER_KX: {
    const ra_tmsg_server_kx *k = &m->server_kx;
    ra_tmsg_server_kx_out o = {
      .x25519_public_key = k->x25519_public_key.bytes, .quote = k->quote,
      .runtime_data = k->runtime_data, .vd_kind = k->vd_kind, .vd_val = k->vd_val,
      .vd_iat = k->vd_iat, .vd_signature = k->vd_signature, .vd_bytes = k->vd_bytes,
    };
    static char vcek[4096], ask[4096], ark[4096]; /* PEM certificates: a few KiB */
    if (k->has_sev_snp) {
      snprintf(vcek, sizeof vcek, "%.*s", (int)k->vcek_cert.len, k->vcek_cert.ptr);
      o.vcek_cert = vcek;
      if (k->has_ask_cert) { snprintf(ask, sizeof ask, "%.*s", (int)k->ask_cert.len, k->ask_cert.ptr); o.ask_cert = ask; }
      if (k->has_ark_cert) { snprintf(ark, sizeof ark, "%.*s", (int)k->ark_cert.len, k->ark_cert.ptr); o.ark_cert = ark; }
    }
    return ra_tmsg_encode_server_kx(out, cap, &o);
  }
  case RA_TMSG_CLIENT_KX:
    return ra_tmsg_encode_client_kx(out, cap, m->client_kx.sealed_key.bytes, m->client_kx.sealed_key.len);
  case RA_TMSG_ENC:
    return ra_tmsg_encode_enc(out, cap, m->enc.nonce.bytes, m->enc.ciphertext.bytes, m->enc.ciphertext.len);
  case RA_TMSG_HTTP_REQUEST: {
    /* header text -> bytes -> text again: the encoder's mapping undone */
    ra_str hseq = m->http_request.headers;
    uint8_t *own;
    assert_int_equal(ra_tmsg_headers_to_bytes(&hseq, &own), 0);
    ra_tmsg_iter_init(&it, hseq);
    while (n < 64 && ra_tmsg_headers_next(&it, &hs[n].name, &hs[n].value)) n++;
    ra_tmsg_http_request_out o = {
      .request_id = m->http_request.request_id, .method = m->http_request.method,
      .url = m->http_request.url, .headers = hs, .n_headers = n,
      .has_body = m->http_request.has_body, .body_is_text = m->http_request.body_is_text,
      .body = m->http_request.body.ptr, .body_len = m->http_request.body.len,
    };
    size_t len = ra_tmsg_encode_http_request(out, cap, &o);
    free(own);
    return len;
  }
  case RA_TMSG_HTTP_RESPONSE: {
    ra_str hseq = m->http_response.headers;
    uint8_t *own;
    assert_int_equal(ra_tmsg_headers_to_bytes(&hseq, &own), 0);
    ra_tmsg_iter_init(&it, hseq);
    while (n < 64 && ra_tmsg_headers_next(&it, &hs[n].name, &hs[n].value)) n++;
    char err[256];
    ra_tmsg_http_response_out o = {
      .request_id = m->http_response.request_id, .status = m->http_response.status,
      .status_text = m->http_response.status_text, .headers = hs, .n_headers = n,
      .has_body = m->http_response.has_body, .body_is_text = m->http_response.body_is_text,
      .body = m->http_response.body.ptr, .body_len = m->http_response.body.len,
    };
    if (m->http_response.has_error) {
      snprintf(err, sizeof err, "%.*s", (int)m->http_response.error.len, m->http_response.error.ptr);
      o.error = err;
    }
    size_t len = ra_tmsg_encode_http_response(out, cap, &o);
    free(own);
    return len;
  }
  case RA_TMSG_WS_CONNECT: {
    ra_str ps[16];
    ra_tmsg_iter_init(&it, m->ws_connect.protocols);
    while (n < 16 && ra_tmsg_strings_next(&it, &ps[n])) n++;
    return ra_tmsg_encode_ws_connect(out, cap, m->ws_connect.connection_id, m->ws_connect.url, ps, n);
  }
  case RA_TMSG_WS_MESSAGE:
    return ra_tmsg_encode_ws_message(out, cap, m->ws_message.connection_id, m->ws_message.is_text,
                                     m->ws_message.data.ptr, m->ws_message.data.len);
  case RA_TMSG_WS_CLOSE:
    return ra_tmsg_encode_ws_close(out, cap, m->ws_close.connection_id,
                                   m->ws_close.has_code ? m->ws_close.code : -1,
                                   m->ws_close.has_reason ? m->ws_close.reason : ra_str_make(NULL, 0));
  case RA_TMSG_WS_EVENT: {
    char err[256];
    if (m->ws_event.has_error)
      snprintf(err, sizeof err, "%.*s", (int)m->ws_event.error.len, m->ws_event.error.ptr);
    return ra_tmsg_encode_ws_event(out, cap, m->ws_event.connection_id, m->ws_event.event,
                                   m->ws_event.has_code ? m->ws_event.code : -1,
                                   m->ws_event.has_reason ? m->ws_event.reason : ra_str_make(NULL, 0),
                                   m->ws_event.has_error ? err : NULL);
  }
  default:
    fail_msg("unexpected type");
    return 0;
  }
}

static void check_reencode(const char *name, const char *in_hex, const char *want_hex) {
  ra_tmsg m;
  uint8_t *b;
  int rc = decode_hex(in_hex, &m, &b);
  if (rc != 0) fail_msg("%s: decode failed %d", name, rc);
  size_t need = reencode(&m, NULL, 0);
  uint8_t *out = malloc(need + 1);
  assert_int_equal(reencode(&m, out, need), need);
  char *got = tohex(out, need);
  if (strcmp(got, want_hex) != 0) fail_msg("%s:\n got  %s\n want %s", name, got, want_hex);
  free(got);
  free(out);
  free(b);
}

static void test_cborx_vectors(void **st) {
  (void)st;
  for (size_t i = 0; i < sizeof cborx_vectors / sizeof cborx_vectors[0]; i++) {
    check_reencode(cborx_vectors[i].name, cborx_vectors[i].ref, cborx_vectors[i].norm);
    check_reencode(cborx_vectors[i].name, cborx_vectors[i].norm, cborx_vectors[i].norm);
  }
}

static void test_cborx_field_values(void **st) {
  (void)st;
  ra_tmsg m;
  uint8_t *b;
  for (size_t i = 0; i < sizeof cborx_vectors / sizeof cborx_vectors[0]; i++) {
    const struct cborx_vector *v = &cborx_vectors[i];
    assert_int_equal(decode_hex(v->ref, &m, &b), 0);
    if (!strcmp(v->name, "server_kx_tdx_nonce")) {
      assert_int_equal(m.server_kx.vd_kind, RA_TMSG_VD_NONCE);
      assert_int_equal(m.server_kx.vd_val.len, 32);
      assert_int_equal(m.server_kx.vd_iat.len, 8);
      assert_int_equal(m.server_kx.vd_signature.len, 64);
      assert_true(m.server_kx.has_runtime_data);
      assert_int_equal(m.server_kx.quote.len, 600);
      assert_int_equal(m.server_kx.x25519_public_key.ptr[0], 7);
      assert_int_equal(m.server_kx.x25519_public_key.ptr[1], 10);
    } else if (!strcmp(v->name, "server_kx_omitted_optionals")) {
      assert_false(m.server_kx.has_runtime_data);
      assert_int_equal(m.server_kx.vd_kind, RA_TMSG_VD_NONE);
      assert_false(m.server_kx.has_sev_snp);
    } else if (!strcmp(v->name, "server_kx_sev")) {
      assert_int_equal(m.server_kx.vd_kind, RA_TMSG_VD_BYTES);
      assert_true(m.server_kx.has_sev_snp);
      assert_false(m.server_kx.has_ask_cert);
      assert_true(m.server_kx.has_ark_cert);
      assert_str(m.server_kx.ark_cert, "ark");
    } else if (!strcmp(v->name, "server_kx_sev_snp_report")) {
      assert_int_equal(m.server_kx.quote.len, 1184);
      assert_false(m.server_kx.has_runtime_data);
      assert_int_equal(m.server_kx.vd_kind, RA_TMSG_VD_BYTES);
      assert_int_equal(m.server_kx.vd_bytes.len, 32);
      assert_true(m.server_kx.has_sev_snp && m.server_kx.has_ask_cert && m.server_kx.has_ark_cert);
      assert_true(m.server_kx.vcek_cert.len > 1400 && m.server_kx.ask_cert.len > 2000);
      assert_memory_equal(m.server_kx.ark_cert.ptr, "-----BEGIN CERTIFICATE-----\n", 28);
    } else if (!strcmp(v->name, "http_request_bytes_body_timeout")) {
      assert_true(m.http_request.has_body);
      assert_false(m.http_request.body_is_text);
      assert_int_equal(m.http_request.body.len, 300);
      assert_true(m.http_request.has_timeout);
      assert_true(m.http_request.timeout == 1500.0);
    } else if (!strcmp(v->name, "http_request_post_json")) {
      ra_tmsg_iter it;
      ra_str k, val;
      ra_tmsg_iter_init(&it, m.http_request.headers);
      assert_true(ra_tmsg_headers_next(&it, &k, &val));
      assert_str(k, "content-type");
      assert_true(ra_tmsg_headers_next(&it, &k, &val));
      assert_str(k, "X-Mixed-Case"); /* case kept as sent */
      assert_true(m.http_request.body_is_text);
      assert_str(m.http_request.url, "http://127.0.0.1:36349/echo?x=1");
    } else if (!strcmp(v->name, "http_response_multi_header")) {
      ra_tmsg_iter it;
      ra_str k, val;
      ra_tmsg_iter_init(&it, m.http_response.headers);
      assert_true(ra_tmsg_headers_next(&it, &k, &val));
      assert_str(k, "set-cookie"); assert_str(val, "a=1");
      assert_true(ra_tmsg_headers_next(&it, &k, &val));
      assert_str(k, "set-cookie"); assert_str(val, "b=2");
      assert_true(ra_tmsg_headers_next(&it, &k, &val));
      assert_str(k, "x-one"); assert_str(val, "1");
      assert_false(ra_tmsg_headers_next(&it, &k, &val));
      assert_int_equal(m.http_response.status, 201);
      assert_true(m.http_response.has_body);
      assert_int_equal(m.http_response.body.len, 0);
    } else if (!strcmp(v->name, "http_response_204_null")) {
      assert_false(m.http_response.has_body);
    } else if (!strcmp(v->name, "http_response_error")) {
      assert_true(m.http_response.has_error);
      assert_str(m.http_response.error, "boom");
    } else if (!strcmp(v->name, "ws_close_undefined")) {
      assert_false(m.ws_close.has_code);
      assert_false(m.ws_close.has_reason);
    } else if (!strcmp(v->name, "ws_close_args")) {
      assert_int_equal(m.ws_close.code, 1000);
      assert_str(m.ws_close.reason, "done");
    } else if (!strcmp(v->name, "ws_event_close")) {
      assert_int_equal(m.ws_event.event, RA_TMSG_EV_CLOSE);
      assert_int_equal(m.ws_event.code, 4000);
      assert_str(m.ws_event.reason, "bye");
    } else if (!strcmp(v->name, "ws_message_text")) {
      assert_true(m.ws_message.is_text);
      assert_int_equal(m.ws_message.data_type, RA_TMSG_DT_STRING);
    } else if (!strcmp(v->name, "enc")) {
      assert_int_equal(m.enc.nonce.len, 24);
      assert_int_equal(m.enc.ciphertext.len, 300);
    }
    free(b);
  }
}

/* ---- hand-made variants: indefinite lengths, odd but valid shapes -------- */

static void test_indefinite_containers(void **st) {
  (void)st;
  ra_tmsg m;
  uint8_t *b;
  /* {_ "type":"http_response","requestId":"r","status":200.0 (f64),
   *    "headers":{_ "a":[_ "1","2"], "b":"x", "c":undefined, "d":[]},
   *    "body":h'00'} */
  const char *h =
      "bf" "6474797065" "6d687474705f726573706f6e7365"
      "69726571756573744964" "6172"
      "66737461747573" "fb4069000000000000"
      "6768656164657273" "bf" "6161" "9f" "6131" "6132" "ff" "6162" "6178" "6163" "f7" "6164" "80" "ff"
      "64626f6479" "4100"
      "ff";
  assert_int_equal(decode_hex(h, &m, &b), 0);
  assert_int_equal(m.type, RA_TMSG_HTTP_RESPONSE);
  assert_int_equal(m.http_response.status, 200);
  assert_int_equal(m.http_response.status_text.len, 0);
  ra_tmsg_iter it;
  ra_str k, v;
  ra_tmsg_iter_init(&it, m.http_response.headers);
  assert_true(ra_tmsg_headers_next(&it, &k, &v)); assert_str(k, "a"); assert_str(v, "1");
  assert_true(ra_tmsg_headers_next(&it, &k, &v)); assert_str(k, "a"); assert_str(v, "2");
  assert_true(ra_tmsg_headers_next(&it, &k, &v)); assert_str(k, "b"); assert_str(v, "x");
  assert_false(ra_tmsg_headers_next(&it, &k, &v));
  free(b);

  /* ws_connect with an indefinite protocols array, shortest map head */
  h = "a4" "6474797065" "6a77735f636f6e6e656374" "6c636f6e6e656374696f6e4964" "6163"
      "6375726c" "6161" "6970726f746f636f6c73" "9f" "6178" "6179" "ff";
  assert_int_equal(decode_hex(h, &m, &b), 0);
  ra_tmsg_iter_init(&it, m.ws_connect.protocols);
  assert_true(ra_tmsg_strings_next(&it, &v)); assert_str(v, "x");
  assert_true(ra_tmsg_strings_next(&it, &v)); assert_str(v, "y");
  assert_false(ra_tmsg_strings_next(&it, &v));
  free(b);

  /* null protocols, null reason, unknown type */
  assert_int_equal(decode_hex("a2" "6474797065" "63666f6f" "6178" "f6", &m, &b), 0);
  assert_int_equal(m.type, RA_TMSG_UNKNOWN);
  assert_str(m.type_name, "foo");
  free(b);
  /* duplicate key: the last wins */
  assert_int_equal(decode_hex("a2" "6474797065" "63666f6f" "6474797065" "6f636c69656e745f6b785f7265616479", &m, &b), 0);
  assert_int_equal(m.type, RA_TMSG_CLIENT_KX_READY);
  free(b);
}

static void expect_bad(const char *what, const char *h) {
  ra_tmsg m;
  uint8_t *b;
  int rc = decode_hex(h, &m, &b);
  if (rc != -EBADMSG) fail_msg("%s: expected -EBADMSG, got %d", what, rc);
  free(b);
}

static void test_rejects(void **st) {
  (void)st;
  ra_tmsg m;
  assert_int_equal(ra_tmsg_decode(NULL, 0, &m), -EBADMSG);
  expect_bad("empty map", "a0");
  expect_bad("not a map", "8161");
  expect_bad("type not text", "a1" "6474797065" "01");
  expect_bad("type bytes", "a1" "6474797065" "43656e63");
  expect_bad("trailing bytes", "a1" "6474797065" "63666f6f" "00");
  expect_bad("truncated", "a2" "6474797065" "63666f6f");
  expect_bad("truncated string", "a1" "6474797065" "63666f");
  expect_bad("non-text key", "a2" "6474797065" "63666f6f" "01" "02");
  expect_bad("indefinite text", "a1" "6474797065" "7f" "6166" "626f6f" "ff");
  expect_bad("stray break", "a1" "6474797065" "ff");
  expect_bad("break in definite map", "a2" "6474797065" "63666f6f" "ff");
  expect_bad("unterminated indefinite map", "bf" "6474797065" "63666f6f");
  expect_bad("reserved additional info", "a1" "6474797065" "1c");
  /* enc: nonce of 23 bytes; ciphertext shorter than a MAC; missing field */
  expect_bad("enc nonce 23", "a3" "6474797065" "63656e63" "656e6f6e6365" "57" "0000000000000000000000000000000000000000000000"
             "6a63697068657274657874" "50" "00000000000000000000000000000000");
  expect_bad("enc ct 15", "a3" "6474797065" "63656e63" "656e6f6e6365" "58" "18" "000000000000000000000000000000000000000000000000"
             "6a63697068657274657874" "4f" "000000000000000000000000000000");
  expect_bad("enc missing ct", "a2" "6474797065" "63656e63" "656e6f6e6365" "58" "18" "000000000000000000000000000000000000000000000000");
  expect_bad("enc nonce as text", "a3" "6474797065" "63656e63" "656e6f6e6365" "78" "18" "414141414141414141414141414141414141414141414141"
             "6a63697068657274657874" "50" "00000000000000000000000000000000");
  /* tag other than 64 on a byte field */
  expect_bad("tag 2 bytes", "a2" "6474797065" "69636c69656e745f6b78" "727365616c656453796d6d65747269634b6579" "c2" "4100");
  /* tag 64 on a non-byte value */
  expect_bad("tag 64 on text", "a2" "6474797065" "69636c69656e745f6b78" "727365616c656453796d6d65747269634b6579" "d840" "6100");
  /* http_request: method as int; headers as array; header value int */
  const char *pre = "6474797065" "6c687474705f72657175657374" "69726571756573744964" "6131" "6375726c" "612f";
  char buf[512];
  snprintf(buf, sizeof buf, "a4%s666d6574686f64" "01", pre);
  expect_bad("method int", buf);
  snprintf(buf, sizeof buf, "a3%s", pre);
  expect_bad("method missing", buf);
  snprintf(buf, sizeof buf, "a5%s666d6574686f64" "63474554" "6768656164657273" "80", pre);
  expect_bad("headers array", buf);
  snprintf(buf, sizeof buf, "a5%s666d6574686f64" "63474554" "6768656164657273" "a1" "6161" "01", pre);
  expect_bad("header value int", buf);
  snprintf(buf, sizeof buf, "a5%s666d6574686f64" "63474554" "6768656164657273" "a1" "6161" "81" "01", pre);
  expect_bad("header array of int", buf);
  /* the containers in a header value (one reader with the iterator) */
  snprintf(buf, sizeof buf, "a5%s666d6574686f64" "63474554" "6768656164657273" "a1" "6161" "82" "6131" "ff", pre);
  expect_bad("break in a definite header array", buf);
  snprintf(buf, sizeof buf, "a5%s666d6574686f64" "63474554" "6768656164657273" "bf" "6161" "9f" "6131" "01" "ff" "ff", pre);
  expect_bad("int in an indefinite header array", buf);
  snprintf(buf, sizeof buf, "a5%s666d6574686f64" "63474554" "6768656164657273" "bf" "01" "6131" "ff", pre);
  expect_bad("int key in an indefinite headers map", buf);
  snprintf(buf, sizeof buf, "a5%s666d6574686f64" "63474554" "6768656164657273" "a1" "6161" "a0", pre);
  expect_bad("header value map", buf);
  snprintf(buf, sizeof buf, "a5%s666d6574686f64" "63474554" "64626f6479" "01", pre);
  expect_bad("body int", buf);
  snprintf(buf, sizeof buf, "a5%s666d6574686f64" "63474554" "6774696d656f7574" "6131", pre);
  expect_bad("timeout text", buf);
  /* http_response: status fractional, negative, too big, missing */
  const char *rp = "6474797065" "6d687474705f726573706f6e7365" "69726571756573744964" "6131" "66737461747573";
  snprintf(buf, sizeof buf, "a3%s" "fb3ff8000000000000", rp);
  expect_bad("status 1.5", buf);
  snprintf(buf, sizeof buf, "a3%s" "20", rp);
  expect_bad("status -1", buf);
  snprintf(buf, sizeof buf, "a3%s" "1903e8", rp);
  expect_bad("status 1000", buf);
  snprintf(buf, sizeof buf, "a3%s" "fb7ff8000000000000", rp);
  expect_bad("status NaN", buf);
  /* ws_event with an unknown eventType; ws_close code out of range */
  expect_bad("ws_event bad", "a3" "6474797065" "6877735f6576656e74" "6c636f6e6e656374696f6e4964" "6163" "696576656e7454797065" "63626164");
  expect_bad("ws_close code", "a3" "6474797065" "6877735f636c6f7365" "6c636f6e6e656374696f6e4964" "6163" "64636f6465" "1a00010000");
  expect_bad("ws_message no data", "a2" "6474797065" "6a77735f6d657373616765" "6c636f6e6e656374696f6e4964" "6163");
  /* ws_connect: protocols not all text, or not an array */
  expect_bad("protocols int", "a4" "6474797065" "6a77735f636f6e6e656374" "6c636f6e6e656374696f6e4964" "6163"
             "6375726c" "6161" "6970726f746f636f6c73" "82" "6178" "01");
  expect_bad("protocols break", "a4" "6474797065" "6a77735f636f6e6e656374" "6c636f6e6e656374696f6e4964" "6163"
             "6375726c" "6161" "6970726f746f636f6c73" "9f" "6178" "01" "ff");
  expect_bad("protocols map", "a4" "6474797065" "6a77735f636f6e6e656374" "6c636f6e6e656374696f6e4964" "6163"
             "6375726c" "6161" "6970726f746f636f6c73" "a0");
  /* nested maps: a known field of the wrong type */
  expect_bad("bodyStreams window text", "a3" "6474797065" "69636c69656e745f6b78" "727365616c656453796d6d65747269634b6579"
             "4100" "6b626f647953747265616d73" "a2" "6677696e646f77" "6131" "656368756e6b" "01");
  /* server_kx: key of 31 bytes; verifier_data as text */
  expect_bad("server_kx key 31", "a3" "6474797065" "697365727665725f6b78" "6f7832353531395075626c69634b6579" "581f"
             "00000000000000000000000000000000000000000000000000000000000000" "6571756f7465" "4100");
}

static void test_deep_nesting(void **st) {
  (void)st;
  /* an unknown key whose value nests 31 arrays is skipped; 40 is refused */
  char buf[256];
  for (int depth = 31; depth <= 40; depth += 9) {
    size_t n = 0;
    n += (size_t)sprintf(buf + n, "a2" "6474797065" "63666f6f" "6178");
    for (int i = 0; i < depth; i++) n += (size_t)sprintf(buf + n, "81");
    n += (size_t)sprintf(buf + n, "00");
    ra_tmsg m;
    uint8_t *b;
    int rc = decode_hex(buf, &m, &b);
    assert_int_equal(rc, depth <= 32 ? 0 : -EBADMSG);
    free(b);
  }
  /* a huge declared count with nothing behind it */
  expect_bad("huge map", "a2" "6474797065" "63666f6f" "6178" "bb7fffffffffffffff");
  expect_bad("huge array", "a2" "6474797065" "63666f6f" "6178" "9b7fffffffffffffff" "00");
  expect_bad("huge bytes", "a2" "6474797065" "63666f6f" "6178" "5b7fffffffffffffff" "00");
}

/* 1 MiB binary body: one view into the input, no copy; encoders measure. */
static void test_large_body_zero_copy(void **st) {
  (void)st;
  size_t blen = 1u << 20;
  uint8_t *body = malloc(blen);
  for (size_t i = 0; i < blen; i++) body[i] = (uint8_t)(i * 31);
  ra_header hs[] = {{RA_STR("Set-Cookie"), RA_STR("a=1")}, {RA_STR("Content-Type"), RA_STR("application/octet-stream")},
                    {RA_STR("set-cookie"), RA_STR("b=2")}};
  ra_tmsg_http_response_out o = {.request_id = RA_STR("req"), .status = 200, .status_text = RA_STR("OK"),
                                 .headers = hs, .n_headers = 3, .has_body = true, .body = body, .body_len = blen};
  size_t need = ra_tmsg_encode_http_response(NULL, 0, &o);
  assert_true(need > blen);
  uint8_t *small = calloc(1, 32); /* too small: never written past cap */
  assert_int_equal(ra_tmsg_encode_http_response(small, 16, &o), need);
  for (int i = 16; i < 32; i++) assert_int_equal(small[i], 0);
  free(small);
  uint8_t *enc = malloc(need);
  assert_int_equal(ra_tmsg_encode_http_response(enc, need, &o), need);
  ra_tmsg m;
  assert_int_equal(ra_tmsg_decode(enc, need, &m), 0);
  assert_int_equal(m.http_response.body.len, blen);
  assert_true(m.http_response.body.bytes >= enc && m.http_response.body.bytes + blen <= enc + need);
  assert_memory_equal(m.http_response.body.ptr, body, blen);
  ra_tmsg_iter it;
  ra_str k, v;
  ra_tmsg_iter_init(&it, m.http_response.headers);
  assert_true(ra_tmsg_headers_next(&it, &k, &v)); assert_str(k, "set-cookie"); assert_str(v, "a=1");
  assert_true(ra_tmsg_headers_next(&it, &k, &v)); assert_str(k, "set-cookie"); assert_str(v, "b=2");
  assert_true(ra_tmsg_headers_next(&it, &k, &v)); assert_str(k, "content-type");
  assert_false(ra_tmsg_headers_next(&it, &k, &v));
  free(enc);
  free(body);
}

static void test_request_header_join_and_long_strings(void **st) {
  (void)st;
  char *id = malloc(70001);
  memset(id, 'x', 70000);
  id[70000] = 0;
  ra_header hs[] = {{RA_STR("Accept"), RA_STR("a")}, {RA_STR("X"), RA_STR("1")}, {RA_STR("accept"), RA_STR("b")}};
  ra_tmsg_http_request_out o = {.request_id = ra_str_make(id, 70000), .method = RA_STR("POST"), .url = RA_STR("/p"),
                                .headers = hs, .n_headers = 3, .has_body = true, .body_is_text = true,
                                .body = "{}", .body_len = 2};
  size_t need = ra_tmsg_encode_http_request(NULL, 0, &o);
  uint8_t *enc = malloc(need);
  assert_int_equal(ra_tmsg_encode_http_request(enc, need, &o), need);
  ra_tmsg m;
  assert_int_equal(ra_tmsg_decode(enc, need, &m), 0);
  assert_int_equal(m.http_request.request_id.len, 70000);
  ra_tmsg_iter it;
  ra_str k, v;
  ra_tmsg_iter_init(&it, m.http_request.headers);
  /* names lowercased, as a browser's Headers sends them (the reference's
   * Express server parses JSON only under "content-type" exactly) */
  assert_true(ra_tmsg_headers_next(&it, &k, &v)); assert_str(k, "accept"); assert_str(v, "a, b");
  assert_true(ra_tmsg_headers_next(&it, &k, &v)); assert_str(k, "x"); assert_str(v, "1");
  assert_false(ra_tmsg_headers_next(&it, &k, &v));
  assert_true(m.http_request.body_is_text);
  free(enc);
  free(id);
}

static void test_enc_head(void **st) {
  (void)st;
  uint8_t nonce[24];
  for (int i = 0; i < 24; i++) nonce[i] = (uint8_t)i;
  size_t sizes[] = {16, 23, 24, 255, 256, 65535, 65536, 1u << 24};
  for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
    uint8_t head[RA_TMSG_ENC_HEAD_MAX];
    size_t n = ra_tmsg_encode_enc_head(head, sizeof head, nonce, sizes[i]);
    assert_true(n <= RA_TMSG_ENC_HEAD_MAX);
    uint8_t *full = calloc(1, n + sizes[i]);
    memcpy(full, head, n);
    ra_tmsg m;
    assert_int_equal(ra_tmsg_decode(full, n + sizes[i], &m), 0);
    assert_int_equal(m.type, RA_TMSG_ENC);
    assert_int_equal(m.enc.ciphertext.len, sizes[i]);
    assert_memory_equal(m.enc.nonce.ptr, nonce, 24);
    free(full);
  }
}

/* The response head encoder plus a byte string head plus the body is the
 * whole http_response, byte for byte (the server builds it that way, in
 * place); shortest byte string heads at each length boundary. */
static void test_response_head_in_place(void **st) {
  (void)st;
  ra_header h[3] = {{RA_STR("Content-Type"), RA_STR("text/plain")},
                    {RA_STR("set-cookie"), RA_STR("a=1")},
                    {RA_STR("Set-Cookie"), RA_STR("b=2")}};
  static uint8_t body[70000];
  for (size_t i = 0; i < sizeof body; i++) body[i] = (uint8_t)i;
  const size_t lens[] = {0, 1, 23, 24, 255, 256, 65535, 65536, 70000};
  for (size_t k = 0; k < sizeof lens / sizeof lens[0]; k++) {
    ra_tmsg_http_response_out r = {
      .request_id = RA_STR("id1"), .status = 200, .status_text = RA_STR("OK"),
      .headers = h, .n_headers = 3, .has_body = true, .body = body, .body_len = lens[k],
    };
    size_t whole = ra_tmsg_encode_http_response(NULL, 0, &r);
    uint8_t *a = malloc(whole), *b = malloc(whole);
    assert_int_equal(ra_tmsg_encode_http_response(a, whole, &r), whole);
    size_t hl = ra_tmsg_encode_http_response_head(NULL, 0, &r);
    assert_int_equal(ra_tmsg_encode_http_response_head(b, hl, &r), hl);
    uint8_t bh[9];
    size_t bl = ra_str_head(bh, lens[k]);
    assert_int_equal(hl + bl + lens[k], whole);
    memcpy(b + hl, bh, bl);
    memcpy(b + hl + bl, body, lens[k]);
    assert_memory_equal(a, b, whole);
    ra_tmsg m;
    assert_int_equal(ra_tmsg_decode(b, whole, &m), 0);
    assert_int_equal(m.http_response.body.len, lens[k]);
    free(a);
    free(b);
  }
}

/* A head turned into the streamed response (the server's out_begin): the
 * bytes the whole encoder writes with body_stream set, and it decodes. */
static void test_response_head_to_stream(void **st) {
  (void)st;
  ra_header h[3] = {{RA_STR("Content-Type"), RA_STR("text/plain")},
                    {RA_STR("set-cookie"), RA_STR("a=1")},
                    {RA_STR("Set-Cookie"), RA_STR("b=2")}};
  for (size_t nh = 0; nh <= 3; nh++) {
    ra_tmsg_http_response_out r = {
      .request_id = RA_STR("ra42"), .status = 201, .status_text = RA_STR("Created"),
      .headers = h, .n_headers = nh,
    };
    uint8_t head[256], got[300], want[300];
    size_t hl = ra_tmsg_encode_http_response_head(head, sizeof head, &r);
    assert_true(hl <= sizeof head);
    size_t n = ra_tmsg_response_head_to_stream(got, sizeof got, head, hl);
    assert_int_equal(ra_tmsg_response_head_to_stream(NULL, 0, head, hl), n);
    r.body_stream = true;
    assert_int_equal(ra_tmsg_encode_http_response(want, sizeof want, &r), n);
    assert_memory_equal(got, want, n);
    ra_tmsg m;
    assert_int_equal(ra_tmsg_decode(got, n, &m), 0);
    assert_int_equal(m.type, RA_TMSG_HTTP_RESPONSE);
    assert_str(m.http_response.request_id, "ra42");
    assert_int_equal(m.http_response.status, 201);
    assert_str(m.http_response.status_text, "Created");
    assert_true(m.http_response.body_stream);
    assert_false(m.http_response.has_body);
    assert_false(m.http_response.has_error);
    ra_tmsg_iter it;
    ra_str k, v;
    size_t pairs = 0;
    ra_tmsg_iter_init(&it, m.http_response.headers);
    while (ra_tmsg_headers_next(&it, &k, &v)) pairs++;
    assert_int_equal(pairs, nh);
    /* too little room: the size, nothing past cap */
    memset(got, 0xee, sizeof got);
    assert_int_equal(ra_tmsg_response_head_to_stream(got, n - 1, head, hl), n);
    assert_int_equal(got[n - 1], 0xee);
  }
  /* not one of our heads */
  uint8_t ok[8] = {0xb9, 0, 1, 0x64, 'b', 'o', 'd', 'y'}, out[64];
  assert_int_equal(ra_tmsg_response_head_to_stream(out, sizeof out, ok, sizeof ok), 8 + 12 + 1);
  assert_int_equal(ra_tmsg_response_head_to_stream(out, sizeof out, ok, 7), 0);
  assert_int_equal(ra_tmsg_response_head_to_stream(out, sizeof out, NULL, 0), 0);
  ok[0] = 0xa1;
  assert_int_equal(ra_tmsg_response_head_to_stream(out, sizeof out, ok, sizeof ok), 0);
  ok[0] = 0xb9, ok[1] = ok[2] = 0xff; /* no room for one more key */
  assert_int_equal(ra_tmsg_response_head_to_stream(out, sizeof out, ok, sizeof ok), 0);
  ok[1] = ok[2] = 0, ok[7] = 'x'; /* not ending with "body" */
  assert_int_equal(ra_tmsg_response_head_to_stream(out, sizeof out, ok, sizeof ok), 0);
}

/* Header bytes travel as ISO-8859-1 code points, as a browser's fetch shows
 * them: "\u2713" sent by an application as its UTF-8 bytes (e2 9c 93) and a
 * raw 0xe9 must come out as valid UTF-8 text of code points <= U+00FF (the
 * reference client's Headers throws on anything above, and cbor-x refuses a
 * message with invalid UTF-8), and turn back into the same bytes. */
static void test_header_bytes_as_latin1(void **st) {
  (void)st;
  ra_header h[] = {{RA_STR("X-Check"), RA_STR("\xe2\x9c\x93")},
                   {RA_STR("x-raw"), RA_STR("\xe9")},
                   {RA_STR("X-Raw"), RA_STR("a\xe9" "b")},
                   {RA_STR("x-ascii"), RA_STR("plain")}};
  ra_tmsg_http_response_out r = {.request_id = RA_STR("l"), .status = 200, .status_text = RA_STR("OK"),
                                 .headers = h, .n_headers = 4, .has_body = true, .body_is_text = true,
                                 .body = "", .body_len = 0};
  uint8_t out[512];
  size_t n = ra_tmsg_encode_http_response(out, sizeof out, &r);
  assert_true(n <= sizeof out);
  /* what cbor-x makes of {"x-check": "\u00e2\u009c\u0093", "x-raw": ["\u00e9", "a\u00e9b"], ...} */
  char *hex = tohex(out, n);
  assert_non_null(strstr(hex, "67782d636865636b66c3a2c29cc293")); /* "x-check": 6 bytes of text */
  assert_non_null(strstr(hex, "65782d7261778262c3a96461c3a962")); /* "x-raw": ["é", "aéb"] */
  free(hex);
  ra_tmsg m;
  assert_int_equal(ra_tmsg_decode(out, n, &m), 0);
  ra_str seq = m.http_response.headers;
  uint8_t *own;
  assert_int_equal(ra_tmsg_headers_to_bytes(&seq, &own), 0);
  assert_non_null(own);
  ra_tmsg_iter it;
  ra_str k, v;
  ra_tmsg_iter_init(&it, seq);
  assert_true(ra_tmsg_headers_next(&it, &k, &v)); assert_str(k, "x-check"); assert_str(v, "\xe2\x9c\x93");
  assert_true(ra_tmsg_headers_next(&it, &k, &v)); assert_str(k, "x-raw"); assert_str(v, "\xe9");
  assert_true(ra_tmsg_headers_next(&it, &k, &v)); assert_str(k, "x-raw"); assert_str(v, "a\xe9" "b");
  assert_true(ra_tmsg_headers_next(&it, &k, &v)); assert_str(k, "x-ascii"); assert_str(v, "plain");
  assert_false(ra_tmsg_headers_next(&it, &k, &v));
  free(own);

  /* a request: joined values, mapped the same way */
  ra_header q[] = {{RA_STR("X-L"), RA_STR("caf\xc3\xa9")}, {RA_STR("x-l"), RA_STR("\xff")}};
  ra_tmsg_http_request_out o = {.request_id = RA_STR("r"), .method = RA_STR("GET"), .url = RA_STR("/"),
                                .headers = q, .n_headers = 2};
  n = ra_tmsg_encode_http_request(out, sizeof out, &o);
  assert_true(n <= sizeof out);
  hex = tohex(out, n);
  assert_non_null(strstr(hex, "63782d6c6b636166c383c2a92c20c3bf")); /* "x-l": "cafÃ©, ÿ" */
  free(hex);
  assert_int_equal(ra_tmsg_decode(out, n, &m), 0);
  seq = m.http_request.headers;
  assert_int_equal(ra_tmsg_headers_to_bytes(&seq, &own), 0);
  ra_tmsg_iter_init(&it, seq);
  assert_true(ra_tmsg_headers_next(&it, &k, &v)); assert_str(k, "x-l"); assert_str(v, "caf\xc3\xa9, \xff");
  free(own);
}

/* Header text that no HTTP/1.1 header can carry is refused; ASCII costs no
 * copy. */
static void test_header_text_to_bytes(void **st) {
  (void)st;
  static const struct { const char *value; int rc; } cases[] = {
    {"plain", 0},
    {"\xc3\xa9", 0},                /* U+00E9 */
    {"\xc2\x80\xc3\xbf", 0},        /* U+0080, U+00FF */
    {"\xe2\x9c\x93", -EILSEQ},       /* U+2713 */
    {"\xc4\x80", -EILSEQ},           /* U+0100 */
    {"\xe9", -EILSEQ},               /* not UTF-8 */
    {"a\xc3", -EILSEQ},              /* truncated */
    {"\xc3\xc3", -EILSEQ},           /* no continuation */
    {"\xc1\xa9", -EILSEQ},           /* overlong */
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    /* {"type":"http_request","requestId":"r","method":"GET","url":"/","headers":{"x":VALUE}} */
    uint8_t msg[256];
    size_t vl = strlen(cases[i].value), n = 0;
    static const char pre[] = "\xa5\x64type\x6chttp_request\x69requestId\x61r\x66method\x63GET"
                              "\x63url\x61/\x67headers\xa1\x61x";
    memcpy(msg, pre, sizeof pre - 1);
    n = sizeof pre - 1;
    msg[n++] = (uint8_t)(0x60 + vl);
    memcpy(msg + n, cases[i].value, vl);
    n += vl;
    ra_tmsg m;
    assert_int_equal(ra_tmsg_decode(msg, n, &m), 0);
    ra_str seq = m.http_request.headers, before = seq;
    uint8_t *own = (uint8_t *)"x";
    int rc = ra_tmsg_headers_to_bytes(&seq, &own);
    if (rc != cases[i].rc) fail_msg("case %zu: rc %d, want %d", i, rc, cases[i].rc);
    if (rc || i == 0) {
      assert_null(own);
      assert_ptr_equal(seq.ptr, before.ptr); /* untouched (and no copy for ASCII) */
      assert_int_equal(seq.len, before.len);
    }
    free(own);
  }
}


/* ---- raloop's client attestation fields (PROTOCOL.md §10) ---------------- */

static void test_client_attestation_fields(void **st) {
  (void)st;
  uint8_t *b;
  ra_tmsg m;
  /* as cbor-x encodes them (tag 64 byte strings) */
  assert_int_equal(decode_hex("b90003647479706569636c69656e745f6b78727365616c656453796d6d65747269634b6579d8404401"
                              "02030471636c69656e744174746573746174696f6eb900026571756f7465d84043050607696576656e"
                              "745f6c6f67625b5d", &m, &b), 0);
  assert_int_equal(m.type, RA_TMSG_CLIENT_KX);
  assert_int_equal(m.client_kx.sealed_key.len, 4);
  assert_true(m.client_kx.has_attestation);
  assert_int_equal(m.client_kx.att_quote.len, 3);
  assert_int_equal(m.client_kx.att_quote.bytes[0], 5);
  assert_true(m.client_kx.has_att_event_log);
  assert_str(m.client_kx.att_event_log, "[]");
  free(b);
  /* undefined: absent (the reference client never sends the field at all) */
  assert_int_equal(decode_hex("b90003647479706569636c69656e745f6b78727365616c656453796d6d65747269634b6579d8404401"
                              "02030471636c69656e744174746573746174696f6ef7", &m, &b), 0);
  assert_false(m.client_kx.has_attestation);
  free(b);
  /* refused: a challenge of 31 bytes, an attestation that is not a map, one without a quote */
  assert_int_equal(decode_hex("b900046474797065697365727665725f6b786f7832353531395075626c69634b6579d84058200101"
                              "0101010101010101010101010101010101010101010101010101010101016571756f7465d84041026f"
                              "636c69656e744368616c6c656e6765d840581f000000000000000000000000000000000000000000"
                              "00000000000000000000", &m, &b), -EBADMSG);
  free(b);
  assert_int_equal(decode_hex("b90003647479706569636c69656e745f6b78727365616c656453796d6d65747269634b6579d8404401"
                              "02030471636c69656e744174746573746174696f6ed8404101", &m, &b), -EBADMSG);
  free(b);
  assert_int_equal(decode_hex("b90003647479706569636c69656e745f6b78727365616c656453796d6d65747269634b6579d8404401"
                              "02030471636c69656e744174746573746174696f6eb90001696576656e745f6c6f67625b5d", &m, &b),
                   -EBADMSG);
  free(b);

  /* our encoders: client_kx with and without event_log, round trip */
  uint8_t sealed[80], q[300], out[1024];
  memset(sealed, 0xaa, sizeof sealed);
  memset(q, 0x55, sizeof q);
  ra_tmsg_client_att_out att = {.quote = ra_bytes_make(q, sizeof q), .event_log = RA_STR("[{\"imr\":3}]")};
  size_t n = ra_tmsg_encode_client_kx_att(out, sizeof out, sealed, sizeof sealed, &att);
  assert_true(n <= sizeof out);
  assert_int_equal(ra_tmsg_decode(out, n, &m), 0);
  assert_true(m.client_kx.has_attestation && m.client_kx.has_att_event_log);
  assert_int_equal(m.client_kx.att_quote.len, sizeof q);
  assert_int_equal(m.client_kx.sealed_key.len, sizeof sealed);
  assert_str(m.client_kx.att_event_log, "[{\"imr\":3}]");
  att.event_log = ra_str_make(NULL, 0);
  n = ra_tmsg_encode_client_kx_att(out, sizeof out, sealed, sizeof sealed, &att);
  assert_int_equal(ra_tmsg_decode(out, n, &m), 0);
  assert_true(m.client_kx.has_attestation);
  assert_false(m.client_kx.has_att_event_log);
  /* NULL attestation: byte for byte the plain client_kx */
  uint8_t plain[160];
  size_t pn = ra_tmsg_encode_client_kx(plain, sizeof plain, sealed, sizeof sealed);
  n = ra_tmsg_encode_client_kx_att(out, sizeof out, sealed, sizeof sealed, NULL);
  assert_int_equal(n, pn);
  assert_memory_equal(out, plain, pn);

  /* server_kx + clientChallenge appended to the cached message */
  uint8_t pk[32], kx[512], kx2[600], ch[32];
  memset(pk, 1, sizeof pk);
  memset(ch, 0xc5, sizeof ch);
  ra_tmsg_server_kx_out so = {.x25519_public_key = pk, .quote = ra_bytes_make(q, 10)};
  size_t kn = ra_tmsg_encode_server_kx(kx, sizeof kx, &so);
  assert_int_equal(ra_tmsg_decode(kx, kn, &m), 0);
  assert_false(m.server_kx.has_client_challenge);
  size_t k2 = ra_tmsg_server_kx_add_challenge(kx2, sizeof kx2, kx, kn, ch);
  assert_int_equal(k2, ra_tmsg_server_kx_add_challenge(NULL, 0, kx, kn, ch));
  assert_int_equal(ra_tmsg_decode(kx2, k2, &m), 0);
  assert_int_equal(m.type, RA_TMSG_SERVER_KX);
  assert_true(m.server_kx.has_client_challenge);
  assert_memory_equal(m.server_kx.client_challenge.bytes, ch, 32);
  assert_int_equal(m.server_kx.quote.len, 10);
  /* only our encoder's shape (0xb9 head) is extended */
  assert_int_equal(ra_tmsg_server_kx_add_challenge(kx2, sizeof kx2, (const uint8_t *)"\xa1", 1, ch), 0);
}

/* ---- raloop's streamed bodies (PROTOCOL.md §11) -------------------------- */

/* As Node's cbor-x encodes them (tests/node_modules/cbor-x): tag 64 on
 * data, undefined for an absent reason, 0xb9 map heads. */
static void test_body_stream_cborx_shapes(void **st) {
  (void)st;
  uint8_t *b;
  ra_tmsg m;
  assert_int_equal(decode_hex("b90004647479706569687474705f626f64796972657175657374496462723163656e64f4646461746"
                              "1d84043010203", &m, &b), 0);
  assert_int_equal(m.type, RA_TMSG_HTTP_BODY);
  assert_string_equal(ra_tmsg_type_name(m.type), "http_body");
  assert_str(m.http_body.request_id, "r1");
  assert_false(m.http_body.end);
  assert_int_equal(m.http_body.data.len, 3);
  assert_int_equal(m.http_body.data.bytes[2], 3);
  free(b);
  assert_int_equal(decode_hex("b90004647479706569687474705f626f64796972657175657374496462723163656e64f56464617461d84040",
                              &m, &b), 0);
  assert_true(m.http_body.end);
  assert_int_equal(m.http_body.data.len, 0);
  free(b);
  assert_int_equal(decode_hex("b9000364747970656b687474705f637265646974697265717565737449646272316562797465731a00040000",
                              &m, &b), 0);
  assert_int_equal(m.type, RA_TMSG_HTTP_CREDIT);
  assert_int_equal(m.http_credit.bytes, 262144);
  free(b);
  assert_int_equal(decode_hex("b9000364747970656b687474705f63616e63656c6972657175657374496462723166726561736f6ef7",
                              &m, &b), 0);
  assert_int_equal(m.type, RA_TMSG_HTTP_CANCEL);
  assert_str(m.http_cancel.request_id, "r1");
  assert_false(m.http_cancel.has_reason);
  free(b);
  assert_int_equal(decode_hex("b9000364747970656b687474705f63616e63656c6972657175657374496462723166726561736f6e6565"
                              "61726c79", &m, &b), 0);
  assert_true(m.http_cancel.has_reason);
  assert_str(m.http_cancel.reason, "early");
  free(b);
  assert_int_equal(decode_hex("b90003647479706569636c69656e745f6b78727365616c656453796d6d65747269634b6579d8404401"
                              "0203046b626f647953747265616d73b900026677696e646f771a00100000656368756e6b1a00040000",
                              &m, &b), 0);
  assert_int_equal(m.type, RA_TMSG_CLIENT_KX);
  assert_true(m.client_kx.has_body_streams);
  assert_int_equal(m.client_kx.body_streams.window, 1048576);
  assert_int_equal(m.client_kx.body_streams.chunk, 262144);
  assert_false(m.client_kx.has_attestation);
  free(b);
  assert_int_equal(decode_hex("b9000664747970656c687474705f7265717565737469726571756573744964627231666d6574686f6463"
                              "5055546375726c622f756768656164657273b900006a626f647953747265616df5", &m, &b), 0);
  assert_int_equal(m.type, RA_TMSG_HTTP_REQUEST);
  assert_true(m.http_request.body_stream);
  assert_false(m.http_request.has_body);
  free(b);
  assert_int_equal(decode_hex("b9000764747970656d687474705f726573706f6e736569726571756573744964627231667374617475"
                              "7318c86a73746174757354657874624f4b6768656164657273b9000064626f6479f66a626f64795374"
                              "7265616df5", &m, &b), 0);
  assert_int_equal(m.type, RA_TMSG_HTTP_RESPONSE);
  assert_true(m.http_response.body_stream);
  assert_false(m.http_response.has_body);
  assert_int_equal(m.http_response.status, 200);
  free(b);
  /* bodyStream false / null / undefined: a whole body */
  assert_int_equal(decode_hex("a5" "6474797065" "6c687474705f72657175657374" "69726571756573744964" "6131"
                              "666d6574686f64" "63474554" "6375726c" "612f" "6a626f647953747265616d" "f4", &m, &b), 0);
  assert_false(m.http_request.body_stream);
  free(b);
  assert_int_equal(decode_hex("a5" "6474797065" "6c687474705f72657175657374" "69726571756573744964" "6131"
                              "666d6574686f64" "63474554" "6375726c" "612f" "6a626f647953747265616d" "f7", &m, &b), 0);
  assert_false(m.http_request.body_stream);
  free(b);
  /* bodyStreams with an unknown key besides window/chunk, and an integral float */
  assert_int_equal(decode_hex("a3" "6474797065" "69636c69656e745f6b78" "727365616c656453796d6d65747269634b6579" "4101"
                              "6b626f647953747265616d73" "a3" "6178" "01" "6677696e646f77" "fb4130000000000000"
                              "656368756e6b" "194000", &m, &b), 0);
  assert_true(m.client_kx.has_body_streams);
  assert_int_equal(m.client_kx.body_streams.window, 1048576);
  assert_int_equal(m.client_kx.body_streams.chunk, 16384);
  free(b);
}

static void test_body_stream_rejects(void **st) {
  (void)st;
  const char *ckx = "a3" "6474797065" "69636c69656e745f6b78" "727365616c656453796d6d65747269634b6579" "4101"
                    "6b626f647953747265616d73";
  char buf[512];
  snprintf(buf, sizeof buf, "%s" "f5", ckx);
  expect_bad("bodyStreams true", buf);
  snprintf(buf, sizeof buf, "%s" "a1" "6677696e646f77" "1a00100000", ckx);
  expect_bad("bodyStreams without chunk", buf);
  snprintf(buf, sizeof buf, "%s" "a2" "6677696e646f77" "20" "656368756e6b" "194000", ckx);
  expect_bad("bodyStreams window -1", buf);
  snprintf(buf, sizeof buf, "%s" "a2" "6677696e646f77" "6131" "656368756e6b" "194000", ckx);
  expect_bad("bodyStreams window text", buf);
  snprintf(buf, sizeof buf, "%s" "a2" "6677696e646f77" "fb3ff8000000000000" "656368756e6b" "194000", ckx);
  expect_bad("bodyStreams window 1.5", buf);
  /* the same on server_kx */
  expect_bad("server_kx bodyStreams array",
             "a4" "6474797065" "697365727665725f6b78" "6f7832353531395075626c69634b6579" "5820"
             "0101010101010101010101010101010101010101010101010101010101010101" "6571756f7465" "4100"
             "6b626f647953747265616d73" "80");
  const char *req = "a5" "6474797065" "6c687474705f72657175657374" "69726571756573744964" "6131"
                    "666d6574686f64" "63474554" "6375726c" "612f" "6a626f647953747265616d";
  snprintf(buf, sizeof buf, "%s" "01", req);
  expect_bad("bodyStream 1", buf);
  snprintf(buf, sizeof buf, "%s" "6474727565", req);
  expect_bad("bodyStream text", buf);
  const char *body = "6474797065" "69687474705f626f6479" "69726571756573744964" "6131";
  snprintf(buf, sizeof buf, "a3%s" "6464617461" "40", body);
  expect_bad("http_body without end", buf);
  snprintf(buf, sizeof buf, "a3%s" "63656e64" "f5", body);
  expect_bad("http_body without data", buf);
  snprintf(buf, sizeof buf, "a4%s" "63656e64" "01" "6464617461" "40", body);
  expect_bad("http_body end int", buf);
  snprintf(buf, sizeof buf, "a4%s" "63656e64" "f5" "6464617461" "6161", body);
  expect_bad("http_body data text", buf);
  snprintf(buf, sizeof buf, "a4%s" "63656e64" "f5" "6464617461" "f6", body);
  expect_bad("http_body data null", buf);
  expect_bad("http_body no requestId", "a3" "6474797065" "69687474705f626f6479" "63656e64" "f5" "6464617461" "40");
  const char *cr = "a3" "6474797065" "6b687474705f637265646974" "69726571756573744964" "6131" "656279746573";
  snprintf(buf, sizeof buf, "%s" "20", cr);
  expect_bad("credit -1", buf);
  snprintf(buf, sizeof buf, "%s" "fb3ff8000000000000", cr);
  expect_bad("credit 1.5", buf);
  snprintf(buf, sizeof buf, "%s" "6131", cr);
  expect_bad("credit text", buf);
  expect_bad("credit missing", "a2" "6474797065" "6b687474705f637265646974" "69726571756573744964" "6131");
  expect_bad("cancel reason int", "a3" "6474797065" "6b687474705f63616e63656c" "69726571756573744964" "6131"
             "66726561736f6e" "01");
  expect_bad("cancel no requestId", "a1" "6474797065" "6b687474705f63616e63656c");
}

static void test_body_stream_encoders(void **st) {
  (void)st;
  uint8_t out[4096];
  ra_tmsg m;
  ra_tmsg_body_streams bs = {1048576, 262144};
  /* server_kx announcing, and the challenge appended after it */
  uint8_t pk[32], ch[32], kx2[600];
  memset(pk, 1, sizeof pk);
  memset(ch, 0xc5, sizeof ch);
  ra_tmsg_server_kx_out so = {.x25519_public_key = pk, .quote = RA_STR("q"), .body_streams = &bs};
  size_t n = ra_tmsg_encode_server_kx(out, sizeof out, &so);
  assert_int_equal(n, ra_tmsg_encode_server_kx(NULL, 0, &so));
  assert_int_equal(ra_tmsg_decode(out, n, &m), 0);
  assert_true(m.server_kx.has_body_streams);
  assert_int_equal(m.server_kx.body_streams.window, bs.window);
  assert_int_equal(m.server_kx.body_streams.chunk, bs.chunk);
  size_t k2 = ra_tmsg_server_kx_add_challenge(kx2, sizeof kx2, out, n, ch);
  assert_true(k2 <= sizeof kx2);
  assert_int_equal(ra_tmsg_decode(kx2, k2, &m), 0);
  assert_true(m.server_kx.has_body_streams && m.server_kx.has_client_challenge);
  assert_int_equal(m.server_kx.body_streams.chunk, bs.chunk);
  so.body_streams = NULL; /* not announced: as before */
  n = ra_tmsg_encode_server_kx(out, sizeof out, &so);
  assert_int_equal(ra_tmsg_decode(out, n, &m), 0);
  assert_false(m.server_kx.has_body_streams);

  /* client_kx: streams only, both extensions, neither (= the plain one) */
  uint8_t sealed[80], plain[160];
  memset(sealed, 0xaa, sizeof sealed);
  n = ra_tmsg_encode_client_kx_ex(out, sizeof out, sealed, sizeof sealed, NULL, &bs);
  assert_int_equal(ra_tmsg_decode(out, n, &m), 0);
  assert_true(m.client_kx.has_body_streams);
  assert_false(m.client_kx.has_attestation);
  assert_int_equal(m.client_kx.body_streams.window, bs.window);
  ra_tmsg_client_att_out att = {.quote = RA_STR("quote"), .event_log = RA_STR("[]")};
  n = ra_tmsg_encode_client_kx_ex(out, sizeof out, sealed, sizeof sealed, &att, &bs);
  assert_int_equal(ra_tmsg_decode(out, n, &m), 0);
  assert_true(m.client_kx.has_body_streams && m.client_kx.has_attestation && m.client_kx.has_att_event_log);
  assert_int_equal(m.client_kx.body_streams.chunk, bs.chunk);
  size_t pn = ra_tmsg_encode_client_kx(plain, sizeof plain, sealed, sizeof sealed);
  n = ra_tmsg_encode_client_kx_ex(out, sizeof out, sealed, sizeof sealed, NULL, NULL);
  assert_int_equal(n, pn);
  assert_memory_equal(out, plain, pn);

  /* http_request: bodyStream and no body, even with has_body set */
  ra_header h[1] = {{RA_STR("Content-Type"), RA_STR("application/octet-stream")}};
  ra_tmsg_http_request_out rq = {.request_id = RA_STR("7"), .method = RA_STR("PUT"), .url = RA_STR("/upload"),
                                 .headers = h, .n_headers = 1, .has_body = true, .body = "xx", .body_len = 2,
                                 .body_stream = true};
  n = ra_tmsg_encode_http_request(out, sizeof out, &rq);
  assert_int_equal(ra_tmsg_decode(out, n, &m), 0);
  assert_true(m.http_request.body_stream);
  assert_false(m.http_request.has_body);
  rq.body_stream = false;
  n = ra_tmsg_encode_http_request(out, sizeof out, &rq);
  assert_int_equal(ra_tmsg_decode(out, n, &m), 0);
  assert_false(m.http_request.body_stream);
  assert_true(m.http_request.has_body);

  /* http_response: bodyStream with body null; the head variant ends at "body" */
  ra_tmsg_http_response_out rs = {.request_id = RA_STR("7"), .status = 200, .status_text = RA_STR("OK"),
                                  .headers = h, .n_headers = 1, .has_body = true, .body = "xx", .body_len = 2,
                                  .body_stream = true};
  n = ra_tmsg_encode_http_response(out, sizeof out, &rs);
  assert_int_equal(ra_tmsg_decode(out, n, &m), 0);
  assert_true(m.http_response.body_stream);
  assert_false(m.http_response.has_body);
  size_t hn = ra_tmsg_encode_http_response_head(out, sizeof out, &rs);
  assert_int_equal(hn + 1, n);
  out[hn] = 0xf6;
  assert_int_equal(ra_tmsg_decode(out, hn + 1, &m), 0);
  assert_true(m.http_response.body_stream);
  rs.body_stream = false; /* byte-identical to before: 6 keys, body last */
  n = ra_tmsg_encode_http_response(out, sizeof out, &rs);
  assert_int_equal(out[2], 6);
  assert_int_equal(ra_tmsg_decode(out, n, &m), 0);
  assert_false(m.http_response.body_stream);
  assert_int_equal(m.http_response.body.len, 2);

  /* http_body whole and in place */
  uint8_t data[300];
  for (size_t i = 0; i < sizeof data; i++) data[i] = (uint8_t)i;
  n = ra_tmsg_encode_http_body(out, sizeof out, RA_STR("abc"), data, sizeof data, false);
  assert_int_equal(n, ra_tmsg_encode_http_body(NULL, 0, RA_STR("abc"), data, sizeof data, false));
  assert_int_equal(ra_tmsg_decode(out, n, &m), 0);
  assert_int_equal(m.type, RA_TMSG_HTTP_BODY);
  assert_str(m.http_body.request_id, "abc");
  assert_false(m.http_body.end);
  assert_int_equal(m.http_body.data.len, sizeof data);
  assert_memory_equal(m.http_body.data.bytes, data, sizeof data);
  hn = ra_tmsg_encode_http_body_head(out, sizeof out, RA_STR("abc"), sizeof data, false);
  assert_int_equal(hn + sizeof data, n);
  n = ra_tmsg_encode_http_body(out, sizeof out, RA_STR("abc"), NULL, 0, true);
  assert_int_equal(ra_tmsg_decode(out, n, &m), 0);
  assert_true(m.http_body.end);
  assert_int_equal(m.http_body.data.len, 0);
  /* a short buffer: the size is still reported, nothing past cap written */
  memset(out, 0xee, sizeof out);
  n = ra_tmsg_encode_http_body(out, 10, RA_STR("abc"), data, sizeof data, false);
  assert_true(n > 10);
  assert_int_equal(out[10], 0xee);

  /* http_credit: large values round-trip */
  n = ra_tmsg_encode_http_credit(out, sizeof out, RA_STR("abc"), UINT64_C(5000000000));
  assert_int_equal(ra_tmsg_decode(out, n, &m), 0);
  assert_int_equal(m.type, RA_TMSG_HTTP_CREDIT);
  assert_true(m.http_credit.bytes == UINT64_C(5000000000));
  /* http_cancel with and without reason */
  n = ra_tmsg_encode_http_cancel(out, sizeof out, RA_STR("abc"), "early response");
  assert_int_equal(ra_tmsg_decode(out, n, &m), 0);
  assert_int_equal(m.type, RA_TMSG_HTTP_CANCEL);
  assert_true(m.http_cancel.has_reason);
  assert_str(m.http_cancel.reason, "early response");
  n = ra_tmsg_encode_http_cancel(out, sizeof out, RA_STR("abc"), NULL);
  assert_int_equal(ra_tmsg_decode(out, n, &m), 0);
  assert_false(m.http_cancel.has_reason);
}

static void test_body_streams_valid(void **st) {
  (void)st;
  const uint64_t K = 1024;
  struct { uint64_t w, c; bool ok; } v[] = {
    {1024 * K, 256 * K, true},   {64 * K, 16 * K, true},      {4096 * K, 1024 * K, true},
    {64 * K, 64 * K, true},      {64 * K - 1, 16 * K, false}, {4096 * K + 1, 16 * K, false},
    {1024 * K, 16 * K - 1, false}, {1024 * K, 1024 * K + 1, false}, {128 * K, 129 * K, false},
    {0, 0, false},               {UINT64_MAX, UINT64_MAX, false},
  };
  for (size_t i = 0; i < sizeof v / sizeof v[0]; i++) {
    ra_tmsg_body_streams bs = {v[i].w, v[i].c};
    if (ra_tmsg_body_streams_valid(&bs) != v[i].ok) fail_msg("case %zu", i);
  }
  assert_false(ra_tmsg_body_streams_valid(NULL));
}

int main(void) {
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_captured_client_kx_ready),
    cmocka_unit_test(test_captured_http_request_get),
    cmocka_unit_test(test_captured_http_response),
    cmocka_unit_test(test_captured_ws),
    cmocka_unit_test(test_cborx_vectors),
    cmocka_unit_test(test_cborx_field_values),
    cmocka_unit_test(test_indefinite_containers),
    cmocka_unit_test(test_rejects),
    cmocka_unit_test(test_deep_nesting),
    cmocka_unit_test(test_large_body_zero_copy),
    cmocka_unit_test(test_request_header_join_and_long_strings),
    cmocka_unit_test(test_enc_head),
    cmocka_unit_test(test_response_head_in_place),
    cmocka_unit_test(test_response_head_to_stream),
    cmocka_unit_test(test_header_bytes_as_latin1),
    cmocka_unit_test(test_header_text_to_bytes),
    cmocka_unit_test(test_client_attestation_fields),
    cmocka_unit_test(test_body_stream_cborx_shapes),
    cmocka_unit_test(test_body_stream_rejects),
    cmocka_unit_test(test_body_stream_encoders),
    cmocka_unit_test(test_body_streams_valid),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
