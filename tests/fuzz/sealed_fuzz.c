/* tests/fuzz/sealed_fuzz.c: what a host that owns the disk can make the
 * sealed store (store/sealed.c) read. Byte 0 picks the record name the
 * file is opened as, the rest is the file. The key is fixed, so the seeds
 * (valid records under it) reach the decryption. A file that opens must
 * give exactly its length minus the overhead, and sealing that content
 * again must open to the same bytes. */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "raloop/store/sealed.h"
#include "raloop/store/sealed_internal.h"

static const char *const names[] = {"private-data", "a", "secrets.v1"};
static uint8_t key[RA_SEALED_KEY_BYTES];
static uint8_t key_id[RA_SEALED__KEYID_LEN];

int LLVMFuzzerTestOneInput(const uint8_t *d, size_t n) {
  if (n < 1) return 0;
  if (!key[0]) {
    memset(key, 0x42, sizeof key); /* the seeds' key */
    if (ra_sealed__key_id(key, key_id)) abort();
  }
  const char *name = names[d[0] % 3];
  uint8_t *pt = NULL;
  size_t len = 0;
  int rc = ra_sealed__unseal(key, key_id, name, d + 1, n - 1, &pt, &len);
  if (rc == 0) {
    if (len + RA_SEALED_OVERHEAD != n - 1 || pt[len] != 0) abort();
    uint8_t *f = NULL, *back = NULL;
    size_t flen = 0, blen = 0;
    if (ra_sealed__seal(key, key_id, name, pt, len, &f, &flen)) abort();
    if (ra_sealed__unseal(key, key_id, name, f, flen, &back, &blen) || blen != len || memcmp(back, pt, len))
      abort();
    /* under any other name it is refused */
    if (ra_sealed__unseal(key, key_id, names[(d[0] + 1) % 3], f, flen, &back, &blen) == 0) abort();
    ra_sealed_data_free(back, blen);
    free(f);
    ra_sealed_data_free(pt, len);
  } else if (rc != -EBADMSG && rc != -EKEYREJECTED) {
    abort();
  }
  return 0;
}
