/* bench/http_client.c: the plain HTTP/1.1 transport of ra-bench. */
#include "bench/http_client.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <llhttp.h>

#include "raloop/core/buf.h"
#include "raloop/core/stream.h"

typedef struct pending {
  bench_req req;
  bench_done_cb cb;
  void *ud;
  int tries;
} pending;

typedef struct hpool hpool;

typedef struct hconn {
  hpool *pool; /* NULL once the pool is gone (the stream's on_close still comes) */
  ra_stream *s;
  struct hconn *prev, *next; /* the pool's list of live connections */
  llhttp_t parser;
  bool connected, busy, closing, got_bytes, complete;
  unsigned nsent; /* requests sent on this connection */
  pending cur;
  int status;
  ra_buf body;
  char head[1024];
} hconn;

struct hpool {
  bench_target base;
  bench_origin origin;
  size_t max_conns, nconns;
  bool one_shot;
  hconn *conns;
  /* FIFO ring of requests waiting for a connection */
  pending *q;
  size_t qhead, qlen, qcap;
  llhttp_settings_t settings;
};

static void conn_dispatch(hpool *p);
static void conn_send(hconn *c);

/* ---- queue ---------------------------------------------------------------- */

static int q_push(hpool *p, const pending *pd, bool front) {
  if (p->qlen == p->qcap) {
    size_t cap = p->qcap ? p->qcap * 2 : 64;
    pending *n = malloc(cap * sizeof *n);
    if (!n) return -ENOMEM;
    for (size_t i = 0; i < p->qlen; i++) n[i] = p->q[(p->qhead + i) % p->qcap];
    free(p->q);
    p->q = n;
    p->qcap = cap;
    p->qhead = 0;
  }
  if (front) {
    p->qhead = (p->qhead + p->qcap - 1) % p->qcap;
    p->q[p->qhead] = *pd;
  } else {
    p->q[(p->qhead + p->qlen) % p->qcap] = *pd;
  }
  p->qlen++;
  return 0;
}

static bool q_pop(hpool *p, pending *out) {
  if (!p->qlen) return false;
  *out = p->q[p->qhead];
  p->qhead = (p->qhead + 1) % p->qcap;
  p->qlen--;
  return true;
}

/* ---- llhttp callbacks --------------------------------------------------------- */

static int on_message_begin(llhttp_t *ps) {
  hconn *c = ps->data;
  ra_buf_reset(&c->body);
  c->complete = false;
  return 0;
}

static int on_headers_complete(llhttp_t *ps) {
  hconn *c = ps->data;
  c->status = ps->status_code;
  /* One allocation for the whole body when its size is announced. */
  if ((ps->flags & F_CONTENT_LENGTH) && ps->content_length > 0 &&
      ps->content_length < (64u << 20) && ra_buf_reserve(&c->body, ps->content_length))
    return -1;
  return 0;
}

static int on_body(llhttp_t *ps, const char *at, size_t len) {
  hconn *c = ps->data;
  return ra_buf_append(&c->body, at, len) ? -1 : 0;
}

static int on_message_complete(llhttp_t *ps) {
  hconn *c = ps->data;
  c->complete = true;
  return HPE_PAUSED; /* hand the response over before parsing further */
}

/* ---- connections ------------------------------------------------------------- */

static void conn_unlink(hconn *c) {
  hpool *p = c->pool;
  if (!p) return;
  if (c->prev) c->prev->next = c->next;
  else p->conns = c->next;
  if (c->next) c->next->prev = c->prev;
  c->prev = c->next = NULL;
  if (!c->closing) p->nconns--;
}

/* Stops using c: it leaves the pool's count now and is freed in on_close. */
static void conn_retire(hconn *c, bool abort_it, int err) {
  if (c->closing) return;
  hpool *p = c->pool;
  if (p) p->nconns--;
  c->closing = true;
  if (abort_it) ra_stream_abort(c->s, err);
  else ra_stream_close(c->s);
}

static void finish(hconn *c, int err, const char *msg) {
  pending cur = c->cur;
  c->busy = false;
  memset(&c->cur, 0, sizeof c->cur);
  if (err) cur.cb(cur.ud, err, 0, NULL, 0, msg);
  else cur.cb(cur.ud, 0, c->status, ra_buf_ptr(&c->body), c->body.len, NULL);
}

static size_t on_read(ra_stream *s, const uint8_t *data, size_t len, void *ud) {
  hconn *c = ud;
  size_t off = 0;
  while (off < len) {
    if (!c->busy || c->closing) {
      /* bytes nobody asked for: the connection is out of step */
      conn_retire(c, true, -EPROTO);
      return len;
    }
    c->got_bytes = true;
    llhttp_errno_t e = llhttp_execute(&c->parser, (const char *)data + off, len - off);
    if (e == HPE_OK) return len;
    if (e != HPE_PAUSED) {
      char msg[160];
      snprintf(msg, sizeof msg, "bad HTTP response: %s (%s)", llhttp_errno_name(e),
               llhttp_get_error_reason(&c->parser));
      hpool *p = c->pool;
      conn_retire(c, true, -EPROTO);
      finish(c, -EPROTO, msg);
      if (p) conn_dispatch(p);
      return len;
    }
    off = (size_t)((const uint8_t *)llhttp_get_error_pos(&c->parser) - data);
    llhttp_resume(&c->parser);
    bool keep = llhttp_should_keep_alive(&c->parser) && !c->pool->one_shot;
    hpool *p = c->pool;
    if (!keep) conn_retire(c, false, 0);
    finish(c, 0, NULL);
    if (!c->closing && !c->busy) {
      /* idle again: take the next waiting request, if any */
      pending next;
      if (q_pop(p, &next)) {
        c->cur = next;
        c->busy = true;
        conn_send(c);
      }
    }
    if (c->closing) {
      conn_dispatch(p);
      return len;
    }
  }
  return len;
}

static void on_eof(ra_stream *s, void *ud) {
  hconn *c = ud;
  if (c->busy && !c->closing && llhttp_finish(&c->parser) == HPE_OK && c->complete) {
    /* a response delimited by the end of the connection */
    hpool *p = c->pool;
    conn_retire(c, false, 0);
    finish(c, 0, NULL);
    conn_dispatch(p);
    return;
  }
  conn_retire(c, false, 0);
}

static void on_close(ra_stream *s, int err, void *ud) {
  hconn *c = ud;
  hpool *p = c->pool;
  if (p) {
    bool was_counted = !c->closing;
    conn_unlink(c);
    if (was_counted) c->closing = true;
    if (c->busy) {
      if (c->nsent > 1 && !c->got_bytes && c->cur.tries == 0) {
        /* the server closed an idle keep-alive connection just as we sent */
        c->cur.tries++;
        if (q_push(p, &c->cur, true) == 0) c->busy = false;
      }
      if (c->busy) {
        char msg[128];
        snprintf(msg, sizeof msg, "connection lost: %s", strerror(err ? -err : ECONNRESET));
        finish(c, err ? err : -ECONNRESET, msg);
      }
    }
    conn_dispatch(p);
  }
  ra_buf_free(&c->body);
  free(c);
}

static const ra_stream_cbs conn_cbs = {
    .on_read = on_read, .on_eof = on_eof, .on_close = on_close};

static void noop_free(void *ud) { (void)ud; }

static void conn_send(hconn *c) {
  hpool *p = c->pool;
  const bench_req *r = &c->cur.req;
  c->got_bytes = false;
  c->nsent++;
  llhttp_init(&c->parser, HTTP_RESPONSE, &p->settings);
  c->parser.data = c;
  int n = snprintf(c->head, sizeof c->head,
                   "%s %s HTTP/1.1\r\nHost: %s:%u\r\nContent-Length: %zu\r\n%s%s%s%s\r\n",
                   r->method, r->path, p->origin.host, p->origin.port, r->body_len,
                   r->content_type ? "Content-Type: " : "", r->content_type ? r->content_type : "",
                   r->content_type ? "\r\n" : "", p->one_shot ? "Connection: close\r\n" : "");
  int rc = (n < 0 || (size_t)n >= sizeof c->head) ? -EINVAL : ra_stream_write(c->s, c->head, (size_t)n);
  if (rc == 0 && r->body_len) rc = ra_stream_write_ref(c->s, r->body, r->body_len, noop_free, NULL);
  if (rc) conn_retire(c, true, rc); /* on_close fails the request */
}

static void on_connect(ra_stream *s, int status, void *ud) {
  hconn *c = ud;
  if (status) {
    /* the stream is gone: no on_close will come */
    hpool *p = c->pool;
    if (p) {
      conn_unlink(c);
      if (c->busy) {
        char msg[700];
        snprintf(msg, sizeof msg, "connect to %s: %s", p->origin.url, strerror(-status));
        finish(c, status, msg);
      }
    }
    ra_buf_free(&c->body);
    free(c);
    return;
  }
  c->s = s;
  c->connected = true;
  if (!c->pool) {
    c->closing = true;
    ra_stream_abort(s, -ECANCELED);
    return;
  }
  if (c->busy) conn_send(c);
}

static int conn_open(hpool *p, const pending *first) {
  hconn *c = calloc(1, sizeof *c);
  if (!c) return -ENOMEM;
  c->pool = p;
  c->cur = *first;
  c->busy = true;
  c->next = p->conns;
  if (p->conns) p->conns->prev = c;
  p->conns = c;
  p->nconns++;
  int rc = ra_stream_connect(p->base.loop, p->origin.host, p->origin.port, &conn_cbs, on_connect, c);
  if (rc) {
    conn_unlink(c);
    free(c);
  }
  return rc;
}

/* Gives waiting requests to idle connections, or new ones. */
static void conn_dispatch(hpool *p) {
  while (p->qlen) {
    hconn *idle = NULL;
    for (hconn *c = p->conns; c; c = c->next)
      if (c->connected && !c->busy && !c->closing) {
        idle = c;
        break;
      }
    pending pd;
    if (idle) {
      q_pop(p, &pd);
      idle->cur = pd;
      idle->busy = true;
      conn_send(idle);
    } else if (p->nconns < p->max_conns) {
      q_pop(p, &pd);
      int rc = conn_open(p, &pd);
      if (rc) {
        /* cannot even start: fail it (we are inside a loop callback here) */
        pd.cb(pd.ud, rc, 0, NULL, 0, "cannot open a connection");
      }
    } else {
      break;
    }
  }
}

/* ---- the target -------------------------------------------------------------- */

static int pool_request(bench_target *t, const bench_req *r, bench_done_cb cb, void *ud) {
  hpool *p = (hpool *)t;
  pending pd = {.req = *r, .cb = cb, .ud = ud};
  if (p->base.spread && p->nconns < p->max_conns) return conn_open(p, &pd);
  if (!p->one_shot) {
    for (hconn *c = p->conns; c; c = c->next)
      if (c->connected && !c->busy && !c->closing) {
        c->cur = pd;
        c->busy = true;
        conn_send(c);
        return 0;
      }
  }
  if (p->nconns < p->max_conns) return conn_open(p, &pd);
  return q_push(p, &pd, false);
}

static void pool_free(bench_target *t) {
  hpool *p = (hpool *)t;
  hconn *c = p->conns;
  while (c) {
    hconn *next = c->next;
    c->pool = NULL;
    c->prev = c->next = NULL;
    if (c->connected && !c->closing) {
      c->closing = true;
      ra_stream_abort(c->s, -ECANCELED);
    } else if (c->connected) {
      /* already closing: on_close frees it */
    }
    /* connecting: on_connect sees pool == NULL and frees it */
    c = next;
  }
  free(p->q);
  free(p);
}

size_t bench_http_conns(const bench_target *t) { return ((const hpool *)t)->nconns; }

static const bench_target_ops http_ops = {.request = pool_request, .free = pool_free};

bench_target *bench_http_new(ra_loop *loop, const bench_origin *origin, size_t max_conns,
                             bool one_shot) {
  hpool *p = calloc(1, sizeof *p);
  if (!p) return NULL;
  p->base.ops = &http_ops;
  p->base.loop = loop;
  p->origin = *origin;
  p->max_conns = max_conns ? max_conns : 1;
  p->one_shot = one_shot;
  llhttp_settings_init(&p->settings);
  p->settings.on_message_begin = on_message_begin;
  p->settings.on_headers_complete = on_headers_complete;
  p->settings.on_body = on_body;
  p->settings.on_message_complete = on_message_complete;
  return &p->base;
}
