/* http/response.c: the transport-neutral response and its sink. */
#include "raloop/http/response_internal.h"
#include "raloop/http/token.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "raloop/http/request_internal.h"

static void res_defer_cb(ra_defer *d, void *ud);

void ra_res_init(ra_res *res, ra_loop *loop, ra_req *req, const ra_res_sink_ops *ops,
                 void *sink, ra_res_release_fn release, void *release_ud) {
  res->loop = loop;
  res->req = req;
  if (req) req->loop = loop;
  res->ops = ops;
  res->sink = sink;
  res->nhdrs = 0;
  ra_buf_reset(&res->hbuf);
  res->status = 200;
  res->content_length = -1;
  res->state = RA_RES_BUILDING;
  res->cancelled = false;
  res->is_head = req && req->method_len == 4 && memcmp(req->method, "HEAD", 4) == 0;
  res->in_end = false;
  res->head_done = res->cancel_owed = res->drain_owed = res->aborted = false;
  res->turn_bytes = 0;
  res->turn = 0;
  ra_defer_init(&res->defer, res_defer_cb, res);
  res->on_cancel = NULL;
  res->cancel_ud = NULL;
  res->on_drain = NULL;
  res->drain_ud = NULL;
  res->release = release;
  res->release_ud = release_ud;
}

void ra_res_reset(ra_res *res) {
  if (res->hbuf.cap > 2048) ra_buf_free(&res->hbuf);
  if (res->hdr_cap > 16) {
    free(res->hdrs);
    res->hdrs = NULL;
    res->hdr_cap = 0;
  }
  res->nhdrs = 0;
  ra_buf_reset(&res->hbuf);
}

void ra_res_cleanup(ra_res *res) {
  free(res->hdrs);
  res->hdrs = NULL;
  res->hdr_cap = res->nhdrs = 0;
  ra_buf_free(&res->hbuf);
}

int ra_res_new(ra_loop *loop, ra_req *req, const ra_res_sink_ops *ops, void *sink, ra_res **out) {
  ra_res *res = calloc(1, sizeof *res);
  *out = res;
  if (!res) return -ENOMEM; /* req stays the caller's */
  ra_res_init(res, loop, req, ops, sink, NULL, NULL);
  return 0;
}

static void res_release(ra_res *res) {
  if (res->loop) ra_defer_cancel(res->loop, &res->defer);
  if (res->release) {
    res->release(res, res->release_ud);
    return;
  }
  ra_req_free(res->req);
  ra_res_cleanup(res);
  free(res);
}

/* ---- headers ---------------------------------------------------------------- */

/* Adds a header whose name is known to be a token (checked, or a literal). */
static int add_header_named(ra_res *res, ra_str name, ra_str value) {
  if (res->state != RA_RES_BUILDING) return -EALREADY;
  if (!ra_http_field_value_valid(value)) return -EINVAL;
  if (res->nhdrs == res->hdr_cap) {
    uint32_t cap = res->hdr_cap ? res->hdr_cap * 2 : 8;
    ra_header *h = realloc(res->hdrs, cap * sizeof *h);
    if (!h) return -ENOMEM;
    res->hdrs = h;
    res->hdr_cap = cap;
  }
  const uint8_t *old = res->hbuf.data;
  int rc = ra_buf_reserve(&res->hbuf, name.len + value.len + 2);
  if (rc) return rc;
  if (res->hbuf.data != old && old) {
    /* The strings moved: re-point the views already handed out below. */
    for (uint32_t i = 0; i < res->nhdrs; i++) {
      res->hdrs[i].name.ptr = (const char *)res->hbuf.data + (res->hdrs[i].name.ptr - (const char *)old);
      res->hdrs[i].value.ptr = (const char *)res->hbuf.data + (res->hdrs[i].value.ptr - (const char *)old);
    }
  }
  char *n = (char *)ra_buf_ptr(&res->hbuf) + res->hbuf.len;
  memcpy(n, name.ptr, name.len);
  n[name.len] = '\0';
  char *v = n + name.len + 1;
  if (value.len) memcpy(v, value.ptr, value.len);
  v[value.len] = '\0';
  res->hbuf.len += name.len + value.len + 2;
  res->hdrs[res->nhdrs].name = ra_str_make(n, name.len);
  res->hdrs[res->nhdrs].value = ra_str_make(v, value.len);
  res->nhdrs++;
  return 0;
}

int ra_res_add_header_n(ra_res *res, ra_str name, ra_str value) {
  if (!ra_http_token_valid(name)) return -EINVAL;
  return add_header_named(res, name, value);
}

int ra_res_add_header(ra_res *res, const char *name, const char *value) {
  if (!name || !value) return -EINVAL;
  return ra_res_add_header_n(res, ra_str_cstr(name), ra_str_cstr(value));
}

int ra_res_set_status(ra_res *res, int status) {
  if (res->state != RA_RES_BUILDING) return -EALREADY;
  if (status < 100 || status > 999) return -EINVAL;
  res->status = status;
  return 0;
}

int ra_res_set_content_length(ra_res *res, uint64_t len) {
  if (res->state != RA_RES_BUILDING) return -EALREADY;
  if (len > INT64_MAX) return -EINVAL;
  res->content_length = (int64_t)len;
  return 0;
}

/* ---- body ---------------------------------------------------------------------- */

/* Deferred work: the on_cancel owed to a HEAD answer that is complete, or
 * the on_drain owed once the turn's budget was spent (on a later turn: a
 * call queued from a deferred call runs in the next one). */
static void res_defer_cb(ra_defer *d, void *ud) {
  (void)d;
  ra_res *res = ud;
  if (res->state == RA_RES_ENDED) return;
  if (res->cancel_owed) {
    res->cancel_owed = res->drain_owed = false;
    ra_res_cancel_cb cb = res->on_cancel;
    res->on_cancel = NULL;
    if (cb) cb(res, res->cancel_ud); /* may end (free) res */
    return;
  }
  if (!res->drain_owed || res->cancelled) return;
  if (res->turn == ra_loop_turn(res->loop)) {
    ra_loop_defer(res->loop, &res->defer);
    return;
  }
  res->drain_owed = false;
  if (res->on_drain) res->on_drain(res, res->drain_ud);
}

static void owe_drain(ra_res *res) {
  if (res->drain_owed) return;
  res->drain_owed = true;
  ra_loop_defer(res->loop, &res->defer);
}

/* HEAD: the head is the whole answer. The transport is released now (its
 * end runs), the producer is told from the loop. */
static void head_complete(ra_res *res) {
  const ra_res_sink_ops *ops = res->ops;
  void *sink = res->sink;
  res->head_done = true;
  res->cancelled = true;
  res->ops = NULL;
  res->sink = NULL;
  res->on_drain = NULL;
  res->drain_owed = false;
  ops->end(sink);
  if (res->loop) {
    res->cancel_owed = true;
    ra_loop_defer(res->loop, &res->defer);
  }
}

static int send_head(ra_res *res) {
  res->state = RA_RES_HEAD_SENT;
  if (!res->ops) return -ECANCELED;
  int rc = res->ops->head(res->sink, res->status, res->hdrs, res->nhdrs, res->content_length);
  if (rc == 0 && res->is_head && res->ops) head_complete(res);
  return rc;
}

int ra_res_write(ra_res *res, const void *data, size_t len) {
  if (res->state == RA_RES_ENDED) return -EALREADY;
  if (res->cancelled) return -ECANCELED;
  if (res->state == RA_RES_BUILDING) {
    int rc = send_head(res);
    if (rc) return rc;
    if (res->head_done) return 0; /* this call's bytes are the body HEAD drops */
  }
  if (len == 0) return 0;
  if (!res->ops) return -ECANCELED;
  if (res->loop) {
    uint64_t t = ra_loop_turn(res->loop);
    if (res->turn != t) {
      res->turn = t;
      res->turn_bytes = 0;
    } else if (res->turn_bytes >= RA_RES_TURN_MAX) {
      owe_drain(res);
      return -EAGAIN;
    }
  }
  int rc = res->ops->body(res->sink, data, len);
  if (rc == 0 && res->req) res->req->bytes_out += len;
  if (rc == 0 && res->loop) {
    res->turn_bytes += len;
    if (res->turn_bytes >= RA_RES_TURN_BUDGET) owe_drain(res);
  }
  return rc;
}

int ra_res_end(ra_res *res) {
  if (res->state == RA_RES_ENDED || res->in_end) return -EALREADY;
  int rc = 0;
  res->in_end = true;
  if (res->head_done) {
    rc = 0; /* the transport already has the whole answer */
  } else if (!res->cancelled) {
    if (res->state == RA_RES_BUILDING) {
      if (res->content_length < 0) res->content_length = 0;
      rc = send_head(res);
    }
    if (rc == 0 && res->ops)
      rc = res->aborted && res->ops->abort ? res->ops->abort(res->sink) : res->ops->end(res->sink);
  } else {
    rc = -ECANCELED;
  }
  res->state = RA_RES_ENDED;
  res->in_end = false;
  res_release(res);
  return rc;
}

int ra_res_abort(ra_res *res) {
  if (res->state == RA_RES_ENDED || res->in_end) return -EALREADY;
  res->aborted = true;
  return ra_res_end(res);
}

int ra_res_send(ra_res *res, int status, const char *content_type, const void *body, size_t len) {
  if (res->state != RA_RES_BUILDING) return -EALREADY;
  int rc = ra_res_set_status(res, status);
  /* the name is a literal token: only the value is checked */
  if (rc == 0 && content_type) rc = add_header_named(res, RA_STR("Content-Type"), ra_str_cstr(content_type));
  if (rc == 0) rc = ra_res_set_content_length(res, len);
  if (rc == 0 && !res->cancelled) rc = ra_res_write(res, body, len);
  int rc2 = ra_res_end(res);
  return rc ? rc : rc2;
}

#define TEXT_PLAIN "text/plain; charset=utf-8"

int ra_res_send_text(ra_res *res, int status, const char *text) {
  return ra_res_send(res, status, TEXT_PLAIN, text, text ? strlen(text) : 0);
}

/* The handler is promised an ended response whatever failed. */
static int sendf_failed(ra_res *res, int err) {
  ra_res_send(res, 500, NULL, NULL, 0);
  return err;
}

int ra_res_sendf(ra_res *res, int status, const char *fmt, ...) {
  if (res->state != RA_RES_BUILDING) return -EALREADY;
  char small[512]; /* most answers: no allocation */
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(small, sizeof small, fmt, ap);
  va_end(ap);
  if (n < 0) return sendf_failed(res, -EINVAL);
  if ((size_t)n < sizeof small) return ra_res_send(res, status, TEXT_PLAIN, small, (size_t)n);
  char *big = malloc((size_t)n + 1);
  if (!big) return sendf_failed(res, -ENOMEM);
  va_start(ap, fmt);
  vsnprintf(big, (size_t)n + 1, fmt, ap);
  va_end(ap);
  int rc = ra_res_send(res, status, TEXT_PLAIN, big, (size_t)n);
  free(big);
  return rc;
}

/* ---- misc ------------------------------------------------------------------------ */

ra_req *ra_res_req(const ra_res *res) { return res->req; }
ra_loop *ra_res_loop(const ra_res *res) { return res->loop; }
bool ra_res_cancelled(const ra_res *res) { return res->cancelled; }

void ra_res_on_cancel(ra_res *res, ra_res_cancel_cb cb, void *ud) {
  res->on_cancel = cb;
  res->cancel_ud = ud;
}

void ra_res_on_drain(ra_res *res, ra_res_drain_cb cb, void *ud) {
  res->on_drain = cb;
  res->drain_ud = ud;
}

size_t ra_res_pending(const ra_res *res) {
  if (res->cancelled) return RA_RES_PENDING_YIELD;
  size_t n = res->ops && res->ops->pending ? res->ops->pending(res->sink) : 0;
  if (res->loop && res->turn_bytes >= RA_RES_TURN_BUDGET && res->turn == ra_loop_turn(res->loop) &&
      n < RA_RES_PENDING_YIELD)
    n = RA_RES_PENDING_YIELD;
  return n;
}

int ra_res_upgrade(ra_res *res, ra_upgrade_cb cb, void *ud) {
  if (res->state != RA_RES_BUILDING) return -EALREADY;
  if (res->cancelled) return -ECANCELED;
  if (!res->ops || !res->ops->upgrade || !cb) return -ENOTSUP;
  int rc = res->ops->upgrade(res->sink, 101, res->hdrs, res->nhdrs, cb, ud);
  if (rc) return rc;
  res->state = RA_RES_ENDED;
  res_release(res);
  return 0;
}

void ra_res_cancel(ra_res *res) {
  if (res->cancelled) return;
  res->cancelled = true;
  res->ops = NULL;
  res->sink = NULL;
  res->on_drain = NULL;
  ra_res_cancel_cb cb = res->on_cancel;
  res->on_cancel = NULL;
  /* Last: the callback may end (and so free) the response. */
  if (cb && res->state != RA_RES_ENDED) cb(res, res->cancel_ud);
}

void ra_res_drained(ra_res *res) {
  if (res->cancelled || res->state == RA_RES_ENDED || !res->on_drain) return;
  res->on_drain(res, res->drain_ud);
}
