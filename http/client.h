/* http/client.h: a small HTTP/1.1 client on the loop.
 *
 * One request per connection ("Connection: close"; GET unless told), for
 * fetching documents such as Intel's collateral: http:// and https:// URLs
 * (TLS by the stream adaptor, core/tls.h: the system's CAs or ca_file, or
 * the caller's client context, e.g. an RA-TLS check), a deadline for the
 * whole exchange, Content-Length, chunked and close-delimited bodies
 * (llhttp in response mode), caps on the size of the head and the body. */
#ifndef RA_HTTP_CLIENT_H
#define RA_HTTP_CLIENT_H

#include "raloop/core/api.h"

#include <stddef.h>
#include <stdint.h>

#include "raloop/core/loop.h"
#include "raloop/core/str.h"
#include "raloop/core/tls.h"

typedef struct ra_http_header {
  ra_str name, value;
} ra_http_header;

/* A complete response. Every view is valid until the callback returns. */
typedef struct ra_http_response {
  int status; /* 200, 404, ... */
  const ra_http_header *headers;
  size_t nheaders;
  ra_str body; /* decoded (chunked framing removed) */
} ra_http_response;

/* The first header named name (case-insensitive), or a view with ptr NULL
 * when there is none. r borrowed; the view lives as long as r. */
RA_API ra_str ra_http_response_header(const ra_http_response *r, const char *name);

typedef struct ra_http_get_opts {
  uint64_t timeout_ms; /* whole exchange, connect included; 0: 30 s */
  size_t max_body;     /* 0: 16 MiB; a larger body fails with -EMSGSIZE */
  size_t max_head;     /* status line and headers; 0: 64 KiB (-EMSGSIZE) */
  const char *accept;  /* Accept header value; NULL: none sent */
  const char *ca_file; /* https: PEM file of the CAs to trust instead of the system's */
  /* https: the client TLS context to use instead (referenced for the
   * request; ca_file is then ignored), and the name for SNI and the host
   * check (NULL: the URL's host) */
  ra_tls_ctx *tls;
  const char *server_name;
  /* the request: method (NULL: "GET"; a token), extra headers (no CR/LF;
   * not Host, Connection, Content-Length), a body (Content-Length is sent
   * with a body and for any method but GET) */
  const char *method;
  const ra_http_header *headers;
  size_t nheaders;
  const void *body;
  size_t body_len;
} ra_http_get_opts;

/* err 0: res holds the response, whatever its status. Otherwise res is
 * NULL and err is -ETIMEDOUT (deadline), -EMSGSIZE (a cap), -EPROTO (not
 * HTTP/1.x, the connection ended mid-response, a TLS failure), -EACCES (the
 * server's certificate did not verify or is for another host; the reason
 * is logged; or a verify callback's own code), -ECONNREFUSED, ... */
typedef void (*ra_http_get_cb)(int err, const ra_http_response *res, void *ud);

typedef struct ra_http_get ra_http_get;

/* Starts the request (GET unless opts->method) for url
 * ("http[s]://host[:port][/path][?query]"; IPv6 hosts in
 * brackets). url and opts are copied; opts may be NULL. Returns 0 and, when
 * out is not NULL, a handle valid until the callback starts; cb is then
 * called exactly once, always from the loop (never from inside this call),
 * unless ra_http_get_cancel comes first. Errors (cb not called): -EINVAL (bad
 * URL, method or header), -EPROTONOSUPPORT (a scheme other than http and https), -ENOENT
 * (ca_file or the system's CA store cannot be loaded), -ENOMEM, or
 * ra_stream_connect's. */
RA_API int ra_http_get_start(ra_loop *loop, const char *url, const ra_http_get_opts *opts,
                             ra_http_get_cb cb, void *ud, ra_http_get **out);

/* Cancels a request whose callback has not run yet: cb is never called;
 * the connection is dropped. NULL is a no-op. */
RA_API void ra_http_get_cancel(ra_http_get *g);

#endif
