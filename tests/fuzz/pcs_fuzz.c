/* tests/fuzz/pcs_fuzz.c: what a PCS/PCCS server (or a cache file) can make
 * attest/pcs and http/client parse: byte 0 picks the parser, the rest is its
 * input. 0: an HTTP response fed whole and then in 7-byte pieces, with
 * EOF (success and the body must not depend on the split); 1: a TCB info answer
 * split into body and signature; 2: an issuer chain header; 3: a CRL in
 * any form; 4: a collateral document (its nextUpdate); 5: a JSON string
 * unescaped, escaped again and unescaped back (must round-trip). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "raloop/attest/pcs/pcs.h"
#include "raloop/attest/pcs/pcs_internal.h"
#include "raloop/core/buf.h"
#include "raloop/core/log.h"
#include "raloop/http/client_internal.h"

static int parse_http(const uint8_t *d, size_t n, size_t step, size_t *body_len) {
  ra_http_resp_parser *rp = ra_http_resp_parser_new(4096, 65536);
  if (!rp) abort();
  int rc = 0;
  for (size_t off = 0; off < n && rc == 0; off += step)
    rc = ra_http_resp_parser_feed(rp, d + off, off + step > n ? n - off : step);
  if (rc == 0) rc = ra_http_resp_parser_eof(rp);
  *body_len = 0;
  if (rc == 1) {
    ra_http_response r;
    ra_http_resp_parser_result(rp, &r);
    *body_len = r.body.len;
    (void)ra_http_response_header(&r, "SGX-PCK-CRL-Issuer-Chain");
  }
  ra_http_resp_parser_free(rp);
  return rc;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  static int once;
  if (!once) {
    ra_log_set_level(RA_LOG_OFF);
    once = 1;
  }
  if (size < 1) return 0;
  const uint8_t *d = data + 1;
  size_t n = size - 1;
  ra_str s = ra_bytes_make(d, n);
  ra_buf b = {0};
  int64_t t;
  switch (data[0] % 6) {
  case 0: {
    size_t l1, l2;
    int a = parse_http(d, n, n ? n : 1, &l1), c = parse_http(d, n, 7, &l2);
    /* which error comes first may depend on the split (llhttp hands over a
     * header span at the end of each read, so a cap can trip before a bad
     * byte further on), not whether it fails or what it delivers */
    if ((a == 1) != (c == 1) || l1 != l2) abort();
    break;
  }
  case 1: {
    ra_str body, sig;
    if (ra_pcs_split_signed(s, "tcbInfo", &body, &sig) == 0) {
      if (body.ptr < s.ptr || body.ptr + body.len > s.ptr + s.len || sig.len != 128) abort();
    }
    break;
  }
  case 2:
    (void)ra_pcs_decode_chain(s, &b);
    break;
  case 3:
    if (ra_pcs_crl_to_hex(s, &b, &t) == 0 && b.len % 2) abort();
    break;
  case 4:
    (void)ra_pcs_doc_next_update(s, &t);
    break;
  default: {
    ra_buf e = {0}, back = {0};
    if (ra_pcs_json_unescape(s, &b) == 0) {
      ra_str u = ra_str_make(b.len ? (const char *)ra_buf_ptr(&b) : "", b.len);
      if (ra_pcs_json_escape(&e, u)) abort();
      ra_str es = ra_str_make((const char *)ra_buf_ptr(&e), e.len);
      if (ra_pcs_json_unescape(es, &back)) abort();
      if (back.len != b.len || (b.len && memcmp(ra_buf_ptr(&back), ra_buf_ptr(&b), b.len))) abort();
    }
    ra_buf_free(&e);
    ra_buf_free(&back);
  }
  }
  ra_buf_free(&b);
  return 0;
}
