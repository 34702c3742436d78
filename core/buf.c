/* core/buf.c: growable byte buffers. */
#include "raloop/core/buf.h"

#include <errno.h>
#include <stddef.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int ra_buf_reserve(ra_buf *b, size_t extra) {
  if (extra > SIZE_MAX - b->len) return -ENOMEM;
  size_t need = b->len + extra;
  if (need > PTRDIFF_MAX) return -ENOMEM; /* no allocator can give that */
  if (b->cap - b->off - b->len >= extra) return 0;
  if (need <= b->cap) { /* enough room once the consumed prefix is dropped */
    memmove(b->data, b->data + b->off, b->len);
    b->off = 0;
    return 0;
  }
  size_t cap = b->cap ? b->cap : 64;
  while (cap < need) {
    if (cap > SIZE_MAX / 2) { cap = need; break; }
    cap *= 2;
  }
  if (b->off) { /* compact first so realloc copies only live bytes */
    memmove(b->data, b->data + b->off, b->len);
    b->off = 0;
  }
  uint8_t *p = realloc(b->data, cap);
  if (!p) return -ENOMEM;
  b->data = p;
  b->cap = cap;
  return 0;
}

int ra_buf_append(ra_buf *b, const void *data, size_t len) {
  if (!len) return 0;
  int rc = ra_buf_reserve(b, len);
  if (rc < 0) return rc;
  memcpy(b->data + b->off + b->len, data, len);
  b->len += len;
  return 0;
}

int ra_buf_append_str(ra_buf *b, const char *s) { return ra_buf_append(b, s, s ? strlen(s) : 0); }

int ra_buf_printf(ra_buf *b, const char *fmt, ...) {
  va_list ap;
  size_t room = b->cap - b->off - b->len;
  va_start(ap, fmt);
  int n = vsnprintf(room ? (char *)b->data + b->off + b->len : NULL, room, fmt, ap);
  va_end(ap);
  if (n < 0) return -EINVAL;
  if ((size_t)n >= room) { /* +1: vsnprintf writes a NUL we do not keep */
    int rc = ra_buf_reserve(b, (size_t)n + 1);
    if (rc < 0) return rc;
    va_start(ap, fmt);
    vsnprintf((char *)b->data + b->off + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
  }
  b->len += (size_t)n;
  return 0;
}

void ra_buf_consume(ra_buf *b, size_t n) {
  if (n >= b->len) {
    b->off = b->len = 0;
    return;
  }
  b->off += n;
  b->len -= n;
}

void ra_buf_reset(ra_buf *b) { b->off = b->len = 0; }

void ra_buf_free(ra_buf *b) {
  free(b->data);
  b->data = NULL;
  b->off = b->len = b->cap = 0;
}

uint8_t *ra_buf_steal(ra_buf *b, size_t *len) {
  uint8_t *p = NULL;
  size_t n = b->len;
  if (n) {
    if (b->off) memmove(b->data, b->data + b->off, n);
    p = b->data;
    b->data = NULL;
  }
  ra_buf_free(b);
  if (len) *len = n;
  return p;
}
