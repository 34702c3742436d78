/* core/buf.h: growable byte buffers. */
#ifndef RA_CORE_BUF_H
#define RA_CORE_BUF_H

#include "raloop/core/api.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "raloop/core/str.h"

/* A growable buffer. Zero-initialised is valid and empty and holds no
 * memory: buffers of idle connections cost nothing. */
typedef struct ra_buf {
  uint8_t *data; /* NULL while cap == 0 */
  size_t len;    /* bytes in use, from data[off] */
  size_t off;    /* consumed prefix not yet compacted */
  size_t cap;
} ra_buf;

static inline uint8_t *ra_buf_ptr(const ra_buf *b) { return b->data + b->off; }
/* Ensures room for `extra` more bytes after the content. */
RA_API int ra_buf_reserve(ra_buf *b, size_t extra);
RA_API int ra_buf_append(ra_buf *b, const void *data, size_t len);
RA_API int ra_buf_append_str(ra_buf *b, const char *s);
RA_API int ra_buf_printf(ra_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Drops n bytes from the front (O(1); compacts lazily). */
RA_API void ra_buf_consume(ra_buf *b, size_t n);
RA_API void ra_buf_reset(ra_buf *b);   /* empties, keeps memory */
RA_API void ra_buf_free(ra_buf *b);    /* empties, releases memory */
/* Takes the bytes out: returns a malloc'd pointer the caller frees (NULL
 * if empty); the buffer is left empty. */
RA_API uint8_t *ra_buf_steal(ra_buf *b, size_t *len);

#endif
