/* attest/dstack.h: the dstack guest agent (Dstack-TEE/dstack) as a quote
 * source: a small blocking client of its RPC API and the "dstack" quote
 * provider (provider.h). docs/DSTACK.md cites the dstack sources.
 *
 * The agent serves HTTP/1.1 on a unix socket. Two generations:
 *   dstack  /var/run/dstack.sock (0.5+): POST /GetQuote {"report_data": hex
 *           of at most 64 bytes, zero-padded to 64 by the agent} answers
 *           {"quote": hex, "event_log": "<JSON array as a string>",
 *            "report_data": hex, "vm_config": "<JSON>"}; POST /Info ({})
 *           answers {"app_id": hex, "instance_id": hex, "app_cert": PEM,
 *           "tcb_info": "<JSON: mrtd, rtmr0..3, compose_hash, event_log>",
 *           "app_name", "device_id", "compose_hash", "key_provider_info",
 *           "os_image_hash", "vm_config", ...}.
 *   tappd   /var/run/tappd.sock (0.3): POST /prpc/Tappd.TdxQuote
 *           {"report_data": hex, "hash_algorithm": "raw"} (raw: the 64
 *           bytes are the report_data as given; other algorithms hash
 *           "app-data:" || data, which we never ask for) answers {"quote":
 *           hex, "event_log": string, ...}; POST /prpc/Tappd.Info as Info.
 * Requests are sent as dstack's SDKs send them (Host: localhost,
 * Content-Type: application/json, a JSON body, also for Info). The flavour
 * follows the socket's file name: one containing "tappd" speaks tappd.
 *
 * Blocking, with an overall deadline per request: meant for CLIs and for
 * start-up (the tunnel asks its provider once per key, off the request
 * path), never inside an event-loop callback. */
#ifndef RA_ATTEST_DSTACK_H
#define RA_ATTEST_DSTACK_H

#include "raloop/core/api.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "raloop/attest/quote/provider.h"

#define RA_DSTACK_SOCKET     "/var/run/dstack.sock"
#define RA_TAPPD_SOCKET      "/var/run/tappd.sock"
#define RA_DSTACK_TIMEOUT_MS 10000
/* Bound on an answer (headers + body); a real GetQuote is ~25 KiB. */
#define RA_DSTACK_MAX_RESPONSE (4u << 20)

/* A GetQuote answer. Owned buffers; release with ra_dstack_quote_clear. */
typedef struct ra_dstack_quote {
  uint8_t *quote;
  size_t quote_len;
  char *event_log; /* the JSON text (ra_eventlog_parse takes it); NULL when absent */
  size_t event_log_len;
  bool has_report_data; /* dstack echoes the padded report_data; tappd does not */
  uint8_t report_data[64];
  char *vm_config; /* JSON text or NULL */
} ra_dstack_quote;

RA_API void ra_dstack_quote_clear(ra_dstack_quote *q);

/* An Info answer: every field as the agent sent it (hex or text), or NULL
 * when absent. Release with ra_dstack_info_clear. */
typedef struct ra_dstack_info {
  char *app_id, *instance_id, *app_cert, *tcb_info, *app_name, *device_id, *compose_hash,
      *key_provider_info, *os_image_hash;
} ra_dstack_info;

RA_API void ra_dstack_info_clear(ra_dstack_info *i);

/* Whether path speaks the tappd API (its file name contains "tappd"). */
RA_API bool ra_dstack_is_tappd(const char *path);

/* Asks the agent at socket_path (NULL: RA_DSTACK_SOCKET) for a quote over
 * report_data[0..rd_len) (rd_len <= 64; tappd wants exactly 64: shorter
 * data is zero-padded at the end here, as the dstack agent pads). timeout_ms
 * <= 0 means RA_DSTACK_TIMEOUT_MS. *out is zeroed first. Checks that the
 * quote parses as a DCAP quote and that its report_data is the padded one
 * asked for. Returns 0, or (the reason, naming the socket, is logged at
 * error level):
 *   -ENOENT / -ECONNREFUSED / -EACCES  the socket (named in the log)
 *   -ETIMEDOUT                         no complete answer in time
 *   -EMSGSIZE                          answer over RA_DSTACK_MAX_RESPONSE
 *   -EPROTO                            not HTTP, or an HTTP error status (the log
 *                                      has the status and the agent's "error" text)
 *   -EBADMSG                           garbled JSON, missing/garbled fields, a quote
 *                                      that does not parse or has other report_data
 *   -EINVAL                            bad arguments; -ENOMEM */
RA_API int ra_dstack_get_quote(const char *socket_path, int timeout_ms, const uint8_t *report_data,
                               size_t rd_len, ra_dstack_quote *out);

/* The quote of a GetQuote answer saved to a file (JSON text json[0..len)
 * with a hex "quote"): *quote is malloc'd. Returns 0, -EINVAL (not such
 * JSON), -ENOMEM. No check of the quote itself. */
RA_API int ra_dstack_quote_from_json(const char *json, size_t len, uint8_t **quote,
                                     size_t *quote_len);

/* Info, errors as above (no quote checks). */
RA_API int ra_dstack_get_info(const char *socket_path, int timeout_ms, ra_dstack_info *out);

/* The provider: socket_path NULL = RA_DSTACK_SOCKET. Fails now with -ENOENT
 * (logged with the path and a hint) when the path is not a socket. get()
 * binds the key as sim and tsm do (provider.h: fresh val, iat now,
 * report_data = SHA-512(val || iat || key)) and asks the agent for that
 * report_data; the agent's errors are logged as ra_dstack_get_quote words
 * them. binds_key true, simulated false (the agent's quote may still come
 * from a simulator: the client's pinned roots decide). */
RA_API int ra_quote_provider_dstack(const char *socket_path, ra_quote_provider **out);

#endif
