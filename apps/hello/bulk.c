/* apps/hello/bulk.c: PUT|POST /upload and GET /bytes (bulk.h). */
#include "apps/hello/bulk.h"
#include "apps/hello/query.h"

#include <errno.h>
#include <inttypes.h>
#include <openssl/evp.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>

#include "raloop/http/request.h"
#include "raloop/http/response.h"

/* ---- /upload: count and hash the body as it arrives ------------------------ */

/* SHA-256 from OpenSSL, not libsodium: OpenSSL uses the CPU's SHA
 * instructions (~1.6 GB/s here against ~0.2 GB/s), so the hash does not
 * set the pace of a streamed upload. */
typedef struct upload {
  EVP_MD_CTX *sha;
  uint64_t bytes;
  ra_res *res;
} upload;

static void upload_body(ra_req *req, const uint8_t *data, size_t len, bool last, void *ud) {
  (void)req;
  upload *u = ud;
  if (len) EVP_DigestUpdate(u->sha, data, len);
  u->bytes += len;
  if (!last) return;
  uint8_t md[32];
  char hex[2 * sizeof md + 1], json[160];
  unsigned mdlen = 0;
  EVP_DigestFinal_ex(u->sha, md, &mdlen);
  EVP_MD_CTX_free(u->sha);
  sodium_bin2hex(hex, sizeof hex, md, sizeof md);
  int n = snprintf(json, sizeof json, "{\"bytes\":%" PRIu64 ",\"sha256\":\"%s\"}\n", u->bytes, hex);
  ra_res *res = u->res;
  free(u);
  ra_res_send(res, 200, "application/json", json, (size_t)n);
}

static void upload_cancel(ra_res *res, void *ud) {
  upload *u = ud;
  EVP_MD_CTX_free(u->sha);
  free(u); /* the body callback is not called again (request.h) */
  ra_res_end(res);
}

static void h_upload(ra_req *req, ra_res *res, void *ud) {
  (void)ud;
  upload *u = malloc(sizeof *u);
  if (u && !(u->sha = EVP_MD_CTX_new())) {
    free(u);
    u = NULL;
  }
  if (!u || !EVP_DigestInit_ex(u->sha, EVP_sha256(), NULL)) {
    if (u) EVP_MD_CTX_free(u->sha);
    free(u);
    ra_res_send_text(res, 503, "out of memory\n");
    return;
  }
  u->bytes = 0;
  u->res = res;
  ra_res_on_cancel(res, upload_cancel, u);
  ra_req_on_body(req, upload_body, u);
}

/* ---- /bytes: N bytes, paced by the client --------------------------------- */

#define BYTES_MAX ((uint64_t)1 << 40)
#define BYTES_WINDOW ((size_t)256 * 1024)
#define BYTES_PATTERN 251            /* byte i is i % 251 */
#define BYTES_BLOCK (251 * 256)      /* a whole number of periods, 62.75 KiB */

static uint8_t pattern[BYTES_BLOCK]; /* filled once */

typedef struct bytes_out {
  uint64_t sent, n;
} bytes_out;

static void bytes_more(ra_res *res, void *ud) {
  bytes_out *b = ud;
  while (b->sent < b->n && ra_res_pending(res) < BYTES_WINDOW) {
    /* every block starts at a multiple of 251, so the pattern lines up */
    uint64_t left = b->n - b->sent;
    size_t len = left < BYTES_BLOCK ? (size_t)left : BYTES_BLOCK;
    if (ra_res_write(res, pattern, len) < 0) break;
    b->sent += len;
  }
  if (b->sent >= b->n) {
    ra_res_end(res);
    free(b);
  }
  /* else: on_drain calls again once the client has read some */
}

static void bytes_cancel(ra_res *res, void *ud) {
  ra_res_end(res);
  free(ud);
}

static void h_bytes(ra_req *req, ra_res *res, void *ud) {
  (void)ud;
  uint64_t n;
  if (!hello_query_num(req, "n", BYTES_MAX, &n)) {
    ra_res_send_text(res, 400, "n must be 0..1099511627776\n");
    return;
  }
  bytes_out *b = malloc(sizeof *b);
  if (!b) {
    ra_res_send_text(res, 503, "out of memory\n");
    return;
  }
  b->sent = 0;
  b->n = n;
  ra_res_set_status(res, 200);
  ra_res_add_header(res, "Content-Type", "application/octet-stream");
  ra_res_set_content_length(res, n);
  ra_res_on_cancel(res, bytes_cancel, b);
  ra_res_on_drain(res, bytes_more, b);
  bytes_more(res, b);
}

int hello_bulk_routes(ra_router *r) {
  for (size_t i = 0; i < BYTES_BLOCK; i++) pattern[i] = (uint8_t)(i % BYTES_PATTERN);
  int rc;
  if ((rc = ra_route_ex(r, "PUT", "/upload", h_upload, NULL, RA_ROUTE_STREAM_BODY))) return rc;
  if ((rc = ra_route_ex(r, "POST", "/upload", h_upload, NULL, RA_ROUTE_STREAM_BODY))) return rc;
  return ra_route(r, "GET", "/bytes", h_bytes, NULL);
}
