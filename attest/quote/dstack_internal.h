/* attest/dstack_internal.h: the framing of the dstack agent's HTTP/1.x
 * answers, a pure function (no socket) so that it can be fuzzed
 * (tests/fuzz/dstack_fuzz.c). Not installed, not exported. */
#ifndef RA_ATTEST_DSTACK_INTERNAL_H
#define RA_ATTEST_DSTACK_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>

#include "raloop/attest/quote/dstack.h"

#define DSTACK_HTTP_MAX      RA_DSTACK_MAX_RESPONSE
#define DSTACK_HTTP_MAX_HEAD 16384

/* Looks at the answer received so far, buf[0..len) (buf[len] must be
 * readable and NUL: the caller keeps one spare byte), eof when the peer
 * closed. Returns 1 when complete: *status (100..599), *body and *body_len
 * (a view into buf; a chunked body is decoded in place first); 0 when
 * more is needed; -EPROTO (not HTTP/1.x, a bad status line or a status outside 100..599, a duplicate or
 * malformed Content-Length, a transfer coding other than chunked, both
 * chunked and a length, a bad chunk, or cut short at eof), -EMSGSIZE (a
 * length over DSTACK_HTTP_MAX). */
int dstack_http_answer(char *buf, size_t len, bool eof, int *status, char **body,
                       size_t *body_len);

#endif
