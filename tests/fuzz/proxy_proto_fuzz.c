/* tests/fuzz/proxy_proto_fuzz.c: the PROXY protocol parser on arbitrary
 * bytes. Checks the engine's contract: a complete header's length is within
 * the input and the limit; every proper prefix of a parsed header says
 * "need more" and the header alone parses to the same result; "need more"
 * on an input means no prefix of it was an error; a parsed v2 PROXY header
 * re-encodes (without TLVs) to one that parses to the same addresses. */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "raloop/core/proxy_proto.h"

static void same(const ra_proxy_proto_info *a, const ra_proxy_proto_info *b) {
  if (a->version != b->version || a->local != b->local || a->src_len != b->src_len ||
      a->dst_len != b->dst_len || memcmp(&a->src, &b->src, sizeof a->src) != 0 ||
      memcmp(&a->dst, &b->dst, sizeof a->dst) != 0)
    abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t len) {
  ra_proxy_proto_info info, again;
  int rc = ra_proxy_proto_parse(data, len, &info);
  if (rc < 0) {
    if (rc != -EPROTO && rc != -E2BIG) abort();
    return 0;
  }
  if (rc == 0) {
    /* Need more: no shorter prefix may have been an error or complete. */
    for (size_t i = 0; i < len; i++)
      if (ra_proxy_proto_parse(data, i, &again) != 0) abort();
    return 0;
  }
  size_t n = (size_t)rc;
  if (n > len || n > RA_PROXY_PROTO_MAX) abort();
  for (size_t i = 0; i < n; i++)
    if (ra_proxy_proto_parse(data, i, &again) != 0) abort();
  if (ra_proxy_proto_parse(data, n, &again) != rc) abort();
  same(&info, &again);
  char buf[160];
  ra_proxy_proto_addr_str(&info.src, buf, sizeof buf);
  ra_proxy_proto_addr_str(&info.dst, buf, sizeof buf);
  if (!info.local && info.src.ss_family != AF_UNIX) { /* (unix paths: bytes after a NUL are not re-encoded) */
    uint8_t h[RA_PROXY_PROTO_V2_MAX];
    int m = ra_proxy_proto_encode((const struct sockaddr *)&info.src, (const struct sockaddr *)&info.dst, h, sizeof h);
    if (m < 16 || ra_proxy_proto_parse(h, (size_t)m, &again) != m) abort();
    again.version = info.version;
    same(&info, &again);
  }
  return 0;
}
