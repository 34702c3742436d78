/* store/sealed_internal.h: the record format without the files, for the
 * store itself, its tests and the fuzzer. */
#ifndef RA_STORE_SEALED_INTERNAL_H
#define RA_STORE_SEALED_INTERNAL_H

#include "raloop/store/sealed.h"

#define RA_SEALED__KEYID_LEN 16

/* The key id written in every record: BLAKE2b-128 of a constant, keyed
 * with key. 0 or -EIO. */
int ra_sealed__key_id(const uint8_t key[RA_SEALED_KEY_BYTES], uint8_t id[RA_SEALED__KEYID_LEN]);

/* The sealed file of record name (valid, checked by the caller) with
 * content data: *out malloc'd, *outlen bytes. 0, -EFBIG, -EINVAL, -ENOMEM. */
int ra_sealed__seal(const uint8_t key[RA_SEALED_KEY_BYTES], const uint8_t key_id[RA_SEALED__KEYID_LEN],
                    const char *name, const void *data, size_t len, uint8_t **out, size_t *outlen);

/* Opens the flen bytes at file (borrowed) as record name: as
 * ra_sealed_get without the read (0, -EBADMSG, -EKEYREJECTED, -ENOMEM). */
int ra_sealed__unseal(const uint8_t key[RA_SEALED_KEY_BYTES], const uint8_t key_id[RA_SEALED__KEYID_LEN],
                      const char *name, const uint8_t *file, size_t flen, uint8_t **out, size_t *len);

#endif
