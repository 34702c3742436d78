/* ws/ws.c: the ra_ws handle, rooms, the frame transport on a stream, and
 * server routes (the upgrade handshake). */
#include "raloop/ws/ws.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/rand.h>

#include "raloop/core/log.h"
#include "raloop/core/stream.h"
#include "raloop/http/response.h"
#include "raloop/ws/handshake.h"
#include "raloop/ws/message.h"
#include "raloop/ws/utf8.h"
#include "raloop/ws/ws_internal.h"

#define DEF_MAX_MESSAGE ((uint64_t)16 << 20)
#define DEF_CLOSE_TIMEOUT 5000
#define DEF_HIGH_WATER ((size_t)1 << 20)
#define DEF_SEND_LIMIT ((size_t)64 << 20)
#define MAX_REASON 123

struct ra_ws {
  ra_loop *loop;
  const ra_ws_sink_ops *ops;
  void *sink;
  ra_ws_handlers h;
  void *ud;
  void *user;
  ra_ws_opts opts;
  char *path, *protocol;
  size_t path_len, protocol_len;
  bool attested;
  bool open;       /* on_open delivered */
  bool closing;    /* a close or terminate was started here */
  bool closed;     /* on_close delivered: free once depth is 0 */
  bool want_drain;
  int depth;       /* ra_ws callbacks / sink calls in progress */
  uint8_t frag_op; /* fragmented message being sent */
  ra_utf8 frag_utf8;
  ra_buf frag_buf; /* pieces, for sinks without send_frame */
  ra_ws_room **rooms;
  size_t nrooms, caprooms;
};

struct ra_ws_room {
  ra_ws **m;
  size_t n, cap;
};

/* ---- the handle --------------------------------------------------------- */

static void fill_opts(ra_ws_opts *o, const ra_ws_opts *in) {
  if (in) *o = *in;
  else memset(o, 0, sizeof *o);
  if (!o->max_message) o->max_message = DEF_MAX_MESSAGE;
  if (!o->close_timeout_ms) o->close_timeout_ms = DEF_CLOSE_TIMEOUT;
  if (!o->send_high_water) o->send_high_water = DEF_HIGH_WATER;
  if (!o->send_limit) o->send_limit = DEF_SEND_LIMIT;
  if (o->send_limit < o->send_high_water) o->send_limit = o->send_high_water;
}

ra_ws *ra_ws_new_with_sink(ra_loop *loop, const ra_ws_sink_ops *ops, void *sink,
                           const ra_ws_handlers *h, void *ud, const ra_ws_opts *opts) {
  ra_ws *ws = calloc(1, sizeof *ws);
  if (!ws) return NULL;
  ws->loop = loop;
  ws->ops = ops;
  ws->sink = sink;
  if (h) ws->h = *h;
  ws->ud = ud;
  fill_opts(&ws->opts, opts);
  return ws;
}

const ra_ws_opts *ra_ws__opts(const ra_ws *ws) { return &ws->opts; }

static char *dup_str(ra_str s) {
  char *p = malloc(s.len + 1);
  if (!p) return NULL;
  if (s.len) memcpy(p, s.ptr, s.len);
  p[s.len] = 0;
  return p;
}

int ra_ws_set_info(ra_ws *ws, ra_str path, ra_str protocol, bool attested) {
  char *p = dup_str(path), *q = dup_str(protocol);
  if (!p || !q) {
    free(p);
    free(q);
    return -ENOMEM;
  }
  free(ws->path);
  free(ws->protocol);
  ws->path = p;
  ws->path_len = path.len;
  ws->protocol = q;
  ws->protocol_len = protocol.len;
  ws->attested = attested;
  return 0;
}

void ra_ws_set_sink(ra_ws *ws, const ra_ws_sink_ops *ops, void *sink) {
  ws->ops = ops;
  ws->sink = sink;
}

static void room_remove(ra_ws_room *room, ra_ws *ws) {
  for (size_t i = 0; i < room->n; i++)
    if (room->m[i] == ws) {
      room->m[i] = room->m[--room->n];
      return;
    }
}

static void leave_rooms(ra_ws *ws) {
  for (size_t i = 0; i < ws->nrooms; i++) room_remove(ws->rooms[i], ws);
  ws->nrooms = 0;
}

void ra_ws__free(ra_ws *ws) {
  leave_rooms(ws);
  free(ws->rooms);
  free(ws->path);
  free(ws->protocol);
  ra_buf_free(&ws->frag_buf);
  free(ws);
}

static inline void enter(ra_ws *ws) { ws->depth++; }
/* Frees ws if it closed while we were inside; callers must not touch ws
 * after leave(). */
static inline void leave(ra_ws *ws) {
  if (--ws->depth == 0 && ws->closed) ra_ws__free(ws);
}

static int stream_sink_send(void *sink, ra_ws_type type, const void *data, size_t len);

void ra_ws_deliver_open(ra_ws *ws) {
  if (ws->closed || ws->open) return;
  ws->open = true;
  enter(ws);
  if (ws->h.on_open) ws->h.on_open(ws, ws->ud);
  leave(ws);
}

/* For transports that validated the message already (the frame transport). */
static void deliver_checked(ra_ws *ws, ra_ws_type type, const uint8_t *data, size_t len) {
  if (ws->closed) return;
  enter(ws);
  if (ws->h.on_message) ws->h.on_message(ws, type, data, len, ws->ud);
  leave(ws);
}

void ra_ws_deliver_message(ra_ws *ws, ra_ws_type type, const uint8_t *data, size_t len) {
  if (ws->closed) return;
  /* Fail closed whatever the transport checked: handlers are promised UTF-8. */
  if ((type != RA_WS_TEXT && type != RA_WS_BINARY) ||
      (type == RA_WS_TEXT && !ra_utf8_valid(data, len))) {
    ra_ws_close(ws, RA_WS_CLOSE_INVALID_DATA, "invalid message");
    return;
  }
  deliver_checked(ws, type, data, len);
}

void ra_ws_deliver_pong(ra_ws *ws, const uint8_t *data, size_t len) {
  if (ws->closed) return;
  enter(ws);
  if (ws->h.on_pong) ws->h.on_pong(ws, data, len, ws->ud);
  leave(ws);
}

void ra_ws_deliver_drain(ra_ws *ws) {
  if (ws->closed || !ws->want_drain) return;
  ws->want_drain = false;
  enter(ws);
  if (ws->h.on_drain) ws->h.on_drain(ws, ws->ud);
  leave(ws);
}

void ra_ws_deliver_close(ra_ws *ws, uint16_t code, ra_str reason) {
  if (ws->closed) return;
  ws->closed = true;
  ws->closing = true;
  leave_rooms(ws);
  enter(ws);
  if (ws->h.on_close) ws->h.on_close(ws, code, reason, ws->ud);
  leave(ws);
}

static int check_sendable(const ra_ws *ws) {
  if (ws->closed || ws->closing) return -EPIPE;
  if (!ws->open || !ws->ops) return -ENOTCONN;
  return 0;
}

static size_t buffered(const ra_ws *ws) {
  return ws->ops && ws->ops->buffered ? ws->ops->buffered(ws->sink) : 0;
}

/* After a successful hand-off to the sink: back-pressure accounting. */
static int after_send(ra_ws *ws, int rc) {
  if (rc < 0) return rc;
  size_t b = buffered(ws);
  if (b > ws->opts.send_limit) {
    ra_warn("ws: peer not reading (%zu bytes queued), dropping it", b);
    ra_ws_terminate(ws);
    return -ENOBUFS;
  }
  if (b > ws->opts.send_high_water) {
    ws->want_drain = true;
    return RA_WS_BACKPRESSURE;
  }
  return 0;
}

/* ra_ws_send once the payload is known to be acceptable (UTF-8 checked). */
static int send_checked(ra_ws *ws, ra_ws_type type, const void *data, size_t len) {
  int rc = check_sendable(ws);
  if (rc) return rc;
  if (ws->frag_op) return -EBUSY;
  enter(ws);
  rc = after_send(ws, ws->ops->send(ws->sink, type, data, len));
  leave(ws);
  return rc;
}

int ra_ws_send(ra_ws *ws, ra_ws_type type, const void *data, size_t len) {
  int rc = check_sendable(ws);
  if (rc) return rc;
  if (type != RA_WS_TEXT && type != RA_WS_BINARY) return -EINVAL;
  if (ws->frag_op) return -EBUSY;
  if (type == RA_WS_TEXT && !ra_utf8_valid(data, len)) return -EILSEQ;
  enter(ws);
  rc = after_send(ws, ws->ops->send(ws->sink, type, data, len));
  leave(ws);
  return rc;
}

int ra_ws_send_text(ra_ws *ws, const char *text) {
  return ra_ws_send(ws, RA_WS_TEXT, text, text ? strlen(text) : 0);
}

static int conn_send_owned(void *sink, ra_ws_type type, uint8_t *data, size_t len,
                           void (*free_cb)(void *), void *ud);

int ra_ws_send_owned(ra_ws *ws, ra_ws_type type, uint8_t *data, size_t len,
                     void (*free_cb)(void *), void *ud) {
  int rc = check_sendable(ws);
  if (!rc && type != RA_WS_TEXT && type != RA_WS_BINARY) rc = -EINVAL;
  if (!rc && ws->frag_op) rc = -EBUSY;
  if (!rc && type == RA_WS_TEXT && !ra_utf8_valid(data, len)) rc = -EILSEQ;
  if (rc) {
    if (free_cb) free_cb(ud);
    return rc;
  }
  enter(ws);
  if (ws->ops->send == stream_sink_send) {
    rc = conn_send_owned(ws->sink, type, data, len, free_cb, ud);
  } else {
    rc = ws->ops->send(ws->sink, type, data, len);
    if (free_cb) free_cb(ud);
  }
  rc = after_send(ws, rc);
  leave(ws);
  return rc;
}

int ra_ws_send_fragment(ra_ws *ws, ra_ws_type type, const void *data, size_t len, bool fin) {
  int rc = check_sendable(ws);
  if (rc) return rc;
  bool first = ws->frag_op == 0;
  if (first) {
    if (type != RA_WS_TEXT && type != RA_WS_BINARY) return -EINVAL;
    ra_utf8_init(&ws->frag_utf8);
  }
  unsigned op = first ? (unsigned)type : ws->frag_op;
  if (op == RA_WS_TEXT) {
    /* check on a copy: a refused piece leaves the message as it was */
    ra_utf8 u = ws->frag_utf8;
    if (!ra_utf8_feed(&u, data, len) || (fin && !ra_utf8_complete(&u))) return -EILSEQ;
    ws->frag_utf8 = u;
  }
  ws->frag_op = fin ? 0 : (uint8_t)op;
  enter(ws);
  if (ws->ops->send_frame) {
    rc = ws->ops->send_frame(ws->sink, first ? op : RA_WS_OP_CONT, fin, data, len);
  } else {
    rc = len ? ra_buf_append(&ws->frag_buf, data, len) : 0;
    if (rc == 0 && fin) {
      rc = ws->ops->send(ws->sink, (ra_ws_type)op, ra_buf_ptr(&ws->frag_buf), ws->frag_buf.len);
      ra_buf_free(&ws->frag_buf);
    }
  }
  rc = after_send(ws, rc);
  leave(ws);
  return rc;
}

int ra_ws_ping(ra_ws *ws, const void *data, size_t len) {
  int rc = check_sendable(ws);
  if (rc) return rc;
  if (len > RA_WS_MAX_CONTROL) return -EINVAL;
  if (!ws->ops->ping) return -ENOTSUP;
  enter(ws);
  rc = after_send(ws, ws->ops->ping(ws->sink, data, len));
  leave(ws);
  return rc;
}

int ra_ws_close(ra_ws *ws, uint16_t code, const char *reason) {
  if (ws->closed || ws->closing) return -EALREADY;
  if (code && !ra_ws_close_code_valid(code)) return -EINVAL;
  if (!reason) reason = "";
  size_t rl = strlen(reason);
  if (rl > MAX_REASON || (rl && !code) || !ra_utf8_valid((const uint8_t *)reason, rl)) return -EINVAL;
  if (!ws->ops) return -ENOTCONN;
  ws->closing = true;
  enter(ws);
  int rc = ws->ops->close(ws->sink, code, ra_str_make(reason, rl));
  leave(ws);
  return rc;
}

void ra_ws_terminate(ra_ws *ws) {
  if (ws->closed) return;
  ws->closing = true;
  if (ws->ops && ws->ops->terminate) ws->ops->terminate(ws->sink);
}

ra_loop *ra_ws_loop(const ra_ws *ws) { return ws->loop; }
size_t ra_ws_buffered(const ra_ws *ws) { return buffered(ws); }
ra_str ra_ws_protocol(const ra_ws *ws) { return ra_str_make(ws->protocol ? ws->protocol : "", ws->protocol_len); }
ra_str ra_ws_path(const ra_ws *ws) { return ra_str_make(ws->path ? ws->path : "", ws->path_len); }
bool ra_ws_attested(const ra_ws *ws) { return ws->attested; }
bool ra_ws_is_open(const ra_ws *ws) { return ws->open && !ws->closing && !ws->closed; }
void *ra_ws_userdata(const ra_ws *ws) { return ws->user; }
void ra_ws_set_userdata(ra_ws *ws, void *p) { ws->user = p; }

/* ---- rooms -------------------------------------------------------------- */

ra_ws_room *ra_ws_room_new(void) { return calloc(1, sizeof(ra_ws_room)); }

void ra_ws_room_free(ra_ws_room *room) {
  if (!room) return;
  for (size_t i = 0; i < room->n; i++) {
    ra_ws *ws = room->m[i];
    for (size_t j = 0; j < ws->nrooms; j++)
      if (ws->rooms[j] == room) {
        ws->rooms[j] = ws->rooms[--ws->nrooms];
        break;
      }
  }
  free(room->m);
  free(room);
}

int ra_ws_room_join(ra_ws_room *room, ra_ws *ws) {
  if (ws->closed || ws->closing) return -EPIPE;
  for (size_t j = 0; j < ws->nrooms; j++)
    if (ws->rooms[j] == room) return -EEXIST;
  if (room->n == room->cap) {
    size_t cap = room->cap ? room->cap * 2 : 8;
    ra_ws **m = realloc(room->m, cap * sizeof *m);
    if (!m) return -ENOMEM;
    room->m = m;
    room->cap = cap;
  }
  if (ws->nrooms == ws->caprooms) {
    size_t cap = ws->caprooms ? ws->caprooms * 2 : 2;
    ra_ws_room **r = realloc(ws->rooms, cap * sizeof *r);
    if (!r) return -ENOMEM;
    ws->rooms = r;
    ws->caprooms = cap;
  }
  room->m[room->n++] = ws;
  ws->rooms[ws->nrooms++] = room;
  return 0;
}

void ra_ws_room_leave(ra_ws_room *room, ra_ws *ws) {
  for (size_t j = 0; j < ws->nrooms; j++)
    if (ws->rooms[j] == room) {
      ws->rooms[j] = ws->rooms[--ws->nrooms];
      room_remove(room, ws);
      return;
    }
}

size_t ra_ws_room_size(const ra_ws_room *room) { return room->n; }

size_t ra_ws_room_broadcast(ra_ws_room *room, ra_ws_type type, const void *data, size_t len,
                            const ra_ws *except) {
  if (type != RA_WS_TEXT && type != RA_WS_BINARY) return 0;
  if (type == RA_WS_TEXT && !ra_utf8_valid(data, len)) return 0; /* checked once */
  size_t sent = 0;
  /* Backwards: a member that leaves during its own send (dropped) swaps in
   * one we have already visited. */
  for (size_t i = room->n; i-- > 0;) {
    if (i >= room->n) continue;
    ra_ws *ws = room->m[i];
    if (ws == except || !ra_ws_is_open(ws) || ws->frag_op) continue;
    if (send_checked(ws, type, data, len) >= 0) sent++;
  }
  return sent;
}

/* ---- the frame transport on a stream ------------------------------------ */

typedef struct ws_conn {
  ra_ws *ws;           /* NULL once on_close was delivered */
  ra_stream *s;
  ra_ws_role role;
  bool close_sent;
  bool done;           /* closing handshake finished or connection failed */
  bool awaiting_pong;
  ra_ws_assembler as;
  ra_timer close_timer;
  ra_timer ping_timer;
  uint64_t close_timeout_ms;
  ra_buf scratch;      /* masked copies of outgoing payloads (client) */
  /* client masking keys, drawn from the CSPRNG a batch at a time (one
   * RAND_bytes call, and its fork check, per 64 frames) */
  unsigned keys_left;
  uint8_t keys[4 * 64];
  /* ra_ws_cork: frames gathered during this loop turn, written at its end
   * (the uncork defer) with one system call */
  bool corked;
  ra_buf cork;
  ra_defer uncork;
} ws_conn;

#define SCRATCH_KEEP (64u << 10)

static int mask_key(ws_conn *c, uint8_t key[4]) {
  if (!c->keys_left) {
    if (RAND_bytes(c->keys, sizeof c->keys) != 1) return -EIO;
    c->keys_left = sizeof c->keys / 4;
  }
  uint8_t *k = c->keys + 4 * --c->keys_left;
  memcpy(key, k, 4);
  memset(k, 0, 4); /* each key once */
  return 0;
}

/* ---- corking: many small frames in one write ----------------------------- */

/* Flush once this much has gathered: one write per ~20 small answers, and
 * the first answers of a burst leave while later ones are still being made
 * (measured: gathering a whole burst of 100 raised the average latency). */
#define CORK_MAX (4u << 10)
#define CORK_FRAME (16u << 10) /* larger payloads are written by reference */

static int cork_flush(ws_conn *c) {
  if (!c->cork.len) return 0;
  int rc = ra_stream_write(c->s, ra_buf_ptr(&c->cork), c->cork.len);
  ra_buf_reset(&c->cork);
  if (c->cork.cap > 2 * CORK_MAX) ra_buf_free(&c->cork);
  return rc;
}

static void cork_end(ws_conn *c) {
  if (!c->corked) return;
  c->corked = false;
  ra_defer_cancel(ra_stream_loop(c->s), &c->uncork);
}

static void uncork_later(ra_defer *d, void *ud) {
  ws_conn *c = ud;
  c->corked = false;
  if (!c->done) cork_flush(c);
}

/* Appends one whole frame (masked client side) to the cork. Returns 1 if it
 * does not fit (the caller flushes and writes it itself). */
static int cork_frame(ws_conn *c, unsigned op, bool fin, const void *data, size_t len) {
  if (!c->corked || len > CORK_FRAME) return 1;
  if (c->cork.len + RA_WS_MAX_HEADER + len > CORK_MAX) {
    int rc = cork_flush(c);
    if (rc) return rc;
  }
  uint8_t key[4];
  bool masked = c->role != RA_WS_SERVER;
  if (masked && mask_key(c, key)) return -EIO;
  int rc = ra_buf_reserve(&c->cork, RA_WS_MAX_HEADER + len);
  if (rc) return rc;
  uint8_t *p = ra_buf_ptr(&c->cork) + c->cork.len;
  size_t h = ra_ws_frame_header(p, fin, 0, op, len, masked ? key : NULL);
  if (masked) ra_ws_mask_copy(p + h, data, len, key, 0);
  else if (len) memcpy(p + h, data, len);
  c->cork.len += h + len;
  return 0;
}

static int write_frame(ws_conn *c, unsigned op, bool fin, const void *data, size_t len) {
  uint8_t hdr[RA_WS_MAX_HEADER];
  struct iovec iov[2];
  if (c->corked) {
    int rc = cork_frame(c, op, fin, data, len);
    if (rc <= 0) return rc;
    if ((rc = cork_flush(c))) return rc; /* a large frame: after what gathered */
  }
  if (c->role == RA_WS_SERVER) {
    size_t h = ra_ws_frame_header(hdr, fin, 0, op, len, NULL);
    iov[0] = (struct iovec){hdr, h};
    iov[1] = (struct iovec){(void *)data, len};
    return ra_stream_writev(c->s, iov, len ? 2 : 1);
  }
  /* Client frames are masked with a fresh key from the CSPRNG each. */
  uint8_t key[4];
  if (mask_key(c, key)) return -EIO;
  size_t h = ra_ws_frame_header(hdr, fin, 0, op, len, key);
  ra_buf_reset(&c->scratch);
  int rc = ra_buf_reserve(&c->scratch, len ? len : 1);
  if (rc < 0) return rc;
  uint8_t *p = ra_buf_ptr(&c->scratch);
  ra_ws_mask_copy(p, data, len, key, 0);
  iov[0] = (struct iovec){hdr, h};
  iov[1] = (struct iovec){p, len};
  rc = ra_stream_writev(c->s, iov, len ? 2 : 1);
  if (c->scratch.cap > SCRATCH_KEEP) ra_buf_free(&c->scratch);
  return rc;
}

static int write_close(ws_conn *c, uint16_t code, ra_str reason) {
  uint8_t p[2 + MAX_REASON];
  size_t n = 0;
  if (code && code != RA_WS_CLOSE_NO_STATUS && code != RA_WS_CLOSE_ABNORMAL) {
    p[0] = (uint8_t)(code >> 8);
    p[1] = (uint8_t)code;
    n = 2;
    size_t rl = reason.len > MAX_REASON ? MAX_REASON : reason.len;
    /* a reason cut short must stay UTF-8: drop a split sequence */
    while (rl && !ra_utf8_valid((const uint8_t *)reason.ptr, rl)) rl--;
    if (rl) memcpy(p + 2, reason.ptr, rl);
    n += rl;
  }
  c->close_sent = true;
  return write_frame(c, RA_WS_OP_CLOSE, true, p, n);
}

static void conn_finish(ws_conn *c, uint16_t code, ra_str reason) {
  c->done = true;
  cork_flush(c); /* what gathered goes out before the stream closes */
  cork_end(c);
  ra_timer_stop(&c->close_timer);
  ra_timer_stop(&c->ping_timer);
  ra_stream_close(c->s); /* flush our close frame, then close */
  ra_ws *ws = c->ws;
  c->ws = NULL;
  if (ws) ra_ws_deliver_close(ws, code, reason);
}

static void conn_fail(ws_conn *c, uint16_t code, const char *why) {
  ra_debug("ws: failing the connection: %s (%u)", why, code);
  ra_str r = ra_str_cstr(why);
  if (!c->close_sent) write_close(c, code, r);
  conn_finish(c, code, r);
}

static size_t conn_on_read(ra_stream *s, const uint8_t *data, size_t len, void *ud) {
  ws_conn *c = ud;
  size_t used = 0;
  while (used < len && !c->done && c->ws) {
    ra_ws_msg m;
    long n = ra_ws_assembler_feed(&c->as, data + used, len - used, &m);
    if (n < 0) {
      conn_fail(c, c->as.close_code, c->as.error);
      break;
    }
    used += (size_t)n;
    switch (m.opcode) {
    case 0:
      return len;
    case RA_WS_OP_TEXT:
    case RA_WS_OP_BINARY:
      deliver_checked(c->ws, (ra_ws_type)m.opcode, m.data, m.len); /* UTF-8 checked */
      break;
    case RA_WS_OP_PING:
      if (!c->close_sent) write_frame(c, RA_WS_OP_PONG, true, m.data, m.len);
      break;
    case RA_WS_OP_PONG:
      c->awaiting_pong = false;
      ra_ws_deliver_pong(c->ws, m.data, m.len);
      break;
    case RA_WS_OP_CLOSE: {
      ra_str reason = ra_str_make((const char *)m.reason, m.reason_len);
      /* echo the code, as RFC 6455 section 5.5.1 suggests */
      if (!c->close_sent) write_close(c, m.close_code, reason);
      conn_finish(c, m.close_code, reason);
      break;
    }
    }
  }
  return len; /* after the end, the rest is ignored */
}

static void conn_on_drain(ra_stream *s, void *ud) {
  ws_conn *c = ud;
  if (c->ws) ra_ws_deliver_drain(c->ws);
}

static void conn_on_eof(ra_stream *s, void *ud) {
  /* The peer stopped sending without a close frame (or after ours): flush
   * what we have and close; on_close reports 1006 unless the handshake
   * already finished. */
  ra_stream_close(s);
}

static void conn_on_close(ra_stream *s, int err, void *ud) {
  ws_conn *c = ud;
  cork_end(c);
  ra_buf_free(&c->cork);
  ra_timer_stop(&c->close_timer);
  ra_timer_stop(&c->ping_timer);
  ra_ws *ws = c->ws;
  c->ws = NULL;
  if (ws) ra_ws_deliver_close(ws, RA_WS_CLOSE_ABNORMAL, RA_STR("connection dropped"));
  ra_ws_assembler_free(&c->as);
  ra_buf_free(&c->scratch);
  free(c);
}

static const ra_stream_cbs conn_cbs = {
    .on_read = conn_on_read, .on_drain = conn_on_drain, .on_eof = conn_on_eof,
    .on_close = conn_on_close};

static void close_timeout(ra_timer *t, void *ud) {
  ws_conn *c = ud;
  ra_debug("ws: no close frame from the peer in time, dropping");
  ra_stream_abort(c->s, -ETIMEDOUT);
}

static void ping_tick(ra_timer *t, void *ud) {
  ws_conn *c = ud;
  if (c->done || c->close_sent) return;
  if (c->awaiting_pong) {
    ra_debug("ws: no pong since the last ping, dropping the peer");
    ra_stream_abort(c->s, -ETIMEDOUT);
    return;
  }
  c->awaiting_pong = true;
  write_frame(c, RA_WS_OP_PING, true, NULL, 0);
}

static int stream_sink_send(void *sink, ra_ws_type type, const void *data, size_t len) {
  ws_conn *c = sink;
  if (c->close_sent || c->done) return -EPIPE;
  return write_frame(c, type, true, data, len);
}

/* The frame header goes into the room before data; a client masks in
 * place; the stream queues the frame by reference if the kernel does not
 * take it all at once. */
static int conn_send_owned(void *sink, ra_ws_type type, uint8_t *data, size_t len,
                           void (*free_cb)(void *), void *ud) {
  ws_conn *c = sink;
  if (c->close_sent || c->done) {
    if (free_cb) free_cb(ud);
    return -EPIPE;
  }
  if (c->corked) {
    int rc = cork_frame(c, (unsigned)type, true, data, len);
    if (rc > 0) rc = cork_flush(c); /* a large frame: by reference, after the rest */
    else {
      if (free_cb) free_cb(ud);
      return rc;
    }
    if (rc) {
      if (free_cb) free_cb(ud);
      return rc;
    }
  }
  uint8_t key[4], hdr[RA_WS_MAX_HEADER];
  const uint8_t *mk = NULL;
  if (c->role != RA_WS_SERVER) {
    if (mask_key(c, key)) {
      if (free_cb) free_cb(ud);
      return -EIO;
    }
    mk = key;
    ra_ws_mask(data, len, key, 0);
  }
  size_t h = ra_ws_frame_header(hdr, true, 0, (unsigned)type, len, mk);
  memcpy(data - h, hdr, h);
  return ra_stream_write_ref(c->s, data - h, h + len, free_cb, ud);
}

static int sink_send_frame(void *sink, unsigned op, bool fin, const void *data, size_t len) {
  ws_conn *c = sink;
  if (c->close_sent || c->done) return -EPIPE;
  return write_frame(c, op, fin, data, len);
}

static int sink_ping(void *sink, const void *data, size_t len) {
  ws_conn *c = sink;
  if (c->close_sent || c->done) return -EPIPE;
  return write_frame(c, RA_WS_OP_PING, true, data, len);
}

static int sink_close(void *sink, uint16_t code, ra_str reason) {
  ws_conn *c = sink;
  if (c->close_sent || c->done) return -EALREADY;
  int rc = write_close(c, code, reason);
  ra_timer_start(&c->close_timer, c->close_timeout_ms, 0);
  return rc;
}

static void sink_terminate(void *sink) {
  ws_conn *c = sink;
  c->done = true;
  cork_end(c);
  ra_buf_reset(&c->cork);
  ra_stream_abort(c->s, -ECONNABORTED); /* on_close comes deferred */
}

static size_t sink_buffered(void *sink) {
  ws_conn *c = sink;
  return ra_stream_queued(c->s);
}

static const ra_ws_sink_ops stream_sink = {
    .send = stream_sink_send, .send_frame = sink_send_frame, .ping = sink_ping,
    .close = sink_close, .terminate = sink_terminate, .buffered = sink_buffered};

void ra_ws_cork(ra_ws *ws) {
  if (ws->closed || !ws->ops || ws->ops->send != stream_sink_send) return;
  ws_conn *c = ws->sink;
  if (c->corked || c->done || c->close_sent) return;
  c->corked = true;
  ra_loop_defer(ra_stream_loop(c->s), &c->uncork);
}

int ra_ws__attach_stream(ra_ws *ws, ra_stream *s, ra_ws_role role,
                         const uint8_t *rest, size_t rest_len) {
  ws_conn *c = calloc(1, sizeof *c);
  if (!c) return -ENOMEM;
  ra_loop *loop = ra_stream_loop(s);
  c->ws = ws;
  c->s = s;
  c->role = role;
  c->close_timeout_ms = ws->opts.close_timeout_ms;
  ra_ws_assembler_init(&c->as, role, ws->opts.max_message);
  ra_timer_init(loop, &c->close_timer, close_timeout, c);
  ra_timer_init(loop, &c->ping_timer, ping_tick, c);
  ra_defer_init(&c->uncork, uncork_later, c);
  ra_stream_set_userdata(s, &conn_cbs, c);
  ra_stream_set_idle_timeout(s, 0); /* liveness is the pings' business */
  ra_stream_set_watermarks(s, ws->opts.send_high_water, ws->opts.send_high_water / 4);
  ra_ws_set_sink(ws, &stream_sink, c);
  if (ws->opts.ping_interval_ms)
    ra_timer_start(&c->ping_timer, ws->opts.ping_interval_ms, ws->opts.ping_interval_ms);
  /* Keep c alive across on_open: a terminate from inside it only defers. */
  ra_ws_deliver_open(ws);
  if (rest_len && c->ws && !c->done) conn_on_read(s, rest, rest_len, c);
  return 0;
}

/* ---- server routes ------------------------------------------------------ */

typedef struct ws_route {
  ra_ws_handlers h;
  void *ud;
  ra_ws_opts opts;
  /* the router's reference and one per upgrade in flight: a route removed
   * (ra_router_remove) or freed mid-upgrade must not leave on_upgraded
   * reading freed handlers */
  unsigned refs;
  bool gone;
} ws_route;

static void ws_route_unref(ws_route *rt) {
  if (--rt->refs == 0) free(rt);
}

/* The router's cleanup: the route is removed, or the router freed. */
static void ws_route_gone(void *ud) {
  ws_route *rt = ud;
  rt->gone = true;
  ws_route_unref(rt);
}

typedef struct ws_pending {
  ws_route *rt;
  bool attested;
  size_t path_len, proto_len;
  char strs[]; /* path, then protocol */
} ws_pending;

static void refuse(ra_res *res, int status, const char *why) {
  if (status == 426) {
    ra_res_add_header(res, "Upgrade", "websocket");
    ra_res_add_header(res, "Sec-WebSocket-Version", "13");
  }
  ra_res_send_text(res, status, why);
}

/* Any header `name` (they may repeat) containing token. */
static bool header_has_token(const ra_req *req, const char *name, const char *token, bool *present) {
  size_t n = ra_req_header_count(req);
  bool any = false;
  for (size_t i = 0; i < n; i++) {
    ra_header h = ra_req_header_at(req, i);
    if (!ra_str_eq_nocase(h.name, ra_str_cstr(name))) continue;
    any = true;
    if (ra_ws_has_token(h.value, token)) {
      if (present) *present = true;
      return true;
    }
  }
  if (present) *present = any;
  return false;
}

static void on_upgraded(ra_stream *s, const uint8_t *rest, size_t rest_len, void *ud) {
  ws_pending *p = ud;
  ws_route *rt = p->rt;
  if (!s || rt->gone) { /* the connection or the route went away before the hand-over */
    if (s) ra_stream_abort(s, -ENOENT);
    ws_route_unref(rt);
    free(p);
    return;
  }
  ra_ws *ws = ra_ws_new_with_sink(ra_stream_loop(s), NULL, NULL, &rt->h, rt->ud, &rt->opts);
  if (!ws || ra_ws_set_info(ws, ra_str_make(p->strs, p->path_len),
                            ra_str_make(p->strs + p->path_len + 1, p->proto_len), p->attested) < 0 ||
      ra_ws__attach_stream(ws, s, RA_WS_SERVER, rest, rest_len) < 0) {
    ra_error("ws: out of memory accepting a connection");
    ra_stream_abort(s, -ENOMEM);
    if (ws) ra_ws__free(ws);
  }
  ws_route_unref(rt);
  free(p);
}

static void ws_route_handler(ra_req *req, ra_res *res, void *ud) {
  ws_route *rt = ud;
  ra_str v;
  if (!ra_str_eq_cstr(ra_req_method(req), "GET")) return refuse(res, 400, "WebSocket upgrade needs GET\n");
  if (ra_req_http_version(req) < 11) return refuse(res, 400, "WebSocket upgrade needs HTTP/1.1\n");
  bool present = false;
  if (!header_has_token(req, "Upgrade", "websocket", &present)) {
    if (!present) return refuse(res, 426, "this is a WebSocket endpoint\n");
    return refuse(res, 400, "Upgrade must be websocket\n");
  }
  if (!header_has_token(req, "Connection", "upgrade", NULL))
    return refuse(res, 400, "Connection must contain upgrade\n");
  if (!ra_req_header(req, "Sec-WebSocket-Version", &v) || !ra_str_eq_cstr(v, "13"))
    return refuse(res, 426, "unsupported Sec-WebSocket-Version (13 is)\n");
  ra_str key;
  if (!ra_req_header(req, "Sec-WebSocket-Key", &key) || !ra_ws_key_valid(key))
    return refuse(res, 400, "missing or invalid Sec-WebSocket-Key\n");
  if (rt->h.on_request) {
    int st = rt->h.on_request(req, rt->ud);
    if (st) return refuse(res, st >= 400 && st <= 599 ? st : 403, "WebSocket refused\n");
  }
  ra_str offered[RA_WS_MAX_PROTOCOLS];
  size_t n = 0, hn = ra_req_header_count(req);
  for (size_t i = 0; rt->h.select_protocol && i < hn && n < RA_WS_MAX_PROTOCOLS; i++) {
    ra_header h = ra_req_header_at(req, i);
    if (ra_str_eq_nocase(h.name, RA_STR("Sec-WebSocket-Protocol"))) {
      size_t k = ra_ws_split_list(h.value, offered + n, RA_WS_MAX_PROTOCOLS - n);
      n += k < RA_WS_MAX_PROTOCOLS - n ? k : RA_WS_MAX_PROTOCOLS - n;
    }
  }
  ra_str proto = ra_ws_choose_protocol(rt->h.select_protocol, req, offered, n, rt->ud);
  char accept[RA_WS_ACCEPT_LEN + 1];
  if (ra_ws_accept_value(key, accept) < 0) return refuse(res, 500, "internal error\n");
  ra_str path = ra_req_path(req);
  ws_pending *p = malloc(sizeof *p + path.len + proto.len + 2);
  if (!p) return refuse(res, 500, "out of memory\n");
  p->rt = rt;
  p->attested = ra_req_attested(req);
  p->path_len = path.len;
  p->proto_len = proto.len;
  memcpy(p->strs, path.ptr, path.len);
  p->strs[path.len] = 0;
  memcpy(p->strs + path.len + 1, proto.ptr, proto.len);
  p->strs[path.len + 1 + proto.len] = 0;
  int rc = ra_res_add_header(res, "Upgrade", "websocket");
  if (!rc) rc = ra_res_add_header(res, "Connection", "Upgrade");
  if (!rc) rc = ra_res_add_header(res, "Sec-WebSocket-Accept", accept);
  if (!rc && proto.len)
    rc = ra_res_add_header_n(res, RA_STR("Sec-WebSocket-Protocol"), ra_str_make(p->strs + path.len + 1, proto.len));
  rt->refs++; /* until on_upgraded runs */
  if (!rc) rc = ra_res_upgrade(res, on_upgraded, p);
  if (rc < 0) {
    ws_route_unref(rt); /* cb never runs */
    free(p);
    if (rc == -ENOTSUP) return refuse(res, 400, "no WebSocket upgrade on this transport\n");
    return refuse(res, 500, "upgrade failed\n");
  }
}

int ra_ws_route_ex(ra_router *r, const char *pattern, const ra_ws_handlers *h, void *ud,
                   const ra_ws_opts *opts, unsigned flags) {
  ws_route *rt = calloc(1, sizeof *rt);
  if (!rt) return -ENOMEM;
  if (h) rt->h = *h;
  rt->ud = ud;
  fill_opts(&rt->opts, opts);
  rt->refs = 1;
  /* The block lives as long as the route (and upgrades in flight on it).
   * Registered first: if the route is then refused, the router still frees
   * it (a few bytes, once). */
  int rc = ra_router_on_free(r, ws_route_gone, rt);
  if (rc < 0) {
    free(rt);
    return rc;
  }
  return ra_route_ex(r, "GET", pattern, ws_route_handler, rt, flags);
}

int ra_ws_route(ra_router *r, const char *pattern, const ra_ws_handlers *h, void *ud) {
  return ra_ws_route_ex(r, pattern, h, ud, NULL, 0);
}

bool ra_ws_route_handlers(const ra_route_match *m, const ra_ws_handlers **h, void **ud) {
  if (!m || m->handler != ws_route_handler) return false;
  ws_route *rt = m->ud;
  if (h) *h = &rt->h;
  if (ud) *ud = rt->ud;
  return true;
}

const ra_ws_opts *ra_ws_route_opts(const ra_route_match *m) {
  if (!m || m->handler != ws_route_handler) return NULL;
  return &((ws_route *)m->ud)->opts;
}

void ra_ws_room_close_all(ra_ws_room *room, uint16_t code, const char *reason) {
  for (size_t i = room->n; i-- > 0;) {
    if (i >= room->n) continue;
    ra_ws *ws = room->m[i];
    if (ra_ws_is_open(ws)) ra_ws_close(ws, code, reason);
  }
}
