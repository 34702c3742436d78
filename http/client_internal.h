/* http/client_internal.h: the pieces of http/client.c that tests drive
 * without a socket: the URL splitter and the response parser. */
#ifndef RA_HTTP_CLIENT_INTERNAL_H
#define RA_HTTP_CLIENT_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "raloop/http/client.h"

/* "http[s]://host[:port][/path]" (and "ws[s]://...", for the WebSocket
 * client): host without brackets, port (80 or 443), the target ("/" when
 * empty) and the Host header's value. -EPROTONOSUPPORT for another scheme,
 * -EINVAL for anything malformed (userinfo, a fragment, spaces, ...). */
typedef struct ra_http_url {
  bool tls;
  bool ws; /* ws:// or wss:// */
  char host[256];
  char host_hdr[300];
  uint16_t port;
  const char *target; /* points into the url given */
} ra_http_url;
int ra_http_url_parse(const char *url, ra_http_url *u);

/* The response parser: llhttp in response mode, the head and body kept
 * under caps. */
typedef struct ra_http_resp_parser ra_http_resp_parser;

/* NULL when out of memory. */
ra_http_resp_parser *ra_http_resp_parser_new(size_t max_head, size_t max_body);
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
