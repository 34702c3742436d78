/* tests/fuzz/collateral_fuzz.c: the collateral parsers on arbitrary bytes
 * (seeds: Phala's dcap-qvl collateral documents, TCB info and QE identity
 * bodies, PCS responses). The first byte picks the parser: the whole
 * dcap-qvl document (ra_collateral_parse_json), a TCB info body, a QE
 * identity body, or the raw-member scanner that cuts the signed body out of
 * a PCS response ({"tcbInfo":{..},"signature":".."}; on unvalidated input
 * here, which is harsher than the loader's use). Whatever parses is
 * queried; no crash, leak or out-of-bounds read whatever the input. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "raloop/attest/quote/collateral.h"
#include "raloop/attest/quote/collateral_internal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 1) return 0;
  const char *body = (const char *)data + 1;
  size_t len = size - 1;
  switch (data[0] % 4) {
  case 0: {
    ra_collateral *c = NULL;
    if (ra_collateral_parse_json(body, len, &c) == 0) {
      ra_collateral_info info;
      ra_collateral_get_info(c, &info);
    }
    ra_collateral_free(c);
    break;
  }
  case 1: {
    ra_tcb_info t;
    if (ra_tcb_info_parse(body, len, &t) == 0) ra_tcb_info_clear(&t);
    break;
  }
  case 3: {
    const char *v;
    size_t vl;
    if (ra_json_raw_member(body, len, "tcbInfo", &v, &vl) == 0 &&
        (v < body || v + vl > body + len))
      abort();
    break;
  }
  default: {
    ra_qe_identity q;
    if (ra_qe_identity_parse(body, len, &q) == 0) ra_qe_identity_clear(&q);
    break;
  }
  }
  return 0;
}
