/* http/client.c: one request per connection on the loop (see client.h). */
#include "raloop/http/client.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <llhttp.h>

#include "raloop/core/buf.h"
#include "raloop/core/error.h"
#include "raloop/core/log.h"
#include "raloop/core/stream.h"
#include "raloop/core/tls.h"
#include "raloop/http/client_internal.h"

/* ---- URL ------------------------------------------------------------------ */

int ra_http_url_parse(const char *url, ra_http_url *u) {
  if (!url || !u) return -EINVAL;
  memset(u, 0, sizeof *u);
  const char *p;
  static const struct { const char *prefix; bool tls, ws; } schemes[] = {
      {"http://", false, false}, {"https://", true, false},
      {"ws://", false, true},    {"wss://", true, true}};
  p = NULL;
  for (size_t i = 0; i < sizeof schemes / sizeof schemes[0] && !p; i++) {
    size_t n = strlen(schemes[i].prefix);
    if (strncasecmp(url, schemes[i].prefix, n) == 0) {
      p = url + n;
      u->tls = schemes[i].tls;
      u->ws = schemes[i].ws;
    }
  }
  if (!p) return strstr(url, "://") ? -EPROTONOSUPPORT : -EINVAL;
  const char *hs, *he;
  if (*p == '[') {
    hs = p + 1;
    he = strchr(hs, ']');
    if (!he) return -EINVAL;
    p = he + 1;
  } else {
    hs = p;
    p += strcspn(p, ":/?#");
    he = p;
  }
  size_t hl = (size_t)(he - hs);
  if (!hl || hl >= sizeof u->host) return -EINVAL;
  memcpy(u->host, hs, hl);
  u->host[hl] = 0;
  if (strpbrk(u->host, "@ \t\r\n/?#[]")) return -EINVAL; /* no userinfo, no junk */
  unsigned long def = u->tls ? 443 : 80, pn = def;
  if (*p == ':') {
    char *e;
    p++;
    if (*p < '0' || *p > '9') return -EINVAL;
    pn = strtoul(p, &e, 10);
    if (pn == 0 || pn > 65535) return -EINVAL;
    p = e;
  }
  if (*p && *p != '/' && *p != '?') return -EINVAL;
  if (strchr(p, '#')) return -EINVAL;
  for (const char *q = p; *q; q++)
    if ((unsigned char)*q <= 0x20 || *q == 0x7f) return -EINVAL;
  u->port = (uint16_t)pn;
  u->target = *p ? p : "/";
  bool v6 = memchr(u->host, ':', hl) != NULL;
  int n = snprintf(u->host_hdr, sizeof u->host_hdr, v6 ? "[%s]" : "%s", u->host);
  if (n < 0 || (size_t)n >= sizeof u->host_hdr) return -EINVAL;
  if (pn != def) {
    int m = snprintf(u->host_hdr + n, sizeof u->host_hdr - (size_t)n, ":%lu", pn);
    if (m < 0 || (size_t)m >= sizeof u->host_hdr - (size_t)n) return -EINVAL;
  }
  return 0;
}

/* ---- response parser -------------------------------------------------------- */

#define MAX_HEADERS 100

struct ra_http_resp_parser {
  llhttp_t p;
  llhttp_settings_t s;
  size_t max_head, max_body, head_bytes;
  int err;   /* the first error: -EMSGSIZE, -EPROTO, -ENOMEM */
  bool done; /* a final (non-1xx) response is complete */
  bool in_value;
  int status;
  ra_buf text; /* header names and values, back to back */
  struct {
    size_t no, nl, vo, vl;
  } idx[MAX_HEADERS];
  size_t nidx;
  ra_buf body;
  ra_http_header hdrs[MAX_HEADERS];
};

static int fail(ra_http_resp_parser *rp, int err) {
  if (!rp->err) rp->err = err;
  return -1;
}

static int count_head(ra_http_resp_parser *rp, size_t len) {
  rp->head_bytes += len;
  return rp->head_bytes > rp->max_head ? fail(rp, -EMSGSIZE) : 0;
}

static int on_message_begin(llhttp_t *p) {
  ra_http_resp_parser *rp = p->data;
  ra_buf_reset(&rp->text);
  ra_buf_reset(&rp->body);
  rp->nidx = 0;
  rp->in_value = false;
  rp->head_bytes = 0;
  return 0;
}

static int on_status(llhttp_t *p, const char *at, size_t len) {
  return count_head(p->data, len);
}

static int on_header_field(llhttp_t *p, const char *at, size_t len) {
  ra_http_resp_parser *rp = p->data;
  if (count_head(rp, len)) return -1;
  if (rp->in_value || rp->nidx == 0) {
    if (rp->nidx == MAX_HEADERS) return fail(rp, -EMSGSIZE);
    rp->idx[rp->nidx].no = rp->text.len;
    rp->idx[rp->nidx].nl = 0;
    rp->idx[rp->nidx].vo = 0;
    rp->idx[rp->nidx].vl = 0;
    rp->nidx++;
    rp->in_value = false;
  }
  if (ra_buf_append(&rp->text, at, len)) return fail(rp, -ENOMEM);
  rp->idx[rp->nidx - 1].nl += len;
  return 0;
}

static int on_header_value(llhttp_t *p, const char *at, size_t len) {
  ra_http_resp_parser *rp = p->data;
  if (count_head(rp, len)) return -1;
  if (!rp->nidx) return fail(rp, -EPROTO);
  if (!rp->in_value) {
    rp->in_value = true;
    rp->idx[rp->nidx - 1].vo = rp->text.len;
  }
  if (ra_buf_append(&rp->text, at, len)) return fail(rp, -ENOMEM);
  rp->idx[rp->nidx - 1].vl += len;
  return 0;
}

static int on_headers_complete(llhttp_t *p) {
  ra_http_resp_parser *rp = p->data;
  rp->status = p->status_code;
  if (p->flags & F_CONTENT_LENGTH) {
    if (p->content_length > rp->max_body) return fail(rp, -EMSGSIZE);
    if (p->content_length && ra_buf_reserve(&rp->body, (size_t)p->content_length))
      return fail(rp, -ENOMEM);
  }
  return 0;
}

static int on_body(llhttp_t *p, const char *at, size_t len) {
  ra_http_resp_parser *rp = p->data;
  if (len > rp->max_body - rp->body.len) return fail(rp, -EMSGSIZE);
  return ra_buf_append(&rp->body, at, len) ? fail(rp, -ENOMEM) : 0;
}

static int on_message_complete(llhttp_t *p) {
  ra_http_resp_parser *rp = p->data;
  if (rp->status >= 100 && rp->status < 200) return 0; /* interim: the real one follows */
  rp->done = true;
  return HPE_PAUSED;
}

ra_http_resp_parser *ra_http_resp_parser_new(size_t max_head, size_t max_body) {
  ra_http_resp_parser *rp = calloc(1, sizeof *rp);
  if (!rp) return NULL;
  rp->max_head = max_head;
  rp->max_body = max_body;
  llhttp_settings_init(&rp->s);
  rp->s.on_message_begin = on_message_begin;
  rp->s.on_status = on_status;
  rp->s.on_header_field = on_header_field;
  rp->s.on_header_value = on_header_value;
  rp->s.on_headers_complete = on_headers_complete;
  rp->s.on_body = on_body;
  rp->s.on_message_complete = on_message_complete;
  llhttp_init(&rp->p, HTTP_RESPONSE, &rp->s);
  rp->p.data = rp;
  return rp;
}

void ra_http_resp_parser_free(ra_http_resp_parser *rp) {
  if (!rp) return;
  ra_buf_free(&rp->text);
  ra_buf_free(&rp->body);
  free(rp);
}

static int parser_error(ra_http_resp_parser *rp, llhttp_errno_t e) {
  if (!rp->err) {
    rp->err = -EPROTO;
    ra_log(RA_LOG_DEBUG, "http client: bad response: %s (%s)", llhttp_errno_name(e),
           llhttp_get_error_reason(&rp->p));
  }
  return rp->err;
}

int ra_http_resp_parser_feed(ra_http_resp_parser *rp, const uint8_t *data, size_t len) {
  if (rp->err) return rp->err;
  if (rp->done) return 1;
  llhttp_errno_t e = llhttp_execute(&rp->p, (const char *)data, len);
  if (e == HPE_PAUSED && rp->done) return 1;
  if (e != HPE_OK) return parser_error(rp, e);
  return 0;
}

int ra_http_resp_parser_eof(ra_http_resp_parser *rp) {
  if (rp->err) return rp->err;
  if (rp->done) return 1;
  llhttp_errno_t e = llhttp_finish(&rp->p);
  if (e != HPE_OK && e != HPE_PAUSED) return parser_error(rp, e);
  if (rp->done) return 1;
  rp->err = -EPROTO; /* the connection ended before the response did */
  return rp->err;
}

void ra_http_resp_parser_result(ra_http_resp_parser *rp, ra_http_response *r) {
  const char *t = rp->text.len ? (const char *)ra_buf_ptr(&rp->text) : "";
  for (size_t i = 0; i < rp->nidx; i++) {
    rp->hdrs[i].name = ra_str_make(t + rp->idx[i].no, rp->idx[i].nl);
    rp->hdrs[i].value = ra_str_make(rp->idx[i].vl ? t + rp->idx[i].vo : t, rp->idx[i].vl);
  }
  r->status = rp->status;
  r->headers = rp->hdrs;
  r->nheaders = rp->nidx;
  r->body = ra_bytes_make(rp->body.len ? ra_buf_ptr(&rp->body) : (const uint8_t *)"", rp->body.len);
}

ra_str ra_http_response_header(const ra_http_response *r, const char *name) {
  ra_str none = {{NULL}, 0};
  if (!r || !name) return none;
  ra_str n = ra_str_cstr(name);
  for (size_t i = 0; i < r->nheaders; i++)
    if (ra_str_eq_nocase(r->headers[i].name, n)) return r->headers[i].value;
  return none;
}

/* ---- the request ---------------------------------------------------------- */

struct ra_http_get {
  ra_loop *loop;
  ra_stream *s;
  ra_timer timer;
  ra_http_get_cb cb;
  void *ud;
  char *req;
  size_t req_len;
  bool stream_live; /* connecting or connected: a callback of the stream will come */
  bool finished;    /* cb called or cancelled */
  ra_http_resp_parser *rp;
  ra_tls_ctx *tls; /* https: our reference (the stream holds its own) */
  char *server_name; /* https: SNI and the name the certificate must carry */
  char url[256];   /* for messages */
};

static void maybe_free(ra_http_get *g) {
  if (g->stream_live || !g->finished) return;
  ra_timer_stop(&g->timer);
  ra_tls_ctx_unref(g->tls);
  free(g->server_name);
  ra_http_resp_parser_free(g->rp);
  free(g->req);
  free(g);
}

static void drop_stream(ra_http_get *g, int err) {
  if (g->s) {
    ra_stream *s = g->s;
    g->s = NULL;
    ra_stream_abort(s, err);
  }
}

/* Calls cb once (err or the parsed response), then lets go of the stream. */
static void complete(ra_http_get *g, int err) {
  if (g->finished) return;
  g->finished = true;
  ra_timer_stop(&g->timer);
  if (err) {
    g->cb(err, NULL, g->ud);
  } else {
    ra_http_response r;
    ra_http_resp_parser_result(g->rp, &r);
    g->cb(0, &r, g->ud);
  }
  drop_stream(g, err ? err : -ECANCELED);
  maybe_free(g);
}

/* The TLS layer's codes in this API's terms (client.h): a refused
 * certificate is -EACCES, any other TLS failure -EPROTO; a verify
 * callback's own code passes through. */
static int map_err(ra_http_get *g, int err, const ra_stream *s) {
  const char *why = s ? ra_stream_tls_error(s) : "";
  switch (err) {
  case RA_ERR_TLS_CERT:
    ra_log(RA_LOG_ERROR, "http client: %s: TLS: certificate verify failed%s%s", g->url,
           why && *why ? ": " : "", why ? why : "");
    return -EACCES;
  case RA_ERR_TLS_HANDSHAKE:
  case RA_ERR_TLS:
    ra_log(RA_LOG_ERROR, "http client: %s: TLS %s failed%s%s", g->url,
           err == RA_ERR_TLS ? "read" : "handshake", why && *why ? ": " : "", why ? why : "");
    return -EPROTO;
  case RA_ERR_TLS_TIMEOUT:
    return -ETIMEDOUT;
  default:
    return err;
  }
}

/* ---- stream callbacks ------------------------------------------------------------ */

static size_t st_read(ra_stream *s, const uint8_t *data, size_t len, void *ud) {
  ra_http_get *g = ud;
  if (g->finished) return len;
  int rc = ra_http_resp_parser_feed(g->rp, data, len); /* plaintext, also over TLS */
  if (rc) complete(g, rc < 0 ? rc : 0);
  return len;
}

static void st_eof(ra_stream *s, void *ud) {
  ra_http_get *g = ud;
  if (g->finished) return;
  /* over TLS a FIN without close_notify also lands here: only a response
   * whose framing says it is complete (length, chunks) is; a
   * close-delimited body cannot tell truncation */
  int rc = ra_http_resp_parser_eof(g->rp);
  complete(g, rc < 0 ? rc : 0);
}

static void st_close(ra_stream *s, int err, void *ud) {
  ra_http_get *g = ud;
  g->s = NULL;
  g->stream_live = false;
  if (!g->finished) complete(g, err ? map_err(g, err, s) : -ECONNRESET);
  else maybe_free(g);
}

static const ra_stream_cbs get_cbs = {.on_read = st_read, .on_eof = st_eof, .on_close = st_close};

static void on_connect(ra_stream *s, int status, void *ud) {
  ra_http_get *g = ud;
  if (status) {
    g->stream_live = false;
    if (!g->finished) complete(g, map_err(g, status, NULL));
    else maybe_free(g);
    return;
  }
  g->s = s;
  if (g->finished) {
    drop_stream(g, -ECANCELED);
    return;
  }
  /* TLS starts once TCP is up, so that from here on the stream is ours to
   * abort (a cancel during the handshake must not leave it running); the
   * request written now goes out right after the handshake, and a failed
   * handshake arrives as on_close(RA_ERR_TLS_*). */
  int rc = g->tls ? ra_stream_start_tls(s, g->tls, g->server_name) : 0;
  if (rc) {
    drop_stream(g, rc);
    complete(g, rc);
    return;
  }
  rc = ra_stream_write(s, g->req, g->req_len);
  if (rc) complete(g, rc); /* the stream is aborting: on_close follows */
}

static void on_timeout(ra_timer *t, void *ud) {
  ra_http_get *g = ud;
  complete(g, -ETIMEDOUT);
}

static bool token_ok(const char *t) {
  if (!t || !*t) return false;
  for (; *t; t++)
    if (*t <= ' ' || *t >= 127 || strchr("\"(),/:;<=>?@[\\]{}", *t)) return false;
  return true;
}

static bool field_ok(ra_str v) {
  for (size_t i = 0; i < v.len; i++)
    if (v.ptr[i] == '\r' || v.ptr[i] == '\n' || v.ptr[i] == '\0') return false;
  return true;
}

static int build_request(const ra_http_url *u, const ra_http_get_opts *o, ra_buf *req) {
  const char *method = o->method ? o->method : "GET";
  if (!token_ok(method)) return -EINVAL;
  if (o->accept && strpbrk(o->accept, "\r\n")) return -EINVAL;
  for (size_t i = 0; i < o->nheaders; i++) {
    char name[128];
    ra_str n = o->headers[i].name;
    if (!n.len || n.len >= sizeof name || !field_ok(o->headers[i].value)) return -EINVAL;
    memcpy(name, n.ptr, n.len);
    name[n.len] = 0;
    if (!token_ok(name)) return -EINVAL;
  }
  int rc = ra_buf_printf(req,
                         "%s %s HTTP/1.1\r\nHost: %s\r\nUser-Agent: raloop\r\n"
                         "Connection: close\r\n%s%s%s",
                         method, u->target, u->host_hdr, o->accept ? "Accept: " : "",
                         o->accept ? o->accept : "", o->accept ? "\r\n" : "");
  for (size_t i = 0; !rc && i < o->nheaders; i++)
    rc = ra_buf_printf(req, "%.*s: %.*s\r\n", (int)o->headers[i].name.len, o->headers[i].name.ptr,
                       (int)o->headers[i].value.len, o->headers[i].value.ptr);
  if (!rc && (o->body || strcmp(method, "GET")))
    rc = ra_buf_printf(req, "Content-Length: %zu\r\n", o->body ? o->body_len : 0);
  if (!rc) rc = ra_buf_append_str(req, "\r\n");
  if (!rc && o->body && o->body_len) rc = ra_buf_append(req, o->body, o->body_len);
  return rc ? -ENOMEM : 0;
}

int ra_http_get_start(ra_loop *loop, const char *url, const ra_http_get_opts *opts,
                      ra_http_get_cb cb, void *ud, ra_http_get **out) {
  if (out) *out = NULL;
  if (!loop || !url || !cb) return -EINVAL;
  ra_http_url u;
  int rc = ra_http_url_parse(url, &u);
  if (!rc && u.ws) rc = -EPROTONOSUPPORT; /* ws:// belongs to ws/client.h */
  if (rc) {
    ra_log(RA_LOG_ERROR, "http client: %s: %s", url,
           rc == -EPROTONOSUPPORT ? "only http:// and https:// are supported" : "not a valid URL");
    return rc;
  }
  ra_http_get_opts o = {0};
  if (opts) o = *opts;
  if (!o.timeout_ms) o.timeout_ms = 30000;
  if (!o.max_body) o.max_body = 16u << 20;
  if (!o.max_head) o.max_head = 64u << 10;
  ra_buf req = {0};
  rc = build_request(&u, &o, &req);
  if (rc) {
    ra_buf_free(&req);
    return rc;
  }
  ra_http_get *g = calloc(1, sizeof *g);
  if (!g) {
    ra_buf_free(&req);
    return -ENOMEM;
  }
  g->loop = loop;
  ra_timer_init(loop, &g->timer, on_timeout, g);
  g->cb = cb;
  g->ud = ud;
  g->req = (char *)ra_buf_steal(&req, &g->req_len);
  snprintf(g->url, sizeof g->url, "%s", url);
  g->rp = ra_http_resp_parser_new(o.max_head, o.max_body);
  rc = g->rp ? 0 : -ENOMEM;
  if (!rc && u.tls) {
    if (o.tls) {
      g->tls = ra_tls_ctx_ref(o.tls);
    } else {
      ra_tls_client_opts to = {.ca_file = o.ca_file};
      char err[256];
      rc = ra_tls_client_ctx_new(&to, &g->tls, err, sizeof err);
      if (rc) {
        ra_log(RA_LOG_ERROR, "http client: cannot load the trusted CAs%s%s: %s",
               o.ca_file ? " from " : "", o.ca_file ? o.ca_file : "", err);
        rc = rc == -ENOMEM ? rc : -ENOENT;
      }
    }
  }
  if (rc) {
    g->finished = true;
    maybe_free(g);
    return rc;
  }
  rc = ra_timer_start(&g->timer, o.timeout_ms, 0);
  if (rc == 0) {
    if (g->tls && !(g->server_name = strdup(o.server_name ? o.server_name : u.host))) rc = -ENOMEM;
  }
  if (rc == 0) {
    g->stream_live = true;
    rc = ra_stream_connect(loop, u.host, u.port, &get_cbs, on_connect, g);
    if (rc) g->stream_live = false; /* it will not call back */
  }
  if (rc) {
    g->finished = true;
    maybe_free(g);
    return rc;
  }
  if (out) *out = g;
  return 0;
}

void ra_http_get_cancel(ra_http_get *g) {
  if (!g || g->finished) return;
  g->finished = true;
  ra_timer_stop(&g->timer);
  drop_stream(g, -ECANCELED);
  maybe_free(g);
}
