/* core/file.h: reading a whole file, for configuration and evidence (PEM
 * chains, CRLs, quotes, request bodies from the command line). Blocking:
 * for start-up and tools, not for the loop's hot path. */
#ifndef RA_CORE_FILE_H
#define RA_CORE_FILE_H

#include "raloop/core/api.h"

#include <stddef.h>
#include <stdint.h>

/* Reads all of path ("-": standard input) into *out, a malloc'd buffer the
 * caller frees, NUL-terminated one past *len so that text (PEM, hex) can be
 * used as a C string. Files larger than max bytes are refused. Returns 0,
 * a negative errno from open/read, -EFBIG past max, or -ENOMEM; *out is
 * untouched on failure. */
RA_API int ra_file_read(const char *path, size_t max, uint8_t **out, size_t *len);

#endif
