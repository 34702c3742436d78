/* ws/handshake.h: the pieces of the RFC 6455 opening handshake (no I/O).
 * Used by the server route (ws/ws.c) and the client (ws/client.c). */
#ifndef RA_WS_HANDSHAKE_H
#define RA_WS_HANDSHAKE_H

#include "raloop/core/api.h"

#include <stdbool.h>
#include <stddef.h>

#include "raloop/core/buf.h"
#include "raloop/http/request.h"

#define RA_WS_KEY_LEN 24     /* base64 of 16 bytes */
#define RA_WS_ACCEPT_LEN 28  /* base64 of a SHA-1 */

/* True when key (surrounding spaces/tabs ignored) is the base64 encoding
 * of exactly 16 bytes: 22 alphabet characters and "==". */
RA_API bool ra_ws_key_valid(ra_str key);

/* Sec-WebSocket-Accept for key: base64(SHA-1(key + GUID)), written with a
 * NUL to out. The key is used as given after trimming spaces/tabs. Returns 0
 * or -EIO if the digest failed. */
RA_API int ra_ws_accept_value(ra_str key, char out[RA_WS_ACCEPT_LEN + 1]);

/* A fresh Sec-WebSocket-Key from 16 CSPRNG bytes (OpenSSL RAND_bytes),
 * NUL-terminated. Returns 0 or -EIO. */
RA_API int ra_ws_key_generate(char out[RA_WS_KEY_LEN + 1]);

/* True when the comma-separated header value `list` contains `token`
 * (case-insensitive, surrounding whitespace ignored), as for
 * "Connection: keep-alive, Upgrade". */
RA_API bool ra_ws_has_token(ra_str list, const char *token);

/* Splits a comma-separated list into up to max trimmed non-empty items
 * (views into list). Returns how many were found, which may exceed max
 * (only the first max are stored). */
RA_API size_t ra_ws_split_list(ra_str list, ra_str *out, size_t max);

/* Subprotocol negotiation, the same for a plain upgrade and a tunnelled
 * ws_connect: at most RA_WS_MAX_PROTOCOLS offers are considered (later ones
 * are ignored); select(req, offered, n, ud) returns the index of its choice,
 * or -1. Returns the chosen offer (a view into offered's strings), or an
 * empty view when select is NULL, n is 0 or nothing was chosen. */
#define RA_WS_MAX_PROTOCOLS 32
typedef int (*ra_ws_select_fn)(const ra_req *req, const ra_str *offered, size_t n, void *ud);
RA_API ra_str ra_ws_choose_protocol(ra_ws_select_fn select, const ra_req *req, const ra_str *offered,
                             size_t n, void *ud);

#endif
