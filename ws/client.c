/* ws/client.c: ws:// and wss:// client: URL, connect (and TLS), opening
 * handshake, then the frame transport of ws.c in the client role. */
#include "raloop/ws/client.h"

#include "raloop/http/client_internal.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "raloop/core/buf.h"
#include "raloop/core/error.h"
#include "raloop/core/log.h"
#include "raloop/core/stream.h"
#include "raloop/http/token.h"
#include "raloop/ws/handshake.h"
#include "raloop/ws/ws_internal.h"

#define DEF_HANDSHAKE_TIMEOUT 10000
#define MAX_RESPONSE_HEAD (16u << 10)

typedef struct ws_client {
  ra_ws *ws;
  ra_stream *s;          /* once connected */
  ra_timer timer;
  ra_buf req;            /* the request, sent on connect */
  ra_buf head;           /* response head gathered so far */
  char key[RA_WS_KEY_LEN + 1];
  char *path;
  char **protocols;      /* offered, to check the server's pick */
  size_t nprotocols;
  const char *why;       /* what failed: static text or whybuf */
  char whybuf[160];
  bool cancelled;
  ra_tls_ctx *tls;       /* wss://: our reference for the attempt */
  char *sni;             /* wss://: SNI and the name the certificate must carry */
} ws_client;

static void client_free(ws_client *c) {
  ra_timer_stop(&c->timer);
  ra_buf_free(&c->req);
  ra_buf_free(&c->head);
  for (size_t i = 0; i < c->nprotocols; i++) free(c->protocols[i]);
  free(c->protocols);
  free(c->path);
  ra_tls_ctx_unref(c->tls);
  free(c->sni);
  free(c);
}

/* The attempt is over without a connection: tell the application. */
static void client_fail_now(ws_client *c, const char *why) {
  ra_ws *ws = c->ws;
  c->ws = NULL;
  /* why may live in c: report first, free after (ws is closed by then, so
   * nothing reaches c through its sink) */
  if (ws) ra_ws_deliver_close(ws, RA_WS_CLOSE_ABNORMAL, ra_str_cstr(why));
  client_free(c);
}

/* Fails the attempt: through the stream's on_close if there is one. While
 * the connect is in progress (a SYN nobody answers takes minutes to fail),
 * the application is told from the loop at once (the timer, due now), and
 * on_connect only cleans up once the connect resolves. */
static void client_fail(ws_client *c, const char *why) {
  if (!c->why) c->why = why;
  if (c->s) {
    ra_stream_abort(c->s, -ECONNABORTED);
    return;
  }
  c->cancelled = true;
  ra_timer_start(&c->timer, 0, 0);
}

/* ---- sink while connecting: nothing can be sent yet --------------------- */

static int pre_send(void *sink, ra_ws_type t, const void *d, size_t l) { return -ENOTCONN; }
static int pre_close(void *sink, uint16_t code, ra_str reason) {
  client_fail(sink, "cancelled");
  return 0;
}
static void pre_terminate(void *sink) { client_fail(sink, "cancelled"); }
static const ra_ws_sink_ops connecting_ops = {
    .send = pre_send, .close = pre_close, .terminate = pre_terminate};

/* ---- response head ------------------------------------------------------ */

static ra_str trim(ra_str s) {
  while (s.len && (s.ptr[0] == ' ' || s.ptr[0] == '\t')) s.ptr++, s.len--;
  while (s.len && (s.ptr[s.len - 1] == ' ' || s.ptr[s.len - 1] == '\t')) s.len--;
  return s;
}

/* Checks the head (status line + headers, without the final CRLF CRLF).
 * Returns NULL when acceptable, else why not. *proto gets the protocol. */
static const char *check_head(ws_client *c, const char *p, size_t n, ra_str *proto) {
  const char *end = p + n;
  const char *eol = memmem(p, n, "\r\n", 2);
  if (!eol) eol = end;
  /* "HTTP/1.1 101 Switching Protocols" */
  if (eol - p < 12 || memcmp(p, "HTTP/1.", 7) != 0 || p[8] != ' ')
    return "handshake: malformed status line";
  if (memcmp(p + 9, "101", 3) != 0 || (eol - p > 12 && p[12] != ' ')) {
    snprintf(c->whybuf, sizeof c->whybuf, "handshake refused: HTTP %.3s", p + 9);
    return c->whybuf;
  }
  bool upgrade = false, connection = false, accept_ok = false;
  char want[RA_WS_ACCEPT_LEN + 1];
  if (ra_ws_accept_value(ra_str_cstr(c->key), want) < 0) return "handshake: digest failed";
  *proto = RA_STR("");
  const char *line = eol + 2;
  while (line < end) {
    const char *le = memmem(line, (size_t)(end - line), "\r\n", 2);
    if (!le) le = end;
    if (*line == ' ' || *line == '\t') return "handshake: folded header";
    const char *colon = memchr(line, ':', (size_t)(le - line));
    if (!colon || colon == line) return "handshake: malformed header";
    ra_str name = ra_str_make(line, (size_t)(colon - line));
    ra_str val = trim(ra_str_make(colon + 1, (size_t)(le - colon - 1)));
    if (ra_str_eq_nocase(name, RA_STR("Upgrade"))) {
      if (ra_ws_has_token(val, "websocket")) upgrade = true;
    } else if (ra_str_eq_nocase(name, RA_STR("Connection"))) {
      if (ra_ws_has_token(val, "upgrade")) connection = true;
    } else if (ra_str_eq_nocase(name, RA_STR("Sec-WebSocket-Accept"))) {
      if (accept_ok || val.len != RA_WS_ACCEPT_LEN || memcmp(val.ptr, want, RA_WS_ACCEPT_LEN) != 0)
        return "handshake: wrong Sec-WebSocket-Accept";
      accept_ok = true;
    } else if (ra_str_eq_nocase(name, RA_STR("Sec-WebSocket-Protocol"))) {
      bool offered = false;
      for (size_t i = 0; i < c->nprotocols && !offered; i++)
        offered = ra_str_eq_cstr(val, c->protocols[i]);
      if (!offered || proto->len) return "handshake: server chose a protocol we did not offer";
      *proto = val;
    } else if (ra_str_eq_nocase(name, RA_STR("Sec-WebSocket-Extensions"))) {
      if (val.len) return "handshake: server chose an extension we did not offer";
    }
    line = le + 2;
  }
  if (!upgrade) return "handshake: no Upgrade: websocket";
  if (!connection) return "handshake: no Connection: upgrade";
  if (!accept_ok) return "handshake: no Sec-WebSocket-Accept";
  return NULL;
}

/* ---- stream callbacks during the handshake ------------------------------- */

static size_t hs_on_read(ra_stream *s, const uint8_t *data, size_t len, void *ud) {
  ws_client *c = ud;
  if (c->cancelled) return len;
  size_t had = c->head.len;
  if (ra_buf_append(&c->head, data, len) < 0) {
    client_fail(c, "out of memory");
    return len;
  }
  const char *h = (const char *)ra_buf_ptr(&c->head);
  /* search from a little before the new bytes: the CRLFCRLF may straddle */
  size_t from = had > 3 ? had - 3 : 0;
  const char *e = memmem(h + from, c->head.len - from, "\r\n\r\n", 4);
  if (!e) {
    if (c->head.len > MAX_RESPONSE_HEAD) client_fail(c, "handshake: response head too large");
    return len;
  }
  size_t head_len = (size_t)(e - h);
  size_t rest_off = head_len + 4 - had; /* first byte after the head in data */
  ra_str proto;
  const char *why = check_head(c, h, head_len, &proto);
  if (why) {
    client_fail(c, why);
    return len;
  }
  ra_ws *ws = c->ws;
  if (ra_ws_set_info(ws, ra_str_cstr(c->path), proto, false) < 0) {
    client_fail(c, "out of memory");
    return len;
  }
  ra_timer_stop(&c->timer);
  /* From here on the stream belongs to the frame transport. */
  c->ws = NULL;
  c->s = NULL;
  if (ra_ws__attach_stream(ws, s, RA_WS_CLIENT, data + rest_off, len - rest_off, NULL) < 0) {
    c->ws = ws;
    c->s = s;
    client_fail(c, "out of memory");
    return len;
  }
  client_free(c);
  return len;
}

static void hs_on_close(ra_stream *s, int err, void *ud) {
  ws_client *c = ud;
  const char *why = c->why;
  if (!why && c->tls && err < 0 && !ra_stream_tls_handshake_done(s)) {
    /* TLS failures come as RA_ERR_TLS_* or the verify callback's code */
    const char *detail = ra_stream_tls_error(s);
    snprintf(c->whybuf, sizeof c->whybuf, "connect/TLS failed: %s%s%s", ra_strerror(err),
             detail && *detail ? ": " : "", detail ? detail : "");
    why = c->whybuf;
  }
  if (!why) why = err ? "connection lost during the handshake" : "connection closed during the handshake";
  client_fail_now(c, why);
}

static const ra_stream_cbs hs_cbs = {.on_read = hs_on_read, .on_close = hs_on_close};

static void on_connect(ra_stream *s, int status, void *ud) {
  ws_client *c = ud;
  if (status < 0) {
    if (!c->why) {
      /* TLS failures come as RA_ERR_TLS_* or the verify callback's code */
      snprintf(c->whybuf, sizeof c->whybuf, "%s failed: %s", c->tls ? "connect/TLS" : "connect",
               ra_strerror(status));
      c->why = c->whybuf;
    }
    client_fail_now(c, c->why);
    return;
  }
  c->s = s;
  if (c->cancelled) {
    ra_stream_abort(s, -ECONNABORTED);
    return;
  }
  /* TLS starts once TCP is up, so that the stream is ours to abort during
   * the TLS handshake too; the request goes out right after it. */
  if (c->tls && ra_stream_start_tls(s, c->tls, c->sni) < 0) {
    client_fail(c, "could not start TLS");
    return;
  }
  if (ra_stream_write(s, ra_buf_ptr(&c->req), c->req.len) < 0) {
    client_fail(c, "could not send the handshake");
    return;
  }
  ra_buf_free(&c->req);
}

/* The handshake deadline, or a failure while still connecting. */
static void hs_timer(ra_timer *t, void *ud) {
  ws_client *c = ud;
  if (c->s) {
    client_fail(c, "handshake timed out");
    return;
  }
  if (!c->why) c->why = "handshake timed out";
  c->cancelled = true;
  ra_ws *ws = c->ws;
  c->ws = NULL; /* c stays until on_connect: the stream still points at it */
  if (ws) ra_ws_deliver_close(ws, RA_WS_CLOSE_ABNORMAL, ra_str_cstr(c->why));
}

/* ---- URL and request ----------------------------------------------------- */

#define MAX_HEADER_NAME 127

/* What goes into the request is checked before anything is sent:
 * subprotocols are tokens (RFC 6455 4.1), headers well-formed fields. */
static bool client_opts_valid(const ra_ws_client_opts *o) {
  for (size_t i = 0; i < o->nprotocols; i++)
    if (!o->protocols[i] || !ra_http_token_valid(ra_str_cstr(o->protocols[i]))) return false;
  for (size_t i = 0; i < o->nheaders; i++) {
    ra_header h = o->headers[i];
    if (h.name.len > MAX_HEADER_NAME || !ra_http_token_valid(h.name) ||
        !ra_http_field_value_valid(h.value))
      return false;
  }
  return true;
}

int ra_ws_connect(ra_loop *loop, const char *url, const ra_ws_client_opts *opts,
                  const ra_ws_handlers *h, void *ud, ra_ws **out) {
  if (!loop || !url) return -EINVAL;
  ra_http_url u; /* the HTTP client's URL splitter, ws:// only */
  int rc = ra_http_url_parse(url, &u);
  if (rc < 0) return rc;
  if (!u.ws) return -EINVAL;
  const char *host = u.host, *host_hdr = u.host_hdr, *target = u.target;
  uint16_t port = u.port;
  ra_ws_client_opts o;
  if (opts) o = *opts;
  else memset(&o, 0, sizeof o);
  if (!client_opts_valid(&o)) return -EINVAL;

  ws_client *c = calloc(1, sizeof *c);
  if (!c) return -ENOMEM;
  ra_timer_init(loop, &c->timer, hs_timer, c);
  rc = -ENOMEM;
  const char *path = *target ? target : "/";
  c->path = strndup(path, strcspn(path, "?"));
  if (!c->path) goto fail;
  if (*c->path == 0) {
    free(c->path);
    c->path = strdup("/");
    if (!c->path) goto fail;
  }
  if (o.nprotocols) {
    c->protocols = calloc(o.nprotocols, sizeof *c->protocols);
    if (!c->protocols) goto fail;
    for (; c->nprotocols < o.nprotocols; c->nprotocols++)
      if (!(c->protocols[c->nprotocols] = strdup(o.protocols[c->nprotocols]))) goto fail;
  }
  if (ra_ws_key_generate(c->key) < 0) {
    rc = -EIO;
    goto fail;
  }
  ra_buf *r = &c->req;
  if (ra_buf_printf(r, "GET %s%s HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\n"
                       "Connection: Upgrade\r\nSec-WebSocket-Key: %s\r\n"
                       "Sec-WebSocket-Version: 13\r\n",
                    *target == '?' ? "/" : "", *target ? target : "/", host_hdr, c->key) < 0)
    goto fail;
  if (o.nprotocols) {
    if (ra_buf_append_str(r, "Sec-WebSocket-Protocol: ") < 0) goto fail;
    for (size_t i = 0; i < o.nprotocols; i++)
      if (ra_buf_printf(r, "%s%s", i ? ", " : "", o.protocols[i]) < 0) goto fail;
    if (ra_buf_append_str(r, "\r\n") < 0) goto fail;
  }
  for (size_t i = 0; i < o.nheaders; i++)
    if (ra_buf_append(r, o.headers[i].name.ptr, o.headers[i].name.len) < 0 ||
        ra_buf_append_str(r, ": ") < 0 ||
        ra_buf_append(r, o.headers[i].value.ptr, o.headers[i].value.len) < 0 ||
        ra_buf_append_str(r, "\r\n") < 0)
      goto fail;
  if (ra_buf_append_str(r, "\r\n") < 0) goto fail;

  if (u.tls) {
    if (o.tls) {
      c->tls = ra_tls_ctx_ref(o.tls);
    } else {
      char err[160];
      ra_tls_client_opts to;
      memset(&to, 0, sizeof to);
      rc = ra_tls_client_ctx_new(&to, &c->tls, err, sizeof err);
      if (rc) {
        ra_error("ws client: %s: %s", url, err);
        rc = rc == -ENOMEM ? rc : -EINVAL;
        goto fail;
      }
    }
  }
  rc = -ENOMEM;
  ra_ws_new_with_sink(loop, &connecting_ops, c, h, ud, &o.ws, &c->ws);
  if (!c->ws) goto fail;
  if (c->tls && !(c->sni = strdup(o.tls_server_name ? o.tls_server_name : host))) goto fail;
  rc = ra_stream_connect(loop, host, port, &hs_cbs, on_connect, c);
  if (rc < 0) goto fail;
  ra_timer_start(&c->timer, o.handshake_timeout_ms ? o.handshake_timeout_ms : DEF_HANDSHAKE_TIMEOUT, 0);
  if (out) *out = c->ws;
  return 0;

fail:
  if (c->ws) {
    ra_ws__free(c->ws); /* never opened, never reported: no on_close */
    c->ws = NULL;
  }
  client_free(c);
  return rc;
}
