/* http/request.c: the transport-neutral request. */
#include "raloop/http/request_internal.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

struct ra_req_blk {
  ra_req_blk *next;
  size_t used, cap;
  _Alignas(16) char data[];
};

/* One block serves a typical request (decoded path, a few query values and
 * params) and is kept across reuse. */
#define REQ_BLK_DEFAULT 512

void ra_req_init(ra_req *req) { memset(req, 0, sizeof *req); req->http_version = 11; }

static void blk_free_all(ra_req_blk *b) {
  while (b) {
    ra_req_blk *n = b->next;
    free(b);
    b = n;
  }
}

static void body_ref_release(ra_req *req) {
  void (*cb)(void *) = req->body_ref_free;
  void *ud = req->body_ref_ud;
  req->body_ref = NULL;
  req->body_ref_len = 0;
  req->body_ref_free = NULL;
  req->body_ref_ud = NULL;
  if (cb) cb(ud);
}

static void body_stream_release(ra_req *req) {
  if (req->loop) ra_defer_cancel(req->loop, &req->body_defer);
}

void ra_req_reset(ra_req *req) {
  body_stream_release(req);
  req->peer_len = 0;
  req->client_id = NULL; /* its copy lives in the arena, released below */
  body_ref_release(req);
  /* Keep one default-sized block and small buffers: a pooled request then
   * serves the next one without allocating. Big ones go back to malloc so a
   * single large request does not pin memory. */
  ra_req_blk *keep = NULL;
  for (ra_req_blk *b = req->blk, *n; b; b = n) {
    n = b->next;
    if (!keep && b->cap == REQ_BLK_DEFAULT) {
      keep = b;
    } else {
      free(b);
    }
  }
  if (keep) {
    keep->next = NULL;
    keep->used = 0;
  }
  ra_buf raw = req->raw, body = req->body;
  ra_req_hdr *hdrs = req->hdrs;
  uint32_t hdr_cap = req->hdr_cap;
  if (raw.cap > 4096) ra_buf_free(&raw); else ra_buf_reset(&raw);
  if (body.cap > 4096) ra_buf_free(&body); else ra_buf_reset(&body);
  if (hdr_cap > 32) {
    free(hdrs);
    hdrs = NULL;
    hdr_cap = 0;
  }
  memset(req, 0, sizeof *req);
  req->http_version = 11;
  req->raw = raw;
  req->body = body;
  req->hdrs = hdrs;
  req->hdr_cap = hdr_cap;
  req->blk = keep;
}

void ra_req_cleanup(ra_req *req) {
  body_stream_release(req);
  body_ref_release(req);
  blk_free_all(req->blk);
  ra_buf_free(&req->raw);
  ra_buf_free(&req->body);
  free(req->hdrs);
  memset(req, 0, sizeof *req);
}

void *ra_req_alloc(ra_req *req, size_t n) {
  if (n > SIZE_MAX / 2) return NULL; /* rounding and the header would wrap */
  n = (n + 15) & ~(size_t)15;
  if (n == 0) n = 16;
  ra_req_blk *b = req->blk;
  if (!b || b->cap - b->used < n) {
    size_t cap = n > REQ_BLK_DEFAULT ? n : REQ_BLK_DEFAULT;
    b = malloc(sizeof *b + cap);
    if (!b) return NULL;
    b->used = 0;
    b->cap = cap;
    b->next = req->blk;
    req->blk = b;
  }
  void *p = b->data + b->used;
  b->used += n;
  return p;
}

/* ---- building ------------------------------------------------------------ */

int ra_req_set_method(ra_req *req, ra_str m) {
  if (m.len == 0 || m.len > RA_REQ_METHOD_MAX) return -EINVAL;
  memcpy(req->method, m.ptr, m.len);
  req->method[m.len] = '\0';
  req->method_len = (uint8_t)m.len;
  return 0;
}

static int raw_append(ra_req *req, const char *p, size_t n) {
  if (req->raw.len + n > UINT32_MAX / 2) return -E2BIG;
  if (n == 0) return 0;
  if (req->raw.cap == 0) {
    /* First bytes: size for a typical request head at once. */
    int rc = ra_buf_reserve(&req->raw, n > 512 ? n : 512);
    if (rc) return rc;
  }
  return ra_buf_append(&req->raw, p, n);
}

int ra_req_target_append(ra_req *req, const char *p, size_t n) {
  if (req->target_len == 0) req->target_off = (uint32_t)req->raw.len;
  int rc = raw_append(req, p, n);
  if (rc == 0) req->target_len += (uint32_t)n;
  return rc;
}

int ra_req_hdr_begin(ra_req *req) {
  if (req->nhdrs == req->hdr_cap) {
    uint32_t cap = req->hdr_cap ? req->hdr_cap * 2 : 16;
    ra_req_hdr *h = realloc(req->hdrs, cap * sizeof *h);
    if (!h) return -ENOMEM;
    req->hdrs = h;
    req->hdr_cap = cap;
  }
  ra_req_hdr *h = &req->hdrs[req->nhdrs++];
  h->name_off = h->value_off = (uint32_t)req->raw.len;
  h->name_len = h->value_len = 0;
  return 0;
}

int ra_req_hdr_name_append(ra_req *req, const char *p, size_t n) {
  if (req->nhdrs == 0) return -EINVAL;
  ra_req_hdr *h = &req->hdrs[req->nhdrs - 1];
  int rc = raw_append(req, p, n);
  if (rc) return rc;
  h->name_len += (uint32_t)n;
  h->value_off = (uint32_t)req->raw.len;
  return 0;
}

int ra_req_hdr_value_append(ra_req *req, const char *p, size_t n) {
  if (req->nhdrs == 0) return -EINVAL;
  ra_req_hdr *h = &req->hdrs[req->nhdrs - 1];
  if (h->value_len == 0) h->value_off = (uint32_t)req->raw.len;
  int rc = raw_append(req, p, n);
  if (rc) return rc;
  h->value_len += (uint32_t)n;
  return 0;
}

static int hexval(unsigned char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

long ra_pct_decode(char *dst, ra_str src, bool plus_space) {
  size_t o = 0;
  for (size_t i = 0; i < src.len; i++) {
    unsigned char c = (unsigned char)src.ptr[i];
    if (c == '%') {
      if (i + 2 >= src.len) return -1;
      int hi = hexval((unsigned char)src.ptr[i + 1]), lo = hexval((unsigned char)src.ptr[i + 2]);
      if (hi < 0 || lo < 0) return -1;
      dst[o++] = (char)(hi * 16 + lo);
      i += 2;
    } else if (c == '+' && plus_space) {
      dst[o++] = ' ';
    } else {
      dst[o++] = (char)c;
    }
  }
  return (long)o;
}

static ra_str raw_str(const ra_req *req, uint32_t off, uint32_t len) {
  if (len == 0) return ra_str_make("", 0);
  return ra_str_make((const char *)ra_buf_ptr(&req->raw) + off, len);
}

int ra_req_finish_target(ra_req *req) {
  req->path_ok = false;
  ra_str t = raw_str(req, req->target_off, req->target_len);
  const char *p = t.ptr, *end = t.ptr + t.len;
  if (t.len == 1 && t.ptr[0] == '*') {
    req->path = ra_str_make("*", 1);
    req->path_ok = true;
    return 0;
  }
  if (t.len > 7 && (strncasecmp(p, "http://", 7) == 0 || strncasecmp(p, "https://", 8) == 0)) {
    /* absolute-form: skip scheme and authority */
    p = memchr(p, ':', t.len) + 3;
    while (p < end && *p != '/' && *p != '?' && *p != '#') p++;
  } else if (t.len == 0 || t.ptr[0] != '/') {
    return -EINVAL;
  }
  const char *pe = p;
  while (pe < end && *pe != '?' && *pe != '#') pe++;
  if (pe < end && *pe == '?') {
    const char *q = pe + 1, *qe = q;
    while (qe < end && *qe != '#') qe++;
    req->query_off = (uint32_t)(q - (const char *)ra_buf_ptr(&req->raw));
    req->query_len = (uint32_t)(qe - q);
  }
  size_t plen = (size_t)(pe - p);
  char *out = ra_req_alloc(req, plen + 2);
  if (!out) return -ENOMEM;
  size_t o = 0;
  if (plen > 0) {
    const char *s = p + 1; /* p[0] == '/' unless absolute-form had no path */
    if (*p != '/') return -EINVAL;
    for (;;) {
      const char *e = memchr(s, '/', (size_t)(pe - s));
      bool last = (e == NULL);
      if (!e) e = pe;
      char *dst = out + o + 1;
      long d = ra_pct_decode(dst, ra_str_make(s, (size_t)(e - s)), false);
      if (d < 0) return -EINVAL;
      /* An encoded '/' would let one segment pose as several (or hide
       * "../" from the dot-segment check below); NUL breaks C handlers. */
      if (memchr(dst, '/', (size_t)d) || memchr(dst, '\0', (size_t)d)) return -EINVAL;
      if (d == 1 && dst[0] == '.') {
        if (last) out[o++] = '/';
      } else if (d == 2 && dst[0] == '.' && dst[1] == '.') {
        if (o == 0) return -EINVAL; /* above the root: refuse */
        while (o > 0 && out[o - 1] != '/') o--;
        o--;
        if (last) out[o++] = '/';
      } else {
        out[o] = '/';
        o += 1 + (size_t)d;
      }
      if (last) break;
      s = e + 1;
    }
  }
  if (o == 0) out[o++] = '/';
  out[o] = '\0';
  req->path = ra_str_make(out, o);
  req->path_ok = true;
  return 0;
}

int ra_req_set_params(ra_req *req, const ra_req_kv *p, size_t n) {
  req->params = NULL;
  req->nparams = 0;
  if (n == 0) return 0;
  size_t bytes = n * sizeof *p;
  for (size_t i = 0; i < n; i++) bytes += p[i].name.len + p[i].value.len + 2;
  ra_req_kv *dst = ra_req_alloc(req, bytes);
  if (!dst) return -ENOMEM;
  char *s = (char *)(dst + n);
  for (size_t i = 0; i < n; i++) {
    memcpy(s, p[i].name.ptr, p[i].name.len);
    s[p[i].name.len] = '\0';
    dst[i].name = ra_str_make(s, p[i].name.len);
    s += p[i].name.len + 1;
    if (p[i].value.len) memcpy(s, p[i].value.ptr, p[i].value.len);
    s[p[i].value.len] = '\0';
    dst[i].value = ra_str_make(s, p[i].value.len);
    s += p[i].value.len + 1;
  }
  req->params = dst;
  req->nparams = (uint32_t)n;
  return 0;
}

/* ---- public API ------------------------------------------------------------ */

int ra_req_start(ra_req *req, ra_str method, ra_str target, int http_version, bool attested) {
  int rc = ra_req_set_method(req, method); /* -EINVAL: empty or too long */
  if (!rc) rc = ra_req_target_append(req, target.ptr, target.len);
  if (rc) return rc;
  req->http_version = http_version == 10 ? 10 : 11;
  req->attested = attested;
  /* A bad target is not an allocation failure: the router answers 400. */
  (void)ra_req_finish_target(req);
  return 0;
}

int ra_req_new(ra_str method, ra_str target, int http_version, bool attested, ra_req **out) {
  *out = NULL;
  ra_req *req = malloc(sizeof *req);
  if (!req) return -ENOMEM;
  ra_req_init(req);
  int rc = ra_req_start(req, method, target, http_version, attested);
  if (rc) {
    ra_req_cleanup(req);
    free(req);
    return rc;
  }
  *out = req;
  return 0;
}

int ra_req_add_header(ra_req *req, ra_str name, ra_str value) {
  int rc = ra_req_hdr_begin(req);
  if (rc) return rc;
  if ((rc = ra_req_hdr_name_append(req, name.ptr, name.len)) ||
      (rc = ra_req_hdr_value_append(req, value.ptr, value.len))) {
    req->nhdrs--;
    return rc;
  }
  return 0;
}

int ra_req_append_body(ra_req *req, const void *data, size_t len) {
  if (req->body_ref) return -EINVAL; /* the body is a reference: not appendable */
  if (len == 0) return 0;
  return ra_buf_append(&req->body, data, len);
}

int ra_req_set_body_ref(ra_req *req, const void *data, size_t len, void (*free_cb)(void *), void *ud) {
  if (!data && len) {
    if (free_cb) free_cb(ud);
    return -EINVAL;
  }
  body_ref_release(req);
  ra_buf_reset(&req->body);
  req->body_ref = data ? data : "";
  req->body_ref_len = len;
  req->body_ref_free = free_cb;
  req->body_ref_ud = ud;
  return 0;
}

int ra_req_set_client_identity(ra_req *req, const ra_client_identity *id) {
  req->client_id = NULL;
  if (!id) return 0;
  ra_client_identity *c = ra_req_alloc(req, sizeof *c);
  if (!c) return -ENOMEM;
  *c = *id;
  req->client_id = c;
  return 0;
}

const ra_client_identity *ra_req_client_identity(const ra_req *req) { return req->client_id; }

void ra_req_free(ra_req *req) {
  if (!req) return;
  ra_req_cleanup(req);
  free(req);
}

ra_str ra_req_method(const ra_req *req) { return ra_str_make(req->method, req->method_len); }
ra_str ra_req_target(const ra_req *req) { return raw_str(req, req->target_off, req->target_len); }
ra_str ra_req_path(const ra_req *req) {
  return req->path_ok ? req->path : ra_str_make("", 0);
}
ra_str ra_req_query(const ra_req *req) { return raw_str(req, req->query_off, req->query_len); }

bool ra_req_query_get(ra_req *req, const char *name, ra_str *out) {
  ra_str q = ra_req_query(req);
  size_t nlen = strlen(name);
  const char *p = q.ptr, *end = q.ptr + q.len;
  char small[64];
  while (p < end) {
    const char *amp = memchr(p, '&', (size_t)(end - p));
    if (!amp) amp = end;
    const char *eq = memchr(p, '=', (size_t)(amp - p));
    const char *ne = eq ? eq : amp;
    size_t rawn = (size_t)(ne - p);
    if (rawn >= nlen && rawn <= 3 * nlen) {
      char *buf = rawn <= sizeof small ? small : ra_req_alloc(req, rawn);
      if (!buf) return false;
      long d = ra_pct_decode(buf, ra_str_make(p, rawn), true);
      if (d == (long)nlen && memcmp(buf, name, nlen) == 0) {
        ra_str v = eq ? ra_str_make(eq + 1, (size_t)(amp - eq - 1)) : ra_str_make("", 0);
        char *val = ra_req_alloc(req, v.len + 1);
        if (!val) return false;
        long vd = ra_pct_decode(val, v, true);
        if (vd < 0) return false; /* malformed: treat as absent (fail closed) */
        val[vd] = '\0';
        if (out) *out = ra_str_make(val, (size_t)vd);
        return true;
      }
    }
    p = amp + 1;
  }
  return false;
}

bool ra_req_header(const ra_req *req, const char *name, ra_str *out) {
  size_t nlen = strlen(name);
  const char *base = (const char *)ra_buf_ptr(&req->raw);
  for (uint32_t i = 0; i < req->nhdrs; i++) {
    const ra_req_hdr *h = &req->hdrs[i];
    if (h->name_len == nlen && strncasecmp(base + h->name_off, name, nlen) == 0) {
      if (out) *out = raw_str(req, h->value_off, h->value_len);
      return true;
    }
  }
  return false;
}

size_t ra_req_header_count(const ra_req *req) { return req->nhdrs; }

ra_header ra_req_header_at(const ra_req *req, size_t i) {
  ra_header h = {ra_str_make("", 0), ra_str_make("", 0)};
  if (i >= req->nhdrs) return h;
  h.name = raw_str(req, req->hdrs[i].name_off, req->hdrs[i].name_len);
  h.value = raw_str(req, req->hdrs[i].value_off, req->hdrs[i].value_len);
  return h;
}

ra_str ra_req_body(const ra_req *req) {
  if (req->body_ref) return ra_str_make((const char *)req->body_ref, req->body_ref_len);
  if (req->body.len == 0) return ra_str_make("", 0);
  return ra_str_make((const char *)ra_buf_ptr(&req->body), req->body.len);
}

bool ra_req_param(const ra_req *req, const char *name, ra_str *out) {
  for (uint32_t i = 0; i < req->nparams; i++) {
    if (ra_str_eq_cstr(req->params[i].name, name)) {
      if (out) *out = req->params[i].value;
      return true;
    }
  }
  return false;
}

int ra_req_http_version(const ra_req *req) { return req->http_version; }
bool ra_req_attested(const ra_req *req) { return req->attested; }

ra_str ra_req_peer(const ra_req *req) { return ra_str_make(req->peer, req->peer_len); }

int ra_req_set_peer(ra_req *req, ra_str addr) {
  if (addr.len >= sizeof req->peer) return -EINVAL;
  memcpy(req->peer, addr.ptr, addr.len);
  req->peer_len = (uint8_t)addr.len;
  return 0;
}

/* ---- streamed bodies ------------------------------------------------------ */

/* A buffered body handed to a streaming handler: whole, from the loop. */
static void body_buffered_deliver(ra_defer *d, void *ud) {
  (void)d;
  ra_req *req = ud;
  if (!ra_req_body_wants(req)) return; /* paused: resume defers again */
  ra_str b = ra_req_body(req);
  /* No body: (NULL, 0, true), as request.h promises. */
  ra_req_body_deliver(req, b.len ? (const uint8_t *)b.ptr : NULL, b.len, true);
}

static void body_kick(ra_req *req) {
  if (req->body_ops) {
    req->body_ops->kick(req->body_t);
  } else if (req->loop && ra_req_body_wants(req)) {
    if (!req->body_defer.cb) ra_defer_init(&req->body_defer, body_buffered_deliver, req);
    ra_loop_defer(req->loop, &req->body_defer);
  }
}

void ra_req_on_body(ra_req *req, ra_req_body_cb cb, void *ud) {
  req->body_cb = cb;
  req->body_ud = ud;
  body_kick(req);
}

void ra_req_body_pause(ra_req *req, bool paused) {
  if (req->body_paused == paused) return;
  req->body_paused = paused;
  body_kick(req);
}

bool ra_req_body_streamed(const ra_req *req) { return req->body_ops != NULL; }

void ra_req_set_body_stream(ra_req *req, const ra_req_body_ops *ops, void *t) {
  req->body_ops = ops;
  req->body_t = t;
}

bool ra_req_body_wants(const ra_req *req) {
  return req->body_cb && !req->body_paused && !req->body_done;
}

void ra_req_body_deliver(ra_req *req, const uint8_t *data, size_t len, bool last) {
  if (!ra_req_body_wants(req)) return;
  if (last) req->body_done = true;
  req->bytes_in += len;
  req->body_cb(req, data, len, last, req->body_ud);
}

uint64_t ra_req_body_bytes(const ra_req *req) {
  return req->body_ops ? req->bytes_in : ra_req_body(req).len;
}

uint64_t ra_req_response_bytes(const ra_req *req) { return req->bytes_out; }
