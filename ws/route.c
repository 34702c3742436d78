/* ws/route.c: server routes: the RFC 6455 server handshake on an HTTP
 * request, then the connection handed to the stream transport. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "raloop/core/log.h"
#include "raloop/core/stream.h"
#include "raloop/http/response.h"
#include "raloop/http/router_internal.h"
#include "raloop/ws/handshake.h"
#include "raloop/ws/ws_internal.h"

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

static void on_upgraded(ra_stream *s, const uint8_t *rest, size_t rest_len, ra_conn_slot *slot,
                        void *ud) {
  ws_pending *p = ud;
  ws_route *rt = p->rt;
  if (!s || rt->gone) { /* the connection or the route went away before the hand-over */
    ra_conn_slot_release(slot);
    if (s) ra_stream_abort(s, -ENOENT);
    ws_route_unref(rt);
    free(p);
    return;
  }
  ra_ws *ws;
  ra_ws_new_with_sink(ra_stream_loop(s), NULL, NULL, &rt->h, rt->ud, &rt->opts, &ws);
  if (!ws || ra_ws_set_info(ws, ra_str_make(p->strs, p->path_len),
                            ra_str_make(p->strs + p->path_len + 1, p->proto_len), p->attested) < 0 ||
      ra_ws__attach_stream(ws, s, RA_WS_SERVER, rest, rest_len, slot) < 0) {
    ra_error("ws: out of memory accepting a connection");
    ra_conn_slot_release(slot);
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
    ws_route_unref(rt); /* on_upgraded never runs */
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
  ra_ws__fill_opts(&rt->opts, opts);
  rt->refs = 1;
  /* The block lives as long as the route (and upgrades in flight on it).
   * Registered first: if the route is then refused, the router still frees
   * it (a few bytes, once). */
  int rc = ra_router_on_free(r, ws_route_gone, rt);
  if (rc < 0) {
    free(rt);
    return rc;
  }
  return ra_router__add(r, "GET", pattern, ws_route_handler, rt, flags | RA_ROUTE_WEBSOCKET);
}

int ra_ws_route(ra_router *r, const char *pattern, const ra_ws_handlers *h, void *ud) {
  return ra_ws_route_ex(r, pattern, h, ud, NULL, 0);
}

static bool is_ws_route(const ra_route_match *m) { return m && (m->flags & RA_ROUTE_WEBSOCKET); }

bool ra_ws_route_handlers(const ra_route_match *m, const ra_ws_handlers **h, void **ud) {
  if (!is_ws_route(m)) return false;
  ws_route *rt = m->ud;
  if (h) *h = &rt->h;
  if (ud) *ud = rt->ud;
  return true;
}

const ra_ws_opts *ra_ws_route_opts(const ra_route_match *m) {
  if (!is_ws_route(m)) return NULL;
  return &((ws_route *)m->ud)->opts;
}
