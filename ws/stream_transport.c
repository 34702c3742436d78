/* ws/stream_transport.c: RFC 6455 on a stream, the sink of server
 * connections (route.c) and of the client (client.c): frames out (masked
 * client side, corked into few writes on request), frames in through the
 * assembler, pings, and the closing handshake with its timeout. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/rand.h>

#include "raloop/core/log.h"
#include "raloop/core/stream.h"
#include "raloop/ws/message.h"
#include "raloop/ws/utf8.h"
#include "raloop/ws/ws_internal.h"

typedef struct ws_conn {
  ra_ws *ws;           /* NULL once on_close was delivered */
  ra_stream *s;
  ra_ws_role role;
  bool close_sent;
  bool done;           /* closing handshake finished or connection failed */
  ra_ws_assembler as;
  ra_timer close_timer;
  ra_timer ping_timer; /* pings and the idle check */
  uint64_t close_timeout_ms;
  uint64_t ping_ms, idle_ms; /* RA_WS_OFF: off */
  uint64_t last_rx, last_ping; /* loop ms */
  ra_conn_slot *slot;  /* our place on the HTTP server (server side) */
  ra_buf scratch;      /* masked copies of outgoing payloads (client) */
  /* client masking keys, drawn from the CSPRNG a batch at a time (one
   * RAND_bytes call, and its fork check, per 64 frames); allocated on the
   * first masked frame, so that a server connection does not carry them */
  unsigned keys_left;
  uint8_t *keys; /* KEYS_BATCH bytes */
  /* ra_ws_cork: frames gathered during this loop turn, written at its end
   * (the uncork defer) with one system call */
  bool corked;
  ra_buf cork;
  ra_defer uncork;
} ws_conn;

#define SCRATCH_KEEP (64u << 10)
#define KEYS_BATCH (4u * 64)

static int mask_key(ws_conn *c, uint8_t key[4]) {
  if (!c->keys_left) {
    if (!c->keys && !(c->keys = malloc(KEYS_BATCH))) return -ENOMEM;
    if (RAND_bytes(c->keys, KEYS_BATCH) != 1) return -EIO;
    c->keys_left = KEYS_BATCH / 4;
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
  /* freed, not kept: one allocation per loop turn that sends, instead of a
   * buffer held by every idle connection (issue 18: thousands of idle
   * connections at a few KiB each; keeping a small one saved ~180
   * instructions per tunnelled request, 0.6 %, and cost ~600 B of RSS per
   * idle tunnel: ra_buf doubles to 512 B for a ~260 B answer) */
  ra_buf_free(&c->cork);
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
  uint8_t p[2 + RA_WS__MAX_REASON];
  size_t n = 0;
  if (code && code != RA_WS_CLOSE_NO_STATUS && code != RA_WS_CLOSE_ABNORMAL) {
    p[0] = (uint8_t)(code >> 8);
    p[1] = (uint8_t)code;
    n = 2;
    size_t rl = reason.len > RA_WS__MAX_REASON ? RA_WS__MAX_REASON : reason.len;
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

/* A message buffer up to this size stays between reads (issue 18: one
 * malloc + free less per tunnelled request; an idle connection holds at
 * most this much until ra_ws_trim). */
#define MSG_KEEP 512
static void read_trim(ws_conn *c) {
  if (c->as.cap > MSG_KEEP) ra_ws_assembler_trim(&c->as);
}

static size_t conn_on_read(ra_stream *s, const uint8_t *data, size_t len, void *ud) {
  ws_conn *c = ud;
  size_t used = 0;
  c->last_rx = ra_loop_now(ra_stream_loop(s));
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
      /* the input is consumed: a large message buffer is not kept for the
       * next read unless a message is half received; a small one (a
       * tunnelled request's size) is, so that a busy connection does not
       * allocate per message, until the idle trim (ra_ws_trim) */
      read_trim(c);
      return len;
    case RA_WS_OP_TEXT:
    case RA_WS_OP_BINARY:
      ra_ws__deliver_checked(c->ws, (ra_ws_type)m.opcode, m.data, m.len); /* UTF-8 checked */
      break;
    case RA_WS_OP_PING:
      if (!c->close_sent) write_frame(c, RA_WS_OP_PONG, true, m.data, m.len);
      break;
    case RA_WS_OP_PONG:
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
  if (!c->done && c->ws) read_trim(c); /* as in case 0 */
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
  ra_conn_slot_release(c->slot);
  if (c->keys) OPENSSL_cleanse(c->keys, KEYS_BATCH);
  free(c->keys);
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

/* Every min(ping interval, idle timeout / 2): a peer silent for the idle
 * timeout (no frame, not even a pong) is dropped; otherwise it gets a ping
 * when one is due. */
static void ping_tick(ra_timer *t, void *ud) {
  ws_conn *c = ud;
  if (c->done || c->close_sent) return;
  uint64_t now = ra_loop_now(ra_stream_loop(c->s));
  if (c->idle_ms != RA_WS_OFF && now - c->last_rx >= c->idle_ms) {
    ra_debug("ws: nothing from the peer for %llu ms, dropping it", (unsigned long long)(now - c->last_rx));
    ra_stream_abort(c->s, -ETIMEDOUT);
    return;
  }
  if (c->ping_ms != RA_WS_OFF && now - c->last_ping >= c->ping_ms) {
    c->last_ping = now;
    write_frame(c, RA_WS_OP_PING, true, NULL, 0);
  }
}

static void sink_terminate_conn(ws_conn *c);

/* The HTTP server's shutdown: gracefully (1001, or the route's
 * on_shutdown), or, past its deadline or when it is freed, now. */
static void slot_stop(void *ud, bool now) {
  ws_conn *c = ud;
  if (now) {
    sink_terminate_conn(c); /* also a stream still flushing its close */
    return;
  }
  if (c->ws && !c->done) ra_ws_deliver_shutdown(c->ws);
}

static int sink_send(void *sink, ra_ws_type type, const void *data, size_t len) {
  ws_conn *c = sink;
  if (c->close_sent || c->done) return -EPIPE;
  return write_frame(c, type, true, data, len);
}

/* The frame header goes into the room before data; a client masks in
 * place; the stream queues the frame by reference if the kernel does not
 * take it all at once. */
static int sink_send_owned(void *sink, ra_ws_type type, uint8_t *data, size_t len,
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

static void sink_terminate_conn(ws_conn *c) {
  c->done = true;
  cork_end(c);
  ra_buf_reset(&c->cork);
  ra_stream_abort(c->s, -ECONNABORTED); /* on_close comes deferred */
}

static void sink_terminate(void *sink) { sink_terminate_conn(sink); }

static size_t sink_buffered(void *sink) {
  ws_conn *c = sink;
  return ra_stream_queued(c->s);
}

/* ra_ws_cork: from now to the end of the loop's turn. */
static void sink_cork(void *sink) {
  ws_conn *c = sink;
  if (c->corked || c->done || c->close_sent) return;
  c->corked = true;
  ra_loop_defer(ra_stream_loop(c->s), &c->uncork);
}

/* ra_ws_trim: what is kept between messages, when nothing is pending in it */
static void sink_trim(void *sink) {
  ws_conn *c = sink;
  if (!c->corked && !c->cork.len) ra_buf_free(&c->cork);
  ra_buf_free(&c->scratch); /* filled and consumed within one send */
  ra_ws_assembler_trim(&c->as);
  if (c->keys && !c->keys_left) {
    free(c->keys);
    c->keys = NULL;
  }
}

static const ra_ws_sink_ops stream_sink = {
    .send = sink_send, .send_frame = sink_send_frame, .ping = sink_ping,
    .close = sink_close, .terminate = sink_terminate, .buffered = sink_buffered,
    .send_owned = sink_send_owned, .cork = sink_cork, .trim = sink_trim};

int ra_ws__stream_send_shared(ra_ws *ws, ra_ws__frame *f) {
  if (ws->ops != &stream_sink) return -ENOTSUP;
  ws_conn *c = ws->sink;
  if (c->role != RA_WS_SERVER) return -ENOTSUP; /* client frames are masked each */
  if (c->close_sent || c->done) return -EPIPE;
  if (c->corked) {
    int rc = cork_flush(c); /* what gathered goes first */
    if (rc) return rc;
  }
  f->refs++;
  return ra_stream_write_ref(c->s, f->bytes, f->len, ra_ws__frame_unref, f);
}

int ra_ws_fd(const ra_ws *ws) {
  if (!ws || ws->ops != &stream_sink || !ws->sink) return -1;
  const ws_conn *c = ws->sink;
  return c->s ? ra_stream_fd(c->s) : -1;
}

int ra_ws__attach_stream(ra_ws *ws, ra_stream *s, ra_ws_role role,
                         const uint8_t *rest, size_t rest_len, ra_conn_slot *slot) {
  ws_conn *c = calloc(1, sizeof *c);
  if (!c) return -ENOMEM;
  ra_loop *loop = ra_stream_loop(s);
  c->ws = ws;
  c->s = s;
  c->role = role;
  const ra_ws_opts *o = ra_ws__opts(ws);
  c->close_timeout_ms = o->close_timeout_ms;
  ra_ws_assembler_init(&c->as, role, o->max_message);
  ra_timer_init(loop, &c->close_timer, close_timeout, c);
  ra_timer_init(loop, &c->ping_timer, ping_tick, c);
  ra_defer_init(&c->uncork, uncork_later, c);
  ra_stream_set_userdata(s, &conn_cbs, c);
  ra_stream_set_idle_timeout(s, 0); /* liveness is the pings' business */
  ra_stream_set_watermarks(s, o->send_high_water, o->send_high_water / 4);
  ra_ws_set_sink(ws, &stream_sink, c);
  c->ping_ms = o->ping_interval_ms;
  c->idle_ms = o->idle_timeout_ms;
  c->last_rx = c->last_ping = ra_loop_now(loop);
  uint64_t tick = c->idle_ms == RA_WS_OFF ? RA_WS_OFF : (c->idle_ms + 1) / 2;
  if (c->ping_ms < tick) tick = c->ping_ms;
  if (tick != RA_WS_OFF) ra_timer_start(&c->ping_timer, tick, tick);
  /* Keep c alive across on_open: a terminate from inside it only defers. */
  ra_ws_deliver_open(ws);
  if (rest_len && c->ws && !c->done) conn_on_read(s, rest, rest_len, c);
  /* Counted by the server until the stream closes (c lives until then); a
   * shutdown that started already (an upgrade answered in the same loop
   * turn as the signal) closes ws now, with 1001. */
  c->slot = slot;
  ra_conn_slot_watch(slot, slot_stop, c);
  return 0;
}
