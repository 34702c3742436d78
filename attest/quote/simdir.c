/* attest/quote/simdir.c: the simulated TEEs' directory and certificate
 * helpers (simdir_internal.h). */
#include "simdir_internal.h"

#include "raloop/core/file.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/bio.h>
#include <openssl/buffer.h>
#include <openssl/crypto.h>
#include <openssl/objects.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>

char *ra_simdir_join(const char *dir, const char *name) {
  size_t a = strlen(dir), b = strlen(name);
  char *p = malloc(a + b + 2);
  if (!p) return NULL;
  memcpy(p, dir, a);
  p[a] = '/';
  memcpy(p + a + 1, name, b + 1);
  return p;
}

int ra_simdir_mkdir_p(const char *dir) {
  size_t n = strlen(dir);
  if (n == 0) return -EINVAL;
  if (n >= 4096) return -ENAMETOOLONG;
  char tmp[4096];
  memcpy(tmp, dir, n + 1);
  while (n > 1 && tmp[n - 1] == '/') tmp[--n] = '\0';
  for (char *p = tmp + 1; *p; p++) {
    if (*p != '/') continue;
    *p = '\0';
    if (mkdir(tmp, 0700) != 0 && errno != EEXIST) return -errno;
    *p = '/';
  }
  if (mkdir(tmp, 0700) != 0 && errno != EEXIST) return -errno;
  struct stat st;
  if (stat(tmp, &st) != 0) return -errno;
  return S_ISDIR(st.st_mode) ? 0 : -ENOTDIR;
}

/* Writes data to a fresh temporary file beside path, fsync'd; returns its
 * name in tmp (caller's buffer). */
static int write_temp(const char *path, const void *data, size_t len, mode_t mode, char *tmp,
                      size_t tmpsz) {
  if ((size_t)snprintf(tmp, tmpsz, "%s.tmp-XXXXXX", path) >= tmpsz) return -ENAMETOOLONG;
  int fd = mkstemp(tmp);
  if (fd < 0) return -errno;
  int rc = fchmod(fd, mode) != 0 ? -errno : 0;
  const uint8_t *p = data;
  while (!rc && len) {
    ssize_t w = write(fd, p, len);
    if (w < 0 && errno == EINTR) continue;
    if (w < 0)
      rc = -errno;
    else
      p += w, len -= (size_t)w;
  }
  if (!rc && fsync(fd) != 0) rc = -errno;
  if (close(fd) != 0 && !rc) rc = -errno;
  if (rc) unlink(tmp);
  return rc;
}

/* fsync of path's directory, so that a new link in it survives a crash. */
static int fsync_parent(const char *path) {
  char dir[4200];
  const char *slash = strrchr(path, '/');
  size_t n = slash ? (size_t)(slash - path) : 0;
  if (n >= sizeof dir) return -ENAMETOOLONG;
  if (slash && n == 0) n = 1; /* "/name": the root */
  if (n) memcpy(dir, path, n);
  else dir[n++] = '.';
  dir[n] = '\0';
  int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return -errno;
  int rc = fsync(fd) == 0 ? 0 : -errno;
  close(fd);
  return rc;
}

int ra_simdir_create_exclusive(const char *path, const void *data, size_t len, mode_t mode) {
  char tmp[4200];
  int rc = write_temp(path, data, len, mode, tmp, sizeof tmp);
  if (rc) return rc;
  /* link(), unlike rename(), fails on an existing path: exclusive, and the
   * file is complete before anyone can open it by its name */
  rc = link(tmp, path) == 0 ? 0 : -errno;
  unlink(tmp);
  if (!rc) rc = fsync_parent(path);
  return rc;
}

int ra_simdir_replace_if_different(const char *path, const void *data, size_t len, mode_t mode) {
  uint8_t *cur = NULL;
  size_t curlen = 0;
  if (ra_file_read(path, RA_SIMDIR_FILE_MAX, &cur, &curlen) == 0) {
    int same = curlen == len && memcmp(cur, data, len) == 0;
    free(cur);
    if (same) return 0;
  }
  return ra_file_write_atomic(path, data, len, mode);
}

static void drop(uint8_t **data, size_t len) {
  if (*data) OPENSSL_cleanse(*data, len);
  free(*data);
  *data = NULL;
}

int ra_simdir_load_or_create(const char *path, const ra_simdir_ops *ops, void *ctx) {
  uint8_t *data = NULL;
  size_t len = 0;
  int rc = ra_file_read(path, RA_SIMDIR_FILE_MAX, &data, &len);
  if (rc == -ENOENT) {
    rc = ops->generate(ctx);
    if (!rc) rc = ops->encode(ctx, &data, &len);
    if (!rc) rc = ra_simdir_create_exclusive(path, data, len, 0600);
    if (rc == -EEXIST) { /* another process won the race: use its hierarchy */
      ops->release(ctx);
      drop(&data, len);
      rc = ra_file_read(path, RA_SIMDIR_FILE_MAX, &data, &len);
      if (!rc) rc = ops->decode(ctx, data, len);
    }
  } else if (rc == 0) {
    rc = ops->decode(ctx, data, len);
  }
  drop(&data, len);
  return rc;
}

int ra_simdir_bundle_encode(EVP_PKEY *const *keys, size_t nkeys, X509 *const *certs,
                            size_t ncerts, uint8_t **out, size_t *len) {
  BIO *b = BIO_new(BIO_s_mem());
  if (!b) return -ENOMEM;
  int ok = 1;
  for (size_t i = 0; ok && i < nkeys; i++) {
    ok = PEM_write_bio_PrivateKey(b, keys[i], NULL, NULL, 0, NULL, NULL) &&
         (i >= ncerts || PEM_write_bio_X509(b, certs[i]));
  }
  int rc = -EIO;
  char *p;
  long n = BIO_get_mem_data(b, &p);
  if (ok && n > 0) {
    *out = malloc((size_t)n);
    rc = *out ? 0 : -ENOMEM;
    if (*out) {
      memcpy(*out, p, (size_t)n);
      *len = (size_t)n;
    }
  }
  /* the memory BIO held private keys too */
  BUF_MEM *bm = NULL;
  if (BIO_get_mem_ptr(b, &bm) == 1 && bm && bm->data) OPENSSL_cleanse(bm->data, bm->length);
  BIO_free(b);
  return rc;
}

int ra_simdir_bundle_decode(const uint8_t *data, size_t len, EVP_PKEY **keys, size_t nkeys,
                            X509 **certs, size_t ncerts) {
  if (len > INT32_MAX || ncerts > nkeys || ncerts == 0) return -EINVAL;
  BIO *b = BIO_new_mem_buf(data, (int)len);
  if (!b) return -ENOMEM;
  int ok = 1;
  for (size_t i = 0; ok && i < nkeys; i++) {
    keys[i] = PEM_read_bio_PrivateKey(b, NULL, NULL, NULL);
    ok = keys[i] != NULL;
    if (ok && i < ncerts) {
      certs[i] = PEM_read_bio_X509(b, NULL, NULL, NULL);
      ok = certs[i] != NULL;
    }
  }
  BIO_free(b);
  if (!ok) return -EINVAL;
  for (size_t i = 0; i < ncerts; i++) {
    if (X509_check_private_key(certs[i], keys[i]) != 1) return -EINVAL;
    EVP_PKEY *ik = X509_get0_pubkey(certs[i ? i - 1 : 0]);
    if (!ik || X509_verify(certs[i], ik) != 1) return -EINVAL;
  }
  return 0;
}

int ra_simdir_add_ext(X509 *cert, X509 *issuer, int nid, const char *value) {
  X509V3_CTX ctx;
  X509V3_set_ctx_nodb(&ctx);
  X509V3_set_ctx(&ctx, issuer, cert, NULL, NULL, 0);
  X509_EXTENSION *ext = X509V3_EXT_conf_nid(NULL, &ctx, nid, value);
  if (!ext) return -EIO;
  int ok = X509_add_ext(cert, ext, -1);
  X509_EXTENSION_free(ext);
  return ok ? 0 : -EIO;
}

int ra_simdir_add_ext_der(X509 *cert, const char *oid, const uint8_t *der, size_t len) {
  if (len > INT32_MAX) return -EIO;
  ASN1_OBJECT *obj = OBJ_txt2obj(oid, 1);
  ASN1_OCTET_STRING *os = ASN1_OCTET_STRING_new();
  X509_EXTENSION *xe = NULL;
  if (obj && os && ASN1_OCTET_STRING_set(os, der, (int)len))
    xe = X509_EXTENSION_create_by_OBJ(NULL, obj, 0, os);
  int ok = xe && X509_add_ext(cert, xe, -1);
  X509_EXTENSION_free(xe);
  ASN1_OCTET_STRING_free(os);
  ASN1_OBJECT_free(obj);
  return ok ? 0 : -EIO;
}

X509_NAME *ra_simdir_name(const char *cn) {
  X509_NAME *n = X509_NAME_new();
  if (!n) return NULL;
  if (!X509_NAME_add_entry_by_txt(n, "CN", MBSTRING_UTF8, (const unsigned char *)cn, -1, -1, 0) ||
      !X509_NAME_add_entry_by_txt(n, "O", MBSTRING_UTF8,
                                  (const unsigned char *)"raloop simulated TEE", -1, -1, 0)) {
    X509_NAME_free(n);
    return NULL;
  }
  return n;
}
