/* core/file.h: reading a whole file, for configuration and evidence (PEM
 * chains, CRLs, quotes, request bodies from the command line), and
 * replacing one durably and atomically (caches, keys, sealed records).
 * Blocking: for start-up, tools and small records, not for the loop's hot
 * path. */
#ifndef RA_CORE_FILE_H
#define RA_CORE_FILE_H

#include "raloop/core/api.h"

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* Reads all of path ("-": standard input) into *out, a malloc'd buffer the
 * caller frees, NUL-terminated one past *len so that text (PEM, hex) can be
 * used as a C string. Files larger than max bytes are refused. Returns 0,
 * a negative errno from open/read, -EFBIG past max, or -ENOMEM; *out is
 * untouched on failure. */
RA_API int ra_file_read(const char *path, size_t max, uint8_t **out, size_t *len);

/* Replaces path with the len bytes at data (borrowed for the call), with
 * permissions mode (not masked by the umask), so that after a crash at any
 * point path holds either its old content or all of the new one, and once
 * this returns 0 the new content survives a power loss: a temporary file
 * in path's directory, named ".<basename>.tmp-XXXXXX" (a leftover of a
 * crash is recognisable by that name and never read by anyone who opens
 * path), is written, fsync'd, renamed over path, and the directory is
 * fsync'd. Returns 0, or a negative errno (-ENAMETOOLONG, open/write/
 * fsync/rename's); on every failure the temporary file is removed and
 * path is unchanged, except when only the final directory fsync failed
 * (-EIO and the like): the rename has happened but may not be durable. */
RA_API int ra_file_write_atomic(const char *path, const void *data, size_t len, mode_t mode);

#endif
