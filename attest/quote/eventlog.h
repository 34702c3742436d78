/* attest/eventlog.h: dstack's TDX event log, RTMR replay and the identity
 * it decodes to (docs/DSTACK.md has the sources of each rule).
 *
 * dstack (Dstack-TEE/dstack) hands its event log out as JSON: an array of
 *   {"imr": 0..3, "event_type": u32, "digest": hex, "event": name,
 *    "event_payload": hex [, "version": 2] [, "preimage": hex]}
 * (cc-eventlog/src/tdx.rs, TdxEvent). Boot-time events (RTMR0-2, any type
 * but 0x08000001) carry their SHA-384 digest, usually with the payload
 * stripped; dstack's runtime events (event_type 0x08000001, RTMR3) are
 * recomputed from name and payload and their "digest" field is ignored,
 * as dstack itself does (TdxEvent::digest):
 *   v1 (no "version", or 1): SHA-384(type LE32 || ":" || name || ":" || payload)
 *   v2: SHA-384(JCS {"name":name,"payload":lowercase hex,"type":134217729})
 * Replay: RTMR[i] starts at 48 zero bytes, RTMR[i] = SHA-384(RTMR[i] || d)
 * for every event of imr i in log order.
 *
 * The identity: the payloads of the first "app-id", "compose-hash",
 * "instance-id", "key-provider" (and "os-image-hash") runtime events
 * before "system-ready" (events after it are the application's own and
 * cannot claim those names; dstack-attest's find_event stops there too).
 *
 * Pure: no I/O, no loop. */
#ifndef RA_ATTEST_EVENTLOG_H
#define RA_ATTEST_EVENTLOG_H

#include "raloop/core/api.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "raloop/attest/quote/quote.h"

/* dstack's runtime event type (not a TCG one) */
#define RA_DSTACK_RUNTIME_EVENT 0x08000001u
/* Inputs larger than this are refused (a real log is ~20 KiB). */
#define RA_EVENTLOG_MAX (4u << 20)

typedef struct ra_evlog_event {
  uint32_t imr;        /* 0..3 */
  uint32_t event_type; /* RA_DSTACK_RUNTIME_EVENT for dstack's events */
  int version;         /* 1 or 2 (runtime events) */
  uint8_t digest[48];  /* what is extended: computed for runtime events */
  const char *name;    /* "" when absent; NUL-terminated */
  const uint8_t *payload;
  size_t payload_len;
} ra_evlog_event;

typedef struct ra_eventlog ra_eventlog;

/* Parses an event log from JSON text json[0..len) (need not be
 * NUL-terminated; borrowed for the call). Accepted shapes: the array
 * itself; an object with an "event_log" member that is the array or a
 * string holding it (dstack's GetQuote answer, its tcb_info); an object
 * with a "tcb_info" string holding such an object (dstack's Info answer).
 * On failure returns -EINVAL (the reason, naming the event, at debug log
 * level: the input may come from a peer) or -ENOMEM; *out is NULL. Free
 * with ra_eventlog_free(). */
RA_API int ra_eventlog_parse(const char *json, size_t len, ra_eventlog **out);
RA_API void ra_eventlog_free(ra_eventlog *log);

/* The events, in log order. ra_eventlog_event returns NULL past the end;
 * the pointer and its strings live as long as log. */
RA_API size_t ra_eventlog_count(const ra_eventlog *log);
RA_API const ra_evlog_event *ra_eventlog_event(const ra_eventlog *log, size_t i);

/* The first runtime event named name before "system-ready" (NULL: none). */
RA_API const ra_evlog_event *ra_eventlog_find(const ra_eventlog *log, const char *name);

/* RTMR0..3 recomputed from the log. */
RA_API void ra_eventlog_replay(const ra_eventlog *log, uint8_t rtmr[4][48]);

/* The verdict of a replay against a quote. */
typedef struct ra_eventlog_verdict {
  int err;                 /* 0, RA_ERR_MEASUREMENT, or -EINVAL (no TD report) */
  int rtmr;                /* the first RTMR that differs, else -1 */
  uint8_t replayed[4][48]; /* RTMR0..3 from the log */
  char msg[256];           /* "RTMR2 mismatch: quoted <hex>, replayed <hex>", or what matched */
} ra_eventlog_verdict;

/* Replays the log and compares with the TD's RTMRs (q must be a TDX quote:
 * TD 1.0 or 1.5 body). Fills *vd (always) and returns vd->err: 0 when all
 * four match. -EINVAL also when vd is NULL. */
RA_API int ra_eventlog_check(const ra_eventlog *log, const ra_quote *q, ra_eventlog_verdict *vd);

/* The same for the RTMRs whose bit (1 << i) is in mask only: for logs that
 * cover RTMR3 alone (dstack strips the others from certificates; its own
 * check replays RTMR3). mask 0 is -EINVAL. */
RA_API int ra_eventlog_check_rtmrs(const ra_eventlog *log, const ra_quote *q, unsigned mask,
                                   ra_eventlog_verdict *vd);

/* Who a verified dstack quote says it is. Byte fields hold the event
 * payloads (dstack: app_id and instance_id 20 bytes, compose_hash 32);
 * a has_ flag is false when the event is absent. key_provider is the
 * payload as text (dstack: JSON like {"name":"kms","id":"..."}),
 * NUL-terminated, truncated to fit (key_provider_truncated). */
typedef struct ra_dstack_identity {
  uint32_t tee; /* RA_TEE_TDX */
  uint8_t mrtd[48];
  uint8_t rtmr[4][48];
  bool has_app_id, has_compose_hash, has_instance_id, has_key_provider, has_os_image_hash;
  uint8_t app_id[64], compose_hash[64], instance_id[64], os_image_hash[64];
  size_t app_id_len, compose_hash_len, instance_id_len, os_image_hash_len;
  char key_provider[1024];
  bool key_provider_truncated;
  bool simulated; /* set by callers that know the quote came from the sim TEE */
} ra_dstack_identity;

/* Fills *id from the quote's TD report and the log's events (it does not
 * replay: call ra_eventlog_check first). Returns 0 or -EINVAL (not a TD
 * quote; payload longer than its field). */
RA_API int ra_dstack_identity_from(const ra_eventlog *log, const ra_quote *q,
                                   ra_dstack_identity *id);

#endif
