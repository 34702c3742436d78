/* http/proxy.c: reverse proxy route handler (see proxy.h).
 *
 * One upstream connection (ucon) carries one exchange (pxr) at a time; idle
 * connections wait in a LIFO list; requests beyond max_conns wait in a FIFO
 * queue. The response is parsed with llhttp (response mode) and streamed to
 * the ra_res: before each read is parsed, if the client holds more than
 * WINDOW unsent bytes, reading the upstream pauses until on_drain. */
#include "raloop/http/proxy.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <llhttp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "raloop/core/buf.h"
#include "raloop/core/log.h"
#include "raloop/core/stream.h"
#include "raloop/http/request.h"
#include "raloop/http/response.h"
#include "raloop/http/token.h"
#include "raloop/ws/client.h"
#include "raloop/ws/frame.h"
#include "raloop/ws/ws.h"


/* ra_buf_ptr, also for an empty buffer that holds no memory (data NULL). */
static const uint8_t *bufp(const ra_buf *b) { return b->data ? ra_buf_ptr(b) : (const uint8_t *)""; }

#define WINDOW ((size_t)256 * 1024)
#define MAX_RES_HEADERS 128

typedef struct ucon ucon;
typedef struct pxr pxr;

struct ra_proxy {
  ra_loop *loop;
  char host[512]; /* host for ra_stream_connect ("unix:PATH" as is) */
  uint16_t port;
  char host_hdr[300]; /* Host sent when the client sent none */
  char attested_hdr[64];
  char proto[16];
  size_t max_conns, max_idle, max_queue;
  uint64_t connect_ms, first_byte_ms, idle_ms, keepalive_ms;
  size_t nconns, nidle, nqueue;
  ucon *idle;                /* LIFO */
  ucon *all;                 /* every connection (for free) */
  pxr *qhead, *qtail;        /* waiting for a connection */
  bool freeing;
  ra_router *ws_router; /* WebSocket upgrades: the ws/ handshake, then a relay */
};

struct ucon {
  ra_proxy *px;
  ra_stream *s;   /* NULL while connecting */
  ucon *next_idle;
  ucon *next_all, *prev_all;
  pxr *cur;
  ra_timer ka;    /* keep-alive expiry while idle */
  bool idle_now;
  bool reused;    /* served an exchange before */
  bool connecting;
  bool dead;      /* closing: never pooled again */
  bool orphan;    /* the proxy was freed while connecting */
};

enum { PX_QUEUED, PX_CONNECTING, PX_SENT, PX_BODY, PX_DONE };

struct pxr {
  ra_proxy *px;
  ra_req *req;
  ra_res *res;
  ucon *uc;
  pxr *qnext;
  int state;
  bool retried, got_bytes, head_sent, is_head, paused, complete, reused_conn, in_exec, cancelled;
  ra_buf out;    /* request head + body, kept for a retry */
  ra_timer timer;
  llhttp_t p;
  llhttp_settings_t ps;
  /* response head being parsed */
  ra_buf htext;
  struct { size_t no, nl, vo, vl; } hidx[MAX_RES_HEADERS];
  size_t nh;
  bool in_value;
  int perr;
};

/* ---- header filtering ---------------------------------------------------- */

static bool token_in_list(ra_str name, ra_str list) {
  size_t i = 0;
  while (i < list.len) {
    while (i < list.len && (list.ptr[i] == ',' || list.ptr[i] == ' ' || list.ptr[i] == '\t')) i++;
    size_t b = i;
    while (i < list.len && list.ptr[i] != ',') i++;
    size_t e = i;
    while (e > b && (list.ptr[e - 1] == ' ' || list.ptr[e - 1] == '\t')) e--;
    if (e > b && ra_str_eq_nocase(name, ra_str_make(list.ptr + b, e - b))) return true;
  }
  return false;
}

bool ra_proxy_hop_by_hop(ra_str name, ra_str connection) {
  static const char *const hop[] = {"connection", "keep-alive", "te", "trailer",
                                    "transfer-encoding", "upgrade"};
  for (size_t i = 0; i < sizeof hop / sizeof hop[0]; i++)
    if (ra_str_eq_nocase(name, ra_str_cstr(hop[i]))) return true;
  if (name.len >= 6 && strncasecmp(name.ptr, "proxy-", 6) == 0) return true;
  return token_in_list(name, connection);
}

/* ---- upstream parsing ------------------------------------------------------ */

static ra_str hname(pxr *r, size_t i) {
  return ra_str_make((const char *)bufp(&r->htext) + r->hidx[i].no, r->hidx[i].nl);
}
static ra_str hvalue(pxr *r, size_t i) {
  return ra_str_make((const char *)bufp(&r->htext) + r->hidx[i].vo, r->hidx[i].vl);
}

static int p_begin(llhttp_t *p) {
  pxr *r = p->data;
  ra_buf_reset(&r->htext);
  r->nh = 0;
  r->in_value = false;
  return 0;
}

static int p_field(llhttp_t *p, const char *at, size_t len) {
  pxr *r = p->data;
  if (r->htext.len + len > 64 * 1024) return r->perr = -EMSGSIZE, -1;
  if (!r->nh || r->in_value) {
    if (r->nh == MAX_RES_HEADERS) return r->perr = -EMSGSIZE, -1;
    r->hidx[r->nh].no = r->htext.len;
    r->hidx[r->nh].nl = 0;
    r->hidx[r->nh].vl = 0;
    r->hidx[r->nh].vo = 0;
    r->nh++;
    r->in_value = false;
  }
  if (ra_buf_append(&r->htext, at, len)) return r->perr = -ENOMEM, -1;
  r->hidx[r->nh - 1].nl += len;
  return 0;
}

static int p_value(llhttp_t *p, const char *at, size_t len) {
  pxr *r = p->data;
  if (!r->nh) return 0;
  if (r->htext.len + len > 64 * 1024) return r->perr = -EMSGSIZE, -1;
  if (!r->in_value) {
    r->in_value = true;
    r->hidx[r->nh - 1].vo = r->htext.len;
  }
  if (ra_buf_append(&r->htext, at, len)) return r->perr = -ENOMEM, -1;
  r->hidx[r->nh - 1].vl += len;
  return 0;
}

static int p_headers_complete(llhttp_t *p) {
  pxr *r = p->data;
  int status = p->status_code;
  if (status < 200) return 0; /* 1xx: interim, not forwarded */
  /* The Connection header's tokens name more hop-by-hop headers. */
  char conn[1024];
  size_t cl = 0;
  for (size_t i = 0; i < r->nh; i++) {
    if (!ra_str_eq_nocase(hname(r, i), RA_STR("connection"))) continue;
    ra_str v = hvalue(r, i);
    if (cl + v.len + 1 < sizeof conn) {
      if (cl) conn[cl++] = ',';
      memcpy(conn + cl, v.ptr, v.len);
      cl += v.len;
    }
  }
  ra_str cs = ra_str_make(conn, cl);
  ra_res_set_status(r->res, status);
  for (size_t i = 0; i < r->nh; i++) {
    ra_str n = hname(r, i);
    if (ra_proxy_hop_by_hop(n, cs) || ra_str_eq_nocase(n, RA_STR("content-length"))) continue;
    ra_res_add_header_n(r->res, n, hvalue(r, i));
  }
  bool nobody = r->is_head || status == 204 || status == 304;
  if (!nobody && (p->flags & F_CONTENT_LENGTH) && !(p->flags & F_CHUNKED))
    ra_res_set_content_length(r->res, p->content_length);
  else if (r->is_head && (p->flags & F_CONTENT_LENGTH))
    ra_res_set_content_length(r->res, p->content_length);
  r->state = PX_BODY;
  r->head_sent = true;
  ra_timer_stop(&r->timer);
  if (r->px->idle_ms) ra_timer_start(&r->timer, r->px->idle_ms, 0);
  return r->is_head ? 1 : 0; /* 1: no body follows (HEAD) */
}

static int p_body(llhttp_t *p, const char *at, size_t len) {
  pxr *r = p->data;
  if (r->cancelled) return -1;
  int rc = ra_res_write(r->res, at, len);
  if (rc == -EAGAIN) return r->perr = -EAGAIN, -1; /* cannot happen: reads stop at WINDOW */
  return 0;                                          /* -ECANCELED: on_cancel follows */
}

static int p_complete(llhttp_t *p) {
  pxr *r = p->data;
  if (p->status_code < 200) return 0;
  r->complete = true;
  return HPE_PAUSED; /* stop here: the connection goes back to the pool after */
}

/* ---- connections ----------------------------------------------------------- */

static void dispatch(ra_proxy *px);
static const ra_stream_cbs orphan_cbs;
static void start_on(pxr *r, ucon *uc);
static void pxr_fail(pxr *r, int status, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void pxr_free(pxr *r);
static void pxr_detach(pxr *r);
static int acquire(pxr *r);

static void ucon_unlink_idle(ucon *uc) {
  ra_proxy *px = uc->px;
  for (ucon **pp = &px->idle; *pp; pp = &(*pp)->next_idle)
    if (*pp == uc) {
      *pp = uc->next_idle;
      px->nidle--;
      break;
    }
  uc->idle_now = false;
  ra_timer_stop(&uc->ka);
}

static void ucon_gone(ucon *uc) {
  ra_proxy *px = uc->px;
  if (uc->idle_now) ucon_unlink_idle(uc);
  ra_timer_stop(&uc->ka);
  if (uc->prev_all) uc->prev_all->next_all = uc->next_all;
  else px->all = uc->next_all;
  if (uc->next_all) uc->next_all->prev_all = uc->prev_all;
  px->nconns--;
  free(uc);
}

static void ka_expired(ra_timer *t, void *ud) {
  ucon *uc = ud;
  (void)t;
  uc->dead = true;
  if (uc->idle_now) ucon_unlink_idle(uc);
  if (uc->s) ra_stream_close(uc->s);
}

static void upstream_ended(pxr *r, int err);

static size_t u_read(ra_stream *s, const uint8_t *data, size_t len, void *ud) {
  ucon *uc = ud;
  pxr *r = uc->cur;
  if (!r) { /* bytes on an idle connection: not ours to keep */
    uc->dead = true;
    if (uc->idle_now) ucon_unlink_idle(uc);
    ra_stream_abort(s, -EPROTO);
    return len;
  }
  if (r->head_sent && ra_res_pending(r->res) >= WINDOW) {
    r->paused = true;
    ra_timer_stop(&r->timer);
    ra_stream_pause_read(s);
    return 0;
  }
  r->got_bytes = true;
  if (r->state == PX_SENT || r->state == PX_BODY) {
    ra_timer_stop(&r->timer);
    uint64_t ms = r->state == PX_BODY ? r->px->idle_ms : r->px->first_byte_ms;
    if (ms) ra_timer_start(&r->timer, ms, 0);
  }
  r->in_exec = true;
  llhttp_errno_t e = llhttp_execute(&r->p, (const char *)data, len);
  r->in_exec = false;
  if (r->cancelled) { /* the client went away during a write */
    ra_proxy *px = r->px;
    pxr_detach(r);
    pxr_free(r);
    dispatch(px);
    return len;
  }
  if (e == HPE_PAUSED && r->complete) {
    size_t used = (size_t)(llhttp_get_error_pos(&r->p) - (const char *)data);
    ra_res_end(r->res);
    r->res = NULL;
    bool keep = llhttp_should_keep_alive(&r->p) && used == len && !uc->dead && !r->px->freeing;
    uc->cur = NULL;
    pxr_free(r);
    ra_proxy *px = uc->px;
    if (keep && px->nidle < px->max_idle) {
      uc->reused = true;
      uc->idle_now = true;
      uc->next_idle = px->idle;
      px->idle = uc;
      px->nidle++;
      if (px->keepalive_ms) ra_timer_start(&uc->ka, px->keepalive_ms, 0);
    } else {
      uc->dead = true;
      ra_stream_close(s);
    }
    dispatch(px);
    return len;
  }
  if (e != HPE_OK) {
    ra_log(RA_LOG_DEBUG, "proxy: bad upstream response: %s (%s)", llhttp_errno_name(e),
           llhttp_get_error_reason(&r->p));
    uc->dead = true;
    uc->cur = NULL;
    r->uc = NULL;
    ra_stream_abort(s, -EPROTO);
    if (!r->head_sent) pxr_fail(r, 502, "bad gateway: the upstream's answer is not valid HTTP/1.1\n");
    else { ra_res_abort(r->res); r->res = NULL; pxr_free(r); }
    return len;
  }
  return len;
}

static void u_drain(ra_stream *s, void *ud) { (void)s; (void)ud; }

static void u_eof(ra_stream *s, void *ud) {
  ucon *uc = ud;
  uc->dead = true;
  /* a close-delimited body ends here; on_close does the rest */
  ra_stream_abort(s, 0);
}

static void u_close(ra_stream *s, int err, void *ud) {
  ucon *uc = ud;
  (void)s;
  uc->s = NULL;
  uc->dead = true;
  pxr *r = uc->cur;
  uc->cur = NULL;
  if (r) {
    r->uc = NULL;
    upstream_ended(r, err);
  }
  ra_proxy *px = uc->px;
  ucon_gone(uc);
  dispatch(px);
}

static const ra_stream_cbs ucbs = {u_read, u_drain, u_eof, u_close};

/* The exchange's connection went away (err 0: orderly). */
static void upstream_ended(pxr *r, int err) {
  ra_proxy *px = r->px;
  if (r->head_sent) {
    llhttp_errno_t e = llhttp_finish(&r->p);
    if (e != HPE_OK && e != HPE_PAUSED)
      ra_log(RA_LOG_WARN, "proxy: the upstream closed mid-response (%s): the answer is cut short", llhttp_errno_name(e));
    if (e == HPE_OK || e == HPE_PAUSED) ra_res_end(r->res); /* a close-delimited body ends here */
    else ra_res_abort(r->res); /* cut short: the client must see it (no last chunk) */
    r->res = NULL;
    pxr_free(r);
    dispatch(px);
    return;
  }
  ra_str m = ra_req_method(r->req);
  bool idem = ra_str_eq_cstr(m, "GET") || ra_str_eq_cstr(m, "HEAD") || ra_str_eq_cstr(m, "OPTIONS") ||
              ra_str_eq_cstr(m, "PUT") || ra_str_eq_cstr(m, "DELETE") || ra_str_eq_cstr(m, "TRACE");
  if (r->state == PX_SENT && !r->got_bytes && !r->retried && idem && r->reused_conn) {
    r->retried = true;
    ra_log(RA_LOG_DEBUG, "proxy: a pooled connection closed before answering: retrying once");
    ra_timer_stop(&r->timer);
    r->state = PX_QUEUED;
    int rc = acquire(r);
    if (rc) pxr_fail(r, 503, "service unavailable: no upstream connection (%s)\n", strerror(-rc));
    return;
  }
  if (err == -ETIMEDOUT) pxr_fail(r, 504, "gateway timeout: the upstream connection timed out\n");
  else pxr_fail(r, 502, "bad gateway: the upstream closed the connection without answering (%s)\n",
                err ? strerror(-err) : "end of stream");
}

/* ---- exchanges ------------------------------------------------------------- */

static void pxr_unqueue(pxr *r) {
  ra_proxy *px = r->px;
  pxr *prev = NULL;
  for (pxr *q = px->qhead; q; prev = q, q = q->qnext)
    if (q == r) {
      if (prev) prev->qnext = q->qnext;
      else px->qhead = q->qnext;
      if (px->qtail == q) px->qtail = prev;
      px->nqueue--;
      break;
    }
  r->qnext = NULL;
}

static void pxr_free(pxr *r) {
  if (r->state == PX_QUEUED) pxr_unqueue(r);
  ra_timer_stop(&r->timer);
  ra_buf_free(&r->out);
  ra_buf_free(&r->htext);
  free(r);
}

/* Drops the exchange's connection (it carried a request we no longer follow). */
static void pxr_detach(pxr *r) {
  ucon *uc = r->uc;
  if (!uc) return;
  r->uc = NULL;
  uc->cur = NULL;
  uc->dead = true;
  if (uc->s) ra_stream_abort(uc->s, -ECANCELED);
}

static void pxr_fail(pxr *r, int status, const char *fmt, ...) {
  char text[512];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(text, sizeof text, fmt, ap);
  va_end(ap);
  ra_proxy *px = r->px;
  pxr_detach(r);
  size_t tl = strlen(text);
  ra_log(RA_LOG_INFO, "proxy: %d %.*s", status, (int)(tl && text[tl - 1] == '\n' ? tl - 1 : tl), text);
  if (r->res) {
    if (r->head_sent) ra_res_abort(r->res); /* mid-body: cut short */
    else ra_res_send_text(r->res, status, text);
  }
  r->res = NULL;
  pxr_free(r);
  (void)px;
}

static void pxr_timeout(ra_timer *t, void *ud) {
  pxr *r = ud;
  (void)t;
  ra_proxy *px = r->px;
  switch (r->state) {
  case PX_CONNECTING:
    pxr_fail(r, 504, "gateway timeout: no connection to the upstream within %llu ms\n",
             (unsigned long long)px->connect_ms);
    break;
  case PX_SENT:
    pxr_fail(r, 504, "gateway timeout: the upstream did not answer within %llu ms\n",
             (unsigned long long)px->first_byte_ms);
    break;
  default:
    ra_log(RA_LOG_WARN, "proxy: the upstream sent nothing for %llu ms mid-response: cut short",
           (unsigned long long)px->idle_ms);
    pxr_fail(r, 504, "idle\n");
    break;
  }
  dispatch(px);
}

static void start_on(pxr *r, ucon *uc) {
  ra_proxy *px = r->px;
  uc->cur = r;
  r->uc = uc;
  r->reused_conn = uc->reused;
  r->state = PX_SENT;
  r->got_bytes = false;
  llhttp_init(&r->p, HTTP_RESPONSE, &r->ps);
  r->p.data = r;
  ra_timer_stop(&r->timer);
  if (px->first_byte_ms) ra_timer_start(&r->timer, px->first_byte_ms, 0);
  /* A failed write aborts the stream: u_close follows and may retry. */
  ra_stream_write(uc->s, bufp(&r->out), r->out.len);
}

static void u_connected(ra_stream *s, int status, void *ud) {
  ucon *uc = ud;
  if (uc->orphan) {
    if (status == 0) {
      ra_stream_set_userdata(s, &orphan_cbs, uc);
      ra_stream_abort(s, -ECANCELED);
    } else {
      free(uc);
    }
    return;
  }
  uc->connecting = false;
  ra_proxy *px = uc->px;
  if (status) {
    pxr *r = uc->cur;
    uc->cur = NULL;
    ucon_gone(uc);
    if (r) {
      r->uc = NULL;
      pxr_fail(r, 502, "bad gateway: cannot connect to the upstream: %s\n", strerror(-status));
    }
    dispatch(px);
    return;
  }
  uc->s = s;
  if (uc->dead || !uc->cur) {
    uc->dead = true;
    ra_stream_close(s);
    return;
  }
  start_on(uc->cur, uc);
}

static int acquire(pxr *r) {
  ra_proxy *px = r->px;
  if (px->idle) {
    ucon *uc = px->idle;
    ucon_unlink_idle(uc);
    start_on(r, uc);
    return 0;
  }
  if (px->nconns < px->max_conns) {
    ucon *uc = calloc(1, sizeof *uc);
    if (!uc) return -ENOMEM;
    uc->px = px;
    uc->connecting = true;
    ra_timer_init(px->loop, &uc->ka, ka_expired, uc);
    uc->next_all = px->all;
    if (px->all) px->all->prev_all = uc;
    px->all = uc;
    px->nconns++;
    uc->cur = r;
    r->uc = uc;
    r->state = PX_CONNECTING;
    int rc = ra_stream_connect(px->loop, px->host, px->port, &ucbs, u_connected, uc);
    if (rc) {
      r->uc = NULL;
      uc->cur = NULL;
      ucon_gone(uc);
      return rc;
    }
    ra_timer_stop(&r->timer);
    if (px->connect_ms) ra_timer_start(&r->timer, px->connect_ms, 0);
    return 0;
  }
  if (px->nqueue >= px->max_queue) return -EBUSY;
  r->state = PX_QUEUED;
  r->qnext = NULL;
  if (px->qtail) px->qtail->qnext = r;
  else px->qhead = r;
  px->qtail = r;
  px->nqueue++;
  return 0;
}

static void dispatch(ra_proxy *px) {
  while (px->qhead && !px->freeing && (px->idle || px->nconns < px->max_conns)) {
    pxr *r = px->qhead;
    pxr_unqueue(r);
    r->state = PX_CONNECTING;
    int rc = acquire(r);
    if (rc) pxr_fail(r, 502, "bad gateway: cannot connect to the upstream: %s\n", strerror(-rc));
  }
}

static void on_cancel(ra_res *res, void *ud) {
  pxr *r = ud;
  ra_proxy *px = r->px;
  r->res = NULL;
  ra_res_end(res);
  if (r->in_exec) {
    r->cancelled = true; /* u_read finishes it after the parser returns */
    return;
  }
  pxr_detach(r);
  pxr_free(r);
  dispatch(px);
}

static void on_drain(ra_res *res, void *ud) {
  pxr *r = ud;
  /* Resume below twice the window: a transport calls this once its queue
   * fell to its own low-water mark, which may sit at WINDOW; reads pause
   * again at WINDOW, so at most one read passes per call. */
  if (!r->paused || ra_res_pending(res) >= 2 * WINDOW || !r->uc || !r->uc->s) return;
  r->paused = false;
  if (r->px->idle_ms) ra_timer_start(&r->timer, r->px->idle_ms, 0);
  ra_stream_resume_read(r->uc->s);
}

/* ---- the request ----------------------------------------------------------- */

static bool is_dot_segment(const char *p, size_t n) {
  size_t dots = 0;
  for (size_t i = 0; i < n;) {
    if (p[i] == '.') { dots++; i++; }
    else if (i + 2 < n + 0 && p[i] == '%' && p[i + 1] == '2' && (p[i + 2] == 'e' || p[i + 2] == 'E')) { dots++; i += 3; }
    else return false;
  }
  return dots == 1 || dots == 2;
}

/* The target as received, refused when it is not origin-form or holds a
 * dot segment (the router matched the resolved path; the upstream must see
 * the same). */
static bool target_ok(ra_str t) {
  if (t.len == 0 || t.ptr[0] != '/') return false;
  size_t end = t.len;
  for (size_t i = 0; i < t.len; i++)
    if (t.ptr[i] == '?') { end = i; break; }
  size_t b = 1;
  for (size_t i = 1; i <= end; i++) {
    if (i == end || t.ptr[i] == '/') {
      if (is_dot_segment(t.ptr + b, i - b)) return false;
      b = i + 1;
    }
  }
  return true;
}

static int build_out(pxr *r) {
  ra_req *req = r->req;
  ra_proxy *px = r->px;
  ra_buf *o = &r->out;
  ra_str m = ra_req_method(req), t = ra_req_target(req), body = ra_req_body(req);
  int rc = 0;
  rc |= ra_buf_append(o, m.ptr, m.len);
  rc |= ra_buf_append(o, " ", 1);
  rc |= ra_buf_append(o, t.ptr, t.len);
  rc |= ra_buf_append_str(o, " HTTP/1.1\r\n");
  /* Connection tokens name more hop-by-hop headers. */
  ra_buf conn = {0}, xff = {0}, fwd = {0};
  size_t n = ra_req_header_count(req);
  for (size_t i = 0; i < n; i++) {
    ra_header h = ra_req_header_at(req, i);
    if (ra_str_eq_nocase(h.name, RA_STR("connection"))) {
      if (conn.len) rc |= ra_buf_append(&conn, ",", 1);
      rc |= ra_buf_append(&conn, h.value.ptr, h.value.len);
    }
  }
  ra_str cs = ra_str_make((const char *)bufp(&conn), conn.len);
  ra_str host = {0};
  bool have_host = ra_req_header(req, "host", &host) && host.len && ra_http_field_value_valid(host);
  rc |= ra_buf_append_str(o, "Host: ");
  if (have_host) rc |= ra_buf_append(o, host.ptr, host.len);
  else rc |= ra_buf_append_str(o, px->host_hdr);
  rc |= ra_buf_append_str(o, "\r\n");
  for (size_t i = 0; i < n; i++) {
    ra_header h = ra_req_header_at(req, i);
    if (ra_proxy_hop_by_hop(h.name, cs)) continue;
    if (!ra_http_field_value_valid(h.value)) continue;
    if (ra_str_eq_nocase(h.name, RA_STR("host")) ||
        ra_str_eq_nocase(h.name, RA_STR("content-length")) ||
        ra_str_eq_nocase(h.name, RA_STR("expect")) ||
        ra_str_eq_nocase(h.name, RA_STR("x-forwarded-proto")) ||
        ra_str_eq_nocase(h.name, RA_STR("x-forwarded-host")) ||
        ra_str_eq_nocase(h.name, ra_str_cstr(px->attested_hdr)))
      continue;
    if (ra_str_eq_nocase(h.name, RA_STR("x-forwarded-for"))) {
      if (xff.len) rc |= ra_buf_append(&xff, ", ", 2);
      rc |= ra_buf_append(&xff, h.value.ptr, h.value.len);
      continue;
    }
    if (ra_str_eq_nocase(h.name, RA_STR("forwarded"))) {
      if (fwd.len) rc |= ra_buf_append(&fwd, ", ", 2);
      rc |= ra_buf_append(&fwd, h.value.ptr, h.value.len);
      continue;
    }
    rc |= ra_buf_append(o, h.name.ptr, h.name.len);
    rc |= ra_buf_append(o, ": ", 2);
    rc |= ra_buf_append(o, h.value.ptr, h.value.len);
    rc |= ra_buf_append(o, "\r\n", 2);
  }
  /* The client's address: the transport's peer when it reports one. */
  ra_str peer = ra_req_peer(req);
  bool v6 = memchr(peer.ptr ? peer.ptr : "", ':', peer.len) != NULL;
  if (xff.len) rc |= ra_buf_append(&xff, ", ", 2);
  if (peer.len) rc |= ra_buf_append(&xff, peer.ptr, peer.len);
  else rc |= ra_buf_append_str(&xff, "unknown");
  if (fwd.len) rc |= ra_buf_append(&fwd, ", ", 2);
  if (peer.len)
    rc |= ra_buf_printf(&fwd, v6 ? "for=\"[%.*s]\"" : "for=%.*s", (int)peer.len, peer.ptr);
  else rc |= ra_buf_append_str(&fwd, "for=unknown");
  if (have_host) rc |= ra_buf_printf(&fwd, ";host=\"%.*s\"", (int)host.len, host.ptr);
  rc |= ra_buf_printf(&fwd, ";proto=%s", px->proto);
  rc |= ra_buf_printf(o, "X-Forwarded-For: %.*s\r\nForwarded: %.*s\r\nX-Forwarded-Proto: %s\r\n",
                      (int)xff.len, (const char *)bufp(&xff), (int)fwd.len,
                      (const char *)bufp(&fwd), px->proto);
  if (have_host) rc |= ra_buf_printf(o, "X-Forwarded-Host: %.*s\r\n", (int)host.len, host.ptr);
  if (ra_req_attested(req)) rc |= ra_buf_printf(o, "%s: 1\r\n", px->attested_hdr);
  bool bodyful = body.len || ra_str_eq_cstr(m, "POST") || ra_str_eq_cstr(m, "PUT") ||
                 ra_str_eq_cstr(m, "PATCH");
  if (bodyful) rc |= ra_buf_printf(o, "Content-Length: %zu\r\n", body.len);
  rc |= ra_buf_append_str(o, "\r\n");
  if (body.len) rc |= ra_buf_append(o, body.ptr, body.len);
  ra_buf_free(&conn);
  ra_buf_free(&xff);
  ra_buf_free(&fwd);
  return rc ? -ENOMEM : 0;
}


/* ---- WebSockets: a relay between the client's ra_ws and one to the upstream */

typedef struct wsrelay {
  ra_ws *down, *up;
  bool up_open;
  ra_buf queue; /* client messages before the upstream opened: type, u64 len, bytes */
} wsrelay;

static uint16_t relay_code(uint16_t code) {
  if (code == 1005) return 0;
  if (code == 1006) return 1014; /* the other side dropped: "bad gateway" */
  return ra_ws_close_code_valid(code) ? code : 1011;
}

static void relay_close(ra_ws *to, uint16_t code, ra_str reason) {
  char why[124];
  size_t n = reason.len < sizeof why - 1 ? reason.len : sizeof why - 1;
  /* a reason cut inside a UTF-8 sequence is not sent */
  while (n && n < reason.len && ((unsigned char)reason.ptr[n] & 0xC0) == 0x80) n--;
  memcpy(why, reason.ptr, n);
  why[n] = '\0';
  uint16_t c = relay_code(code);
  if (ra_ws_close(to, c, c && n ? why : NULL) == -EINVAL) ra_ws_close(to, c, NULL);
}

static void up_open(ra_ws *ws, void *ud) {
  wsrelay *r = ud;
  r->up_open = true;
  const uint8_t *q = bufp(&r->queue);
  size_t off = 0;
  while (off + 9 <= r->queue.len) {
    uint64_t len;
    memcpy(&len, q + off + 1, 8);
    ra_ws_send(ws, (ra_ws_type)q[off], q + off + 9, (size_t)len);
    off += 9 + (size_t)len;
  }
  ra_buf_free(&r->queue);
}

static void up_message(ra_ws *ws, ra_ws_type type, const uint8_t *data, size_t len, void *ud) {
  (void)ws;
  wsrelay *r = ud;
  if (r->down) ra_ws_send(r->down, type, data, len);
}

static void up_closed(ra_ws *ws, uint16_t code, ra_str reason, void *ud) {
  (void)ws;
  wsrelay *r = ud;
  r->up = NULL;
  if (r->down) {
    if (!r->up_open && code == 1006) relay_close(r->down, 1014, RA_STR("upstream unreachable"));
    else relay_close(r->down, code, reason);
  } else {
    ra_buf_free(&r->queue);
    free(r);
  }
}

static const ra_ws_handlers up_handlers = {NULL, NULL, up_open, up_message, up_closed, NULL, NULL, NULL};

static int down_select(const ra_req *req, const ra_str *offered, size_t n, void *ud) {
  (void)req; (void)offered; (void)ud;
  return n ? 0 : -1; /* the client's first choice; the upstream is offered the same */
}

static void down_open(ra_ws *ws, void *ud) {
  ra_proxy *px = ud;
  wsrelay *r = calloc(1, sizeof *r);
  if (!r) {
    ra_ws_close(ws, 1011, "out of memory");
    return;
  }
  r->down = ws;
  ra_ws_set_userdata(ws, r);
  if (px->port == 0) { /* ws/client.h speaks ws:// over TCP only */
    ra_ws_close(ws, 1014, "upstream unreachable for WebSockets (unix socket)");
    return;
  }
  ra_buf url = {0};
  ra_buf_printf(&url, "ws://%s", px->host_hdr);
  ra_str path = ra_ws_path(ws);
  static const char hex[] = "0123456789ABCDEF";
  for (size_t i = 0; i < path.len; i++) {
    unsigned char c = (unsigned char)path.ptr[i];
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || strchr("/-._~", c)) {
      ra_buf_append(&url, &c, 1);
    } else {
      char e[3] = {'%', hex[c >> 4], hex[c & 15]};
      ra_buf_append(&url, e, 3);
    }
  }
  if (!path.len) ra_buf_append(&url, "/", 1);
  ra_buf_append(&url, "", 1);
  ra_header hs[3];
  size_t nh = 0;
  char peer[64] = "unknown";
  struct sockaddr_storage ss;
  socklen_t sl = sizeof ss;
  int fd = ra_ws_fd(ws);
  if (fd >= 0 && getpeername(fd, (struct sockaddr *)&ss, &sl) == 0) {
    if (ss.ss_family == AF_INET) inet_ntop(AF_INET, &((struct sockaddr_in *)&ss)->sin_addr, peer, sizeof peer);
    else if (ss.ss_family == AF_INET6) inet_ntop(AF_INET6, &((struct sockaddr_in6 *)&ss)->sin6_addr, peer, sizeof peer);
  }
  if (ra_ws_attested(ws)) hs[nh++] = (ra_header){ra_str_cstr(px->attested_hdr), RA_STR("1")};
  hs[nh++] = (ra_header){RA_STR("X-Forwarded-Proto"), ra_str_cstr(px->proto)};
  hs[nh++] = (ra_header){RA_STR("X-Forwarded-For"), ra_str_cstr(peer)};
  ra_str proto = ra_ws_protocol(ws);
  char pbuf[256];
  const char *protos[1];
  ra_ws_client_opts o = {0};
  o.headers = hs;
  o.nheaders = nh;
  o.handshake_timeout_ms = px->connect_ms + px->first_byte_ms;
  if (proto.len && proto.len < sizeof pbuf) {
    memcpy(pbuf, proto.ptr, proto.len);
    pbuf[proto.len] = '\0';
    protos[0] = pbuf;
    o.protocols = protos;
    o.nprotocols = 1;
  }
  int rc = url.data ? ra_ws_connect(ra_ws_loop(ws), (const char *)bufp(&url), &o, &up_handlers, r, &r->up)
                    : -ENOMEM;
  ra_buf_free(&url);
  if (rc) {
    r->up = NULL;
    ra_log(RA_LOG_INFO, "proxy: WebSocket to the upstream: %s", strerror(-rc));
    ra_ws_close(ws, 1014, "upstream unreachable");
  }
}

static void down_message(ra_ws *ws, ra_ws_type type, const uint8_t *data, size_t len, void *ud) {
  (void)ud;
  wsrelay *r = ra_ws_userdata(ws);
  if (!r || !r->up) return;
  if (r->up_open) {
    ra_ws_send(r->up, type, data, len);
    return;
  }
  uint8_t t = (uint8_t)type;
  uint64_t l = len;
  if (r->queue.len + len > ((size_t)16 << 20)) {
    ra_ws_close(ws, 1013, "upstream not open yet");
    return;
  }
  ra_buf_append(&r->queue, &t, 1);
  ra_buf_append(&r->queue, &l, 8);
  ra_buf_append(&r->queue, data, len);
}

static void down_closed(ra_ws *ws, uint16_t code, ra_str reason, void *ud) {
  (void)ud;
  wsrelay *r = ra_ws_userdata(ws);
  if (!r) return;
  r->down = NULL;
  if (r->up) {
    if (r->up_open) relay_close(r->up, code, reason);
    else ra_ws_terminate(r->up);
  } else {
    ra_buf_free(&r->queue);
    free(r);
  }
}

static const ra_ws_handlers down_handlers = {NULL, down_select, down_open, down_message, down_closed,
                                             NULL, NULL, NULL};

static bool is_ws_upgrade(ra_req *req) {
  ra_str up;
  if (!ra_str_eq_cstr(ra_req_method(req), "GET") || !ra_req_header(req, "upgrade", &up)) return false;
  return ra_str_eq_nocase(up, RA_STR("websocket"));
}

bool ra_proxy_ws_match(ra_route_match *m, ra_str path, ra_req *req) {
  if (!m || m->handler != ra_proxy_handle || !m->ud) return false;
  ra_proxy *px = m->ud;
  ra_route_match wm;
  if (px->freeing || !px->ws_router || ra_router_match(px->ws_router, RA_STR("GET"), path, req, &wm) != 0)
    return false;
  *m = wm;
  return true;
}

void ra_proxy_handle(ra_req *req, ra_res *res, void *ud) {
  ra_proxy *px = ud;
  if (!px || px->freeing) {
    ra_res_send_text(res, 502, "bad gateway: no upstream\n");
    return;
  }
  if (!target_ok(ra_req_target(req))) {
    ra_res_send_text(res, 400, "bad request: the target must be an absolute path without dot segments\n");
    return;
  }
  if (is_ws_upgrade(req)) { /* ws/ does the handshake, down_open starts the relay */
    ra_route_match m;
    if (px->ws_router && ra_router_match(px->ws_router, RA_STR("GET"), ra_req_path(req), req, &m) == 0)
      m.handler(req, res, m.ud);
    else ra_res_send_text(res, 502, "bad gateway: WebSockets are not proxied\n");
    return;
  }
  pxr *r = calloc(1, sizeof *r);
  if (!r) {
    ra_res_send_text(res, 503, "service unavailable: out of memory\n");
    return;
  }
  r->px = px;
  r->req = req;
  r->res = res;
  r->state = PX_CONNECTING;
  r->is_head = ra_str_eq_cstr(ra_req_method(req), "HEAD");
  ra_timer_init(px->loop, &r->timer, pxr_timeout, r);
  llhttp_settings_init(&r->ps);
  r->ps.on_message_begin = p_begin;
  r->ps.on_header_field = p_field;
  r->ps.on_header_value = p_value;
  r->ps.on_headers_complete = p_headers_complete;
  r->ps.on_body = p_body;
  r->ps.on_message_complete = p_complete;
  if (build_out(r)) {
    pxr_fail(r, 503, "service unavailable: out of memory\n");
    return;
  }
  ra_res_on_cancel(res, on_cancel, r);
  ra_res_on_drain(res, on_drain, r);
  int rc = acquire(r);
  if (rc == -EBUSY) pxr_fail(r, 503, "service unavailable: too many requests waiting for the upstream\n");
  else if (rc) pxr_fail(r, 502, "bad gateway: cannot connect to the upstream: %s\n", strerror(-rc));
}

/* ---- routes ---------------------------------------------------------------- */

static void h_refuse(ra_req *req, ra_res *res, void *ud) {
  (void)req;
  (void)ud;
  ra_res_send_text(res, 404, "not found\n");
}

int ra_proxy_route(ra_router *r, const char *prefix, ra_proxy *px, ra_proxy_policy policy) {
  if (!r || !prefix || prefix[0] != '/' || strchr(prefix, '*') || strstr(prefix, "/:")) return -EINVAL;
  if (policy != RA_PROXY_REFUSE && !px) return -EINVAL;
  size_t n = strlen(prefix);
  while (n > 1 && prefix[n - 1] == '/') n--;
  if (n > 4000) return -EINVAL;
  char exact[4100], wild[4100];
  memcpy(exact, prefix, n);
  exact[n] = '\0';
  size_t wl = n == 1 ? 0 : n;
  memcpy(wild, exact, wl);
  memcpy(wild + wl, "/*", 3);
  ra_handler h = policy == RA_PROXY_REFUSE ? h_refuse : ra_proxy_handle;
  unsigned flags = policy == RA_PROXY_ATTESTED_ONLY ? RA_ROUTE_ATTESTED_ONLY : 0;
  int rc = ra_route_ex(r, "*", exact, h, px, flags);
  if (rc) return rc;
  rc = ra_route_ex(r, "*", wild, h, px, flags);
  if (rc) ra_router_remove(r, "*", exact);
  return rc;
}

/* ---- the proxy ------------------------------------------------------------- */

static int parse_upstream(ra_proxy *px, const char *u) {
  if (strncmp(u, "unix:", 5) == 0) {
    if (!u[5] || strlen(u) >= sizeof px->host) return -EINVAL;
    strcpy(px->host, u);
    px->port = 0;
    snprintf(px->host_hdr, sizeof px->host_hdr, "localhost");
    return 0;
  }
  if (strncmp(u, "http://", 7) != 0) return -EINVAL;
  const char *h = u + 7, *end = h + strcspn(h, "/?#");
  if (*end && strcmp(end, "/") != 0) return -EINVAL; /* no path prefix rewriting */
  const char *colon;
  const char *hb = h, *he;
  if (*h == '[') {
    const char *rb = memchr(h, ']', (size_t)(end - h));
    if (!rb) return -EINVAL;
    hb = h + 1;
    he = rb;
    colon = rb + 1 < end && rb[1] == ':' ? rb + 1 : NULL;
  } else {
    colon = memchr(h, ':', (size_t)(end - h));
    he = colon ? colon : end;
  }
  if (he == hb || (size_t)(he - hb) >= sizeof px->host) return -EINVAL;
  memcpy(px->host, hb, (size_t)(he - hb));
  px->host[he - hb] = '\0';
  unsigned long port = 80;
  if (colon) {
    char *e;
    port = strtoul(colon + 1, &e, 10);
    if (e != end || port == 0 || port > 65535) return -EINVAL;
  }
  px->port = (uint16_t)port;
  snprintf(px->host_hdr, sizeof px->host_hdr, "%.*s", (int)(end - h), h);
  return 0;
}

int ra_proxy_new(ra_loop *loop, const ra_proxy_opts *o, ra_proxy **out) {
  *out = NULL;
  if (!loop || !o || !o->upstream) return -EINVAL;
  ra_proxy *px = calloc(1, sizeof *px);
  if (!px) return -ENOMEM;
  px->loop = loop;
  if (parse_upstream(px, o->upstream)) {
    free(px);
    return -EINVAL;
  }
  const char *ah = o->attested_header ? o->attested_header : "X-Attested";
  const char *pr = o->proto ? o->proto : "http";
  if (!*ah || strlen(ah) >= sizeof px->attested_hdr || strlen(pr) >= sizeof px->proto ||
      strpbrk(ah, " :\r\n\t") || strpbrk(pr, " ;,\"\r\n")) {
    free(px);
    return -EINVAL;
  }
  strcpy(px->attested_hdr, ah);
  strcpy(px->proto, pr);
  px->max_conns = o->max_conns ? o->max_conns : 64;
  px->max_idle = o->max_idle ? o->max_idle : px->max_conns;
  px->max_queue = o->max_queue ? o->max_queue : 4096;
  px->connect_ms = o->connect_timeout_ms ? o->connect_timeout_ms : 5000;
  px->first_byte_ms = o->first_byte_timeout_ms ? o->first_byte_timeout_ms : 60000;
  px->idle_ms = o->idle_timeout_ms ? o->idle_timeout_ms : 60000;
  px->keepalive_ms = o->keepalive_ms ? o->keepalive_ms : 30000;
  if (ra_router_new(&px->ws_router) || ra_ws_route(px->ws_router, "/", &down_handlers, px) ||
      ra_ws_route(px->ws_router, "/*", &down_handlers, px)) {
    ra_router_free(px->ws_router);
    free(px);
    return -ENOMEM;
  }
  *out = px;
  return 0;
}

/* After the proxy is gone, its connections close on their own. */
static size_t orphan_read(ra_stream *s, const uint8_t *d, size_t n, void *ud) {
  (void)s; (void)d; (void)ud;
  return n;
}
static void orphan_close(ra_stream *s, int err, void *ud) {
  (void)s; (void)err;
  free(ud);
}
static const ra_stream_cbs orphan_cbs = {orphan_read, NULL, NULL, orphan_close};


void ra_proxy_free(ra_proxy *px) {
  if (!px) return;
  px->freeing = true;
  while (px->qhead) pxr_fail(px->qhead, 502, "bad gateway: the gateway is stopping\n");
  for (ucon *uc = px->all; uc; uc = uc->next_all)
    if (uc->cur) pxr_fail(uc->cur, 502, "bad gateway: the gateway is stopping\n");
  ucon *uc = px->all;
  while (uc) {
    ucon *next = uc->next_all;
    ra_timer_stop(&uc->ka);
    if (uc->s) {
      ra_stream_set_userdata(uc->s, &orphan_cbs, uc);
      ra_stream_abort(uc->s, -ECANCELED);
    } else if (uc->connecting) {
      uc->orphan = true; /* u_connected frees it */
    } else {
      free(uc);
    }
    uc = next;
  }
  ra_router_free(px->ws_router);
  free(px);
}
