/* http/conn.c: one HTTP/1.1 connection: llhttp parsing, pipelining with
 * in-order responses, limits and timeouts, the response sink.
 *
 * Exchanges (request + response) form a queue in request order. Only the
 * head of the queue writes to the connection; a later response that is
 * produced early is held in its exchange's `out` buffer until every
 * response before it has ended. The parser is paused after every message
 * so that handlers run outside llhttp callbacks; parsing stops (and reading
 * pauses) while too many requests are outstanding, while an upgrade request
 * is answered, and for good once the connection is to close.
 * A request with a body to a RA_ROUTE_STREAM_BODY route is dispatched at
 * the end of its head instead; llhttp pauses after each body piece so that
 * the piece reaches the handler outside llhttp, and parsing (and reading)
 * stops while the handler takes none (see "streamed request bodies").
 *
 * Memory: an idle connection is this struct and nothing else. Exchanges
 * come from a per-server pool and go back to it once answered.
 */
#include "raloop/http/conn_internal.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <errno.h>
#include <llhttp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "raloop/http/request_internal.h"
#include "raloop/http/response_internal.h"
#include "raloop/http/router_internal.h"
#include "raloop/http/token.h"

/* Where the parser is: between requests, in a head, in a body (header
 * callbacks there are trailers: counted, not kept). */
typedef enum { PH_IDLE, PH_HEAD, PH_BODY } read_phase;
/* The raw-byte check of a head (what llhttp lets through): where in the
 * head the last byte scanned was. */
typedef enum {
  HS_START, /* before the request line (empty lines allowed) */
  HS_LINE,  /* in the request line */
  HS_LINE_SP, /* in it, right after a SP */
  HS_FIELD_START, /* at the start of a field line (or of the empty line) */
  HS_FIELD, /* in a field line */
} head_scan;

/* A chunk-size line (RFC 9112 7.1), read here rather than by llhttp 8,
 * which refuses valid extensions (BWS around ';' and '=', a valueless one
 * after a valued one, quoted-pairs): the size digits go to llhttp, the
 * extensions are checked against the grammar and skipped (they carry
 * nothing we use), and llhttp sees "SIZE\r\n". */
typedef enum {
  CX_OFF,      /* not at a chunk-size line: llhttp reads everything */
  CX_SIZE,     /* in the hex digits */
  CX_PRE,      /* BWS before ';' (or the CR) */
  CX_NAME0,    /* after ';': BWS, then the name */
  CX_NAME,     /* in the name */
  CX_POSTNAME, /* BWS after the name */
  CX_VAL0,     /* after '=': BWS, then a token or a quoted-string */
  CX_VALTOK,   /* in a token value */
  CX_QS,       /* in a quoted-string */
  CX_QP,       /* after a backslash in it */
} chunk_line;
#define MAX_CHUNK_EXT 4096 /* extension bytes per chunk line: 400 past it */

/* A request body on its way to a RA_ROUTE_STREAM_BODY handler (request.h):
 * STREAM: each piece llhttp reads goes to the handler (ra_req_body_deliver)
 * while it wants pieces; otherwise parsing stops and the socket is not read
 * (what was read is held, bounded) until its kick. DISCARD: the handler
 * ended its response before the body's end: the rest is read and dropped,
 * at most DISCARD_MAX bytes, else the connection closes. */
typedef enum { SB_NONE, SB_STREAM, SB_DISCARD } stream_body;
#define DISCARD_MAX ((uint64_t)1 << 20)

/* Which deadline the connection's timer stands for. */
enum { T_NONE, T_KEEPALIVE, T_HEADER, T_BODY };

/* The connection's life. CLOSING: no new request is read; the dispatched
 * ones get their answers (the last says "Connection: close"), then the
 * close. CLOSED: the I/O was told to close (or is gone): nothing more is
 * written. Only ever moves forward. */
typedef enum { LIFE_OPEN, LIFE_CLOSING, LIFE_CLOSED } conn_life;

/* An exchange's progress: its request being received, handed to the
 * router (its response is being made), its response ended. */
typedef enum { EX_RECEIVING, EX_HANDLING, EX_ENDED } ex_stage;

/* An upgrade request (RFC 9110 7.8): answered with 101 (ACCEPTED, the
 * stream is handed over from the loop), then HANDED_OVER. */
typedef enum { UP_NONE, UP_REQUESTED, UP_ACCEPTED, UP_HANDED_OVER } ex_upgrade;

/* How the response body is delimited, decided with its head. */
typedef enum {
  BODY_NONE,    /* 1xx, 204, 304: no body whatever the handler sends */
  BODY_LENGTH,  /* Content-Length: clen */
  BODY_CHUNKED, /* HTTP/1.1 without a length */
  BODY_TO_CLOSE /* HTTP/1.0 without a length: the close ends it */
} body_framing;

struct ra_http_ex {
  ra_req req;
  ra_res res;
  ra_http_conn *conn; /* NULL once the connection is gone or ex was popped */
  ra_http_server *srv;
  ra_http_ex *next;
  ra_buf out;         /* produced while not at the head of the queue */
  uint64_t start_us;
  uint64_t body_bytes;  /* request body received */
  uint64_t sent;        /* response body bytes sent */
  int64_t clen;         /* response Content-Length, -1 */
  int status;
  ex_stage stage;
  ex_upgrade upgrade;
  body_framing framing;
  bool res_live;   /* the ra_res is held by the handler: ex_release frees */
  bool popped;     /* off the queue, waiting for ex_release */
  bool keep_alive; /* the request allows the connection to stay open */
  bool close_after; /* the response decided: close after it */
  bool expect_100;  /* streamed body: "Expect: 100-continue" not answered yet */
  bool routed;      /* route: looked up at the end of a head with a body */
  ra_route_lookup route;
  ra_upgrade_cb up_cb;
  void *up_ud;
};

struct ra_http_conn {
  llhttp_t parser;
  ra_http_server *srv;
  const ra_http_io_ops *io_ops;
  void *io;
  ra_http_conn *prev, *next;
  ra_http_ex *head, *tail; /* queue; tail may be `cur` */
  ra_http_ex *cur;         /* being parsed */
  ra_http_ex *ready;       /* message complete, to dispatch */
  char peer[46];           /* ra_http_conn_set_peer */
  uint8_t peer_len;
  ra_timer timer;
  uint64_t deadline;       /* loop ms; 0: none */
  uint64_t body_due;       /* loop ms: the whole body by then */
  uint64_t timer_due;
  ra_defer defer;
  ra_buf pending_in;       /* read but not parsed while parsing is stopped */
  uint32_t nqueued;        /* dispatched, not yet written out */
  uint32_t hdr_bytes, line_bytes, raw_head;
  uint16_t err_status;
  read_phase phase;
  conn_life life;
  uint8_t timer_kind;
  bool hstate_value;       /* last header callback was a value */
  bool in_feed;            /* inside ra_http_conn_feed or resume */
  bool stopped;            /* parsing held: input is stashed in pending_in */
  bool reading_off;        /* the I/O was told to stop reading */
  bool head_corked;        /* a head is held in the cork until its body */
  bool upgrade_wait;       /* an upgrade request is being answered */
  /* work for the next defer_cb */
  bool want_resume, want_drain;
  bool hc_paused;          /* llhttp paused at the end of a header section */
  bool peer_eof;           /* the client sends nothing more */
  uint8_t hscan;           /* head_scan */
  uint8_t cline;           /* chunk_line */
  bool last_chunk;         /* the size-0 chunk was read: no line follows */
  uint16_t cext_len;       /* extension bytes on this chunk line */
  /* The streamed request body (stream_body). sb: its exchange in STREAM
   * mode (the tail of the queue), NULL otherwise. */
  uint8_t sb_mode;
  bool sb_dispatch;        /* its head is complete: dispatch from parse() */
  bool sb_last_owed;       /* its message is complete: the last call is owed */
  ra_http_ex *sb;
  const uint8_t *piece;    /* a piece llhttp read (into the bytes parsed) */
  size_t piece_len;
  uint64_t discarded;      /* DISCARD: body bytes dropped so far */
  uint8_t discard_end;     /* DISCARD ended: 1 keep-alive, 2 close */
  bool exec_owed;          /* parse() owes llhttp a run with no bytes */
  bool continue_owed;      /* a buffered body's 100 Continue, after the head checks */
};

/* ---- small helpers -------------------------------------------------------- */

static uint64_t now_us(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

static void set_reading(ra_http_conn *c, bool on) {
  if (c->reading_off == !on) return;
  c->reading_off = !on;
  c->io_ops->set_reading(c->io, on);
}

static void schedule(ra_http_conn *c) { ra_loop_defer(c->srv->loop, &c->defer); }

static int io_write(ra_http_conn *c, const struct iovec *iov, int n) {
  ra_http_server *srv = c->srv;
  if (c->life == LIFE_CLOSED) return -EPIPE;
  if (srv->cork_owner == c) {
    for (int i = 0; i < n; i++) {
      int rc = ra_buf_append(&srv->cork, iov[i].iov_base, iov[i].iov_len);
      if (rc) return rc;
    }
    if (srv->cork.len < 65536) return 0;
    /* Large: hand it over now rather than copy it twice. */
    struct iovec v = {ra_buf_ptr(&srv->cork), srv->cork.len};
    int rc = c->io_ops->writev(c->io, &v, 1);
    ra_buf_reset(&srv->cork);
    return rc;
  }
  return c->io_ops->writev(c->io, iov, n);
}

static bool cork_begin(ra_http_conn *c) {
  if (c->srv->cork_owner) return false;
  c->srv->cork_owner = c;
  return true;
}

static void cork_end(ra_http_conn *c) {
  ra_http_server *srv = c->srv;
  if (srv->cork_owner != c) return;
  srv->cork_owner = NULL;
  if (srv->cork.len && c->life != LIFE_CLOSED) {
    struct iovec v = {ra_buf_ptr(&srv->cork), srv->cork.len};
    c->io_ops->writev(c->io, &v, 1);
    /* A streaming head saw these bytes as pending and may be waiting for
     * on_drain; if the I/O took them all, it will never report a drain for
     * them, so the wake-up comes from here. */
    ra_http_ex *h = c->head;
    if (h && h->res_live && h->stage != EX_ENDED && h->res.on_drain &&
        (!c->io_ops->queued || c->io_ops->queued(c->io) == 0)) {
      c->want_drain = true;
      schedule(c);
    }
  }
  if (srv->cork.cap > 256 * 1024) ra_buf_free(&srv->cork); else ra_buf_reset(&srv->cork);
}

/* Output of an exchange: straight out at the head of the queue, held
 * otherwise. */
static int ex_writev(ra_http_ex *ex, const struct iovec *iov, int n) {
  ra_http_conn *c = ex->conn;
  if (!c) return -ECANCELED;
  if (c->head == ex) return io_write(c, iov, n);
  for (int i = 0; i < n; i++) {
    int rc = ra_buf_append(&ex->out, iov[i].iov_base, iov[i].iov_len);
    if (rc) return rc;
  }
  return 0;
}

static int ex_write(ra_http_ex *ex, const void *p, size_t n) {
  struct iovec v = {(void *)p, n};
  return ex_writev(ex, &v, 1);
}

/* Loop time ms from now, saturated: a huge limit means "never", not a
 * deadline wrapped into the past. */
static uint64_t after_ms(const ra_http_conn *c, uint64_t ms) {
  uint64_t now = ra_loop_now(c->srv->loop);
  return ms > UINT64_MAX - now ? UINT64_MAX : now + ms;
}

static void set_deadline(ra_http_conn *c, int kind, uint64_t ms) {
  c->timer_kind = (uint8_t)kind;
  c->deadline = after_ms(c, ms);
  /* Lazy: only (re)arm when the new deadline is earlier than the armed one;
   * the callback re-arms for a later one. Keeps the heap out of the hot path. */
  if (!ra_timer_active(&c->timer) || c->timer_due > c->deadline) {
    ra_timer_start(&c->timer, ms, 0);
    c->timer_due = c->deadline;
  }
}

static void clear_deadline(ra_http_conn *c) {
  c->deadline = 0;
  c->timer_kind = T_NONE;
}

/* ---- exchanges --------------------------------------------------------------- */

static ra_http_ex *ex_new(ra_http_conn *c) {
  ra_http_server *srv = c->srv;
  ra_http_ex *ex = srv->pool;
  if (ex) {
    srv->pool = ex->next;
    srv->npool--;
  } else {
    ex = calloc(1, sizeof *ex);
    if (!ex) return NULL;
    ra_req_init(&ex->req);
  }
  ex->conn = c;
  ex->srv = srv;
  ra_req_set_peer(&ex->req, ra_str_make(c->peer, c->peer_len));
  ex->next = NULL;
  ex->start_us = srv->access_log ? now_us() : 0;
  ex->body_bytes = ex->sent = 0;
  ex->clen = -1;
  ex->status = 0;
  ex->stage = EX_RECEIVING;
  ex->upgrade = UP_NONE;
  ex->framing = BODY_TO_CLOSE; /* until a head says otherwise */
  ex->res_live = ex->popped = false;
  ex->keep_alive = true;
  ex->close_after = false;
  ex->expect_100 = false;
  ex->routed = false;
  ex->up_cb = NULL;
  ex->up_ud = NULL;
  if (c->tail) c->tail->next = ex; else c->head = ex;
  c->tail = ex;
  return ex;
}

static void ex_destroy(ra_http_ex *ex) {
  ra_req_cleanup(&ex->req);
  ra_res_cleanup(&ex->res);
  ra_buf_free(&ex->out);
  free(ex);
}

/* Back to the pool (bounded) or to malloc. */
static void ex_recycle(ra_http_server *srv, ra_http_ex *ex) {
  if (srv->npool >= 256) {
    ex_destroy(ex);
    return;
  }
  ra_req_reset(&ex->req);
  ra_res_reset(&ex->res);
  if (ex->out.cap > 4096) ra_buf_free(&ex->out); else ra_buf_reset(&ex->out);
  ex->next = srv->pool;
  srv->pool = ex;
  srv->npool++;
}

static void ex_release(ra_res *res, void *ud) {
  ra_http_ex *ex = ud;
  (void)res;
  ex->res_live = false;
  /* Popped: released right after its end, the server is alive. Orphaned
   * by a dead connection: the server may be gone, plain free. */
  if (ex->popped) ex_recycle(ex->srv, ex);
  else if (!ex->conn) ex_destroy(ex);
}

/* Takes ex off the queue head; frees it unless its response object is
 * still held (then ex_release does). */
static void ex_pop(ra_http_conn *c, ra_http_ex *ex) {
  c->head = ex->next;
  if (!c->head) c->tail = NULL;
  ex->next = NULL;
  if (ex->stage != EX_RECEIVING) c->nqueued--;
  if (ex->upgrade != UP_NONE) c->upgrade_wait = false;
  ex->conn = NULL;
  if (ex->res_live) ex->popped = true;
  else ex_recycle(c->srv, ex);
}

/* ---- closing ------------------------------------------------------------------ */

static void start_closing(ra_http_conn *c) {
  if (c->life == LIFE_OPEN) c->life = LIFE_CLOSING;
}

static bool is_closing(const ra_http_conn *c) { return c->life != LIFE_OPEN; }

static void request_close(ra_http_conn *c) {
  if (c->life == LIFE_CLOSED) return;
  if (c->srv->cork_owner == c) cork_end(c);
  c->life = LIFE_CLOSED;
  clear_deadline(c);
  c->io_ops->close(c->io);
}

static void conn_advance(ra_http_conn *c);
static void eof_check(ra_http_conn *c);
static void stop_parsing(ra_http_conn *c);
static void stop_requests(ra_http_conn *c);

/* No request after the current ones is read (what was read of one is
 * dropped): the connection closes once they are answered. */
static void close_after_answers(ra_http_conn *c) {
  start_closing(c);
  stop_parsing(c);
  ra_buf_free(&c->pending_in);
}

/* No streamed body any more (its exchange is done with it, dropped, or
 * failed): no exchange, no piece owed. */
static void sb_reset(ra_http_conn *c) {
  c->sb = NULL;
  c->sb_mode = SB_NONE;
  c->sb_dispatch = false;
  c->sb_last_owed = false;
  c->piece_len = 0;
}

/* Drops everything queued behind `after` (their answers will never be
 * sent: the connection closes before them). */
static void drop_after(ra_http_conn *c, ra_http_ex *after) {
  ra_http_ex *ex = after ? after->next : c->head;
  if (after) after->next = NULL;
  c->tail = after;
  if (!after) c->head = NULL;
  while (ex) {
    ra_http_ex *next = ex->next;
    ex->next = NULL;
    /* Its request was still being read: nothing more is parsed. */
    if (ex == c->cur) {
      c->cur = NULL;
      stop_parsing(c);
    }
    if (ex == c->ready) c->ready = NULL;
    if (ex == c->sb) sb_reset(c);
    if (ex->stage != EX_RECEIVING) c->nqueued--;
    ex->conn = NULL;
    /* Answered with 101 but never handed over: the upgrade callback still
     * gets its one call, without a stream, so the layer above can free what
     * it prepared for the new protocol. */
    ra_upgrade_cb up_cb = ex->upgrade == UP_ACCEPTED ? ex->up_cb : NULL;
    void *up_ud = ex->up_ud;
    if (ex->res_live) ra_res_cancel(&ex->res); /* its release frees it */
    else ex_destroy(ex);
    if (up_cb) up_cb(NULL, NULL, 0, NULL, up_ud);
    ex = next;
  }
}

/* ---- streamed request bodies ------------------------------------------------------ */

/* "100 Continue" for a streamed body, sent when its handler first wants the
 * body (a handler that answers without reading gets no 100) and only
 * before its own answer's head. */
static void send_continue(ra_http_conn *c, ra_http_ex *ex) {
  static const char cont[] = "HTTP/1.1 100 Continue\r\n\r\n";
  ex_write(ex, cont, sizeof cont - 1);
  if (c->head == ex && c->srv->cork_owner == c) {
    /* The client waits for it before sending the body: send it now. */
    cork_end(c);
    cork_begin(c);
  }
}

static void body_continue(ra_http_conn *c, ra_http_ex *ex) {
  if (!ex->expect_100) return;
  ex->expect_100 = false;
  if (ex->res.state == RA_RES_BUILDING && !ex->res.cancelled) send_continue(c, ex);
}

/* The handler takes no piece now (no callback yet, or paused): parsing
 * stops, the socket is not read, and the idle timeout is off (a paused
 * handler is the server's choice, not the client's slowness). */
static void body_hold(ra_http_conn *c) {
  if (c->timer_kind == T_BODY) clear_deadline(c);
  if (!c->stopped) stop_parsing(c);
}

/* The handler wants pieces: the idle timeout runs between body bytes. */
static void body_flowing(ra_http_conn *c, ra_http_ex *ex) {
  body_continue(c, ex);
  if (!c->sb_last_owed && c->timer_kind != T_BODY) set_deadline(c, T_BODY, c->srv->lim.body_timeout_ms);
}

/* The message is complete and the handler wants its last call: what
 * dispatch() does for a buffered request happens now (close after it, or
 * stop at the pipelining limit), then the call, which may end anything. */
static void body_last(ra_http_conn *c) {
  ra_http_ex *ex = c->sb;
  sb_reset(c);
  if (!ex->keep_alive) {
    close_after_answers(c);
  } else if (c->nqueued >= c->srv->lim.max_pipelined) {
    stop_parsing(c);
  }
  ra_req_body_deliver(&ex->req, NULL, 0, true);
}

/* Before parsing on: deliver what is owed, or hold while the handler takes
 * nothing. Returns false when parsing must stop here. */
static bool body_ready(ra_http_conn *c) {
  while (c->sb_mode == SB_STREAM) {
    ra_http_ex *ex = c->sb;
    if (!ra_req_body_wants(&ex->req)) {
      body_hold(c);
      return false;
    }
    body_flowing(c, ex);
    if (!c->sb_last_owed) return true;
    body_last(c);
    if (c->life == LIFE_CLOSED) return false;
  }
  return true;
}

/* ra_req_body_ops.kick: what the handler wants may have changed; the
 * answer comes from the loop (never inside ra_req_on_body / _pause). */
static void body_kick(void *t) {
  ra_http_ex *ex = t;
  ra_http_conn *c = ex->conn;
  if (!c || c->sb != ex || c->life == LIFE_CLOSED) return;
  c->want_resume = true;
  schedule(c);
}

static const ra_req_body_ops conn_body_ops = {.kick = body_kick};

/* The body cannot complete (malformed, idle timeout, the client stopped
 * sending, shutdown): a streamed one's response is cancelled (on_cancel
 * runs, no more body calls), nothing more is read, the connection closes
 * after the answers before it. */
static void body_fail(ra_http_conn *c) {
  ra_http_ex *ex = c->sb_mode == SB_STREAM ? c->sb : NULL;
  sb_reset(c);
  c->cur = NULL;
  stop_requests(c);
  if (ex) {
    ra_http_ex *prev = NULL;
    for (ra_http_ex *e = c->head; e && e != ex; e = e->next) prev = e;
    drop_after(c, prev);
  }
  if (!c->head) request_close(c);
}

/* The handler ended its response before its body's last call. A body
 * complete already: go on with the next request. Else the rest is read and
 * dropped when it is known to be small (or, chunked, until DISCARD_MAX);
 * otherwise, or when the answer closes the connection anyway, the
 * connection closes after the answer. */
static void body_abandon(ra_http_conn *c, ra_http_ex *ex) {
  bool complete = c->sb_last_owed;
  sb_reset(c);
  if (complete) {
    if (!ex->keep_alive) close_after_answers(c); /* as body_last would have */
  } else {
    c->cur = NULL; /* ex may be recycled once ended: the parser forgets it */
    bool chunked = (c->parser.flags & F_CHUNKED) != 0;
    if (ex->close_after || (!chunked && c->parser.content_length > DISCARD_MAX)) {
      ex->close_after = true;
      c->phase = PH_IDLE;
      close_after_answers(c);
      clear_deadline(c);
      return;
    }
    c->sb_mode = SB_DISCARD;
    c->discarded = 0;
    if (c->timer_kind != T_BODY) set_deadline(c, T_BODY, c->srv->lim.body_timeout_ms);
  }
  if (c->stopped && !is_closing(c)) {
    c->want_resume = true;
    if (!c->in_feed) schedule(c);
  }
}

/* ---- the response sink ------------------------------------------------------------ */

#define PUT_STR(p, len, s, n) (memcpy((p) + (len), (s), (n)), (len) += (n))
#define PUT_LIT(p, len, lit) PUT_STR(p, len, lit, sizeof(lit) - 1)

static size_t fmt_u64(char *out, uint64_t v) {
  char tmp[24];
  size_t n = 0;
  do {
    tmp[n++] = (char)('0' + v % 10);
    v /= 10;
  } while (v);
  for (size_t i = 0; i < n; i++) out[i] = tmp[n - 1 - i];
  return n;
}

/* name is a literal: its length is known here, not measured per header. */
#define hdr_is(n, name) ra_str_eq_nocase((n), RA_STR(name))

/* HTTP/1.0 has no chunks: without a length, the close ends the body. */
static body_framing body_framing_for(bool no_body, int64_t clen, int http_version) {
  if (no_body) return BODY_NONE;
  if (clen >= 0) return BODY_LENGTH;
  return http_version >= 11 ? BODY_CHUNKED : BODY_TO_CLOSE;
}

static int sink_head(void *sink, int status, const ra_header *h, size_t n, int64_t clen) {
  ra_http_ex *ex = sink;
  ra_http_conn *c = ex->conn;
  if (!c) return -ECANCELED;
  ra_http_server *srv = c->srv;
  ex->status = status;
  bool no_body = status < 200 || status == 204 || status == 304;
  /* Closing (error, shutdown, a later "Connection: close"): only the last
   * answer in the queue says so; the ones before it are still complete
   * keep-alive answers. */
  bool keep = ex->keep_alive && !((is_closing(c) || srv->shutting_down) && ex->next == NULL);
  if (ex->expect_100 && c->sb == ex) {
    /* A streamed body's client waits for 100 Continue: a handler taking the
     * body gets it sent first; one answering without the body closes the
     * connection, so that the client need not send it (RFC 9110 10.1.1). */
    if (ra_req_body_wants(&ex->req)) send_continue(c, ex);
    else keep = false;
    ex->expect_100 = false;
  }
  bool has_server = false, has_date = false;
  for (size_t i = 0; i < n; i++) {
    if (hdr_is(h[i].name, "connection") && ra_str_eq_nocase(h[i].value, RA_STR("close"))) keep = false;
    else if (hdr_is(h[i].name, "server")) has_server = true;
    else if (hdr_is(h[i].name, "date")) has_date = true;
  }
  ex->clen = no_body ? -1 : clen;
  ex->framing = body_framing_for(no_body, clen, ex->req.http_version);
  if (ex->framing == BODY_TO_CLOSE) keep = false;
  ex->close_after = !keep;

  char small[1024];
  ra_buf big = {0};
  char *p = small;
  size_t cap = sizeof small, len = 0;
  size_t need = 256 + strlen(srv->server_name);
  for (size_t i = 0; i < n; i++) need += h[i].name.len + h[i].value.len + 4;
  if (need > cap) {
    if (ra_buf_reserve(&big, need)) return -ENOMEM;
    p = (char *)big.data;
    cap = need;
  }
  /* Hand-formatted (no printf): this runs once per response. */
  const char *reason = ra_http_status_text(status);
  PUT_LIT(p, len, "HTTP/1.1 ");
  len += fmt_u64(p + len, (uint64_t)status);
  p[len++] = ' ';
  PUT_STR(p, len, reason, strlen(reason));
  PUT_LIT(p, len, "\r\n");
  if (!has_server && srv->server_name[0]) {
    PUT_LIT(p, len, "Server: ");
    PUT_STR(p, len, srv->server_name, strlen(srv->server_name));
    PUT_LIT(p, len, "\r\n");
  }
  if (!has_date) {
    const char *date = ra_http_date(srv->loop);
    PUT_LIT(p, len, "Date: ");
    PUT_STR(p, len, date, strlen(date));
    PUT_LIT(p, len, "\r\n");
  }
  if (ex->framing == BODY_LENGTH) {
    PUT_LIT(p, len, "Content-Length: ");
    len += fmt_u64(p + len, (uint64_t)clen);
    PUT_LIT(p, len, "\r\n");
  } else if (ex->framing == BODY_CHUNKED) {
    PUT_LIT(p, len, "Transfer-Encoding: chunked\r\n");
  }
  if (!keep) PUT_LIT(p, len, "Connection: close\r\n");
  else if (ex->req.http_version == 10) PUT_LIT(p, len, "Connection: keep-alive\r\n");
  for (size_t i = 0; i < n; i++) {
    /* Framing is ours: a handler's own Content-Length or Transfer-Encoding
     * could desynchronise the connection. */
    if (hdr_is(h[i].name, "content-length") || hdr_is(h[i].name, "transfer-encoding") ||
        hdr_is(h[i].name, "connection"))
      continue;
    memcpy(p + len, h[i].name.ptr, h[i].name.len);
    len += h[i].name.len;
    p[len++] = ':';
    p[len++] = ' ';
    memcpy(p + len, h[i].value.ptr, h[i].value.len);
    len += h[i].value.len;
    p[len++] = '\r';
    p[len++] = '\n';
  }
  p[len++] = '\r';
  p[len++] = '\n';
  /* Outside a read, hold the head until the first body bytes or the end:
   * one write per response instead of two or three. */
  if (c->head == ex && !c->in_feed && cork_begin(c)) {
    c->head_corked = true;
    schedule(c);
  }
  int rc = ex_write(ex, p, len);
  ra_buf_free(&big);
  return rc;
}

static void uncork_after_op(ra_http_conn *c) {
  if (c->head_corked) {
    c->head_corked = false;
    cork_end(c);
  }
}

static int sink_body(void *sink, const void *data, size_t len) {
  ra_http_ex *ex = sink;
  ra_http_conn *c = ex->conn;
  if (!c) return -ECANCELED;
  if (ex->framing == BODY_NONE || ex->res.is_head || len == 0) return 0;
  if (ex->clen >= 0 && ex->sent + len > (uint64_t)ex->clen) return -EMSGSIZE;
  ex->sent += len;
  int rc;
  if (ex->framing == BODY_CHUNKED) {
    char hex[24];
    int hn = snprintf(hex, sizeof hex, "%zx\r\n", len);
    struct iovec v[3] = {{hex, (size_t)hn}, {(void *)data, len}, {"\r\n", 2}};
    rc = ex_writev(ex, v, 3);
  } else {
    rc = ex_write(ex, data, len);
  }
  if (c->head == ex) uncork_after_op(c);
  return rc;
}

static int sink_end(void *sink) {
  ra_http_ex *ex = sink;
  ra_http_conn *c = ex->conn;
  if (!c) return -ECANCELED;
  int rc = 0;
  if (ex->res.aborted) ex->close_after = true; /* ra_res_abort: no last chunk */
  else if (ex->framing == BODY_CHUNKED && !ex->res.is_head) rc = ex_write(ex, "0\r\n\r\n", 5);
  /* A body shorter than announced: the peer cannot find the next response. */
  if (ex->clen >= 0 && !ex->res.is_head && ex->sent != (uint64_t)ex->clen) ex->close_after = true;
  ex->stage = EX_ENDED;
  if (c->sb == ex) body_abandon(c, ex);
  if (c->srv->access_log) {
    uint64_t us = now_us() - ex->start_us;
    c->srv->access_log(&ex->req, ex->status, us, c->srv->access_log_ud);
  }
  if (c->head == ex) {
    uncork_after_op(c);
    conn_advance(c);
  }
  return rc;
}

static int sink_upgrade(void *sink, int status, const ra_header *h, size_t n, ra_upgrade_cb cb,
                        void *ud) {
  ra_http_ex *ex = sink;
  ra_http_conn *c = ex->conn;
  if (!c) return -ECANCELED;
  if (!c->io_ops->detach) return -ENOTSUP;
  if (ex->upgrade != UP_REQUESTED || is_closing(c)) return -EINVAL;
  ra_buf b = {0};
  int rc = ra_buf_printf(&b, "HTTP/1.1 %d %s\r\n", status, ra_http_status_text(status));
  for (size_t i = 0; i < n && rc == 0; i++) {
    if (hdr_is(h[i].name, "content-length") || hdr_is(h[i].name, "transfer-encoding")) continue;
    rc = ra_buf_printf(&b, "%.*s: %.*s\r\n", (int)h[i].name.len, h[i].name.ptr, (int)h[i].value.len,
                       h[i].value.ptr);
  }
  if (rc == 0) rc = ra_buf_append(&b, "\r\n", 2);
  if (rc == 0) rc = ex_write(ex, ra_buf_ptr(&b), b.len);
  ra_buf_free(&b);
  if (rc) return rc;
  ex->status = status;
  ex->stage = EX_ENDED;
  ex->upgrade = UP_ACCEPTED;
  ex->up_cb = cb;
  ex->up_ud = ud;
  if (c->srv->access_log)
    c->srv->access_log(&ex->req, status, now_us() - ex->start_us, c->srv->access_log_ud);
  /* The hand-over runs from the loop, after ra_res_upgrade returned. */
  if (c->head == ex) schedule(c);
  return 0;
}

static size_t sink_pending(void *sink) {
  ra_http_ex *ex = sink;
  ra_http_conn *c = ex->conn;
  if (!c) return 0;
  if (c->head != ex) return ex->out.len;
  size_t n = c->io_ops->queued ? c->io_ops->queued(c->io) : 0;
  if (c->srv->cork_owner == c) n += c->srv->cork.len;
  return n;
}

static const ra_res_sink_ops conn_sink_ops = {
    .head = sink_head,
    .body = sink_body,
    .end = sink_end,
    .upgrade = sink_upgrade,
    .pending = sink_pending,
};

/* ---- dispatch and queue ------------------------------------------------------------ */

static void start_response(ra_http_conn *c, ra_http_ex *ex) {
  ex->stage = EX_HANDLING;
  c->nqueued++;
  ra_res_init(&ex->res, c->srv->loop, &ex->req, &conn_sink_ops, ex, ex_release, ex);
  ex->res_live = true;
}

static void stop_parsing(ra_http_conn *c) {
  c->stopped = true;
  set_reading(c, false);
}

/* Nothing more is read: the request being received (never dispatched) is
 * dropped, with its deadline; the dispatched ones still get their answers,
 * then the connection closes. */
static void stop_requests(ra_http_conn *c) {
  if (c->sb_mode != SB_NONE) {
    body_fail(c); /* comes back here */
    return;
  }
  close_after_answers(c);
  if (c->cur && c->cur->stage == EX_RECEIVING) {
    ra_http_ex *prev = NULL;
    for (ra_http_ex *e = c->head; e && e != c->cur; e = e->next) prev = e;
    drop_after(c, prev);
  }
  c->phase = PH_IDLE;
  clear_deadline(c);
}

/* Bad input or a limit: answer `status` in order, then close. */
static void respond_error(ra_http_conn *c, int status) {
  c->continue_owed = false;
  if (c->sb_dispatch) {
    /* A head refused on its raw bytes before its dispatch: an ordinary
     * request, answered with the error. */
    sb_reset(c);
  }
  if (c->sb_mode != SB_NONE) {
    /* A streamed body's request has its handler's answer (or had it):
     * that is cancelled instead. */
    body_fail(c);
    return;
  }
  close_after_answers(c);
  clear_deadline(c);
  ra_http_ex *ex = c->cur;
  c->cur = NULL;
  if (!ex) {
    /* Between requests (garbage before a request line). */
    ex = ex_new(c);
    if (!ex) {
      request_close(c);
      return;
    }
  }
  c->phase = PH_IDLE;
  ex->keep_alive = false;
  start_response(c, ex);
  char text[64];
  snprintf(text, sizeof text, "%s\n", ra_http_status_text(status));
  ra_res_send_text(&ex->res, status, text);
}

/* To the handler, by the route found at the end of its head when it had a
 * body (the router looks again if its routes changed since). */
static void route(ra_http_conn *c, ra_http_ex *ex) {
  ra_router__dispatch(c->srv->router, &ex->req, &ex->res, ex->routed ? &ex->route : NULL);
}

static void dispatch(ra_http_conn *c, ra_http_ex *ex) {
  start_response(c, ex);
  if (!ex->keep_alive) close_after_answers(c); /* nothing after this request is read */
  if (ex->upgrade == UP_REQUESTED) {
    /* The bytes after it belong to the new protocol, or, if the handler
     * answers normally, to the next request. */
    c->upgrade_wait = true;
    stop_parsing(c);
  }
  if (c->nqueued >= c->srv->lim.max_pipelined) stop_parsing(c);
  route(c, ex);
}

/* A streamed body's request, dispatched once its head is complete: the
 * body follows through ra_req_body_deliver (parse(), body_ready()). Unlike
 * dispatch(), neither "Connection: close" nor the pipelining limit stops
 * parsing here: the body is still to come (body_last applies them). */
static void dispatch_stream(ra_http_conn *c, ra_http_ex *ex) {
  start_response(c, ex);
  ra_req_set_body_stream(&ex->req, &conn_body_ops, ex);
  route(c, ex);
}

static void do_upgrade(ra_http_conn *c, ra_http_ex *ex) {
  if (c->srv->cork_owner == c) cork_end(c);
  ra_upgrade_cb cb = ex->up_cb;
  void *ud = ex->up_ud;
  ex->upgrade = UP_HANDED_OVER; /* here, not by drop_after */
  ra_http_server *srv = c->srv;
  /* The connection keeps its place on the server (max_connections, graceful
   * shutdown) through a slot, taken before the connection is freed so the
   * count never dips. */
  ra_conn_slot *slot = ra_http_server_slot_new(srv);
  ra_stream *s = slot ? c->io_ops->detach(c->io) : NULL;
  if (!s) {
    ra_conn_slot_release(slot);
    slot = NULL;
  }
  ra_buf rest = c->pending_in;
  c->pending_in = (ra_buf){0};
  /* The connection is over for HTTP: free it without touching the stream,
   * or, if there is no stream to hand over, with its I/O. */
  if (s) ra_http_conn_closed(c);
  else ra_http_conn_destroy(c);
  if (s) cb(s, rest.len ? ra_buf_ptr(&rest) : (const uint8_t *)"", rest.len, slot, ud);
  else cb(NULL, NULL, 0, NULL, ud);
  ra_buf_free(&rest);
}

/* The head of the queue ended: write out what the next ones produced. */
static void conn_advance(ra_http_conn *c) {
  while (c->head && c->head->stage == EX_ENDED) {
    ra_http_ex *ex = c->head;
    if (ex->upgrade == UP_ACCEPTED) {
      schedule(c); /* do_upgrade from the loop */
      return;
    }
    bool close_after = ex->close_after;
    ex_pop(c, ex);
    if (close_after) {
      start_closing(c);
      drop_after(c, NULL);
      break;
    }
    ra_http_ex *next = c->head;
    if (next && next->out.len) {
      struct iovec v = {ra_buf_ptr(&next->out), next->out.len};
      io_write(c, &v, 1);
      ra_buf_reset(&next->out);
    }
    if (next && next->upgrade == UP_ACCEPTED) {
      schedule(c);
      return;
    }
    if (next && next->res_live && next->res.on_drain && next->stage != EX_ENDED) {
      c->want_drain = true;
      schedule(c);
    }
  }
  if (is_closing(c) && !c->head) {
    request_close(c);
    return;
  }
  if (c->stopped && !is_closing(c) && !c->upgrade_wait && c->nqueued < c->srv->lim.max_pipelined) {
    c->want_resume = true;
    if (!c->in_feed) schedule(c);
  }
  if (!c->head && c->phase == PH_IDLE && !is_closing(c)) {
    ra_http_server *srv = c->srv;
    if (srv->shutting_down) request_close(c);
    else set_deadline(c, T_KEEPALIVE, srv->lim.keepalive_timeout_ms);
  }
}

/* ---- llhttp callbacks ---------------------------------------------------------------- */

static int fail(ra_http_conn *c, int status) {
  c->err_status = (uint16_t)status;
  return HPE_USER;
}

static int on_message_begin(llhttp_t *p) {
  ra_http_conn *c = p->data;
  ra_http_ex *ex = ex_new(c);
  if (!ex) return fail(c, 503);
  c->cur = ex;
  c->phase = PH_HEAD;
  c->cline = CX_OFF;
  c->hdr_bytes = c->line_bytes = 0;
  c->hstate_value = false;
  set_deadline(c, T_HEADER, c->srv->lim.header_timeout_ms);
  return 0;
}

/* The method is known as soon as it ends, whatever the split of the bytes,
 * so an error answer to a HEAD request never carries a body. */
static int on_method_complete(llhttp_t *p) {
  ra_http_conn *c = p->data;
  ra_req_set_method(&c->cur->req, ra_str_cstr(llhttp_method_name((llhttp_method_t)p->method)));
  return 0;
}

static int on_url(llhttp_t *p, const char *at, size_t len) {
  ra_http_conn *c = p->data;
  ra_http_ex *ex = c->cur;
  c->line_bytes += (uint32_t)len;
  if (c->line_bytes + ex->req.method_len + 11 > c->srv->lim.max_request_line) return fail(c, 414);
  if (ra_req_target_append(&ex->req, at, len)) return fail(c, 503);
  return 0;
}

static int count_header(ra_http_conn *c, size_t len) {
  c->hdr_bytes += (uint32_t)len;
  if (c->hdr_bytes > c->srv->lim.max_header_bytes) return fail(c, 431);
  return 0;
}

static int on_header_field(llhttp_t *p, const char *at, size_t len) {
  ra_http_conn *c = p->data;
  ra_http_ex *ex = c->cur;
  /* A new field starts after a value (or first); its ": " and CRLF count
   * once, whatever the fragments. */
  bool starts = c->hstate_value || (c->phase != PH_BODY && ex->req.nhdrs == 0);
  c->hstate_value = false;
  int rc = count_header(c, len + (starts ? 4 : 0));
  if (rc) return rc;
  if (c->phase == PH_BODY) return 0; /* counted, not kept */
  if (starts) {
    if (ex->req.nhdrs >= c->srv->lim.max_headers) return fail(c, 431);
    if (ra_req_hdr_begin(&ex->req)) return fail(c, 503);
  }
  if (ra_req_hdr_name_append(&ex->req, at, len)) return fail(c, 503);
  return 0;
}

static int on_header_value(llhttp_t *p, const char *at, size_t len) {
  ra_http_conn *c = p->data;
  int rc = count_header(c, len);
  if (rc) return rc;
  c->hstate_value = true;
  if (c->phase == PH_BODY) return 0;
  if (ra_req_hdr_value_append(&c->cur->req, at, len)) return fail(c, 503);
  return 0;
}

/* Whether the request's route takes its body as it arrives. The route
 * found is kept for the dispatch (route()). */
static bool body_streams(ra_http_conn *c, ra_http_ex *ex) {
  if (!ex->req.path_ok) return false;
  ra_router__lookup(c->srv->router, &ex->req, &ex->route);
  ex->routed = true;
  return ex->route.rc == 0 && (ex->route.m.flags & RA_ROUTE_STREAM_BODY) != 0;
}

static bool te_supported(const ra_req *req) {
  for (size_t i = 0; i < ra_req_header_count(req); i++) {
    ra_header h = ra_req_header_at(req, i);
    if (!ra_str_eq_nocase(h.name, RA_STR("transfer-encoding"))) continue;
    const char *s = h.value.ptr, *end = s + h.value.len;
    while (s < end) {
      while (s < end && (*s == ' ' || *s == '\t' || *s == ',')) s++;
      const char *t = s;
      while (s < end && *s != ',' && *s != ' ' && *s != '\t' && *s != ';') s++;
      if (s > t && !ra_str_eq_nocase(ra_str_make(t, (size_t)(s - t)), RA_STR("chunked"))) return false;
      while (s < end && *s != ',') s++;
    }
  }
  return true;
}

static int on_headers_complete(llhttp_t *p) {
  ra_http_conn *c = p->data;
  ra_http_ex *ex = c->cur;
  ra_http_server *srv = c->srv;
  c->phase = PH_BODY; /* header callbacks from now on are trailers */
  c->hstate_value = false;
  if (ex->req.method_len == 0) ra_req_set_method(&ex->req, ra_str_cstr(llhttp_method_name((llhttp_method_t)p->method)));
  if (p->http_major != 1) return fail(c, 505);
  ex->req.http_version = p->http_minor == 0 ? 10 : 11;
  /* RFC 9112 3.2: exactly one Host in HTTP/1.1, at most one in 1.0. */
  size_t nhost = 0;
  for (size_t i = 0; i < ex->req.nhdrs; i++) {
    ra_str n = ra_req_header_at(&ex->req, i).name;
    if (n.len == 4 && ra_str_eq_nocase(n, RA_STR("host"))) nhost++;
  }
  if (nhost > 1 || (nhost == 0 && ex->req.http_version >= 11)) return fail(c, 400);
  /* RFC 9112 6.1: Transfer-Encoding in HTTP/1.0 is faulty framing. */
  if ((p->flags & F_TRANSFER_ENCODING) && ex->req.http_version == 10) return fail(c, 400);
  if (p->method == HTTP_CONNECT) return fail(c, 501);
  if ((p->flags & F_TRANSFER_ENCODING) && !te_supported(&ex->req)) return fail(c, 501);
  (void)ra_req_finish_target(&ex->req); /* a bad target gets its 400 from the router */
  bool has_body = (p->flags & F_CHUNKED) || ((p->flags & F_CONTENT_LENGTH) && p->content_length > 0);
  /* Only a request with a body is routed here (its dispatch uses what is
   * found): a GET is routed at its dispatch. */
  bool streamed = has_body && !p->upgrade && body_streams(c, ex);
  if (!streamed && (p->flags & F_CONTENT_LENGTH) && p->content_length > srv->lim.max_body) return fail(c, 413);
  ra_str expect;
  if (ra_req_header(&ex->req, "expect", &expect)) {
    if (!ra_str_eq_nocase(expect, RA_STR("100-continue"))) return fail(c, 417);
    if (streamed) {
      ex->expect_100 = ex->req.http_version >= 11; /* when the handler wants it */
    } else if (has_body && ex->req.http_version >= 11) {
      c->continue_owed = true; /* parse() sends it once the head's raw bytes passed */
    }
  }
  ex->upgrade = p->upgrade ? UP_REQUESTED : UP_NONE;
  if (p->flags & F_CHUNKED) { /* the first chunk-size line is next */
    c->cline = CX_SIZE;
    c->cext_len = 0;
    c->last_chunk = false;
  }
  if (streamed) {
    /* Dispatched from parse(); no deadline for the whole body (a large
     * upload over a slow link), the idle one while the handler wants. */
    c->sb = ex;
    c->sb_mode = SB_STREAM;
    c->sb_dispatch = true;
    c->sb_last_owed = false;
    c->body_due = UINT64_MAX;
    ex->keep_alive = llhttp_should_keep_alive(p) != 0;
    set_deadline(c, T_BODY, srv->lim.body_timeout_ms);
  } else if (has_body) {
    c->body_due = after_ms(c, srv->lim.body_deadline_ms);
    set_deadline(c, T_BODY, srv->lim.body_timeout_ms < srv->lim.body_deadline_ms
                                ? srv->lim.body_timeout_ms
                                : srv->lim.body_deadline_ms);
  } else {
    clear_deadline(c);
  }
  /* Pause so that parse() learns exactly where the header section ended:
   * the raw byte count it keeps must not depend on how reads split. */
  c->hc_paused = true;
  return HPE_PAUSED;
}

static int on_body(llhttp_t *p, const char *at, size_t len) {
  ra_http_conn *c = p->data;
  ra_http_ex *ex = c->cur;
  if (c->sb_mode == SB_STREAM) {
    /* To the handler from parse(), outside llhttp. */
    c->piece = (const uint8_t *)at;
    c->piece_len = len;
    c->deadline = after_ms(c, c->srv->lim.body_timeout_ms);
    return HPE_PAUSED;
  }
  if (c->sb_mode == SB_DISCARD) {
    c->discarded += len;
    if (c->discarded > DISCARD_MAX) return fail(c, 413); /* body_fail: close */
    c->deadline = after_ms(c, c->srv->lim.body_timeout_ms);
    return 0;
  }
  ex->body_bytes += len;
  if (ex->body_bytes > c->srv->lim.max_body) return fail(c, 413);
  if (ra_req_append_body(&ex->req, at, len)) return fail(c, 503);
  /* Between body bytes, and never past the whole body's deadline. */
  uint64_t d = after_ms(c, c->srv->lim.body_timeout_ms);
  c->deadline = d < c->body_due ? d : c->body_due;
  return 0;
}

static int on_chunk_header(llhttp_t *p) {
  ra_http_conn *c = p->data;
  if (p->content_length == 0) c->last_chunk = true; /* then trailers */
  return 0;
}

/* A chunk's data and its CRLF are read: the next line is a chunk-size
 * line. Paused so that parse() reads it from its first byte. */
static int on_chunk_complete(llhttp_t *p) {
  ra_http_conn *c = p->data;
  if (c->last_chunk) return 0;
  c->cline = CX_SIZE;
  c->cext_len = 0;
  return HPE_PAUSED;
}

static int on_message_complete(llhttp_t *p) {
  ra_http_conn *c = p->data;
  ra_http_ex *ex = c->cur;
  bool keep = llhttp_should_keep_alive(p) != 0;
  if (c->sb_mode == SB_STREAM) {
    ex->keep_alive = keep;
    c->sb_last_owed = true; /* body_ready() */
  } else if (c->sb_mode == SB_DISCARD) {
    c->sb_mode = SB_NONE;
    c->discard_end = keep ? 1 : 2; /* discard_complete() */
  } else {
    ex->keep_alive = keep;
    c->ready = ex;
  }
  c->cur = NULL;
  c->phase = PH_IDLE;
  c->raw_head = 0;
  clear_deadline(c);
  /* Dispatch outside of llhttp: the handler may do anything. */
  return HPE_PAUSED;
}

static const llhttp_settings_t parser_settings = {
    .on_message_begin = on_message_begin,
    .on_method_complete = on_method_complete,
    .on_url = on_url,
    .on_header_field = on_header_field,
    .on_header_value = on_header_value,
    .on_headers_complete = on_headers_complete,
    .on_body = on_body,
    .on_chunk_header = on_chunk_header,
    .on_chunk_complete = on_chunk_complete,
    .on_message_complete = on_message_complete,
};

static int errno_status(ra_http_conn *c, llhttp_errno_t err) {
  /* Our callbacks say why they failed (llhttp reports a callback's error
   * under various codes). */
  if (c->err_status) return c->err_status;
  return err == HPE_INVALID_TRANSFER_ENCODING ? 501 : 400;
}

/* ---- feeding ---------------------------------------------------------------------------- */

static void stash(ra_http_conn *c, const uint8_t *p, size_t n) {
  if (n == 0 || is_closing(c)) return;
  if (c->pending_in.len + n > 4u * 1024 * 1024) {
    /* A peer that keeps sending while we cannot parse: stop. */
    respond_error(c, 400);
    return;
  }
  if (ra_buf_append(&c->pending_in, p, n)) respond_error(c, 503);
}

/* What llhttp 8 accepts and RFC 9112 lets us refuse, checked on the raw
 * bytes of a head (never of a body: llhttp pauses at the end of each head):
 * more than one SP between the parts of the request line (3), and obs-fold,
 * a field line starting with SP or HTAB (5.2: 400; it could make a framing
 * header read differently here and in a proxy). Returns false to refuse.
 * Split-proof: the state carries over between reads. */
static bool head_bytes_ok(ra_http_conn *c, const uint8_t *p, size_t n) {
  const uint8_t *end = p + n;
  head_scan st = (head_scan)c->hscan;
  while (p < end) {
    switch (st) {
    case HS_START:
      if (*p != '\r' && *p != '\n') st = HS_LINE;
      else p++;
      break;
    case HS_LINE:
    case HS_LINE_SP: {
      const uint8_t *nl = memchr(p, '\n', (size_t)(end - p));
      const uint8_t *stop = nl ? nl : end;
      for (; p < stop; p++) {
        if (*p == ' ') {
          if (st == HS_LINE_SP) return false;
          st = HS_LINE_SP;
        } else {
          st = HS_LINE;
        }
      }
      if (nl) {
        st = HS_FIELD_START;
        p = nl + 1;
      }
      break;
    }
    case HS_FIELD_START:
      if (*p == ' ' || *p == '\t') return false;
      st = HS_FIELD;
      break;
    case HS_FIELD: {
      const uint8_t *nl = memchr(p, '\n', (size_t)(end - p));
      if (!nl) {
        p = end;
      } else {
        st = HS_FIELD_START;
        p = nl + 1;
      }
      break;
    }
    }
  }
  c->hscan = (uint8_t)st;
  return true;
}

/* Reads a chunk-size line from p (state in c->cline). Returns how many
 * bytes it took; the first *feed of them are size digits for llhttp, the
 * rest extension bytes to drop. Stops before the CR that ends the line (or
 * before a byte that is not ours to judge: llhttp then refuses it), with
 * c->cline back to CX_OFF. *bad: the extensions break the grammar. */
static size_t chunk_line_scan(ra_http_conn *c, const uint8_t *p, size_t n, size_t *feed, bool *bad) {
  size_t i = 0;
  *feed = 0;
  *bad = false;
  chunk_line st = (chunk_line)c->cline;
  if (st == CX_SIZE) {
    while (i < n && ((p[i] >= '0' && p[i] <= '9') || ((p[i] | 0x20) >= 'a' && (p[i] | 0x20) <= 'f'))) i++;
    *feed = i;
    if (i == n) return i;
    if (p[i] != ';' && p[i] != ' ' && p[i] != '\t') {
      c->cline = CX_OFF; /* CR (llhttp ends the line) or garbage (llhttp says 400) */
      return i;
    }
    st = CX_PRE;
  }
  for (; i < n; i++) {
    uint8_t b = p[i];
    bool ws = b == ' ' || b == '\t';
    if (b == '\r' && (st == CX_PRE || st == CX_NAME || st == CX_POSTNAME || st == CX_VALTOK)) {
      c->cline = CX_OFF;
      return i;
    }
    if (++c->cext_len > MAX_CHUNK_EXT) {
      *bad = true;
      return i;
    }
    switch (st) {
    case CX_PRE: if (b == ';') st = CX_NAME0; else if (!ws) *bad = true; break;
    case CX_NAME0: if (ra_http_tchar(b)) st = CX_NAME; else if (!ws) *bad = true; break;
    case CX_NAME:
      if (ws) st = CX_POSTNAME;
      else if (b == '=') st = CX_VAL0;
      else if (b == ';') st = CX_NAME0;
      else if (!ra_http_tchar(b)) *bad = true;
      break;
    case CX_POSTNAME:
      if (b == '=') st = CX_VAL0;
      else if (b == ';') st = CX_NAME0;
      else if (!ws) *bad = true;
      break;
    case CX_VAL0:
      if (b == '"') st = CX_QS;
      else if (ra_http_tchar(b)) st = CX_VALTOK;
      else if (!ws) *bad = true;
      break;
    case CX_VALTOK:
      if (ws) st = CX_PRE;
      else if (b == ';') st = CX_NAME0;
      else if (!ra_http_tchar(b)) *bad = true;
      break;
    case CX_QS:
      if (b == '"') st = CX_PRE;
      else if (b == '\\') st = CX_QP;
      else if (b < 0x20 ? b != '\t' : b == 0x7f) *bad = true;
      break;
    case CX_QP:
      if (b < 0x20 ? b != '\t' : b == 0x7f) *bad = true;
      else st = CX_QS;
      break;
    default: *bad = true; break;
    }
    if (*bad) return i;
  }
  c->cline = (uint8_t)st;
  return i;
}

/* A dropped body's message is complete: the connection goes on (or closes,
 * as the request asked) once the answer, sent already, is out. */
static void discard_complete(ra_http_conn *c) {
  bool keep = c->discard_end == 1;
  c->discard_end = 0;
  if (!keep) close_after_answers(c);
  if (!c->head) {
    if (is_closing(c) || c->srv->shutting_down) request_close(c);
    else set_deadline(c, T_KEEPALIVE, c->srv->lim.keepalive_timeout_ms);
  }
}

/* A piece of a streamed body, read by llhttp: to the handler. */
static void body_piece(ra_http_conn *c) {
  const uint8_t *d = c->piece;
  size_t n = c->piece_len;
  c->piece_len = 0;
  if (c->sb_mode == SB_STREAM) ra_req_body_deliver(&c->sb->req, d, n, false);
}

static void parse(ra_http_conn *c, const uint8_t *data, size_t len) {
  const char *p = (const char *)data;
  size_t left = len;
  bool again = c->exec_owed;
  c->exec_owed = false;
  /* After a pause at the end of a header section llhttp runs once more even
   * with no bytes left: a message without a body completes then (so does
   * a streamed body after its last piece: when its handler held it there,
   * that run is owed to the next parse). */
  for (;;) {
    if (!body_ready(c)) {
      c->exec_owed = again;
      stash(c, (const uint8_t *)p, left);
      return;
    }
    if (!(left > 0 || again)) break;
    again = false;
    if (c->stopped) {
      stash(c, (const uint8_t *)p, left);
      return;
    }
    if (c->cline != CX_OFF) {
      size_t feed;
      bool bad;
      size_t took = chunk_line_scan(c, (const uint8_t *)p, left, &feed, &bad);
      if (bad) {
        respond_error(c, 400);
        return;
      }
      if (feed) {
        llhttp_errno_t err = llhttp_execute(&c->parser, p, feed);
        if (err != HPE_OK) {
          respond_error(c, errno_status(c, err));
          return;
        }
      }
      p += took;
      left -= took;
      continue;
    }
    c->hc_paused = false;
    uint8_t phase0 = c->phase;
    llhttp_errno_t err = llhttp_execute(&c->parser, p, left);
    size_t used;
    if (err == HPE_OK) {
      used = left;
    } else if (err == HPE_PAUSED) {
      used = (size_t)(llhttp_get_error_pos(&c->parser) - p);
      llhttp_resume(&c->parser);
      again = c->hc_paused || c->piece_len > 0;
    } else if (err == HPE_PAUSED_UPGRADE) {
      /* Only reached once the upgrade request got a normal answer. */
      used = (size_t)(llhttp_get_error_pos(&c->parser) - p);
      llhttp_resume_after_upgrade(&c->parser);
    } else {
      respond_error(c, errno_status(c, err));
      return;
    }
    if (used > left) used = left;
    if (phase0 == PH_IDLE) c->hscan = HS_START; /* a new head begins here */
    if ((phase0 == PH_HEAD || phase0 == PH_IDLE) && !head_bytes_ok(c, (const uint8_t *)p, used)) {
      if (c->cur) c->cur->keep_alive = false;
      respond_error(c, 400);
      return;
    }
    if (phase0 == PH_HEAD || phase0 == PH_IDLE) {
      /* Every byte from the end of the previous message to the end of this
       * header section, also those llhttp skips without a callback (empty
       * lines, whitespace): bounds what a slow client can make us parse. */
      c->raw_head += (uint32_t)used;
      if (c->raw_head > c->srv->lim.max_header_bytes + c->srv->lim.max_request_line + 1024) {
        respond_error(c, 431);
        return;
      }
    }
    if (c->continue_owed) {
      /* The client waits for it before sending the body. */
      c->continue_owed = false;
      if (c->cur) send_continue(c, c->cur);
    }
    p += used;
    left -= used;
    if (c->ready) {
      ra_http_ex *ex = c->ready;
      c->ready = NULL;
      dispatch(c, ex);
      if (c->life == LIFE_CLOSED) return;
    }
    if (c->sb_dispatch) {
      c->sb_dispatch = false;
      dispatch_stream(c, c->sb);
      if (c->life == LIFE_CLOSED) return;
    }
    if (c->piece_len) {
      body_piece(c);
      if (c->life == LIFE_CLOSED) return;
    }
    if (c->discard_end) {
      discard_complete(c);
      if (c->life == LIFE_CLOSED) return;
    }
  }
}

/* After the peer's EOF, once every byte it sent is parsed: answer what is
 * in flight, then close. A partial request can never complete. */
static void eof_check(ra_http_conn *c) {
  if (!c->peer_eof || c->stopped || c->life == LIFE_CLOSED) return;
  stop_requests(c);
  if (!c->head) request_close(c);
}

static void resume(ra_http_conn *c) {
  c->want_resume = false;
  if (c->sb_mode == SB_STREAM) {
    /* A streamed body goes on as its handler wants, whatever the queue. */
    if (!ra_req_body_wants(&c->sb->req)) return;
  } else if (is_closing(c) || c->upgrade_wait ||
             (c->sb_mode == SB_NONE && c->nqueued >= c->srv->lim.max_pipelined)) {
    return;
  }
  c->stopped = false;
  ra_buf in = c->pending_in;
  c->pending_in = (ra_buf){0};
  bool began = cork_begin(c);
  c->in_feed = true;
  if (in.len || c->exec_owed || c->sb_mode == SB_STREAM) parse(c, in.len ? ra_buf_ptr(&in) : (const uint8_t *)"", in.len);
  c->in_feed = false;
  if (began) cork_end(c);
  ra_buf_free(&in);
  if (!c->stopped && c->life != LIFE_CLOSED) set_reading(c, true);
  eof_check(c);
  /* Requests that completed synchronously may have freed a pipeline slot. */
  if (c->want_resume && c->life != LIFE_CLOSED) schedule(c);
}

static void defer_cb(ra_defer *d, void *ud) {
  ra_http_conn *c = ud;
  (void)d;
  if (c->head_corked) {
    c->head_corked = false;
    cork_end(c);
  }
  if (c->head && c->head->upgrade == UP_ACCEPTED) {
    do_upgrade(c, c->head);
    return;
  }
  if (c->want_drain) {
    c->want_drain = false;
    if (c->head && c->head->res_live && c->head->stage != EX_ENDED) ra_res_drained(&c->head->res);
  }
  if (c->want_resume && c->life != LIFE_CLOSED) resume(c);
}

static void timer_cb(ra_timer *t, void *ud) {
  ra_http_conn *c = ud;
  (void)t;
  if (!c->deadline || c->life == LIFE_CLOSED) return;
  uint64_t now = ra_loop_now(c->srv->loop);
  if (now < c->deadline) {
    c->timer_due = c->deadline;
    ra_timer_start(&c->timer, c->deadline - now, 0);
    return;
  }
  int kind = c->timer_kind;
  clear_deadline(c);
  switch (kind) {
  case T_KEEPALIVE:
    if (!c->head && c->phase == PH_IDLE) request_close(c);
    break;
  case T_HEADER:
  case T_BODY:
    if (c->sb_mode != SB_NONE) body_fail(c); /* its handler's answer is cancelled */
    else if (c->phase != PH_IDLE) respond_error(c, 408);
    break;
  default:
    break;
  }
}

/* ---- public (internal) API ---------------------------------------------------------------- */

int ra_http_conn_new(ra_http_server *srv, const ra_http_io_ops *ops, void *io, ra_http_conn **out) {
  ra_http_conn *c = calloc(1, sizeof *c);
  *out = c;
  if (!c) return -ENOMEM;
  llhttp_init(&c->parser, HTTP_REQUEST, &parser_settings);
  c->parser.data = c;
  c->srv = srv;
  c->io_ops = ops;
  c->io = io;
  ra_timer_init(srv->loop, &c->timer, timer_cb, c);
  ra_defer_init(&c->defer, defer_cb, c);
  c->next = srv->conns;
  if (srv->conns) srv->conns->prev = c;
  srv->conns = c;
  srv->nconns++;
  /* A fresh connection gets the header timeout for its first request. */
  set_deadline(c, T_KEEPALIVE, srv->lim.header_timeout_ms < srv->lim.keepalive_timeout_ms
                                   ? srv->lim.header_timeout_ms
                                   : srv->lim.keepalive_timeout_ms);
  return 0;
}

size_t ra_http_conn_feed(ra_http_conn *c, const uint8_t *data, size_t len) {
  if (is_closing(c)) return len;
  if (c->stopped) {
    stash(c, data, len);
    return len;
  }
  bool began = cork_begin(c);
  c->in_feed = true;
  parse(c, data, len);
  c->in_feed = false;
  if (began) cork_end(c);
  if (c->want_resume && c->life != LIFE_CLOSED) schedule(c);
  return len;
}

void ra_http_conn_eof(ra_http_conn *c) {
  c->peer_eof = true;
  eof_check(c);
}

void ra_http_conn_drain(ra_http_conn *c) {
  if (c->head && c->head->res_live && c->head->stage != EX_ENDED) ra_res_drained(&c->head->res);
}

static void conn_unlink_free(ra_http_conn *c) {
  ra_http_server *srv = c->srv;
  ra_timer_stop(&c->timer);
  ra_defer_cancel(srv->loop, &c->defer);
  if (srv->cork_owner == c) {
    srv->cork_owner = NULL;
    ra_buf_reset(&srv->cork);
  }
  c->cur = c->ready = NULL;
  drop_after(c, NULL);
  ra_buf_free(&c->pending_in);
  if (c->prev) c->prev->next = c->next; else srv->conns = c->next;
  if (c->next) c->next->prev = c->prev;
  srv->nconns--;
  free(c);
  ra_http_server_conn_gone(srv);
}

void ra_http_conn_closed(ra_http_conn *c) {
  c->life = LIFE_CLOSED;
  conn_unlink_free(c);
}

void ra_http_conn_destroy(ra_http_conn *c) {
  c->life = LIFE_CLOSED;
  if (c->io_ops->destroy) c->io_ops->destroy(c->io);
  conn_unlink_free(c);
}

void ra_http_conn_shutdown(ra_http_conn *c) {
  if (c->life == LIFE_CLOSED) return;
  bool busy = false;
  for (ra_http_ex *e = c->head; e; e = e->next)
    if (e->stage != EX_RECEIVING) busy = true;
  if (!busy) {
    request_close(c);
    return;
  }
  /* In-flight answers finish (with Connection: close); nothing new is read. */
  stop_requests(c);
}

ra_http_conn *ra_http_conn_next(ra_http_conn *c) { return c->next; }

void ra_http_server_pool_free(ra_http_server *srv) {
  while (srv->pool) {
    ra_http_ex *ex = srv->pool;
    srv->pool = ex->next;
    ex_destroy(ex);
  }
  srv->npool = 0;
}

void ra_http_conn_set_peer(ra_http_conn *c, const struct sockaddr *sa) {
  c->peer_len = 0;
  if (!sa) return;
  const void *a = NULL;
  if (sa->sa_family == AF_INET) a = &((const struct sockaddr_in *)sa)->sin_addr;
  else if (sa->sa_family == AF_INET6) a = &((const struct sockaddr_in6 *)sa)->sin6_addr;
  if (!a || !inet_ntop(sa->sa_family, a, c->peer, sizeof c->peer)) return;
  c->peer_len = (uint8_t)strlen(c->peer);
}
