/* ws/ws.c: the ra_ws handle: what the application calls (send, close...)
 * checked and handed to the sink, and what the transport reports
 * (deliver_*) handed to the application's handlers. The transports are in
 * stream_transport.c (RFC 6455 frames on a stream) and the tunnel; rooms in
 * room.c; the server's upgrade route in route.c. */
#include "raloop/ws/ws.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "raloop/core/log.h"
#include "raloop/ws/utf8.h"
#include "raloop/ws/ws_internal.h"

#define DEF_MAX_MESSAGE ((uint64_t)16 << 20)
#define DEF_CLOSE_TIMEOUT 5000
#define DEF_HIGH_WATER ((size_t)1 << 20)
#define DEF_SEND_LIMIT ((size_t)64 << 20)
#define DEF_PING_INTERVAL 30000
#define DEF_IDLE_TIMEOUT 60000

void ra_ws__fill_opts(ra_ws_opts *o, const ra_ws_opts *in) {
  if (in) *o = *in;
  else memset(o, 0, sizeof *o);
  if (!o->max_message) o->max_message = DEF_MAX_MESSAGE;
  if (!o->close_timeout_ms) o->close_timeout_ms = DEF_CLOSE_TIMEOUT;
  if (!o->ping_interval_ms) o->ping_interval_ms = DEF_PING_INTERVAL;
  if (!o->idle_timeout_ms) {
    if (o->ping_interval_ms == RA_WS_OFF) o->idle_timeout_ms = DEF_IDLE_TIMEOUT;
    else o->idle_timeout_ms = o->ping_interval_ms > UINT64_MAX / 4 ? RA_WS_OFF : 2 * o->ping_interval_ms;
  }
  if (!o->send_high_water) o->send_high_water = DEF_HIGH_WATER;
  if (!o->send_limit) o->send_limit = DEF_SEND_LIMIT;
  if (o->send_limit < o->send_high_water) o->send_limit = o->send_high_water;
}

int ra_ws_new_with_sink(ra_loop *loop, const ra_ws_sink_ops *ops, void *sink,
                        const ra_ws_handlers *h, void *ud, const ra_ws_opts *opts, ra_ws **out) {
  ra_ws *ws = calloc(1, sizeof *ws);
  *out = ws;
  if (!ws) return -ENOMEM;
  ws->loop = loop;
  ws->ops = ops;
  ws->sink = sink;
  if (h) ws->h = *h;
  ws->ud = ud;
  ra_ws__fill_opts(&ws->opts, opts);
  return 0;
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

void ra_ws__free(ra_ws *ws) {
  ra_ws__leave_rooms(ws);
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

void ra_ws_deliver_open(ra_ws *ws) {
  if (ws->closed || ws->open) return;
  ws->open = true;
  enter(ws);
  if (ws->h.on_open) ws->h.on_open(ws, ws->ud);
  leave(ws);
}

void ra_ws__deliver_checked(ra_ws *ws, ra_ws_type type, const uint8_t *data, size_t len) {
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
  ra_ws__deliver_checked(ws, type, data, len);
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
  ra_ws__leave_rooms(ws);
  enter(ws);
  if (ws->h.on_close) ws->h.on_close(ws, code, reason, ws->ud);
  leave(ws);
}

void ra_ws_deliver_shutdown(ra_ws *ws) {
  if (ws->closed || ws->closing) return;
  enter(ws);
  if (ws->h.on_shutdown) ws->h.on_shutdown(ws, ws->ud);
  else ra_ws_close(ws, RA_WS_CLOSE_GOING_AWAY, "server shutting down");
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

/* Before queuing len more bytes: a peer that let send_limit pile up is
 * closed (1013) instead of buffering more. Returns 0 or -ENOBUFS. */
int ra_ws__check_limit(ra_ws *ws, size_t len) {
  size_t b = buffered(ws);
  if (!b || (b <= ws->opts.send_limit && len <= ws->opts.send_limit - b)) return 0;
  ra_warn("ws: peer not reading (%zu bytes unsent), closing it (1013)", b);
  ra_ws_close(ws, RA_WS_CLOSE_TRY_AGAIN, "peer too slow");
  return -ENOBUFS;
}

/* After a successful hand-off to the sink: back-pressure accounting. */
static int after_send(ra_ws *ws, int rc) {
  if (rc < 0) return rc;
  size_t b = buffered(ws);
  if (b > ws->opts.send_high_water) {
    ws->want_drain = true;
    return RA_WS_BACKPRESSURE;
  }
  return 0;
}

int ra_ws__send_checked(ra_ws *ws, ra_ws_type type, const void *data, size_t len) {
  int rc = check_sendable(ws);
  if (rc) return rc;
  if (ws->frag_op) return -EBUSY;
  if ((rc = ra_ws__check_limit(ws, len))) return rc;
  enter(ws);
  rc = after_send(ws, ws->ops->send(ws->sink, type, data, len));
  leave(ws);
  return rc;
}

ra_ws__frame *ra_ws__frame_new(ra_ws_type type, const void *data, size_t len) {
  if (len > SIZE_MAX - sizeof(ra_ws__frame) - RA_WS_MAX_HEADER) return NULL;
  ra_ws__frame *f = malloc(sizeof *f + RA_WS_MAX_HEADER + len);
  if (!f) return NULL;
  f->refs = 1;
  size_t h = ra_ws_frame_header(f->bytes, true, 0, (unsigned)type, len, NULL);
  if (len) memcpy(f->bytes + h, data, len);
  f->len = h + len;
  return f;
}

void ra_ws__frame_unref(void *p) {
  ra_ws__frame *f = p;
  if (--f->refs == 0) free(f);
}

int ra_ws__send_shared(ra_ws *ws, ra_ws_type type, const void *data, size_t len, ra_ws__frame *f) {
  int rc = check_sendable(ws);
  if (rc) return rc;
  if (ws->frag_op) return -EBUSY;
  if ((rc = ra_ws__check_limit(ws, len))) return rc;
  enter(ws);
  rc = ra_ws__stream_send_shared(ws, f);
  if (rc == -ENOTSUP) rc = ws->ops->send(ws->sink, type, data, len); /* other sinks copy */
  rc = after_send(ws, rc);
  leave(ws);
  return rc;
}

/* The checks every whole-message send makes, in the order of its errors. */
static int check_message(const ra_ws *ws, ra_ws_type type, const void *data, size_t len) {
  int rc = check_sendable(ws);
  if (rc) return rc;
  if (type != RA_WS_TEXT && type != RA_WS_BINARY) return -EINVAL;
  if (ws->frag_op) return -EBUSY;
  if (type == RA_WS_TEXT && !ra_utf8_valid(data, len)) return -EILSEQ;
  return 0;
}

int ra_ws_send(ra_ws *ws, ra_ws_type type, const void *data, size_t len) {
  int rc = check_message(ws, type, data, len);
  return rc ? rc : ra_ws__send_checked(ws, type, data, len);
}

int ra_ws_send_text(ra_ws *ws, const char *text) {
  return ra_ws_send(ws, RA_WS_TEXT, text, text ? strlen(text) : 0);
}

/* Sinks without send_owned get a plain send; the buffer is done with as
 * soon as it returns. */
static int sink_send_owned(ra_ws *ws, ra_ws_type type, uint8_t *data, size_t len,
                           void (*free_cb)(void *), void *ud) {
  if (ws->ops->send_owned) return ws->ops->send_owned(ws->sink, type, data, len, free_cb, ud);
  int rc = ws->ops->send(ws->sink, type, data, len);
  if (free_cb) free_cb(ud);
  return rc;
}

int ra_ws_send_owned(ra_ws *ws, ra_ws_type type, uint8_t *data, size_t len,
                     void (*free_cb)(void *), void *ud) {
  int rc = check_message(ws, type, data, len);
  if (!rc) rc = ra_ws__check_limit(ws, len);
  if (rc) {
    if (free_cb) free_cb(ud);
    return rc;
  }
  enter(ws);
  rc = after_send(ws, sink_send_owned(ws, type, data, len, free_cb, ud));
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
  if ((rc = ra_ws__check_limit(ws, len))) return rc;
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
  if (rl > RA_WS__MAX_REASON || (rl && !code) || !ra_utf8_valid((const uint8_t *)reason, rl)) return -EINVAL;
  if (!ws->ops) return -ENOTCONN;
  ws->closing = true;
  enter(ws);
  int rc = ws->ops->close(ws->sink, code, ra_str_make(reason, rl));
  leave(ws);
  return rc;
}

void ra_ws_cork(ra_ws *ws) {
  if (ws->closed || !ws->ops || !ws->ops->cork) return;
  ws->ops->cork(ws->sink);
}

void ra_ws_trim(ra_ws *ws) {
  if (!ws || ws->closed) return;
  if (!ws->frag_op) ra_buf_free(&ws->frag_buf);
  if (ws->ops && ws->ops->trim) ws->ops->trim(ws->sink);
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
