/* tests/fuzz/dstack_http_fuzz.c: the framing of the dstack agent's HTTP/1.x
 * answers (attest/quote/dstack_internal.h), as the client meets them: the
 * answer grows byte by byte up to a split point (each prefix must be
 * "more" or a verdict), then the whole with the peer's close. A complete
 * answer's body must lie inside the buffer. */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "attest/quote/dstack_internal.h"

static void check(char *buf, size_t len, bool eof) {
  int status;
  char *body;
  size_t blen;
  int r = dstack_http_answer(buf, len, eof, &status, &body, &blen);
  if (r == 1) {
    if (status < 100 || status > 599 || body < buf || body + blen > buf + len) __builtin_trap();
  } else if (r != 0 && r != -EPROTO && r != -EMSGSIZE) {
    __builtin_trap();
  } else if (r == 0 && eof) {
    __builtin_trap(); /* at close there is always a verdict */
  }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 1) return 0;
  size_t split = data[0] % 64;
  data++;
  size--;
  char *buf = malloc(size + 1);
  if (!buf) return 0;
  for (size_t n = split < size ? size - split : 0; n < size; n++) {
    memcpy(buf, data, n);
    buf[n] = 0;
    check(buf, n, false);
  }
  memcpy(buf, data, size);
  buf[size] = 0;
  check(buf, size, true);
  free(buf);
  return 0;
}
