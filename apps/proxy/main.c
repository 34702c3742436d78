/* apps/proxy: ra-proxy, the host-side passthrough proxy of the HTTP Enclave.
 *
 *   ra-proxy [--listen HOST:PORT] [--to tcp:HOST:PORT|vsock:CID:PORT|unix:PATH]
 *            [--idle-timeout DURATION] [--connect-timeout DURATION]
 *            [--max-conns N] [--proxy-protocol] [--buffer BYTES] [--no-splice]
 *            [--grace DURATION] [-v|--verbose] [--quiet]
 *
 * Each accepted connection is joined byte for byte to a new connection to
 * the upstream (core/pump.h: splice(2) where the kernel allows it,
 * back-pressure and half-close both ways). Nothing is decrypted or parsed:
 * in front of an enclave that terminates TLS itself, the host sees only
 * ciphertext. With --proxy-protocol each upstream connection starts with a
 * PROXY protocol v2 header naming the client (core/proxy_proto.h).
 *
 * Without flags, the original HTTP Enclave design's environment: BIND_ADDR
 * (default 0.0.0.0:443) for --listen, ENCLAVE_CID (16) and ENCLAVE_PORT
 * (5005) for --to vsock:CID:PORT.
 *
 * Past --max-conns, a new connection is closed at once (not queued).
 * SIGINT/SIGTERM: stop accepting, let open connections finish for --grace
 * (then close them); a second signal closes them at once.
 * Exit: 0 stopped by a signal, 1 could not listen / out of memory, 2 usage.
 */
#include <errno.h>
#include <linux/vm_sockets.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "raloop.h"
#include "raloop/core/proxy_proto.h"
#include "raloop/core/pump.h"

static void usage(FILE *f) {
  fprintf(f,
          "usage: ra-proxy [--listen HOST:PORT] [--to tcp:HOST:PORT|vsock:CID:PORT|unix:PATH]\n"
          "                [--idle-timeout DURATION] [--connect-timeout DURATION]\n"
          "                [--max-conns N] [--proxy-protocol] [--buffer BYTES] [--no-splice]\n"
          "                [--grace DURATION] [-v|--verbose] [--quiet]\n"
          "Forwards every TCP connection, byte for byte, to the upstream.\n"
          "Defaults: --listen $BIND_ADDR [0.0.0.0:443], --to vsock:$ENCLAVE_CID:$ENCLAVE_PORT\n"
          "[vsock:16:5005], --idle-timeout 600s (0: none), --connect-timeout 10s,\n"
          "--max-conns 10000 (or what the descriptor limit allows: 6 per connection),\n"
          "--buffer 65536 (bytes in flight per direction), --grace 10s.\n"
          "DURATION: N (seconds), Ns, Nms or Nm.\n");
}

/* ---- configuration ---------------------------------------------------------- */

typedef struct upstream {
  char desc[300];
  struct sockaddr_storage addr[8];
  socklen_t len[8];
  size_t n;
} upstream;

/* "30", "30s", "500ms", "2m" -> ms; -1 if malformed. */
static long long duration_ms(const char *s) {
  char *e;
  errno = 0;
  long long v = strtoll(s, &e, 10);
  if (errno || e == s || v < 0 || v > 100000000LL) return -1;
  if (!*e || strcmp(e, "s") == 0) return v * 1000;
  if (strcmp(e, "ms") == 0) return v;
  if (strcmp(e, "m") == 0) return v * 60000;
  return -1;
}

static long long number(const char *s, long long max) {
  char *e;
  errno = 0;
  long long v = strtoll(s, &e, 10);
  if (errno || e == s || *e || v < 0 || v > max) return -1;
  return v;
}

/* tcp:HOST:PORT (HOST may be [V6] or a name, resolved once, now),
 * vsock:CID:PORT, unix:PATH. 0, or a message in err. */
static int parse_upstream(const char *to, upstream *up, const char **err) {
  memset(up, 0, sizeof *up);
  snprintf(up->desc, sizeof up->desc, "%s", to);
  if (strncmp(to, "unix:", 5) == 0) {
    struct sockaddr_un *un = (struct sockaddr_un *)&up->addr[0];
    size_t n = strlen(to + 5);
    if (n == 0 || n >= sizeof un->sun_path) return *err = "unix: needs a path (at most 107 bytes)", -1;
    un->sun_family = AF_UNIX;
    memcpy(un->sun_path, to + 5, n);
    up->len[0] = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n + 1);
    up->n = 1;
    return 0;
  }
  if (strncmp(to, "vsock:", 6) == 0) {
    const char *c = strchr(to + 6, ':');
    char cid_s[16];
    if (!c || (size_t)(c - (to + 6)) >= sizeof cid_s) return *err = "vsock: wants CID:PORT", -1;
    memcpy(cid_s, to + 6, (size_t)(c - (to + 6)));
    cid_s[c - (to + 6)] = '\0';
    long long cid = number(cid_s, UINT32_MAX), port = number(c + 1, UINT32_MAX);
    if (cid < 0 || port < 0) return *err = "vsock: CID and PORT are numbers", -1;
    struct sockaddr_vm *vm = (struct sockaddr_vm *)&up->addr[0];
    vm->svm_family = AF_VSOCK;
    vm->svm_cid = (unsigned)cid;
    vm->svm_port = (unsigned)port;
    up->len[0] = sizeof *vm;
    up->n = 1;
    return 0;
  }
  if (strncmp(to, "tcp:", 4) != 0) return *err = "--to wants tcp:HOST:PORT, vsock:CID:PORT or unix:PATH", -1;
  const char *hp = to + 4, *colon;
  char host[256];
  if (hp[0] == '[') {
    const char *end = strchr(hp, ']');
    if (!end || end[1] != ':' || (size_t)(end - hp - 1) >= sizeof host) return *err = "tcp: bad [IPv6]:PORT", -1;
    memcpy(host, hp + 1, (size_t)(end - hp - 1));
    host[end - hp - 1] = '\0';
    colon = end + 1;
  } else {
    colon = strrchr(hp, ':');
    if (!colon || colon == hp || (size_t)(colon - hp) >= sizeof host) return *err = "tcp: wants HOST:PORT", -1;
    memcpy(host, hp, (size_t)(colon - hp));
    host[colon - hp] = '\0';
  }
  long long port = number(colon + 1, 65535);
  if (port <= 0) return *err = "tcp: PORT is 1..65535", -1;
  struct addrinfo hints = {0}, *res = NULL;
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  if (getaddrinfo(host, colon + 1, &hints, &res) != 0 || !res) return *err = "tcp: HOST does not resolve", -1;
  for (struct addrinfo *ai = res; ai && up->n < 8; ai = ai->ai_next) {
    memcpy(&up->addr[up->n], ai->ai_addr, ai->ai_addrlen);
    up->len[up->n++] = ai->ai_addrlen;
  }
  freeaddrinfo(res);
  return 0;
}

/* ---- connections ---------------------------------------------------------------- */

typedef struct app app;
typedef struct conn {
  app *a;
  struct conn *prev, *next;
  int cfd, ufd;
  size_t tried; /* upstream address being tried */
  struct sockaddr_storage peer, local;
  ra_timer connect_timer;
  ra_pump *pump;
  uint64_t start;
} conn;

struct app {
  ra_loop *loop;
  ra_listener *listener;
  upstream up;
  ra_pump_opts po;
  uint64_t connect_timeout_ms, grace_ms;
  size_t max_conns, nconns;
  uint64_t refused;
  bool proxy_protocol, stopping;
  conn *conns;
  ra_timer grace;
};

static void unlink_conn(conn *c) {
  app *a = c->a;
  if (c->prev) c->prev->next = c->next;
  else a->conns = c->next;
  if (c->next) c->next->prev = c->prev;
  a->nconns--;
  if (a->stopping && a->nconns == 0) ra_loop_stop(a->loop);
}

static const char *peer_str(const conn *c, char *buf, size_t cap) {
  return ra_proxy_proto_addr_str(&c->peer, buf, cap);
}

/* Before the pump owns the fds. */
static void conn_fail(conn *c, int err) {
  char p[80];
  ra_timer_stop(&c->connect_timer);
  if (c->ufd >= 0) {
    ra_loop_unwatch(c->a->loop, c->ufd);
    close(c->ufd);
  }
  close(c->cfd);
  RA_LOG_LIMITED(RA_LOG_WARN, 10, 1000, "ra-proxy: %s: upstream %s: %s", peer_str(c, p, sizeof p),
                 c->a->up.desc, ra_strerror(err));
  unlink_conn(c);
  free(c);
}

static void pump_done(ra_pump *pump, int err, void *ud) {
  conn *c = ud;
  char p[80];
  uint64_t ms = ra_loop_now(c->a->loop) - c->start;
  unsigned long long up = ra_pump_bytes(pump, RA_PUMP_A_TO_B), down = ra_pump_bytes(pump, RA_PUMP_B_TO_A);
  /* Resets and idle timeouts are how connections end on the Internet:
   * debug; anything else is worth a warning. */
  if (err && err != -ECONNRESET && err != -EPIPE && err != -ETIMEDOUT)
    RA_LOG_LIMITED(RA_LOG_WARN, 10, 1000, "ra-proxy: %s: %s after %llu B up, %llu B down",
                   peer_str(c, p, sizeof p), ra_strerror(err), up, down);
  else
    ra_debug("ra-proxy: %s -> %s: %llu B up, %llu B down, %llu ms%s%s%s", peer_str(c, p, sizeof p),
             c->a->up.desc, up, down, (unsigned long long)ms, err ? " (" : "",
             err ? ra_strerror(err) : "", err ? ")" : "");
  unlink_conn(c);
  free(c);
}

static void start_pump(conn *c) {
  app *a = c->a;
  ra_loop_unwatch(a->loop, c->ufd);
  ra_timer_stop(&c->connect_timer);
  sa_family_t fam = a->up.addr[c->tried].ss_family;
  if (fam == AF_INET || fam == AF_INET6) {
    int one = 1; /* small TLS records must not wait for ACKs */
    setsockopt(c->ufd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  }
  if (a->proxy_protocol) {
    uint8_t hdr[RA_PROXY_PROTO_V2_MAX];
    int n = ra_proxy_proto_encode((struct sockaddr *)&c->peer, (struct sockaddr *)&c->local, hdr, sizeof hdr);
    /* A fresh connection's send buffer takes a couple hundred bytes whole. */
    ssize_t w = n > 0 ? send(c->ufd, hdr, (size_t)n, MSG_NOSIGNAL | MSG_DONTWAIT) : -1;
    if (w != n) {
      conn_fail(c, w < 0 ? -errno : -EIO);
      return;
    }
  }
  int cfd = c->cfd, ufd = c->ufd;
  c->cfd = c->ufd = -1;
  int rc = ra_pump_new(a->loop, cfd, ufd, &a->po, pump_done, c, &c->pump);
  if (rc < 0) { /* the fds are closed */
    char p[80];
    RA_LOG_LIMITED(RA_LOG_WARN, 10, 1000, "ra-proxy: %s: %s", peer_str(c, p, sizeof p), ra_strerror(rc));
    unlink_conn(c);
    free(c);
  }
}

static int try_connect(conn *c);

static void on_connected(ra_loop *loop, int fd, unsigned events, void *ud) {
  conn *c = ud;
  int err = 0;
  socklen_t el = sizeof err;
  if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &el) < 0) err = errno;
  if (err == 0) {
    start_pump(c);
    return;
  }
  ra_loop_unwatch(loop, fd);
  close(fd);
  c->ufd = -1;
  if (c->tried + 1 < c->a->up.n) { /* the next address of the name */
    c->tried++;
    int rc = try_connect(c);
    if (rc == 0) return;
    err = -rc;
  }
  conn_fail(c, -err);
}

static void on_connect_timeout(ra_timer *t, void *ud) { conn_fail(ud, -ETIMEDOUT); }

static int try_connect(conn *c) {
  app *a = c->a;
  const struct sockaddr_storage *ss = &a->up.addr[c->tried];
  int fd = socket(ss->ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return -errno;
  int rc;
  do rc = connect(fd, (const struct sockaddr *)ss, a->up.len[c->tried]);
  while (rc < 0 && errno == EINTR);
  if (rc < 0 && errno != EINPROGRESS) { /* unix: EAGAIN = its backlog is full: a failure */
    int err = -errno;
    close(fd);
    return err;
  }
  c->ufd = fd;
  /* Even a connect that completed at once (unix) is finished from the loop. */
  rc = ra_loop_watch(a->loop, fd, RA_WRITABLE, on_connected, c);
  if (rc < 0) {
    close(fd);
    c->ufd = -1;
    return rc;
  }
  if (!ra_timer_active(&c->connect_timer)) ra_timer_start(&c->connect_timer, a->connect_timeout_ms, 0);
  return 0;
}

static void on_accept(ra_listener *l, int fd, const struct sockaddr *peer, socklen_t peer_len, void *ud) {
  app *a = ud;
  if (a->stopping || a->nconns >= a->max_conns) {
    /* Refused at once: a client waiting in a queue it cannot see is worse. */
    a->refused++;
    RA_LOG_LIMITED(RA_LOG_WARN, 1, 5000, "ra-proxy: %zu connections open (--max-conns): refusing (%llu so far)",
                   a->nconns, (unsigned long long)a->refused);
    close(fd);
    return;
  }
  conn *c = calloc(1, sizeof *c);
  if (!c) {
    close(fd);
    return;
  }
  c->a = a;
  c->cfd = fd;
  c->ufd = -1;
  c->start = ra_loop_now(a->loop);
  memcpy(&c->peer, peer, peer_len < sizeof c->peer ? peer_len : sizeof c->peer);
  socklen_t ll = sizeof c->local;
  if (getsockname(fd, (struct sockaddr *)&c->local, &ll) < 0) c->local.ss_family = AF_UNSPEC;
  ra_timer_init(a->loop, &c->connect_timer, on_connect_timeout, c);
  c->next = a->conns;
  if (a->conns) a->conns->prev = c;
  a->conns = c;
  a->nconns++;
  int rc = try_connect(c);
  if (rc < 0) conn_fail(c, rc);
}

/* ---- stop ---------------------------------------------------------------------- */

static void close_all(app *a) {
  while (a->conns) {
    conn *c = a->conns;
    a->conns = c->next;
    if (c->pump) {
      ra_pump_free(c->pump);
    } else {
      ra_timer_stop(&c->connect_timer);
      if (c->ufd >= 0) {
        ra_loop_unwatch(a->loop, c->ufd);
        close(c->ufd);
      }
      close(c->cfd);
    }
    free(c);
  }
  a->nconns = 0;
}

static void on_grace(ra_timer *t, void *ud) {
  app *a = ud;
  ra_info("ra-proxy: %zu connection(s) still open after the grace period: closing them", a->nconns);
  ra_loop_stop(a->loop);
}

static void on_signal(ra_loop *loop, int signo, void *ud) {
  app *a = ud;
  if (a->stopping) {
    ra_loop_stop(loop);
    return;
  }
  a->stopping = true;
  ra_listener_close(a->listener);
  a->listener = NULL;
  if (a->nconns == 0) {
    ra_loop_stop(loop);
    return;
  }
  ra_info("ra-proxy: stopping: waiting up to %llu ms for %zu connection(s)",
          (unsigned long long)a->grace_ms, a->nconns);
  ra_timer_start(&a->grace, a->grace_ms, 0);
}

int main(int argc, char **argv) {
  const char *listen = NULL, *to = NULL;
  app a = {0};
  a.po.idle_timeout_ms = 600000;
  a.connect_timeout_ms = 10000;
  a.grace_ms = 10000;
  a.max_conns = 10000;
  bool quiet = false, verbose = false, max_conns_set = false;
  for (int i = 1; i < argc; i++) {
    const char *o = argv[i];
    bool has = i + 1 < argc;
    long long v;
#define NEED_ARG                                                       \
  if (!has) {                                                          \
    fprintf(stderr, "ra-proxy: %s needs a value\n", o);                \
    return 2;                                                          \
  }
#define BAD(what)                                                      \
  do {                                                                 \
    fprintf(stderr, "ra-proxy: bad %s '%s' (%s)\n", o, argv[i], what); \
    return 2;                                                          \
  } while (0)
    if (strcmp(o, "--listen") == 0) { NEED_ARG listen = argv[++i]; }
    else if (strcmp(o, "--to") == 0) { NEED_ARG to = argv[++i]; }
    else if (strcmp(o, "--idle-timeout") == 0) {
      NEED_ARG
      if ((v = duration_ms(argv[++i])) < 0) BAD("a duration: N, Ns, Nms, Nm");
      a.po.idle_timeout_ms = (uint64_t)v;
    } else if (strcmp(o, "--connect-timeout") == 0) {
      NEED_ARG
      if ((v = duration_ms(argv[++i])) <= 0) BAD("a duration > 0: N, Ns, Nms, Nm");
      a.connect_timeout_ms = (uint64_t)v;
    } else if (strcmp(o, "--grace") == 0) {
      NEED_ARG
      if ((v = duration_ms(argv[++i])) < 0) BAD("a duration: N, Ns, Nms, Nm");
      a.grace_ms = (uint64_t)v;
    } else if (strcmp(o, "--max-conns") == 0) {
      NEED_ARG
      if ((v = number(argv[++i], 10000000)) <= 0) BAD("a number > 0");
      a.max_conns = (size_t)v;
      max_conns_set = true;
    } else if (strcmp(o, "--buffer") == 0) {
      NEED_ARG
      if ((v = number(argv[++i], 1 << 20)) < 4096) BAD("4096 .. 1048576 bytes");
      a.po.buffer = (size_t)v;
    } else if (strcmp(o, "--proxy-protocol") == 0) a.proxy_protocol = true;
    else if (strcmp(o, "--no-splice") == 0) a.po.no_splice = true;
    else if (strcmp(o, "-v") == 0 || strcmp(o, "--verbose") == 0) verbose = true;
    else if (strcmp(o, "--quiet") == 0) quiet = true;
    else if (strcmp(o, "-h") == 0 || strcmp(o, "--help") == 0) { usage(stdout); return 0; }
    else {
      fprintf(stderr, "ra-proxy: unknown argument '%s'\n", o);
      usage(stderr);
      return 2;
    }
#undef NEED_ARG
#undef BAD
  }
  if (verbose) ra_log_set_level(RA_LOG_DEBUG);
  else if (quiet) ra_log_set_level(RA_LOG_WARN);

  /* The original HTTP Enclave design's environment, for what no flag set. */
  char to_env[64];
  if (!listen) {
    listen = getenv("BIND_ADDR");
    if (!listen || !*listen) listen = "0.0.0.0:443";
  }
  if (!to) {
    const char *cid = getenv("ENCLAVE_CID"), *port = getenv("ENCLAVE_PORT");
    if (!cid || !*cid) cid = "16";
    if (!port || !*port) port = "5005";
    if (number(cid, UINT32_MAX) < 0 || number(port, UINT32_MAX) < 0) {
      fprintf(stderr, "ra-proxy: ENCLAVE_CID '%s' and ENCLAVE_PORT '%s' must be numbers\n", cid, port);
      return 2;
    }
    snprintf(to_env, sizeof to_env, "vsock:%s:%s", cid, port);
    to = to_env;
  }
  const char *err = NULL;
  if (parse_upstream(to, &a.up, &err) < 0) {
    fprintf(stderr, "ra-proxy: bad --to '%s': %s\n", to, err);
    return 2;
  }

  signal(SIGPIPE, SIG_IGN);
  /* Six descriptors per connection (two sockets, two pipes): take what the
   * hard limit allows, and say so if the cap cannot be reached. */
  struct rlimit rl;
  if (getrlimit(RLIMIT_NOFILE, &rl) == 0) {
    if (rl.rlim_cur < rl.rlim_max) {
      rl.rlim_cur = rl.rlim_max;
      setrlimit(RLIMIT_NOFILE, &rl);
      getrlimit(RLIMIT_NOFILE, &rl);
    }
    bool fits = rl.rlim_cur == RLIM_INFINITY || (rlim_t)a.max_conns * 6 + 32 <= rl.rlim_cur;
    if (!fits && !max_conns_set && rl.rlim_cur > 32 + 6)
      a.max_conns = (size_t)((rl.rlim_cur - 32) / 6); /* the default follows the limit */
    else if (!fits)
      ra_warn("ra-proxy: --max-conns %zu needs about %zu descriptors, the limit is %llu: past about %llu "
              "connections new ones will fail", a.max_conns, a.max_conns * 6 + 32,
              (unsigned long long)rl.rlim_cur, (unsigned long long)((rl.rlim_cur - 32) / 6));
  }
  int rc = ra_loop_new(&a.loop);
  if (rc) {
    fprintf(stderr, "ra-proxy: %s\n", ra_strerror(rc));
    return 1;
  }
  ra_timer_init(a.loop, &a.grace, on_grace, &a);
  rc = ra_listen(a.loop, listen, NULL, on_accept, &a, &a.listener);
  if (rc) {
    fprintf(stderr, "ra-proxy: cannot listen on %s: %s\n", listen, ra_strerror(rc));
    ra_loop_free(a.loop);
    return rc == -EINVAL ? 2 : 1;
  }
  ra_loop_on_signal(a.loop, SIGINT, on_signal, &a);
  ra_loop_on_signal(a.loop, SIGTERM, on_signal, &a);
  uint16_t port = ra_listener_port(a.listener);
  if (port) {
    const char *colon = strrchr(listen, ':');
    printf("listening on %.*s:%u, forwarding to %s\n", (int)(colon - listen), listen, port, a.up.desc);
  } else {
    printf("listening on %s, forwarding to %s\n", listen, a.up.desc);
  }
  fflush(stdout);
  rc = ra_loop_run(a.loop);
  if (a.listener) ra_listener_close(a.listener);
  ra_timer_stop(&a.grace);
  close_all(&a);
  ra_loop_free(a.loop);
  return rc ? 1 : 0;
}
