/* serve/workers.c: see workers.h. The supervisor is a poll() loop over a
 * signalfd and one "ready" pipe per starting worker; it keeps no other
 * state than its table of processes. */

#include "raloop/serve/workers.h"

#include <arpa/inet.h>
#include <netdb.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "raloop/core/log.h"

#define BACKOFF_MIN_MS 100
#define BACKOFF_MAX_MS 10000
#define STABLE_MS 60000
#define MAX_WORKERS 1024

enum { P_FREE, P_STARTING, P_READY, P_DRAINING };

typedef struct proc {
  pid_t pid;
  int state;
  unsigned index, slot, gen;
  int ready_fd;       /* read end, until ready */
  uint64_t started;   /* ms */
  uint64_t deadline;  /* STARTING: ready by; DRAINING: SIGKILL at */
} proc;

typedef struct slot_state {
  uint64_t backoff_ms;
  uint64_t restart_at; /* 0: none pending */
} slot_state;

static bool in_worker;
static int ready_wfd = -1;
/* the listening sockets: socks[a * nidx + i] for address a, worker index i */
static int *socks;
static size_t n_addr, n_idx;
static uint16_t *ports;
static char (*addr_fd)[24]; /* the worker's "fd:K" per address */

static uint64_t now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

unsigned ra_workers_auto(void) {
  long n = sysconf(_SC_NPROCESSORS_ONLN);
  return n < 1 ? 1 : n > MAX_WORKERS ? MAX_WORKERS : (unsigned)n;
}

unsigned ra_workers_slots(unsigned n) { return 4 * (n ? n : ra_workers_auto()); }

bool ra_workers_in_worker(void) { return in_worker; }

void ra_workers_ready(void) {
  if (ready_wfd < 0) return;
  ssize_t w;
  do w = write(ready_wfd, "r", 1);
  while (w < 0 && errno == EINTR);
  close(ready_wfd);
  ready_wfd = -1;
}

const char *ra_workers_listen_addr(size_t i) {
  return in_worker && i < n_addr ? addr_fd[i] : NULL;
}

uint16_t ra_workers_port(size_t i) { return i < n_addr ? ports[i] : 0; }

static void close_socks(void) {
  for (size_t i = 0; socks && i < n_addr * n_idx; i++)
    if (socks[i] >= 0) close(socks[i]);
  free(socks);
  free(ports);
  free(addr_fd);
  socks = NULL;
  ports = NULL;
  addr_fd = NULL;
}

/* One SO_REUSEPORT listening socket on addr; *port: 0 to pick one (set to
 * the real one). Returns the fd or a negative errno. */
static int open_one(const char *addr, uint16_t *port, int backlog) {
  const char *colon = strrchr(addr, ':');
  if (!colon || strncmp(addr, "unix:", 5) == 0 || strncmp(addr, "vsock:", 6) == 0) return -EINVAL;
  char host[256], portstr[8];
  size_t hl = (size_t)(colon - addr);
  const char *h = addr;
  if (hl >= 2 && addr[0] == '[' && addr[hl - 1] == ']') {
    h++;
    hl -= 2;
  }
  if (hl >= sizeof host) return -EINVAL;
  memcpy(host, h, hl);
  host[hl] = '\0';
  char *end;
  unsigned long want = strtoul(colon + 1, &end, 10);
  if (end == colon + 1 || *end || want > 65535) return -EINVAL;
  snprintf(portstr, sizeof portstr, "%u", *port ? *port : (unsigned)want);
  struct addrinfo hints = {.ai_socktype = SOCK_STREAM, .ai_flags = AI_PASSIVE | AI_NUMERICSERV}, *ai;
  hints.ai_family = hl ? AF_UNSPEC : AF_INET6; /* all interfaces: dual-stack, as ra_listen */
  int g = getaddrinfo(hl ? host : NULL, portstr, &hints, &ai);
  if (g != 0 && !hl) {
    hints.ai_family = AF_INET;
    g = getaddrinfo(NULL, portstr, &hints, &ai);
  }
  if (g != 0) return -EADDRNOTAVAIL;
  int fd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
  int rc = fd < 0 ? -errno : 0, one = 1;
  if (rc == 0) {
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (ai->ai_family == AF_INET6) {
      int off = 0;
      setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &off, sizeof off);
    }
    if (setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) < 0 ||
        bind(fd, ai->ai_addr, ai->ai_addrlen) < 0 || listen(fd, backlog) < 0)
      rc = -errno;
  }
  freeaddrinfo(ai);
  struct sockaddr_storage b;
  socklen_t bl = sizeof b;
  if (rc == 0 && getsockname(fd, (struct sockaddr *)&b, &bl) < 0) rc = -errno;
  if (rc) {
    if (fd >= 0) close(fd);
    return rc;
  }
  *port = ntohs(b.ss_family == AF_INET ? ((struct sockaddr_in *)&b)->sin_port
                                       : ((struct sockaddr_in6 *)&b)->sin6_port);
  return fd;
}

static int open_socks(const ra_workers_opts *o, unsigned n) {
  n_addr = o->n_listen;
  n_idx = n;
  socks = malloc((n_addr * n_idx + 1) * sizeof *socks);
  ports = calloc(n_addr + 1, sizeof *ports);
  addr_fd = calloc(n_addr + 1, sizeof *addr_fd);
  if (!socks || !ports || !addr_fd) {
    close_socks();
    return -ENOMEM;
  }
  for (size_t i = 0; i < n_addr * n_idx; i++) socks[i] = -1;
  for (size_t a = 0; a < n_addr; a++)
    for (size_t i = 0; i < n_idx; i++) {
      int fd = open_one(o->listen[a], &ports[a], o->backlog > 0 ? o->backlog : 1024);
      if (fd < 0) {
        ra_error("workers: cannot listen on %s: %s", o->listen[a], strerror(-fd));
        close_socks();
        return fd;
      }
      socks[a * n_idx + i] = fd;
    }
  return 0;
}

/* In a new worker: keep only its own sockets. */
static void keep_socks(unsigned index) {
  for (size_t a = 0; a < n_addr; a++)
    for (size_t i = 0; i < n_idx; i++) {
      int *fd = &socks[a * n_idx + i];
      if (i == index) {
        snprintf(addr_fd[a], sizeof addr_fd[a], "fd:%d", *fd);
        *fd = -1; /* ra_listen owns it now */
      } else {
        close(*fd);
        *fd = -1;
      }
    }
}

/* ---- supervisor ---------------------------------------------------------------- */

typedef struct sup {
  ra_workers_opts o;
  unsigned n, nslots;
  proc *procs;       /* nslots entries; a proc's slot is its position */
  slot_state *idx;   /* per worker index */
  unsigned gen;      /* the generation serving (or starting, at first) */
  bool first_ready;
  bool reloading;    /* generation gen+1 is starting */
  bool stopping;
  bool start_failed; /* the first generation could not start */
  uint64_t stop_deadline;
  int sfd;
  sigset_t old_mask;
} sup;

static void describe(int status, char *buf, size_t len) {
  if (WIFEXITED(status)) snprintf(buf, len, "exit %d", WEXITSTATUS(status));
  else if (WIFSIGNALED(status)) snprintf(buf, len, "signal %d (%s)%s", WTERMSIG(status),
                                         strsignal(WTERMSIG(status)),
                                         WCOREDUMP(status) ? ", core dumped" : "");
  else snprintf(buf, len, "status %d", status);
}

/* Returns 1 in the child, 0 in the supervisor, <0 on error. */
static int spawn(sup *s, unsigned index, unsigned gen, ra_worker_info *info) {
  unsigned slot = s->nslots;
  for (unsigned i = 0; i < s->nslots; i++)
    if (s->procs[i].state == P_FREE) {
      slot = i;
      break;
    }
  if (slot == s->nslots) return -EAGAIN;
  int p[2];
  if (pipe2(p, O_CLOEXEC) < 0) return -errno;
  pid_t parent = getpid();
  pid_t pid = fork();
  if (pid < 0) {
    int e = -errno;
    close(p[0]);
    close(p[1]);
    return e;
  }
  if (pid == 0) {
    /* the worker: nothing of the supervisor's but what it was given */
    prctl(PR_SET_PDEATHSIG, SIGTERM);
    if (getppid() != parent) _exit(0); /* the supervisor is already gone */
    close(p[0]);
    close(s->sfd);
    for (unsigned i = 0; i < s->nslots; i++)
      if (s->procs[i].state != P_FREE && s->procs[i].ready_fd >= 0) close(s->procs[i].ready_fd);
    keep_socks(index);
    in_worker = true;
    ready_wfd = p[1];
    info->index = index;
    info->slot = slot;
    info->generation = gen;
    info->exit_code = 0;
    free(s->procs);
    free(s->idx);
    sigprocmask(SIG_SETMASK, &s->old_mask, NULL);
    return 1;
  }
  close(p[1]);
  proc *pr = &s->procs[slot];
  *pr = (proc){.pid = pid, .state = P_STARTING, .index = index, .slot = slot, .gen = gen,
               .ready_fd = p[0], .started = now_ms()};
  pr->deadline = pr->started + s->o.ready_timeout_ms;
  ra_info("workers: worker %u (generation %u) started, pid %d", index, gen, (int)pid);
  return 0;
}

static void kill_gen(sup *s, unsigned gen, bool older, int sig) {
  for (unsigned i = 0; i < s->nslots; i++) {
    proc *p = &s->procs[i];
    if (p->state == P_FREE || (older ? p->gen >= gen : p->gen != gen)) continue;
    kill(p->pid, sig);
    if (sig == SIGTERM && p->state != P_DRAINING) {
      p->state = P_DRAINING;
      p->deadline = now_ms() + s->o.shutdown_timeout_ms + 1000;
    }
  }
}

static bool gen_ready(sup *s, unsigned gen) {
  unsigned ready = 0;
  for (unsigned i = 0; i < s->nslots; i++)
    if (s->procs[i].state == P_READY && s->procs[i].gen == gen) ready++;
  return ready == s->n;
}

static size_t live(sup *s) {
  size_t n = 0;
  for (unsigned i = 0; i < s->nslots; i++) n += s->procs[i].state != P_FREE;
  return n;
}

static void stop_all(sup *s) {
  if (s->stopping) return;
  s->stopping = true;
  s->stop_deadline = now_ms() + s->o.shutdown_timeout_ms + 1000;
  for (unsigned i = 0; i < s->n; i++) s->idx[i].restart_at = 0;
  for (unsigned i = 0; i < s->nslots; i++)
    if (s->procs[i].state != P_FREE) kill(s->procs[i].pid, SIGTERM);
}

static void check_ready(sup *s) {
  if (!s->first_ready && gen_ready(s, s->gen)) {
    s->first_ready = true;
    ra_info("workers: %u worker%s ready", s->n, s->n == 1 ? "" : "s");
    if (s->o.on_ready) s->o.on_ready(s->o.ud);
  } else if (s->reloading && gen_ready(s, s->gen + 1)) {
    s->reloading = false;
    s->gen++;
    for (unsigned i = 0; i < s->n; i++) s->idx[i].restart_at = 0; /* the new ones replace them */
    ra_info("workers: generation %u ready, draining the previous one", s->gen);
    kill_gen(s, s->gen, true, SIGTERM);
  }
}

static void cancel_reload(sup *s, const char *why) {
  ra_error("workers: SIGHUP: replacement failed (%s); keeping the current workers", why);
  s->reloading = false;
  kill_gen(s, s->gen + 1, false, SIGTERM);
}

static void reaped(sup *s, proc *p, int status) {
  char how[96];
  describe(status, how, sizeof how);
  unsigned slot = p->slot, index = p->index, gen = p->gen;
  int state = p->state;
  uint64_t ran = now_ms() - p->started;
  if (p->ready_fd >= 0) close(p->ready_fd);
  *p = (proc){.state = P_FREE, .ready_fd = -1};
  if (s->o.on_exit) s->o.on_exit(slot, s->o.ud);
  bool clean = WIFEXITED(status) && WEXITSTATUS(status) == 0;
  if (state == P_DRAINING || s->stopping) {
    if (clean) ra_info("workers: worker %u (generation %u) drained and exited", index, gen);
    else ra_warn("workers: worker %u (generation %u) ended while draining: %s", index, gen, how);
    return;
  }
  if (!s->first_ready) { /* the first generation could not start: give up */
    ra_error("workers: worker %u failed to start: %s", index, how);
    s->start_failed = true;
    stop_all(s);
    return;
  }
  if (state == P_STARTING && gen != s->gen) { /* a replacement */
    cancel_reload(s, how);
    return;
  }
  slot_state *st = &s->idx[index];
  if (ran >= STABLE_MS) st->backoff_ms = BACKOFF_MIN_MS;
  ra_error("workers: worker %u (generation %u) died: %s; restarting in %llu ms", index, gen, how,
           (unsigned long long)st->backoff_ms);
  st->restart_at = now_ms() + st->backoff_ms;
  st->backoff_ms = st->backoff_ms * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : st->backoff_ms * 2;
}

static void on_sigchld(sup *s) {
  for (;;) {
    int status;
    pid_t pid = waitpid(-1, &status, WNOHANG);
    if (pid <= 0) return;
    for (unsigned i = 0; i < s->nslots; i++)
      if (s->procs[i].state != P_FREE && s->procs[i].pid == pid) {
        reaped(s, &s->procs[i], status);
        break;
      }
  }
}

/* Returns 1 in a child, 0 to go on. */
static int on_signal(sup *s, int signo, ra_worker_info *info) {
  switch (signo) {
  case SIGCHLD:
    on_sigchld(s);
    return 0;
  case SIGTERM:
  case SIGINT:
    ra_info("workers: signal %d: stopping the workers", signo);
    stop_all(s);
    return 0;
  case SIGUSR1:
    for (unsigned i = 0; i < s->nslots; i++)
      if (s->procs[i].state == P_READY) kill(s->procs[i].pid, SIGUSR1);
    return 0;
  case SIGHUP:
    if (s->stopping) return 0;
    if (s->reloading || !s->first_ready) {
      ra_warn("workers: SIGHUP: a start or replacement is already under way");
      return 0;
    }
    ra_info("workers: SIGHUP: starting generation %u", s->gen + 1);
    s->reloading = true;
    for (unsigned i = 0; i < s->n; i++) {
      int rc = spawn(s, i, s->gen + 1, info);
      if (rc == 1) return 1;
      if (rc < 0) {
        cancel_reload(s, strerror(-rc));
        return 0;
      }
    }
    return 0;
  default:
    return 0;
  }
}

static int timeout_ms(sup *s, uint64_t now) {
  uint64_t next = UINT64_MAX;
  for (unsigned i = 0; i < s->n; i++)
    if (s->idx[i].restart_at && s->idx[i].restart_at < next) next = s->idx[i].restart_at;
  for (unsigned i = 0; i < s->nslots; i++) {
    proc *p = &s->procs[i];
    if ((p->state == P_STARTING || p->state == P_DRAINING) && p->deadline < next) next = p->deadline;
  }
  if (s->stopping && s->stop_deadline < next) next = s->stop_deadline;
  if (next == UINT64_MAX) return -1;
  return next <= now ? 0 : next - now > 60000 ? 60000 : (int)(next - now);
}

/* Returns 1 in a child. */
static int on_timers(sup *s, ra_worker_info *info) {
  uint64_t now = now_ms();
  for (unsigned i = 0; i < s->nslots; i++) {
    proc *p = &s->procs[i];
    if (p->state == P_DRAINING && p->deadline <= now) {
      ra_warn("workers: worker %u (pid %d) did not drain in time: SIGKILL", p->index, (int)p->pid);
      kill(p->pid, SIGKILL);
      p->deadline = UINT64_MAX;
    } else if (p->state == P_STARTING && p->deadline <= now) {
      ra_error("workers: worker %u (pid %d) not ready in time: SIGKILL", p->index, (int)p->pid);
      kill(p->pid, SIGKILL);
      p->state = P_DRAINING; /* reaped as such; the failure is handled here */
      p->deadline = UINT64_MAX;
      if (!s->first_ready) {
        s->start_failed = true;
        stop_all(s);
      }
      else if (p->gen != s->gen && s->reloading) cancel_reload(s, "not ready in time");
      else s->idx[p->index].restart_at = now + s->idx[p->index].backoff_ms;
    }
  }
  if (s->stopping && s->stop_deadline <= now) {
    for (unsigned i = 0; i < s->nslots; i++)
      if (s->procs[i].state != P_FREE) kill(s->procs[i].pid, SIGKILL);
    s->stop_deadline = UINT64_MAX;
  }
  if (s->stopping) return 0;
  for (unsigned i = 0; i < s->n; i++) {
    if (!s->idx[i].restart_at || s->idx[i].restart_at > now) continue;
    s->idx[i].restart_at = 0;
    int rc = spawn(s, i, s->gen, info);
    if (rc == 1) return 1;
    if (rc < 0) {
      ra_error("workers: cannot restart worker %u: %s", i, strerror(-rc));
      s->idx[i].restart_at = now + s->idx[i].backoff_ms;
    }
  }
  return 0;
}

int ra_workers_start(const ra_workers_opts *opts, ra_worker_info *info) {
  sup s = {.sfd = -1};
  if (opts) s.o = *opts;
  memset(info, 0, sizeof *info);
  if (!s.o.shutdown_timeout_ms) s.o.shutdown_timeout_ms = 10000;
  if (!s.o.ready_timeout_ms) s.o.ready_timeout_ms = 60000;
  s.n = s.o.workers ? s.o.workers : ra_workers_auto();
  if (s.n > MAX_WORKERS) return -EINVAL;
  s.nslots = ra_workers_slots(s.n);
  s.procs = calloc(s.nslots, sizeof *s.procs);
  s.idx = calloc(s.n, sizeof *s.idx);
  if (!s.procs || !s.idx) {
    free(s.procs);
    free(s.idx);
    return -ENOMEM;
  }
  for (unsigned i = 0; i < s.nslots; i++) s.procs[i].ready_fd = -1;
  int orc = open_socks(&s.o, s.n);
  if (orc) {
    free(s.procs);
    free(s.idx);
    return orc;
  }
  for (unsigned i = 0; i < s.n; i++) s.idx[i].backoff_ms = BACKOFF_MIN_MS;
  sigset_t set;
  sigemptyset(&set);
  int sigs[] = {SIGCHLD, SIGHUP, SIGTERM, SIGINT, SIGUSR1};
  for (size_t i = 0; i < sizeof sigs / sizeof *sigs; i++) sigaddset(&set, sigs[i]);
  sigprocmask(SIG_BLOCK, &set, &s.old_mask);
  s.sfd = signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK);
  int rc = s.sfd < 0 ? -errno : 0;
  for (unsigned i = 0; i < s.n && rc == 0; i++) {
    rc = spawn(&s, i, 0, info);
    if (rc == 1) return 1;
  }
  if (rc < 0) {
    ra_error("workers: cannot start: %s", strerror(-rc));
    if (live(&s) == 0) {
      if (s.sfd >= 0) close(s.sfd);
      close_socks();
      sigprocmask(SIG_SETMASK, &s.old_mask, NULL);
      free(s.procs);
      free(s.idx);
      return rc;
    }
    s.start_failed = true;
    stop_all(&s);
  }
  while (!s.stopping || live(&s) > 0) {
    struct pollfd pf[1 + 4 * MAX_WORKERS];
    proc *who[1 + 4 * MAX_WORKERS];
    nfds_t n = 0;
    pf[n++] = (struct pollfd){.fd = s.sfd, .events = POLLIN};
    for (unsigned i = 0; i < s.nslots; i++)
      if (s.procs[i].state == P_STARTING && s.procs[i].ready_fd >= 0) {
        who[n] = &s.procs[i];
        pf[n++] = (struct pollfd){.fd = s.procs[i].ready_fd, .events = POLLIN};
      }
    int r = poll(pf, n, timeout_ms(&s, now_ms()));
    if (r < 0 && errno != EINTR) break;
    for (nfds_t i = 1; r > 0 && i < n; i++) {
      if (!pf[i].revents) continue;
      proc *p = who[i];
      char c;
      ssize_t got = read(p->ready_fd, &c, 1);
      close(p->ready_fd);
      p->ready_fd = -1;
      if (got == 1 && p->state == P_STARTING) p->state = P_READY;
      /* EOF: it exits before being ready; SIGCHLD says how */
    }
    if (r > 0 && (pf[0].revents & POLLIN)) {
      struct signalfd_siginfo si;
      while (read(s.sfd, &si, sizeof si) == sizeof si)
        if (on_signal(&s, (int)si.ssi_signo, info) == 1) return 1;
    }
    if (!s.stopping) check_ready(&s);
    if (on_timers(&s, info) == 1) return 1;
  }
  close(s.sfd);
  close_socks();
  sigprocmask(SIG_SETMASK, &s.old_mask, NULL);
  free(s.procs);
  free(s.idx);
  info->exit_code = s.start_failed ? 1 : 0;
  ra_info("workers: all workers stopped");
  return 0;
}
