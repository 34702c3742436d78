/* http/request.h: a transport-neutral HTTP request (ra_req).
 *
 * An ra_req is built by a transport (the HTTP/1.1 connection, or the attested
 * tunnel) and handed to the router with its ra_res. It stays valid until its
 * response is ended (ra_res_send / ra_res_end) or, if the transport went away
 * first, until then too: a handler that answers late may still read it.
 * Every ra_str returned below points into the request and shares its
 * lifetime.
 */
#ifndef RA_HTTP_REQUEST_H
#define RA_HTTP_REQUEST_H

#include "raloop/core/api.h"

#include <stdbool.h>
#include <stddef.h>

#include "raloop/core/buf.h"

typedef struct ra_req ra_req;

typedef struct ra_header {
  ra_str name;
  ra_str value;
} ra_header;

RA_API ra_str ra_req_method(const ra_req *req);   /* "GET", ... */
RA_API ra_str ra_req_target(const ra_req *req);   /* as received: "/a%20b?x=1" */
RA_API ra_str ra_req_path(const ra_req *req);     /* percent-decoded path, no query */
RA_API ra_str ra_req_query(const ra_req *req);    /* raw query string, without '?' */
/* The percent-decoded value ('+' is a space) of the first `name` in the
 * query. Returns false if absent. The value is written to *out (decoded into
 * storage owned by the request). */
RA_API bool ra_req_query_get(ra_req *req, const char *name, ra_str *out);

/* Case-insensitive; the first header with that name. Returns false if absent. */
RA_API bool ra_req_header(const ra_req *req, const char *name, ra_str *out);
RA_API size_t ra_req_header_count(const ra_req *req);
/* i < ra_req_header_count(); names keep the case they arrived in. */
RA_API ra_header ra_req_header_at(const ra_req *req, size_t i);

RA_API ra_str ra_req_body(const ra_req *req);
/* A route's ":name" parameter (decoded), or the trailing wildcard as "*". */
RA_API bool ra_req_param(const ra_req *req, const char *name, ra_str *out);

/* HTTP version as 10 or 11 (the tunnel reports 11). */
RA_API int ra_req_http_version(const ra_req *req);
/* True when the request came through an attested tunnel. */
RA_API bool ra_req_attested(const ra_req *req);
/* The client's address as text ("192.0.2.1", "::1"), when the transport
 * knows it (TCP connections); else an empty view. */
RA_API ra_str ra_req_peer(const ra_req *req);

/* The client's own attestation, as the attested tunnel verified it against
 * the server's client policy (PROTOCOL.md §10). Plain data so that http/
 * needs nothing of attest/: the tunnel fills it. */
typedef struct ra_client_identity {
  uint32_t tee;          /* RA_TEE_TDX (0x81) or RA_TEE_SGX (0), attest/quote/quote.h */
  bool simulated;        /* the quote chained to a pinned simulated-TEE root */
  bool debug;            /* a debug TD / enclave (accepted only by allow_debug) */
  uint8_t mrtd[48];      /* TDX: MRTD; SGX: MRENCLAVE in the first 32 bytes */
  uint8_t rtmr[4][48];   /* TDX only */
  uint8_t mr_signer[32]; /* SGX only */
  /* dstack: from the client's event log (replayed against its RTMRs) */
  bool has_app_id, has_compose_hash, has_instance_id;
  uint8_t app_id[32], compose_hash[32], instance_id[32];
  size_t app_id_len, compose_hash_len, instance_id_len;
  /* Intel collateral: evaluated only when the server has some */
  bool tcb_evaluated;
  char tcb_status[48];   /* Intel's spelling ("UpToDate"), "None" when not evaluated */
  char root[128];        /* subject of the pinned root the quote chained to */
} ra_client_identity;

/* The verified identity of the client, or NULL when there is none: not
 * through the tunnel, a tunnel whose client presented no attestation (the
 * reference client never does), or a server without a client policy.
 * Valid as long as req. */
RA_API const ra_client_identity *ra_req_client_identity(const ra_req *req);

/* ---- streamed request bodies ---------------------------------------------
 * A route registered with RA_ROUTE_STREAM_BODY (router.h) is dispatched as
 * soon as the request's head has arrived, by a transport that streams
 * (HTTP/1.1; the tunnel with the streaming extension, PROTOCOL.md §11); its
 * body is then not buffered (ra_req_body() stays empty) but handed to the
 * callback the handler sets with ra_req_on_body(), in its handler call or
 * later: until then the transport holds what arrived and reads no more, so
 * nothing is lost. On a transport that buffered the body whole (the
 * reference tunnel client's whole-body messages), the same callback gets
 * that body in one call with last == true: a handler is written once.
 *
 * cb(req, data, len, last, ud): one piece of the body (data valid during the
 * call; len may be 0 when last). After the call with last == true none
 * follow. A request without a body gets one call (NULL, 0, true). Calls
 * come from the loop, never from inside ra_req_on_body or
 * ra_req_body_pause. The callback may end the response (req is then freed:
 * do not touch it after ending).
 * If the body cannot complete (the client went away, a body timeout, a
 * malformed body, the server shutting down, the tunnel closed or the
 * client cancelled), the response
 * is cancelled (ra_res_on_cancel's callback runs) and cb is not called
 * again. If the handler ends its response before the last piece, the
 * transport discards the rest (HTTP/1.1 reads and drops up to 1 MiB of it,
 * or closes the connection after the answer when it is larger; the tunnel
 * tells the client to stop). A paused handler is not timed out, and learns
 * that its client left only once it resumes (the transport is not reading).
 * Streamed bodies are not bounded by the server's max_body: the handler sees
 * every byte in bounded memory and decides (answer 413 and end). */
typedef void (*ra_req_body_cb)(ra_req *req, const uint8_t *data, size_t len, bool last, void *ud);
/* Sets (or, with cb NULL, clears) the body callback. */
RA_API void ra_req_on_body(ra_req *req, ra_req_body_cb cb, void *ud);
/* Flow control: paused, no piece is delivered after the current callback
 * returns (the transport stops reading from this client, or gives the
 * tunnel client no more credit) until ra_req_body_pause(req, false). */
RA_API void ra_req_body_pause(ra_req *req, bool paused);
/* True when the body reaches the handler as it arrives (the transport
 * streams it), false when it was buffered whole. */
RA_API bool ra_req_body_streamed(const ra_req *req);

/* For access logs: the request body's size (buffered, or streamed and
 * delivered so far) and the response body bytes handed to the transport so
 * far (0 for HEAD and bodiless answers). */
RA_API uint64_t ra_req_body_bytes(const ra_req *req);
RA_API uint64_t ra_req_response_bytes(const ra_req *req);

/* ---- for transports -----------------------------------------------------
 * A transport builds a request, adds headers and body, then dispatches it
 * with ra_router_handle(). All inputs are copied into the request. */
/* 0 and *out, or a negative code and *out NULL: -EINVAL for a method that
 * is empty or longer than an HTTP/1.1 request may have (31 bytes), -E2BIG
 * for a target too long to hold, -ENOMEM. */
RA_API int ra_req_new(ra_str method, ra_str target, int http_version, bool attested, ra_req **out);
RA_API int ra_req_add_header(ra_req *req, ra_str name, ra_str value);
/* Sets what ra_req_peer returns (copied; -EINVAL past 45 bytes). */
RA_API int ra_req_set_peer(ra_req *req, ra_str addr);
/* Sets what ra_req_client_identity returns (copied into the request; NULL
 * clears it). 0 or -ENOMEM. */
RA_API int ra_req_set_client_identity(ra_req *req, const ra_client_identity *id);
RA_API int ra_req_append_body(ra_req *req, const void *data, size_t len);
/* Zero-copy alternative to ra_req_append_body for a transport that holds the
 * whole body already (the tunnel's decrypted message): the body becomes the
 * view data[0..len), not copied. The request takes the buffer over:
 * free_cb(ud) (may be NULL) runs exactly once, when the request is freed or
 * reset, or when the body is replaced by another call; data must stay valid
 * and unchanged until then. Replaces any body appended before; appending
 * after it fails (-EINVAL). Returns 0, or -EINVAL (data NULL with len > 0;
 * free_cb has then run). */
RA_API int ra_req_set_body_ref(ra_req *req, const void *data, size_t len, void (*free_cb)(void *), void *ud);
/* A streaming transport (after ra_res_new, before dispatching): the body
 * will come through ra_req_body_deliver. ops->kick(t) runs whenever
 * ra_req_body_wants() may have changed (the handler set its callback,
 * paused or resumed; possibly from inside a delivery): the transport then
 * delivers what it holds, from the loop, or reads again. ops must outlive
 * the request; t is the transport's. */
typedef struct ra_req_body_ops {
  void (*kick)(void *t);
} ra_req_body_ops;
RA_API void ra_req_set_body_stream(ra_req *req, const ra_req_body_ops *ops, void *t);
/* True while the handler takes pieces: a callback is set, not paused, the
 * last piece not delivered yet. */
RA_API bool ra_req_body_wants(const ra_req *req);
/* Hands a piece to the handler's callback; only while ra_req_body_wants().
 * The callback may free the request (it ended the response): the
 * transport learns it from its sink's end, so it must not touch req after
 * this returns unless its sink is still attached. */
RA_API void ra_req_body_deliver(ra_req *req, const uint8_t *data, size_t len, bool last);
/* Frees a request that was never handed to a response (ra_res_new takes
 * ownership of it). */
RA_API void ra_req_free(ra_req *req);

#endif
