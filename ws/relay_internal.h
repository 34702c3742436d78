/* ws/relay_internal.h: the relay's message parser and base64url (not
 * installed; the fuzz target and the unit test use them). */
#ifndef RA_WS_RELAY_INTERNAL_H
#define RA_WS_RELAY_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "raloop/core/str.h"
#include "raloop/ws/relay.h"

enum { RA_RELAY_T_CHALLENGE_RESPONSE = 1, RA_RELAY_T_MESSAGE = 2 };

/* Largest text message the relay accepts (a JSON MESSAGE with a box of
 * max_box bytes and room for whitespace): 4/3 * max_box + this. */
#define RA_RELAY_JSON_OVERHEAD 512

/* A parsed client message. Views point into the input's JSON strings and
 * are valid until ra_relay_msg_clear. */
typedef struct ra_relay_msg {
  int type;
  uint8_t key[RA_RELAY_KEY_BYTES];     /* publicKey or to */
  uint8_t nonce[RA_RELAY_NONCE_BYTES]; /* boxNonce or nonce */
  uint8_t box[RA_RELAY_NONCE_BYTES + 16]; /* CHALLENGE_RESPONSE only */
  ra_str key_s, nonce_s, box_s;        /* the base64url texts */
  size_t box_len;                      /* decoded length */
  void *root;                          /* json_t */
} ra_relay_msg;

/* Parses one client message strictly: UTF-8 JSON object (no duplicate
 * keys, nothing after it), exactly the fields of its type, each a string
 * of canonical unpadded base64url of the exact length (keys 43, nonces 32,
 * the challenge box 54; a MESSAGE box of 16..16+max_box bytes).
 * Returns 0, or a reason for ERROR: "bad json", "unknown type",
 * "bad field", "too large". Always call ra_relay_msg_clear afterwards. */
const char *ra_relay_parse(const uint8_t *data, size_t len, size_t max_box, ra_relay_msg *m);
void ra_relay_msg_clear(ra_relay_msg *m);

/* Strict unpadded base64url: decodes s into out (may be NULL to validate
 * only); returns the decoded length, or -1 (bad char, length, non-zero
 * trailing bits, or more than cap bytes). */
long ra_b64url_decode(const char *s, size_t n, uint8_t *out, size_t cap);
/* Encodes n bytes; out needs 4*ceil(n/3)+1 bytes; returns the length. */
size_t ra_b64url_encode(const uint8_t *in, size_t n, char *out);

#endif
