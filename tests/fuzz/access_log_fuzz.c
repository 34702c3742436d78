/* tests/fuzz/access_log_fuzz.c: ra_access_log_json (serve/metrics.h) on any
 * request bytes (method, target, body) and buffer size: every line must be
 * one valid JSON object (jansson) ending in '\n', within the buffer, with
 * the status and tunnel flag it was given. Input: 1 byte buffer-size
 * selector, 1 byte flags, then method '\0' target '\0' body. */
#include <jansson.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "raloop/http/request.h"
#include "raloop/serve/metrics.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 2) return 0;
  size_t buflen = 512 + (size_t)data[0] * 16;
  bool tunnel = data[1] & 1;
  int worker = (data[1] & 2) ? data[1] >> 2 : -1;
  const char *p = (const char *)data + 2, *end = (const char *)data + size;
  const char *m_end = memchr(p, 0, (size_t)(end - p));
  if (!m_end) return 0;
  const char *t = m_end + 1;
  const char *t_end = t < end ? memchr(t, 0, (size_t)(end - t)) : NULL;
  if (!t_end) return 0;
  ra_req *req;
  if (ra_req_new((ra_str){.ptr = p, .len = (size_t)(m_end - p)}, (ra_str){.ptr = t, .len = (size_t)(t_end - t)}, 11,
                 tunnel, &req))
    return 0;
  ra_req_append_body(req, t_end + 1, (size_t)(end - t_end - 1));
  ra_req_set_peer(req, (ra_str){.ptr = "203.0.113.9", .len = 11});
  char *buf = malloc(buflen + 1);
  size_t n = ra_access_log_json(buf, buflen, req, 404, 1234, tunnel, worker);
  if (n == 0 || n >= buflen || buf[n - 1] != '\n' || memchr(buf, '\n', n - 1) || strlen(buf) != n) abort();
  json_error_t err;
  json_t *j = json_loadb(buf, n, 0, &err);
  if (!j || !json_is_object(j)) abort();
  if (json_integer_value(json_object_get(j, "status")) != 404) abort();
  if (json_is_true(json_object_get(j, "tunnel")) != tunnel) abort();
  if ((json_object_get(j, "worker") != NULL) != (worker >= 0)) abort();
  json_decref(j);
  free(buf);
  ra_req_free(req);
  return 0;
}
