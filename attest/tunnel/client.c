/* attest/tunnel/client.c: see client.h. The keyed channel and its tunnelled
 * WebSockets are channel.c's, shared with the server. */
#include "raloop/attest/tunnel/client.h"

#include "raloop/attest/quote/vcache.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <sodium.h>

#include "raloop/attest/pcs/pcs.h"
#include "raloop/attest/tunnel/channel_internal.h"
#include "raloop/attest/tunnel/envelope.h"
#include "raloop/attest/tunnel/msg.h"
#include "raloop/core/list.h"
#include "raloop/core/log.h"
#include "raloop/core/work.h"
#include "raloop/ws/client.h"

typedef struct creq creq;

enum { ST_IDLE, ST_CONNECTING, ST_READY, ST_CLOSED };

struct ra_tunnel_client {
  ra_loop *loop;
  char *ctl_url;
  ra_tunnel_client_opts o;
  ra_policy policy;
  bool has_policy;
  ra_tchan ch;           /* the control ws, key, envelope buffers, sockets */
  struct ctl_link *link; /* ch.ctl's user data */
  uint64_t conn_gen;     /* counts connections: an attestation made for an older one is dropped */
  struct att_job *att_jobs; /* client attestations being made (core/work.h) */
  int state;
  int fail;            /* why the current/last connection failed (for pending requests) */
  char fail_msg[512];
  uint8_t server_pk[32];
  bool has_server_pk;
  ra_verdict vd;
  bool has_vd;
  uint8_t *quote; /* copy of the last server_kx quote (for -v style reports) */
  size_t quote_len;
  /* the last server_kx's binding values (copies: verification may wait for
   * a collateral fetch) */
  uint8_t *bval, *biat;
  size_t bval_len, biat_len;
  bool has_nonce;
  /* SEV-SNP (the last server_kx carried sev_snp_data): its nonce and
   * certificates (copies), the policy, the verdict */
  bool snp;
  uint8_t *snonce;
  size_t snonce_len;
  bool has_snonce;
  char *vcek, *ask, *ark;
  ra_snp_policy snp_policy;
  bool has_snp_policy;
  ra_snp_verdict svd;
  bool has_svd;
  /* client attestation (PROTOCOL.md §10) */
  uint8_t challenge[RA_TMSG_CHALLENGE_BYTES];
  bool has_challenge; /* the last server_kx asked for one */
  bool sent_attestation;
  char *client_event_log;
  /* collateral from a PCCS/PCS (opts.pccs_url): the fetch in flight, and
   * the last parsed document, kept for later handshakes while fresh */
  char *pccs_url, *pccs_cache_dir, *pccs_ca_file;
  ra_tls_ctx *tls;       /* https/wss origins: our reference (NULL: the ws client's default) */
  char *tls_server_name;
  ra_pcs_fetch *fetch;
  ra_pcs_key fetch_key, fetched_key;
  ra_collateral *fetched;
  int64_t fetched_next_update;
  creq *reqs;
  uint64_t next_id;
  ra_tindex reqs_by_num; /* pending requests by id number (see map_put) */
  ra_timer connect_timer, reconnect_timer;
  bool freeing;
  /* a finished request and a plain buffer kept for the next fetch (issue
   * 18: no allocation per request; one each, a few hundred bytes) */
  creq *spare;
  ra_buf spare_plain;
  /* streamed bodies (PROTOCOL.md §11): ours (announced in client_kx), the
   * server's (its last server_kx, when valid), and whether this tunnel
   * negotiated them */
  ra_tmsg_body_streams my_bs, srv_bs;
  bool srv_has_bs, bs_on;
};

struct creq {
  ra_tunnel_client *c;
  creq *next, *prev;
  ra_timer timer;
  bool sent;
  bool retry; /* GET/HEAD: plain is kept after sending, to resend on a new tunnel
                 after a key rotation (see ctl_close) */
  int fail; /* set: the timer reports this error */
  ra_tunnel_fetch_cb cb;
  void *ud;
  ra_buf plain; /* the encoded http_request, sealed when the channel is ready */
  uint64_t num; /* the N of id "raN" */
  char id[32];
  uint64_t timeout_ms;
  char msg[200]; /* why q->fail, when set (else err_msg) */
  /* streamed request body: the source, the request without its body
   * (a copy of method, url and headers in one block), where the upload is */
  ssize_t (*rd)(void *ud, uint8_t *buf, size_t cap);
  uint64_t body_length;
  bool body_is_text;
  char *spec_method, *spec_url;
  ra_header *spec_hdrs;
  size_t spec_n;
  int up;        /* UP_* */
  bool up_wait;  /* the source said -EAGAIN: until ra_tunnel_fetch_resume */
  uint64_t up_sent, up_credit; /* data bytes sent; the server's window + its grants */
  uint8_t *up_chunk;           /* UP_STREAM: one piece, after UP_HEADROOM */
  ra_buf up_body;              /* UP_WHOLE: the body so far */
  ra_timer pump;
  /* streamed response body */
  int (*on_head)(ra_tunnel_client *c, const struct ra_tunnel_response *res, void *ud);
  int (*on_data)(ra_tunnel_client *c, const uint8_t *data, size_t len, void *ud);
  bool resp_started; /* a response head arrived (never replayed after that) */
  bool dn_stream, dn_paused;
  uint64_t dn_recv, dn_allowed, dn_granted_at;
  int dn_status;
  bool dn_text;
  uint8_t *dn_hdrs;   /* caller without on_data: the head's headers (CBOR) */
  size_t dn_hdrs_len;
  char *dn_status_text;
  ra_buf dn_body;     /* caller without on_data: the body so far */
};

enum { UP_NONE, UP_STREAM, UP_WHOLE, UP_DONE };
#define UP_HEADROOM 128 /* before a piece in up_chunk: the http_body head */
#define PUMP_TURN ((size_t)4 << 20) /* most source bytes read in one loop turn */

static void start_connect(ra_tunnel_client *c);
static int map_put(ra_tunnel_client *c, creq *q);
static void map_del(ra_tunnel_client *c, creq *q);
static uint8_t *dup_bytes(const uint8_t *p, size_t len);

/* ---- encoding ---------------------------------------------------------------- */

/* Encodes with enc(out, cap, arg) into a fresh heap buffer. One encode
 * for a usual message (a GET's): into a stack buffer first (the encoders
 * return the size whatever cap is and write only when it fits), copied;
 * a larger one is encoded a second time once its buffer is there. */
static uint8_t *encode_alloc(ra_tchan_encode_fn enc, const void *arg, size_t *len) {
  uint8_t tmp[512];
  size_t n = enc(tmp, sizeof tmp, arg);
  uint8_t *p = malloc(n ? n : 1);
  if (!p) return NULL;
  if (n <= sizeof tmp) memcpy(p, tmp, n);
  else enc(p, n, arg);
  *len = n;
  return p;
}

/* A request's id, "ra" and its number in decimal (what snprintf's
 * "ra%llu" makes, without its cost on every fetch). out: >= 23 bytes. */
static void req_id_format(char *out, uint64_t num) {
  char d[20];
  size_t n = 0;
  do d[n++] = (char)('0' + num % 10); while ((num /= 10));
  out[0] = 'r';
  out[1] = 'a';
  for (size_t i = 0; i < n; i++) out[2 + i] = d[n - 1 - i];
  out[2 + n] = '\0';
}

/* ---- requests ----------------------------------------------------------------- */

/* A plain buffer this small is kept for the next request (a GET's). */
#define SPARE_PLAIN_MAX 1024

static void creq_free(creq *q) {
  ra_tunnel_client *c = q->c;
  ra_timer_stop(&q->timer);
  if (q->rd) ra_timer_stop(&q->pump);
  if (q->plain.data && !c->freeing && !c->spare_plain.data && q->plain.cap <= SPARE_PLAIN_MAX) {
    c->spare_plain = q->plain;
    ra_buf_reset(&c->spare_plain);
  } else {
    ra_buf_free(&q->plain);
  }
  free(q->spec_method); /* the block of method, url and headers */
  free(q->up_chunk);
  ra_buf_free(&q->up_body);
  free(q->dn_hdrs);
  free(q->dn_status_text);
  ra_buf_free(&q->dn_body);
  if (!c->freeing && !c->spare) c->spare = q;
  else free(q);
}

/* A zeroed request: the spare one, or a new one. */
static creq *creq_alloc(ra_tunnel_client *c) {
  creq *q = c->spare;
  if (!q) return calloc(1, sizeof *q);
  c->spare = NULL;
  memset(q, 0, sizeof *q);
  return q;
}

/* The http_request of q into q->plain: straight into the spare buffer
 * when it fits (no allocation), else encoded once when it fits the stack
 * buffer, as encode_alloc does. On -ENOMEM q->plain is left empty. */
static int plain_encode(creq *q, const ra_tmsg_http_request_out *o) {
  ra_tunnel_client *c = q->c;
  ra_buf *b = &q->plain;
  *b = c->spare_plain; /* the spare (empty, its memory kept), or nothing */
  c->spare_plain = (ra_buf){0};
  uint8_t tmp[512];
  bool spare = b->cap != 0;
  size_t n = spare ? ra_tmsg_encode_http_request(b->data, b->cap, o)
                   : ra_tmsg_encode_http_request(tmp, sizeof tmp, o);
  if (n > b->cap) {
    if (ra_buf_reserve(b, n)) {
      ra_buf_free(b);
      return -ENOMEM;
    }
    if (!spare && n <= sizeof tmp) memcpy(b->data, tmp, n);
    else ra_tmsg_encode_http_request(b->data, n, o);
  }
  b->len = n;
  return 0;
}

/* Ends q: its callback, then q is freed. msg (and res) may point into q
 * (q->msg, a streamed response collected whole): q outlives the callback. */
static void creq_finish(creq *q, int err, const ra_tunnel_response *res, const char *msg) {
  ra_tunnel_client *c = q->c;
  RA_LIST_DEL(c->reqs, q);
  map_del(c, q);
  ra_timer_stop(&q->timer);
  if (q->rd) ra_timer_stop(&q->pump);
  /* unlinked: nothing finds q during the callback, whose res may point
   * into it (a streamed response collected whole); freed after */
  q->cb(c, err, res, msg, q->ud);
  creq_free(q);
}

static const char *err_msg(int err) {
  switch (err) {
  case -ETIMEDOUT: return "request timeout";
  case -ECONNRESET: return "tunnel disconnected";
  case -EACCES: return "attestation refused";
  case -ECANCELED: return "tunnel closed";
  default: return strerror(-err);
  }
}

static void creq_timer(ra_timer *t, void *ud) {
  creq *q = ud;
  int err = q->fail ? q->fail : -ETIMEDOUT;
  ra_tunnel_client *c = q->c;
  creq_finish(q, err, NULL, q->msg[0] ? q->msg : err == c->fail && c->fail_msg[0] ? c->fail_msg : err_msg(err));
}

/* Fails q from the loop (never from inside the caller's callback). */
static void creq_fail_later(creq *q, int err, const char *msg) {
  if (q->fail) return;
  q->fail = err;
  if (msg != q->msg) snprintf(q->msg, sizeof q->msg, "%s", msg ? msg : "");
  if (q->rd) ra_timer_stop(&q->pump);
  ra_timer_start(&q->timer, 0, 0);
}

/* Progress on a streamed body: the timeout starts again. */
static void creq_progress(creq *q) {
  if (!q->fail) ra_timer_start(&q->timer, q->timeout_ms, 0);
}

static size_t enc_request(uint8_t *out, size_t cap, const void *a) {
  return ra_tmsg_encode_http_request(out, cap, a);
}

/* Copies method, url and headers into one block (q->spec_method heads
 * it), for a body_read request: encoded only when the tunnel is keyed and
 * says whether it takes streams. */
static int spec_copy(creq *q, const ra_tunnel_request *req) {
  const char *meth = req->method ? req->method : "GET";
  size_t ml = strlen(meth) + 1, ul = strlen(req->url) + 1, need = ml + ul;
  for (size_t i = 0; i < req->n_headers; i++) need += req->headers[i].name.len + req->headers[i].value.len;
  size_t hoff = (need + 15) & ~(size_t)15;
  char *b = malloc(hoff + req->n_headers * sizeof(ra_header) + 1);
  if (!b) return -ENOMEM;
  ra_header *h = (ra_header *)(void *)(b + hoff);
  char *p = b;
  memcpy(p, meth, ml), q->spec_method = p, p += ml;
  memcpy(p, req->url, ul), q->spec_url = p, p += ul;
  for (size_t i = 0; i < req->n_headers; i++) {
    ra_str n = req->headers[i].name, v = req->headers[i].value;
    if (n.len) memcpy(p, n.ptr, n.len);
    h[i].name = ra_str_make(p, n.len), p += n.len;
    if (v.len) memcpy(p, v.ptr, v.len);
    h[i].value = ra_str_make(p, v.len), p += v.len;
  }
  q->spec_hdrs = h;
  q->spec_n = req->n_headers;
  return 0;
}

static void up_begin(creq *q);
static void pump_fire(ra_timer *t, void *ud);

int ra_tunnel_fetch(ra_tunnel_client *c, const ra_tunnel_request *req, ra_tunnel_fetch_cb cb, void *ud) {
  return ra_tunnel_fetch_start(c, req, cb, ud, NULL);
}

int ra_tunnel_fetch_start(ra_tunnel_client *c, const ra_tunnel_request *req, ra_tunnel_fetch_cb cb,
                          void *ud, uint64_t *id) {
  if (!req || !req->url || !cb) return -EINVAL;
  creq *q = creq_alloc(c);
  if (!q) return -ENOMEM;
  q->c = c;
  q->cb = cb;
  q->ud = ud;
  q->num = ++c->next_id;
  q->on_head = req->on_head;
  q->on_data = req->on_data;
  q->timeout_ms = req->timeout_ms ? req->timeout_ms : c->o.request_timeout_ms;
  req_id_format(q->id, q->num);
  if (req->body_read && spec_copy(q, req)) {
    free(q);
    return -ENOMEM;
  }
  if (map_put(c, q)) {
    free(q->spec_method);
    free(q);
    return -ENOMEM;
  }
  ra_tmsg_http_request_out o = {
    .request_id = ra_str_cstr(q->id), .method = ra_str_cstr(req->method ? req->method : "GET"),
    .url = ra_str_cstr(req->url), .headers = req->headers, .n_headers = req->n_headers,
    .has_body = req->has_body, .body_is_text = req->body_is_text, .body = req->body,
    .body_len = req->body_len,
  };
  bool now = c->state == ST_READY && c->ch.ctl;
  const char *meth = req->method ? req->method : "GET";
  q->retry = !strcmp(meth, "GET") || !strcmp(meth, "HEAD");
  if (req->body_read) {
    /* encoded when the tunnel is keyed: streamed or whole depends on it */
    q->rd = req->body_read;
    q->body_length = req->body_length;
    q->body_is_text = req->body_is_text;
    q->retry = false;
    ra_timer_init(c->loop, &q->pump, pump_fire, q);
  } else if (now && q->retry) { /* kept to be resent after a rotation: GET/HEAD are small */
    if (plain_encode(q, &o)) {
      map_del(c, q);
      free(q);
      return -ENOMEM;
    }
    ra_ws_cork(c->ch.ctl);
    int rc = ra_tchan_send_plain(&c->ch, ra_buf_ptr(&q->plain), q->plain.len);
    if (rc == -ENOMEM) {
      map_del(c, q);
      ra_buf_free(&q->plain);
      free(q);
      return rc;
    }
    q->sent = true;
  } else if (now) {
    ra_ws_cork(c->ch.ctl); /* many fetches in one turn: one write */
    int rc = ra_tchan_send(&c->ch, enc_request, &o);
    if (rc == -ENOMEM) {
      map_del(c, q);
      free(q);
      return rc;
    }
    /* sent; or the channel just failed: its on_close fails q like the rest */
    q->sent = true;
  } else if (plain_encode(q, &o)) {
    map_del(c, q);
    free(q);
    return -ENOMEM;
  }
  RA_LIST_ADD(c->reqs, q);
  ra_timer_init(c->loop, &q->timer, creq_timer, q);
  if (id) *id = q->num;
  if (c->state == ST_CLOSED) { /* refused for good: fail from the loop */
    q->fail = c->fail ? c->fail : -ECONNRESET;
    ra_timer_start(&q->timer, 0, 0);
    return 0;
  }
  ra_timer_start(&q->timer, q->timeout_ms, 0);
  if (q->rd && now) up_begin(q);
  if (c->state == ST_IDLE) start_connect(c);
  return 0;
}

/* ---- streamed request bodies (PROTOCOL.md §11) -----------------------------
 * On a tunnel with streams: http_request bodyStream, then http_body pieces
 * of at most the server's chunk while credit lasts, read from the source
 * into one buffer (the http_body head written just before the data), at
 * most PUMP_TURN bytes a loop turn; the end is an empty piece with end.
 * Without: the source is read whole (up to max_whole_upload), then one
 * http_request carries it. */

/* Tells the server to abandon q (only a tunnel with streams knows
 * http_cancel; elsewhere the late answer is simply dropped). */
static void send_cancel(creq *q, const char *reason) {
  ra_tunnel_client *c = q->c;
  if (!q->sent || !c->bs_on || c->state != ST_READY) return;
  ra_tchan_send_http_cancel(&c->ch, ra_str_cstr(q->id), reason);
}

/* A stream of q broke (the server's fault, the source's, the sink's): the
 * server is told, the fetch fails. */
static void stream_fail(creq *q, int err, const char *msg) {
  if (q->fail) return;
  send_cancel(q, msg);
  q->up = UP_DONE;
  creq_fail_later(q, err, msg);
}

static int send_spec(creq *q, bool stream, const void *body, size_t len) {
  ra_tmsg_http_request_out o = {
    .request_id = ra_str_cstr(q->id), .method = ra_str_cstr(q->spec_method),
    .url = ra_str_cstr(q->spec_url), .headers = q->spec_hdrs, .n_headers = q->spec_n,
    .has_body = !stream, .body_is_text = q->body_is_text, .body = body, .body_len = len,
    .body_stream = stream,
  };
  ra_ws_cork(q->c->ch.ctl);
  return ra_tchan_send(&q->c->ch, enc_request, &o);
}

/* The tunnel is keyed: q's request goes out (streamed) or its body starts
 * being collected (whole). */
static void up_begin(creq *q) {
  ra_tunnel_client *c = q->c;
  if (q->fail || q->up != UP_NONE) return;
  if (c->bs_on && q->body_length && q->body_length <= c->srv_bs.chunk) {
    q->up = UP_WHOLE; /* known to fit one piece: one message, as a whole body */
  } else if (!c->bs_on) {
    if (q->body_length > c->o.max_whole_upload) {
      snprintf(q->msg, sizeof q->msg, "the server does not take streamed bodies (PROTOCOL.md §11) "
               "and this body (%llu bytes) is over the %llu a whole request may carry here",
               (unsigned long long)q->body_length, (unsigned long long)c->o.max_whole_upload);
      creq_fail_later(q, -EMSGSIZE, q->msg);
      return;
    }
    q->up = UP_WHOLE;
  } else {
    int rc = send_spec(q, true, NULL, 0);
    if (rc == -ENOMEM) {
      creq_fail_later(q, -ENOMEM, "out of memory");
      return;
    }
    q->sent = true;
    q->up = UP_STREAM;
    q->up_sent = 0;
    q->up_credit = c->srv_bs.window;
  }
  ra_timer_start(&q->pump, 0, 0);
}

/* Reads one piece from the source: its size, 0 at the end, -EAGAIN (now
 * waiting for resume), or -1 after failing the fetch. */
static ssize_t up_read(creq *q, uint8_t *buf, size_t cap) {
  ssize_t n = q->rd(q->ud, buf, cap);
  if (q->fail) return -1; /* cancelled from inside the source */
  if (n == -EAGAIN) {
    q->up_wait = true;
    return -EAGAIN;
  }
  if (n < 0 || (size_t)n > cap) {
    int err = n < 0 ? (int)n : -EINVAL;
    char m[160];
    snprintf(m, sizeof m, "the request body's source failed: %s", strerror(-err));
    stream_fail(q, err, m);
    return -1;
  }
  return n;
}

/* Sends what credit allows, a turn's worth at most. */
static void up_stream(creq *q) {
  ra_tunnel_client *c = q->c;
  size_t chunk = (size_t)c->srv_bs.chunk, turn = 0;
  if (!q->up_chunk && !(q->up_chunk = malloc(UP_HEADROOM + chunk))) {
    stream_fail(q, -ENOMEM, "out of memory");
    return;
  }
  ra_str id = ra_str_cstr(q->id);
  while (q->up == UP_STREAM && q->up_sent < q->up_credit && turn < PUMP_TURN) {
    uint64_t left = q->up_credit - q->up_sent;
    size_t cap = left < chunk ? (size_t)left : chunk;
    ssize_t n = up_read(q, q->up_chunk + UP_HEADROOM, cap);
    if (n < 0) return;
    size_t hl = ra_tmsg_encode_http_body_head(NULL, 0, id, (size_t)n, n == 0);
    uint8_t *m = q->up_chunk + UP_HEADROOM - hl;
    ra_tmsg_encode_http_body_head(m, hl, id, (size_t)n, n == 0);
    ra_ws_cork(c->ch.ctl);
    int rc = ra_tchan_send_plain(&c->ch, m, hl + (size_t)n);
    if (rc == -ENOMEM) {
      stream_fail(q, -ENOMEM, "out of memory");
      return;
    }
    if (rc) return; /* the channel failed: its on_close fails q */
    q->up_sent += (uint64_t)n;
    turn += (size_t)n;
    creq_progress(q);
    if (n == 0) { /* the end: the fetch waits for the response */
      q->up = UP_DONE;
      free(q->up_chunk);
      q->up_chunk = NULL;
    }
  }
  if (q->up == UP_STREAM && q->up_sent < q->up_credit) ra_timer_start(&q->pump, 0, 0); /* next turn */
}

/* Collects the body whole (no streams on this tunnel), then sends it. */
static void up_whole(creq *q) {
  ra_tunnel_client *c = q->c;
  size_t turn = 0;
  /* on a tunnel with streams a body goes whole only as announced: up to
   * body_length, which fits one chunk */
  uint64_t max = c->bs_on ? q->body_length : c->o.max_whole_upload;
  ra_buf *b = &q->up_body;
  while (q->up == UP_WHOLE && turn < PUMP_TURN) {
    /* 256 KiB a read, never past the bound by more than 64 KiB (room to
     * see one byte past it; b->len <= max here) */
    uint64_t room = max + 65536 - b->len;
    size_t want = room < 262144 ? (size_t)room : 262144;
    if (ra_buf_reserve(b, want)) {
      stream_fail(q, -ENOMEM, "out of memory");
      return;
    }
    ssize_t n = up_read(q, ra_buf_ptr(b) + b->len, want);
    if (n < 0) return;
    b->len += (size_t)n;
    turn += (size_t)n;
    if (b->len > max && c->bs_on) {
      stream_fail(q, -EMSGSIZE, "the request body's source gave more than its body_length");
      return;
    }
    if (b->len > max) {
      snprintf(q->msg, sizeof q->msg, "the server does not take streamed bodies (PROTOCOL.md §11) "
               "and this body is over the %llu bytes a whole request may carry here",
               (unsigned long long)max);
      stream_fail(q, -EMSGSIZE, q->msg);
      return;
    }
    if (n == 0) {
      if (c->state != ST_READY) return; /* the tunnel's close fails q */
      int rc = send_spec(q, false, ra_buf_ptr(b), b->len);
      if (rc == -ENOMEM) {
        stream_fail(q, -ENOMEM, "out of memory");
        return;
      }
      q->sent = true;
      q->up = UP_DONE;
      ra_buf_free(b);
      return;
    }
  }
  if (q->up == UP_WHOLE) ra_timer_start(&q->pump, 0, 0);
}

static void pump_fire(ra_timer *t, void *ud) {
  creq *q = ud;
  if (q->fail || q->up_wait || q->c->state != ST_READY) return;
  if (q->up == UP_STREAM) up_stream(q);
  else if (q->up == UP_WHOLE) up_whole(q);
}

/* ---- pending requests by id ------------------------------------------------
 * Responses come back in any order with many requests in flight: an index
 * keyed by the number in our "ra<N>" ids finds each in O(1). */

static uint64_t num_hash(uint64_t k) {
  k ^= k >> 33;
  k *= 0xff51afd7ed558ccdULL;
  k ^= k >> 33;
  return k;
}

static int map_put(ra_tunnel_client *c, creq *q) { return ra_tindex_put(&c->reqs_by_num, num_hash(q->num), q); }
static void map_del(ra_tunnel_client *c, creq *q) { ra_tindex_del(&c->reqs_by_num, num_hash(q->num), q); }

static creq *find_req(ra_tunnel_client *c, ra_str id) {
  /* our ids are "ra" and a decimal number: anything else is not ours */
  if (id.len < 3 || id.len > 22 || id.ptr[0] != 'r' || id.ptr[1] != 'a') return NULL;
  uint64_t num = 0;
  for (size_t i = 2; i < id.len; i++) {
    if (id.ptr[i] < '0' || id.ptr[i] > '9') return NULL;
    num = num * 10 + (uint64_t)(id.ptr[i] - '0');
  }
  creq *q;
  for (size_t pos = 0; (q = ra_tindex_next(&c->reqs_by_num, num_hash(num), &pos));)
    if (q->num == num && ra_str_eq_cstr(id, q->id)) return q;
  return NULL;
}

/* ---- tunnelled WebSockets (client side) ----------------------------------------- */

typedef struct connect_arg {
  ra_str id, url;
  const ra_str *protocols;
  size_t n;
} connect_arg;
static size_t enc_connect(uint8_t *out, size_t cap, const void *a) {
  const connect_arg *m = a;
  return ra_tmsg_encode_ws_connect(out, cap, m->id, m->url, m->protocols, m->n);
}

/* Sends the ws_connect that waited for the key. */
static void sock_flush(ra_tchan *ch, ra_tchan_sock *w) {
  if (w->peer_knows || !w->connect) return;
  if (ra_tchan_send_plain(ch, w->connect, w->connect_len) == 0) {
    w->peer_knows = true;
    free(w->connect);
    w->connect = NULL;
  }
}

/* The path of a ws:// URL, for ra_ws_path(). */
static ra_str url_path(const char *url) {
  const char *p = strstr(url, "://");
  p = p ? strchr(p + 3, '/') : url;
  return ra_str_cstr(p ? p : "/");
}

int ra_tunnel_ws_connect(ra_tunnel_client *c, const char *url, const char *const *protocols,
                         size_t n_protocols, const ra_ws_handlers *h, void *ud, ra_ws **out) {
  char id[40];
  ra_str ps[16];
  if (n_protocols > 16) n_protocols = 16;
  for (size_t i = 0; i < n_protocols; i++) ps[i] = ra_str_cstr(protocols[i]);
  snprintf(id, sizeof id, "ws_%llu", (unsigned long long)++c->next_id);
  connect_arg a = {ra_str_cstr(id), ra_str_cstr(url), ps, n_protocols};
  size_t len;
  uint8_t *connect = encode_alloc(enc_connect, &a, &len);
  ra_tchan_sock *w = connect ? ra_tchan_sock_new(&c->ch, ra_str_cstr(id), h, ud, NULL) : NULL;
  if (!w) {
    free(connect);
    return -ENOMEM;
  }
  w->connect = connect;
  w->connect_len = len;
  ra_ws_set_info(w->ws, url_path(url), RA_STR(""), true);
  if (ra_tchan_sock_add(&c->ch, w)) {
    ra_tchan_sock_discard(w); /* on_close 1006 from inside this call */
    return -ENOMEM;
  }
  if (c->state == ST_READY) sock_flush(&c->ch, w);
  else if (c->state == ST_IDLE) start_connect(c);
  else if (c->state == ST_CLOSED) ra_ws_terminate(w->ws);
  if (out) *out = w->ws;
  return 0;
}

/* ---- the control channel ----------------------------------------------------------- */

/* Counts the pairs ra_tmsg_headers_next yields. */
static size_t header_count(ra_str seq) {
  ra_tmsg_iter it;
  ra_str k, v;
  size_t n = 0;
  ra_tmsg_iter_init(&it, seq);
  while (ra_tmsg_headers_next(&it, &k, &v)) n++;
  return n;
}

/* Calls fn with the response's headers as ra_header views (on the stack
 * unless there are many): hs is the CBOR map as sent, turned back into
 * header bytes here. Returns fn's result, or a negative errno (then *why
 * says what) when the headers cannot be had. */
typedef int (*with_headers_fn)(creq *q, ra_tunnel_response *r, void *arg);
static int with_headers(creq *q, ra_str hs, ra_tunnel_response *r, with_headers_fn fn, void *arg,
                        const char **why) {
  uint8_t *owned;
  int rc = ra_tmsg_headers_to_bytes(&hs, &owned);
  if (rc) {
    *why = rc == -ENOMEM ? "out of memory" : "response header with a character above U+00FF";
    return rc == -ENOMEM ? -ENOMEM : -EPROTO;
  }
  /* one walk for the usual few headers; past the stack array, counted and
   * walked again into the heap */
  enum { SMALL = 32 };
  ra_header small[SMALL], *h = small;
  size_t n = 0;
  ra_tmsg_iter it;
  ra_tmsg_iter_init(&it, hs);
  while (n < SMALL && ra_tmsg_headers_next(&it, &small[n].name, &small[n].value)) n++;
  ra_str k, v;
  if (n == SMALL && ra_tmsg_headers_next(&it, &k, &v)) {
    n = header_count(hs);
    if (!(h = malloc(n * sizeof *h))) {
      free(owned);
      *why = "out of memory";
      return -ENOMEM;
    }
    ra_tmsg_iter_init(&it, hs);
    for (size_t i = 0; i < n; i++) ra_tmsg_headers_next(&it, &h[i].name, &h[i].value);
  }
  r->headers = h;
  r->n_headers = n;
  rc = fn(q, r, arg);
  if (h != small) free(h);
  free(owned);
  return rc;
}

static int finish_with(creq *q, ra_tunnel_response *r, void *arg) {
  creq_finish(q, 0, r, NULL);
  return 0;
}

static int head_with(creq *q, ra_tunnel_response *r, void *arg) {
  return q->on_head(q->c, r, q->ud);
}

/* The response ends: for a caller with on_data, only the status is left. */
static void finish_status(creq *q) {
  ra_tunnel_response r = {.status = q->dn_status};
  creq_finish(q, 0, &r, NULL);
}

/* on_head / on_data said stop (err < 0, not -EAGAIN): cancelled. */
static void sink_refused(creq *q, int err, const char *what) {
  char m[120];
  snprintf(m, sizeof m, "the response's %s refused it: %s", what, strerror(-err));
  stream_fail(q, err, m);
}

/* Hands body bytes to the consumer: on_data, or the collected body of a
 * caller without it (bounded by max_envelope). Returns 0, or -1 after
 * failing the fetch. */
static int sink_data(creq *q, const uint8_t *data, size_t len) {
  if (q->on_data) {
    int rc = q->on_data(q->c, data, len, q->ud);
    if (q->fail) return -1; /* cancelled from inside */
    if (rc == -EAGAIN) q->dn_paused = true;
    else if (rc < 0) {
      sink_refused(q, rc, "on_data");
      return -1;
    }
    return 0;
  }
  if (!len) return 0;
  if (q->dn_body.len + len > q->c->o.max_envelope) {
    stream_fail(q, -EMSGSIZE, "the streamed response is larger than max_envelope (use on_data)");
    return -1;
  }
  if (ra_buf_append(&q->dn_body, data, len)) {
    stream_fail(q, -ENOMEM, "out of memory");
    return -1;
  }
  return 0;
}

/* Grants the server what the consumer took since the last grant, once it
 * is a chunk (or everything, when force: after a pause). */
static void grant_credit(creq *q, bool force) {
  uint64_t taken = q->dn_recv - q->dn_granted_at;
  if (q->dn_paused || !taken || (!force && taken < q->c->my_bs.chunk)) return;
  if (ra_tchan_send_http_credit(&q->c->ch, ra_str_cstr(q->id), taken) == 0) {
    q->dn_granted_at = q->dn_recv;
    q->dn_allowed += taken;
  }
}

/* A whole response for a caller with on_data: head, the body in one
 * piece, the end. */
static void deliver_whole_to_sink(creq *q, const ra_tmsg *m, ra_tunnel_response *r) {
  const char *why = NULL;
  if (q->on_head) {
    int rc = with_headers(q, m->http_response.headers, r, head_with, NULL, &why);
    if (q->fail) return;
    if (rc < 0) {
      if (why) creq_fail_later(q, rc, why);
      else sink_refused(q, rc, "on_head");
      return;
    }
  }
  ra_str body = m->http_response.body;
  if (m->http_response.has_body && body.len && sink_data(q, body.bytes, body.len)) return;
  finish_status(q);
}

/* The head of a streamed response: to on_head, or kept for the end. */
static void stream_head(creq *q, const ra_tmsg *m, ra_tunnel_response *r) {
  ra_tunnel_client *c = q->c;
  q->dn_stream = true;
  q->dn_allowed = c->my_bs.window;
  q->dn_text = m->http_response.body_is_text;
  const char *why = NULL;
  if (q->on_data) {
    if (!q->on_head) return;
    int rc = with_headers(q, m->http_response.headers, r, head_with, NULL, &why);
    if (q->fail) return;
    if (rc < 0) {
      if (why) stream_fail(q, rc, why);
      else sink_refused(q, rc, "on_head");
    }
    return;
  }
  ra_str hs = m->http_response.headers, st = m->http_response.status_text;
  q->dn_hdrs = hs.ptr ? dup_bytes(hs.bytes, hs.len) : NULL;
  q->dn_hdrs_len = hs.len;
  q->dn_status_text = strndup(st.ptr ? st.ptr : "", st.len);
  if ((hs.ptr && !q->dn_hdrs) || !q->dn_status_text) stream_fail(q, -ENOMEM, "out of memory");
}

/* The end of a streamed response. */
static void stream_end(creq *q) {
  if (q->on_data) {
    finish_status(q);
    return;
  }
  ra_tunnel_response r = {
    .status = q->dn_status, .status_text = ra_str_cstr(q->dn_status_text),
    .body = q->dn_body.data ? ra_buf_ptr(&q->dn_body) : (const uint8_t *)"", .body_len = q->dn_body.len,
    .body_is_text = q->dn_text,
  };
  const char *why = NULL;
  int rc = with_headers(q, ra_str_make((const char *)q->dn_hdrs, q->dn_hdrs ? q->dn_hdrs_len : 0), &r,
                        finish_with, NULL, &why);
  if (rc < 0) creq_finish(q, rc, NULL, why);
}

static void on_http_response(ra_tunnel_client *c, const ra_tmsg *m) {
  creq *q = find_req(c, m->http_response.request_id);
  if (!q || !q->sent || q->fail || q->resp_started) return;
  if (m->http_response.has_error) {
    static const char rotated[] = "tunnel key rotated"; /* the server refused it unprocessed */
    if (q->retry && q->plain.data && m->http_response.error.len >= sizeof rotated - 1 &&
        !memcmp(m->http_response.error.ptr, rotated, sizeof rotated - 1)) {
      q->sent = false; /* resent on the new tunnel, once this one closes 1012 */
      return;
    }
    char msg[300];
    snprintf(msg, sizeof msg, "%.*s", (int)m->http_response.error.len, m->http_response.error.ptr);
    if (q->up == UP_STREAM) q->up = UP_DONE;
    creq_finish(q, -EPROTO, NULL, msg);
    return;
  }
  q->resp_started = true;
  q->dn_status = m->http_response.status;
  ra_tunnel_response r = {
    .status = m->http_response.status, .status_text = m->http_response.status_text,
    .body_is_text = m->http_response.body_is_text,
  };
  if (m->http_response.body_stream) {
    if (!c->bs_on) { /* only a tunnel that negotiated streams may carry them */
      creq_finish(q, -EPROTO, NULL, "a streamed response on a tunnel without streamed bodies");
      return;
    }
    stream_head(q, m, &r);
    return;
  }
  if (q->on_data) {
    deliver_whole_to_sink(q, m, &r);
    return;
  }
  ra_str body = m->http_response.body;
  r.body = m->http_response.has_body ? (body.bytes ? body.bytes : (const uint8_t *)"") : NULL;
  r.body_len = body.len;
  const char *why = NULL;
  int rc = with_headers(q, m->http_response.headers, &r, finish_with, NULL, &why);
  if (rc < 0) creq_finish(q, rc, NULL, why);
}

/* http_body: a piece of a streamed response. */
static void on_http_body(ra_tunnel_client *c, const ra_tmsg *m) {
  creq *q = find_req(c, m->http_body.request_id);
  if (!q || q->fail || !q->sent) return; /* unknown, or cancelled by us: ignored */
  size_t len = m->http_body.data.len;
  char why[160];
  if (!q->dn_stream) {
    stream_fail(q, -EPROTO, "http_body for a response that is not streamed");
    return;
  }
  if (len > c->my_bs.chunk || q->dn_recv + len > q->dn_allowed) {
    snprintf(why, sizeof why, "the server sent %s (PROTOCOL.md §11)",
             len > c->my_bs.chunk ? "a piece over the announced chunk" : "more than its credit");
    stream_fail(q, -EPROTO, why);
    return;
  }
  q->dn_recv += len;
  creq_progress(q);
  if (sink_data(q, m->http_body.data.bytes, len)) return;
  if (m->http_body.end) {
    stream_end(q);
    return;
  }
  grant_credit(q, false);
}

/* http_credit: the server takes more of our request body. */
static void on_http_credit(ra_tunnel_client *c, const ra_tmsg *m) {
  creq *q = find_req(c, m->http_credit.request_id);
  if (!q || q->fail || q->up != UP_STREAM) return;
  uint64_t b = m->http_credit.bytes;
  q->up_credit = b > UINT64_MAX / 2 - q->up_credit ? UINT64_MAX / 2 : q->up_credit + b;
  creq_progress(q);
  if (!q->up_wait) ra_timer_start(&q->pump, 0, 0);
}

/* http_cancel: the server wants no more of our request body (its response
 * comes, or came, on its own); and a streamed response that had not ended
 * failed (PROTOCOL.md §11.5: it is never ended with a false `end`). */
static void on_http_cancel(ra_tunnel_client *c, const ra_tmsg *m) {
  creq *q = find_req(c, m->http_cancel.request_id);
  if (!q || q->fail) return;
  if (q->dn_stream) {
    char why[200];
    ra_str r = m->http_cancel.reason;
    snprintf(why, sizeof why, "the server could not complete the response (http_cancel%s%.*s)",
             m->http_cancel.has_reason ? ": " : "", m->http_cancel.has_reason ? (int)(r.len > 120 ? 120 : r.len) : 0,
             m->http_cancel.has_reason && r.ptr ? r.ptr : "");
    q->up = q->up == UP_STREAM ? UP_DONE : q->up;
    creq_fail_later(q, -ECONNABORTED, why);
    return;
  }
  if (!q->rd) return;
  if (q->up == UP_STREAM) {
    q->up = UP_DONE;
    ra_timer_stop(&q->pump);
    free(q->up_chunk);
    q->up_chunk = NULL;
  }
}

int ra_tunnel_fetch_resume(ra_tunnel_client *c, uint64_t id) {
  char s[32];
  req_id_format(s, id);
  creq *q = find_req(c, ra_str_cstr(s));
  if (!q || q->fail) return -ENOENT;
  if (q->up_wait) {
    q->up_wait = false;
    if (q->up == UP_STREAM || q->up == UP_WHOLE) ra_timer_start(&q->pump, 0, 0);
  }
  if (q->dn_paused) {
    q->dn_paused = false;
    if (c->state == ST_READY) grant_credit(q, true);
  }
  return 0;
}

int ra_tunnel_fetch_cancel(ra_tunnel_client *c, uint64_t id, const char *reason) {
  char s[32];
  req_id_format(s, id);
  creq *q = find_req(c, ra_str_cstr(s));
  if (!q || q->fail) return -ENOENT;
  send_cancel(q, reason);
  q->up = q->up == UP_NONE ? UP_NONE : UP_DONE;
  creq_fail_later(q, -ECANCELED, reason ? reason : "fetch cancelled");
  return 0;
}

bool ra_tunnel_client_body_streams(const ra_tunnel_client *c) { return c->state == ST_READY && c->bs_on; }

static void on_ws_event(ra_tunnel_client *c, const ra_tmsg *m) {
  ra_tchan_sock *w = ra_tchan_find(&c->ch, m->ws_event.connection_id);
  if (!w || w->gone) return;
  if (m->ws_event.event == RA_TMSG_EV_OPEN) /* not after a message that opened it already */
    ra_tchan_sock_open(w);
  else if (m->ws_event.event == RA_TMSG_EV_CLOSE)
    ra_tchan_sock_closed(w, m->ws_event.has_code ? (uint16_t)m->ws_event.code : 1005,
                         m->ws_event.has_reason ? m->ws_event.reason : RA_STR(""));
  else
    ra_tchan_sock_closed(w, 1006, m->ws_event.has_error ? m->ws_event.error : RA_STR("error"));
}

static void on_inner(ra_tunnel_client *c, const ra_tmsg *m) {
  switch (m->type) {
  case RA_TMSG_HTTP_RESPONSE: on_http_response(c, m); break;
  case RA_TMSG_WS_EVENT: on_ws_event(c, m); break;
  case RA_TMSG_WS_MESSAGE: ra_tchan_on_ws_message(&c->ch, m); break;
  /* streamed bodies: only on a tunnel that negotiated them */
  case RA_TMSG_HTTP_BODY: if (c->bs_on) on_http_body(c, m); break;
  case RA_TMSG_HTTP_CREDIT: if (c->bs_on) on_http_credit(c, m); break;
  case RA_TMSG_HTTP_CANCEL: if (c->bs_on) on_http_cancel(c, m); break;
  default: break; /* not for a client: dropped */
  }
}

static void fail_connection(ra_tunnel_client *c, int err, const char *fmt, const char *detail) {
  if (!c->fail) {
    c->fail = err;
    snprintf(c->fail_msg, sizeof c->fail_msg, fmt, detail ? detail : "");
  }
  if (c->ch.ctl) ra_ws_close(c->ch.ctl, 1000, "");
}

/* Refuses the server: the verdict in c->vd says why. */
static void kx_refuse(ra_tunnel_client *c) {
  c->has_vd = true;
  ra_timer_stop(&c->connect_timer);
  char why[300];
  snprintf(why, sizeof why, "%s: %s", ra_err_name(c->vd.err), c->vd.msg);
  ra_warn("tunnel client: attestation refused: %s", why);
  fail_connection(c, -EACCES, "attestation refused: %s", why);
  if (c->o.on_ready) c->o.on_ready(c, -EACCES, &c->vd, c->o.ud);
}

/* The policy for this handshake: the caller's, plus the key binding. */
static void kx_policy(ra_tunnel_client *c, ra_policy *p) {
  if (c->has_policy) *p = c->policy;
  else memset(p, 0, sizeof *p);
  if (!c->o.no_binding) {
    p->x25519_pub = c->server_pk;
    if (c->has_nonce) {
      p->binding_val = c->bval ? c->bval : (const uint8_t *)"";
      p->binding_val_len = c->bval_len;
      p->binding_iat = c->biat ? c->biat : (const uint8_t *)"";
      p->binding_iat_len = c->biat_len;
    }
  }
}

/* The collateral could not be had: fail closed. The signatures are still
 * checked so that the verdict carries the quote's facts (and its own first
 * failure, if the quote is bad anyway); never accepted. */
static void kx_refuse_collateral(ra_tunnel_client *c, int code, const char *msg) {
  ra_policy p;
  kx_policy(c, &p);
  ra_verify_quote(c->o.verifier, c->quote, c->quote_len, NULL, &p, &c->vd);
  if (c->vd.err == 0 || c->vd.checks[RA_CHECK_QUOTE_SIG] == RA_CHECK_PASS) {
    c->vd.err = code;
    snprintf(c->vd.msg, sizeof c->vd.msg, "%s", msg);
  }
  c->vd.checks[RA_CHECK_COLLATERAL] = RA_CHECK_FAIL;
  c->vd.tcb_evaluated = false;
  kx_refuse(c);
}

/* Whether client_kx opts in to streamed bodies: only when the server
 * announced valid ones (the reference server never does) and we want them. */
static bool want_streams(const ra_tunnel_client *c) { return c->srv_has_bs && !c->o.no_body_streams; }

/* client_kx with our own quote over this session's binding (PROTOCOL.md
 * §10). The quote is made on a thread of its own (core/work.h): a TDX
 * quote through the quoting service or a dstack agent takes milliseconds
 * to seconds, and the loop serves everything else meanwhile. The job
 * belongs to one connection (conn_gen): if that connection is gone when
 * the quote is in, the quote is dropped. ra_tunnel_client_free waits for
 * jobs still running (the provider is the caller's). */
typedef struct att_job {
  struct att_job *next, *prev;
  ra_tunnel_client *c;
  uint64_t gen;
  ra_work *work;
  ra_quote_provider *provider;
  uint8_t rd[64];
  uint8_t sealed[RA_ENV_SEALED_KEY_BYTES];
  uint8_t *quote;
  size_t quote_len;
  int rc;
} att_job;

static void kx_keyed(ra_tunnel_client *c);

static void att_job_free(att_job *j) {
  free(j->quote);
  sodium_memzero(j->sealed, sizeof j->sealed);
  free(j);
}

static void att_make_quote(void *ud) { /* on the work's thread: the provider and j only */
  att_job *j = ud;
  j->rc = ra_quote_provider_get_report(j->provider, j->rd, &j->quote, &j->quote_len);
}

/* Sends client_kx with j's quote; 0, or -1 after failing the connection. */
static int send_client_kx_att(ra_tunnel_client *c, const att_job *j) {
  int rc = j->rc;
  uint8_t *msg = NULL;
  if (rc == 0 && !ra_quote_provider_binds_key(c->o.client_provider))
    ra_warn("tunnel client: the %s provider cannot bind its quote to this session: the server "
            "will refuse it", ra_quote_provider_name(c->o.client_provider));
  if (rc == 0) {
    ra_tmsg_client_att_out att = {
      .quote = ra_bytes_make(j->quote, j->quote_len),
      .event_log = c->client_event_log ? ra_str_cstr(c->client_event_log) : ra_str_make(NULL, 0),
    };
    const ra_tmsg_body_streams *bs = want_streams(c) ? &c->my_bs : NULL;
    size_t n = ra_tmsg_encode_client_kx_ex(NULL, 0, j->sealed, sizeof j->sealed, &att, bs);
    msg = malloc(n);
    if (!msg) rc = -ENOMEM;
    else {
      ra_tmsg_encode_client_kx_ex(msg, n, j->sealed, sizeof j->sealed, &att, bs);
      ra_ws_send(c->ch.ctl, RA_WS_BINARY, msg, n);
    }
  }
  free(msg);
  if (rc) {
    ra_warn("tunnel client: no client attestation: the %s provider: %s",
            ra_quote_provider_name(c->o.client_provider), ra_strerror(rc));
    fail_connection(c, -EIO, "cannot produce the client attestation: %s", ra_strerror(rc));
    if (c->o.on_ready) c->o.on_ready(c, -EIO, &c->vd, c->o.ud);
    return -1;
  }
  c->sent_attestation = true;
  return 0;
}

static void att_quote_done(ra_work *w, void *ud) {
  (void)w;
  att_job *j = ud;
  ra_tunnel_client *c = j->c;
  RA_LIST_DEL(c->att_jobs, j);
  /* still the connection the quote was made for, still waiting for it */
  if (j->gen == c->conn_gen && c->link && c->ch.ctl && c->state == ST_CONNECTING && !c->freeing &&
      send_client_kx_att(c, j) == 0)
    kx_keyed(c);
  att_job_free(j);
}

/* Starts making the client's quote over this session's binding; 0, or -1
 * after failing the connection. */
static int att_start(ra_tunnel_client *c, const uint8_t *sealed, size_t sealed_len) {
  att_job *j = calloc(1, sizeof *j);
  int rc = j ? 0 : -ENOMEM;
  if (j) {
    *j = (att_job){.c = c, .gen = c->conn_gen, .provider = c->o.client_provider};
    memcpy(j->sealed, sealed, sealed_len < sizeof j->sealed ? sealed_len : sizeof j->sealed);
    ra_tunnel_client_binding(c->server_pk, c->challenge, sealed, sealed_len, j->rd);
    rc = ra_work_start(c->loop, att_make_quote, att_quote_done, j, &j->work);
  }
  if (rc) {
    free(j);
    fail_connection(c, -EIO, "cannot produce the client attestation: %s", ra_strerror(rc));
    if (c->o.on_ready) c->o.on_ready(c, -EIO, &c->vd, c->o.ud);
    return -1;
  }
  RA_LIST_ADD(c->att_jobs, j);
  return 0;
}

/* ra_tunnel_client_free: the provider is the caller's; its jobs end first. */
static void att_jobs_cancel(ra_tunnel_client *c) {
  while (c->att_jobs) {
    att_job *j = c->att_jobs;
    RA_LIST_DEL(c->att_jobs, j);
    ra_work_cancel(j->work);
    att_job_free(j);
  }
}

static void kx_accept(ra_tunnel_client *c);

/* The verdict is in (rc: the verifier's): the server is refused or keyed. */
static void kx_decide(ra_tunnel_client *c, int rc) {
  c->has_vd = true;
  ra_timer_stop(&c->connect_timer);
  if (rc) kx_refuse(c);
  else kx_accept(c);
}

/* Verifies the quote of server_kx (with coll, when not NULL); sends
 * client_kx when every check passes. */
static void kx_verify(ra_tunnel_client *c, ra_collateral *coll) {
  ra_policy p;
  kx_policy(c, &p);
  ra_verify_opts vo = {.collateral = coll};
  int rc = c->o.vcache ? ra_vcache_verify(c->o.vcache, c->o.verifier, c->quote, c->quote_len,
                                          coll ? &vo : NULL, &p, &c->vd)
                       : ra_verify_quote(c->o.verifier, c->quote, c->quote_len, coll ? &vo : NULL,
                                         &p, &c->vd);
  kx_decide(c, rc);
}

/* The server's quote passed: seal a fresh key to it, send client_kx, flush
 * what waited for the key. */
static void kx_accept(ra_tunnel_client *c) {
  uint8_t sealed[RA_ENV_SEALED_KEY_BYTES];
  ra_env_random_key(c->ch.key);
  if (ra_env_seal_key(c->ch.key, c->server_pk, sealed)) {
    fail_connection(c, -EPROTO, "%s", "the server's X25519 key is unusable");
    if (c->o.on_ready) c->o.on_ready(c, -EPROTO, &c->vd, c->o.ud);
    return;
  }
  c->sent_attestation = false;
  if (c->has_challenge && c->o.client_provider) {
    att_start(c, sealed, sizeof sealed); /* client_kx and kx_keyed when the quote is in */
    return;
  }
  uint8_t msg[200];
  size_t n = ra_tmsg_encode_client_kx_ex(msg, sizeof msg, sealed, sizeof sealed, NULL,
                                         want_streams(c) ? &c->my_bs : NULL);
  ra_ws_send(c->ch.ctl, RA_WS_BINARY, msg, n);
  kx_keyed(c);
}

/* client_kx is sent: the tunnel is keyed; what waited for the key goes. */
static void kx_keyed(ra_tunnel_client *c) {
  c->bs_on = want_streams(c);
  c->state = ST_READY;
  c->ch.keyed = true;
  /* flush what waited for the key, oldest first (the lists are LIFO) */
  creq *last = c->reqs;
  while (last && last->next) last = last->next;
  for (creq *q = last; q; q = q->prev) {
    if (q->rd && !q->sent && !q->fail) up_begin(q); /* its request goes out now (or its body is read) */
    if (q->sent || q->fail || !q->plain.data) continue;
    if (ra_tchan_send_plain(&c->ch, ra_buf_ptr(&q->plain), q->plain.len) == 0) {
      q->sent = true;
      if (!q->retry) ra_buf_free(&q->plain);
    }
  }
  ra_tchan_sock *wl = c->ch.socks;
  while (wl && wl->next) wl = wl->next;
  for (ra_tchan_sock *w = wl; w; w = w->prev) sock_flush(&c->ch, w);
  if (c->o.on_ready) c->o.on_ready(c, 0, &c->vd, c->o.ud);
}

/* The server is of a kind this client has no verifier for: refused. */
static void kx_refuse_kind(ra_tunnel_client *c, const char *why) {
  memset(&c->vd, 0, sizeof c->vd);
  c->vd.err = RA_ERR_QUOTE_UNSUPPORTED;
  snprintf(c->vd.msg, sizeof c->vd.msg, "tee: %s", why);
  kx_refuse(c);
}

/* A SEV-SNP server_kx: the report against the certificates it came with,
 * under the caller's SNP policy plus the reference's key binding. */
static void kx_verify_snp(ra_tunnel_client *c) {
  if (!c->o.snp_verifier) {
    kx_refuse_kind(c, "the server presents SEV-SNP evidence (sev_snp_data) and this client is set "
                      "up for Intel TDX/SGX only (no SEV-SNP verifier or policy)");
    return;
  }
  ra_snp_policy p;
  if (c->has_snp_policy) p = c->snp_policy;
  else memset(&p, 0, sizeof p);
  if (!c->o.no_binding) {
    p.x25519_pub = c->server_pk;
    /* absent: NULL, which the verifier refuses (as the reference client) */
    p.nonce = c->has_snonce ? (c->snonce ? c->snonce : (const uint8_t *)"") : NULL;
    p.nonce_len = c->snonce_len;
  }
  ra_snp_verify_opts vo = {
    .vcek = (const uint8_t *)c->vcek, .vcek_len = strlen(c->vcek),
    .ask = (const uint8_t *)c->ask, .ask_len = c->ask ? strlen(c->ask) : 0,
    .ark = (const uint8_t *)c->ark, .ark_len = c->ark ? strlen(c->ark) : 0,
  };
  int rc = ra_snp_verify(c->o.snp_verifier, c->quote, c->quote_len, &vo, &p, &c->svd);
  c->has_svd = true;
  /* the summary every caller reads (on_ready's vd): err and the step */
  memset(&c->vd, 0, sizeof c->vd);
  c->vd.err = c->svd.err;
  c->vd.debug = c->svd.debug;
  c->vd.matched_set = c->svd.matched_set;
  c->vd.at = c->svd.at;
  if (rc)
    snprintf(c->vd.msg, sizeof c->vd.msg, "%s: %.200s",
             ra_snp_check_name((ra_snp_check)c->svd.failed), c->svd.msg);
  kx_decide(c, rc);
}

static bool key_eq(const ra_pcs_key *a, const ra_pcs_key *b) {
  return a->tee == b->tee && a->ca == b->ca && !memcmp(a->fmspc, b->fmspc, 6);
}

static void fetch_done(int err, const ra_pcs_result *res, void *ud) {
  ra_tunnel_client *c = ud;
  char msg[256];
  c->fetch = NULL;
  if (err) {
    snprintf(msg, sizeof msg, "fetching the collateral from %s failed: %s", c->pccs_url, ra_strerror(err));
    kx_refuse_collateral(c, RA_ERR_COLLATERAL_UNAVAILABLE, msg);
    return;
  }
  if (res->refresh_failed)
    ra_warn("tunnel client: collateral refresh from %s failed (%s): the cached collateral is used",
            c->pccs_url, ra_strerror(res->refresh_failed));
  ra_collateral *coll;
  int rc = ra_collateral_parse_json(res->doc.ptr, res->doc.len, &coll);
  if (rc) {
    snprintf(msg, sizeof msg, "the collateral from %s does not parse: %s", c->pccs_url, ra_strerror(rc));
    kx_refuse_collateral(c, RA_ERR_COLLATERAL_PARSE, msg);
    return;
  }
  ra_collateral_free(c->fetched);
  c->fetched = coll;
  c->fetched_key = c->fetch_key;
  c->fetched_next_update = res->next_update;
  ra_debug("tunnel client: collateral %s %s", res->from_cache ? "from the cache" : "fetched from", c->pccs_url);
  kx_verify(c, coll);
}

/* Gets the collateral for the server's quote, then verifies. */
static void kx_fetch(ra_tunnel_client *c) {
  char msg[256];
  ra_pcs_key key;
  int rc = ra_pcs_key_from_quote(c->quote, c->quote_len, &key);
  if (rc) {
    snprintf(msg, sizeof msg, "cannot tell which collateral the quote needs: %s", ra_strerror(rc));
    kx_refuse_collateral(c, RA_ERR_COLLATERAL_UNAVAILABLE, msg);
    return;
  }
  /* the last document, while fresh (an hour before nextUpdate it is
   * fetched again, as the on-disk cache does) */
  if (c->fetched && key_eq(&key, &c->fetched_key) && (int64_t)time(NULL) + 3600 < c->fetched_next_update) {
    kx_verify(c, c->fetched);
    return;
  }
  ra_pcs_opts po;
  memset(&po, 0, sizeof po);
  po.base_url = c->pccs_url;
  po.cache_dir = c->pccs_cache_dir;
  po.ca_file = c->pccs_ca_file;
  po.no_cache = c->o.pccs_no_cache;
  po.timeout_ms = c->o.pccs_timeout_ms ? c->o.pccs_timeout_ms : c->o.connect_timeout_ms;
  c->fetch_key = key;
  rc = ra_pcs_fetch_start(c->loop, &po, &key, fetch_done, c, &c->fetch);
  if (rc) {
    c->fetch = NULL;
    snprintf(msg, sizeof msg, "cannot fetch the collateral from %s: %s", c->pccs_url, ra_strerror(rc));
    kx_refuse_collateral(c, RA_ERR_COLLATERAL_UNAVAILABLE, msg);
  }
}

static void fetch_cancel(ra_tunnel_client *c) {
  if (c->fetch) ra_pcs_fetch_cancel(c->fetch);
  c->fetch = NULL;
}

/* Copies len bytes (NULL for none). */
static uint8_t *dup_bytes(const uint8_t *p, size_t len) {
  uint8_t *d = malloc(len ? len : 1);
  if (d && len) memcpy(d, p, len);
  return d;
}

static void on_server_kx(ra_tunnel_client *c, const ra_tmsg *m) {
  if (c->state == ST_READY || c->has_server_pk) return; /* only the first one counts */
  const ra_tmsg_server_kx *k = &m->server_kx;
  memcpy(c->server_pk, k->x25519_public_key.bytes, 32);
  c->has_server_pk = true;
  c->srv_has_bs = k->has_body_streams && ra_tmsg_body_streams_valid(&k->body_streams);
  if (c->srv_has_bs) c->srv_bs = k->body_streams;
  c->has_challenge = k->has_client_challenge;
  if (c->has_challenge) memcpy(c->challenge, k->client_challenge.bytes, sizeof c->challenge);
  free(c->quote);
  c->quote_len = 0;
  c->quote = dup_bytes(k->quote.bytes, k->quote.len);
  if (c->quote) c->quote_len = k->quote.len;
  free(c->bval);
  free(c->biat);
  c->bval = c->biat = NULL;
  c->bval_len = c->biat_len = 0;
  c->has_nonce = k->vd_kind == RA_TMSG_VD_NONCE;
  if (c->has_nonce) {
    c->bval = dup_bytes(k->vd_val.bytes, k->vd_val.len);
    c->biat = dup_bytes(k->vd_iat.bytes, k->vd_iat.len);
    if (!c->bval || !c->biat) {
      fail_connection(c, -ENOMEM, "%s", "out of memory");
      return;
    }
    c->bval_len = k->vd_val.len;
    c->biat_len = k->vd_iat.len;
  }
  free(c->snonce);
  free(c->vcek);
  free(c->ask);
  free(c->ark);
  c->snonce = NULL;
  c->vcek = c->ask = c->ark = NULL;
  c->snonce_len = 0;
  c->has_svd = false;
  c->snp = k->has_sev_snp;
  if (c->snp) {
    /* the nonce is verifier_data, a byte string (or its val, should a map
     * arrive: what the reference client reads) */
    ra_str n = k->vd_kind == RA_TMSG_VD_BYTES ? k->vd_bytes : k->vd_val;
    c->has_snonce = k->vd_kind == RA_TMSG_VD_BYTES || (k->vd_kind == RA_TMSG_VD_NONCE && k->vd_val.ptr);
    c->snonce = c->has_snonce ? dup_bytes(n.bytes, n.len) : NULL;
    c->snonce_len = c->snonce ? n.len : 0;
    c->vcek = strndup((const char *)k->vcek_cert.ptr, k->vcek_cert.len);
    if (k->has_ask_cert) c->ask = strndup((const char *)k->ask_cert.ptr, k->ask_cert.len);
    if (k->has_ark_cert) c->ark = strndup((const char *)k->ark_cert.ptr, k->ark_cert.len);
    if ((c->has_snonce && !c->snonce) || !c->vcek || (k->has_ask_cert && !c->ask) ||
        (k->has_ark_cert && !c->ark)) {
      fail_connection(c, -ENOMEM, "%s", "out of memory");
      return;
    }
  }
  if (!k->quote.len || !c->quote) {
    memset(&c->vd, 0, sizeof c->vd);
    c->vd.err = k->quote.len ? RA_ERR_INTERNAL : RA_ERR_QUOTE_TRUNCATED;
    snprintf(c->vd.msg, sizeof c->vd.msg, "%s", k->quote.len ? "out of memory" : "empty quote");
    kx_refuse(c);
    return;
  }
  if (c->snp) kx_verify_snp(c); /* Intel's collateral does not apply */
  else if (!c->o.verifier)
    kx_refuse_kind(c, "the server presents an Intel TDX/SGX quote (no sev_snp_data) and this "
                      "client is set up for SEV-SNP only (no TDX verifier or policy)");
  else if (c->pccs_url) kx_fetch(c); /* verifies when the collateral is here */
  else kx_verify(c, c->o.collateral);
}

/* The control ws's user data: a link that outlives the client if the
 * client is freed before the connection's last callback. */
typedef struct ctl_link {
  ra_tunnel_client *c;
} ctl_link;

static void ctl_open(ra_ws *ws, void *ud) {
  ra_tunnel_client *c = ((ctl_link *)ud)->c;
  if (!c) return;
  uint8_t hello[32];
  size_t n = ra_tmsg_encode_client_kx_ready(hello, sizeof hello);
  ra_ws_send(ws, RA_WS_BINARY, hello, n);
  (void)c;
}

static void ctl_message(ra_ws *ws, ra_ws_type type, const uint8_t *data, size_t len, void *ud) {
  ra_tunnel_client *c = ((ctl_link *)ud)->c;
  if (!c || ws != c->ch.ctl) return;
  ra_tmsg m;
  if (ra_tmsg_decode(data, len, &m) != 0) {
    ra_debug("tunnel client: undecodable control message dropped");
    if (!c->has_server_pk) fail_connection(c, -EPROTO, "%s", "malformed server_kx");
    return;
  }
  if (m.type == RA_TMSG_SERVER_KX) {
    on_server_kx(c, &m);
    return;
  }
  if (m.type != RA_TMSG_ENC || c->state != ST_READY) return;
  const uint8_t *plain;
  size_t plen;
  if (ra_tchan_open(&c->ch, &m, &plain, &plen)) {
    ra_debug("tunnel client: envelope does not authenticate, dropped");
    return;
  }
  ra_tmsg inner;
  if (ra_tmsg_decode(plain, plen, &inner) == 0) on_inner(c, &inner);
}

static void reconnect_fire(ra_timer *t, void *ud) {
  ra_tunnel_client *c = ud;
  if (c->state == ST_IDLE) start_connect(c);
}

/* Fails every pending request not failed already (each on its timer, so
 * not from inside the caller). */
static void fail_pending(ra_tunnel_client *c, int err) {
  for (creq *q = c->reqs; q; q = q->next) {
    if (q->fail) continue;
    q->fail = err;
    ra_timer_start(&q->timer, 0, 0);
  }
}

/* After a 1012 close: whether q goes out again on the new tunnel. A request
 * not sent yet does (a body_read one only if its source was never read);
 * a GET/HEAD in flight does (its bytes kept) unless its response began;
 * nothing else: the server may have acted on it. */
static bool resendable(const creq *q) {
  if (q->rd) return !q->sent && q->up == UP_NONE;
  if (!q->plain.data) return false;
  return !q->sent || (q->retry && !q->resp_started);
}

static void ctl_close(ra_ws *ws, uint16_t code, ra_str reason, void *ud) {
  ra_tunnel_client *c = ((ctl_link *)ud)->c;
  free(ud); /* the last callback of this connection */
  if (!c || ws != c->ch.ctl) return;
  c->link = NULL;
  c->ch.ctl = NULL;
  ra_timer_stop(&c->connect_timer);
  fetch_cancel(c); /* a fetch for this connection's handshake: moot */
  if (!c->fail) {
    c->fail = c->state == ST_READY ? -ECONNRESET : -ECONNREFUSED;
    snprintf(c->fail_msg, sizeof c->fail_msg, "%s (%u %.*s)",
             c->state == ST_READY ? "tunnel disconnected" : "cannot open the tunnel", code,
             (int)(reason.len > 200 ? 200 : reason.len), reason.ptr ? reason.ptr : "");
  }
  if (c->state != ST_READY && c->o.on_ready && !c->has_vd) c->o.on_ready(c, c->fail, NULL, c->o.ud);
  c->has_server_pk = false;
  if (code == 1012 && c->state == ST_READY && !c->freeing) {
    /* the server rotated its key ("service restart"): a new tunnel at once.
     * Requests not sent yet and GET/HEAD (their bytes kept) go on it;
     * other requests in flight fail: the server may have acted on them,
     * so they are not replayed. */
    snprintf(c->fail_msg, sizeof c->fail_msg, "%s",
             "tunnel closed for key rotation (1012): request in flight not replayed");
    for (creq *q = c->reqs; q; q = q->next) {
      if (q->fail || resendable(q)) {
        q->sent = false;
        continue;
      }
      q->fail = -ECONNRESET;
      if (q->rd) ra_timer_stop(&q->pump);
      ra_timer_start(&q->timer, 0, 0);
    }
    c->state = ST_IDLE;
    c->bs_on = false;
    /* its open WebSockets end with 1012 (an application reopens them; one
     * opened from on_close, like one whose ws_connect never left, is not
     * known to the peer and waits for the new tunnel) */
    ra_tchan_unkey(&c->ch, false, 1012, RA_STR("tunnel key rotated: reopen"));
    ra_timer_start(&c->reconnect_timer, 0, 0);
    return;
  }
  bool again = c->o.reconnect && !c->freeing;
  c->state = again ? ST_IDLE : ST_CLOSED;
  int err = c->fail;
  /* pending requests fail; tunnelled sockets close */
  fail_pending(c, err);
  ra_tchan_drop(&c->ch); /* wipes the key too */
  if (again) ra_timer_start(&c->reconnect_timer, c->o.reconnect_delay_ms, 0);
}

static void ctl_drain(ra_ws *ws, void *ud) {
  ra_tunnel_client *c = ((ctl_link *)ud)->c;
  if (c && ws == c->ch.ctl) ra_tchan_drain(&c->ch);
}

static const ra_ws_handlers ctl_handlers = {
  .on_open = ctl_open, .on_message = ctl_message, .on_close = ctl_close, .on_drain = ctl_drain,
};

static void connect_timeout(ra_timer *t, void *ud) {
  ra_tunnel_client *c = ud;
  if (c->fetch) fail_connection(c, -ETIMEDOUT, "timed out fetching the collateral from %s", c->pccs_url);
  else fail_connection(c, -ETIMEDOUT, "%s", "timed out opening the tunnel");
  fetch_cancel(c);
  if (c->ch.ctl) ra_ws_terminate(c->ch.ctl);
}

static void start_connect(ra_tunnel_client *c) {
  c->fail = 0;
  c->fail_msg[0] = 0;
  c->has_vd = false;
  c->has_server_pk = false;
  c->state = ST_CONNECTING;
  ra_ws_client_opts wo;
  memset(&wo, 0, sizeof wo);
  wo.ws.max_message = c->o.max_envelope;
  wo.handshake_timeout_ms = c->o.connect_timeout_ms;
  wo.tls = c->tls;
  wo.tls_server_name = c->tls_server_name;
  ctl_link *link = calloc(1, sizeof *link);
  int rc = link ? ra_ws_connect(c->loop, c->ctl_url, &wo, &ctl_handlers, link, &c->ch.ctl) : -ENOMEM;
  if (!rc) {
    link->c = c;
    c->link = link;
    c->conn_gen++;
  }
  if (rc) {
    free(link);
    c->ch.ctl = NULL;
    c->state = c->o.reconnect ? ST_IDLE : ST_CLOSED;
    c->fail = rc;
    snprintf(c->fail_msg, sizeof c->fail_msg, "cannot connect: %s", strerror(-rc));
    fail_pending(c, rc);
    if (c->o.reconnect) ra_timer_start(&c->reconnect_timer, c->o.reconnect_delay_ms, 0);
    return;
  }
  ra_timer_start(&c->connect_timer, c->o.connect_timeout_ms, 0);
}

int ra_tunnel_client_new(ra_loop *loop, const char *origin, const ra_tunnel_client_opts *opts,
                         ra_tunnel_client **out) {
  *out = NULL;
  if (!origin || !opts || (!opts->verifier && !opts->snp_verifier) || (opts->collateral && opts->pccs_url))
    return -EINVAL;
  const char *rest;
  bool tls = false;
  if (!strncmp(origin, "http://", 7)) rest = origin + 7;
  else if (!strncmp(origin, "ws://", 5)) rest = origin + 5;
  else if (!strncmp(origin, "https://", 8)) rest = origin + 8, tls = true;
  else if (!strncmp(origin, "wss://", 6)) rest = origin + 6, tls = true;
  else return -EINVAL;
  size_t hostlen = strcspn(rest, "/?#");
  if (hostlen == 0) return -EINVAL;
  ra_tmsg_body_streams bs = {opts->stream_window ? opts->stream_window : (uint64_t)1 << 20,
                             opts->stream_chunk ? opts->stream_chunk : (uint64_t)256 << 10};
  if (!ra_tmsg_body_streams_valid(&bs)) return -EINVAL;
  if (ra_env_init()) return -EIO;
  ra_tunnel_client *c = calloc(1, sizeof *c);
  if (!c) return -ENOMEM;
  c->ctl_url = malloc(hostlen + 16);
  if (!c->ctl_url || ra_tchan_init(&c->ch, loop, RA_TCHAN_CLIENT, 2)) {
    free(c->ctl_url);
    free(c);
    return -ENOMEM;
  }
  snprintf(c->ctl_url, hostlen + 16, "%s://%.*s/__ra__", tls ? "wss" : "ws", (int)hostlen, rest);
  c->loop = loop;
  c->o = *opts;
  if ((opts->pccs_url && !(c->pccs_url = strdup(opts->pccs_url))) ||
      (opts->pccs_cache_dir && !(c->pccs_cache_dir = strdup(opts->pccs_cache_dir))) ||
      (opts->pccs_ca_file && !(c->pccs_ca_file = strdup(opts->pccs_ca_file))) ||
      (opts->tls_server_name && !(c->tls_server_name = strdup(opts->tls_server_name))) ||
      (opts->client_event_log && !(c->client_event_log = strdup(opts->client_event_log)))) {
    free(c->client_event_log);
    free(c->tls_server_name);
    free(c->pccs_url);
    free(c->pccs_cache_dir);
    free(c->pccs_ca_file);
    ra_tchan_free(&c->ch);
    free(c->ctl_url);
    free(c);
    return -ENOMEM;
  }
  c->o.pccs_url = c->pccs_url;
  if (opts->tls) c->tls = ra_tls_ctx_ref(opts->tls);
  c->o.tls = NULL; /* c->tls holds it */
  c->o.tls_server_name = NULL;
  c->o.pccs_cache_dir = c->pccs_cache_dir;
  c->o.pccs_ca_file = c->pccs_ca_file;
  c->o.client_event_log = NULL; /* c->client_event_log holds it */
  if (opts->policy) { c->policy = *opts->policy; c->has_policy = true; }
  if (opts->snp_policy) { c->snp_policy = *opts->snp_policy; c->has_snp_policy = true; }
  if (!c->o.request_timeout_ms) c->o.request_timeout_ms = 30000;
  if (!c->o.connect_timeout_ms) c->o.connect_timeout_ms = 10000;
  if (!c->o.reconnect_delay_ms) c->o.reconnect_delay_ms = 1000;
  if (!c->o.max_envelope) c->o.max_envelope = 64u << 20;
  if (!c->o.max_whole_upload) c->o.max_whole_upload = (uint64_t)64 << 20;
  c->my_bs = bs;
  ra_timer_init(loop, &c->connect_timer, connect_timeout, c);
  ra_timer_init(loop, &c->reconnect_timer, reconnect_fire, c);
  start_connect(c);
  *out = c;
  return 0;
}

void ra_tunnel_client_free(ra_tunnel_client *c) {
  if (!c) return;
  c->freeing = true;
  att_jobs_cancel(c);
  fetch_cancel(c);
  ra_timer_stop(&c->connect_timer);
  ra_timer_stop(&c->reconnect_timer);
  while (c->reqs) creq_finish(c->reqs, -ECANCELED, NULL, "tunnel closed");
  ra_tchan_drop(&c->ch);
  if (c->ch.ctl) {
    ra_ws *ws = c->ch.ctl;
    c->ch.ctl = NULL;
    if (c->link) c->link->c = NULL; /* its on_close (from the loop) finds nothing */
    ra_ws_close(ws, 1000, ""); /* not NULL: ws.c memcpy()s the reason */
  }
  ra_tchan_free(&c->ch);
  free(c->quote);
  free(c->bval);
  free(c->biat);
  free(c->snonce);
  free(c->vcek);
  free(c->ask);
  free(c->ark);
  ra_collateral_free(c->fetched);
  free(c->pccs_url);
  free(c->pccs_cache_dir);
  free(c->pccs_ca_file);
  free(c->tls_server_name);
  free(c->client_event_log);
  ra_tls_ctx_unref(c->tls);
  free(c->ctl_url);
  ra_tindex_free(&c->reqs_by_num);
  free(c->spare);
  ra_buf_free(&c->spare_plain);
  free(c);
}

bool ra_tunnel_client_ready(const ra_tunnel_client *c) { return c->state == ST_READY; }
const ra_verdict *ra_tunnel_client_verdict(const ra_tunnel_client *c) { return c->has_vd ? &c->vd : NULL; }
const uint8_t *ra_tunnel_client_quote(const ra_tunnel_client *c, size_t *len) {
  *len = c->quote ? c->quote_len : 0;
  return c->quote;
}
bool ra_tunnel_client_attested(const ra_tunnel_client *c) { return c->sent_attestation; }
const ra_snp_verdict *ra_tunnel_client_snp_verdict(const ra_tunnel_client *c) {
  return c->snp && c->has_svd ? &c->svd : NULL;
}
bool ra_tunnel_client_server_is_snp(const ra_tunnel_client *c) { return c->snp; }
const uint8_t *ra_tunnel_client_server_key(const ra_tunnel_client *c) {
  return c->has_server_pk ? c->server_pk : NULL;
}
