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
/* Frees a request that was never handed to a response (ra_res_new takes
 * ownership of it). */
RA_API void ra_req_free(ra_req *req);

#endif
