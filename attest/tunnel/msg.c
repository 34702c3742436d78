/* attest/tunnel_msg.c: see tunnel_msg.h.
 *
 * Decoding is two passes over the top-level map without building a tree:
 * pass one lexes every key and records where each known field's value is
 * (kind + view, or the span of a nested map/array); pass two, knowing the
 * `type` (which may come anywhere in the map), checks and converts the
 * fields that type uses. Item heads are decoded inline (lex); the rare
 * heads (floats, simple values, reserved and indefinite encodings) go to
 * libcbor's cbor_stream_decode, whose callbacks only fill in a token. The
 * writer encodes heads itself (shortest form, as libcbor's cbor_encode_*)
 * and writes literal keys with compile-time lengths: no strlen, no call per
 * head, no allocation on either side.
 */
#include "raloop/attest/tunnel/msg.h"

#include <cbor.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

/* ---- lexer ------------------------------------------------------------ */

typedef enum {
  T_UINT, T_NEGINT, T_BYTES, T_TEXT, T_ARRAY, T_MAP, T_TAG, T_FLOAT, T_BOOL,
  T_NULL, T_UNDEF, T_BREAK, T_INDEF_ARRAY, T_INDEF_MAP, T_INDEF_BYTES, T_INDEF_TEXT,
} tkind;

typedef struct tok {
  tkind k;
  bool set;
  uint64_t u;  /* uint / negint (-1 - u) / count / tag / bool */
  double f;
  const uint8_t *ptr; /* strings */
  size_t len;
} tok;

#define CBT(x) ((tok *)(x))
static void cb_u8(void *c, uint8_t v) { CBT(c)->k = T_UINT; CBT(c)->u = v; CBT(c)->set = true; }
static void cb_u16(void *c, uint16_t v) { CBT(c)->k = T_UINT; CBT(c)->u = v; CBT(c)->set = true; }
static void cb_u32(void *c, uint32_t v) { CBT(c)->k = T_UINT; CBT(c)->u = v; CBT(c)->set = true; }
static void cb_u64(void *c, uint64_t v) { CBT(c)->k = T_UINT; CBT(c)->u = v; CBT(c)->set = true; }
static void cb_n8(void *c, uint8_t v) { CBT(c)->k = T_NEGINT; CBT(c)->u = v; CBT(c)->set = true; }
static void cb_n16(void *c, uint16_t v) { CBT(c)->k = T_NEGINT; CBT(c)->u = v; CBT(c)->set = true; }
static void cb_n32(void *c, uint32_t v) { CBT(c)->k = T_NEGINT; CBT(c)->u = v; CBT(c)->set = true; }
static void cb_n64(void *c, uint64_t v) { CBT(c)->k = T_NEGINT; CBT(c)->u = v; CBT(c)->set = true; }
static void cb_bytes(void *c, cbor_data p, size_t n) {
  CBT(c)->k = T_BYTES; CBT(c)->ptr = p; CBT(c)->len = n; CBT(c)->set = true;
}
static void cb_text(void *c, cbor_data p, size_t n) {
  CBT(c)->k = T_TEXT; CBT(c)->ptr = p; CBT(c)->len = n; CBT(c)->set = true;
}
static void cb_bytes_indef(void *c) { CBT(c)->k = T_INDEF_BYTES; CBT(c)->set = true; }
static void cb_text_indef(void *c) { CBT(c)->k = T_INDEF_TEXT; CBT(c)->set = true; }
static void cb_arr_indef(void *c) { CBT(c)->k = T_INDEF_ARRAY; CBT(c)->set = true; }
static void cb_map_indef(void *c) { CBT(c)->k = T_INDEF_MAP; CBT(c)->set = true; }
static void cb_arr(void *c, size_t n) { CBT(c)->k = T_ARRAY; CBT(c)->u = n; CBT(c)->set = true; }
static void cb_map(void *c, size_t n) { CBT(c)->k = T_MAP; CBT(c)->u = n; CBT(c)->set = true; }
static void cb_tag(void *c, uint64_t v) { CBT(c)->k = T_TAG; CBT(c)->u = v; CBT(c)->set = true; }
static void cb_f(void *c, float v) { CBT(c)->k = T_FLOAT; CBT(c)->f = v; CBT(c)->set = true; }
static void cb_d(void *c, double v) { CBT(c)->k = T_FLOAT; CBT(c)->f = v; CBT(c)->set = true; }
static void cb_undef(void *c) { CBT(c)->k = T_UNDEF; CBT(c)->set = true; }
static void cb_null(void *c) { CBT(c)->k = T_NULL; CBT(c)->set = true; }
static void cb_bool(void *c, bool v) { CBT(c)->k = T_BOOL; CBT(c)->u = v; CBT(c)->set = true; }
static void cb_break(void *c) { CBT(c)->k = T_BREAK; CBT(c)->set = true; }

static const struct cbor_callbacks lex_cbs = {
  .uint8 = cb_u8, .uint16 = cb_u16, .uint32 = cb_u32, .uint64 = cb_u64,
  .negint8 = cb_n8, .negint16 = cb_n16, .negint32 = cb_n32, .negint64 = cb_n64,
  .byte_string_start = cb_bytes_indef, .byte_string = cb_bytes,
  .string = cb_text, .string_start = cb_text_indef,
  .indef_array_start = cb_arr_indef, .array_start = cb_arr,
  .indef_map_start = cb_map_indef, .map_start = cb_map,
  .tag = cb_tag, .float2 = cb_f, .float4 = cb_f, .float8 = cb_d,
  .undefined = cb_undef, .null = cb_null, .boolean = cb_bool, .indef_break = cb_break,
};

typedef struct lexer {
  const uint8_t *p, *end;
} lexer;

/* The slow path: libcbor's own head decoder, for the heads the fast path
 * below leaves to it (floats, simple values, reserved and indefinite
 * encodings), so that what is accepted or refused stays libcbor's call. */
static int lex_slow(lexer *lx, tok *t) {
  memset(t, 0, sizeof *t);
  struct cbor_decoder_result r =
      cbor_stream_decode(lx->p, (size_t)(lx->end - lx->p), &lex_cbs, t);
  if (r.status != CBOR_DECODER_FINISHED || r.read == 0 || !t->set ||
      r.read > (size_t)(lx->end - lx->p))
    return -EBADMSG;
  if (t->k == T_INDEF_BYTES || t->k == T_INDEF_TEXT) return -EBADMSG;
  lx->p += r.read;
  return 0;
}

/* Reads one item head. Indefinite strings are refused here: their chunks
 * could not be returned as one view. The definite heads of major types 0-6
 * and false/true/null/undefined/break (all a message normally holds) are
 * decoded inline, exactly as cbor_stream_decode would (shortest form not
 * required, a string's bytes must all be present); a call into libcbor per
 * head and its callback were most of the decoder's cost. */
static int lex(lexer *lx, tok *t) {
  const uint8_t *p = lx->p;
  size_t avail = (size_t)(lx->end - p);
  if (avail == 0) return -EBADMSG;
  uint8_t ib = p[0];
  unsigned major = ib >> 5, ai = ib & 0x1f;
  if (major == 7) {
    switch (ib) {
    case 0xf4: case 0xf5: t->k = T_BOOL; t->u = ib == 0xf5; break;
    case 0xf6: t->k = T_NULL; break;
    case 0xf7: t->k = T_UNDEF; break;
    case 0xff: t->k = T_BREAK; break;
    default: return lex_slow(lx, t);
    }
    t->set = true;
    lx->p = p + 1;
    return 0;
  }
  if (ai >= 28) return lex_slow(lx, t); /* reserved / indefinite */
  uint64_t v;
  size_t hl;
  if (ai < 24) { v = ai; hl = 1; }
  else {
    size_t n = (size_t)1 << (ai - 24); /* 1, 2, 4, 8 bytes follow */
    if (avail < 1 + n) return -EBADMSG;
    v = 0;
    for (size_t i = 1; i <= n; i++) v = v << 8 | p[i];
    hl = 1 + n;
  }
  t->set = true;
  switch (major) {
  case 0: t->k = T_UINT; t->u = v; break;
  case 1: t->k = T_NEGINT; t->u = v; break;
  case 2: case 3:
    if (v > avail - hl) return -EBADMSG;
    t->k = major == 2 ? T_BYTES : T_TEXT;
    t->ptr = p + hl;
    t->len = (size_t)v;
    hl += (size_t)v;
    break;
  case 4: t->k = T_ARRAY; t->u = v; break;
  case 5: t->k = T_MAP; t->u = v; break;
  default: t->k = T_TAG; t->u = v; break;
  }
  lx->p = p + hl;
  return 0;
}

#define MAX_DEPTH 32
#define INDEF UINT64_MAX

/* Skips the rest of an item whose head `t` was just read. Iterative, with a
 * bounded stack of "items left" counters. */
static int skip_after(lexer *lx, const tok *first) {
  uint64_t left[MAX_DEPTH];
  int depth = 0;
  tok t = *first;
  for (;;) {
    /* t is a head just read; account for it */
    switch (t.k) {
    case T_TAG: { /* a tag is followed by its item: read it in place of t */
      int rc = lex(lx, &t);
      if (rc) return rc;
      if (t.k == T_BREAK) return -EBADMSG;
      continue;
    }
    case T_ARRAY: case T_MAP: case T_INDEF_ARRAY: case T_INDEF_MAP: {
      uint64_t n;
      if (t.k == T_ARRAY) n = t.u;
      else if (t.k == T_MAP) {
        if (t.u > UINT64_MAX / 2) return -EBADMSG;
        n = t.u * 2;
      } else n = INDEF;
      if (n != INDEF && n > (uint64_t)(lx->end - lx->p)) return -EBADMSG; /* each item >= 1 byte */
      if (n == 0) break;
      if (depth == MAX_DEPTH) return -EBADMSG;
      left[depth++] = n;
      goto next;
    }
    case T_BREAK:
      return -EBADMSG; /* handled below, never as an item */
    default:
      break;
    }
    /* one complete item: pop finished containers */
    while (depth > 0) {
      if (left[depth - 1] != INDEF && --left[depth - 1] == 0) { depth--; continue; }
      break;
    }
    if (depth == 0) return 0;
  next:;
    int rc = lex(lx, &t);
    if (rc) return rc;
    if (t.k == T_BREAK) {
      if (depth == 0 || left[depth - 1] != INDEF) return -EBADMSG;
      depth--;
      /* the indefinite container just closed counts as one item of its parent */
      while (depth > 0) {
        if (left[depth - 1] != INDEF && --left[depth - 1] == 0) { depth--; continue; }
        break;
      }
      if (depth == 0) return 0;
      goto next;
    }
  }
}

/* ---- pass 1: field slots ---------------------------------------------- */

typedef enum {
  F_TYPE, F_X25519, F_QUOTE, F_RUNTIME, F_VERIFIER, F_SEV, F_SEALED, F_NONCE,
  F_CIPHERTEXT, F_REQUEST_ID, F_METHOD, F_URL, F_HEADERS, F_BODY, F_TIMEOUT,
  F_STATUS, F_STATUS_TEXT, F_ERROR, F_CONNECTION_ID, F_PROTOCOLS, F_DATA,
  F_DATA_TYPE, F_CODE, F_REASON, F_EVENT_TYPE,
  /* raloop's client attestation (PROTOCOL.md §10): server_kx / client_kx */
  F_CLIENT_CHALLENGE, F_CLIENT_ATT,
  /* raloop's streamed bodies (PROTOCOL.md §11) */
  F_BODY_STREAMS, F_BODY_STREAM, F_END, F_BYTES,
  /* nested: verifier_data / sev_snp_data */
  F_VAL, F_IAT, F_SIGNATURE, F_VCEK, F_ASK, F_ARK,
  /* nested: clientAttestation */
  F_ATT_QUOTE, F_ATT_EVENT_LOG,
  /* nested: bodyStreams */
  F_WINDOW, F_CHUNK,
  F_COUNT
} field;

static const char *const field_names[F_COUNT] = {
  "type", "x25519PublicKey", "quote", "runtime_data", "verifier_data", "sev_snp_data",
  "sealedSymmetricKey", "nonce", "ciphertext", "requestId", "method", "url", "headers",
  "body", "timeout", "status", "statusText", "error", "connectionId", "protocols", "data",
  "dataType", "code", "reason", "eventType",
  "clientChallenge", "clientAttestation",
  "bodyStreams", "bodyStream", "end", "bytes",
  "val", "iat", "signature", "vcek_cert", "ask_cert", "ark_cert",
  "quote", "event_log",
  "window", "chunk",
};

/* A field's value: its head (tag 64 removed), and for maps/arrays the span
 * of the whole item. */
typedef struct slot {
  bool present; /* present and not undefined */
  bool tagged;  /* had tag 64 */
  tok t;
  const uint8_t *start, *end;
} slot;

/* For each key length, the fields of that length (a bit per field): a key
 * is compared with memcmp against those few names only. */
#define FL(s) (sizeof(s) - 1)
#define LM(L) ( \
  (uint64_t)(FL("type") == (L)) << F_TYPE | (uint64_t)(FL("x25519PublicKey") == (L)) << F_X25519 | \
  (uint64_t)(FL("quote") == (L)) << F_QUOTE | (uint64_t)(FL("runtime_data") == (L)) << F_RUNTIME | \
  (uint64_t)(FL("verifier_data") == (L)) << F_VERIFIER | (uint64_t)(FL("sev_snp_data") == (L)) << F_SEV | \
  (uint64_t)(FL("sealedSymmetricKey") == (L)) << F_SEALED | (uint64_t)(FL("nonce") == (L)) << F_NONCE | \
  (uint64_t)(FL("ciphertext") == (L)) << F_CIPHERTEXT | (uint64_t)(FL("requestId") == (L)) << F_REQUEST_ID | \
  (uint64_t)(FL("method") == (L)) << F_METHOD | (uint64_t)(FL("url") == (L)) << F_URL | \
  (uint64_t)(FL("headers") == (L)) << F_HEADERS | (uint64_t)(FL("body") == (L)) << F_BODY | \
  (uint64_t)(FL("timeout") == (L)) << F_TIMEOUT | (uint64_t)(FL("status") == (L)) << F_STATUS | \
  (uint64_t)(FL("statusText") == (L)) << F_STATUS_TEXT | (uint64_t)(FL("error") == (L)) << F_ERROR | \
  (uint64_t)(FL("connectionId") == (L)) << F_CONNECTION_ID | (uint64_t)(FL("protocols") == (L)) << F_PROTOCOLS | \
  (uint64_t)(FL("data") == (L)) << F_DATA | (uint64_t)(FL("dataType") == (L)) << F_DATA_TYPE | \
  (uint64_t)(FL("code") == (L)) << F_CODE | (uint64_t)(FL("reason") == (L)) << F_REASON | \
  (uint64_t)(FL("eventType") == (L)) << F_EVENT_TYPE | \
  (uint64_t)(FL("clientChallenge") == (L)) << F_CLIENT_CHALLENGE | \
  (uint64_t)(FL("clientAttestation") == (L)) << F_CLIENT_ATT | \
  (uint64_t)(FL("bodyStreams") == (L)) << F_BODY_STREAMS | (uint64_t)(FL("bodyStream") == (L)) << F_BODY_STREAM | \
  (uint64_t)(FL("end") == (L)) << F_END | (uint64_t)(FL("bytes") == (L)) << F_BYTES | \
  (uint64_t)(FL("val") == (L)) << F_VAL | (uint64_t)(FL("iat") == (L)) << F_IAT | \
  (uint64_t)(FL("signature") == (L)) << F_SIGNATURE | (uint64_t)(FL("vcek_cert") == (L)) << F_VCEK | \
  (uint64_t)(FL("ask_cert") == (L)) << F_ASK | (uint64_t)(FL("ark_cert") == (L)) << F_ARK | \
  (uint64_t)(FL("quote") == (L)) << F_ATT_QUOTE | (uint64_t)(FL("event_log") == (L)) << F_ATT_EVENT_LOG | \
  (uint64_t)(FL("window") == (L)) << F_WINDOW | (uint64_t)(FL("chunk") == (L)) << F_CHUNK)
#define MAX_KEY_LEN 18 /* "sealedSymmetricKey" */
static const uint64_t len_masks[MAX_KEY_LEN + 1] = {
  LM(0), LM(1), LM(2), LM(3), LM(4), LM(5), LM(6), LM(7), LM(8), LM(9),
  LM(10), LM(11), LM(12), LM(13), LM(14), LM(15), LM(16), LM(17), LM(18),
};
_Static_assert(F_COUNT <= 64, "a field mask is 64 bits");
_Static_assert((LM(0) | LM(1) | LM(2) | LM(3) | LM(4) | LM(5) | LM(6) | LM(7) | LM(8) | LM(9) |
                LM(10) | LM(11) | LM(12) | LM(13) | LM(14) | LM(15) | LM(16) | LM(17) | LM(18)) ==
                   (UINT64_C(1) << F_COUNT) - 1,
               "every field has a name no longer than MAX_KEY_LEN");
#undef LM
#undef FL

static int lookup_field(const tok *key, int first, int last) {
  if (key->len > MAX_KEY_LEN) return -1;
  uint64_t m = len_masks[key->len] & ((UINT64_C(1) << last) - 1) & ~((UINT64_C(1) << first) - 1);
  for (; m; m &= m - 1) {
    int i = __builtin_ctzll(m);
    if (memcmp(field_names[i], key->ptr, key->len) == 0) return i;
  }
  return -1;
}

/* Reads one value into s (or skips it when s is NULL). */
static int read_value(lexer *lx, slot *s) {
  const uint8_t *start = lx->p;
  tok t;
  int rc = lex(lx, &t);
  if (rc) return rc;
  if (t.k == T_BREAK) return -EBADMSG;
  bool tagged = false;
  if (t.k == T_TAG) {
    if (!s || t.u != 64) {
      if ((rc = skip_after(lx, &t))) return rc;
      return s ? -EBADMSG : 0; /* only tag 64 means something on a known field */
    }
    tagged = true;
    if ((rc = lex(lx, &t))) return rc;
    if (t.k != T_BYTES) return -EBADMSG; /* tag 64 is a Uint8Array: bytes only */
  }
  if (t.k == T_ARRAY || t.k == T_MAP || t.k == T_INDEF_ARRAY || t.k == T_INDEF_MAP) {
    if ((rc = skip_after(lx, &t))) return rc;
  }
  if (s) {
    s->present = t.k != T_UNDEF;
    s->tagged = tagged;
    s->t = t;
    s->start = start;
    s->end = lx->p;
  }
  return 0;
}

/* Walks a map (whose head has been read into `head`), filling slots for keys
 * in [first, last). Keys must be text; others are skipped with their value
 * only if they are well-formed (any key type is tolerated by cbor-x, but a
 * message map always has text keys: refuse others to stay strict). */
static int read_map(lexer *lx, const tok *head, slot *slots, int first, int last, uint64_t *have) {
  uint64_t n = head->k == T_MAP ? head->u : INDEF;
  for (uint64_t i = 0; n == INDEF || i < n; i++) {
    tok key;
    int rc = lex(lx, &key);
    if (rc) return rc;
    if (key.k == T_BREAK) {
      if (n != INDEF) return -EBADMSG;
      return 0;
    }
    if (key.k != T_TEXT) return -EBADMSG;
    int f = lookup_field(&key, first, last);
    if ((rc = read_value(lx, f >= 0 ? &slots[f] : NULL))) return rc;
    if (f >= 0 && have) *have |= UINT64_C(1) << f;
  }
  return 0;
}

/* A nested map (verifier_data, sev_snp_data, clientAttestation,
 * bodyStreams) read into sub (cleared here) for its fields in [first, last):
 * the same walk as the top level, over the span read_value recorded. */
static int read_nested(const slot *s, slot sub[F_COUNT], int first, int last) {
  memset(sub, 0, sizeof(slot) * F_COUNT);
  lexer lx = {s->start, s->end};
  tok head;
  if (lex(&lx, &head) || read_map(&lx, &head, sub, first, last, NULL)) return -EBADMSG;
  return 0;
}

/* ---- pass 2: typed extraction ------------------------------------------ */

static int get_text(const slot *s, bool required, ra_str *out, bool *has) {
  if (has) *has = false;
  if (!s->present || s->t.k == T_NULL) {
    *out = ra_str_make(NULL, 0);
    return required ? -EBADMSG : 0;
  }
  if (s->t.k != T_TEXT) return -EBADMSG;
  *out = ra_str_make((const char *)s->t.ptr, s->t.len);
  if (has) *has = true;
  return 0;
}

static int get_bytes(const slot *s, bool required, ra_str *out, bool *has) {
  if (has) *has = false;
  *out = ra_bytes_make(NULL, 0);
  if (!s->present || s->t.k == T_NULL) return required ? -EBADMSG : 0;
  if (s->t.k != T_BYTES) return -EBADMSG;
  *out = ra_bytes_make(s->t.ptr, s->t.len);
  if (has) *has = true;
  return 0;
}

/* text or bytes (bodies, ws data) */
static int get_blob(const slot *s, bool required, ra_str *out, bool *has, bool *is_text) {
  *has = false;
  *is_text = false;
  *out = ra_bytes_make(NULL, 0);
  if (!s->present || s->t.k == T_NULL) return required ? -EBADMSG : 0;
  if (s->t.k != T_BYTES && s->t.k != T_TEXT) return -EBADMSG;
  *is_text = s->t.k == T_TEXT;
  *out = ra_bytes_make(s->t.ptr, s->t.len);
  *has = true;
  return 0;
}

/* An integer in [lo, hi]; JS numbers may arrive as floats with integral values. */
static int get_int(const slot *s, bool required, int lo, int hi, int *out, bool *has) {
  if (has) *has = false;
  *out = 0;
  if (!s->present || s->t.k == T_NULL) return required ? -EBADMSG : 0;
  double v;
  if (s->t.k == T_UINT) {
    if (s->t.u > (uint64_t)hi) return -EBADMSG;
    v = (double)s->t.u;
  } else if (s->t.k == T_NEGINT) {
    if (s->t.u >= (uint64_t)INT32_MAX) return -EBADMSG;
    v = -1.0 - (double)s->t.u;
  } else if (s->t.k == T_FLOAT) {
    v = s->t.f;
    /* integral and in range (NaN fails every comparison); no libm needed */
    if (!(v >= lo && v <= hi) || (double)(int64_t)v != v) return -EBADMSG;
  } else {
    return -EBADMSG;
  }
  if (v < lo || v > hi) return -EBADMSG;
  *out = (int)v;
  if (has) *has = true;
  return 0;
}

static int get_number(const slot *s, double *out, bool *has) {
  *has = false;
  if (!s->present || s->t.k == T_NULL) return 0;
  if (s->t.k == T_UINT) *out = (double)s->t.u;
  else if (s->t.k == T_NEGINT) *out = -1.0 - (double)s->t.u;
  else if (s->t.k == T_FLOAT) *out = s->t.f;
  else return -EBADMSG;
  *has = true;
  return 0;
}

/* A non-negative integer (credit, window sizes); an integral float up to
 * 2^53 is accepted as JS numbers may arrive that way. */
static int get_uint(const slot *s, bool required, uint64_t *out, bool *has) {
  if (has) *has = false;
  *out = 0;
  if (!s->present || s->t.k == T_NULL) return required ? -EBADMSG : 0;
  if (s->t.k == T_UINT) {
    *out = s->t.u;
  } else if (s->t.k == T_FLOAT) {
    double v = s->t.f;
    if (!(v >= 0 && v <= 9007199254740992.0) || (double)(uint64_t)v != v) return -EBADMSG;
    *out = (uint64_t)v;
  } else {
    return -EBADMSG;
  }
  if (has) *has = true;
  return 0;
}

/* A boolean; null / undefined / absent read as false (required: refused). */
static int get_bool(const slot *s, bool required, bool *out) {
  *out = false;
  if (!s->present || s->t.k == T_NULL) return required ? -EBADMSG : 0;
  if (s->t.k != T_BOOL) return -EBADMSG;
  *out = s->t.u != 0;
  return 0;
}

/* bodyStreams {window: uint, chunk: uint} (PROTOCOL.md §11); null /
 * undefined / absent: not announced. Ranges are the receiver's check. */
static int get_body_streams(const slot *s, bool *has, ra_tmsg_body_streams *bs) {
  *has = false;
  bs->window = bs->chunk = 0;
  if (!s->present || s->t.k == T_NULL) return 0;
  if (s->t.k != T_MAP && s->t.k != T_INDEF_MAP) return -EBADMSG;
  slot sub[F_COUNT];
  if (read_nested(s, sub, F_WINDOW, F_CHUNK + 1)) return -EBADMSG;
  int rc;
  if ((rc = get_uint(&sub[F_WINDOW], true, &bs->window, NULL)) ||
      (rc = get_uint(&sub[F_CHUNK], true, &bs->chunk, NULL)))
    return rc;
  *has = true;
  return 0;
}

bool ra_tmsg_body_streams_valid(const ra_tmsg_body_streams *bs) {
  if (!bs) return false;
  if (bs->window < RA_TMSG_BS_WINDOW_MIN || bs->window > RA_TMSG_BS_WINDOW_MAX) return false;
  uint64_t cmax = bs->window < RA_TMSG_BS_CHUNK_MAX ? bs->window : RA_TMSG_BS_CHUNK_MAX;
  return bs->chunk >= RA_TMSG_BS_CHUNK_MIN && bs->chunk <= cmax;
}

static bool str_is(ra_str s, const char *lit) {
  size_t n = strlen(lit);
  return s.len == n && memcmp(s.ptr, lit, n) == 0;
}

static bool headers_next(ra_tmsg_iter *it, ra_str *name, ra_str *value);
static bool strings_next(ra_tmsg_iter *it, ra_str *value);

/* An iteration that stopped on something it does not take (or never
 * started: not a map or array) rather than at the container's end. */
static bool iter_failed(const ra_tmsg_iter *it) { return !it->p; }

/* Validates a headers map (text keys, values text | array of text | null |
 * undefined) or, strings, an array of text: a full walk with the iterator
 * the caller will use, so that it can trust the item afterwards. */
static int check_seq(const slot *s, bool strings, ra_str *out) {
  *out = ra_bytes_make(NULL, 0);
  if (!s->present || s->t.k == T_NULL) return 0;
  if (strings ? s->t.k != T_ARRAY && s->t.k != T_INDEF_ARRAY : s->t.k != T_MAP && s->t.k != T_INDEF_MAP)
    return -EBADMSG;
  *out = ra_bytes_make(s->start, (size_t)(s->end - s->start));
  ra_tmsg_iter it;
  ra_str k, v;
  ra_tmsg_iter_init(&it, *out);
  if (strings) while (strings_next(&it, &v)) {}
  else while (headers_next(&it, &k, &v)) {}
  return iter_failed(&it) ? -EBADMSG : 0;
}
static int check_headers(const slot *s, ra_str *out) { return check_seq(s, false, out); }
static int check_strings(const slot *s, ra_str *out) { return check_seq(s, true, out); }

/* A top-level field's slot: its own if the key was seen, else `absent`. */
static const slot absent;
#define SL(f) (((have) >> (f)) & 1 ? &sl[f] : &absent)

static int decode_server_kx(const slot *sl, uint64_t have, ra_tmsg_server_kx *k) {
  int rc;
  if ((rc = get_bytes(SL(F_X25519), true, &k->x25519_public_key, NULL))) return rc;
  if (k->x25519_public_key.len != 32) return -EBADMSG;
  if ((rc = get_bytes(SL(F_QUOTE), true, &k->quote, NULL))) return rc;
  if ((rc = get_bytes(SL(F_RUNTIME), false, &k->runtime_data, &k->has_runtime_data))) return rc;
  const slot *vd = SL(F_VERIFIER);
  k->vd_kind = RA_TMSG_VD_NONE;
  if (vd->present && vd->t.k == T_BYTES) {
    k->vd_kind = RA_TMSG_VD_BYTES;
    k->vd_bytes.bytes = vd->t.ptr;
    k->vd_bytes.len = vd->t.len;
  } else if (vd->present && (vd->t.k == T_MAP || vd->t.k == T_INDEF_MAP)) {
    slot sub[F_COUNT];
    if (read_nested(vd, sub, F_VAL, F_SIGNATURE + 1)) return -EBADMSG;
    k->vd_kind = RA_TMSG_VD_NONCE;
    if ((rc = get_bytes(&sub[F_VAL], false, &k->vd_val, NULL))) return rc;
    if ((rc = get_bytes(&sub[F_IAT], false, &k->vd_iat, NULL))) return rc;
    if ((rc = get_bytes(&sub[F_SIGNATURE], false, &k->vd_signature, NULL))) return rc;
  } else if (vd->present && vd->t.k != T_NULL) {
    return -EBADMSG;
  }
  const slot *sev = SL(F_SEV);
  if (sev->present && (sev->t.k == T_MAP || sev->t.k == T_INDEF_MAP)) {
    slot sub[F_COUNT];
    if (read_nested(sev, sub, F_VCEK, F_ARK + 1)) return -EBADMSG;
    k->has_sev_snp = true;
    if ((rc = get_text(&sub[F_VCEK], true, &k->vcek_cert, NULL))) return rc;
    if ((rc = get_text(&sub[F_ASK], false, &k->ask_cert, &k->has_ask_cert))) return rc;
    if ((rc = get_text(&sub[F_ARK], false, &k->ark_cert, &k->has_ark_cert))) return rc;
  } else if (sev->present && sev->t.k != T_NULL) {
    return -EBADMSG;
  }
  if ((rc = get_bytes(SL(F_CLIENT_CHALLENGE), false, &k->client_challenge, &k->has_client_challenge)))
    return rc;
  if (k->has_client_challenge && k->client_challenge.len != RA_TMSG_CHALLENGE_BYTES) return -EBADMSG;
  return get_body_streams(SL(F_BODY_STREAMS), &k->has_body_streams, &k->body_streams);
}

/* client_kx: the sealed key, and our optional clientAttestation map
 * {quote: bytes, event_log: text | null}. */
static int decode_client_kx(const slot *sl, uint64_t have, typeof(((ra_tmsg *)0)->client_kx) *k) {
  int rc;
  if ((rc = get_bytes(SL(F_SEALED), true, &k->sealed_key, NULL))) return rc;
  if ((rc = get_body_streams(SL(F_BODY_STREAMS), &k->has_body_streams, &k->body_streams))) return rc;
  const slot *a = SL(F_CLIENT_ATT);
  if (!a->present || a->t.k == T_NULL) return 0;
  if (a->t.k != T_MAP && a->t.k != T_INDEF_MAP) return -EBADMSG;
  slot sub[F_COUNT];
  if (read_nested(a, sub, F_ATT_QUOTE, F_ATT_EVENT_LOG + 1)) return -EBADMSG;
  k->has_attestation = true;
  if ((rc = get_bytes(&sub[F_ATT_QUOTE], true, &k->att_quote, NULL))) return rc;
  if ((rc = get_text(&sub[F_ATT_EVENT_LOG], false, &k->att_event_log, &k->has_att_event_log))) return rc;
  return 0;
}

int ra_tmsg_decode(const uint8_t *data, size_t len, ra_tmsg *out) {
  memset(out, 0, sizeof *out);
  if (!data || len == 0) return -EBADMSG;
  lexer lx = {data, data + len};
  tok head;
  if (lex(&lx, &head)) return -EBADMSG;
  if (head.k != T_MAP && head.k != T_INDEF_MAP) return -EBADMSG;
  /* top-level fields only: the nested ones have their own. Only `present`
   * slots of fields seen (bits of `have`) are written; SL() reads the
   * others as one shared absent slot, so the table needs no clearing. */
  slot sl[F_VAL];
  uint64_t have = 0;
  if (read_map(&lx, &head, sl, 0, F_VAL, &have)) return -EBADMSG;
  if (lx.p != lx.end) return -EBADMSG; /* trailing bytes: cbor-x refuses them too */

  ra_str type;
  if (get_text(SL(F_TYPE), true, &type, NULL)) return -EBADMSG;
  out->type_name = type;
  int rc = 0;
  bool has;
  if (str_is(type, "client_kx_ready")) {
    out->type = RA_TMSG_CLIENT_KX_READY;
  } else if (str_is(type, "server_kx")) {
    out->type = RA_TMSG_SERVER_KX;
    rc = decode_server_kx(sl, have, &out->server_kx);
  } else if (str_is(type, "client_kx")) {
    out->type = RA_TMSG_CLIENT_KX;
    rc = decode_client_kx(sl, have, &out->client_kx);
  } else if (str_is(type, "enc")) {
    out->type = RA_TMSG_ENC;
    if ((rc = get_bytes(SL(F_NONCE), true, &out->enc.nonce, NULL))) return rc;
    if ((rc = get_bytes(SL(F_CIPHERTEXT), true, &out->enc.ciphertext, NULL))) return rc;
    if (out->enc.nonce.len != 24 || out->enc.ciphertext.len < 16) return -EBADMSG;
  } else if (str_is(type, "http_request")) {
    out->type = RA_TMSG_HTTP_REQUEST;
    typeof(out->http_request) *r = &out->http_request;
    if ((rc = get_text(SL(F_REQUEST_ID), true, &r->request_id, NULL)) ||
        (rc = get_text(SL(F_METHOD), true, &r->method, NULL)) ||
        (rc = get_text(SL(F_URL), true, &r->url, NULL)) ||
        (rc = check_headers(SL(F_HEADERS), &r->headers)) ||
        (rc = get_blob(SL(F_BODY), false, &r->body, &r->has_body, &r->body_is_text)) ||
        (rc = get_number(SL(F_TIMEOUT), &r->timeout, &r->has_timeout)) ||
        (rc = get_bool(SL(F_BODY_STREAM), false, &r->body_stream)))
      return rc;
  } else if (str_is(type, "http_response")) {
    out->type = RA_TMSG_HTTP_RESPONSE;
    typeof(out->http_response) *r = &out->http_response;
    if ((rc = get_text(SL(F_REQUEST_ID), true, &r->request_id, NULL)) ||
        (rc = get_int(SL(F_STATUS), true, 0, 999, &r->status, NULL)) ||
        (rc = get_text(SL(F_STATUS_TEXT), false, &r->status_text, NULL)) ||
        (rc = check_headers(SL(F_HEADERS), &r->headers)) ||
        (rc = get_blob(SL(F_BODY), false, &r->body, &r->has_body, &r->body_is_text)) ||
        (rc = get_text(SL(F_ERROR), false, &r->error, &r->has_error)) ||
        (rc = get_bool(SL(F_BODY_STREAM), false, &r->body_stream)))
      return rc;
  } else if (str_is(type, "http_body")) {
    out->type = RA_TMSG_HTTP_BODY;
    typeof(out->http_body) *b = &out->http_body;
    if ((rc = get_text(SL(F_REQUEST_ID), true, &b->request_id, NULL)) ||
        (rc = get_bool(SL(F_END), true, &b->end)) ||
        (rc = get_bytes(SL(F_DATA), true, &b->data, NULL)))
      return rc;
  } else if (str_is(type, "http_credit")) {
    out->type = RA_TMSG_HTTP_CREDIT;
    if ((rc = get_text(SL(F_REQUEST_ID), true, &out->http_credit.request_id, NULL)) ||
        (rc = get_uint(SL(F_BYTES), true, &out->http_credit.bytes, NULL)))
      return rc;
  } else if (str_is(type, "http_cancel")) {
    out->type = RA_TMSG_HTTP_CANCEL;
    if ((rc = get_text(SL(F_REQUEST_ID), true, &out->http_cancel.request_id, NULL)) ||
        (rc = get_text(SL(F_REASON), false, &out->http_cancel.reason, &out->http_cancel.has_reason)))
      return rc;
  } else if (str_is(type, "ws_connect")) {
    out->type = RA_TMSG_WS_CONNECT;
    if ((rc = get_text(SL(F_CONNECTION_ID), true, &out->ws_connect.connection_id, NULL)) ||
        (rc = get_text(SL(F_URL), true, &out->ws_connect.url, NULL)) ||
        (rc = check_strings(SL(F_PROTOCOLS), &out->ws_connect.protocols)))
      return rc;
  } else if (str_is(type, "ws_message")) {
    out->type = RA_TMSG_WS_MESSAGE;
    typeof(out->ws_message) *m = &out->ws_message;
    ra_str dt;
    if ((rc = get_text(SL(F_CONNECTION_ID), true, &m->connection_id, NULL)) ||
        (rc = get_blob(SL(F_DATA), true, &m->data, &has, &m->is_text)) ||
        (rc = get_text(SL(F_DATA_TYPE), false, &dt, &has)))
      return rc;
    m->data_type = !has ? RA_TMSG_DT_NONE
                 : str_is(dt, "string") ? RA_TMSG_DT_STRING
                 : str_is(dt, "arraybuffer") ? RA_TMSG_DT_ARRAYBUFFER : RA_TMSG_DT_OTHER;
  } else if (str_is(type, "ws_close")) {
    out->type = RA_TMSG_WS_CLOSE;
    typeof(out->ws_close) *c = &out->ws_close;
    if ((rc = get_text(SL(F_CONNECTION_ID), true, &c->connection_id, NULL)) ||
        (rc = get_int(SL(F_CODE), false, 0, 65535, &c->code, &c->has_code)) ||
        (rc = get_text(SL(F_REASON), false, &c->reason, &c->has_reason)))
      return rc;
  } else if (str_is(type, "ws_event")) {
    out->type = RA_TMSG_WS_EVENT;
    typeof(out->ws_event) *e = &out->ws_event;
    ra_str ev;
    if ((rc = get_text(SL(F_CONNECTION_ID), true, &e->connection_id, NULL)) ||
        (rc = get_text(SL(F_EVENT_TYPE), true, &ev, NULL)) ||
        (rc = get_int(SL(F_CODE), false, 0, 65535, &e->code, &e->has_code)) ||
        (rc = get_text(SL(F_REASON), false, &e->reason, &e->has_reason)) ||
        (rc = get_text(SL(F_ERROR), false, &e->error, &e->has_error)))
      return rc;
    if (str_is(ev, "open")) e->event = RA_TMSG_EV_OPEN;
    else if (str_is(ev, "close")) e->event = RA_TMSG_EV_CLOSE;
    else if (str_is(ev, "error")) e->event = RA_TMSG_EV_ERROR;
    else return -EBADMSG;
  } else {
    out->type = RA_TMSG_UNKNOWN;
  }
  return rc ? -EBADMSG : 0;
}

const char *ra_tmsg_type_name(ra_tmsg_type t) {
  switch (t) {
  case RA_TMSG_CLIENT_KX_READY: return "client_kx_ready";
  case RA_TMSG_SERVER_KX: return "server_kx";
  case RA_TMSG_CLIENT_KX: return "client_kx";
  case RA_TMSG_ENC: return "enc";
  case RA_TMSG_HTTP_REQUEST: return "http_request";
  case RA_TMSG_HTTP_RESPONSE: return "http_response";
  case RA_TMSG_WS_CONNECT: return "ws_connect";
  case RA_TMSG_WS_MESSAGE: return "ws_message";
  case RA_TMSG_WS_CLOSE: return "ws_close";
  case RA_TMSG_WS_EVENT: return "ws_event";
  case RA_TMSG_HTTP_BODY: return "http_body";
  case RA_TMSG_HTTP_CREDIT: return "http_credit";
  case RA_TMSG_HTTP_CANCEL: return "http_cancel";
  default: return "unknown";
  }
}

/* ---- iterators (over items validated by decode) ------------------------ */

void ra_tmsg_iter_init(ra_tmsg_iter *it, ra_str seq) {
  memset(it, 0, sizeof *it);
  if (!seq.ptr) return;
  lexer lx = {seq.bytes, seq.bytes + seq.len};
  tok head;
  if (lex(&lx, &head)) return;
  if (head.k == T_MAP || head.k == T_ARRAY) it->left = head.u;
  else if (head.k == T_INDEF_MAP || head.k == T_INDEF_ARRAY) it->left = INDEF;
  else return;
  it->p = lx.p;
  it->end = lx.end;
}

static bool iter_lex(ra_tmsg_iter *it, tok *t) {
  lexer lx = {it->p, it->end};
  if (!it->p || lex(&lx, t)) {
    it->p = it->end = NULL;
    return false;
  }
  it->p = lx.p;
  return true;
}

/* The next text item of a container with *left items left (INDEF: up to
 * its break): false at the end, or with it->p NULL on any other item. */
static inline bool iter_text(ra_tmsg_iter *it, uint64_t *left, ra_str *value) {
  tok t;
  if (*left == 0) return false;
  if (!iter_lex(it, &t)) return false;
  if (t.k == T_BREAK && *left == INDEF) { *left = 0; return false; }
  if (t.k != T_TEXT) { it->p = NULL; return false; }
  if (*left != INDEF) --*left;
  *value = ra_str_make((const char *)t.ptr, t.len);
  return true;
}

/* The iterators, inlined into check_seq (one walk per message decoded) */
static inline bool headers_next(ra_tmsg_iter *it, ra_str *name, ra_str *value) {
  tok t;
  for (;;) {
    if (it->arr_left > 0) { /* inside a multi-valued header */
      if (iter_text(it, &it->arr_left, value)) {
        *name = it->cur_name;
        return true;
      }
      if (iter_failed(it)) return false;
      continue; /* its array ended */
    }
    if (!iter_text(it, &it->left, &it->cur_name)) return false;
    if (!iter_lex(it, &t)) return false;
    if (t.k == T_TEXT) {
      *name = it->cur_name;
      *value = ra_str_make((const char *)t.ptr, t.len);
      return true;
    }
    if (t.k == T_ARRAY) { it->arr_left = t.u; it->arr_indef = false; continue; }
    if (t.k == T_INDEF_ARRAY) { it->arr_left = INDEF; it->arr_indef = true; continue; }
    if (t.k == T_NULL || t.k == T_UNDEF) continue;
    it->p = NULL;
    return false;
  }
}

static inline bool strings_next(ra_tmsg_iter *it, ra_str *value) { return iter_text(it, &it->left, value); }

bool ra_tmsg_headers_next(ra_tmsg_iter *it, ra_str *name, ra_str *value) { return headers_next(it, name, value); }
bool ra_tmsg_strings_next(ra_tmsg_iter *it, ra_str *value) { return strings_next(it, value); }

/* ---- header text as HTTP bytes ------------------------------------------- */

/* Checks that s is UTF-8 with code points <= U+00FF only (ASCII, or C2/C3
 * followed by a continuation byte); *wide: some code point is >= 0x80. */
static int latin1_check(const uint8_t *s, size_t n, bool *wide) {
  for (size_t i = 0; i < n; i++) {
    if (s[i] < 0x80) continue;
    if ((s[i] != 0xc2 && s[i] != 0xc3) || i + 1 >= n || (s[i + 1] & 0xc0) != 0x80) return -EILSEQ;
    *wide = true;
    i++;
  }
  return 0;
}

/* One walk over the headers item: checks every text string; with out, also
 * writes the item with each text string turned into its bytes (never longer
 * than the input: a head never grows when its length shrinks). */
static int headers_walk(ra_str seq, uint8_t *out, bool *wide, size_t *out_len) {
  lexer lx = {seq.bytes, seq.bytes + seq.len};
  size_t o = 0;
  while (lx.p < lx.end) {
    const uint8_t *start = lx.p;
    tok t;
    if (lex(&lx, &t)) return -EBADMSG;
    if (t.k != T_TEXT) {
      if (out) memmove(out + o, start, (size_t)(lx.p - start));
      o += (size_t)(lx.p - start);
      continue;
    }
    bool w = false;
    if (latin1_check(t.ptr, t.len, &w)) return -EILSEQ;
    if (w) *wide = true;
    if (!out) continue;
    size_t n = 0;
    for (size_t i = 0; i < t.len; i++, n++)
      if (t.ptr[i] >= 0x80) { i++; }
    o += cbor_encode_string_start(n, out + o, seq.len - o);
    for (size_t i = 0; i < t.len; i++) {
      uint8_t c = t.ptr[i];
      if (c >= 0x80) c = (uint8_t)(((c & 0x03) << 6) | (t.ptr[++i] & 0x3f));
      out[o++] = c;
    }
  }
  *out_len = o;
  return 0;
}

int ra_tmsg_headers_to_bytes(ra_str *seq, uint8_t **owned) {
  *owned = NULL;
  if (!seq->ptr || !seq->len) return 0;
  bool wide = false;
  size_t n;
  int rc = headers_walk(*seq, NULL, &wide, &n);
  if (rc || !wide) return rc;
  uint8_t *b = malloc(seq->len);
  if (!b) return -ENOMEM;
  if ((rc = headers_walk(*seq, b, &wide, &n))) {
    free(b);
    return rc;
  }
  *seq = ra_bytes_make(b, n);
  *owned = b;
  return 0;
}

/* ---- writer ------------------------------------------------------------ */

typedef struct wr {
  uint8_t *out;
  size_t cap, len;
  bool over; /* something did not fit: write nothing more */
} wr;

static inline void w_raw(wr *w, const void *p, size_t n) {
  if (!w->over && n > w->cap - w->len) w->over = true;
  if (!w->over && n) memcpy(w->out + w->len, p, n);
  w->len += n;
}
/* A head of major type `mt` (0-7, already shifted: 0x00, 0x20, ...) in its
 * shortest form: the bytes libcbor's cbor_encode_* write, without a call. */
static inline void w_mhead(wr *w, uint8_t mt, uint64_t v) {
  uint8_t h[9];
  size_t n;
  if (v < 24) { h[0] = (uint8_t)(mt | v); n = 1; }
  else if (v <= 0xff) { h[0] = mt | 24; h[1] = (uint8_t)v; n = 2; }
  else if (v <= 0xffff) { h[0] = mt | 25; h[1] = (uint8_t)(v >> 8); h[2] = (uint8_t)v; n = 3; }
  else if (v <= 0xffffffffu) {
    h[0] = mt | 26;
    for (int i = 0; i < 4; i++) h[1 + i] = (uint8_t)(v >> (24 - 8 * i));
    n = 5;
  } else {
    h[0] = mt | 27;
    for (int i = 0; i < 8; i++) h[1 + i] = (uint8_t)(v >> (56 - 8 * i));
    n = 9;
  }
  w_raw(w, h, n);
}
#define MT_UINT 0x00
#define MT_NEGINT 0x20
#define MT_BYTES 0x40
#define MT_TEXT 0x60
#define MT_ARRAY 0x80
static void w_uint(wr *w, uint64_t v) { w_mhead(w, MT_UINT, v); }
/* cbor-x heads every map with 0xb9 and a 2-byte count */
static void w_map(wr *w, unsigned n) {
  uint8_t h[3] = {0xb9, (uint8_t)(n >> 8), (uint8_t)n};
  w_raw(w, h, 3);
}
static inline void w_text(wr *w, const void *p, size_t n) {
  w_mhead(w, MT_TEXT, n);
  w_raw(w, p, n);
}
static void w_cstr(wr *w, const char *s) { w_text(w, s, strlen(s)); }
/* A string literal (keys, type names): its length is known at compile time. */
#define w_lit(w, s) w_text((w), "" s, sizeof(s) - 1)
static inline void w_rstr(wr *w, ra_str s) { w_text(w, s.ptr, s.len); }
static inline void w_bytes(wr *w, const void *p, size_t n) {
  w_mhead(w, MT_BYTES, n);
  w_raw(w, p, n);
}
static void w_null(wr *w) { uint8_t b = 0xf6; w_raw(w, &b, 1); }
static void w_bool(wr *w, bool v) { uint8_t b = v ? 0xf5 : 0xf4; w_raw(w, &b, 1); }
/* bodyStreams {window, chunk} (PROTOCOL.md §11) */
static void w_body_streams(wr *w, const ra_tmsg_body_streams *bs) {
  w_map(w, 2);
  w_lit(w, "window"); w_uint(w, bs->window);
  w_lit(w, "chunk"); w_uint(w, bs->chunk);
}
static void w_int(wr *w, int v) {
  if (v >= 0) w_mhead(w, MT_UINT, (uint64_t)v);
  else w_mhead(w, MT_NEGINT, (uint64_t)(-(int64_t)v - 1));
}
static size_t w_done(wr *w) { return w->len; }

size_t ra_tmsg_encode_client_kx_ready(uint8_t *out, size_t cap) {
  wr w = {out, cap, 0, false};
  w_map(&w, 1);
  w_lit(&w, "type"); w_lit(&w, "client_kx_ready");
  return w_done(&w);
}

size_t ra_tmsg_encode_server_kx(uint8_t *out, size_t cap, const ra_tmsg_server_kx_out *m) {
  wr w = {out, cap, 0, false};
  w_map(&w, m->body_streams ? 7 : 6);
  w_lit(&w, "type"); w_lit(&w, "server_kx");
  w_lit(&w, "x25519PublicKey"); w_bytes(&w, m->x25519_public_key, 32);
  w_lit(&w, "quote"); w_bytes(&w, m->quote.ptr, m->quote.len);
  w_lit(&w, "runtime_data");
  if (m->runtime_data.ptr) w_bytes(&w, m->runtime_data.ptr, m->runtime_data.len);
  else w_null(&w);
  w_lit(&w, "verifier_data");
  if (m->vd_kind == RA_TMSG_VD_NONCE) {
    w_map(&w, 3);
    w_lit(&w, "val"); w_bytes(&w, m->vd_val.ptr, m->vd_val.len);
    w_lit(&w, "iat"); w_bytes(&w, m->vd_iat.ptr, m->vd_iat.len);
    w_lit(&w, "signature"); w_bytes(&w, m->vd_signature.ptr, m->vd_signature.len);
  } else if (m->vd_kind == RA_TMSG_VD_BYTES) {
    w_bytes(&w, m->vd_bytes.ptr, m->vd_bytes.len);
  } else {
    w_null(&w);
  }
  w_lit(&w, "sev_snp_data");
  if (m->vcek_cert) {
    w_map(&w, 3);
    w_lit(&w, "vcek_cert"); w_cstr(&w, m->vcek_cert);
    w_lit(&w, "ask_cert"); if (m->ask_cert) w_cstr(&w, m->ask_cert); else w_null(&w);
    w_lit(&w, "ark_cert"); if (m->ark_cert) w_cstr(&w, m->ark_cert); else w_null(&w);
  } else {
    w_null(&w);
  }
  if (m->body_streams) { w_lit(&w, "bodyStreams"); w_body_streams(&w, m->body_streams); }
  return w_done(&w);
}

size_t ra_tmsg_encode_client_kx(uint8_t *out, size_t cap, const uint8_t *sealed, size_t sealed_len) {
  wr w = {out, cap, 0, false};
  w_map(&w, 2);
  w_lit(&w, "type"); w_lit(&w, "client_kx");
  w_lit(&w, "sealedSymmetricKey"); w_bytes(&w, sealed, sealed_len);
  return w_done(&w);
}

size_t ra_tmsg_encode_client_kx_att(uint8_t *out, size_t cap, const uint8_t *sealed, size_t sealed_len,
                                    const ra_tmsg_client_att_out *att) {
  return ra_tmsg_encode_client_kx_ex(out, cap, sealed, sealed_len, att, NULL);
}

size_t ra_tmsg_encode_client_kx_ex(uint8_t *out, size_t cap, const uint8_t *sealed, size_t sealed_len,
                                   const ra_tmsg_client_att_out *att, const ra_tmsg_body_streams *body_streams) {
  wr w = {out, cap, 0, false};
  w_map(&w, 2u + (att != NULL) + (body_streams != NULL));
  w_lit(&w, "type"); w_lit(&w, "client_kx");
  w_lit(&w, "sealedSymmetricKey"); w_bytes(&w, sealed, sealed_len);
  if (att) {
    w_lit(&w, "clientAttestation");
    w_map(&w, att->event_log.ptr ? 2 : 1);
    w_lit(&w, "quote"); w_bytes(&w, att->quote.ptr, att->quote.len);
    if (att->event_log.ptr) { w_lit(&w, "event_log"); w_rstr(&w, att->event_log); }
  }
  if (body_streams) { w_lit(&w, "bodyStreams"); w_body_streams(&w, body_streams); }
  return w_done(&w);
}

/* Whether msg starts with our encoder's map head (0xb9 and a 2-byte
 * count) with room for one more entry. */
static bool map_head_growable(const uint8_t *msg, size_t len) {
  return msg && len >= 3 && msg[0] == 0xb9 && !(msg[1] == 0xff && msg[2] == 0xff);
}

/* Writes the map head of msg (checked by map_head_growable) with its
 * count bumped by one: the caller then adds the one entry. */
static void w_map_bumped(wr *w, const uint8_t *msg) { w_map(w, ((unsigned)msg[1] << 8 | msg[2]) + 1); }

size_t ra_tmsg_server_kx_add_challenge(uint8_t *out, size_t cap, const uint8_t *kx, size_t kx_len,
                                       const uint8_t challenge[RA_TMSG_CHALLENGE_BYTES]) {
  if (!map_head_growable(kx, kx_len)) return 0;
  wr w = {out, cap, 0, false};
  w_map_bumped(&w, kx);
  w_raw(&w, kx + 3, kx_len - 3);
  w_lit(&w, "clientChallenge"); w_bytes(&w, challenge, RA_TMSG_CHALLENGE_BYTES);
  return w_done(&w);
}

size_t ra_tmsg_encode_enc_head(uint8_t *out, size_t cap, const uint8_t nonce[24], size_t ct_len) {
  wr w = {out, cap, 0, false};
  w_map(&w, 3);
  w_lit(&w, "type"); w_lit(&w, "enc");
  w_lit(&w, "nonce"); w_bytes(&w, nonce, 24);
  w_lit(&w, "ciphertext"); w_mhead(&w, MT_BYTES, ct_len);
  return w_done(&w);
}

size_t ra_tmsg_encode_enc(uint8_t *out, size_t cap, const uint8_t nonce[24],
                          const uint8_t *ct, size_t ct_len) {
  size_t n = ra_tmsg_encode_enc_head(out, cap, nonce, ct_len);
  wr w = {out, cap, n, n > cap};
  w_raw(&w, ct, ct_len);
  return w_done(&w);
}

static bool name_eq_nocase(ra_str a, ra_str b) {
  if (a.len != b.len) return false;
  for (size_t i = 0; i < a.len; i++) {
    unsigned char x = (unsigned char)a.ptr[i], y = (unsigned char)b.ptr[i];
    if (x >= 'A' && x <= 'Z') x = (unsigned char)(x + 32);
    if (y >= 'A' && y <= 'Z') y = (unsigned char)(y + 32);
    if (x != y) return false;
  }
  return true;
}

/* Header bytes go into CBOR text strings the way a browser's fetch turns
 * HTTP/1.1 header bytes into a JS string: each byte is one code point
 * (ISO-8859-1), so bytes >= 0x80 take two UTF-8 bytes. Raw bytes would not
 * be UTF-8 (cbor-x then refuses the whole message) or would decode to code
 * points above 0xFF (a fetch Headers object throws on those). */
static size_t latin1_utf8_len(const char *p, size_t n) {
  size_t extra = 0, i = 0;
  /* eight bytes at a time: the high bits are the bytes that grow */
  for (; i + 8 <= n; i += 8) {
    uint64_t x;
    memcpy(&x, p + i, 8);
    if (!(x & 0x8080808080808080ull)) continue; /* no libgcc popcount call */
    for (size_t j = 0; j < 8; j++) extra += (uint8_t)p[i + j] >> 7;
  }
  for (; i < n; i++) extra += (uint8_t)p[i] >> 7;
  return n + extra;
}

static void w_latin1_bytes(wr *w, const char *p, size_t n, bool lower) {
  size_t run = 0; /* bytes copied as they are, flushed in one piece */
  for (size_t i = 0; i < n; i++) {
    uint8_t c = (uint8_t)p[i];
    if (c < 0x80 && !(lower && c >= 'A' && c <= 'Z')) { run++; continue; }
    if (run) w_raw(w, p + i - run, run);
    run = 0;
    if (c < 0x80) {
      c = (uint8_t)(c + 32);
      w_raw(w, &c, 1);
    } else {
      uint8_t u[2] = {(uint8_t)(0xc0 | (c >> 6)), (uint8_t)(0x80 | (c & 0x3f))};
      w_raw(w, u, 2);
    }
  }
  if (run) w_raw(w, p + n - run, run);
}

static void w_latin1(wr *w, ra_str s, bool lower) {
  size_t u = latin1_utf8_len(s.ptr, s.len);
  w_mhead(w, MT_TEXT, u);
  if (w->over || u > w->cap - w->len) { /* a sizing pass, or no room: only count */
    w->over = true;
    w->len += u;
    return;
  }
  if (u == s.len) {
    /* all ASCII (the usual case): one copy, then lowercase in place */
    uint8_t *o = w->out + w->len;
    if (u) memcpy(o, s.ptr, u);
    if (lower)
      for (size_t i = 0; i < u; i++)
        if ((uint8_t)(o[i] - 'A') < 26) o[i] = (uint8_t)(o[i] + 32);
    w->len += u;
    return;
  }
  w_latin1_bytes(w, s.ptr, s.len, lower);
}

/* Grouping is O(n^2) in the number of headers, which is small and bounded
 * by the HTTP layer's limits; it avoids any allocation. */
static bool seen_before(const ra_header *h, size_t i) {
  for (size_t j = 0; j < i; j++)
    if (name_eq_nocase(h[j].name, h[i].name)) return true;
  return false;
}

/* LOWER_MULTI and JOIN write names lowercased, as a browser's Headers does
 * (the reference server's body parsers look up "content-type" exactly), and
 * names and values as ISO-8859-1 code points (w_latin1). */
static void w_headers(wr *w, const ra_header *h, size_t n, ra_tmsg_hdr_mode mode) {
  unsigned distinct = 0;
  for (size_t i = 0; i < n; i++)
    if (mode == RA_TMSG_HDR_AS_IS || !seen_before(h, i)) distinct++;
  w_map(w, distinct);
  for (size_t i = 0; i < n; i++) {
    if (mode == RA_TMSG_HDR_AS_IS) {
      w_rstr(w, h[i].name);
      w_rstr(w, h[i].value);
      continue;
    }
    if (seen_before(h, i)) continue;
    size_t count = 0, total = 0;
    for (size_t j = i; j < n; j++)
      if (name_eq_nocase(h[j].name, h[i].name)) {
        count++;
        total += latin1_utf8_len(h[j].value.ptr, h[j].value.len);
      }
    w_latin1(w, h[i].name, true);
    if (mode == RA_TMSG_HDR_LOWER_MULTI) {
      if (count == 1) { w_latin1(w, h[i].value, false); continue; }
      w_mhead(w, MT_ARRAY, count);
      for (size_t j = i; j < n; j++)
        if (name_eq_nocase(h[j].name, h[i].name)) w_latin1(w, h[j].value, false);
    } else { /* JOIN */
      w_mhead(w, MT_TEXT, total + 2 * (count - 1));
      bool first = true;
      for (size_t j = i; j < n; j++) {
        if (!name_eq_nocase(h[j].name, h[i].name)) continue;
        if (!first) w_raw(w, ", ", 2);
        first = false;
        w_latin1_bytes(w, h[j].value.ptr, h[j].value.len, false);
      }
    }
  }
}

size_t ra_tmsg_encode_http_request(uint8_t *out, size_t cap, const ra_tmsg_http_request_out *m) {
  wr w = {out, cap, 0, false};
  w_map(&w, m->has_body || m->body_stream ? 6 : 5);
  w_lit(&w, "type"); w_lit(&w, "http_request");
  w_lit(&w, "requestId"); w_rstr(&w, m->request_id);
  w_lit(&w, "method"); w_rstr(&w, m->method);
  w_lit(&w, "url"); w_rstr(&w, m->url);
  w_lit(&w, "headers"); w_headers(&w, m->headers, m->n_headers, RA_TMSG_HDR_JOIN);
  if (m->body_stream) {
    w_lit(&w, "bodyStream"); w_bool(&w, true);
  } else if (m->has_body) {
    w_lit(&w, "body");
    if (m->body_is_text) w_text(&w, m->body, m->body_len);
    else w_bytes(&w, m->body, m->body_len);
  }
  return w_done(&w);
}

/* bodyStream (§11) comes before body, so that the head encoder still ends
 * with the key "body" */
static void w_response_head(wr *w, const ra_tmsg_http_response_out *m) {
  uint8_t mh[3] = {0xb9, 0, (uint8_t)(6u + (m->error != NULL) + m->body_stream)}; /* w_map, inline */
  w_raw(w, mh, 3);
  w_lit(w, "type"); w_lit(w, "http_response");
  w_lit(w, "requestId"); w_rstr(w, m->request_id);
  w_lit(w, "status"); w_int(w, m->status);
  w_lit(w, "statusText"); w_rstr(w, m->status_text);
  w_lit(w, "headers"); w_headers(w, m->headers, m->n_headers, RA_TMSG_HDR_LOWER_MULTI);
  if (m->body_stream) { w_lit(w, "bodyStream"); w_bool(w, true); }
  w_lit(w, "body");
}

size_t ra_tmsg_encode_http_response_head(uint8_t *out, size_t cap, const ra_tmsg_http_response_out *m) {
  wr w = {out, cap, 0, false};
  w_response_head(&w, m);
  return w_done(&w);
}

size_t ra_tmsg_response_head_to_stream(uint8_t *out, size_t cap, const uint8_t *head, size_t head_len) {
  static const uint8_t body_key[] = "\x64" "body"; /* what w_response_head ends with */
  const size_t key_len = sizeof body_key - 1;
  if (!map_head_growable(head, head_len) || head_len < 3 + key_len ||
      memcmp(head + head_len - key_len, body_key, key_len) != 0)
    return 0;
  wr w = {out, cap, 0, false};
  w_map_bumped(&w, head);
  w_raw(&w, head + 3, head_len - 3 - key_len);
  w_lit(&w, "bodyStream"); w_bool(&w, true); /* where w_response_head puts it */
  w_lit(&w, "body"); w_null(&w);
  return w_done(&w);
}

size_t ra_tmsg_encode_http_response(uint8_t *out, size_t cap, const ra_tmsg_http_response_out *m) {
  wr w = {out, cap, 0, false};
  w_response_head(&w, m);
  if (!m->has_body || m->body_stream) w_null(&w);
  else if (m->body_is_text) w_text(&w, m->body, m->body_len);
  else w_bytes(&w, m->body, m->body_len);
  if (m->error) { w_lit(&w, "error"); w_cstr(&w, m->error); }
  return w_done(&w);
}

size_t ra_tmsg_encode_ws_connect(uint8_t *out, size_t cap, ra_str connection_id, ra_str url,
                                 const ra_str *protocols, size_t n_protocols) {
  wr w = {out, cap, 0, false};
  w_map(&w, n_protocols ? 4 : 3);
  w_lit(&w, "type"); w_lit(&w, "ws_connect");
  w_lit(&w, "connectionId"); w_rstr(&w, connection_id);
  w_lit(&w, "url"); w_rstr(&w, url);
  if (n_protocols) {
    w_lit(&w, "protocols");
    w_mhead(&w, MT_ARRAY, n_protocols);
    for (size_t i = 0; i < n_protocols; i++) w_rstr(&w, protocols[i]);
  }
  return w_done(&w);
}

size_t ra_tmsg_encode_ws_message(uint8_t *out, size_t cap, ra_str connection_id, bool is_text,
                                 const void *data, size_t len) {
  wr w = {out, cap, 0, false};
  w_map(&w, 4);
  w_lit(&w, "type"); w_lit(&w, "ws_message");
  w_lit(&w, "connectionId"); w_rstr(&w, connection_id);
  w_lit(&w, "data");
  if (is_text) w_text(&w, data, len);
  else w_bytes(&w, data, len);
  w_lit(&w, "dataType"); if (is_text) w_lit(&w, "string"); else w_lit(&w, "arraybuffer");
  return w_done(&w);
}

size_t ra_tmsg_encode_ws_close(uint8_t *out, size_t cap, ra_str connection_id, int code, ra_str reason) {
  wr w = {out, cap, 0, false};
  w_map(&w, 2u + (code >= 0) + (reason.ptr != NULL));
  w_lit(&w, "type"); w_lit(&w, "ws_close");
  w_lit(&w, "connectionId"); w_rstr(&w, connection_id);
  if (code >= 0) { w_lit(&w, "code"); w_uint(&w, (uint64_t)code); }
  if (reason.ptr) { w_lit(&w, "reason"); w_rstr(&w, reason); }
  return w_done(&w);
}

size_t ra_tmsg_encode_ws_event(uint8_t *out, size_t cap, ra_str connection_id, ra_tmsg_event ev,
                               int code, ra_str reason, const char *error) {
  wr w = {out, cap, 0, false};
  w_map(&w, 3u + (code >= 0) + (reason.ptr != NULL) + (error != NULL));
  w_lit(&w, "type"); w_lit(&w, "ws_event");
  w_lit(&w, "connectionId"); w_rstr(&w, connection_id);
  w_lit(&w, "eventType");
  w_cstr(&w, ev == RA_TMSG_EV_OPEN ? "open" : ev == RA_TMSG_EV_CLOSE ? "close" : "error");
  if (code >= 0) { w_lit(&w, "code"); w_uint(&w, (uint64_t)code); }
  if (reason.ptr) { w_lit(&w, "reason"); w_rstr(&w, reason); }
  if (error) { w_lit(&w, "error"); w_cstr(&w, error); }
  return w_done(&w);
}

size_t ra_str_head(uint8_t out[9], size_t len) {
  wr w = {out, 9, 0, false};
  w_mhead(&w, MT_BYTES, len);
  return w.len;
}

/* ---- the streamed-body extension (PROTOCOL.md §11) ---------------------- */

size_t ra_tmsg_encode_http_body_head(uint8_t *out, size_t cap, ra_str request_id, size_t len, bool end) {
  wr w = {out, cap, 0, false};
  w_map(&w, 4);
  w_lit(&w, "type"); w_lit(&w, "http_body");
  w_lit(&w, "requestId"); w_rstr(&w, request_id);
  w_lit(&w, "end"); w_bool(&w, end);
  w_lit(&w, "data"); w_mhead(&w, MT_BYTES, len);
  return w_done(&w);
}

size_t ra_tmsg_encode_http_body(uint8_t *out, size_t cap, ra_str request_id, const void *data, size_t len,
                                bool end) {
  size_t n = ra_tmsg_encode_http_body_head(out, cap, request_id, len, end);
  wr w = {out, cap, n, n > cap};
  w_raw(&w, data, len);
  return w_done(&w);
}

size_t ra_tmsg_encode_http_credit(uint8_t *out, size_t cap, ra_str request_id, uint64_t bytes) {
  wr w = {out, cap, 0, false};
  w_map(&w, 3);
  w_lit(&w, "type"); w_lit(&w, "http_credit");
  w_lit(&w, "requestId"); w_rstr(&w, request_id);
  w_lit(&w, "bytes"); w_uint(&w, bytes);
  return w_done(&w);
}

size_t ra_tmsg_encode_http_cancel(uint8_t *out, size_t cap, ra_str request_id, const char *reason) {
  wr w = {out, cap, 0, false};
  w_map(&w, reason ? 3 : 2);
  w_lit(&w, "type"); w_lit(&w, "http_cancel");
  w_lit(&w, "requestId"); w_rstr(&w, request_id);
  if (reason) { w_lit(&w, "reason"); w_cstr(&w, reason); }
  return w_done(&w);
}
