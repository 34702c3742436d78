/* attest/dstack.c: dstack guest agent client and quote provider (dstack.h). */
#include "raloop/attest/quote/dstack.h"
#include "raloop/attest/quote/dstack_internal.h"
#include "provider_internal.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>
#include <openssl/rand.h>

#include "raloop/attest/quote/hexb64.h"
#include "raloop/attest/quote/quote.h"
#include "raloop/attest/quote/sim.h"
#include "raloop/core/log.h"

void ra_dstack_quote_clear(ra_dstack_quote *q) {
  if (!q) return;
  free(q->quote);
  free(q->event_log);
  free(q->vm_config);
  memset(q, 0, sizeof *q);
}

void ra_dstack_info_clear(ra_dstack_info *i) {
  if (!i) return;
  free(i->app_id);
  free(i->instance_id);
  free(i->app_cert);
  free(i->tcb_info);
  free(i->app_name);
  free(i->device_id);
  free(i->compose_hash);
  free(i->key_provider_info);
  free(i->os_image_hash);
  memset(i, 0, sizeof *i);
}

bool ra_dstack_is_tappd(const char *path) {
  if (!path) return false;
  const char *base = strrchr(path, '/');
  return strstr(base ? base + 1 : path, "tappd") != NULL;
}

static int64_t now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Waits for fd to be ready for ev until deadline. 0, -ETIMEDOUT, -errno. */
static int wait_fd(int fd, short ev, int64_t deadline) {
  for (;;) {
    int64_t left = deadline - now_ms();
    if (left <= 0) return -ETIMEDOUT;
    struct pollfd p = {fd, ev, 0};
    int n = poll(&p, 1, (int)left);
    if (n > 0) return 0;
    if (n == 0) return -ETIMEDOUT;
    if (errno != EINTR) return -errno;
  }
}

/* ---- the answer's framing: pure (dstack_internal.h) ------------------- */

static int hexval(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  c = (char)(c | 0x20);
  return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

/* Walks a chunked body b[0..len): 1 complete (*decoded = its length), 0
 * incomplete, -1 malformed. With decode, the data is also moved to the
 * front of b (in place: the output never overtakes the input). */
static int chunk_walk(char *b, size_t len, bool decode, size_t *decoded) {
  size_t in = 0, out = 0;
  for (;;) {
    const char *crlf = memmem(b + in, len - in, "\r\n", 2);
    if (!crlf) return len - in > 64 ? -1 : 0; /* a size line is short */
    size_t n = 0, digits = 0;
    const char *p = b + in;
    for (; p < crlf && hexval(*p) >= 0; p++) {
      if (++digits > 15) return -1; /* beyond any bound here */
      n = n * 16 + (size_t)hexval(*p);
    }
    if (!digits || (p < crlf && *p != ';' && *p != ' ' && *p != '\t')) return -1;
    in = (size_t)(crlf - b) + 2;
    if (n == 0) {
      /* the agent sends no trailers: the final CRLF follows */
      if (len - in < 2) return 0;
      if (memcmp(b + in, "\r\n", 2)) return -1;
      *decoded = out;
      return 1;
    }
    if (n > DSTACK_HTTP_MAX) return -1;
    if (n > len - in || len - in - n < 2) return 0;
    if (memcmp(b + in + n, "\r\n", 2)) return -1;
    if (decode) memmove(b + out, b + in, n);
    out += n;
    in += n + 2;
  }
}

int dstack_http_answer(char *buf, size_t len, bool eof, int *status, char **body,
                       size_t *body_len) {
  *status = 0;
  *body = NULL;
  *body_len = 0;
  char *e = memmem(buf, len, "\r\n\r\n", 4);
  if (!e) {
    if (len > DSTACK_HTTP_MAX_HEAD) return -EPROTO;
    return eof ? -EPROTO : 0;
  }
  size_t hdr_end = (size_t)(e - buf) + 4;
  /* status line: HTTP/1.0 or HTTP/1.1, three digits */
  if (hdr_end < 16 || memcmp(buf, "HTTP/1.", 7) || (buf[7] != '0' && buf[7] != '1') ||
      buf[8] != ' ' || (buf[12] != ' ' && buf[12] != '\r'))
    return -EPROTO;
  int st = 0;
  for (int i = 9; i < 12; i++) {
    if (buf[i] < '0' || buf[i] > '9') return -EPROTO;
    st = st * 10 + (buf[i] - '0');
  }
  if (st < 100 || st > 599) return -EPROTO;
  long long clen = -1;
  bool chunked = false;
  /* header lines, each "\r\nName: value" up to e */
  for (char *l = memmem(buf, hdr_end, "\r\n", 2); l && l < e;) {
    char *next = memmem(l + 2, (size_t)(e + 2 - (l + 2)), "\r\n", 2);
    if (!next) break;
    size_t ll = (size_t)(next - (l + 2));
    if (ll >= 15 && !strncasecmp(l + 2, "Content-Length:", 15)) {
      const char *v = l + 17;
      while (v < next && (*v == ' ' || *v == '\t')) v++;
      if (v == next || clen >= 0) return -EPROTO; /* empty, or twice */
      clen = 0;
      for (; v < next && *v >= '0' && *v <= '9'; v++) {
        clen = clen * 10 + (*v - '0');
        if (clen > DSTACK_HTTP_MAX) return -EMSGSIZE;
      }
      while (v < next && (*v == ' ' || *v == '\t')) v++;
      if (v != next) return -EPROTO;
    } else if (ll >= 18 && !strncasecmp(l + 2, "Transfer-Encoding:", 18)) {
      const char *v = l + 20;
      while (v < next && (*v == ' ' || *v == '\t')) v++;
      if ((size_t)(next - v) >= 7 && !strncasecmp(v, "chunked", 7)) chunked = true;
      else return -EPROTO; /* gzip and friends: the agent sends none */
    }
    l = next;
  }
  if (chunked && clen >= 0) return -EPROTO; /* RFC 9112 6.3: ambiguous, refused */
  char *b = buf + hdr_end;
  size_t have = len - hdr_end;
  if (chunked) {
    size_t dec;
    int r = chunk_walk(b, have, false, &dec);
    if (r < 0) return -EPROTO;
    if (r == 0) return eof ? -EPROTO : 0;
    chunk_walk(b, have, true, &dec);
    *body_len = dec;
  } else if (clen >= 0) {
    if (have < (size_t)clen) return eof ? -EPROTO : 0;
    *body_len = (size_t)clen;
  } else {
    if (!eof) return 0; /* until close */
    *body_len = have;
  }
  *status = st;
  *body = b;
  return 1;
}

/* Connects to path before deadline: a full backlog (EAGAIN on a unix
 * socket) is retried, as the kernel offers no completion to wait for. */
static int connect_unix(int fd, const char *path, int64_t deadline) {
  struct sockaddr_un sa = {.sun_family = AF_UNIX};
  strcpy(sa.sun_path, path);
  for (;;) {
    if (connect(fd, (struct sockaddr *)&sa, sizeof sa) == 0) return 0;
    if (errno == EINTR) continue;
    if (errno != EAGAIN) return -errno;
    if (now_ms() >= deadline) return -ETIMEDOUT;
    poll(NULL, 0, 10);
  }
}

/* One request on a fresh connection; *body is the malloc'd, NUL-terminated
 * answer body of a 2xx status. Failures are logged, naming the socket. */
static int rpc(const char *path, int timeout_ms, const char *target, const char *json, char **body,
               size_t *body_len) {
  *body = NULL;
  *body_len = 0;
  if (timeout_ms <= 0) timeout_ms = RA_DSTACK_TIMEOUT_MS;
  int64_t deadline = now_ms() + timeout_ms;
  if (strlen(path) >= sizeof ((struct sockaddr_un *)0)->sun_path) {
    ra_error("dstack agent: %s: socket path too long", path);
    return -EINVAL;
  }
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (fd < 0) return -errno;
  char *buf = NULL;
  int rc = connect_unix(fd, path, deadline);
  if (rc) {
    if (rc == -ENOENT)
      ra_error("dstack agent: %s: no such socket (not in a dstack CVM, or the socket is not "
               "mounted into the container)", path);
    else
      ra_error("dstack agent: %s: cannot connect: %s", path, strerror(-rc));
    goto out;
  }
  /* the request, as dstack's SDKs write it */
  size_t jl = strlen(json);
  char head[256];
  int hl = snprintf(head, sizeof head,
                    "POST %s HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n"
                    "Content-Length: %zu\r\nConnection: close\r\n\r\n",
                    target, jl);
  const char *parts[2] = {head, json};
  size_t lens[2] = {(size_t)hl, jl};
  for (int p = 0; p < 2 && !rc; p++) {
    size_t off = 0;
    while (off < lens[p]) {
      ssize_t n = send(fd, parts[p] + off, lens[p] - off, MSG_NOSIGNAL);
      if (n > 0) {
        off += (size_t)n;
      } else if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
        if ((rc = wait_fd(fd, POLLOUT, deadline))) break;
      } else {
        rc = n < 0 ? -errno : -EPIPE;
        break;
      }
    }
  }
  if (rc) {
    ra_error("dstack agent: %s: sending %s: %s", path, target, strerror(-rc));
    goto out;
  }
  /* read until the answer is complete, at most RA_DSTACK_MAX_RESPONSE */
  size_t cap = 16384, len = 0;
  buf = malloc(cap + 1);
  if (!buf) {
    rc = -ENOMEM;
    goto out;
  }
  int status = 0;
  char *b = NULL;
  size_t blen = 0;
  bool eof = false;
  for (;;) {
    buf[len] = 0;
    int r = dstack_http_answer(buf, len, eof, &status, &b, &blen);
    if (r == 1) break;
    if (r < 0) {
      rc = r;
      if (r == -EMSGSIZE)
        ra_error("dstack agent: %s: answer to %s larger than %u bytes", path, target,
                 RA_DSTACK_MAX_RESPONSE);
      else
        ra_error("dstack agent: %s: the answer to %s is not well-formed HTTP/1.x%s", path, target,
                 eof ? " (or cut short)" : "");
      goto out;
    }
    if (len == cap) {
      if (cap >= RA_DSTACK_MAX_RESPONSE) {
        rc = -EMSGSIZE;
        ra_error("dstack agent: %s: answer to %s larger than %u bytes", path, target,
                 RA_DSTACK_MAX_RESPONSE);
        goto out;
      }
      cap = cap * 2 > RA_DSTACK_MAX_RESPONSE ? RA_DSTACK_MAX_RESPONSE : cap * 2;
      char *nb = realloc(buf, cap + 1);
      if (!nb) {
        rc = -ENOMEM;
        goto out;
      }
      buf = nb;
    }
    ssize_t n = recv(fd, buf + len, cap - len, 0);
    if (n > 0) {
      len += (size_t)n;
    } else if (n == 0) {
      eof = true;
    } else if (errno == EAGAIN || errno == EINTR) {
      if ((rc = wait_fd(fd, POLLIN, deadline))) {
        ra_error("dstack agent: %s: no complete answer to %s within %d ms", path, target,
                 timeout_ms);
        goto out;
      }
    } else {
      rc = -errno;
      ra_error("dstack agent: %s: reading the answer to %s: %s", path, target, strerror(errno));
      goto out;
    }
  }
  memmove(buf, b, blen);
  buf[blen] = 0;
  if (status < 200 || status > 299) {
    /* the agent says why in {"error": "..."} (prpc) or plain text */
    json_t *j = json_loadb(buf, blen, 0, NULL);
    const char *why = json_string_value(json_object_get(j, "error"));
    ra_error("dstack agent: %s: %s answered HTTP %d: %.200s", path, target, status,
             why ? why : blen ? buf : "(no body)");
    json_decref(j);
    rc = -EPROTO;
    goto out;
  }
  *body = buf;
  *body_len = blen;
  buf = NULL;
out:
  free(buf);
  close(fd);
  return rc;
}

static char *dup_str(json_t *o, const char *key) {
  const char *s = json_string_value(json_object_get(o, key));
  return s ? strdup(s) : NULL;
}

/* hex, optionally "0x"-prefixed, into a malloc'd buffer */
static int hex_field(json_t *o, const char *key, uint8_t **out, size_t *len) {
  const char *s = json_string_value(json_object_get(o, key));
  if (!s) return -ENOENT;
  if (!strncmp(s, "0x", 2)) s += 2;
  size_t l = strlen(s);
  if (l % 2 || !l) return -EINVAL;
  *out = malloc(l / 2);
  if (!*out) return -ENOMEM;
  if (ra_hex_decode_exact(s, l, *out, l / 2)) {
    free(*out);
    *out = NULL;
    return -EINVAL;
  }
  *len = l / 2;
  return 0;
}

/* rpc() whose answer must be a JSON object: *out (caller's json_decref).
 * Returns 0, rpc()'s errors (logged), or -EBADMSG (logged). */
static int rpc_json(const char *path, int timeout_ms, const char *target, const char *req,
                    json_t **out) {
  char *body;
  size_t blen;
  int rc = rpc(path, timeout_ms, target, req, &body, &blen);
  if (rc) return rc;
  json_error_t je;
  json_t *j = json_loadb(body, blen, 0, &je);
  free(body);
  if (!json_is_object(j)) {
    ra_error("dstack agent: %s: %s answered garbled JSON: %s", path, target,
             j ? "not an object" : je.text);
    json_decref(j);
    return -EBADMSG;
  }
  *out = j;
  return 0;
}

int ra_dstack_get_quote(const char *socket_path, int timeout_ms, const uint8_t *report_data,
                        size_t rd_len, ra_dstack_quote *out) {
  if (!out) return -EINVAL;
  memset(out, 0, sizeof *out);
  if ((!report_data && rd_len) || rd_len > 64) {
    ra_error("dstack agent: report_data must be at most 64 bytes");
    return -EINVAL;
  }
  const char *path = socket_path ? socket_path : RA_DSTACK_SOCKET;
  bool tappd = ra_dstack_is_tappd(path);
  uint8_t rd[64] = {0};
  if (rd_len) memcpy(rd, report_data, rd_len);
  char hex[129], json[256];
  /* tappd's raw mode wants exactly 64 bytes: pad as the dstack agent does */
  ra_hex_encode(rd, tappd ? 64 : rd_len, hex);
  const char *target = tappd ? "/prpc/Tappd.TdxQuote" : "/GetQuote";
  if (tappd)
    snprintf(json, sizeof json, "{\"report_data\":\"%s\",\"hash_algorithm\":\"raw\"}", hex);
  else
    snprintf(json, sizeof json, "{\"report_data\":\"%s\"}", hex);
  json_t *j;
  int rc = rpc_json(path, timeout_ms, target, json, &j);
  if (rc) return rc;
  rc = hex_field(j, "quote", &out->quote, &out->quote_len);
  if (rc) {
    ra_error("dstack agent: %s: %s answer has %s \"quote\"", path, target,
           rc == -ENOENT ? "no" : "a garbled (not hex)");
    json_decref(j);
    ra_dstack_quote_clear(out);
    return rc == -ENOMEM ? rc : -EBADMSG;
  }
  json_t *el = json_object_get(j, "event_log");
  if (json_is_string(el)) {
    out->event_log = strdup(json_string_value(el));
    out->event_log_len = json_string_length(el);
  } else if (json_is_array(el)) {
    out->event_log = json_dumps(el, JSON_COMPACT);
    out->event_log_len = out->event_log ? strlen(out->event_log) : 0;
  }
  out->vm_config = dup_str(j, "vm_config");
  uint8_t *echo = NULL;
  size_t echo_len = 0;
  if (hex_field(j, "report_data", &echo, &echo_len) == 0 && echo_len == 64) {
    out->has_report_data = true;
    memcpy(out->report_data, echo, 64);
  }
  free(echo);
  json_decref(j);
  ra_quote q;
  int prc = ra_quote_parse(out->quote, out->quote_len, &q);
  if (prc) {
    ra_error("dstack agent: %s: the quote (%zu bytes) does not parse: %s", path, out->quote_len,
           ra_strerror(prc));
    ra_dstack_quote_clear(out);
    return -EBADMSG;
  }
  if (memcmp(ra_quote_report_data(&q), rd, 64) != 0) {
    ra_error("dstack agent: %s: the quote carries other report_data than asked for", path);
    ra_dstack_quote_clear(out);
    return -EBADMSG;
  }
  return 0;
}

int ra_dstack_quote_from_json(const char *json, size_t len, uint8_t **quote, size_t *quote_len) {
  if (!quote || !quote_len) return -EINVAL;
  *quote = NULL;
  *quote_len = 0;
  json_t *j = json ? json_loadb(json, len, 0, NULL) : NULL;
  int rc = j ? hex_field(j, "quote", quote, quote_len) : -EINVAL;
  json_decref(j);
  return rc == -ENOMEM ? rc : rc ? -EINVAL : 0;
}

int ra_dstack_get_info(const char *socket_path, int timeout_ms, ra_dstack_info *out) {
  if (!out) return -EINVAL;
  memset(out, 0, sizeof *out);
  const char *path = socket_path ? socket_path : RA_DSTACK_SOCKET;
  const char *target = ra_dstack_is_tappd(path) ? "/prpc/Tappd.Info" : "/Info";
  json_t *j;
  int rc = rpc_json(path, timeout_ms, target, "{}", &j);
  if (rc) return rc;
  out->app_id = dup_str(j, "app_id");
  out->instance_id = dup_str(j, "instance_id");
  out->app_cert = dup_str(j, "app_cert");
  out->tcb_info = dup_str(j, "tcb_info");
  out->app_name = dup_str(j, "app_name");
  out->device_id = dup_str(j, "device_id");
  out->compose_hash = dup_str(j, "compose_hash");
  out->key_provider_info = dup_str(j, "key_provider_info");
  out->os_image_hash = dup_str(j, "os_image_hash");
  json_decref(j);
  if (!out->app_id) {
    ra_error("dstack agent: %s: %s answer has no app_id", path, target);
    ra_dstack_info_clear(out);
    return -EBADMSG;
  }
  return 0;
}

/* ---- the provider ---------------------------------------------------- */


typedef struct dstack_prov {
  char *path;
} dstack_prov;

static int dstack_get(void *self, const uint8_t pub[32], ra_quote_evidence *ev) {
  dstack_prov *d = self;
  /* the binding of provider.h, as sim and tsm make it */
  uint8_t rd[64];
  int rc = ra_quote_ev_tdx_binding(pub, ev, rd);
  if (rc) return rc;
  ra_dstack_quote q;
  rc = ra_dstack_get_quote(d->path, 0, rd, 64, &q); /* logs why it failed */
  if (rc) return rc;
  ev->quote = q.quote;
  ev->quote_len = q.quote_len;
  q.quote = NULL;
  ev->binds_key = true;
  ra_dstack_quote_clear(&q);
  return 0;
}

/* RA-TLS and other bindings: the agent quotes exactly these 64 bytes. */
static int dstack_get_report(void *self, const uint8_t report_data[64], uint8_t **quote, size_t *len) {
  dstack_prov *d = self;
  ra_dstack_quote q;
  int rc = ra_dstack_get_quote(d->path, 0, report_data, 64, &q); /* logs why it failed */
  if (rc) return rc;
  *quote = q.quote;
  *len = q.quote_len;
  q.quote = NULL;
  ra_dstack_quote_clear(&q);
  return 0;
}

static void dstack_free(void *self) {
  dstack_prov *d = self;
  if (!d) return;
  free(d->path);
  free(d);
}

static const ra_quote_provider_ops dstack_ops = {"dstack", dstack_get, dstack_free};

int ra_quote_provider_dstack(const char *socket_path, ra_quote_provider **out) {
  if (!out) return -EINVAL;
  *out = NULL;
  const char *path = socket_path && *socket_path ? socket_path : RA_DSTACK_SOCKET;
  struct stat st;
  bool exists = stat(path, &st) == 0;
  if (!exists || !S_ISSOCK(st.st_mode)) {
    ra_error("dstack provider: %s: %s (not in a dstack CVM, or the agent's socket is not mounted "
             "into the container)",
             path, exists ? "not a socket" : "no such socket");
    return -ENOENT;
  }
  dstack_prov *d = calloc(1, sizeof *d);
  if (!d || !(d->path = strdup(path))) {
    free(d);
    return -ENOMEM;
  }
  int rc = ra_quote_provider_new(&dstack_ops, d, true, false, out);
  if (rc == 0) ra_quote_provider_set_get_report(*out, dstack_get_report);
  return rc;
}
