/* core/listen.c: listening sockets. Accepts run in batches; when the process
 * runs out of descriptors (EMFILE) the listener pauses for a moment instead
 * of spinning on a readiness it cannot act upon. */
#include "raloop/core/listen.h"

#include <arpa/inet.h>
#include <linux/vm_sockets.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "raloop/core/log.h"

#define ACCEPT_BATCH 64
#define EMFILE_PAUSE_MS 100

struct ra_listener {
  ra_loop *loop;
  int fd;
  ra_accept_cb cb;
  void *ud;
  uint16_t port;
  bool tcp;
  bool paused;     /* by the user */
  bool starved;    /* by EMFILE & co, until the retry timer */
  bool in_accept;  /* inside on_accept: closing must not free yet */
  bool closed;
  bool warned;     /* EMFILE logged; again only after an accept worked */
  ra_timer retry;
  char *path; /* unix socket file we created */
};

static void on_accept(ra_loop *loop, int fd, unsigned events, void *ud);

static void update_watch(ra_listener *l) {
  if (l->closed) return;
  unsigned want = (l->paused || l->starved) ? 0 : RA_READABLE;
  ra_loop_watch(l->loop, l->fd, want, on_accept, l);
}

static void on_retry(ra_timer *t, void *ud) {
  (void)t;
  ra_listener *l = ud;
  l->starved = false;
  update_watch(l);
}

static void free_listener(ra_listener *l) {
  free(l->path);
  free(l);
}

static void on_accept(ra_loop *loop, int fd, unsigned events, void *ud) {
  (void)loop;
  (void)events;
  ra_listener *l = ud;
  l->in_accept = true;
  for (int i = 0; i < ACCEPT_BATCH && !l->closed && !l->paused; i++) {
    struct sockaddr_storage ss;
    socklen_t sl = sizeof ss;
    int c = accept4(fd, (struct sockaddr *)&ss, &sl, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (c < 0) {
      int err = errno;
      if (err == EAGAIN || err == EWOULDBLOCK) break;
      if (err == EMFILE || err == ENFILE || err == ENOBUFS || err == ENOMEM) {
        if (!l->warned)
          ra_warn("listen: accept: %s; pausing accepts for %d ms", strerror(err), EMFILE_PAUSE_MS);
        l->warned = true;
        l->starved = true;
        update_watch(l);
        ra_timer_start(&l->retry, EMFILE_PAUSE_MS, 0);
        break;
      }
      /* The connection died in the queue, or a firewall refused it: the
       * listener itself is fine. Anything else: stop this batch. */
      if (err == EINTR || err == ECONNABORTED || err == EPROTO || err == EPERM ||
          err == ENETDOWN || err == ENOPROTOOPT || err == EHOSTDOWN || err == ENONET ||
          err == EHOSTUNREACH || err == EOPNOTSUPP || err == ENETUNREACH)
        continue;
      ra_warn("listen: accept: %s", strerror(err));
      break;
    }
    l->warned = false;
    if (l->tcp) {
      int one = 1;
      setsockopt(c, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    }
    l->cb(l, c, (struct sockaddr *)&ss, sl, l->ud);
  }
  l->in_accept = false;
  if (l->closed) free_listener(l);
}

static int parse_port(const char *s, uint16_t *port) {
  if (!*s) return -EINVAL;
  unsigned long v = 0;
  for (; *s; s++) {
    if (*s < '0' || *s > '9') return -EINVAL;
    v = v * 10 + (unsigned long)(*s - '0');
    if (v > 65535) return -EINVAL;
  }
  *port = (uint16_t)v;
  return 0;
}

/* Fills ss from "HOST:PORT", "[V6]:PORT" or ":PORT" (*any: all interfaces,
 * left to the caller because it depends on IPv6 being available). */
static int parse_inet(const char *addr, struct sockaddr_storage *ss, socklen_t *len, bool *any) {
  char host[256];
  const char *colon;
  *any = false;
  if (addr[0] == '[') {
    const char *end = strchr(addr, ']');
    if (!end || end[1] != ':' || (size_t)(end - addr - 1) >= sizeof host) return -EINVAL;
    memcpy(host, addr + 1, (size_t)(end - addr - 1));
    host[end - addr - 1] = '\0';
    colon = end + 1;
  } else {
    colon = strrchr(addr, ':');
    if (!colon || (size_t)(colon - addr) >= sizeof host) return -EINVAL;
    memcpy(host, addr, (size_t)(colon - addr));
    host[colon - addr] = '\0';
    if (strchr(host, ':')) return -EINVAL; /* a bare IPv6 address needs [] */
  }
  uint16_t port;
  if (parse_port(colon + 1, &port) < 0) return -EINVAL;
  memset(ss, 0, sizeof *ss);
  struct sockaddr_in *in4 = (struct sockaddr_in *)ss;
  struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)ss;
  if (!host[0] && addr[0] != '[') {
    *any = true;
    in6->sin6_family = AF_INET6;
    in6->sin6_addr = in6addr_any;
    in6->sin6_port = htons(port);
    *len = sizeof *in6;
    return 0;
  }
  if (inet_pton(AF_INET, host, &in4->sin_addr) == 1) {
    in4->sin_family = AF_INET;
    in4->sin_port = htons(port);
    *len = sizeof *in4;
    return 0;
  }
  if (inet_pton(AF_INET6, host, &in6->sin6_addr) == 1) {
    in6->sin6_family = AF_INET6;
    in6->sin6_port = htons(port);
    *len = sizeof *in6;
    return 0;
  }
  if (addr[0] == '[') return -EINVAL;
  struct addrinfo hints = {0}, *res = NULL;
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE | AI_ADDRCONFIG;
  int rc = getaddrinfo(host, NULL, &hints, &res);
  if (rc != 0 || !res) return rc == EAI_MEMORY ? -ENOMEM : -EADDRNOTAVAIL;
  memcpy(ss, res->ai_addr, res->ai_addrlen);
  *len = res->ai_addrlen;
  freeaddrinfo(res);
  if (ss->ss_family == AF_INET)
    in4->sin_port = htons(port);
  else
    in6->sin6_port = htons(port);
  return 0;
}

/* "vsock:CID:PORT", CID empty or -1 for any (VMADDR_CID_ANY). */
static int parse_vsock(const char *addr, struct sockaddr_storage *ss, socklen_t *len) {
  const char *colon = strrchr(addr, ':');
  if (!colon) return -EINVAL;
  unsigned long long cid = VMADDR_CID_ANY, port;
  char *end;
  if (colon > addr && !(colon - addr == 2 && addr[0] == '-' && addr[1] == '1')) {
    if (addr[0] < '0' || addr[0] > '9') return -EINVAL;
    errno = 0;
    cid = strtoull(addr, &end, 10);
    if (end != colon || errno || cid > UINT32_MAX) return -EINVAL;
  }
  if (colon[1] < '0' || colon[1] > '9') return -EINVAL;
  errno = 0;
  port = strtoull(colon + 1, &end, 10);
  if (*end || errno || port > UINT32_MAX) return -EINVAL;
  struct sockaddr_vm *vm = (struct sockaddr_vm *)ss;
  memset(ss, 0, sizeof *ss);
  vm->svm_family = AF_VSOCK;
  vm->svm_cid = (unsigned)cid;
  vm->svm_port = (unsigned)port;
  *len = sizeof *vm;
  return 0;
}

static int open_socket(const struct sockaddr_storage *ss, socklen_t len,
                       const ra_listen_opts *o, int *out) {
  int fd = socket(ss->ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return -errno;
  int one = 1;
  if (ss->ss_family == AF_INET || ss->ss_family == AF_INET6) {
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (o->reuseport && setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) < 0) goto fail;
    if (ss->ss_family == AF_INET6) {
      int v6only = o->v6only ? 1 : 0;
      setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &v6only, sizeof v6only);
    }
  }
  if (bind(fd, (const struct sockaddr *)ss, len) < 0) goto fail;
  if (listen(fd, o->backlog > 0 ? o->backlog : 1024) < 0) goto fail;
  *out = fd;
  return 0;
fail:;
  int err = -errno;
  close(fd);
  return err;
}

int ra_listen(ra_loop *loop, const char *addr, const ra_listen_opts *opts,
              ra_accept_cb cb, void *ud, ra_listener **out) {
  if (!loop || !addr || !cb || !out) return -EINVAL;
  *out = NULL;
  ra_listen_opts o = {0};
  if (opts) o = *opts;
  struct sockaddr_storage ss;
  socklen_t len;
  char *path = NULL;
  int fd = -1, rc;
  bool any = false;
  if (strncmp(addr, "fd:", 3) == 0) {
    /* an inherited listening socket (serve/workers.c): adopted as is */
    char *end;
    long n = strtol(addr + 3, &end, 10);
    int acc = 0;
    socklen_t al = sizeof acc;
    if (end == addr + 3 || *end || n < 0 || n > INT32_MAX) return -EINVAL;
    if (getsockopt((int)n, SOL_SOCKET, SO_ACCEPTCONN, &acc, &al) < 0) return -errno;
    if (!acc) return -EINVAL;
    len = sizeof ss;
    if (getsockname((int)n, (struct sockaddr *)&ss, &len) < 0) return -errno;
    int fl = fcntl((int)n, F_GETFL);
    if (fl < 0 || fcntl((int)n, F_SETFL, fl | O_NONBLOCK) < 0 || fcntl((int)n, F_SETFD, FD_CLOEXEC) < 0)
      return -errno;
    fd = (int)n;
    rc = 0;
  } else if (strncmp(addr, "unix:", 5) == 0) {
    const char *p = addr + 5;
    size_t n = strlen(p);
    struct sockaddr_un *un = (struct sockaddr_un *)&ss;
    if (n == 0) return -EINVAL;
    if (n >= sizeof un->sun_path) return -ENAMETOOLONG;
    memset(&ss, 0, sizeof ss);
    un->sun_family = AF_UNIX;
    memcpy(un->sun_path, p, n);
    len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n + 1);
    struct stat st;
    if (lstat(p, &st) == 0 && S_ISSOCK(st.st_mode)) unlink(p); /* a stale socket */
    if (!(path = strdup(p))) return -ENOMEM;
    rc = open_socket(&ss, len, &o, &fd);
  } else if (strncmp(addr, "vsock:", 6) == 0) {
    rc = parse_vsock(addr + 6, &ss, &len);
    if (rc < 0) return rc;
    rc = open_socket(&ss, len, &o, &fd);
  } else {
    rc = parse_inet(addr, &ss, &len, &any);
    if (rc < 0) return rc;
    rc = open_socket(&ss, len, &o, &fd);
    if (rc == -EAFNOSUPPORT && any) { /* no IPv6 here: all IPv4 interfaces */
      struct sockaddr_in *in4 = (struct sockaddr_in *)&ss;
      uint16_t port = ((struct sockaddr_in6 *)&ss)->sin6_port;
      memset(&ss, 0, sizeof ss);
      in4->sin_family = AF_INET;
      in4->sin_addr.s_addr = htonl(INADDR_ANY);
      in4->sin_port = port;
      len = sizeof *in4;
      rc = open_socket(&ss, len, &o, &fd);
    }
  }
  if (rc < 0) {
    free(path);
    return rc;
  }
  ra_listener *l = calloc(1, sizeof *l);
  if (!l) {
    rc = -ENOMEM;
    goto fail;
  }
  l->loop = loop;
  l->fd = fd;
  l->cb = cb;
  l->ud = ud;
  l->tcp = ss.ss_family == AF_INET || ss.ss_family == AF_INET6;
  l->path = path;
  ra_timer_init(loop, &l->retry, on_retry, l);
  if (l->tcp) {
    struct sockaddr_storage bound;
    socklen_t bl = sizeof bound;
    if (getsockname(fd, (struct sockaddr *)&bound, &bl) == 0)
      l->port = ntohs(bound.ss_family == AF_INET ? ((struct sockaddr_in *)&bound)->sin_port
                                                 : ((struct sockaddr_in6 *)&bound)->sin6_port);
  }
  rc = ra_loop_watch(loop, fd, RA_READABLE, on_accept, l);
  if (rc < 0) goto fail;
  *out = l;
  return 0;
fail:
  close(fd);
  if (path) unlink(path);
  free(path);
  free(l);
  return rc;
}

uint16_t ra_listener_port(const ra_listener *l) { return l->port; }
int ra_listener_fd(const ra_listener *l) { return l->fd; }

void ra_listener_pause(ra_listener *l) {
  l->paused = true;
  update_watch(l);
}

void ra_listener_resume(ra_listener *l) {
  l->paused = false;
  update_watch(l);
}

void ra_listener_close(ra_listener *l) {
  if (!l || l->closed) return;
  ra_timer_stop(&l->retry);
  ra_loop_unwatch(l->loop, l->fd);
  close(l->fd);
  l->fd = -1;
  if (l->path) unlink(l->path);
  l->closed = true;
  if (!l->in_accept) free_listener(l);
}
