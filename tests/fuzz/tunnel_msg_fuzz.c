/* libFuzzer target: the tunnel's control-channel message decoder (outer and
 * inner messages), the header/protocol iterators, the encoders (decode ->
 * re-encode -> decode must agree), and the envelope path (the input sealed
 * as an inner message, carried in an `enc`, opened and decoded). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "raloop/attest/tunnel/envelope.h"
#include "raloop/attest/tunnel/msg.h"

static void walk(const ra_tmsg *m) {
  ra_tmsg_iter it;
  ra_str k, v;
  size_t n = 0;
  if (m->type == RA_TMSG_HTTP_REQUEST || m->type == RA_TMSG_HTTP_RESPONSE) {
    ra_tmsg_iter_init(&it, m->type == RA_TMSG_HTTP_REQUEST ? m->http_request.headers : m->http_response.headers);
    while (ra_tmsg_headers_next(&it, &k, &v)) n += k.len + v.len;
    /* the latin-1 mapping back to header bytes, on every header list */
    ra_str seq = m->type == RA_TMSG_HTTP_REQUEST ? m->http_request.headers : m->http_response.headers;
    uint8_t *owned = NULL;
    if (ra_tmsg_headers_to_bytes(&seq, &owned) == 0) {
      ra_tmsg_iter_init(&it, seq);
      while (ra_tmsg_headers_next(&it, &k, &v)) n += k.len + v.len;
    }
    free(owned);
  } else if (m->type == RA_TMSG_WS_CONNECT) {
    ra_tmsg_iter_init(&it, m->ws_connect.protocols);
    while (ra_tmsg_strings_next(&it, &v)) n += v.len;
  }
  (void)n;
}

/* The first MAX_HDRS headers of a decoded header map, for re-encoding. */
#define MAX_HDRS 32
static size_t headers_of(ra_str seq, ra_header hs[MAX_HDRS]) {
  size_t n = 0;
  ra_tmsg_iter it;
  ra_tmsg_iter_init(&it, seq);
  while (n < MAX_HDRS && ra_tmsg_headers_next(&it, &hs[n].name, &hs[n].value)) n++;
  return n;
}

/* Re-encodes what the decoder returned; the result must decode to the same
 * type with the same main fields. */
static void reencode_check(const ra_tmsg *m) {
  uint8_t *out = NULL;
  size_t need = 0;
  for (int pass = 0; pass < 2; pass++) {
    size_t cap = pass ? need : 0;
    switch (m->type) {
    case RA_TMSG_WS_MESSAGE:
      need = ra_tmsg_encode_ws_message(out, cap, m->ws_message.connection_id, m->ws_message.is_text,
                                       m->ws_message.data.ptr, m->ws_message.data.len);
      break;
    case RA_TMSG_WS_CLOSE:
      need = ra_tmsg_encode_ws_close(out, cap, m->ws_close.connection_id,
                                     m->ws_close.has_code ? m->ws_close.code : -1,
                                     m->ws_close.has_reason ? m->ws_close.reason : ra_str_make(NULL, 0));
      break;
    case RA_TMSG_ENC:
      need = ra_tmsg_encode_enc(out, cap, m->enc.nonce.bytes, m->enc.ciphertext.bytes, m->enc.ciphertext.len);
      break;
    case RA_TMSG_CLIENT_KX: {
      /* with raloop's clientAttestation when it came with one */
      ra_tmsg_client_att_out att = {
        .quote = m->client_kx.att_quote,
        .event_log = m->client_kx.has_att_event_log ? m->client_kx.att_event_log : ra_str_make(NULL, 0),
      };
      need = ra_tmsg_encode_client_kx_ex(out, cap, m->client_kx.sealed_key.bytes, m->client_kx.sealed_key.len,
                                         m->client_kx.has_attestation ? &att : NULL,
                                         m->client_kx.has_body_streams ? &m->client_kx.body_streams : NULL);
      break;
    }
    /* the streamed-body extension (PROTOCOL.md §11) */
    case RA_TMSG_HTTP_BODY:
      need = ra_tmsg_encode_http_body(out, cap, m->http_body.request_id, m->http_body.data.ptr,
                                      m->http_body.data.len, m->http_body.end);
      break;
    case RA_TMSG_HTTP_CREDIT:
      need = ra_tmsg_encode_http_credit(out, cap, m->http_credit.request_id, m->http_credit.bytes);
      break;
    case RA_TMSG_HTTP_CANCEL: {
      /* reason as a C string: only when it has no NUL (a fuzzed one may) */
      char reason[64];
      const char *r = NULL;
      if (m->http_cancel.has_reason && m->http_cancel.reason.len < sizeof reason &&
          !memchr(m->http_cancel.reason.ptr, 0, m->http_cancel.reason.len)) {
        memcpy(reason, m->http_cancel.reason.ptr, m->http_cancel.reason.len);
        reason[m->http_cancel.reason.len] = 0;
        r = reason;
      }
      need = ra_tmsg_encode_http_cancel(out, cap, m->http_cancel.request_id, r);
      break;
    }
    case RA_TMSG_HTTP_REQUEST: {
      ra_header hs[MAX_HDRS];
      size_t n = headers_of(m->http_request.headers, hs);
      ra_tmsg_http_request_out o = {
        .request_id = m->http_request.request_id, .method = m->http_request.method,
        .url = m->http_request.url, .headers = hs, .n_headers = n,
        .has_body = m->http_request.has_body, .body_is_text = m->http_request.body_is_text,
        .body = m->http_request.body.ptr, .body_len = m->http_request.body.len,
        .body_stream = m->http_request.body_stream,
      };
      need = ra_tmsg_encode_http_request(out, cap, &o);
      break;
    }
    default:
      return;
    }
    if (pass == 0) {
      out = malloc(need ? need : 1);
      if (!out) return;
    }
  }
  ra_tmsg m2;
  if (ra_tmsg_decode(out, need, &m2) != 0 || m2.type != m->type) abort();
  if (m->type == RA_TMSG_WS_MESSAGE &&
      (m2.ws_message.data.len != m->ws_message.data.len || m2.ws_message.is_text != m->ws_message.is_text ||
       (m->ws_message.data.len && memcmp(m2.ws_message.data.ptr, m->ws_message.data.ptr, m->ws_message.data.len))))
    abort();
  if (m->type == RA_TMSG_CLIENT_KX &&
      (m2.client_kx.has_attestation != m->client_kx.has_attestation ||
       m2.client_kx.att_quote.len != m->client_kx.att_quote.len ||
       m2.client_kx.has_att_event_log != m->client_kx.has_att_event_log ||
       m2.client_kx.att_event_log.len != m->client_kx.att_event_log.len))
    abort();
  if (m->type == RA_TMSG_CLIENT_KX &&
      (m2.client_kx.has_body_streams != m->client_kx.has_body_streams ||
       m2.client_kx.body_streams.window != m->client_kx.body_streams.window ||
       m2.client_kx.body_streams.chunk != m->client_kx.body_streams.chunk))
    abort();
  /* bodyStream wins over a body sent with it (the encoder leaves the body out) */
  if (m->type == RA_TMSG_HTTP_REQUEST &&
      (m2.http_request.url.len != m->http_request.url.len ||
       m2.http_request.body_stream != m->http_request.body_stream ||
       m2.http_request.has_body != (m->http_request.has_body && !m->http_request.body_stream)))
    abort();
  if (m->type == RA_TMSG_HTTP_BODY &&
      (m2.http_body.end != m->http_body.end || m2.http_body.data.len != m->http_body.data.len ||
       !ra_str_eq(m2.http_body.request_id, m->http_body.request_id) ||
       (m->http_body.data.len && memcmp(m2.http_body.data.ptr, m->http_body.data.ptr, m->http_body.data.len))))
    abort();
  if (m->type == RA_TMSG_HTTP_CREDIT && m2.http_credit.bytes != m->http_credit.bytes) abort();
  if (m->type == RA_TMSG_HTTP_CANCEL && !ra_str_eq(m2.http_cancel.request_id, m->http_cancel.request_id)) abort();
  free(out);
}

/* A response's head as the server encodes it, turned into the streamed
 * response (ra_tmsg_response_head_to_stream): one http_response with
 * bodyStream, no body, and the head's requestId and status. */
static void stream_head_check(const ra_tmsg *m) {
  if (m->type != RA_TMSG_HTTP_RESPONSE) return;
  ra_header hs[MAX_HDRS];
  size_t n = headers_of(m->http_response.headers, hs);
  ra_tmsg_http_response_out o = {
    .request_id = m->http_response.request_id, .status = m->http_response.status,
    .status_text = m->http_response.status_text, .headers = hs, .n_headers = n,
  };
  size_t hl = ra_tmsg_encode_http_response_head(NULL, 0, &o);
  uint8_t *head = malloc(hl ? hl : 1);
  if (!head) return;
  ra_tmsg_encode_http_response_head(head, hl, &o);
  size_t sl = ra_tmsg_response_head_to_stream(NULL, 0, head, hl);
  uint8_t *out = sl ? malloc(sl) : NULL;
  ra_tmsg m2;
  if (!out || ra_tmsg_response_head_to_stream(out, sl, head, hl) != sl || ra_tmsg_decode(out, sl, &m2) != 0 ||
      m2.type != RA_TMSG_HTTP_RESPONSE || !m2.http_response.body_stream || m2.http_response.has_body ||
      m2.http_response.status != m->http_response.status ||
      !ra_str_eq(m2.http_response.request_id, m->http_response.request_id))
    abort();
  free(out);
  free(head);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  static int inited;
  static uint8_t key[32];
  static ra_env_buf tx, rx;
  if (!inited) {
    ra_env_init();
    memset(key, 7, sizeof key);
    inited = 1;
  }
  ra_tmsg m;
  if (ra_tmsg_decode(data, size, &m) == 0) {
    walk(&m);
    reencode_check(&m);
    stream_head_check(&m);
    /* a server_kx in our encoder's shape gets a clientChallenge appended:
     * still one server_kx, now with that challenge */
    if (m.type == RA_TMSG_SERVER_KX && m.server_kx.has_body_streams)
      (void)ra_tmsg_body_streams_valid(&m.server_kx.body_streams);
    if (m.type == RA_TMSG_SERVER_KX && !m.server_kx.has_client_challenge) {
      uint8_t ch[RA_TMSG_CHALLENGE_BYTES];
      memset(ch, 0xc5, sizeof ch);
      size_t n = ra_tmsg_server_kx_add_challenge(NULL, 0, data, size, ch);
      uint8_t *kx = n ? malloc(n) : NULL;
      if (kx) {
        ra_tmsg m2;
        if (ra_tmsg_server_kx_add_challenge(kx, n, data, size, ch) != n || ra_tmsg_decode(kx, n, &m2) != 0 ||
            m2.type != RA_TMSG_SERVER_KX || !m2.server_kx.has_client_challenge ||
            memcmp(m2.server_kx.client_challenge.bytes, ch, sizeof ch) != 0)
          abort();
        free(kx);
      }
    }
  }
  /* any bytes offered as a head: refused (0) or turned into a message */
  {
    size_t sl = ra_tmsg_response_head_to_stream(NULL, 0, data, size);
    uint8_t *out = sl ? malloc(sl) : NULL;
    if (out && ra_tmsg_response_head_to_stream(out, sl, data, size) != sl) abort();
    free(out);
  }
  /* the same bytes as the plaintext of an envelope */
  uint8_t *p = ra_env_seal_begin(&tx, size);
  if (!p) return 0;
  if (size) memcpy(p, data, size);
  const uint8_t *msg;
  size_t msg_len;
  ra_env_seal_end(&tx, key, size, &msg, &msg_len);
  ra_tmsg outer;
  if (ra_tmsg_decode(msg, msg_len, &outer) != 0 || outer.type != RA_TMSG_ENC) abort();
  const uint8_t *plain;
  size_t plen;
  if (ra_env_open(&rx, key, outer.enc.nonce.bytes, outer.enc.ciphertext.bytes, outer.enc.ciphertext.len,
                  &plain, &plen) != 0 || plen != size)
    abort();
  ra_tmsg inner;
  int a = ra_tmsg_decode(plain, plen, &inner);
  if (a != ra_tmsg_decode(data, size, &m)) abort();
  if (a == 0) walk(&inner);
  return 0;
}
