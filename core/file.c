/* core/file.c: whole-file reads. */
#include "raloop/core/file.h"

#include <errno.h>
#include <stdbool.h>
#include <fcntl.h>
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
