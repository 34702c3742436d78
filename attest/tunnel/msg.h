/* attest/tunnel_msg.h: the tunnel's control-channel messages (PROTOCOL.md §2-3)
 * as CBOR: a decoder that returns views, and encoders that write into the
 * caller's buffer.
 *
 * Decoding never allocates and never copies: every ra_str in a decoded ra_tmsg points into the input buffer and is valid
 * as long as that buffer is. Items are tokenised with libcbor's streaming
 * decoder (cbor_stream_decode), one head at a time over the caller's bytes:
 * no CBOR tree is built, so a 1 MiB body costs one view.
 *
 * Accepted input (what the reference's cbor-x and other encoders produce):
 * maps and arrays of definite or indefinite length; byte strings with or
 * without tag 64 (Uint8Array); `undefined` (0xf7) and `null` as "absent"
 * for optional fields; unknown keys (any value, nested up to 32 levels) are
 * skipped; a duplicated key: the last one wins (as in JavaScript). Refused
 * (-EBADMSG): anything that is not exactly one well-formed CBOR item, a
 * top-level item that is not a map with a text `type`, a known field of the
 * wrong type, a missing required field, indefinite-length strings (they
 * cannot be returned as one view; the reference never sends them).
 *
 * Encoding: maps are headed 0xb9 + a 2-byte count, exactly as cbor-x does,
 * so our output is byte-identical to the reference's for the same values
 * (byte strings excepted: we send plain byte strings, never tag 64, as a
 * Node Buffer would be); everything else uses the shortest heads; strings
 * are always definite. Each encoder returns the number of bytes the message
 * needs; the message is complete in out only when that is <= cap (with
 * less room out holds an unspecified prefix; a call with cap 0 measures).
 */
#ifndef RA_ATTEST_TUNNEL_MSG_H
#define RA_ATTEST_TUNNEL_MSG_H

#include "raloop/core/api.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "raloop/core/buf.h"
#include "raloop/core/str.h"
#include "raloop/http/request.h"

/* Byte strings are ra_str views read as .bytes. A map or array kept
 * encoded (headers, protocols) is an ra_str over the whole CBOR item (its
 * first byte at .bytes; NULL: absent), already validated by ra_tmsg_decode
 * and walked with the iterators below. */

typedef enum ra_tmsg_type {
  RA_TMSG_UNKNOWN = 0, /* a well-formed message of a type we do not know */
  /* outer (plaintext on the control channel) */
  RA_TMSG_CLIENT_KX_READY,
  RA_TMSG_SERVER_KX,
  RA_TMSG_CLIENT_KX,
  RA_TMSG_ENC,
  /* inner (inside an `enc` envelope) */
  RA_TMSG_HTTP_REQUEST,
  RA_TMSG_HTTP_RESPONSE,
  RA_TMSG_WS_CONNECT,
  RA_TMSG_WS_MESSAGE,
  RA_TMSG_WS_CLOSE,
  RA_TMSG_WS_EVENT,
  /* raloop's streamed-body extension (PROTOCOL.md §11), only after both
   * sides announced bodyStreams in server_kx / client_kx */
  RA_TMSG_HTTP_BODY,
  RA_TMSG_HTTP_CREDIT,
  RA_TMSG_HTTP_CANCEL,
} ra_tmsg_type;

RA_API const char *ra_tmsg_type_name(ra_tmsg_type t); /* "http_request", ... */

typedef enum { RA_TMSG_VD_NONE = 0, RA_TMSG_VD_NONCE, RA_TMSG_VD_BYTES } ra_tmsg_vd_kind;
typedef enum { RA_TMSG_DT_NONE = 0, RA_TMSG_DT_STRING, RA_TMSG_DT_ARRAYBUFFER, RA_TMSG_DT_OTHER } ra_tmsg_data_type;
typedef enum { RA_TMSG_EV_OPEN = 1, RA_TMSG_EV_CLOSE, RA_TMSG_EV_ERROR } ra_tmsg_event;

/* The streamed-body extension's parameters, as each side announces them
 * (PROTOCOL.md §11): window: the credit in bytes it grants each stream it
 * receives before any http_credit; chunk: the most data bytes it accepts in
 * one http_body. */
typedef struct ra_tmsg_body_streams {
  uint64_t window, chunk;
} ra_tmsg_body_streams;
#define RA_TMSG_BS_WINDOW_MIN ((uint64_t)64 * 1024)
#define RA_TMSG_BS_WINDOW_MAX ((uint64_t)4 * 1024 * 1024)
#define RA_TMSG_BS_CHUNK_MIN ((uint64_t)16 * 1024)
#define RA_TMSG_BS_CHUNK_MAX ((uint64_t)1024 * 1024)
/* window in [WINDOW_MIN, WINDOW_MAX], chunk in [CHUNK_MIN, min(window,
 * CHUNK_MAX)]. Out of range: the announcement is ignored (no streaming). */
RA_API bool ra_tmsg_body_streams_valid(const ra_tmsg_body_streams *bs);
typedef struct ra_tmsg_server_kx {
  ra_str x25519_public_key; /* exactly 32 bytes */
  ra_str quote;             /* may be empty (the client refuses it) */
  bool has_runtime_data;
  ra_str runtime_data;
  ra_tmsg_vd_kind vd_kind;
  ra_str vd_val, vd_iat, vd_signature; /* VD_NONCE (each may be absent: len 0, ptr NULL) */
  ra_str vd_bytes;                     /* VD_BYTES (SEV-SNP nonce) */
  bool has_sev_snp;
  ra_str vcek_cert;           /* required inside sev_snp_data */
  bool has_ask_cert, has_ark_cert;
  ra_str ask_cert, ark_cert;
  /* raloop's extension (PROTOCOL.md §10), ignored by the reference client:
   * a fresh per-connection challenge for the client's own attestation.
   * When present it is exactly RA_TMSG_CHALLENGE_BYTES (else -EBADMSG). */
  bool has_client_challenge;
  ra_str client_challenge;
  /* raloop's extension (PROTOCOL.md §11), ignored by the reference client:
   * bodyStreams {window: uint, chunk: uint}, the server takes streamed
   * bodies. Decoded as sent; the receiver checks the ranges
   * (ra_tmsg_body_streams_valid). */
  bool has_body_streams;
  ra_tmsg_body_streams body_streams;
} ra_tmsg_server_kx;

#define RA_TMSG_CHALLENGE_BYTES 32

typedef struct ra_tmsg {
  ra_tmsg_type type;
  ra_str type_name; /* the `type` text as received */
  union {
    ra_tmsg_server_kx server_kx;
    struct {
      ra_str sealed_key;
      /* raloop's extension (PROTOCOL.md §10), ignored by the reference
       * server: clientAttestation {quote: bytes, event_log: text | null};
       * null / undefined / absent: has_attestation false. */
      bool has_attestation, has_att_event_log;
      ra_str att_quote;     /* required inside clientAttestation; may be empty */
      ra_str att_event_log; /* dstack's event log as JSON text */
      /* PROTOCOL.md §11: the client opts in to streamed bodies */
      bool has_body_streams;
      ra_tmsg_body_streams body_streams;
    } client_kx;
    struct {
      ra_str nonce;      /* exactly 24 bytes */
      ra_str ciphertext; /* at least 16 bytes (the MAC) */
    } enc;
    struct {
      ra_str request_id, method, url;
      ra_str headers; /* map text -> text | [text]; absent: empty */
      bool has_body, body_is_text;
      ra_str body;
      bool has_timeout;
      double timeout; /* ms, as sent */
      bool body_stream; /* §11 `bodyStream: true`: the body follows as http_body */
    } http_request;
    struct {
      ra_str request_id;
      int status;          /* 0..999 */
      ra_str status_text;  /* absent: empty */
      ra_str headers;
      bool has_body, body_is_text;
      ra_str body;
      bool has_error;
      ra_str error;
      bool body_stream; /* §11 `bodyStream: true`: the body follows as http_body */
    } http_response;
    struct {
      ra_str request_id;
      ra_str data; /* bytes */
      bool end;    /* the last piece (data may be empty) */
    } http_body;
    struct {
      ra_str request_id;
      uint64_t bytes; /* more credit granted */
    } http_credit;
    struct {
      ra_str request_id;
      bool has_reason;
      ra_str reason;
    } http_cancel;
    struct {
      ra_str connection_id, url;
      ra_str protocols; /* array of text; absent: ptr NULL */
    } ws_connect;
    struct {
      ra_str connection_id;
      bool is_text;      /* CBOR type of `data`: text string vs byte string */
      ra_str data;
      ra_tmsg_data_type data_type; /* `dataType` as sent (advisory) */
    } ws_message;
    struct {
      ra_str connection_id;
      bool has_code, has_reason;
      int code; /* 0..65535 */
      ra_str reason;
    } ws_close;
    struct {
      ra_str connection_id;
      ra_tmsg_event event;
      bool has_code, has_reason, has_error;
      int code;
      ra_str reason, error;
    } ws_event;
  };
} ra_tmsg;

/* Decodes one message: `data` must be exactly one CBOR item. Returns 0 and
 * fills *out (views into data), or -EBADMSG. A well-formed map whose `type`
 * is unknown decodes as RA_TMSG_UNKNOWN (callers drop it). */
RA_API int ra_tmsg_decode(const uint8_t *data, size_t len, ra_tmsg *out);

/* Header iteration: each (name, value) pair in order; a name whose value is
 * an array yields one pair per element; null/undefined values are skipped.
 * Views point into the decoded buffer. */
typedef struct ra_tmsg_iter {
  const uint8_t *p, *end;
  uint64_t left;     /* entries left in the map/array (UINT64_MAX: indefinite) */
  uint64_t arr_left; /* elements left in the current header's array
                        (UINT64_MAX: indefinite, up to its break) */
  bool arr_indef;
  ra_str cur_name;
} ra_tmsg_iter;
RA_API void ra_tmsg_iter_init(ra_tmsg_iter *it, ra_str seq);
RA_API bool ra_tmsg_headers_next(ra_tmsg_iter *it, ra_str *name, ra_str *value);
/* Protocols (array of text). */
RA_API bool ra_tmsg_strings_next(ra_tmsg_iter *it, ra_str *value);

/* Header names and values as the bytes of an HTTP/1.1 header: the inverse
 * of the encoders' mapping (each code point up to U+00FF is one byte, as a
 * browser's fetch puts a header string on the wire). When every name and
 * value is ASCII, returns 0 and leaves *seq alone (no copy). Otherwise
 * points *seq at a converted copy for ra_tmsg_headers_next (its text
 * strings hold raw bytes), sets *owned to that copy (the caller frees it
 * after the last use of *seq) and returns 0. -EILSEQ: some name or value is
 * not UTF-8 or has a code point above U+00FF (*seq untouched); -ENOMEM.
 * *owned is NULL unless a copy was made. */
RA_API int ra_tmsg_headers_to_bytes(ra_str *seq, uint8_t **owned);

/* ---- encoders ----------------------------------------------------------
 * Each returns the encoded size; the message is in out only when the size
 * is <= cap (never written past cap). Inputs are read during the call only. */

RA_API size_t ra_tmsg_encode_client_kx_ready(uint8_t *out, size_t cap);

typedef struct ra_tmsg_server_kx_out {
  const uint8_t *x25519_public_key; /* 32 bytes */
  ra_str quote;
  ra_str runtime_data;       /* ptr NULL: null */
  ra_tmsg_vd_kind vd_kind;          /* NONE: null */
  ra_str vd_val, vd_iat, vd_signature, vd_bytes;
  const char *vcek_cert, *ask_cert, *ark_cert; /* vcek NULL: sev_snp_data null */
  const ra_tmsg_body_streams *body_streams; /* NULL: not announced (§11) */
} ra_tmsg_server_kx_out;
RA_API size_t ra_tmsg_encode_server_kx(uint8_t *out, size_t cap, const ra_tmsg_server_kx_out *m);

RA_API size_t ra_tmsg_encode_client_kx(uint8_t *out, size_t cap, const uint8_t *sealed, size_t sealed_len);

/* client_kx with raloop's clientAttestation (PROTOCOL.md §10); att NULL: the
 * plain client_kx above. event_log.ptr NULL: the field is left out. */
typedef struct ra_tmsg_client_att_out {
  ra_str quote;
  ra_str event_log;
} ra_tmsg_client_att_out;
RA_API size_t ra_tmsg_encode_client_kx_att(uint8_t *out, size_t cap, const uint8_t *sealed,
                                           size_t sealed_len, const ra_tmsg_client_att_out *att);
/* client_kx with either or both extensions: att (§10) and body_streams
 * (§11); NULL leaves a field out. */
RA_API size_t ra_tmsg_encode_client_kx_ex(uint8_t *out, size_t cap, const uint8_t *sealed,
                                          size_t sealed_len, const ra_tmsg_client_att_out *att,
                                          const ra_tmsg_body_streams *body_streams);

/* A server_kx made by ra_tmsg_encode_server_kx (kx[0..kx_len)), with
 * `clientChallenge: bytes(32)` appended (its map count bumped): the per-
 * connection message built from the server's cached one without encoding
 * the evidence again. Returns the size as the encoders do, or 0 when kx
 * does not start with our encoder's 0xb9 map head. */
RA_API size_t ra_tmsg_server_kx_add_challenge(uint8_t *out, size_t cap, const uint8_t *kx, size_t kx_len,
                                              const uint8_t challenge[RA_TMSG_CHALLENGE_BYTES]);

/* The `enc` envelope up to and including the head of the ciphertext byte
 * string: the caller puts ct_len ciphertext bytes right after it (the
 * envelope module encrypts in place there). At most RA_TMSG_ENC_HEAD_MAX. */
#define RA_TMSG_ENC_HEAD_MAX 64
RA_API size_t ra_tmsg_encode_enc_head(uint8_t *out, size_t cap, const uint8_t nonce[24], size_t ct_len);
/* The complete envelope (tests, tools). */
RA_API size_t ra_tmsg_encode_enc(uint8_t *out, size_t cap, const uint8_t nonce[24],
                          const uint8_t *ct, size_t ct_len);

typedef enum {
  RA_TMSG_HDR_AS_IS = 0,
  /* lowercase names; several headers with one name (case-insensitive) become
   * one key with an array of values, in order (http_response) */
  RA_TMSG_HDR_LOWER_MULTI = 1,
  /* lowercase names; several headers with one name are joined with ", "
   * (http_request: the reference server expects text values, and its body
   * parsers look for "content-type" exactly, as a browser sends it) */
  RA_TMSG_HDR_JOIN = 2,
} ra_tmsg_hdr_mode;
/* In both modes but AS_IS, names and values are header bytes written as
 * ISO-8859-1 code points (bytes >= 0x80 take two UTF-8 bytes), what a
 * browser's fetch shows for them; ra_tmsg_headers_to_bytes undoes it. */

typedef struct ra_tmsg_http_request_out {
  ra_str request_id, method, url;
  const ra_header *headers;
  size_t n_headers;
  bool has_body, body_is_text;
  const void *body;
  size_t body_len;
  bool body_stream;   /* §11: `bodyStream: true` and no body (has_body ignored) */
} ra_tmsg_http_request_out;
RA_API size_t ra_tmsg_encode_http_request(uint8_t *out, size_t cap, const ra_tmsg_http_request_out *m);

typedef struct ra_tmsg_http_response_out {
  ra_str request_id;
  int status;
  ra_str status_text;
  const ra_header *headers; /* lowercased and grouped into arrays */
  size_t n_headers;
  bool has_body;            /* false: `body: null` (204/205/304) */
  bool body_is_text;
  const void *body;
  size_t body_len;
  const char *error;        /* NULL: no `error` field */
  bool body_stream;         /* §11: `bodyStream: true`, `body: null` (has_body ignored) */
} ra_tmsg_http_response_out;
RA_API size_t ra_tmsg_encode_http_response(uint8_t *out, size_t cap, const ra_tmsg_http_response_out *m);
/* The same message up to and including the key "body" (m->error must be
 * NULL): the caller appends the body's value (a byte string head and the
 * bytes, or null), e.g. body pieces written in place as they come. The
 * fields has_body, body_is_text, body, body_len are not read. */
RA_API size_t ra_tmsg_encode_http_response_head(uint8_t *out, size_t cap, const ra_tmsg_http_response_out *m);
/* A head made by ra_tmsg_encode_http_response_head without body_stream
 * (head[0..head_len)) turned into the complete streamed response: the
 * bytes ra_tmsg_encode_http_response writes for the same fields with
 * body_stream set (`bodyStream: true` inserted before "body", its map
 * count bumped, `body: null`), without encoding the headers again.
 * Returns the size as the encoders do, or 0 when head is not such a head
 * (not our encoder's 0xb9 map head, or not ending with the key "body"). */
RA_API size_t ra_tmsg_response_head_to_stream(uint8_t *out, size_t cap, const uint8_t *head, size_t head_len);
/* The head of a byte string of len bytes (shortest form), at most 9 bytes;
 * returns its length. */
RA_API size_t ra_str_head(uint8_t out[9], size_t len);

RA_API size_t ra_tmsg_encode_ws_connect(uint8_t *out, size_t cap, ra_str connection_id, ra_str url,
                                 const ra_str *protocols, size_t n_protocols);
RA_API size_t ra_tmsg_encode_ws_message(uint8_t *out, size_t cap, ra_str connection_id, bool is_text,
                                 const void *data, size_t len);
/* code < 0: no code; reason.ptr NULL: no reason. */
RA_API size_t ra_tmsg_encode_ws_close(uint8_t *out, size_t cap, ra_str connection_id, int code, ra_str reason);
/* code < 0 / reason.ptr NULL / error NULL: field left out. */
RA_API size_t ra_tmsg_encode_ws_event(uint8_t *out, size_t cap, ra_str connection_id, ra_tmsg_event ev,
                               int code, ra_str reason, const char *error);
/* ---- the streamed-body extension (PROTOCOL.md §11) ---------------------- */
/* http_body {type, requestId, end, data}: data last, so that
 * ra_tmsg_encode_http_body_head writes everything up to and including the
 * head of `data`'s byte string and the caller puts len bytes after it (in
 * place, e.g. straight from a file read). */
RA_API size_t ra_tmsg_encode_http_body(uint8_t *out, size_t cap, ra_str request_id, const void *data,
                                       size_t len, bool end);
RA_API size_t ra_tmsg_encode_http_body_head(uint8_t *out, size_t cap, ra_str request_id, size_t len,
                                            bool end);
RA_API size_t ra_tmsg_encode_http_credit(uint8_t *out, size_t cap, ra_str request_id, uint64_t bytes);
/* reason NULL: no `reason` field. */
RA_API size_t ra_tmsg_encode_http_cancel(uint8_t *out, size_t cap, ra_str request_id, const char *reason);

#endif
