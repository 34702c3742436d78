/* store/sealed.c: see sealed.h. */
#include "raloop/store/sealed.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sodium.h>

#include "raloop/core/file.h"
#include "raloop/core/log.h"
#include "raloop/store/sealed_internal.h"

#define MAGIC "RASEALED"
#define MAGIC_LEN 8
#define VERSION 1
#define ALG_XCHACHA20POLY1305 1
#define KEYID_LEN 16
#define NONCE_LEN crypto_aead_xchacha20poly1305_ietf_NPUBBYTES
#define MAC_LEN crypto_aead_xchacha20poly1305_ietf_ABYTES
/* magic(8) version(1) alg(1) reserved(2) key_id(16): authenticated as the
 * associated data, with the record name after it */
#define AD_HEAD_LEN (MAGIC_LEN + 4 + KEYID_LEN)
#define HEADER_LEN (AD_HEAD_LEN + NONCE_LEN)
#define SUFFIX ".sealed"
#define KEYFILE_MAX 4096

_Static_assert(KEYID_LEN == RA_SEALED__KEYID_LEN, "key id");
_Static_assert(HEADER_LEN + MAC_LEN == RA_SEALED_OVERHEAD, "RA_SEALED_OVERHEAD");
_Static_assert(crypto_aead_xchacha20poly1305_ietf_KEYBYTES == RA_SEALED_KEY_BYTES, "key size");

struct ra_sealed {
  char *dir;
  int lock_fd;
  uint8_t *key;            /* sodium_malloc'd: guarded, kept out of swap where allowed */
  uint8_t key_id[KEYID_LEN];
};

static const char KEYID_MSG[] = "raloop sealed-store key id v1";

int ra_sealed__key_id(const uint8_t key[RA_SEALED_KEY_BYTES], uint8_t id[RA_SEALED__KEYID_LEN]) {
  if (sodium_init() < 0) return -EIO;
  return crypto_generichash(id, KEYID_LEN, (const uint8_t *)KEYID_MSG, sizeof KEYID_MSG - 1, key,
                            RA_SEALED_KEY_BYTES)
             ? -EIO
             : 0;
}

static bool name_ok(const char *name) {
  size_t n = name ? strlen(name) : 0;
  if (n == 0 || n > RA_SEALED_MAX_NAME || name[0] == '.') return false;
  for (size_t i = 0; i < n; i++) {
    char c = name[i];
    if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
          c == '_' || c == '-'))
      return false;
  }
  return true;
}

int ra_sealed_path(const ra_sealed *st, const char *name, char *buf, size_t cap) {
  if (!st || !name_ok(name)) return -EINVAL;
  int n = snprintf(buf, cap, "%s/%s" SUFFIX, st->dir, name);
  return n < 0 || (size_t)n >= cap ? -ENAMETOOLONG : 0;
}

/* ---- keys ------------------------------------------------------------------- */

int ra_sealed_key_parse(const char *text, size_t len, uint8_t key[RA_SEALED_KEY_BYTES]) {
  if (!text) return -EINVAL;
  while (len && (text[0] == ' ' || text[0] == '\t' || text[0] == '\r' || text[0] == '\n')) {
    text++;
    len--;
  }
  while (len && (text[len - 1] == ' ' || text[len - 1] == '\t' || text[len - 1] == '\r' ||
                 text[len - 1] == '\n'))
    len--;
  uint8_t tmp[RA_SEALED_KEY_BYTES];
  size_t got = 0;
  const char *end = NULL;
  /* more than 32 bytes fails (bin_maxlen); end tells whether all was read */
  int rc = sodium_base642bin(tmp, sizeof tmp, text, len, NULL, &got, &end, sodium_base64_VARIANT_ORIGINAL);
  if (rc || got != sizeof tmp || end != text + len) {
    sodium_memzero(tmp, sizeof tmp);
    return -EINVAL;
  }
  memcpy(key, tmp, sizeof tmp);
  sodium_memzero(tmp, sizeof tmp);
  return 0;
}

int ra_sealed_key_read(const char *path, uint8_t key[RA_SEALED_KEY_BYTES]) {
  uint8_t *buf = NULL;
  size_t len = 0;
  int rc = ra_file_read(path, KEYFILE_MAX, &buf, &len);
  if (rc) return rc == -EFBIG ? -EINVAL : rc;
  if (len == RA_SEALED_KEY_BYTES) {
    /* 32 bytes are raw (`head -c 32 /dev/urandom`): base64 of a 32-byte
     * key is 44 characters */
    memcpy(key, buf, len);
  } else {
    rc = ra_sealed_key_parse((const char *)buf, len, key);
  }
  sodium_memzero(buf, len);
  free(buf);
  return rc;
}

/* ---- open / free ------------------------------------------------------------ */

/* Removes what crashed writers left: ".<name>.sealed.tmp-XXXXXX" (the
 * names ra_file_write_atomic gives its temporaries). Only files of ours;
 * nothing else of the directory is touched. */
static void remove_leftovers(const char *dir) {
  DIR *d = opendir(dir);
  if (!d) return;
  struct dirent *e;
  while ((e = readdir(d))) {
    const char *n = e->d_name;
    if (n[0] != '.' || !strstr(n, SUFFIX ".tmp-")) continue;
    if (unlinkat(dirfd(d), n, 0) == 0) ra_info("sealed store: removed %s/%s, left by an interrupted write", dir, n);
  }
  closedir(d);
}

int ra_sealed_open(const char *dir, const uint8_t key[RA_SEALED_KEY_BYTES], ra_sealed **out) {
  *out = NULL;
  if (!dir || !*dir || !key) return -EINVAL;
  if (sodium_init() < 0) return -EIO;
  if (mkdir(dir, 0700) && errno != EEXIST) return -errno;
  ra_sealed *st = calloc(1, sizeof *st);
  if (!st) return -ENOMEM;
  st->lock_fd = -1;
  int rc = 0;
  st->dir = strdup(dir);
  st->key = sodium_malloc(RA_SEALED_KEY_BYTES);
  if (!st->dir || !st->key) rc = -ENOMEM;
  char lock[4096];
  if (!rc) {
    int n = snprintf(lock, sizeof lock, "%s/.lock", dir);
    if (n < 0 || (size_t)n >= sizeof lock) rc = -ENAMETOOLONG;
  }
  if (!rc) {
    st->lock_fd = open(lock, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (st->lock_fd < 0) rc = -errno;
  }
  if (!rc && flock(st->lock_fd, LOCK_EX | LOCK_NB)) rc = errno == EWOULDBLOCK ? -EBUSY : -errno;
  if (!rc) {
    memcpy(st->key, key, RA_SEALED_KEY_BYTES);
    rc = ra_sealed__key_id(st->key, st->key_id);
  }
  if (rc) {
    ra_sealed_free(st);
    return rc;
  }
  remove_leftovers(dir);
  *out = st;
  return 0;
}

int ra_sealed_open_env(const char *dir, const char *key_file, ra_sealed **out) {
  *out = NULL;
  uint8_t key[RA_SEALED_KEY_BYTES];
  int rc;
  if (key_file) {
    rc = ra_sealed_key_read(key_file, key);
  } else {
    const char *b64 = getenv("ENCLAVE_KEY_BASE64");
    rc = b64 && *b64 ? ra_sealed_key_parse(b64, strlen(b64), key) : -ENOKEY;
  }
  if (!rc) rc = ra_sealed_open(dir, key, out);
  sodium_memzero(key, sizeof key);
  return rc;
}

void ra_sealed_free(ra_sealed *st) {
  if (!st) return;
  if (st->key) {
    sodium_memzero(st->key, RA_SEALED_KEY_BYTES);
    sodium_free(st->key); /* wipes again, and unlocks */
  }
  sodium_memzero(st->key_id, sizeof st->key_id);
  if (st->lock_fd >= 0) close(st->lock_fd); /* releases the flock */
  free(st->dir);
  free(st);
}

void ra_sealed_data_free(uint8_t *data, size_t len) {
  if (!data) return;
  sodium_memzero(data, len);
  free(data);
}

/* ---- records ---------------------------------------------------------------- */

/* The associated data: the header before the nonce, then the name. */
static int make_ad(const uint8_t *head, const char *name, uint8_t *ad, size_t cap, size_t *adlen) {
  size_t nl = strlen(name);
  if (AD_HEAD_LEN + nl > cap) return -EINVAL;
  memcpy(ad, head, AD_HEAD_LEN);
  memcpy(ad + AD_HEAD_LEN, name, nl);
  *adlen = AD_HEAD_LEN + nl;
  return 0;
}

int ra_sealed__seal(const uint8_t key[RA_SEALED_KEY_BYTES], const uint8_t key_id[RA_SEALED__KEYID_LEN],
                    const char *name, const void *data, size_t len, uint8_t **out, size_t *outlen) {
  if (len > RA_SEALED_MAX_RECORD) return -EFBIG;
  if (!data && len) return -EINVAL;
  size_t total = HEADER_LEN + len + MAC_LEN;
  uint8_t *buf = malloc(total);
  if (!buf) return -ENOMEM;
  memcpy(buf, MAGIC, MAGIC_LEN);
  buf[8] = VERSION;
  buf[9] = ALG_XCHACHA20POLY1305;
  buf[10] = buf[11] = 0;
  memcpy(buf + 12, key_id, KEYID_LEN);
  /* 192-bit random nonces: no counter to keep across restarts, and no
   * realistic chance of a repeat under one key */
  randombytes_buf(buf + AD_HEAD_LEN, NONCE_LEN);
  uint8_t ad[AD_HEAD_LEN + RA_SEALED_MAX_NAME];
  size_t adlen = 0;
  int rc = make_ad(buf, name, ad, sizeof ad, &adlen);
  unsigned long long clen = 0;
  if (!rc && crypto_aead_xchacha20poly1305_ietf_encrypt(buf + HEADER_LEN, &clen, data, len, ad, adlen, NULL,
                                                        buf + AD_HEAD_LEN, key))
    rc = -EIO;
  if (rc) {
    free(buf);
    return rc;
  }
  *out = buf;
  *outlen = HEADER_LEN + (size_t)clen;
  return 0;
}

int ra_sealed__unseal(const uint8_t key[RA_SEALED_KEY_BYTES], const uint8_t key_id[RA_SEALED__KEYID_LEN],
                      const char *name, const uint8_t *file, size_t flen, uint8_t **out, size_t *len) {
  if (flen < HEADER_LEN + MAC_LEN || memcmp(file, MAGIC, MAGIC_LEN) || file[8] != VERSION ||
      file[9] != ALG_XCHACHA20POLY1305 || file[10] || file[11])
    return -EBADMSG;
  if (sodium_memcmp(file + 12, key_id, KEYID_LEN)) return -EKEYREJECTED;
  size_t clen = flen - HEADER_LEN;
  uint8_t *pt = malloc(clen - MAC_LEN + 1);
  if (!pt) return -ENOMEM;
  uint8_t ad[AD_HEAD_LEN + RA_SEALED_MAX_NAME];
  size_t adlen = 0;
  unsigned long long plen = 0;
  int rc = make_ad(file, name, ad, sizeof ad, &adlen);
  if (!rc && crypto_aead_xchacha20poly1305_ietf_decrypt(pt, &plen, NULL, file + HEADER_LEN, clen, ad, adlen,
                                                        file + AD_HEAD_LEN, key))
    rc = -EBADMSG;
  if (rc) {
    /* a failed decryption writes nothing, but wipe what may be there */
    ra_sealed_data_free(pt, clen - MAC_LEN);
    return rc;
  }
  pt[plen] = 0;
  *out = pt;
  *len = (size_t)plen;
  return 0;
}

int ra_sealed_put(ra_sealed *st, const char *name, const void *data, size_t len) {
  char path[4096];
  int rc = ra_sealed_path(st, name, path, sizeof path);
  if (rc) return rc;
  uint8_t *buf = NULL;
  size_t blen = 0;
  rc = ra_sealed__seal(st->key, st->key_id, name, data, len, &buf, &blen);
  if (rc) return rc;
  rc = ra_file_write_atomic(path, buf, blen, 0600);
  free(buf); /* ciphertext only: nothing to wipe */
  return rc;
}

int ra_sealed_get(ra_sealed *st, const char *name, size_t max, uint8_t **out, size_t *len) {
  char path[4096];
  int rc = ra_sealed_path(st, name, path, sizeof path);
  if (rc) return rc;
  if (max > RA_SEALED_MAX_RECORD) max = RA_SEALED_MAX_RECORD;
  uint8_t *file = NULL;
  size_t flen = 0;
  rc = ra_file_read(path, max + RA_SEALED_OVERHEAD, &file, &flen);
  if (rc) return rc;
  rc = ra_sealed__unseal(st->key, st->key_id, name, file, flen, out, len);
  free(file);
  return rc;
}

int ra_sealed_delete(ra_sealed *st, const char *name) {
  char path[4096];
  int rc = ra_sealed_path(st, name, path, sizeof path);
  if (rc) return rc;
  if (unlink(path)) return -errno;
  /* the removal is durable once the directory is */
  int dfd = open(st->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd < 0) return -errno;
  rc = fsync(dfd) ? -errno : 0;
  close(dfd);
  return rc;
}
