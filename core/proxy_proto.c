/* core/proxy_proto.c: PROXY protocol v2 encoder, v1/v2 parser, and a
 * reader that takes exactly the header off a socket (peek, then consume
 * only what the parser says belongs to the header). */
#include "raloop/core/proxy_proto.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/un.h>
#include <unistd.h>

#include "raloop/core/error.h"
#include "raloop/core/log.h"

static const uint8_t SIG[12] = {0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D, 0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A};
#define V1_MAX 107 /* the spec's worst case, CRLF included */
#define UNIX_PATH 108

/* ---- encoder ---------------------------------------------------------------- */

static void v6_of(const struct sockaddr *sa, uint8_t addr[16], uint16_t *port) {
  if (sa->sa_family == AF_INET6) {
    const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)sa;
    memcpy(addr, &in6->sin6_addr, 16);
    *port = in6->sin6_port;
  } else { /* IPv4-mapped */
    const struct sockaddr_in *in4 = (const struct sockaddr_in *)sa;
    memset(addr, 0, 10);
    addr[10] = addr[11] = 0xff;
    memcpy(addr + 12, &in4->sin_addr, 4);
    *port = in4->sin_port;
  }
}

static bool inet(const struct sockaddr *sa) {
  return sa && (sa->sa_family == AF_INET || sa->sa_family == AF_INET6);
}

int ra_proxy_proto_encode(const struct sockaddr *src, const struct sockaddr *dst, uint8_t *out,
                          size_t cap) {
  uint8_t body[216];
  size_t blen = 0;
  uint8_t cmd = 0x21, fam = 0x00; /* PROXY; UNSPEC until known */
  if (inet(src) && inet(dst)) {
    if (src->sa_family == AF_INET && dst->sa_family == AF_INET) {
      const struct sockaddr_in *s = (const struct sockaddr_in *)src, *d = (const struct sockaddr_in *)dst;
      fam = 0x11; /* TCP over IPv4 */
      memcpy(body, &s->sin_addr, 4);
      memcpy(body + 4, &d->sin_addr, 4);
      memcpy(body + 8, &s->sin_port, 2); /* already in network order */
      memcpy(body + 10, &d->sin_port, 2);
      blen = 12;
    } else {
      uint16_t sp, dp;
      fam = 0x21; /* TCP over IPv6 */
      v6_of(src, body, &sp);
      v6_of(dst, body + 16, &dp);
      memcpy(body + 32, &sp, 2);
      memcpy(body + 34, &dp, 2);
      blen = 36;
    }
  } else if (src && dst && src->sa_family == AF_UNIX && dst->sa_family == AF_UNIX) {
    fam = 0x31; /* unix stream */
    memset(body, 0, 216);
    /* sun_path of an accepted unix peer is often empty (unbound client). */
    const char *sp = ((const struct sockaddr_un *)src)->sun_path, *dp = ((const struct sockaddr_un *)dst)->sun_path;
    memcpy(body, sp, strnlen(sp, UNIX_PATH - 1));
    memcpy(body + UNIX_PATH, dp, strnlen(dp, UNIX_PATH - 1));
    blen = 216;
  } else {
    cmd = 0x20; /* LOCAL: the receiver uses the connection's own addresses */
  }
  if (cap < 16 + blen) return -ENOSPC;
  memcpy(out, SIG, 12);
  out[12] = cmd;
  out[13] = fam;
  out[14] = (uint8_t)(blen >> 8);
  out[15] = (uint8_t)blen;
  memcpy(out + 16, body, blen);
  return (int)(16 + blen);
}

/* ---- parser ------------------------------------------------------------------ */

static int parse_v2(const uint8_t *d, size_t len, ra_proxy_proto_info *info) {
  if (len < 16) return 0;
  if ((d[12] >> 4) != 2) return -EPROTO;
  unsigned cmd = d[12] & 0x0f;
  if (cmd > 1) return -EPROTO;
  size_t body = ((size_t)d[14] << 8) | d[15];
  if (16 + body > RA_PROXY_PROTO_MAX) return -E2BIG;
  if (len < 16 + body) return 0;
  unsigned af = d[13] >> 4, tp = d[13] & 0x0f;
  if (af > 3 || tp > 2) return -EPROTO;
  static const size_t need[4] = {0, 12, 36, 216};
  if (body < need[af]) return -EPROTO;
  memset(info, 0, sizeof *info);
  info->version = 2;
  /* LOCAL, UNSPEC family or a datagram: nothing the connection can use. */
  if (cmd == 0 || af == 0 || tp != 1) {
    info->local = true;
    return (int)(16 + body);
  }
  const uint8_t *a = d + 16;
  if (af == 1) {
    struct sockaddr_in *s = (struct sockaddr_in *)&info->src, *t = (struct sockaddr_in *)&info->dst;
    s->sin_family = t->sin_family = AF_INET;
    memcpy(&s->sin_addr, a, 4);
    memcpy(&t->sin_addr, a + 4, 4);
    memcpy(&s->sin_port, a + 8, 2);
    memcpy(&t->sin_port, a + 10, 2);
    info->src_len = info->dst_len = sizeof *s;
  } else if (af == 2) {
    struct sockaddr_in6 *s = (struct sockaddr_in6 *)&info->src, *t = (struct sockaddr_in6 *)&info->dst;
    s->sin6_family = t->sin6_family = AF_INET6;
    memcpy(&s->sin6_addr, a, 16);
    memcpy(&t->sin6_addr, a + 16, 16);
    memcpy(&s->sin6_port, a + 32, 2);
    memcpy(&t->sin6_port, a + 34, 2);
    info->src_len = info->dst_len = sizeof *s;
  } else {
    struct sockaddr_un *s = (struct sockaddr_un *)&info->src, *t = (struct sockaddr_un *)&info->dst;
    s->sun_family = t->sun_family = AF_UNIX;
    /* Paths are NUL-padded to 108; one that fills all 108 is cut by one. */
    memcpy(s->sun_path, a, UNIX_PATH - 1);
    memcpy(t->sun_path, a + UNIX_PATH, UNIX_PATH - 1);
    info->src_len = info->dst_len = sizeof *s;
  }
  return (int)(16 + body);
}

/* A decimal port, 0..65535, no sign, no leading zero (but "0"). */
static bool v1_port(const char *s, size_t n, uint16_t *out) {
  if (n == 0 || n > 5 || (n > 1 && s[0] == '0')) return false;
  unsigned v = 0;
  for (size_t i = 0; i < n; i++) {
    if (s[i] < '0' || s[i] > '9') return false;
    v = v * 10 + (unsigned)(s[i] - '0');
  }
  if (v > 65535) return false;
  *out = htons((uint16_t)v);
  return true;
}

static int parse_v1(const uint8_t *d, size_t len, ra_proxy_proto_info *info) {
  size_t n = len < V1_MAX ? len : V1_MAX, end = 0;
  bool found = false;
  for (size_t i = 0; i < n; i++) {
    if (d[i] == '\r') {
      if (i + 1 == len) return 0; /* the \n may follow */
      if (d[i + 1] != '\n') return -EPROTO;
      end = i;
      found = true;
      break;
    }
    if (d[i] < 0x20 || d[i] > 0x7e) return -EPROTO;
  }
  if (!found) return len >= V1_MAX ? -EPROTO : 0;
  /* Split on single spaces: PROXY PROTO SRC DST SPORT DPORT */
  const char *line = (const char *)d;
  const char *tok[7];
  size_t tl[7], nt = 0, start = 0;
  for (size_t i = 0; i <= end && nt < 7; i++) {
    if (i == end || line[i] == ' ') {
      tok[nt] = line + start;
      tl[nt++] = i - start;
      start = i + 1;
    }
  }
  memset(info, 0, sizeof *info);
  info->version = 1;
  if (nt < 2 || tl[0] != 5 || memcmp(tok[0], "PROXY", 5) != 0) return -EPROTO;
  if (tl[1] == 7 && memcmp(tok[1], "UNKNOWN", 7) == 0) { /* the rest is ignored */
    info->local = true;
    return (int)(end + 2);
  }
  int af;
  if (tl[1] == 4 && memcmp(tok[1], "TCP4", 4) == 0) af = AF_INET;
  else if (tl[1] == 4 && memcmp(tok[1], "TCP6", 4) == 0) af = AF_INET6;
  else return -EPROTO;
  if (nt != 6 || start != end + 1) return -EPROTO; /* exactly six fields */
  char a[2][INET6_ADDRSTRLEN];
  for (int k = 0; k < 2; k++) {
    if (tl[2 + k] == 0 || tl[2 + k] >= sizeof a[k]) return -EPROTO;
    memcpy(a[k], tok[2 + k], tl[2 + k]);
    a[k][tl[2 + k]] = '\0';
  }
  uint16_t sp, dp;
  if (!v1_port(tok[4], tl[4], &sp) || !v1_port(tok[5], tl[5], &dp)) return -EPROTO;
  if (af == AF_INET) {
    struct sockaddr_in *s = (struct sockaddr_in *)&info->src, *t = (struct sockaddr_in *)&info->dst;
    if (inet_pton(AF_INET, a[0], &s->sin_addr) != 1 || inet_pton(AF_INET, a[1], &t->sin_addr) != 1)
      return -EPROTO;
    s->sin_family = t->sin_family = AF_INET;
    s->sin_port = sp;
    t->sin_port = dp;
    info->src_len = info->dst_len = sizeof *s;
  } else {
    struct sockaddr_in6 *s = (struct sockaddr_in6 *)&info->src, *t = (struct sockaddr_in6 *)&info->dst;
    if (inet_pton(AF_INET6, a[0], &s->sin6_addr) != 1 || inet_pton(AF_INET6, a[1], &t->sin6_addr) != 1)
      return -EPROTO;
    s->sin6_family = t->sin6_family = AF_INET6;
    s->sin6_port = sp;
    t->sin6_port = dp;
    info->src_len = info->dst_len = sizeof *s;
  }
  return (int)(end + 2);
}

int ra_proxy_proto_parse(const uint8_t *data, size_t len, ra_proxy_proto_info *info) {
  if (len == 0) return 0;
  if (data[0] == SIG[0]) {
    size_t n = len < 12 ? len : 12;
    if (memcmp(data, SIG, n) != 0) return -EPROTO;
    return parse_v2(data, len, info);
  }
  static const char p1[] = "PROXY ";
  size_t n = len < 6 ? len : 6;
  if (memcmp(data, p1, n) != 0) return -EPROTO;
  if (len < 6) return 0;
  return parse_v1(data, len, info);
}

char *ra_proxy_proto_addr_str(const struct sockaddr_storage *ss, char *buf, size_t cap) {
  char ip[INET6_ADDRSTRLEN];
  if (!cap) return buf;
  if (ss->ss_family == AF_INET) {
    const struct sockaddr_in *s = (const struct sockaddr_in *)ss;
    inet_ntop(AF_INET, &s->sin_addr, ip, sizeof ip);
    snprintf(buf, cap, "%s:%u", ip, ntohs(s->sin_port));
  } else if (ss->ss_family == AF_INET6) {
    const struct sockaddr_in6 *s = (const struct sockaddr_in6 *)ss;
    inet_ntop(AF_INET6, &s->sin6_addr, ip, sizeof ip);
    snprintf(buf, cap, "[%s]:%u", ip, ntohs(s->sin6_port));
  } else if (ss->ss_family == AF_UNIX) {
    snprintf(buf, cap, "unix:%.*s", UNIX_PATH, ((const struct sockaddr_un *)ss)->sun_path);
  } else {
    snprintf(buf, cap, "-");
  }
  return buf;
}

/* ---- reader ------------------------------------------------------------------ */

struct ra_proxy_proto_reader {
  ra_loop *loop;
  int fd;
  ra_timer timer;
  ra_proxy_proto_cb done;
  void *ud;
  size_t len; /* header bytes consumed so far */
  uint8_t buf[RA_PROXY_PROTO_MAX];
};

static void reader_end(ra_proxy_proto_reader *r, int err, const ra_proxy_proto_info *info) {
  ra_loop_unwatch(r->loop, r->fd);
  ra_timer_stop(&r->timer);
  r->done(r->fd, err, info, r->ud);
  free(r);
}

static void reader_io(ra_loop *loop, int fd, unsigned events, void *ud) {
  ra_proxy_proto_reader *r = ud;
  /* Peek: bytes past the header must stay in the socket. */
  ssize_t n;
  do n = recv(fd, r->buf + r->len, sizeof r->buf - r->len, MSG_PEEK);
  while (n < 0 && errno == EINTR);
  if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return;
  if (n <= 0) {
    reader_end(r, n == 0 ? -ECONNRESET : -errno, NULL);
    return;
  }
  ra_proxy_proto_info info;
  int rc = ra_proxy_proto_parse(r->buf, r->len + (size_t)n, &info);
  if (rc < 0) {
    reader_end(r, rc, NULL);
    return;
  }
  /* Complete: take exactly the rest of the header. Need more: everything
   * peeked belongs to the header, take it all (level-triggered readiness
   * would otherwise report the same bytes forever). */
  size_t take = rc > 0 ? (size_t)rc - r->len : (size_t)n;
  ssize_t m;
  do m = recv(fd, r->buf + r->len, take, 0);
  while (m < 0 && errno == EINTR);
  if (m != (ssize_t)take) {
    reader_end(r, m < 0 ? -errno : -EIO, NULL);
    return;
  }
  r->len += take;
  if (rc > 0) reader_end(r, 0, &info);
  else if (r->len == sizeof r->buf) reader_end(r, -E2BIG, NULL);
}

static void reader_timeout(ra_timer *t, void *ud) { reader_end(ud, -ETIMEDOUT, NULL); }

int ra_proxy_proto_read(ra_loop *loop, int fd, uint64_t timeout_ms, ra_proxy_proto_cb done,
                        void *ud, ra_proxy_proto_reader **out) {
  if (out) *out = NULL;
  if (!loop || fd < 0 || !done) return -EINVAL;
  ra_proxy_proto_reader *r = malloc(sizeof *r);
  if (!r) return -ENOMEM;
  r->loop = loop;
  r->fd = fd;
  r->done = done;
  r->ud = ud;
  r->len = 0;
  ra_timer_init(loop, &r->timer, reader_timeout, r);
  int rc = ra_timer_start(&r->timer, timeout_ms ? timeout_ms : 10000, 0);
  if (rc == 0) rc = ra_loop_watch(loop, fd, RA_READABLE, reader_io, r);
  if (rc < 0) {
    ra_timer_stop(&r->timer);
    free(r);
    return rc;
  }
  if (out) *out = r;
  return 0;
}

void ra_proxy_proto_read_cancel(ra_proxy_proto_reader *r) {
  if (!r) return;
  ra_loop_unwatch(r->loop, r->fd);
  ra_timer_stop(&r->timer);
  free(r);
}

/* ---- gate -------------------------------------------------------------------- */

typedef struct gate_ent {
  struct gate_ent *prev, *next;
  ra_proxy_proto_gate *g;
  ra_proxy_proto_reader *r;
  ra_listener *l; /* valid while pending: a server frees its gate before its listeners */
  struct sockaddr_storage peer;
  socklen_t peer_len;
} gate_ent;

struct ra_proxy_proto_gate {
  ra_loop *loop;
  uint64_t timeout_ms;
  ra_accept_cb next;
  void *ud;
  gate_ent *ents;
  size_t n;
};

static void gate_unlink(gate_ent *e) {
  ra_proxy_proto_gate *g = e->g;
  if (e->prev) e->prev->next = e->next;
  else g->ents = e->next;
  if (e->next) e->next->prev = e->prev;
  g->n--;
}

static void gate_done(int fd, int err, const ra_proxy_proto_info *info, void *ud) {
  gate_ent *e = ud;
  ra_proxy_proto_gate *g = e->g;
  gate_unlink(e);
  if (err) {
    char p[160];
    RA_LOG_LIMITED(RA_LOG_DEBUG, 10, 1000, "proxy protocol: %s: no valid header: %s",
                   ra_proxy_proto_addr_str(&e->peer, p, sizeof p), ra_strerror(err));
    close(fd);
    free(e);
    return;
  }
  struct sockaddr_storage a;
  socklen_t al;
  if (info->local) {
    a = e->peer;
    al = e->peer_len;
  } else {
    a = info->src;
    al = info->src_len;
  }
  ra_listener *l = e->l;
  free(e);
  g->next(l, fd, (const struct sockaddr *)&a, al, g->ud);
}

int ra_proxy_proto_gate_new(ra_loop *loop, uint64_t timeout_ms, ra_accept_cb next, void *ud,
                            ra_proxy_proto_gate **out) {
  if (out) *out = NULL;
  if (!loop || !next || !out) return -EINVAL;
  ra_proxy_proto_gate *g = calloc(1, sizeof *g);
  if (!g) return -ENOMEM;
  g->loop = loop;
  g->timeout_ms = timeout_ms;
  g->next = next;
  g->ud = ud;
  *out = g;
  return 0;
}

void ra_proxy_proto_gate_accept(ra_listener *l, int fd, const struct sockaddr *peer, socklen_t peer_len,
                                void *ud) {
  ra_proxy_proto_gate *g = ud;
  gate_ent *e = calloc(1, sizeof *e);
  if (!e) {
    close(fd);
    return;
  }
  e->g = g;
  e->l = l;
  if (peer && peer_len <= sizeof e->peer) {
    memcpy(&e->peer, peer, peer_len);
    e->peer_len = peer_len;
  }
  e->next = g->ents;
  if (g->ents) g->ents->prev = e;
  g->ents = e;
  g->n++;
  if (ra_proxy_proto_read(g->loop, fd, g->timeout_ms, gate_done, e, &e->r) < 0) {
    gate_unlink(e);
    free(e);
    close(fd);
  }
}

size_t ra_proxy_proto_gate_pending(const ra_proxy_proto_gate *g) { return g->n; }

void ra_proxy_proto_gate_free(ra_proxy_proto_gate *g) {
  if (!g) return;
  while (g->ents) {
    gate_ent *e = g->ents;
    gate_unlink(e);
    int fd = e->r->fd;
    ra_proxy_proto_read_cancel(e->r);
    close(fd);
    free(e);
  }
  free(g);
}
