/* attest/tunnel/server.c: see server.h.
 *
 * Structure: one ra_tunnel_server (key pair, cached server_kx bytes, the list
 * of tunnels, one heartbeat timer for all of them); one `tunnel` per control
 * WebSocket (its channel, replay set, pending requests); one `treq` per
 * http_request whose response is pending (the ra_res sink). The channel (key,
 * envelope buffers, tunnelled WebSockets) is channel.c's, shared with the
 * client.
 */
#include "raloop/attest/tunnel/server.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <sodium.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include "raloop/attest/quote/eventlog.h"
#include "raloop/attest/quote/quote.h"
#include "raloop/attest/tunnel/channel_internal.h"
#include "raloop/attest/tunnel/envelope.h"
#include "raloop/attest/tunnel/msg.h"
#include "raloop/core/list.h"
#include "raloop/core/log.h"
#include "raloop/core/work.h"
#include "raloop/http/proxy.h"
#include "raloop/http/request.h"
#include "raloop/http/request_internal.h"
#include "raloop/http/response.h"
#include "raloop/http/response_internal.h"
#include "raloop/http/server.h"
#include "raloop/http/token.h"
#include "raloop/ws/handshake.h"
#include "raloop/ws/ws.h"

typedef struct tunnel tunnel;
static void set_req_peer(ra_req *req, const tunnel *t);
static void set_addr_text(tunnel *t);
typedef struct treq treq;
typedef struct treq_blk treq_blk;

/* One key generation: an X25519 key pair and the server_kx (quote) that
 * binds it. Referenced by the server while current and by every tunnel that
 * got its server_kx; the secret key is wiped when the last reference goes. */
typedef struct tkey {
  struct tkey *next, *prev;
  ra_tunnel_server *srv;
  size_t refs;
  uint8_t pk[RA_ENV_PK_BYTES], sk[RA_ENV_SK_BYTES];
  uint8_t *server_kx; /* encoded once: the same for every connection */
  size_t server_kx_len;
  uint64_t born; /* loop ms */
  ra_timer retire; /* replaced: drains its tunnels old_key_grace_ms later */
  bool retiring, retired;
} tkey;

struct ra_tunnel_server {
  ra_loop *loop;
  ra_router *router;
  char *path; /* the control channel's route, removed by the free */
  bool routed;
  ra_tunnel_server_opts o;
  tkey *key;  /* current: new tunnels get it */
  tkey *keys; /* every live generation, the current one included */
  size_t n_keys;
  ra_quote_provider *provider; /* adopted (opts.adopt_provider): rotations */
  ra_timer rotate_timer;       /* key_lifetime_ms */
  struct rotation *rotating;   /* ra_tunnel_server_rotate_start under way */
  tunnel *tunnels; /* keyed */
  tunnel *unkeyed; /* awaiting client_kx (not in `tunnels`) */
  size_t n_keyed, n_unkeyed;
  ra_timer heartbeat;
  ra_timer trim; /* gives idle tunnels' buffers back (trim_idle) */
  ra_tunnel_stats st;
  size_t replay_total; /* nonces held by all the tunnels' replay sets */
  size_t held_bytes;   /* request and response bodies held by pending requests, all tunnels */
  bool bs_on;              /* streamed bodies announced (PROTOCOL.md §11) */
  ra_tmsg_body_streams bs; /* what server_kx announces: our window and chunk */
  bool freeing;
  /* ra_tunnel_server_shutdown */
  bool stopping, stop_reported, stop_final;
  ra_timer stop_timer;
  ra_defer stop_later;
  ra_tunnel_shutdown_cb stop_cb;
  void *stop_ud;
};

struct tunnel {
  ra_tunnel_server *srv;
  ra_tchan ch; /* key, envelope buffers, tunnelled WebSockets */
  tunnel *next, *prev;
  tkey *key;          /* the generation whose server_kx this channel got (a reference) */
  uint16_t drain_code;    /* the close that ends draining: 1008 (envelope limit) or 1012 */
  const char *drain_why;
  ra_replay replay;
  uint64_t last_seen;
  uint64_t last_msg;  /* the last message from the client (pongs aside) */
  bool trimmed;       /* its buffers were given back since last_msg */
  bool reused;        /* a request's memory was given back since the last trim:
                         from the second one on, it is kept as the spare */
  treq *reqs;
  size_t n_reqs;
  treq_blk *spare; /* one request's memory kept for the next (trimmed when idle) */
  treq_blk *blks;  /* every block whose memory is out (treq or response alive) */
  bool draining;      /* past max_envelopes_per_key: see over_limit() */
  bool drain_closed;  /* ... and the 1008 close has been started */
  /* one timer, two deadlines that never overlap: the key exchange's until
   * the tunnel is keyed, then the drain's (draining starts keyed only) */
  ra_timer timer;
  size_t held_bytes;  /* request and response bodies held by t->reqs */
  bool stop_closed;   /* ra_tunnel_server_shutdown: the 1001 close was started */
  bool counted_keyed; /* in srv->tunnels (else in srv->unkeyed) */
  uint8_t addr[17];   /* the client's IP address (family, 16 bytes); [0] 0: unknown */
  uint8_t addr_text_len; /* addr as text, made once: every request names it */
  char addr_text[INET6_ADDRSTRLEN];
  /* client attestation (PROTOCOL.md §10), with a client policy only */
  uint8_t client_challenge[RA_TMSG_CHALLENGE_BYTES]; /* sent in this channel's server_kx */
  ra_client_identity *client_id; /* verified; NULL: none presented */
  bool client_refused; /* closing on a failed attestation: nothing more is verified */
  /* streamed bodies (PROTOCOL.md §11): negotiated when the client_kx
   * announced valid bodyStreams (peer: the client's window and chunk) */
  bool bs;
  ra_tmsg_body_streams peer;
  ra_tindex streams; /* treqs with a streamed body either way, by requestId */
  /* requestIds whose stream we ended with http_cancel (or that ended): a
   * late http_body / http_credit for one is ignored, not a violation */
#define GONE_IDS 64
  uint64_t *gone; /* GONE_IDS, allocated by the first stream's end: an idle
                     tunnel holds no ring (issue 18's bytes per tunnel) */
  unsigned gone_next;
};

/* A treq's streamed-body state (PROTOCOL.md §11). */
typedef struct treq_bs {
  uint64_t in_credit;  /* data bytes the client may still send */
  uint64_t in_unacked; /* taken by the handler since the last http_credit */
  size_t in_reserved;  /* the window, counted in held_bytes while the body comes */
  ra_buf inq;          /* arrived, not yet taken by the handler */
  ra_defer in_later;
  bool in_later_queued;
  uint64_t out_credit;
  ra_buf pend; /* written, not yet sent for lack of credit (held) */
} treq_bs;

struct treq {
  tunnel *t;
  ra_res *res;
  ra_loop *loop;
  treq *next, *prev;
  size_t held_bytes; /* its request body and response body so far, counted in
                        t->held_bytes and the server's */
  /* pacing (sink_pending): bytes written since the last on_drain, and a
   * deferred call that runs on_drain from the loop (or, too_large, cancels) */
  size_t unpaced;
  ra_defer later;
  bool later_queued;
  bool wait_ctl;  /* on_drain once the control channel drains */
  bool too_large; /* over max_response: the 502 is sent, the ra_res is cancelled next */
  bool head_only; /* HEAD: never a body */
  bool got_head;
  bool no_body;   /* 204/205/304: body null, writes ignored */
  bool failed;    /* out of memory building it: a 500 instead */
  bool cut;       /* ra_res_abort on a whole answer: a 502 instead */
  int status;     /* as sent (access log) */
  uint64_t start_us; /* arrival (access log; 0 without one) */
  /* streamed bodies (PROTOCOL.md §11) */
  ra_req *req;        /* the request while res is alive (NULL once it ended) */
  uint64_t hash;      /* of the requestId, when indexed in t->streams */
  bool indexed;
  bool dispatched;    /* handed to the router (else an assembled body still coming) */
  unsigned busy;      /* inside a body delivery: its end must not free q */
  bool dead;          /* ended during a delivery: freed when it returns */
  bool resp_sent;     /* an http_response went out for it */
  /* the request body, in http_body pieces from the client */
  bool in_stream, in_assemble, in_end, in_cancelled;
  /* the response body, in http_body pieces to the client */
  bool out_stream, out_ended, out_end_sent, wait_credit;
  struct treq_bs *x; /* the streams' state: allocated by the first one (not
                        per request: a whole-body request stays small) */
  /* The http_response is built in place in its seal buffer as the handler
   * writes: [head up to "body"][BODY_GAP][body...]; the byte string head is
   * written into the gap at the end (the head moves up to meet it). */
  ra_env_buf out;
  size_t head_len, body_len;
  size_t id_len;
  char *id; /* requestId, in its block */
};

/* A request's memory in one block (issue 18: no allocation per tunnelled
 * request): the treq, the ra_req and the ra_res the handler sees, and the
 * requestId. Their lives differ (a response may outlive its treq when the
 * tunnel goes, a streamed treq may outlive its response), so each side
 * holds a reference; the last one out gives the block to its tunnel's
 * spare slot (one block: what a busy tunnel reuses, freed when it idles)
 * or frees it. */
struct treq_blk {
  ra_req req;
  ra_res res;
  treq q;
  tunnel *home;          /* the tunnel it returns to; NULL once that is gone */
  treq_blk *next, *prev; /* in home->blks */
  unsigned refs;         /* the treq's and the response's */
  size_t id_cap;
  char id[];
};
#define BLK_ID_MIN 64 /* requestIds are UUIDs (36 bytes) in practice */

static treq_blk *blk_of(treq *q) { return (treq_blk *)((char *)q - offsetof(treq_blk, q)); }

static void blk_destroy(treq_blk *b) {
  ra_req_cleanup(&b->req);
  ra_res_cleanup(&b->res);
  free(b);
}

/* A block for a request with an id of id_len bytes: the spare one, or a
 * new one. The treq is zeroed (as calloc'd), the request is empty. */
static treq_blk *blk_get(tunnel *t, size_t id_len) {
  treq_blk *b = t->spare;
  if (b && b->id_cap > id_len) {
    t->spare = NULL;
  } else {
    size_t cap = id_len + 1 > BLK_ID_MIN ? id_len + 1 : BLK_ID_MIN;
    if (!(b = malloc(sizeof *b + cap))) return NULL;
    ra_req_init(&b->req);
    memset(&b->res, 0, sizeof b->res);
    b->id_cap = cap;
  }
  memset(&b->q, 0, sizeof b->q);
  b->q.id = b->id;
  b->refs = 2;
  b->home = t;
  RA_LIST_ADD(t->blks, b);
  return b;
}

/* Drops one reference; the last one recycles the block. The request was
 * emptied already (by the response's release or blk_abandon). */
static void blk_put(treq_blk *b) {
  if (--b->refs) return;
  tunnel *t = b->home;
  if (!t) {
    blk_destroy(b);
    return;
  }
  RA_LIST_DEL(t->blks, b);
  /* the first request's memory is freed: a tunnel that serves one request
   * and idles (issue 18's 10,000 idle tunnels, each opened with a GET)
   * keeps no spare; one that serves a second keeps it until trim_idle */
  if (t->spare || !t->reused) {
    t->reused = true;
    blk_destroy(b);
    return;
  }
  ra_res_reset(&b->res);
  t->spare = b;
}

/* The response's end (ra_res's release): what ra_req_free did at this
 * point (the lent body buffer goes back, deferred calls are cancelled). */
static void blk_res_release(ra_res *res, void *ud) {
  (void)res;
  treq_blk *b = ud;
  ra_req_reset(&b->req);
  blk_put(b);
}

/* A block whose response was never handed out: both references go. */
static void blk_abandon(treq_blk *b) {
  ra_req_reset(&b->req);
  b->refs = 1;
  blk_put(b);
}

/* The tunnel goes: the blocks still out are freed by their last user. */
static void blk_orphan_all(tunnel *t) {
  while (t->blks) {
    treq_blk *b = t->blks;
    RA_LIST_DEL(t->blks, b);
    b->home = NULL;
  }
  if (t->spare) blk_destroy(t->spare);
  t->spare = NULL;
}

/* ---- sending envelopes --------------------------------------------------- */

/* The recent ends, as (hash << 1 | cancelled): a cancelled stream's late
 * pieces are expected, a finished one's are a violation. 0: neither. */
enum { GONE_NONE, GONE_CANCELLED, GONE_FINISHED };
static void gone_add(tunnel *t, uint64_t h, bool cancelled) {
  /* out of memory: the ring is a courtesy (a late piece then counts as a
   * violation of its own stream, which fails that stream only) */
  if (!t->gone && !(t->gone = calloc(GONE_IDS, sizeof *t->gone))) return;
  t->gone[t->gone_next++ % GONE_IDS] = h << 1 | cancelled;
}
static int gone_find(const tunnel *t, uint64_t h) {
  int r = GONE_NONE;
  if (!t->gone) return r;
  for (size_t i = 0; i < GONE_IDS; i++)
    if (t->gone[i] == (h << 1 | 1)) return GONE_CANCELLED;
    else if (t->gone[i] == h << 1 && t->gone[i]) r = GONE_FINISHED;
  return r;
}


static void send_event(tunnel *t, ra_str id, ra_tmsg_event ev, const char *error) {
  ra_tchan_send_event(&t->ch, id, ev, -1, ra_str_make(NULL, 0), error);
}

static size_t enc_response(uint8_t *out, size_t cap, const void *a) {
  return ra_tmsg_encode_http_response(out, cap, a);
}

/* error: NULL, or an `error` field (the reference client then fails the
 * fetch with that text instead of returning the response). */
static void send_error_response(tunnel *t, ra_str id, int status, const char *text, const char *error) {
  ra_header h = {RA_STR("content-type"), RA_STR("text/plain; charset=utf-8")};
  ra_tmsg_http_response_out r = {
    .request_id = id, .status = status, .status_text = ra_str_cstr(ra_http_status_text(status)),
    .headers = &h, .n_headers = 1, .has_body = true, .body = text, .body_len = strlen(text),
    .error = error,
  };
  ra_tchan_send(&t->ch, enc_response, &r);
}

static void send_simple_response(tunnel *t, ra_str id, int status, const char *text) {
  send_error_response(t, id, status, text, NULL);
}

static uint64_t now_us(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

static void log_access(ra_tunnel_server *s, const ra_req *req, int status, uint64_t start_us) {
  if (s->o.access_log && req) s->o.access_log(req, status, now_us() - start_us, s->o.access_log_ud);
}

/* Draining (over_limit, or the server's shutdown) ends when nothing is
 * pending any more. */
static void drain_check(tunnel *t) {
  if (t->srv->stopping && !t->stop_closed && !t->n_reqs && t->ch.ctl) {
    t->stop_closed = true;
    ra_ws_close(t->ch.ctl, 1001, "server shutting down");
    return;
  }
  if (!t->draining || t->drain_closed || t->n_reqs || !t->ch.ctl) return;
  t->drain_closed = true;
  ra_timer_stop(&t->timer);
  ra_ws_close(t->ch.ctl, t->drain_code, t->drain_why);
}

static void drain_fire(ra_timer *tm, void *ud) {
  (void)tm;
  tunnel *t = ud;
  if (t->drain_closed || !t->ch.ctl) return;
  t->drain_closed = true; /* what is still pending is cancelled with the channel */
  ra_ws_close(t->ch.ctl, t->drain_code, t->drain_why);
}

/* ---- responses: the ra_res sink ------------------------------------------ */

#define BODY_GAP 9 /* the longest byte string head */
_Static_assert(RA_ENV_FRAME_ROOM >= RA_WS_SEND_ROOM, "a sealed message must leave room for its frame header");
/* Request bodies from this size on are lent, not copied (below it a copy is
 * cheaper than taking another buffer from the pool). */
#define BODY_REF_MIN 16384

/* A request whose transport is gone: the handler's later
 * ra_req_on_body / ra_req_body_pause calls reach nothing. */
static void kick_nothing(void *ud) { (void)ud; }
static const ra_req_body_ops gone_body_ops = {.kick = kick_nothing};

static __attribute__((noinline)) void treq_free_streams(treq *q) {
  if (q->req && q->in_stream) ra_req_set_body_stream(q->req, &gone_body_ops, NULL);
  treq_bs *x = q->x;
  if (!x) return;
  if (x->in_later_queued) ra_defer_cancel(q->loop, &x->in_later);
  ra_buf_free(&x->inq);
  ra_buf_free(&x->pend);
  free(x);
}

static inline void treq_free(treq *q) {
  if (q->later_queued) ra_defer_cancel(q->loop, &q->later);
  if (q->x || q->in_stream) treq_free_streams(q); /* streams only: no call per request */
  ra_env_buf_free(&q->out);
  blk_put(blk_of(q));
}

/* Frees q, unless a body delivery is under way further up the stack (the
 * handler ended its response inside its body callback): then that
 * delivery frees it when the callback returns. */
static void treq_drop(treq *q) {
  if (q->busy) {
    q->dead = true;
    return;
  }
  treq_free(q);
}

static __attribute__((noinline)) void treq_unindex(treq *q) {
  ra_tindex_del(&q->t->streams, q->hash, q);
  q->indexed = false;
  if (q->in_stream && !q->in_cancelled) gone_add(q->t, q->hash, false);
}

static void treq_unlink(treq *q) {
  tunnel *t = q->t;
  if (t) {
    if (q->indexed) treq_unindex(q);
    RA_LIST_DEL(t->reqs, q);
    t->n_reqs--;
    t->held_bytes -= q->held_bytes;
    t->srv->held_bytes -= q->held_bytes;
    q->t = NULL;
  }
}

/* Hop-by-hop and framing headers mean nothing inside the tunnel. */
#define HOP(lit) {{lit}, sizeof lit - 1}
static bool skip_header(ra_str name) {
  /* lengths known at compile time: no strlen per header and name (issue
   * 18: 14 strlen calls per tunnelled response before) */
  static const ra_str hop[] = {HOP("connection"), HOP("keep-alive"), HOP("transfer-encoding"),
                               HOP("upgrade"), HOP("proxy-connection"), HOP("te"), HOP("trailer")};
  for (size_t i = 0; i < sizeof hop / sizeof hop[0]; i++)
    if (name.len == hop[i].len && ra_str_eq_nocase(name, hop[i])) return true;
  return false;
}
#undef HOP

/* streamed bodies (PROTOCOL.md §11), below */
static int out_begin(treq *q);
static int out_write(treq *q, const void *data, size_t len);
static int out_end(treq *q);
static void held_add(treq *q, size_t n);
static void held_sub(treq *q, size_t n);
static bool held_room(const tunnel *t, uint64_t n);
static void send_cancel(tunnel *t, ra_str id, const char *reason);
static ra_str treq_id(const treq *q);
static void in_cancel_body(treq *q, const char *reason);

/* Encodes the http_response up to "body" into q->out, with room for a body
 * of `expect` bytes when the length is known. */
static int sink_head(void *sink, int status, const ra_header *headers, size_t n, int64_t content_length) {
  treq *q = sink;
  q->got_head = true;
  if (!q->t) return 0; /* cancelled meanwhile: nothing will be sent */
  /* the reference client builds a fetch Response, which only takes
   * 200..599: anything else would make it throw and the fetch hang */
  if (status < 200 || status > 599) status = 502;
  q->status = status;
  q->no_body = status == 204 || status == 205 || status == 304;
  ra_header small[32], *hs = small;
  if (n > sizeof small / sizeof small[0] && !(hs = malloc(n * sizeof *hs))) {
    q->failed = true;
    return 0;
  }
  size_t k = 0;
  for (size_t i = 0; i < n; i++)
    if (!skip_header(headers[i].name)) hs[k++] = headers[i];
  ra_tmsg_http_response_out r = {
    .request_id = ra_str_make(q->id, q->id_len), .status = status,
    .status_text = ra_str_cstr(ra_http_status_text(status)), .headers = hs, .n_headers = k,
  };
  /* One encode on the hot path: into a stack buffer that fits any usual
   * head (the encoder returns the size whatever cap is and writes only when
   * it fits), copied in place below; a larger head is encoded a second time,
   * straight into the sealed buffer once it has the room. */
  uint8_t tmp[1024];
  size_t hl = ra_tmsg_encode_http_response_head(tmp, sizeof tmp, &r);
  size_t expect = 0;
  /* a body known to be longer than one of the client's chunks is streamed
   * from the start (§11) */
  bool stream = q->t->bs && !q->no_body && !q->head_only && content_length > 0 &&
                (uint64_t)content_length > q->t->peer.chunk;
  if (!stream && !q->no_body && !q->head_only && content_length > 0 &&
      (uint64_t)content_length <= q->t->srv->o.max_response && held_room(q->t, (uint64_t)content_length))
    expect = (size_t)content_length; /* room at once (else it grows as written, counted) */
  uint8_t *p = ra_env_seal_begin(&q->out, hl + BODY_GAP + expect);
  if (!p) q->failed = true;
  else if (hl <= sizeof tmp) memcpy(p, tmp, hl);
  else ra_tmsg_encode_http_response_head(p, hl, &r);
  if (hs != small) free(hs);
  q->head_len = hl;
  if (stream && !q->failed && out_begin(q)) q->failed = true;
  return 0;
}

static void defer_later(treq *q) {
  if (q->later_queued) return;
  q->later_queued = true;
  ra_loop_defer(q->loop, &q->later);
}

/* Over max_response (502), or over what the tunnel or the server may hold
 * (503): the client gets its answer now and the memory goes; the handler
 * learns from on_cancel, from the loop (not inside its own write). */
static void response_refused(treq *q, int status, const char *text) {
  tunnel *t = q->t;
  ra_tunnel_server *s = t->srv;
  q->too_large = q->failed = true;
  if (status == 502) s->st.responses_too_large++;
  else s->st.buffered_refused++;
  ra_env_buf_free(&q->out);
  held_sub(q, q->body_len);
  RA_LOG_LIMITED(RA_LOG_INFO, 10, 60000, "tunnel: response refused (%d): %s", status, text);
  send_simple_response(t, ra_str_make(q->id, q->id_len), status, text);
  q->resp_sent = true;
  if (q->in_stream) in_cancel_body(q, "response ended before the request body");
  log_access(s, ra_res_req(q->res), status, q->start_us);
  defer_later(q);
}

static int sink_body(void *sink, const void *data, size_t len) {
  treq *q = sink;
  if (q->too_large) return -EMSGSIZE;
  if (q->head_only || q->no_body || q->failed || !q->t) return 0;
  if (q->out_stream) return out_write(q, data, len);
  tunnel *t = q->t;
  ra_tunnel_server *s = t->srv;
  /* past one of the client's chunks before its end: streamed (§11); the
   * body so far is below a chunk, so the subtraction cannot wrap */
  if (t->bs && len > t->peer.chunk - q->body_len) {
    int rc = out_begin(q);
    if (rc) {
      q->failed = true;
      return rc;
    }
    return out_write(q, data, len);
  }
  if (len > s->o.max_response - q->body_len) {
    response_refused(q, 502, "response too large for the tunnel\n");
    return -EMSGSIZE;
  }
  if (!held_room(t, len)) {
    response_refused(q, 503, "too many bytes pending: retry later\n");
    return -EMSGSIZE;
  }
  q->unpaced += len;
  size_t at = q->head_len + BODY_GAP + q->body_len;
  if (len > SIZE_MAX - at) {
    q->failed = true;
    return -ENOMEM;
  }
  uint8_t *p = ra_env_seal_extend(&q->out, at, at + len);
  if (!p) {
    q->failed = true;
    return -ENOMEM;
  }
  memcpy(p + at, data, len);
  q->body_len += len;
  held_add(q, len);
  return 0;
}

static int sink_end(void *sink) {
  treq *q = sink;
  tunnel *t = q->t;
  q->req = NULL; /* freed with the response right after this */
  if (q->too_large) { /* answered (502 / 503) and logged already */
    if (t) {
      treq_unlink(q);
      drain_check(t);
    }
    treq_drop(q);
    return 0;
  }
  if (q->out_stream && t) return out_end(q);
  if (t && (q->failed || q->cut || !q->got_head || !t->ch.keyed || !t->ch.ctl)) {
    if (q->failed || !q->got_head)
      send_simple_response(t, ra_str_make(q->id, q->id_len), 500, "response failed\n");
    else if (q->cut)
      send_simple_response(t, ra_str_make(q->id, q->id_len), 502, "bad gateway: the answer was cut short\n");
  } else if (t) {
    uint8_t *p = ra_env_seal_extend(&q->out, 0, q->head_len + BODY_GAP + q->body_len);
    size_t off, n;
    if (!p) {
      q->failed = true;
      send_simple_response(t, ra_str_make(q->id, q->id_len), 500, "response failed\n");
    } else if (q->no_body) { /* body: null */
      p[q->head_len] = 0xf6;
      off = 0;
      n = q->head_len + 1;
    } else {
      uint8_t bh[BODY_GAP];
      size_t bl = ra_str_head(bh, q->body_len);
      off = BODY_GAP - bl;
      memmove(p + off, p, q->head_len);
      memcpy(p + off + q->head_len, bh, bl);
      n = q->head_len + bl + q->body_len;
    }
    if (p) ra_tchan_send_buf(&t->ch, &q->out, off, n);
  }
  if (t) {
    /* an early answer: the rest of a streamed request body is not wanted */
    if (q->in_stream) in_cancel_body(q, "response ended before the request body");
    log_access(t->srv, ra_res_req(q->res), q->failed || !q->got_head ? 500 : q->cut ? 502 : q->status,
               q->start_us);
    treq_unlink(q);
    drain_check(t);
  }
  treq_drop(q);
  return 0;
}

/* ra_res_abort: the body is incomplete (a proxy's upstream failed
 * mid-body) and no tunnel framing can cut an answer short: a whole answer
 * becomes a 502 instead of a shorter body; a streamed one ends with
 * http_cancel (the client fails it), never with an `end` that would pass
 * for complete. */
static int sink_abort(void *sink) {
  treq *q = sink;
  if (!q->t || q->too_large || q->head_only || q->no_body) return sink_end(sink);
  if (q->out_stream) {
    held_sub(q, q->x->pend.len);
    ra_buf_free(&q->x->pend);
    send_cancel(q->t, treq_id(q), "the response was cut short");
    q->out_end_sent = true; /* nothing more goes for it: out_end frees q */
    return out_end(q);
  }
  q->cut = true;
  return sink_end(sink);
}

/* The control channel's high-water mark: above it, paced responses wait
 * for its on_drain (the stream's low-water mark is a quarter of it). */
#define CTL_HIGH_WATER (1u << 20)

/* A response leaves whole, at its end, so what it holds is what it wrote;
 * pacing is per loop turn instead: pending is what was written since the
 * last on_drain plus the control channel's backlog, and asking for it
 * queues an on_drain from the loop (treq_later). A handler writing while
 * pending is small thus yields after each window, as over HTTP/1.1, and
 * waits for the client to read when the control channel is backed up. */
static size_t sink_pending(void *sink) {
  treq *q = sink;
  tunnel *t = q->t;
  if (!t || q->too_large) return 0;
  size_t ctl = t->ch.ctl ? ra_ws_buffered(t->ch.ctl) : 0;
  /* streamed (§11): what waits for the client's credit instead; the
   * channel's backlog from this stream is bounded by that credit, so it
   * counts only past the high-water mark (whose on_drain resumes it: below
   * it no event would come, and waiting for one would spin) */
  size_t n = q->out_stream ? q->x->pend.len + (ctl > CTL_HIGH_WATER ? ctl : 0) : q->unpaced + ctl;
  if (n && !q->wait_ctl && !q->wait_credit) defer_later(q);
  return n;
}

static void treq_later(ra_defer *d, void *ud) {
  (void)d;
  treq *q = ud;
  q->later_queued = false;
  tunnel *t = q->t;
  if (!t) return;
  if (q->too_large) {
    treq_unlink(q);
    ra_res *res = q->res;
    treq_free(q);
    ra_res_cancel(res); /* on_cancel: the handler stops (and ends it) */
    drain_check(t);
    return;
  }
  if (!q->res) return; /* ended: what is left goes as credit comes */
  if (t->ch.ctl && ra_ws_buffered(t->ch.ctl) > CTL_HIGH_WATER) {
    q->wait_ctl = true; /* ctl_drain resumes it */
    return;
  }
  if (q->out_stream && q->x->pend.len && !q->x->out_credit) {
    q->wait_credit = true; /* on_http_credit resumes it */
    return;
  }
  q->unpaced = 0;
  ra_res_drained(q->res); /* may end the response (and free q) */
}

static const ra_res_sink_ops treq_ops = {
  .head = sink_head, .body = sink_body, .end = sink_end, .pending = sink_pending,
  .abort = sink_abort,
};

/* ---- streamed bodies (PROTOCOL.md §11) ------------------------------------
 * Only on a tunnel whose client_kx announced bodyStreams (t->bs). A treq
 * with a body stream either way is in t->streams by requestId. Request
 * bodies: the client may send `window` bytes (ours) before any credit; what
 * arrives is handed to the handler at once when it takes pieces (straight
 * from the decrypted message), else queued (at most the window: credit is
 * granted only for what the handler took). Response bodies: sent as
 * http_body pieces of at most the client's chunk, within its credit; what
 * the credit does not cover waits in q->x->pend, reported by ra_res_pending. */

static ra_str treq_id(const treq *q) { return ra_str_make(q->id, q->id_len); }

static treq *stream_find(tunnel *t, ra_str id, uint64_t h) {
  treq *q;
  for (size_t pos = 0; (q = ra_tindex_next(&t->streams, h, &pos));)
    if (q->id_len == id.len && memcmp(q->id, id.ptr, id.len) == 0) return q;
  return NULL;
}

/* The streams' state, made by the first stream of q. */
static int treq_bs_get(treq *q) {
  if (q->x) return 0;
  q->x = calloc(1, sizeof *q->x);
  return q->x ? 0 : -ENOMEM;
}

static int stream_index(treq *q) {
  if (q->indexed) return 0;
  q->hash = ra_tchan_hash(&q->t->ch, treq_id(q));
  if (ra_tindex_put(&q->t->streams, q->hash, q)) return -ENOMEM;
  q->indexed = true;
  return 0;
}

static void held_add(treq *q, size_t n) {
  q->held_bytes += n;
  q->t->held_bytes += n;
  q->t->srv->held_bytes += n;
}
static void held_sub(treq *q, size_t n) {
  q->held_bytes -= n;
  q->t->held_bytes -= n;
  q->t->srv->held_bytes -= n;
}
/* Whether n more bytes fit under both bounds (per tunnel, all tunnels). */
static bool held_room(const tunnel *t, uint64_t n) {
  const ra_tunnel_server *s = t->srv;
  return n <= s->o.max_buffered_per_tunnel - t->held_bytes && n <= s->o.max_buffered - s->held_bytes;
}

typedef struct body_arg {
  ra_str id;
  const void *data;
  size_t len;
  bool end;
} body_arg;
static size_t enc_body(uint8_t *out, size_t cap, const void *a) {
  const body_arg *b = a;
  return ra_tmsg_encode_http_body(out, cap, b->id, b->data, b->len, b->end);
}

/* http_cancel to the client; what it still sends for id is ignored. */
static void send_cancel(tunnel *t, ra_str id, const char *reason) {
  ra_tchan_send_http_cancel(&t->ch, id, reason);
  gone_add(t, ra_tchan_hash(&t->ch, id), true);
}

/* The response's ra_res goes: cancelled (on_cancel runs), and freed here
 * when no handler ever had it (an assembled body still coming). */
static void treq_cancel_res(treq *q) {
  ra_res *res = q->res;
  if (!res) return;
  if (q->req && q->in_stream) ra_req_set_body_stream(q->req, &gone_body_ops, NULL);
  q->res = NULL;
  q->req = NULL;
  ra_res_cancel(res);
  if (!q->dispatched) ra_res_end(res);
}

/* The stream ends on our side: its response cancelled, q freed. */
static void stream_drop(treq *q) {
  tunnel *t = q->t;
  if (t) {
    t->srv->st.responses_cancelled++;
    treq_unlink(q);
  }
  treq_cancel_res(q);
  treq_drop(q);
  if (t) drain_check(t);
}

/* A stream that cannot go on (a protocol violation: 400; over a bound:
 * 413 / 503): the client gets that status unless a response went out
 * already, and http_cancel; the handler's response is cancelled. Only this
 * stream: the tunnel serves the next request. q may be NULL (no stream by
 * that id). */
static void stream_fail(tunnel *t, treq *q, ra_str id, int status, const char *why) {
  ra_tunnel_server *s = t->srv;
  if (status == 400) {
    s->st.body_stream_violations++;
    RA_LOG_LIMITED(RA_LOG_INFO, 10, 60000, "tunnel: streamed body: %s", why);
  } else {
    s->st.buffered_refused++;
  }
  if (!q || !q->resp_sent) {
    char text[160];
    snprintf(text, sizeof text, "%s\n", why);
    send_simple_response(t, id, status, text);
  }
  send_cancel(t, id, why);
  if (q) {
    q->in_cancelled = true;
    stream_drop(q);
  }
}

/* ---- request bodies in ---- */

/* The request body is over for us (all of it delivered, or cancelled): the
 * window it reserved is free again. The queue goes too, unless a delivery
 * from it is under way (treq_free then frees it). */
static void in_release(treq *q) {
  if (!q->x) return;
  if (q->t && q->x->in_reserved) held_sub(q, q->x->in_reserved);
  q->x->in_reserved = 0;
  if (!q->busy) ra_buf_free(&q->x->inq);
}

/* We want no more of the request body: http_cancel unless it is complete. */
static __attribute__((noinline)) void in_cancel_body(treq *q, const char *reason) {
  if (q->t && q->in_stream && !q->in_end && !q->in_cancelled) {
    q->in_cancelled = true;
    send_cancel(q->t, treq_id(q), reason);
  }
  in_release(q);
}

/* The handler took n bytes: credit for them, a chunk's worth at a time. */
static void in_grant(treq *q, size_t n) {
  if (!n || !q->t || q->in_end || q->in_cancelled) return;
  q->x->in_unacked += n;
  if (q->x->in_unacked < q->t->srv->bs.chunk) return;
  ra_tchan_send_http_credit(&q->t->ch, treq_id(q), q->x->in_unacked);
  q->x->in_credit += q->x->in_unacked;
  q->x->in_unacked = 0;
}

/* One piece to the handler. false: q is gone (its response ended inside
 * the callback and nothing keeps it). */
static bool in_deliver(treq *q, const uint8_t *data, size_t len, bool last) {
  q->busy++;
  ra_req_body_deliver(q->req, data, len, last);
  q->busy--;
  if (q->dead) {
    if (!q->busy) treq_free(q);
    return false;
  }
  return true;
}

/* Hands the handler what is queued, while it takes pieces. */
static void in_pump(treq *q) {
  while (q->req && q->t && !q->in_cancelled && ra_req_body_wants(q->req)) {
    size_t n = q->x->inq.len;
    bool last = q->in_end;
    if (!n && !last) return;
    if (!in_deliver(q, n ? ra_buf_ptr(&q->x->inq) : NULL, n, last)) return;
    ra_buf_consume(&q->x->inq, n);
    if (last) {
      in_release(q);
      return;
    }
    in_grant(q, n);
  }
}

static void in_later(ra_defer *d, void *ud) {
  (void)d;
  treq *q = ud;
  q->x->in_later_queued = false;
  in_pump(q);
}

/* ra_req_body_ops.kick: the handler set its callback or resumed; deliver
 * from the loop (never inside its call). */
static void in_kick(void *ud) {
  treq *q = ud;
  if (q->x->in_later_queued || q->dead) return;
  q->x->in_later_queued = true;
  ra_loop_defer(q->loop, &q->x->in_later);
}
static const ra_req_body_ops in_ops = {.kick = in_kick};

/* A route without RA_ROUTE_STREAM_BODY: the pieces are assembled into the
 * request, bounded as a whole body is, and it is dispatched at the end. */
static void in_assemble(treq *q, const uint8_t *data, size_t len, bool end) {
  tunnel *t = q->t;
  ra_tunnel_server *s = t->srv;
  if (len) {
    size_t have = ra_req_body(q->req).len;
    if (len > s->o.max_buffered_per_tunnel - have) {
      stream_fail(t, q, treq_id(q), 413, "request body too large");
      return;
    }
    if (!held_room(t, len)) {
      s->st.requests_refused++;
      stream_fail(t, q, treq_id(q), 503, "too many bytes pending: retry later");
      return;
    }
    if (ra_req_append_body(q->req, data, len)) {
      stream_fail(t, q, treq_id(q), 500, "out of memory");
      return;
    }
    held_add(q, len);
  }
  if (!end) {
    in_grant(q, len);
    return;
  }
  in_release(q);
  q->dispatched = true;
  ra_router_handle(s->router, q->req, q->res); /* may end (and free q) right here */
}

static __attribute__((noinline)) void on_http_body(tunnel *t, const ra_tmsg *m) {
  ra_tunnel_server *s = t->srv;
  ra_str id = m->http_body.request_id;
  uint64_t h = ra_tchan_hash(&t->ch, id);
  treq *q = stream_find(t, id, h);
  if (!q) {
    int g = gone_find(t, h);
    if (g == GONE_FINISHED) { /* answered already: only the cancel */
      s->st.body_stream_violations++;
      send_cancel(t, id, "http_body after the end of the request body");
    } else if (g == GONE_NONE) {
      stream_fail(t, NULL, id, 400, "http_body for no request body stream");
    }
    return;
  }
  if (q->in_cancelled) return; /* we said stop: what was under way still comes */
  if (!q->in_stream || q->in_end) {
    stream_fail(t, q, id, 400, "http_body after the end of the request body");
    return;
  }
  const uint8_t *data = m->http_body.data.bytes;
  size_t len = m->http_body.data.len;
  bool end = m->http_body.end;
  if (len > s->bs.chunk) {
    stream_fail(t, q, id, 400, "http_body larger than the announced chunk");
    return;
  }
  if (len > q->x->in_credit) {
    stream_fail(t, q, id, 400, "http_body beyond the credit granted");
    return;
  }
  q->x->in_credit -= len;
  if (end) q->in_end = true;
  if (q->in_assemble) {
    in_assemble(q, data, len, end);
    return;
  }
  if (!q->req) return; /* the response ended, the body was complete: nothing wants it */
  if (!q->x->inq.len && ra_req_body_wants(q->req)) { /* straight from the decrypted message */
    if (!in_deliver(q, data, len, end)) return;
    if (end) in_release(q);
    else in_grant(q, len);
    return;
  }
  /* held until the handler takes pieces: within the window it reserved */
  if (len && ra_buf_append(&q->x->inq, data, len)) {
    stream_fail(t, q, id, 500, "out of memory");
    return;
  }
  if (ra_req_body_wants(q->req)) in_kick(q);
}

/* http_request {bodyStream: true}: the stream is set up on q (linked,
 * its ra_res made); the route decides between streaming and assembling. */
static __attribute__((noinline)) void in_start(treq *q, ra_str method) {
  tunnel *t = q->t;
  ra_tunnel_server *s = t->srv;
  q->in_stream = true;
  if (treq_bs_get(q) || stream_index(q)) {
    stream_fail(t, q, treq_id(q), 500, "out of memory");
    return;
  }
  q->x->in_credit = s->bs.window;
  q->x->in_reserved = (size_t)s->bs.window;
  held_add(q, q->x->in_reserved);
  ra_defer_init(&q->x->in_later, in_later, q);
  s->st.body_streams_in++;
  ra_route_match rm;
  int mrc = ra_router_match(s->router, method, ra_req_path(q->req), NULL, &rm);
  /* no route (404 / 405 answered at once) or a streaming one: dispatched
   * now; any other: when the body is complete */
  q->in_assemble = mrc == 0 && !(rm.flags & RA_ROUTE_STREAM_BODY);
  if (q->in_assemble) return;
  ra_req_set_body_stream(q->req, &in_ops, q);
  q->dispatched = true;
  ra_router_handle(s->router, q->req, q->res); /* may end (and free q) right here */
}

/* ---- response bodies out ---- */

static int out_send(treq *q, const void *data, size_t n, bool end) {
  body_arg a = {treq_id(q), data, n, end};
  q->x->out_credit -= n;
  if (end) q->out_end_sent = true;
  return ra_tchan_send(&q->t->ch, enc_body, &a);
}

/* The response's head, encoded in q->out up to "body", goes out as
 * http_response {bodyStream: true, body: null}. */
typedef struct head_arg {
  const uint8_t *head;
  size_t len;
} head_arg;
static size_t enc_stream_head(uint8_t *out, size_t cap, const void *a) {
  const head_arg *h = a;
  return ra_tmsg_response_head_to_stream(out, cap, h->head, h->len);
}

/* Switches q to a streamed response: the head goes now, the body written
 * so far waits in q->x->pend for the client's credit. */
static __attribute__((noinline)) int out_begin(treq *q) {
  tunnel *t = q->t;
  size_t have = q->head_len + BODY_GAP + q->body_len;
  uint8_t *p = ra_env_seal_extend(&q->out, have, have);
  if (!p || !ra_tmsg_response_head_to_stream(NULL, 0, p, q->head_len)) return -ENOMEM;
  if (treq_bs_get(q) || stream_index(q)) return -ENOMEM;
  if (q->body_len && ra_buf_append(&q->x->pend, p + q->head_len + BODY_GAP, q->body_len)) return -ENOMEM;
  head_arg h = {p, q->head_len};
  ra_tchan_send(&t->ch, enc_stream_head, &h);
  ra_env_buf_recycle(&q->out);
  q->body_len = 0; /* held_bytes keeps counting it, now in pend */
  q->out_stream = q->resp_sent = true;
  q->x->out_credit = t->peer.window;
  t->srv->st.body_streams_out++;
  return 0;
}

/* The next http_body piece of len bytes: within the credit and the
 * client's chunk. */
static size_t out_piece(const treq *q, size_t len) {
  if (len > q->x->out_credit) len = (size_t)q->x->out_credit;
  if (len > q->t->peer.chunk) len = (size_t)q->t->peer.chunk;
  return len;
}

/* Sends what waits, within the credit; the end once all went. Frees q when
 * its response ended and is all sent. */
static void out_pump(treq *q) {
  while (q->x->pend.len && q->x->out_credit) {
    size_t n = out_piece(q, q->x->pend.len);
    out_send(q, ra_buf_ptr(&q->x->pend), n, q->out_ended && n == q->x->pend.len);
    ra_buf_consume(&q->x->pend, n);
    held_sub(q, n);
  }
}

static void out_flush(treq *q) {
  out_pump(q);
  if (q->out_ended && !q->x->pend.len && !q->out_end_sent) out_send(q, NULL, 0, true);
  if (q->out_end_sent) {
    tunnel *t = q->t;
    treq_unlink(q);
    treq_drop(q);
    drain_check(t);
    return;
  }
  if (q->wait_credit && q->res) { /* a paced handler may write again */
    q->wait_credit = false;
    defer_later(q);
  }
}

/* The client cannot get this response whole (a bound, memory): it is told
 * with http_cancel, never with an end that would pass for complete; the
 * handler's response is cancelled from the loop (treq_later). */
static void out_abort(treq *q, const char *why) {
  tunnel *t = q->t;
  t->srv->st.buffered_refused++;
  send_cancel(t, treq_id(q), why);
  if (q->in_stream) q->in_cancelled = true;
  in_release(q);
  held_sub(q, q->x->pend.len);
  ra_buf_free(&q->x->pend);
  q->too_large = q->failed = true;
  defer_later(q);
}

static int out_write(treq *q, const void *data, size_t len) {
  tunnel *t = q->t;
  const uint8_t *d = data;
  out_pump(q); /* what waits goes first */
  while (!q->x->pend.len && len && q->x->out_credit) { /* nothing waits: straight out */
    size_t n = out_piece(q, len);
    out_send(q, d, n, false);
    d += n;
    len -= n;
  }
  if (!len) return 0;
  if (!held_room(t, len)) {
    out_abort(q, "too many bytes pending");
    return -EMSGSIZE;
  }
  if (ra_buf_append(&q->x->pend, d, len)) {
    out_abort(q, "out of memory");
    return -ENOMEM;
  }
  held_add(q, len);
  return 0;
}

/* The handler ended a streamed response: the rest goes as credit comes;
 * q lives on without its ra_res until then. */
static int out_end(treq *q) {
  tunnel *t = q->t;
  log_access(t->srv, ra_res_req(q->res), q->status, q->start_us);
  if (q->in_stream) in_cancel_body(q, "response ended before the request body");
  if (q->req && q->in_stream) ra_req_set_body_stream(q->req, &gone_body_ops, NULL);
  q->res = NULL;
  q->req = NULL;
  q->out_ended = true;
  out_flush(q);
  return 0;
}

static __attribute__((noinline)) void on_http_credit(tunnel *t, const ra_tmsg *m) {
  ra_str id = m->http_credit.request_id;
  treq *q = stream_find(t, id, ra_tchan_hash(&t->ch, id));
  if (!q || !q->out_stream || q->too_large) return; /* late, or not ours to count: ignored */
  uint64_t b = m->http_credit.bytes;
  q->x->out_credit = b > UINT64_MAX / 2 - q->x->out_credit ? UINT64_MAX / 2 : q->x->out_credit + b;
  out_flush(q);
}

/* The client abandons a request: its response is cancelled, nothing more
 * is sent for it. */
static __attribute__((noinline)) void on_http_cancel(tunnel *t, const ra_tmsg *m) {
  ra_str id = m->http_cancel.request_id;
  uint64_t h = ra_tchan_hash(&t->ch, id);
  t->srv->st.body_stream_cancels++;
  treq *q = stream_find(t, id, h);
  for (treq *r = t->reqs; !q && r; r = r->next) /* a whole-body request: rare, a walk */
    if (r->id_len == id.len && memcmp(r->id, id.ptr, id.len) == 0) q = r;
  gone_add(t, h, true);
  if (q) {
    q->in_cancelled = true;
    stream_drop(q);
  }
}

/* The path and query of a request URL: "/p?q" as is; "http://h:1/p?q" ->
 * "/p?q"; "p" -> "/p" (as `new URL(url, "http://localhost")` would); the
 * fragment is dropped. Returns a view into url, or writes "/"+url into
 * scratch. */
static ra_str url_target(ra_str url, char *scratch, size_t scratch_len) {
  const char *p = url.ptr, *end = url.ptr + url.len;
  const char *hash = memchr(p, '#', url.len);
  if (hash) end = hash;
  const char *scheme = NULL;
  for (const char *c = p; c + 2 < end; c++) {
    if (*c == '/' || *c == '?') break;
    if (c[0] == ':' && c[1] == '/' && c[2] == '/') { scheme = c + 3; break; }
  }
  if (scheme) {
    const char *slash = scheme;
    while (slash < end && *slash != '/' && *slash != '?') slash++;
    if (slash == end) return RA_STR("/");
    if (*slash == '?') { /* "http://h?x" */
      size_t n = (size_t)(end - slash);
      if (n + 1 > scratch_len) return RA_STR("/");
      scratch[0] = '/';
      memcpy(scratch + 1, slash, n);
      return ra_str_make(scratch, n + 1);
    }
    return ra_str_make(slash, (size_t)(end - slash));
  }
  if (p < end && *p == '/') return ra_str_make(p, (size_t)(end - p));
  size_t n = (size_t)(end - p);
  if (n + 1 > scratch_len) return RA_STR("/");
  scratch[0] = '/';
  memcpy(scratch + 1, p, n);
  return ra_str_make(scratch, n + 1);
}

/* An http_request answered at once: with a streamed body (§11), the
 * client is told to send none of it (http_cancel). */
static __attribute__((noinline)) void refuse_request(tunnel *t, const ra_tmsg *m, int status, const char *text, const char *error) {
  ra_str id = m->http_request.request_id;
  send_error_response(t, id, status, text, error);
  if (t->bs && m->http_request.body_stream) send_cancel(t, id, "request refused");
}

/* http_request {bodyStream: true} (§11): false when it is refused here. */
static __attribute__((noinline)) bool stream_request_ok(tunnel *t, const ra_tmsg *m) {
  ra_tunnel_server *s = t->srv;
  ra_str id = m->http_request.request_id;
  if (!t->bs) { /* never negotiated: no http_body will be read for it */
    send_simple_response(t, id, 400, "bodyStream on a tunnel without streamed bodies\n");
    return false;
  }
  treq *dup = stream_find(t, id, ra_tchan_hash(&t->ch, id));
  if (dup) { /* both fail: which body would the pieces be? */
    stream_fail(t, dup, id, 400, "a second bodyStream request with a requestId in flight");
    return false;
  }
  if (m->http_request.has_body) {
    stream_fail(t, NULL, id, 400, "bodyStream with a body");
    return false;
  }
  if (!held_room(t, s->bs.window)) {
    s->st.buffered_refused++;
    s->st.requests_refused++;
    refuse_request(t, m, 503, "too many bytes pending: retry later\n", NULL);
    return false;
  }
  return true;
}

static void on_http_request(tunnel *t, const ra_tmsg *m) {
  ra_tunnel_server *s = t->srv;
  ra_str id = m->http_request.request_id;
  if (s->stopping) {
    s->st.requests_refused++;
    refuse_request(t, m, 503, "server shutting down\n", "server shutting down");
    return;
  }
  if (t->n_reqs >= s->o.max_inflight) {
    s->st.requests_refused++;
    refuse_request(t, m, 503, "too many requests in flight on this tunnel\n", NULL);
    return;
  }
  bool bstream = m->http_request.body_stream;
  if (bstream && !stream_request_ok(t, m)) return;
  /* request bodies held while their responses are pending: bounded per
   * tunnel and over all of them */
  size_t blen = m->http_request.has_body ? m->http_request.body.len : 0;
  if (blen > s->o.max_buffered_per_tunnel) {
    s->st.buffered_refused++;
    send_simple_response(t, id, 413, "request body too large\n");
    return;
  }
  if (!held_room(t, blen)) {
    s->st.buffered_refused++;
    s->st.requests_refused++;
    send_simple_response(t, id, 503, "too many bytes pending: retry later\n");
    return;
  }
  treq_blk *b = blk_get(t, id.len);
  if (!b) {
    refuse_request(t, m, 500, "out of memory\n", NULL);
    return;
  }
  char scratch[2048];
  ra_str target = url_target(m->http_request.url, scratch, sizeof scratch);
  ra_req *req = &b->req;
  treq *q = &b->q;
  int nrc = ra_req_start(req, m->http_request.method, target, 11, true);
  if (nrc == -ENOMEM) goto oom;
  if (nrc) { /* a method or URL HTTP/1.1 could not carry either */
    blk_abandon(b);
    refuse_request(t, m, 400, nrc == -EINVAL ? "malformed request method\n" : "request URL too long\n", NULL);
    return;
  }
  if (t->client_id && ra_req_set_client_identity(req, t->client_id)) goto oom;
  set_req_peer(req, t);
  memcpy(q->id, id.ptr, id.len);
  q->id_len = id.len;
  q->loop = s->loop;
  ra_defer_init(&q->later, treq_later, q);
  q->out.pool = t->ch.pool;
  q->head_only = ra_str_eq_cstr(m->http_request.method, "HEAD");
  q->start_us = s->o.access_log ? now_us() : 0;
  /* Header text holds the header's bytes as code points (what a browser's
   * fetch makes of them): back to those bytes, as plain HTTP delivers them;
   * text that cannot be header bytes is refused like a malformed header. */
  ra_str hs = m->http_request.headers;
  uint8_t *hbuf;
  int hrc = ra_tmsg_headers_to_bytes(&hs, &hbuf);
  if (hrc == -ENOMEM) goto oom;
  int refuse = hrc ? 400 : 0;
  const char *why = "request header with a character above U+00FF\n";
  if (!refuse && !ra_http_token_valid(m->http_request.method)) {
    refuse = 400;
    why = "malformed request method\n";
  }
  ra_tmsg_iter it;
  ra_str k, v;
  size_t n_hdrs = 0;
  ra_tmsg_iter_init(&it, hs);
  while (!refuse && ra_tmsg_headers_next(&it, &k, &v)) {
    if (++n_hdrs > s->o.max_headers) refuse = 431; /* as the HTTP/1.1 transport would */
    else if (!ra_http_token_valid(k) || !ra_http_field_value_valid(v)) {
      refuse = 400;
      why = "malformed request header\n";
    } else if (ra_req_add_header(req, k, v)) hrc = -ENOMEM;
    if (hrc == -ENOMEM) break;
  }
  free(hbuf);
  if (hrc == -ENOMEM) goto oom;
  if (refuse) {
    log_access(s, req, refuse, q->start_us);
    blk_abandon(b);
    refuse_request(t, m, refuse, refuse == 431 ? "too many request headers\n" : why, NULL);
    return;
  }
  /* a large body is not copied: the request takes the decrypted message
   * over (the rx buffer, lent; it returns to the pool when the request is
   * freed). Done last: m's views point into that buffer. */
  const ra_str body = m->http_request.has_body ? m->http_request.body : ra_bytes_make(NULL, 0);
  bool by_ref = body.len >= BODY_REF_MIN && t->ch.rx.data && body.bytes >= t->ch.rx.data &&
                body.bytes + body.len <= t->ch.rx.data + t->ch.rx.cap;
  if (body.len && !by_ref && ra_req_append_body(req, body.ptr, body.len)) goto oom;
  ra_res *res = &b->res;
  ra_res_init(res, s->loop, req, &treq_ops, q, blk_res_release, b);
  if (by_ref) ra_req_set_body_ref(req, body.ptr, body.len, ra_env_buf_return, ra_env_buf_lend(&t->ch.rx));
  q->res = res;
  q->req = req;
  q->t = t;
  RA_LIST_ADD(t->reqs, q);
  t->n_reqs++;
  q->held_bytes = 0;
  held_add(q, blen);
  s->st.requests++;
  if (bstream) {
    in_start(q, m->http_request.method);
    return;
  }
  q->dispatched = true;
  ra_router_handle(s->router, req, res); /* may end (and free q) right here */
  return;
oom:
  blk_abandon(b);
  refuse_request(t, m, 500, "out of memory\n", NULL);
}

/* ---- tunnelled WebSockets ------------------------------------------------- */

static void ctl_open(ra_ws *ws, void *ud);

static void on_ws_connect(tunnel *t, const ra_tmsg *m) {
  ra_tunnel_server *s = t->srv;
  ra_str id = m->ws_connect.connection_id;
  if (s->stopping) {
    send_event(t, id, RA_TMSG_EV_ERROR, "server shutting down");
    return;
  }
  if (ra_tchan_find(&t->ch, id)) {
    send_event(t, id, RA_TMSG_EV_ERROR, "connectionId already in use");
    return;
  }
  if (t->ch.n_socks >= s->o.max_sockets) {
    send_event(t, id, RA_TMSG_EV_ERROR, "too many WebSockets on this tunnel");
    return;
  }
  char scratch[2048];
  ra_str target = url_target(m->ws_connect.url, scratch, sizeof scratch);
  ra_req *req;
  ra_req_new(RA_STR("GET"), target, 11, true, &req);
  if (!req) {
    send_event(t, id, RA_TMSG_EV_ERROR, "out of memory");
    return;
  }
  set_req_peer(req, t);
  ra_route_match rm;
  const ra_ws_handlers *h = NULL;
  void *hud = NULL;
  const char *why = NULL;
  int mrc = ra_router_match(s->router, RA_STR("GET"), ra_req_path(req), req, &rm);
  if (mrc == 0) ra_proxy_ws_match(&rm, ra_req_path(req), req); /* a proxied path: relay to the upstream */
  if (mrc != 0 || !ra_ws_route_handlers(&rm, &h, &hud)) {
    why = "no WebSocket route for this path";
  } else if (h->on_open == ctl_open) { /* a tunnel's control channel inside a tunnel */
    s->st.nested_refused++;
    why = "no tunnel inside a tunnel";
  } else if ((rm.flags & RA_ROUTE_CLIENT_ATTESTED) && !t->client_id) {
    why = "client attestation required";
  } else if (t->client_id && ra_req_set_client_identity(req, t->client_id)) {
    why = "out of memory";
  } else if (h->on_request) {
    int st = h->on_request(req, hud);
    if (st) why = "refused by the application";
  }
  if (why) {
    send_event(t, id, RA_TMSG_EV_ERROR, why);
    ra_req_free(req);
    return;
  }
  ra_str offered[RA_WS_MAX_PROTOCOLS];
  size_t n_off = 0;
  ra_tmsg_iter it;
  ra_tmsg_iter_init(&it, m->ws_connect.protocols);
  while (n_off < RA_WS_MAX_PROTOCOLS && ra_tmsg_strings_next(&it, &offered[n_off])) n_off++;
  ra_str protocol = ra_ws_choose_protocol(h->select_protocol, req, offered, n_off, hud);
  ra_tchan_sock *w = ra_tchan_sock_new(&t->ch, id, h, hud, ra_ws_route_opts(&rm));
  int rc = w ? ra_ws_set_info(w->ws, ra_req_path(req), protocol, true) : -ENOMEM;
  if (!rc) rc = ra_tchan_sock_add(&t->ch, w);
  ra_req_free(req);
  if (rc) {
    if (w) ra_tchan_sock_discard(w);
    send_event(t, id, RA_TMSG_EV_ERROR, "out of memory");
    return;
  }
  s->st.sockets_opened++;
  send_event(t, id, RA_TMSG_EV_OPEN, NULL);
  ra_tchan_sock_open(w);
}

static void on_ws_close(tunnel *t, const ra_tmsg *m) {
  ra_tchan_sock *w = ra_tchan_find(&t->ch, m->ws_close.connection_id);
  if (!w || w->gone) return;
  ra_tchan_sock_closed(w, m->ws_close.has_code ? (uint16_t)m->ws_close.code : 1005,
                       m->ws_close.has_reason ? m->ws_close.reason : RA_STR(""));
}

/* ---- the control channel ---------------------------------------------------- */

static void stop_report(ra_defer *d, void *ud) {
  (void)d;
  ra_tunnel_server *s = ud;
  ra_timer_stop(&s->stop_timer);
  if (s->stop_cb) s->stop_cb(s, s->stop_ud); /* may free s */
}

/* ra_tunnel_server_shutdown: done once no control channel is left. */
static void stop_check(ra_tunnel_server *s) {
  if (!s->stopping || s->stop_reported || s->freeing || s->tunnels || s->unkeyed) return;
  s->stop_reported = true;
  ra_loop_defer(s->loop, &s->stop_later);
}

static void key_put(ra_tunnel_server *s, tkey *k) {
  if (!k || --k->refs) return;
  if (k->retiring) ra_timer_stop(&k->retire);
  RA_LIST_DEL(s->keys, k);
  s->n_keys--;
  sodium_memzero(k->sk, sizeof k->sk);
  free(k->server_kx);
  free(k);
}

static void tunnel_teardown(tunnel *t) {
  ra_tunnel_server *s = t->srv;
  while (t->reqs) {
    treq *q = t->reqs;
    treq_unlink(q);
    if (q->res) s->st.responses_cancelled++;
    treq_cancel_res(q); /* the sink is never called again */
    treq_drop(q);
  }
  blk_orphan_all(t);
  ra_tindex_free(&t->streams);
  ra_tchan_free(&t->ch); /* every tunnelled WebSocket: on_close 1006 */
  if (t->counted_keyed) {
    RA_LIST_DEL(s->tunnels, t);
    s->n_keyed--;
  } else {
    RA_LIST_DEL(s->unkeyed, t);
    s->n_unkeyed--;
  }
  s->st.tunnels_open--;
  ra_timer_stop(&t->timer);
  s->replay_total -= t->replay.count;
  ra_replay_free(&t->replay);
  free(t->client_id);
  free(t->gone);
  tkey *k = t->key;
  free(t);
  key_put(s, k);
  stop_check(s);
}

/* What ra_req_peer returns for a tunnelled request: the address the tunnel
 * came from (access logs, metrics), as for a plain request. */
static void set_req_peer(ra_req *req, const tunnel *t) {
  if (t->addr_text_len) ra_req_set_peer(req, ra_str_make(t->addr_text, t->addr_text_len));
}

static void set_addr_text(tunnel *t) {
  if (t->addr[0] &&
      inet_ntop(t->addr[0] == 4 ? AF_INET : AF_INET6, t->addr + 1, t->addr_text, sizeof t->addr_text))
    t->addr_text_len = (uint8_t)strlen(t->addr_text);
}

/* The client's IP address as 17 bytes (family, address), for the bound on
 * channels awaiting their key per address; false when there is none (a
 * unix socket, a channel not on a socket). */
static bool peer_addr(ra_ws *ws, uint8_t out[17]) {
  int fd = ra_ws_fd(ws);
  struct sockaddr_storage ss;
  socklen_t sl = sizeof ss;
  memset(out, 0, 17);
  if (fd < 0 || getpeername(fd, (struct sockaddr *)&ss, &sl) != 0) return false;
  if (ss.ss_family == AF_INET) {
    out[0] = 4;
    memcpy(out + 1, &((struct sockaddr_in *)&ss)->sin_addr, 4);
  } else if (ss.ss_family == AF_INET6) {
    out[0] = 6;
    memcpy(out + 1, &((struct sockaddr_in6 *)&ss)->sin6_addr, 16);
  } else {
    return false;
  }
  return true;
}

static void kx_timeout(ra_timer *tm, void *ud) {
  (void)tm;
  tunnel *t = ud;
  if (t->ch.keyed || !t->ch.ctl) return;
  t->srv->st.kx_timeouts++;
  RA_LOG_LIMITED(RA_LOG_INFO, 10, 60000, "tunnel: no key exchange within %llu ms: closed",
                 (unsigned long long)t->srv->o.kx_timeout_ms);
  ra_ws_close(t->ch.ctl, 1008, "key exchange timeout");
}

/* ---- client attestation (PROTOCOL.md §10) ---------------------------------- */

/* The cached server_kx plus this channel's fresh clientChallenge. */
static void send_server_kx_challenge(tunnel *t) {
  randombytes_buf(t->client_challenge, sizeof t->client_challenge);
  size_t n = ra_tmsg_server_kx_add_challenge(NULL, 0, t->key->server_kx, t->key->server_kx_len, t->client_challenge);
  uint8_t *kx = n ? malloc(n) : NULL;
  if (!kx) {
    ra_ws_close(t->ch.ctl, 1011, "out of memory");
    return;
  }
  ra_tmsg_server_kx_add_challenge(kx, n, t->key->server_kx, t->key->server_kx_len, t->client_challenge);
  ra_ws_send(t->ch.ctl, RA_WS_BINARY, kx, n);
  free(kx);
}

typedef struct client_bind {
  uint8_t want[64];
  bool unbound; /* the quote's report_data is not this session's */
  ra_policy_cb next;
  void *next_ud;
} client_bind;

static int client_bind_cb(const ra_quote *q, ra_verdict *vd, void *ud) {
  client_bind *b = ud;
  const uint8_t *rd = ra_quote_report_data(q);
  if (!rd || sodium_memcmp(rd, b->want, 64) != 0) {
    b->unbound = true;
    snprintf(vd->msg, sizeof vd->msg,
             "report_data is not this session's (a quote replayed, or made for another challenge or key)");
    return -1;
  }
  return b->next ? b->next(q, vd, b->next_ud) : 0;
}

/* snprintf that may cut (reasons are bounded on purpose) */
static void fmt_why(char *out, size_t cap, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void fmt_why(char *out, size_t cap, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(out, cap, fmt, ap);
  va_end(ap);
}

static void hex_short(char *out, size_t cap, const uint8_t *p, size_t n) {
  size_t o = 0;
  for (size_t i = 0; i < n && o + 3 <= cap; i++) o += (size_t)snprintf(out + o, cap - o, "%02x", p[i]);
  if (cap) out[o < cap ? o : cap - 1] = '\0';
}

/* Verifies m's clientAttestation (present). Returns 0 and fills *id, or -1
 * with `check: why` in why. */
static int client_att_verify(tunnel *t, const ra_tmsg *m, ra_client_identity *id, char *why, size_t why_len) {
  ra_tunnel_server *s = t->srv;
  const ra_tunnel_client_policy *cp = s->o.client_policy;
  const ra_str qb = m->client_kx.att_quote;
  client_bind b = {.next = cp->policy.callback, .next_ud = cp->policy.callback_ud};
  ra_tunnel_client_binding(t->key->pk, t->client_challenge, m->client_kx.sealed_key.bytes,
                           m->client_kx.sealed_key.len, b.want);
  ra_policy pol = cp->policy;
  pol.x25519_pub = NULL; /* the tunnel's server binding: not what a client quote carries */
  pol.binding_val = pol.binding_iat = NULL;
  pol.callback = client_bind_cb;
  pol.callback_ud = &b;
  ra_verify_opts vo = {.collateral = cp->collateral};
  ra_verdict *vd = malloc(sizeof *vd);
  if (!vd) {
    snprintf(why, why_len, "internal: out of memory");
    return -1;
  }
  int rc = ra_verify_quote(cp->verifier, qb.bytes, qb.len, &vo, &pol, vd);
  if (rc) {
    const char *check = "quote";
    for (int c = 0; c < RA_CHECK__COUNT; c++)
      if (vd->checks[c] == RA_CHECK_FAIL) {
        check = ra_check_name((ra_check)c);
        break;
      }
    if (b.unbound) check = "binding";
    fmt_why(why, why_len, "%s: %s", check, vd->msg);
    free(vd);
    return -1;
  }
  ra_quote q;
  if (ra_quote_parse(qb.bytes, qb.len, &q)) { /* verified above: cannot happen */
    snprintf(why, why_len, "parse: the client quote does not parse");
    free(vd);
    return -1;
  }
  memset(id, 0, sizeof *id);
  id->tee = q.tee_type;
  id->debug = vd->debug;
  id->simulated = strstr(vd->root_subject, "Simulated") != NULL;
  id->tcb_evaluated = vd->tcb_evaluated;
  snprintf(id->tcb_status, sizeof id->tcb_status, "%s", ra_tcb_status_name(vd->tcb_status));
  snprintf(id->root, sizeof id->root, "%s", vd->root_subject);
  free(vd);
  if (q.tee_type == RA_TEE_TDX) {
    memcpy(id->mrtd, q.td.mrtd, 48);
    for (int i = 0; i < 4; i++) memcpy(id->rtmr[i], q.td.rtmr[i], 48);
  } else {
    memcpy(id->mrtd, q.enclave.mr_enclave, 32);
    memcpy(id->mr_signer, q.enclave.mr_signer, 32);
  }
  if (m->client_kx.has_att_event_log) {
    ra_eventlog *log = NULL;
    ra_eventlog_verdict ev;
    ra_dstack_identity *di = malloc(sizeof *di);
    int erc = di ? ra_eventlog_parse(m->client_kx.att_event_log.ptr, m->client_kx.att_event_log.len, &log) : -ENOMEM;
    if (erc) {
      snprintf(why, why_len, "event_log: %s", erc == -ENOMEM ? "out of memory" : "not a dstack event log");
    } else if (q.tee_type != RA_TEE_TDX) {
      snprintf(why, why_len, "event_log: an event log comes with a TDX quote only");
      erc = -1;
    } else if ((erc = ra_eventlog_check(log, &q, &ev)) != 0) {
      fmt_why(why, why_len, "event_log: %s", ev.msg);
    } else if ((erc = ra_dstack_identity_from(log, &q, di)) != 0) {
      snprintf(why, why_len, "event_log: an identity event is malformed");
    } else {
#define TAKE(f)                                                                   \
  if (di->has_##f && di->f##_len <= sizeof id->f) {                               \
    id->has_##f = true;                                                           \
    memcpy(id->f, di->f, di->f##_len);                                            \
    id->f##_len = di->f##_len;                                                    \
  }
      TAKE(app_id) TAKE(compose_hash) TAKE(instance_id)
#undef TAKE
    }
    ra_eventlog_free(log);
    free(di);
    if (erc) return -1;
  }
  char a[80], w[80];
  if (cp->app_id) {
    hex_short(w, sizeof w, cp->app_id, cp->app_id_len);
    if (!id->has_app_id) {
      snprintf(why, why_len, "app_id: %s is required and the client's %s", w,
               m->client_kx.has_att_event_log ? "event log names none" : "attestation has no event log");
      return -1;
    }
    if (id->app_id_len != cp->app_id_len || memcmp(id->app_id, cp->app_id, cp->app_id_len) != 0) {
      hex_short(a, sizeof a, id->app_id, id->app_id_len);
      snprintf(why, why_len, "app_id: the client is app %s, %s is required", a, w);
      return -1;
    }
  }
  if (cp->compose_hash) {
    hex_short(w, sizeof w, cp->compose_hash, cp->compose_hash_len);
    if (!id->has_compose_hash || id->compose_hash_len != cp->compose_hash_len ||
        memcmp(id->compose_hash, cp->compose_hash, cp->compose_hash_len) != 0) {
      snprintf(why, why_len, "compose_hash: %s is required and the client's %s", w,
               id->has_compose_hash ? "differs" : "event log names none");
      return -1;
    }
  }
  return 0;
}

/* The client_kx opened: checks its attestation under the client policy.
 * Returns 0 (attested, or none presented) or -1 after closing the channel. */
static int client_att_check(tunnel *t, const ra_tmsg *m) {
  ra_tunnel_server *s = t->srv;
  if (!m->client_kx.has_attestation) {
    s->st.clients_unattested++;
    return 0;
  }
  ra_client_identity *id = malloc(sizeof *id);
  char why[240];
  if (!id) snprintf(why, sizeof why, "internal: out of memory");
  if (id && client_att_verify(t, m, id, why, sizeof why) == 0) {
    t->client_id = id;
    s->st.clients_attested++;
    return 0;
  }
  free(id);
  t->client_refused = true;
  s->st.clients_refused++;
  RA_LOG_LIMITED(RA_LOG_WARN, 10, 60000, "tunnel: client attestation refused: %s", why);
  /* a close reason is at most 123 bytes */
  char reason[124];
  fmt_why(reason, sizeof reason, "client attestation refused: %s", why); /* cut to fit */
  ra_ws_close(t->ch.ctl, 1008, reason);
  return -1;
}

static void tunnel_timer(ra_timer *tm, void *ud) {
  tunnel *t = ud;
  if (t->ch.keyed)
    drain_fire(tm, ud);
  else
    kx_timeout(tm, ud);
}

static void ctl_open(ra_ws *ws, void *ud) {
  ra_tunnel_server *s = ud;
  if (s->freeing || s->stopping) {
    s->st.tunnels_refused++;
    ra_ws_close(ws, 1001, "server shutting down");
    return;
  }
  if (ra_ws_attested(ws)) { /* reached through a tunnel: never nested */
    s->st.nested_refused++;
    ra_ws_close(ws, 1008, "no tunnel inside a tunnel");
    return;
  }
  if (s->n_keyed >= s->o.max_tunnels) {
    s->st.tunnels_refused++;
    ra_ws_close(ws, 1008, "too many tunnels"); /* 1013 would fit better; ra_ws_close refuses it */
    return;
  }
  uint8_t addr[17];
  bool has_addr = peer_addr(ws, addr);
  size_t same = 0;
  if (has_addr && s->n_unkeyed < s->o.max_unkeyed)
    for (tunnel *u = s->unkeyed; u && same < s->o.max_unkeyed_per_addr; u = u->next)
      same += memcmp(u->addr, addr, sizeof addr) == 0;
  if (s->n_unkeyed >= s->o.max_unkeyed || same >= s->o.max_unkeyed_per_addr) {
    s->st.tunnels_refused++;
    s->st.unkeyed_refused++;
    RA_LOG_LIMITED(RA_LOG_INFO, 10, 60000, "tunnel: too many channels awaiting their key exchange%s",
                   s->n_unkeyed >= s->o.max_unkeyed ? "" : " from one address");
    ra_ws_close(ws, 1008, "too many tunnels awaiting a key exchange");
    return;
  }
  tunnel *t = calloc(1, sizeof *t);
  if (t && ra_tchan_init(&t->ch, s->loop, RA_TCHAN_SERVER, 4)) {
    free(t);
    t = NULL;
  }
  if (!t) {
    ra_ws_close(ws, 1011, "out of memory");
    return;
  }
  t->srv = s;
  t->key = s->key;
  s->key->refs++;
  t->drain_code = 1008;
  t->drain_why = "envelope limit for this key reached";
  t->ch.ctl = ws;
  if (has_addr) {
    memcpy(t->addr, addr, sizeof addr);
    set_addr_text(t);
  }
  t->last_seen = t->last_msg = ra_loop_now(s->loop);
  ra_replay_init(&t->replay, s->o.max_envelopes_per_key);
  ra_timer_init(s->loop, &t->timer, tunnel_timer, t);
  ra_timer_start(&t->timer, s->o.kx_timeout_ms, 0);
  ra_timer_unref(&t->timer);
  RA_LIST_ADD(s->unkeyed, t);
  s->n_unkeyed++;
  s->st.tunnels_open++;
  s->st.tunnels_total++;
  ra_ws_set_userdata(ws, t);
  /* server_kx at once: the client must not have to ask (client_kx_ready is
   * informational) */
  if (s->o.client_policy) send_server_kx_challenge(t);
  else ra_ws_send(ws, RA_WS_BINARY, t->key->server_kx, t->key->server_kx_len);
}

/* Past max_envelopes_per_key no new envelope can be checked for replay, so
 * none is acted on: requests get a 503 whose `error` tells the client to
 * retry on a fresh tunnel (a replayed copy would only get that again),
 * tunnelled WebSockets cannot be opened, other messages are dropped. What is
 * pending finishes, for drain_timeout_ms at most; then close 1008, and the
 * client reconnects with a new key. */
static void over_limit(tunnel *t, const ra_tmsg *m) {
  ra_tunnel_server *s = t->srv;
  static const char why[] = "envelope limit for this tunnel key reached: retry on a new tunnel";
  if (m && m->type == RA_TMSG_HTTP_REQUEST) {
    s->st.requests_refused++;
    refuse_request(t, m, 503, "envelope limit for this tunnel key reached\n", why);
  } else if (m && m->type == RA_TMSG_WS_CONNECT) {
    send_event(t, m->ws_connect.connection_id, RA_TMSG_EV_ERROR, why);
  }
  if (!t->draining) {
    t->draining = true;
    RA_LOG_LIMITED(RA_LOG_INFO, 10, 60000,
                   "tunnel: envelope limit for this key reached: closing once %zu pending response(s) finish",
                   t->n_reqs);
    ra_timer_start(&t->timer, s->o.drain_timeout_ms, 0);
  }
  drain_check(t);
}

/* A tunnel on a replaced key past old_key_grace_ms: new requests get a 503
 * whose `error` says to retry on a new tunnel, new WebSockets an error; what
 * is pending finishes (drain_timeout_ms at most), then close 1012 "service
 * restart", and the client rekeys on a new tunnel. */
static const char rotated_why[] = "tunnel key rotated: retry on a new tunnel";
static void refuse_draining(tunnel *t, const ra_tmsg *m) {
  ra_tunnel_server *s = t->srv;
  if (m->type == RA_TMSG_HTTP_REQUEST) {
    s->st.requests_refused++;
    refuse_request(t, m, 503, "tunnel key rotated\n", rotated_why);
  } else if (m->type == RA_TMSG_WS_CONNECT) {
    send_event(t, m->ws_connect.connection_id, RA_TMSG_EV_ERROR, rotated_why);
  } else if (m->type == RA_TMSG_WS_MESSAGE) {
    ra_tchan_on_ws_message(&t->ch, m); /* sockets open before the drain go on until the close */
  } else if (m->type == RA_TMSG_WS_CLOSE) {
    on_ws_close(t, m);
  } else if (t->bs && m->type == RA_TMSG_HTTP_BODY) { /* streams in flight go on until the close */
    on_http_body(t, m);
  } else if (t->bs && m->type == RA_TMSG_HTTP_CREDIT) {
    on_http_credit(t, m);
  } else if (t->bs && m->type == RA_TMSG_HTTP_CANCEL) {
    on_http_cancel(t, m);
  }
}

static void age_drain(tunnel *t) {
  if (t->draining || t->drain_closed || !t->ch.ctl) return;
  t->draining = true;
  t->drain_code = 1012;
  t->drain_why = "service restart: tunnel key rotated";
  t->srv->st.tunnels_rekeyed++;
  ra_timer_start(&t->timer, t->srv->o.drain_timeout_ms, 0);
  drain_check(t);
}

static void key_retire_fire(ra_timer *tm, void *ud) {
  (void)tm;
  tkey *k = ud;
  ra_tunnel_server *s = k->srv;
  k->retired = true;
  size_t n = 0;
  for (tunnel *t = s->tunnels, *next; t; t = next) {
    next = t->next;
    if (t->key == k && !t->draining) {
      age_drain(t); /* may close at once: the teardown comes later, from the ws */
      n++;
    }
  }
  for (tunnel *t = s->unkeyed, *next; t; t = next) { /* not keyed yet on an old key: start over */
    next = t->next;
    if (t->key == k && t->ch.ctl && !t->drain_closed) {
      t->drain_closed = true;
      ra_ws_close(t->ch.ctl, 1012, "service restart: tunnel key rotated");
    }
  }
  if (n) ra_info("tunnel: %zu tunnel(s) on a replaced key: draining (close 1012 to rekey)", n);
}

static void ctl_enc(tunnel *t, const ra_tmsg *env) {
  ra_tunnel_server *s = t->srv;
  const uint8_t *plain;
  size_t plen;
  if (ra_tchan_open(&t->ch, env, &plain, &plen) != 0) {
    s->st.decrypt_failed++;
    ra_debug("tunnel: envelope does not authenticate, dropped");
    return;
  }
  int rc = ra_replay_check(&t->replay, env->enc.nonce.bytes);
  if (rc == 0 && ++s->replay_total > s->o.max_replay_entries &&
      t->replay.count >= s->o.max_replay_entries / (s->st.tunnels_open ? s->st.tunnels_open : 1))
    rc = -ENOSPC; /* the server's replay memory is spent and this tunnel holds its share */
  if (rc == -EEXIST) {
    s->st.replays++;
    RA_LOG_LIMITED(RA_LOG_INFO, 10, 60000, "tunnel: replayed envelope dropped");
    return;
  }
  if (rc && rc != -ENOSPC) {
    ra_ws_close(t->ch.ctl, 1008, "out of memory");
    return;
  }
  ra_tmsg m;
  bool ok = ra_tmsg_decode(plain, plen, &m) == 0;
  if (!ok) s->st.bad_cbor++;
  if (rc == -ENOSPC) { /* the key has carried its share */
    over_limit(t, ok ? &m : NULL);
    return;
  }
  if (!ok) return;
  if (t->draining) { /* its key was replaced and has aged out: see key_retire_fire */
    refuse_draining(t, &m);
    return;
  }
  switch (m.type) {
  case RA_TMSG_HTTP_REQUEST: on_http_request(t, &m); break;
  case RA_TMSG_WS_CONNECT: on_ws_connect(t, &m); break;
  case RA_TMSG_WS_MESSAGE: ra_tchan_on_ws_message(&t->ch, &m); break;
  case RA_TMSG_WS_CLOSE: on_ws_close(t, &m); break;
  /* §11, on a tunnel that negotiated it only */
  case RA_TMSG_HTTP_BODY: if (t->bs) on_http_body(t, &m); break;
  case RA_TMSG_HTTP_CREDIT: if (t->bs) on_http_credit(t, &m); break;
  case RA_TMSG_HTTP_CANCEL: if (t->bs) on_http_cancel(t, &m); break;
  default: break; /* not for a server: dropped */
  }
}

static void ctl_message(ra_ws *ws, ra_ws_type type, const uint8_t *data, size_t len, void *ud) {
  (void)type; /* the reference reads text and binary messages alike */
  tunnel *t = ra_ws_userdata(ws);
  if (!t) return;
  ra_tunnel_server *s = t->srv;
  /* answers to a burst of requests read at once leave in one write */
  ra_ws_cork(ws);
  t->last_seen = t->last_msg = ra_loop_now(s->loop);
  t->trimmed = false;
  ra_tmsg m;
  if (ra_tmsg_decode(data, len, &m) != 0) {
    s->st.bad_cbor++;
    return;
  }
  if (m.type == RA_TMSG_CLIENT_KX) {
    if (t->ch.keyed || t->client_refused) return; /* a second client_kx is ignored */
    if (ra_env_open_key(m.client_kx.sealed_key.bytes, m.client_kx.sealed_key.len, t->key->pk, t->key->sk,
                        t->ch.key)) {
      s->st.bad_sealed_key++;
      /* a peer can send these at will: rate-limited, and not a warning */
      RA_LOG_LIMITED(RA_LOG_INFO, 10, 60000, "tunnel: client_kx does not open, dropped");
      return;
    }
    if (s->o.client_policy && client_att_check(t, &m) != 0) {
      sodium_memzero(t->ch.key, sizeof t->ch.key);
      return; /* closing: the kx timer stays as a backstop */
    }
    ra_timer_stop(&t->timer);
    if (s->n_keyed >= s->o.max_tunnels) {
      sodium_memzero(t->ch.key, sizeof t->ch.key);
      s->st.tunnels_refused++;
      ra_ws_close(ws, 1008, "too many tunnels");
      return;
    }
    RA_LIST_DEL(s->unkeyed, t);
    s->n_unkeyed--;
    RA_LIST_ADD(s->tunnels, t);
    s->n_keyed++;
    t->counted_keyed = true;
    t->ch.keyed = true;
    s->st.keyed++;
    /* streamed bodies (§11): both announced, within the ranges */
    if (s->bs_on && m.client_kx.has_body_streams && ra_tmsg_body_streams_valid(&m.client_kx.body_streams)) {
      t->bs = true;
      t->peer = m.client_kx.body_streams;
      s->st.body_streams_negotiated++;
    }
    return;
  }
  if (!t->ch.keyed) {
    if (m.type != RA_TMSG_CLIENT_KX_READY) s->st.dropped_before_key++;
    return;
  }
  if (m.type != RA_TMSG_ENC) {
    s->st.dropped_plaintext++;
    return;
  }
  ctl_enc(t, &m);
  /* Nothing pending: the decryption buffer (and the send buffer) go back
   * to the tunnel's pool, where the next message (or response) takes one
   * without allocating, instead of each keeping its own (issue 18); the
   * pool keeps a few, trim_idle frees them once the tunnel is idle. */
  if (ra_ws_userdata(ws) == t && !t->n_reqs) {
    ra_env_buf_recycle(&t->ch.rx);
    ra_env_buf_recycle(&t->ch.tx);
  }
}

static void ctl_pong(ra_ws *ws, const uint8_t *data, size_t len, void *ud) {
  tunnel *t = ra_ws_userdata(ws);
  if (t) t->last_seen = ra_loop_now(t->srv->loop);
}

static void ctl_close(ra_ws *ws, uint16_t code, ra_str reason, void *ud) {
  tunnel *t = ra_ws_userdata(ws);
  if (!t) return;
  ra_ws_set_userdata(ws, NULL);
  t->ch.ctl = NULL;
  tunnel_teardown(t);
}

/* The control channel drained: so did every socket it carries. */
static void ctl_drain(ra_ws *ws, void *ud) {
  tunnel *t = ra_ws_userdata(ws);
  if (!t) return;
  ra_tchan_drain(&t->ch);
  /* paced responses that waited for this (treq_later); each on_drain may
   * end responses or close the channel: look again after each */
  for (;;) {
    if (!(t = ra_ws_userdata(ws)) || ra_ws_buffered(ws) > CTL_HIGH_WATER) return;
    treq *q = t->reqs;
    while (q && !q->wait_ctl) q = q->next;
    if (!q) return;
    q->wait_ctl = false;
    q->unpaced = 0;
    if (q->res) ra_res_drained(q->res);
  }
}

/* The HTTP server carrying the control channels is shutting down. Its
 * default would close every WebSocket with 1001 at once, cutting tunnelled
 * requests in flight: the tunnel drains instead (its own shutdown closes
 * each channel with 1001 once nothing is pending on it), started here if
 * the program did not start it first. */
#define CTL_DRAIN_DEFAULT_MS 10000
static void ctl_shutdown(ra_ws *ws, void *ud) {
  tunnel *t = ra_ws_userdata(ws);
  if (!t) {
    ra_ws_close(ws, 1001, "server shutting down");
    return;
  }
  if (!t->srv->stopping) ra_tunnel_server_shutdown(t->srv, CTL_DRAIN_DEFAULT_MS, NULL, NULL);
}

static const ra_ws_handlers ctl_handlers = {
  .on_open = ctl_open, .on_message = ctl_message, .on_close = ctl_close, .on_pong = ctl_pong,
  .on_drain = ctl_drain, .on_shutdown = ctl_shutdown,
};

static void stop_deadline(ra_timer *tm, void *ud) {
  (void)tm;
  ra_tunnel_server *s = ud;
  /* what is still pending is cancelled with its channel: closed (1001)
   * now; a closing handshake still unfinished a second later is cut */
  bool final = s->stop_final;
  s->stop_final = true;
  for (int pass = 0; pass < 2; pass++)
    for (tunnel *t = pass ? s->unkeyed : s->tunnels, *next; t; t = next) {
      next = t->next;
      if (!t->ch.ctl) continue;
      if (final) {
        ra_ws_terminate(t->ch.ctl); /* on_close from the loop tears it down */
      } else if (!t->stop_closed) {
        t->stop_closed = t->drain_closed = true;
        ra_ws_close(t->ch.ctl, 1001, "server shutting down"); /* on_close cancels the rest */
      }
    }
  if (!final) ra_timer_start(&s->stop_timer, 1000, 0);
}

void ra_tunnel_server_shutdown(ra_tunnel_server *s, uint64_t deadline_ms, ra_tunnel_shutdown_cb done,
                               void *ud) {
  if (!s || s->freeing) return;
  if (s->stopping) {
    /* already draining (started when the HTTP server's shutdown reached a
     * control channel): the caller still gets its callback */
    if (done && !s->stop_cb) {
      s->stop_cb = done;
      s->stop_ud = ud;
      if (s->stop_reported) ra_loop_defer(s->loop, &s->stop_later);
    }
    return;
  }
  s->stopping = true;
  s->stop_cb = done;
  s->stop_ud = ud;
  ra_defer_init(&s->stop_later, stop_report, s);
  ra_timer_init(s->loop, &s->stop_timer, stop_deadline, s);
  ra_timer_start(&s->stop_timer, deadline_ms, 0);
  /* channels without a key carry nothing: they go now */
  for (tunnel *t = s->unkeyed, *next; t; t = next) {
    next = t->next;
    if (t->ch.ctl && !t->stop_closed) {
      t->stop_closed = true;
      ra_ws_close(t->ch.ctl, 1001, "server shutting down");
    }
  }
  for (tunnel *t = s->tunnels, *next; t; t = next) {
    next = t->next;
    /* tunnelled WebSockets end now (1001), as upgraded ones do */
    while (t->ch.socks) {
      ra_tchan_sock *w = t->ch.socks;
      if (w->gone) break;
      ra_ws_close(w->ws, 1001, "server shutting down");
      if (t->ch.socks == w) break; /* not closed: leave it to the channel's close */
    }
    drain_check(t); /* closes it with 1001 if nothing is pending */
  }
  stop_check(s);
}

static void heartbeat(ra_timer *tm, void *ud) {
  ra_tunnel_server *s = ud;
  uint64_t now = ra_loop_now(s->loop);
  for (int pass = 0; pass < 2; pass++)
    for (tunnel *t = pass ? s->unkeyed : s->tunnels; t; t = t->next) {
      if (!t->ch.ctl) continue;
      if (now - t->last_seen >= s->o.heartbeat_timeout_ms) {
        s->st.heartbeat_drops++;
        ra_ws_terminate(t->ch.ctl); /* on_close (1006) from the loop tears it down */
      } else {
        ra_ws_ping(t->ch.ctl, NULL, 0);
      }
    }
}

/* Idle tunnels (issue 18: thousands held open at <= 4 KiB each): a keyed
 * tunnel with no message for TRIM_IDLE_MS and nothing pending gives back
 * the memory it keeps for reuse while busy: the channel's receive and send
 * buffers (grown to the largest envelope) and its WebSocket's staging and
 * message buffers (ra_ws_trim). The next message allocates them again;
 * busy tunnels keep them, so the hot path stays allocation-free. */
#define TRIM_IDLE_MS 5000

static void trim_idle(ra_timer *tm, void *ud) {
  ra_tunnel_server *s = ud;
  uint64_t now = ra_loop_now(s->loop);
  for (tunnel *t = s->tunnels; t; t = t->next) {
    if (t->trimmed || !t->ch.ctl || t->n_reqs || now - t->last_msg < TRIM_IDLE_MS) continue;
    ra_env_buf_free(&t->ch.rx);
    ra_env_buf_free(&t->ch.tx);
    if (t->spare) blk_destroy(t->spare);
    t->spare = NULL;
    t->reused = false;
    ra_env_pool_trim(t->ch.pool);
    ra_ws_trim(t->ch.ctl);
    t->trimmed = true;
  }
}

/* ---- the server ------------------------------------------------------------- */

static void rotate_schedule(ra_tunnel_server *s, uint64_t ms);
static void rotate_fire(ra_timer *tm, void *ud);
static void rotation_cancel(ra_tunnel_server *s);

/* A new key generation is made in three steps, so that the middle one,
 * the provider's evidence (which may block: a TDX quote through the
 * quoting service), can run on a thread of its own: key_begin (the key
 * pair), key_evidence (the provider; touches only the provider and k's
 * public key), key_finish (server_kx encoded once for the key; the key
 * joins the server's list, not yet current). */
static int key_begin(tkey **out) {
  tkey *k = calloc(1, sizeof *k);
  if (!k) return -ENOMEM;
  int rc = ra_env_keypair(k->pk, k->sk);
  if (rc) {
    ra_error("tunnel: cannot make a key pair");
    free(k);
    return rc;
  }
  *out = k;
  return 0;
}

static void key_discard(tkey *k) {
  sodium_memzero(k->sk, sizeof k->sk);
  free(k->server_kx);
  free(k);
}

static int key_evidence(ra_quote_provider *provider, const tkey *k, ra_quote_evidence *ev) {
  memset(ev, 0, sizeof *ev);
  int rc = ra_quote_provider_get(provider, k->pk, ev);
  if (rc) ra_error("tunnel: quote provider %s: %s", ra_quote_provider_name(provider), ra_strerror(rc));
  return rc;
}

/* Takes ev (cleared here in every case); on failure k is discarded. */
static int key_finish(ra_tunnel_server *s, tkey *k, ra_quote_evidence *ev) {
  ra_tmsg_server_kx_out kx = {
    .x25519_public_key = k->pk,
    .quote = ra_bytes_make(ev->quote, ev->quote_len),
    .runtime_data = ra_bytes_make(ev->runtime_data, ev->runtime_data_len),
    .vd_kind = ev->has_verifier_data ? RA_TMSG_VD_NONCE : RA_TMSG_VD_NONE,
    .vd_val = ra_bytes_make(ev->val, ev->val_len), .vd_iat = ra_bytes_make(ev->iat, ev->iat_len),
    .vd_signature = ra_bytes_make(ev->signature, ev->signature_len),
    .body_streams = s->bs_on ? &s->bs : NULL, /* §11: cached with the rest, rotations included */
  };
  if (ev->tee == RA_QUOTE_TEE_SNP) {
    /* as the reference server does for SEV-SNP quote data: runtime_data
     * null, verifier_data the nonce as a plain byte string (null without
     * one), the certificates as PEM strings in sev_snp_data */
    kx.runtime_data = ra_bytes_make(NULL, 0);
    kx.vd_kind = ev->snp_nonce ? RA_TMSG_VD_BYTES : RA_TMSG_VD_NONE;
    kx.vd_bytes = ra_bytes_make(ev->snp_nonce, ev->snp_nonce_len);
    kx.vcek_cert = ev->vcek_pem;
    kx.ask_cert = ev->ask_pem;
    kx.ark_cert = ev->ark_pem;
  }
  k->server_kx_len = ra_tmsg_encode_server_kx(NULL, 0, &kx);
  k->server_kx = malloc(k->server_kx_len);
  if (k->server_kx) ra_tmsg_encode_server_kx(k->server_kx, k->server_kx_len, &kx);
  ra_quote_evidence_clear(ev);
  if (!k->server_kx) {
    key_discard(k);
    return -ENOMEM;
  }
  k->srv = s;
  k->born = ra_loop_now(s->loop);
  ra_timer_init(s->loop, &k->retire, key_retire_fire, k);
  RA_LIST_ADD(s->keys, k);
  s->n_keys++;
  return 0;
}

/* All three steps on the calling thread: at start-up and for
 * ra_tunnel_server_rotate. */
static int key_make(ra_tunnel_server *s, ra_quote_provider *provider, tkey **out) {
  tkey *k;
  int rc = key_begin(&k);
  if (rc) return rc;
  ra_quote_evidence ev;
  rc = key_evidence(provider, k, &ev);
  if (rc) {
    key_discard(k);
    return rc;
  }
  if ((rc = key_finish(s, k, &ev))) return rc;
  *out = k;
  return 0;
}

int ra_tunnel_server_new(ra_loop *loop, ra_router *router, ra_quote_provider *provider,
                         const ra_tunnel_server_opts *opts, ra_tunnel_server **out) {
  *out = NULL;
  if (ra_env_init()) {
    ra_error("tunnel: libsodium failed to initialise");
    return -EIO;
  }
  ra_tunnel_server *s = calloc(1, sizeof *s);
  if (!s) return -ENOMEM;
  s->loop = loop;
  s->router = router;
  if (opts) s->o = *opts;
  if (!s->o.heartbeat_interval_ms) s->o.heartbeat_interval_ms = 30000;
  if (!s->o.heartbeat_timeout_ms) s->o.heartbeat_timeout_ms = 60000;
  if (!s->o.max_envelope) s->o.max_envelope = 16u << 20;
  if (!s->o.max_inflight) s->o.max_inflight = 4096;
  if (!s->o.max_tunnels) s->o.max_tunnels = 10000;
  if (!s->o.max_sockets) s->o.max_sockets = 1024;
  if (!s->o.max_headers) s->o.max_headers = 100;
  if (!s->o.max_envelopes_per_key) s->o.max_envelopes_per_key = RA_REPLAY_DEFAULT_LIMIT;
  if (!s->o.drain_timeout_ms) s->o.drain_timeout_ms = 5000;
  if (!s->o.max_replay_entries) s->o.max_replay_entries = 1u << 23;
  if (!s->o.kx_timeout_ms) s->o.kx_timeout_ms = 5000;
  if (!s->o.max_unkeyed) s->o.max_unkeyed = 1024;
  if (!s->o.max_unkeyed_per_addr) s->o.max_unkeyed_per_addr = 128;
  if (!s->o.max_response) s->o.max_response = 16u << 20;
  if (!s->o.max_buffered_per_tunnel) s->o.max_buffered_per_tunnel = 64u << 20;
  if (!s->o.max_buffered) s->o.max_buffered = 256u << 20;
  if (!s->o.key_lifetime_ms) s->o.key_lifetime_ms = 24ull * 3600 * 1000;
  if (!s->o.old_key_grace_ms) s->o.old_key_grace_ms = 3600ull * 1000;
  s->bs_on = !s->o.no_body_streams;
  s->bs.window = s->o.body_stream_window ? s->o.body_stream_window : (uint64_t)1 << 20;
  s->bs.chunk = s->o.body_stream_chunk ? s->o.body_stream_chunk : (uint64_t)256 << 10;
  if (s->bs_on && !ra_tmsg_body_streams_valid(&s->bs)) {
    ra_error("tunnel: body stream window %llu / chunk %llu out of range (PROTOCOL.md §11)",
             (unsigned long long)s->bs.window, (unsigned long long)s->bs.chunk);
    free(s);
    return -EINVAL;
  }
  s->path = strdup(s->o.path ? s->o.path : "/__ra__");
  s->o.path = NULL; /* the caller's string is not kept */
  if (!s->path) {
    free(s);
    return -ENOMEM;
  }

  s->provider = s->o.adopt_provider ? provider : NULL;
  int rc = key_make(s, provider, &s->key);
  if (rc) goto fail;
  s->key->refs = 1; /* current */

  ra_ws_opts wo = {.max_message = s->o.max_envelope, .send_high_water = CTL_HIGH_WATER};
  rc = ra_ws_route_ex(router, s->path, &ctl_handlers, s, &wo, 0);
  if (rc) {
    ra_error("tunnel: cannot register the %s route: %s", s->path, strerror(-rc));
    goto fail;
  }
  s->routed = true;
  ra_timer_init(loop, &s->heartbeat, heartbeat, s);
  ra_timer_start(&s->heartbeat, s->o.heartbeat_interval_ms, s->o.heartbeat_interval_ms);
  ra_timer_unref(&s->heartbeat);
  ra_timer_init(loop, &s->rotate_timer, rotate_fire, s);
  rotate_schedule(s, s->o.key_lifetime_ms);
  ra_timer_init(loop, &s->trim, trim_idle, s);
  ra_timer_start(&s->trim, TRIM_IDLE_MS, TRIM_IDLE_MS);
  ra_timer_unref(&s->trim);
  if (ra_quote_provider_simulated(provider))
    ra_warn("tunnel: SIMULATED attestation (provider %s): the quotes prove nothing about this machine",
            ra_quote_provider_name(provider));
  if (!ra_quote_provider_binds_key(provider))
    ra_warn("tunnel: provider %s does not bind the tunnel key into the quote: clients must skip the binding check",
            ra_quote_provider_name(provider));
  *out = s;
  return 0;
fail:
  free(s->path);
  key_put(s, s->key);
  free(s);
  return rc;
}

void ra_tunnel_server_free(ra_tunnel_server *s) {
  if (!s) return;
  s->freeing = true;
  ra_timer_stop(&s->heartbeat);
  ra_timer_stop(&s->trim);
  if (s->stopping) {
    ra_timer_stop(&s->stop_timer);
    ra_defer_cancel(s->loop, &s->stop_later);
  }
  /* no new control channel can reach s (nor an upgrade in flight finish) */
  if (s->routed) ra_router_remove(s->router, "GET", s->path);
  while (s->tunnels || s->unkeyed) {
    tunnel *t = s->tunnels ? s->tunnels : s->unkeyed;
    ra_ws *ws = t->ch.ctl;
    if (ws) {
      ra_ws_set_userdata(ws, NULL);
      ra_ws_terminate(ws);
    }
    t->ch.ctl = NULL;
    tunnel_teardown(t);
  }
  ra_timer_stop(&s->rotate_timer);
  rotation_cancel(s);
  free(s->path);
  tkey *cur = s->key;
  s->key = NULL;
  key_put(s, cur); /* the last reference: every tunnel is gone */
  ra_quote_provider_free(s->provider);
  free(s);
}

const uint8_t *ra_tunnel_server_public_key(const ra_tunnel_server *s) { return s->key->pk; }

void ra_tunnel_server_stats(const ra_tunnel_server *s, ra_tunnel_stats *st) {
  *st = s->st;
  st->key_generations = s->n_keys;
  st->key_age_ms = ra_loop_now(s->loop) - s->key->born;
}

uint64_t ra_tunnel_server_key_age_ms(const ra_tunnel_server *s) { return ra_loop_now(s->loop) - s->key->born; }

static void rotate_schedule(ra_tunnel_server *s, uint64_t ms) {
  if (!s->provider || s->o.key_lifetime_ms == RA_TUNNEL_KEY_FOREVER) return;
  ra_timer_start(&s->rotate_timer, ms, 0);
  ra_timer_unref(&s->rotate_timer);
}

static void rotate_failed(ra_tunnel_server *s, int rc) {
  s->st.rotations_failed++;
  ra_error("tunnel: key rotation failed (the current key stays): %s", ra_strerror(rc));
  /* a scheduled one is tried again in a minute (or the lifetime, if shorter) */
  rotate_schedule(s, s->o.key_lifetime_ms < 60000 ? s->o.key_lifetime_ms : 60000);
}

/* k (finished) becomes the current key; the old one retires. */
static void rotate_switch(ra_tunnel_server *s, tkey *k) {
  k->refs = 1;
  tkey *old = s->key;
  s->key = k;
  s->st.rotations++;
  if (old->refs > 1 && s->o.old_key_grace_ms != RA_TUNNEL_KEY_FOREVER) {
    old->retiring = true;
    ra_timer_start(&old->retire, s->o.old_key_grace_ms, 0);
    ra_timer_unref(&old->retire);
  }
  size_t users = old->refs - 1;
  key_put(s, old); /* wiped now unless tunnels still use it */
  ra_info("tunnel: key rotated (%zu tunnel(s) stay on the old key for %llu ms at most)", users,
          (unsigned long long)s->o.old_key_grace_ms);
  rotate_schedule(s, s->o.key_lifetime_ms);
}

int ra_tunnel_server_rotate(ra_tunnel_server *s) {
  if (!s->provider) return -ENOTSUP;
  if (s->freeing || s->stopping) return -ECANCELED;
  if (s->rotating) return -EALREADY;
  tkey *k;
  int rc = key_make(s, s->provider, &k);
  if (rc) {
    rotate_failed(s, rc);
    return rc;
  }
  rotate_switch(s, k);
  return 0;
}

/* A rotation whose evidence is being made on a thread of its own. */
struct rotation {
  ra_tunnel_server *s;
  ra_work *work;
  tkey *k;                /* its key pair; the thread reads only k->pk */
  ra_quote_provider *provider;
  ra_quote_evidence ev;
  int rc;
  ra_tunnel_rotate_cb cb;
  void *ud;
};

static void rotation_evidence(void *ud) { /* on the work's thread */
  struct rotation *r = ud;
  r->rc = key_evidence(r->provider, r->k, &r->ev);
}

static void rotation_done(ra_work *w, void *ud) {
  (void)w;
  struct rotation *r = ud;
  ra_tunnel_server *s = r->s;
  s->rotating = NULL;
  int rc = r->rc;
  if (rc == 0 && s->stopping) rc = -ECANCELED; /* shutting down: no new key now */
  if (rc == 0) rc = key_finish(s, r->k, &r->ev); /* takes ev; discards k on failure */
  else {
    ra_quote_evidence_clear(&r->ev);
    key_discard(r->k);
  }
  if (rc == 0) rotate_switch(s, r->k);
  else if (rc != -ECANCELED) rotate_failed(s, rc);
  ra_tunnel_rotate_cb cb = r->cb;
  void *cud = r->ud;
  free(r);
  if (cb) cb(s, rc, cud);
}

int ra_tunnel_server_rotate_start(ra_tunnel_server *s, ra_tunnel_rotate_cb cb, void *ud) {
  if (!s->provider) return -ENOTSUP;
  if (s->freeing || s->stopping) return -ECANCELED;
  if (s->rotating) return -EALREADY;
  struct rotation *r = calloc(1, sizeof *r);
  if (!r) return -ENOMEM;
  *r = (struct rotation){.s = s, .provider = s->provider, .cb = cb, .ud = ud};
  int rc = key_begin(&r->k);
  if (rc == 0 && (rc = ra_work_start(s->loop, rotation_evidence, rotation_done, r, &r->work)) != 0)
    key_discard(r->k);
  if (rc) {
    free(r);
    return rc;
  }
  s->rotating = r;
  ra_timer_stop(&s->rotate_timer); /* rotation_done schedules the next */
  return 0;
}

/* ra_tunnel_server_free: the provider is the server's; its thread must be
 * done with it first. */
static void rotation_cancel(ra_tunnel_server *s) {
  struct rotation *r = s->rotating;
  if (!r) return;
  ra_work_cancel(r->work);
  ra_quote_evidence_clear(&r->ev);
  key_discard(r->k);
  free(r);
  s->rotating = NULL;
}

static void rotate_fire(ra_timer *tm, void *ud) {
  (void)tm;
  ra_tunnel_server *s = ud;
  /* the provider off the loop; logs and reschedules when done */
  int rc = ra_tunnel_server_rotate_start(s, NULL, NULL);
  if (rc && rc != -EALREADY && rc != -ECANCELED) rotate_failed(s, rc);
}

int ra_tunnel_server_set_key_lifetime(ra_tunnel_server *s, uint64_t lifetime_ms, uint64_t grace_ms) {
  if (!s->provider) return -ENOTSUP;
  s->o.key_lifetime_ms = lifetime_ms ? lifetime_ms : RA_TUNNEL_KEY_FOREVER;
  if (grace_ms) s->o.old_key_grace_ms = grace_ms;
  ra_timer_stop(&s->rotate_timer);
  rotate_schedule(s, s->o.key_lifetime_ms);
  return 0;
}
