/* tests/apps/pkgconfig_app.c: an outside application built against the
 * installed raloop with `pkg-config --cflags --libs raloop`. It serves
 * GET /hi on a free loopback port, fetches it with a raw socket through the
 * loop, and exits 0 if the answer is right. */
#include <raloop.h>

#include <stdio.h>
#include <string.h>

static void hi(ra_req *req, ra_res *res, void *ud) { ra_res_send_text(res, 200, "hi from raloop"); }

typedef struct client {
  ra_loop *loop;
  char got[512];
  size_t len;
} client;

static size_t on_read(ra_stream *s, const uint8_t *data, size_t len, void *ud) {
  client *c = ud;
  size_t n = len < sizeof c->got - 1 - c->len ? len : sizeof c->got - 1 - c->len;
  memcpy(c->got + c->len, data, n);
  c->len += n;
  c->got[c->len] = '\0';
  if (strstr(c->got, "hi from raloop")) ra_loop_stop(c->loop);
  return len;
}

static void on_close(ra_stream *s, int err, void *ud) { ra_loop_stop(((client *)ud)->loop); }

static void on_connect(ra_stream *s, int status, void *ud) {
  if (status) return;
  static const char rq[] = "GET /hi HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
  ra_stream_write(s, rq, sizeof rq - 1);
}

int main(void) {
  ra_loop *loop;
  ra_loop_new(&loop);
  ra_router *r;
  ra_router_new(&r);
  ra_route(r, "GET", "/hi", hi, NULL);
  ra_http_server *srv;
  ra_http_server_new(loop, r, NULL, &srv);
  if (!srv || ra_http_server_listen(srv, "127.0.0.1:0", NULL)) return 1;
  client c = {.loop = loop};
  ra_stream_cbs cbs = {.on_read = on_read, .on_close = on_close};
  if (ra_stream_connect(loop, "127.0.0.1", ra_http_server_port(srv), &cbs, on_connect, &c)) return 1;
  ra_loop_run(loop);
  int ok = strstr(c.got, "HTTP/1.1 200") && strstr(c.got, "hi from raloop");
  printf("%s\n", ok ? "pkg-config app: OK" : c.got);
  ra_http_server_free(srv);
  ra_router_free(r);
  ra_loop_free(loop);
  return ok ? 0 : 1;
}
