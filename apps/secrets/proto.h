/* apps/secrets/proto.h: the wire format of the strict secret-release
 * service (docs/SECRETS.md): the two requests' JSON, the transcripts that
 * get signed, and the server's table of one-time challenges.
 *
 * Pure (no I/O, no loop): the request parsers are what tests/fuzz/
 * secrets_fuzz.c runs on arbitrary bytes; the table takes the time from its
 * caller so that tests and the fuzzer control expiry. */
#ifndef RA_APPS_SECRETS_PROTO_H
#define RA_APPS_SECRETS_PROTO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define SEC_CHALLENGE_BYTES 32
#define SEC_ID_BYTES        16
#define SEC_MAX_CLIENT_ID   128
#define SEC_MAX_NAME        100           /* stored as "secret-<name>" (store/sealed.h: 128) */
#define SEC_MAX_BODY        (256u * 1024) /* a dstack certificate with its event log: ~30 KiB */
#define SEC_MAX_CHALLENGES  4096
#define SEC_DEFAULT_TTL_MS  30000
/* used or expired challenges are remembered this long after their expiry,
 * to name the refusal ("used", "expired") instead of "unknown" */
#define SEC_GRACE_MS 300000

/* Domain tags: every signed or hashed transcript starts with one (NUL
 * included), so that no signature of one kind passes as another. */
#define SEC_TAG_KEY       "raloop-secrets-key:" /* bundle binding: SHA-512(tag || SPKI) */
#define SEC_TAG_CHALLENGE "raloop-secrets-challenge-v1"
#define SEC_TAG_FETCH     "raloop-secrets-fetch-v1"
#define SEC_TAG_SECRET    "raloop-secrets-secret-v1"

/* Refusal reasons: the "error" member of every refusal, and the log. */
typedef enum sec_reason {
  SEC_OK = 0,
  SEC_BAD_REQUEST,          /* 400: not JSON, a member missing or of the wrong type */
  SEC_ATTESTATION_MISSING,  /* 403: no attestation */
  SEC_ATTESTATION_INVALID,  /* 403: the quote or certificate does not verify */
  SEC_KEY_NOT_BOUND,        /* 403: the quote does not bind the key presented */
  SEC_EVENT_LOG_MISMATCH,   /* 403: the event log does not replay to the quote */
  SEC_APP_ID_MISMATCH,      /* 403: app_id absent or not pinned */
  SEC_MEASUREMENT_MISMATCH, /* 403: MRTD not pinned */
  SEC_DEBUG_TD,             /* 403: a debug TD (strict) */
  SEC_TOO_MANY,             /* 503: the challenge table is full */
  SEC_UNKNOWN_CHALLENGE,    /* 403: never issued (or long gone) */
  SEC_CHALLENGE_EXPIRED,    /* 403 */
  SEC_CHALLENGE_USED,       /* 403: a second fetch with one challenge */
  SEC_BAD_SIGNATURE,        /* 403: not signed by the challenge's attested key */
  SEC_BAD_NAME,             /* 400: not a valid secret name */
  SEC_NOT_FOUND,            /* 404: no such secret */
  SEC_INTERNAL,             /* 500: the store, OpenSSL: nothing of the secret leaves */
  SEC__COUNT
} sec_reason;

const char *sec_reason_name(sec_reason r); /* "challenge_used", ... */
int sec_reason_status(sec_reason r);       /* the HTTP status */
/* The reason for a name, or -1. */
int sec_reason_from_name(const char *s);

/* POST /v1/secrets/challenge. Views into the parsed document, which lives
 * in doc (free with sec_challenge_req_clear). */
typedef struct sec_challenge_req {
  void *doc; /* json_t */
  const char *client_id;
  bool has_attestation;
  /* attestation.cert (PEM: a dstack app certificate or a raloop RA-TLS one) */
  const char *cert;
  /* or the quote bundle: attestation.quote (base64), .key (base64 DER
     * SubjectPublicKeyInfo), .event_log (optional JSON text) */
  uint8_t *quote, *key;
  size_t quote_len, key_len;
  const char *event_log;
} sec_challenge_req;

/* Parses body[0..len). Returns SEC_OK, SEC_BAD_REQUEST (why in err), or
 * SEC_ATTESTATION_MISSING (a well-formed request without attestation).
 * *r is zeroed first; clear it in every case. */
sec_reason sec_parse_challenge_req(const char *body, size_t len, sec_challenge_req *r, char *err,
                                   size_t errlen);
void sec_challenge_req_clear(sec_challenge_req *r);

/* POST /v1/secrets/fetch: {challenge_id: hex, name, signature: base64 DER
 * ECDSA}. Owned copies; sec_fetch_req_clear. */
typedef struct sec_fetch_req {
  uint8_t id[SEC_ID_BYTES];
  char name[SEC_MAX_NAME + 1];
  uint8_t *sig;
  size_t sig_len;
} sec_fetch_req;

sec_reason sec_parse_fetch_req(const char *body, size_t len, sec_fetch_req *r, char *err,
                               size_t errlen);
void sec_fetch_req_clear(sec_fetch_req *r);

/* Names: 1..SEC_MAX_NAME of [A-Za-z0-9._-], not starting with '.'. */
bool sec_name_valid(const char *name);
bool sec_client_id_valid(const char *id);

/* The transcripts (malloc'd; NULL on ENOMEM):
 *   challenge: TAG_CHALLENGE \0 || id || challenge || expires_ms (u64 BE)
 *              || SHA-256(client SPKI) || client_id
 *              (signed by the server's attested key)
 *   fetch:     TAG_FETCH \0 || id || challenge || SHA-256(server cert DER)
 *              || name   (signed by the client's attested key)
 *   secret:    TAG_SECRET \0 || id || SHA-256(ephemeral SPKI) || nonce(12)
 *              || SHA-256(ciphertext) || name   (signed by the server)
 * Fixed-length fields first and one variable field last: unambiguous. */
uint8_t *sec_challenge_transcript(const uint8_t id[SEC_ID_BYTES],
                                  const uint8_t ch[SEC_CHALLENGE_BYTES], uint64_t expires_ms,
                                  const uint8_t key_hash[32], const char *client_id, size_t *len);
uint8_t *sec_fetch_transcript(const uint8_t id[SEC_ID_BYTES], const uint8_t ch[SEC_CHALLENGE_BYTES],
                              const uint8_t server_hash[32], const char *name, size_t *len);
uint8_t *sec_secret_transcript(const uint8_t id[SEC_ID_BYTES], const uint8_t epk_hash[32],
                               const uint8_t nonce[12], const uint8_t ct_hash[32], const char *name,
                               size_t *len);

/* ---- the challenge table ------------------------------------------------ */

typedef struct sec_challenge {
  uint8_t id[SEC_ID_BYTES];
  uint8_t challenge[SEC_CHALLENGE_BYTES];
  uint8_t *spki; /* the client's attested key (DER SubjectPublicKeyInfo), owned */
  size_t spki_len;
  char client_id[SEC_MAX_CLIENT_ID + 1];
  uint64_t expires_ms;
  bool used;
  bool in_use; /* slot taken */
} sec_challenge;

typedef struct sec_table {
  sec_challenge *slots;
  size_t cap, count;
} sec_table;

int sec_table_init(sec_table *t, size_t cap);
void sec_table_free(sec_table *t);
/* Drops entries past expires + SEC_GRACE_MS. */
void sec_table_purge(sec_table *t, uint64_t now_ms);
/* A new entry (random id and challenge, the key copied), or NULL when the
 * table is full (after a purge) or out of memory. */
sec_challenge *sec_table_add(sec_table *t, const uint8_t *spki, size_t spki_len,
                             const char *client_id, uint64_t now_ms, uint64_t ttl_ms);
/* Looks id up and consumes it: SEC_OK with *out (valid until the next
 * add/purge), or SEC_UNKNOWN_CHALLENGE / SEC_CHALLENGE_EXPIRED /
 * SEC_CHALLENGE_USED. Any lookup of a live entry marks it used, whatever
 * the caller finds next (a bad signature burns the challenge too). */
sec_reason sec_table_take(sec_table *t, const uint8_t id[SEC_ID_BYTES], uint64_t now_ms,
                          sec_challenge **out);

#endif
