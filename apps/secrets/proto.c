/* apps/secrets/proto.c: see proto.h. */
#include "proto.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <openssl/crypto.h>
#include <sodium.h>

static const struct {
  const char *name;
  int status;
} reasons[SEC__COUNT] = {
    [SEC_OK] = {"ok", 200},
    [SEC_BAD_REQUEST] = {"bad_request", 400},
    [SEC_ATTESTATION_MISSING] = {"attestation_missing", 403},
    [SEC_ATTESTATION_INVALID] = {"attestation_invalid", 403},
    [SEC_KEY_NOT_BOUND] = {"key_not_bound", 403},
    [SEC_EVENT_LOG_MISMATCH] = {"event_log_mismatch", 403},
    [SEC_APP_ID_MISMATCH] = {"app_id_mismatch", 403},
    [SEC_MEASUREMENT_MISMATCH] = {"measurement_mismatch", 403},
    [SEC_DEBUG_TD] = {"debug_td", 403},
    [SEC_TOO_MANY] = {"too_many_challenges", 503},
    [SEC_UNKNOWN_CHALLENGE] = {"unknown_challenge", 403},
    [SEC_CHALLENGE_EXPIRED] = {"challenge_expired", 403},
    [SEC_CHALLENGE_USED] = {"challenge_used", 403},
    [SEC_BAD_SIGNATURE] = {"bad_signature", 403},
    [SEC_BAD_NAME] = {"bad_name", 400},
    [SEC_NOT_FOUND] = {"not_found", 404},
    [SEC_INTERNAL] = {"internal", 500},
};

const char *sec_reason_name(sec_reason r) {
  return (unsigned)r < SEC__COUNT ? reasons[r].name : "internal";
}

int sec_reason_status(sec_reason r) { return (unsigned)r < SEC__COUNT ? reasons[r].status : 500; }

int sec_reason_from_name(const char *s) {
  for (int i = 0; s && i < SEC__COUNT; i++)
    if (!strcmp(s, reasons[i].name)) return i;
  return -1;
}

bool sec_name_valid(const char *name) {
  size_t n = strlen(name);
  if (n == 0 || n > SEC_MAX_NAME || name[0] == '.') return false;
  for (size_t i = 0; i < n; i++) {
    char c = name[i];
    if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
          c == '_' || c == '-'))
      return false;
  }
  return true;
}

/* Printable ASCII only: it goes into logs and a signed transcript. */
bool sec_client_id_valid(const char *id) {
  size_t n = strlen(id);
  if (n == 0 || n > SEC_MAX_CLIENT_ID) return false;
  for (size_t i = 0; i < n; i++)
    if (id[i] < 0x21 || id[i] > 0x7e) return false;
  return true;
}

/* Strict standard base64 of at most max bytes; *out malloc'd. */
static int b64_dup(const char *s, size_t max, uint8_t **out, size_t *len) {
  size_t sl = strlen(s), cap = sl / 4 * 3 + 3;
  if (sl == 0 || cap > max + 3) return -1;
  uint8_t *b = malloc(cap);
  if (!b) return -1;
  size_t n = 0;
  if (sodium_base642bin(b, cap, s, sl, NULL, &n, NULL, sodium_base64_VARIANT_ORIGINAL) || n == 0 ||
      n > max) {
    free(b);
    return -1;
  }
  *out = b;
  *len = n;
  return 0;
}

#define FAIL(...)                                                                                  \
  do {                                                                                             \
    snprintf(err, errlen, __VA_ARGS__);                                                            \
    return SEC_BAD_REQUEST;                                                                        \
  } while (0)

static json_t *load(const char *body, size_t len, char *err, size_t errlen) {
  json_error_t je;
  if (len > SEC_MAX_BODY) {
    snprintf(err, errlen, "body over %u bytes", SEC_MAX_BODY);
    return NULL;
  }
  json_t *d = json_loadb(body, len, JSON_REJECT_DUPLICATES, &je);
  if (!d) {
    /* a position, never the content */
    snprintf(err, errlen, "invalid JSON at line %d column %d", je.line, je.column);
    return NULL;
  }
  if (!json_is_object(d)) {
    json_decref(d);
    snprintf(err, errlen, "not a JSON object");
    return NULL;
  }
  return d;
}

void sec_challenge_req_clear(sec_challenge_req *r) {
  json_decref(r->doc);
  free(r->quote);
  free(r->key);
  memset(r, 0, sizeof *r);
}

sec_reason sec_parse_challenge_req(const char *body, size_t len, sec_challenge_req *r, char *err,
                                   size_t errlen) {
  memset(r, 0, sizeof *r);
  err[0] = 0;
  json_t *d = load(body, len, err, errlen);
  if (!d) return SEC_BAD_REQUEST;
  r->doc = d;
  json_t *cid = json_object_get(d, "client_id");
  if (!json_is_string(cid)) FAIL("client_id: a string is required");
  /* set only once valid: refusals log it */
  const char *id = json_string_value(cid);
  if (strlen(id) != json_string_length(cid) || !sec_client_id_valid(id))
    FAIL("client_id: 1..%d printable ASCII characters, no spaces", SEC_MAX_CLIENT_ID);
  r->client_id = id;
  json_t *a = json_object_get(d, "attestation");
  if (!a || json_is_null(a)) return SEC_ATTESTATION_MISSING;
  if (!json_is_object(a)) FAIL("attestation: an object is required");
  json_t *cert = json_object_get(a, "cert"), *q = json_object_get(a, "quote"),
         *k = json_object_get(a, "key"), *el = json_object_get(a, "event_log");
  if (cert && (q || k || el)) FAIL("attestation: either cert or quote/key/event_log");
  if (cert) {
    if (!json_is_string(cert) || json_string_length(cert) == 0)
      FAIL("attestation.cert: a PEM string");
    r->cert = json_string_value(cert);
    r->has_attestation = true;
    return SEC_OK;
  }
  if (!q && !k) return SEC_ATTESTATION_MISSING;
  if (!json_is_string(q) || b64_dup(json_string_value(q), 64 * 1024, &r->quote, &r->quote_len))
    FAIL("attestation.quote: base64 of at most 64 KiB is required");
  if (!json_is_string(k) || b64_dup(json_string_value(k), 1024, &r->key, &r->key_len))
    FAIL("attestation.key: base64 of a DER SubjectPublicKeyInfo is required");
  if (el && !json_is_null(el)) {
    if (!json_is_string(el)) FAIL("attestation.event_log: a string (JSON text)");
    r->event_log = json_string_value(el);
  }
  r->has_attestation = true;
  return SEC_OK;
}

void sec_fetch_req_clear(sec_fetch_req *r) {
  free(r->sig);
  memset(r, 0, sizeof *r);
}

sec_reason sec_parse_fetch_req(const char *body, size_t len, sec_fetch_req *r, char *err,
                               size_t errlen) {
  memset(r, 0, sizeof *r);
  err[0] = 0;
  json_t *d = load(body, len, err, errlen);
  if (!d) return SEC_BAD_REQUEST;
  sec_reason rc = SEC_BAD_REQUEST;
  json_t *id = json_object_get(d, "challenge_id"), *name = json_object_get(d, "name"),
         *sig = json_object_get(d, "signature");
  const char *s;
  if (!json_is_string(id) || json_string_length(id) != 2 * SEC_ID_BYTES ||
      sodium_hex2bin(r->id, SEC_ID_BYTES, (s = json_string_value(id)), 2 * SEC_ID_BYTES, NULL, NULL,
                     NULL)) {
    snprintf(err, errlen, "challenge_id: %d hex digits", 2 * SEC_ID_BYTES);
    goto out;
  }
  if (!json_is_string(name)) {
    snprintf(err, errlen, "name: a string is required");
    goto out;
  }
  s = json_string_value(name);
  if (strlen(s) != json_string_length(name) || !sec_name_valid(s)) {
    snprintf(err, errlen, "name: 1..%d of [A-Za-z0-9._-], not starting with '.'", SEC_MAX_NAME);
    rc = SEC_BAD_NAME;
    goto out;
  }
  memcpy(r->name, s, strlen(s) + 1);
  if (!json_is_string(sig) || b64_dup(json_string_value(sig), 256, &r->sig, &r->sig_len)) {
    snprintf(err, errlen, "signature: base64 of a DER ECDSA signature is required");
    goto out;
  }
  rc = SEC_OK;
out:
  json_decref(d);
  if (rc != SEC_OK) sec_fetch_req_clear(r);
  return rc;
}

/* ---- transcripts ------------------------------------------------------ */

typedef struct tbuf {
  uint8_t *p;
  size_t n, cap;
} tbuf;

static void tput(tbuf *b, const void *d, size_t n) {
  if (!b->p) return;
  memcpy(b->p + b->n, d, n);
  b->n += n;
}

static uint8_t *tstart(tbuf *b, const char *tag, size_t rest) {
  b->cap = strlen(tag) + 1 + rest;
  b->n = 0;
  b->p = malloc(b->cap);
  tput(b, tag, strlen(tag) + 1);
  return b->p;
}

uint8_t *sec_challenge_transcript(const uint8_t id[SEC_ID_BYTES],
                                  const uint8_t ch[SEC_CHALLENGE_BYTES], uint64_t expires_ms,
                                  const uint8_t key_hash[32], const char *client_id, size_t *len) {
  tbuf b;
  size_t cl = strlen(client_id);
  if (!tstart(&b, SEC_TAG_CHALLENGE, SEC_ID_BYTES + SEC_CHALLENGE_BYTES + 8 + 32 + cl)) return NULL;
  uint8_t be[8];
  for (int i = 0; i < 8; i++) be[i] = (uint8_t)(expires_ms >> (56 - 8 * i));
  tput(&b, id, SEC_ID_BYTES);
  tput(&b, ch, SEC_CHALLENGE_BYTES);
  tput(&b, be, 8);
  tput(&b, key_hash, 32);
  tput(&b, client_id, cl);
  *len = b.n;
  return b.p;
}

uint8_t *sec_fetch_transcript(const uint8_t id[SEC_ID_BYTES], const uint8_t ch[SEC_CHALLENGE_BYTES],
                              const uint8_t server_hash[32], const char *name, size_t *len) {
  tbuf b;
  size_t nl = strlen(name);
  if (!tstart(&b, SEC_TAG_FETCH, SEC_ID_BYTES + SEC_CHALLENGE_BYTES + 32 + nl)) return NULL;
  tput(&b, id, SEC_ID_BYTES);
  tput(&b, ch, SEC_CHALLENGE_BYTES);
  tput(&b, server_hash, 32);
  tput(&b, name, nl);
  *len = b.n;
  return b.p;
}

uint8_t *sec_secret_transcript(const uint8_t id[SEC_ID_BYTES], const uint8_t epk_hash[32],
                               const uint8_t nonce[12], const uint8_t ct_hash[32], const char *name,
                               size_t *len) {
  tbuf b;
  size_t nl = strlen(name);
  if (!tstart(&b, SEC_TAG_SECRET, SEC_ID_BYTES + 32 + 12 + 32 + nl)) return NULL;
  tput(&b, id, SEC_ID_BYTES);
  tput(&b, epk_hash, 32);
  tput(&b, nonce, 12);
  tput(&b, ct_hash, 32);
  tput(&b, name, nl);
  *len = b.n;
  return b.p;
}

/* ---- the table -------------------------------------------------------- */

int sec_table_init(sec_table *t, size_t cap) {
  memset(t, 0, sizeof *t);
  t->slots = calloc(cap, sizeof *t->slots);
  if (!t->slots) return -ENOMEM;
  t->cap = cap;
  return 0;
}

static void slot_clear(sec_table *t, sec_challenge *c) {
  free(c->spki);
  sodium_memzero(c, sizeof *c);
  t->count--;
}

void sec_table_free(sec_table *t) {
  for (size_t i = 0; t->slots && i < t->cap; i++)
    if (t->slots[i].in_use) slot_clear(t, &t->slots[i]);
  free(t->slots);
  memset(t, 0, sizeof *t);
}

void sec_table_purge(sec_table *t, uint64_t now_ms) {
  for (size_t i = 0; i < t->cap; i++) {
    sec_challenge *c = &t->slots[i];
    if (c->in_use && now_ms > c->expires_ms + SEC_GRACE_MS) slot_clear(t, c);
  }
}

sec_challenge *sec_table_add(sec_table *t, const uint8_t *spki, size_t spki_len,
                             const char *client_id, uint64_t now_ms, uint64_t ttl_ms) {
  if (t->count == t->cap) sec_table_purge(t, now_ms);
  if (t->count == t->cap) {
    /* full of remembered entries: reuse a used or expired one before
     * refusing (they only serve to name a later refusal) */
    for (size_t i = 0; i < t->cap; i++)
      if (t->slots[i].in_use && (t->slots[i].used || now_ms > t->slots[i].expires_ms)) {
        slot_clear(t, &t->slots[i]);
        break;
      }
    if (t->count == t->cap) return NULL;
  }
  if (strlen(client_id) > SEC_MAX_CLIENT_ID) return NULL;
  sec_challenge *c = NULL;
  for (size_t i = 0; i < t->cap; i++)
    if (!t->slots[i].in_use) {
      c = &t->slots[i];
      break;
    }
  if (!c) return NULL;
  uint8_t *k = malloc(spki_len ? spki_len : 1);
  if (!k) return NULL;
  memcpy(k, spki, spki_len);
  memset(c, 0, sizeof *c);
  randombytes_buf(c->id, sizeof c->id);
  randombytes_buf(c->challenge, sizeof c->challenge);
  c->spki = k;
  c->spki_len = spki_len;
  memcpy(c->client_id, client_id, strlen(client_id) + 1);
  c->expires_ms = now_ms + ttl_ms;
  c->in_use = true;
  t->count++;
  return c;
}

sec_reason sec_table_take(sec_table *t, const uint8_t id[SEC_ID_BYTES], uint64_t now_ms,
                          sec_challenge **out) {
  *out = NULL;
  for (size_t i = 0; i < t->cap; i++) {
    sec_challenge *c = &t->slots[i];
    /* constant-time compare: the ids are the only handle an attacker has */
    if (!c->in_use || CRYPTO_memcmp(c->id, id, SEC_ID_BYTES)) continue;
    if (c->used) return SEC_CHALLENGE_USED;
    if (now_ms >= c->expires_ms) return SEC_CHALLENGE_EXPIRED;
    c->used = true;
    *out = c;
    return SEC_OK;
  }
  return SEC_UNKNOWN_CHALLENGE;
}
