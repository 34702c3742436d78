/* http/request_internal.h: the ra_req layout, for transports in http/.
 *
 * Storage: method inline; target and header bytes in `raw` (append-only
 * while the request is being built, so a header name or value arriving in
 * fragments stays contiguous; offsets rather than pointers because raw may
 * move while it grows); the body in `body`; everything derived later
 * (decoded path, decoded query values, route parameters) in a chain of
 * arena blocks that never move, so views handed to handlers stay valid.
 * A request can be reset and reused (the HTTP/1.1 connection pools them)
 * keeping its small buffers.
 */
#ifndef RA_HTTP_REQUEST_INTERNAL_H
#define RA_HTTP_REQUEST_INTERNAL_H

#include <stdint.h>

#include "raloop/core/loop.h"
#include "raloop/http/request.h"

typedef struct ra_req_hdr {
  uint32_t name_off, name_len, value_off, value_len;
} ra_req_hdr;

typedef struct ra_req_kv {
  ra_str name, value;
} ra_req_kv;

typedef struct ra_req_blk ra_req_blk;

#define RA_REQ_METHOD_MAX 31

struct ra_req {
  char method[RA_REQ_METHOD_MAX + 1];
  uint8_t method_len;
  uint8_t http_version; /* 10 or 11 */
  bool attested;
  uint8_t peer_len;     /* ra_req_set_peer */
  char peer[46];
  bool path_ok;         /* target parsed and path decoded */
  ra_buf raw;           /* target, header names and values */
  uint32_t target_off, target_len;
  ra_req_hdr *hdrs;
  uint32_t nhdrs, hdr_cap;
  ra_buf body;
  ra_str path;          /* decoded, in the arena */
  uint32_t query_off, query_len; /* in raw; query_off == 0 with len 0: none */
  ra_req_kv *params;
  uint32_t nparams;
  ra_req_blk *blk;      /* arena: newest block first */
  /* ra_req_set_body_ref: the body is this view instead of `body`; free_cb
   * (may be NULL) runs with body_ref_ud on reset / cleanup. */
  const void *body_ref;
  size_t body_ref_len;
  void (*body_ref_free)(void *);
  void *body_ref_ud;
  const ra_client_identity *client_id; /* in the arena (ra_req_set_client_identity) */
  /* Streamed bodies (ra_req_on_body). loop: set by ra_res_init, for the
   * deferred delivery of a buffered body. body_ops NULL: buffered. */
  ra_loop *loop;
  const ra_req_body_ops *body_ops;
  void *body_t;
  ra_req_body_cb body_cb;
  void *body_ud;
  bool body_paused, body_done;
  ra_defer body_defer;
  uint64_t bytes_in;   /* streamed body bytes delivered */
  uint64_t bytes_out;  /* response body bytes handed to the transport */
};

/* In-place life cycle (for embedding). init: zeroed, empty. reset: empties,
 * keeps small buffers for reuse. cleanup: releases everything. */
void ra_req_init(ra_req *req);
void ra_req_reset(ra_req *req);
void ra_req_cleanup(ra_req *req);
/* ra_req_new on an empty (init or reset) request: 0, -EINVAL (method
 * empty or too long), -E2BIG (target), -ENOMEM; on failure reset it
 * before reuse. A target the router cannot accept is no failure (400). */
int ra_req_start(ra_req *req, ra_str method, ra_str target, int http_version, bool attested);

/* Incremental building (HTTP/1.1 parser callbacks). */
int ra_req_set_method(ra_req *req, ra_str method);
int ra_req_target_append(ra_req *req, const char *p, size_t n);
/* A header name or value in fragments: start a header with
 * ra_req_hdr_begin(), then append name pieces, then value pieces. */
int ra_req_hdr_begin(ra_req *req);
int ra_req_hdr_name_append(ra_req *req, const char *p, size_t n);
int ra_req_hdr_value_append(ra_req *req, const char *p, size_t n);
/* Parses the target once complete: path (percent-decoded, dot segments
 * removed), query. Returns 0, or -EINVAL for a target the router cannot
 * accept (bad escape, encoded '/' or NUL, ".." above the root, neither
 * origin-form nor absolute-form). */
int ra_req_finish_target(ra_req *req);

/* Arena allocation for derived data; stable until reset/cleanup. */
void *ra_req_alloc(ra_req *req, size_t n);
/* Route parameters (names and values are copied). */
int ra_req_set_params(ra_req *req, const ra_req_kv *p, size_t n);

/* Percent-decoding helper: decodes src into dst (room for src.len bytes).
 * plus_space: '+' becomes ' ' (query strings). Returns the decoded length, or
 * -1 on a malformed escape. */
long ra_pct_decode(char *dst, ra_str src, bool plus_space);

#endif
