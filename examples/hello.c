/* examples/hello.c: GET /hello, an attested-only GET /secret and a
 * WebSocket echo, also served through the attested tunnel on /__ra__. */
#include <raloop.h>

static void hello(ra_req *req, ra_res *res, void *ud) {
  ra_res_send_text(res, 200, "world");
}

static void secret(ra_req *req, ra_res *res, void *ud) {
  ra_res_sendf(res, 200, "only through the tunnel, %s", ra_req_attested(req) ? "attested" : "not attested");
}

static void echo(ra_ws *ws, ra_ws_type type, const uint8_t *p, size_t n, void *ud) {
  ra_ws_send(ws, type, p, n);
}

int main(void) {
  static const ra_ws_handlers ws_echo = {.on_message = echo};
  ra_router *r;
  if (ra_router_new(&r)) return 1;
  ra_route(r, "GET", "/hello", hello, NULL);
  ra_route_ex(r, "GET", "/secret", secret, NULL, RA_ROUTE_ATTESTED_ONLY); /* 403 in plaintext */
  ra_ws_route(r, "/echo", &ws_echo, NULL);
  /* 127.0.0.1:3000; TEE: configfs-tsm in a TDX guest, else the simulated one */
  int rc = ra_serve(r, NULL);
  ra_router_free(r);
  return rc ? 1 : 0;
}
