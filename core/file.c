/* core/file.c: whole-file reads and atomic, durable replacement. */
#include "raloop/core/file.h"

#include <errno.h>
#include <stdbool.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <sys/stat.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int ra_file_read(const char *path, size_t max, uint8_t **out, size_t *len) {
  bool is_stdin = strcmp(path, "-") == 0;
  int fd = is_stdin ? STDIN_FILENO : open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return -errno;
  size_t cap = 4096, n = 0;
  uint8_t *buf = malloc(cap);
  int rc = buf ? 0 : -ENOMEM;
  while (rc == 0) {
    if (cap - n < 2) { /* keep room for the terminating NUL */
      /* n <= max here (past it the read below fails): growing is bounded,
       * and a file of exactly max bytes needs one more read to see EOF. */
      size_t nc = cap * 2;
      uint8_t *nb = nc > cap ? realloc(buf, nc) : NULL;
      if (!nb) {
        rc = -ENOMEM;
        break;
      }
      buf = nb;
      cap = nc;
    }
    ssize_t r = read(fd, buf + n, cap - n - 1);
    if (r < 0) {
      if (errno != EINTR) rc = -errno;
    } else if (r == 0) {
      break;
    } else {
      n += (size_t)r;
      if (n > max) rc = -EFBIG;
    }
  }
  if (!is_stdin) close(fd);
  if (rc) {
    free(buf);
    return rc;
  }
  buf[n] = '\0';
  *out = buf;
  *len = n;
  return 0;
}

/* tmp: ".<basename>.tmp-XXXXXX" next to path (a mkstemp template); dir:
 * path's directory, to fsync once the rename is done. */
static int temp_name(const char *path, char *tmp, size_t cap, char *dir, size_t dcap) {
  const char *slash = strrchr(path, '/');
  const char *base = slash ? slash + 1 : path;
  if (!*base) return -EISDIR;
  size_t dl = slash ? (size_t)(slash - path) : 0;
  int n;
  if (!slash) n = snprintf(dir, dcap, ".");
  else if (dl == 0) n = snprintf(dir, dcap, "/");
  else n = snprintf(dir, dcap, "%.*s", (int)dl, path);
  if (n < 0 || (size_t)n >= dcap) return -ENAMETOOLONG;
  n = snprintf(tmp, cap, "%.*s.%s.tmp-XXXXXX", (int)(base - path), path, base);
  if (n < 0 || (size_t)n >= cap) return -ENAMETOOLONG;
  return 0;
}

int ra_file_write_atomic(const char *path, const void *data, size_t len, mode_t mode) {
  char tmp[PATH_MAX], dir[PATH_MAX];
  if (!path || (!data && len)) return -EINVAL;
  int rc = temp_name(path, tmp, sizeof tmp, dir, sizeof dir);
  if (rc) return rc;
  int fd = mkostemp(tmp, O_CLOEXEC);
  if (fd < 0) return -errno;
  const uint8_t *p = data;
  for (size_t off = 0; off < len && !rc;) {
    ssize_t w = write(fd, p + off, len - off);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) rc = w < 0 ? -errno : -EIO;
    else off += (size_t)w;
  }
  /* mkostemp made it 0600; the caller's mode exactly, whatever the umask */
  if (!rc && fchmod(fd, mode)) rc = -errno;
  if (!rc && fsync(fd)) rc = -errno;
  if (close(fd) && !rc) rc = -errno;
  if (!rc && rename(tmp, path)) rc = -errno;
  if (rc) {
    unlink(tmp);
    return rc;
  }
  /* the rename itself is durable only once the directory is */
  int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd < 0) return -errno;
  if (fsync(dfd)) rc = -errno;
  close(dfd);
  return rc;
}
