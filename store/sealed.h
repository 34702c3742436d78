/* store/sealed.h: named records encrypted at rest, for secrets a service
 * keeps on a disk it does not trust (the host's).
 *
 *   ra_sealed *st;
 *   if (ra_sealed_open_env(dir, NULL, &st)) ...       // key from ENCLAVE_KEY_BASE64
 *   ra_sealed_put(st, "private-data", body, len);       // durable once it returns 0
 *   rc = ra_sealed_get(st, "private-data", max, &p, &n); // -ENOENT, -EBADMSG, ...
 *   ra_sealed_data_free(p, n);
 *   ra_sealed_free(st);                                 // the key is wiped
 *
 * Each record is one file, DIR/<name>.sealed: a header (magic "RASEALED",
 * format version 1, algorithm 1 = XChaCha20-Poly1305-IETF, a 16-byte key id,
 * a fresh random 24-byte nonce) and the AEAD ciphertext of the content. The
 * associated data is the header before the nonce and the record's name, so
 * a record cannot be passed off as another one (a renamed or copied file
 * fails to open), nor its header changed. The key id is a keyed BLAKE2b of
 * a constant under the key: it tells "sealed under another key" from
 * "tampered" without revealing anything about the key.
 *
 * Writes go through ra_file_write_atomic (temp file, fsync, rename, fsync of
 * the directory): after a crash a record is its old version or its new one,
 * never a torn one. What this does not give: protection against rollback (a
 * host that keeps an older, genuine file of the same record and puts it
 * back gets it accepted; that needs a monotonic counter the TEE keeps), nor
 * hiding a record's name, size and time of writing.
 *
 * One process per directory: the store holds an exclusive flock on
 * DIR/.lock while open, and removes leftover temp files of crashed writes
 * (".*.sealed.tmp-*") when it opens. Blocking file I/O (records are small;
 * a put costs two fsyncs), not for large data. */
#ifndef RA_STORE_SEALED_H
#define RA_STORE_SEALED_H

#include "raloop/core/api.h"

#include <stddef.h>
#include <stdint.h>

#define RA_SEALED_KEY_BYTES 32
/* The largest record: 64 MiB. */
#define RA_SEALED_MAX_RECORD ((size_t)64 << 20)
/* Record names: 1..128 of [A-Za-z0-9._-], not starting with '.'. */
#define RA_SEALED_MAX_NAME 128
/* Bytes a sealed file adds to its content: header + MAC. */
#define RA_SEALED_OVERHEAD (52 + 16)

typedef struct ra_sealed ra_sealed;

/* Decodes a key given as text: standard base64 (as `openssl rand -base64
 * 32` prints it; surrounding whitespace ignored) of exactly 32 bytes.
 * text is borrowed for the call; key receives the bytes. Returns 0, or
 * -EINVAL (not base64, or not 32 bytes: nothing of the text is logged). */
RA_API int ra_sealed_key_parse(const char *text, size_t len, uint8_t key[RA_SEALED_KEY_BYTES]);

/* Reads a key file: base64 text as above, or exactly 32 raw bytes. Returns
 * 0, the read's negative errno (-ENOENT, -EACCES, ...), or -EINVAL. The
 * file's bytes are wiped from memory once decoded. */
RA_API int ra_sealed_key_read(const char *path, uint8_t key[RA_SEALED_KEY_BYTES]);

/* Opens the store in dir (borrowed for the call; created with mode 0700 if
 * missing, not its parents) with key (copied; the caller should wipe its
 * own copy). Returns 0 and *out, or a negative code with *out NULL:
 * -EBUSY when another process has the directory open, the errno of
 * mkdir/open otherwise, -ENOMEM, or libsodium's failure (-EIO). */
RA_API int ra_sealed_open(const char *dir, const uint8_t key[RA_SEALED_KEY_BYTES], ra_sealed **out);

/* ra_sealed_open with the key from key_file (borrowed) if not NULL, else
 * from the environment variable ENCLAVE_KEY_BASE64. -ENOKEY when neither is
 * given, -EINVAL when the key is malformed, the key file's read error. */
RA_API int ra_sealed_open_env(const char *dir, const char *key_file, ra_sealed **out);

/* Seals len bytes at data (borrowed for the call) as record name (borrowed),
 * replacing any earlier version, durably (two fsyncs: on a real disk,
 * milliseconds; a server calls it as an ra_work job, core/work.h, as
 * ra-enclave does, one put at a time so that the last request wins; gets
 * on the loop meanwhile see the old or the new version, whole).
 * Returns 0, -EINVAL (bad name),
 * -EFBIG (past RA_SEALED_MAX_RECORD), -ENOMEM, or the write's errno; on
 * failure the record keeps its previous version. */
RA_API int ra_sealed_put(ra_sealed *st, const char *name, const void *data, size_t len);

/* Opens record name. Returns 0 with *out (a malloc'd buffer of *len bytes,
 * NUL-terminated one past the end; free it with ra_sealed_data_free, which
 * wipes it) or, with *out untouched:
 *   -ENOENT        no such record;
 *   -EKEYREJECTED  sealed under another key (the key id differs);
 *   -EBADMSG       tampered or corrupt: bad magic, unknown version or
 *                  algorithm, truncated, or the authentication failed (a
 *                  changed byte, another record's file under this name);
 *   -EFBIG         the plaintext would be larger than max;
 *   -EINVAL        bad name; another negative errno for I/O errors. */
RA_API int ra_sealed_get(ra_sealed *st, const char *name, size_t max, uint8_t **out, size_t *len);

/* Removes record name. Returns 0, -ENOENT, -EINVAL or unlink's errno. */
RA_API int ra_sealed_delete(ra_sealed *st, const char *name);

/* The path of record name's file into buf (for logs and tests). Returns 0
 * or -EINVAL / -ENAMETOOLONG. */
RA_API int ra_sealed_path(const ra_sealed *st, const char *name, char *buf, size_t cap);

/* Wipes and frees what ra_sealed_get returned. NULL is a no-op. */
RA_API void ra_sealed_data_free(uint8_t *data, size_t len);

/* Wipes the key, releases the lock, frees. NULL is a no-op. */
RA_API void ra_sealed_free(ra_sealed *st);

#endif
