/* tests/fuzz/quote_fuzz.c: the quote parser and the whole verification on
 * arbitrary bytes (seeds: the sample quotes). Checks that every view the
 * parser returns lies inside the input, and that verification gives a
 * verdict (no crash, leak or out-of-bounds read) whatever the input. Also
 * feeds the bytes to the PCK extension parser and the hex/base64 decoder. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "attest/hexb64.h"
#include "attest/pck.h"
#include "attest/quote.h"
#include "attest/verify.h"

static const uint8_t *lo, *hi;

static void in_range(const uint8_t *p, size_t n) {
  if (!p) return;
  if (p < lo || p > hi || n > (size_t)(hi - p)) abort();
}

static void check_views(const ra_quote *q) {
  in_range(q->header, RA_QUOTE_HEADER_LEN);
  in_range(q->body.p, q->body.len);
  in_range(q->signed_data.p, q->signed_data.len);
  in_range(q->sig_data.p, q->sig_data.len);
  in_range(q->signature, 64);
  in_range(q->att_key, 64);
  in_range(q->qe_report.raw, RA_SGX_REPORT_LEN);
  in_range(q->qe_report_sig, 64);
  in_range(q->qe_auth_data.p, q->qe_auth_data.len);
  in_range(q->cert_data.p, q->cert_data.len);
  if (q->body_type == RA_BODY_SGX) {
    in_range(q->enclave.report_data, 64);
  } else {
    in_range(q->td.report_data, 64);
    in_range(q->td.mr_servicetd, 48);
  }
  if (q->quote_len + q->trailing != (size_t)(hi - lo)) abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  static ra_verifier *v;
  if (!v && ra_verifier_new(0, &v)) abort();

  ra_quote q;
  lo = data;
  hi = data + size;
  if (ra_quote_parse(data, size, &q) == 0) check_views(&q);

  ra_policy pol = {.signature_only = true};
  ra_verify_opts opts = {.at = 1767225600}; /* 2026-01-01: deterministic */
  ra_verdict vd;
  int rc = ra_verify_quote(v, data, size, &opts, &pol, &vd);
  if ((rc == 0) != (vd.err == RA_VERIFY_OK)) abort();

  /* the same bytes as a caller-supplied chain for a valid quote's position */
  if (size > 0 && data[0] == '-') {
    opts.pck_chain = data;
    opts.pck_chain_len = size;
    ra_verify_quote(v, data, size, &opts, &pol, &vd);
  }

  ra_pck_info pck;
  ra_pck_parse_ext(data, size, &pck);

  uint8_t *out;
  size_t n;
  if (ra_decode_auto(data, size, &out, &n, NULL) == 0) {
    if (n > size) abort();
    free(out);
  }
  return 0;
}
