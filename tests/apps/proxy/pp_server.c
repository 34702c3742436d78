/* tests/apps/proxy/pp_server.c: an HTTP server behind a PROXY-protocol
 * sender (ra_http_server_opts.proxy_protocol): GET /peer answers the
 * client address the header named. For proxy.sh: ra-proxy
 * --proxy-protocol, HAProxy send-proxy-v2 and send-proxy (v1) in front.
 *   pp_server HOST:PORT   prints "listening on PORT", stops on SIGTERM */
#include <signal.h>
#include <stdio.h>

#include "raloop.h"

static void h_peer(ra_req *req, ra_res *res, void *ud) {
  ra_str p = ra_req_peer(req);
  ra_res_sendf(res, 200, "peer=%.*s\n", (int)p.len, p.ptr);
}

static void on_term(ra_loop *loop, int signo, void *ud) { ra_loop_stop(loop); }

int main(int argc, char **argv) {
  if (argc != 2) return 2;
  ra_loop *loop;
  ra_router *r;
  ra_http_server *srv;
  if (ra_loop_new(&loop) || ra_router_new(&r)) return 1;
  ra_route(r, "GET", "/peer", h_peer, NULL);
  ra_http_server_opts o = {0};
  o.proxy_protocol = true;
  if (ra_http_server_new(loop, r, &o, &srv) || ra_http_server_listen(srv, argv[1], NULL)) return 1;
  ra_loop_on_signal(loop, SIGTERM, on_term, NULL);
  printf("listening on %u\n", ra_http_server_port(srv));
  fflush(stdout);
  ra_loop_run(loop);
  ra_http_server_free(srv);
  ra_router_free(r);
  ra_loop_free(loop);
  return 0;
}
