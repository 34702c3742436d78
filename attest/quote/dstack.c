/* attest/dstack.c: dstack guest agent client and quote provider (dstack.h). */
#include "raloop/attest/quote/dstack.h"

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

/* Decodes a chunked body in place. Returns its length or -1. */
static long dechunk(char *b, size_t len) {
  size_t in = 0, out = 0;
  for (;;) {
    char *end;
    if (in >= len) return -1;
    unsigned long n = strtoul(b + in, &end, 16);
    char *crlf = memmem(b + in, len - in, "\r\n", 2);
    if (!crlf || end == b + in || end > crlf) return -1;
    in = (size_t)(crlf - b) + 2;
    if (n == 0) return (long)out;
    if (n > len - in || len - in - n < 2 || memcmp(b + in + n, "\r\n", 2)) return -1;
    memmove(b + out, b + in, n);
    out += n;
    in += n + 2;
  }
}

/* One request on a fresh connection; *body is the malloc'd, NUL-terminated
 * answer body of a 2xx status. */
static int rpc(const char *path, int timeout_ms, const char *target, const char *json, char **body,
               size_t *body_len) {
  *body = NULL;
  *body_len = 0;
  if (timeout_ms <= 0) timeout_ms = RA_DSTACK_TIMEOUT_MS;
  int64_t deadline = now_ms() + timeout_ms;
  struct sockaddr_un sa = {.sun_family = AF_UNIX};
  if (strlen(path) >= sizeof sa.sun_path) {
    ra_error("dstack agent: %s: socket path too long", path);
    return -EINVAL;
  }
  strcpy(sa.sun_path, path);
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (fd < 0) return -errno;
  int rc = 0;
  char *buf = NULL;
  if (connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0) {
    rc = -errno;
    if (rc == -EAGAIN || rc == -EINPROGRESS) { /* backlog full: wait */
      rc = wait_fd(fd, POLLOUT, deadline);
      int soerr = 0;
      socklen_t sl = sizeof soerr;
      if (!rc && getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) == 0 && soerr) rc = -soerr;
    }
    if (rc) {
      if (rc == -ENOENT)
        ra_error("dstack agent: %s: no such socket (not in a dstack CVM, or the socket is not "
                            "mounted into the container)", path);
      else
        ra_error("dstack agent: %s: cannot connect: %s", path, strerror(-rc));
      goto out;
    }
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
  /* read until the answer is complete (Content-Length, chunked end, or
     * close), at most RA_DSTACK_MAX_RESPONSE */
  size_t cap = 16384, len = 0;
  buf = malloc(cap + 1);
  if (!buf) {
    rc = -ENOMEM;
    goto out;
  }
  size_t hdr_end = 0;
  long clen = -1;
  bool chunked = false;
  for (;;) {
    if (hdr_end) {
      if (clen >= 0 && len - hdr_end >= (size_t)clen) break;
      if (chunked && len - hdr_end >= 5 && !memcmp(buf + len - 5, "0\r\n\r\n", 5))
        break;
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
      buf[len] = 0;
      if (!hdr_end) {
        char *e = memmem(buf, len, "\r\n\r\n", 4);
        if (e) {
          hdr_end = (size_t)(e - buf) + 4;
          for (char *l = strstr(buf, "\r\n"); l && l < e; l = strstr(l + 2, "\r\n")) {
            if (!strncasecmp(l + 2, "Content-Length:", 15)) clen = strtol(l + 17, NULL, 10);
            if (!strncasecmp(l + 2, "Transfer-Encoding:", 18) && strstr(l, "chunked") &&
                strstr(l, "chunked") < strstr(l + 2, "\r\n"))
              chunked = true;
          }
          if (clen > (long)RA_DSTACK_MAX_RESPONSE) {
            rc = -EMSGSIZE;
            ra_error("dstack agent: %s: answer to %s announces %ld bytes, more than %u", path, target,
                   clen, RA_DSTACK_MAX_RESPONSE);
            goto out;
          }
        }
      }
      continue;
    }
    if (n == 0) break; /* closed */
    if (errno == EAGAIN || errno == EINTR) {
      if ((rc = wait_fd(fd, POLLIN, deadline))) {
        ra_error("dstack agent: %s: no complete answer to %s within %d ms", path, target, timeout_ms);
        goto out;
      }
      continue;
    }
    rc = -errno;
    ra_error("dstack agent: %s: reading the answer to %s: %s", path, target, strerror(errno));
    goto out;
  }
  int status = 0;
  if (!hdr_end || sscanf(buf, "HTTP/1.%*[01] %d", &status) != 1) {
    rc = -EPROTO;
    ra_error("dstack agent: %s: the answer to %s is not HTTP/1.x", path, target);
    goto out;
  }
  size_t blen = len - hdr_end;
  if (clen >= 0) {
    if (blen < (size_t)clen) {
      rc = -EPROTO;
      ra_error("dstack agent: %s: answer to %s cut short (%zu of %ld bytes)", path, target, blen, clen);
      goto out;
    }
    blen = (size_t)clen;
  } else if (chunked) {
    long d = dechunk(buf + hdr_end, blen);
    if (d < 0) {
      rc = -EPROTO;
      ra_error("dstack agent: %s: answer to %s: bad chunked encoding", path, target);
      goto out;
    }
    blen = (size_t)d;
  }
  memmove(buf, buf + hdr_end, blen);
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
  char *body;
  size_t blen;
  int rc = rpc(path, timeout_ms, target, json, &body, &blen);
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
  char *body;
  size_t blen;
  int rc = rpc(path, timeout_ms, target, "{}", &body, &blen);
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

#define NONCE_LEN 32

typedef struct dstack_prov {
  char *path;
} dstack_prov;

static uint8_t *dup_bytes(const void *p, size_t n) {
  uint8_t *d = malloc(n ? n : 1);
  if (d && n) memcpy(d, p, n);
  return d;
}

static int dstack_get(void *self, const uint8_t pub[32], ra_quote_evidence *ev) {
  dstack_prov *d = self;
  /* the binding of provider.h, as sim and tsm make it */
  char iat[32];
  int n = ra_quote_iat_format((int64_t)time(NULL), iat, sizeof iat);
  if (n < 0) return -EIO;
  ev->val = malloc(NONCE_LEN);
  ev->iat = dup_bytes(iat, (size_t)n);
  ev->runtime_data = dup_bytes(pub, 32);
  ev->signature = dup_bytes("", 0);
  if (!ev->val || !ev->iat || !ev->runtime_data || !ev->signature) return -ENOMEM;
  ev->val_len = NONCE_LEN;
  ev->iat_len = (size_t)n;
  ev->runtime_data_len = 32;
  ev->has_verifier_data = true;
  if (RAND_bytes(ev->val, NONCE_LEN) != 1) {
    ra_error("dstack provider: no randomness for the verifier nonce");
    return -EIO;
  }
  uint8_t rd[64];
  int rc = ra_sim_tdx_binding(ev->val, ev->val_len, ev->iat, ev->iat_len, pub, rd);
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
  return ra_quote_provider_new(&dstack_ops, d, true, false, out);
}
