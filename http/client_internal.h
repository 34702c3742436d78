/* http/client_internal.h: the pieces of http/client.c that tests drive
 * without a socket: the URL splitter and the response parser. */
#ifndef RA_HTTP_CLIENT_INTERNAL_H
#define RA_HTTP_CLIENT_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <llhttp.h>

#include "raloop/core/buf.h"
#include "raloop/http/client.h"

/* "http://host[:port][/path]": host without brackets, port (80), the target
 * ("/" when empty) and the Host header's value. -EPROTONOSUPPORT for https
 * or another scheme, -EINVAL for anything malformed. */
typedef struct ra_http_url {
  char host[256];
  char host_hdr[300];
  uint16_t port;
  const char *target; /* points into the url given */
} ra_http_url;
int ra_http_url_parse(const char *url, ra_http_url *u);

#define RA_HTTP_CLIENT_MAX_HEADERS 100

typedef struct ra_http_resp_parser {
  llhttp_t p;
  llhttp_settings_t s;
  size_t max_head, max_body, head_bytes;
  int err;   /* the first error: -EMSGSIZE, -EPROTO, -ENOMEM */
  bool done; /* a final (non-1xx) response is complete */
  bool in_value;
  int status;
  ra_buf text; /* header names and values, back to back */
  struct {
    size_t no, nl, vo, vl;
  } idx[RA_HTTP_CLIENT_MAX_HEADERS];
  size_t nidx;
  ra_buf body;
  ra_http_header hdrs[RA_HTTP_CLIENT_MAX_HEADERS];
} ra_http_resp_parser;

void ra_http_resp_parser_init(ra_http_resp_parser *rp, size_t max_head, size_t max_body);
void ra_http_resp_parser_free(ra_http_resp_parser *rp);
/* Feeds bytes: 1 once the response is complete (bytes past it ignored), 0
 * for more, or a negative error (then stays failed). */
int ra_http_resp_parser_feed(ra_http_resp_parser *rp, const uint8_t *data, size_t len);
/* The peer closed: 1 when that completes a response (close-delimited
 * body), else a negative error (-EPROTO: truncated). */
int ra_http_resp_parser_eof(ra_http_resp_parser *rp);
/* Fills *r with views into rp (valid until rp changes); call after 1. */
void ra_http_resp_parser_result(ra_http_resp_parser *rp, ra_http_response *r);

#endif
