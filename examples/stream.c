/* examples/stream.c: answers that are not ready at once.
 *   GET /later     answers after 200 ms, from a timer (the handler returns
 *                  first); if the client leaves before, the timer is stopped.
 *   GET /count?n=N streams N lines, producing more only when the client has
 *                  read what was sent (on_drain): memory stays flat.
 * Both work the same in plain HTTP and through the attested tunnel. */
#include <raloop.h>
#include <stdio.h>
#include <stdlib.h>

typedef struct later {
  ra_timer timer;
  ra_res *res;
} later;

static void later_fire(ra_timer *t, void *ud) {
  later *l = ud;
  ra_res_send_text(l->res, 200, "sorry for the wait\n");
  free(l);
}

static void later_cancel(ra_res *res, void *ud) {
  later *l = ud;
  ra_timer_stop(&l->timer);
  ra_res_end(res);
  free(l);
}

static void h_later(ra_req *req, ra_res *res, void *ud) {
  later *l = malloc(sizeof *l);
  if (!l) {
    ra_res_send_text(res, 503, "busy\n");
    return;
  }
  l->res = res;
  ra_timer_init(ra_res_loop(res), &l->timer, later_fire, l);
  ra_timer_start(&l->timer, 200, 0);
  ra_res_on_cancel(res, later_cancel, l);
}

typedef struct counter {
  long i, n;
} counter;

/* Writes while less than 64 KiB is waiting for the client, then returns:
 * on_drain calls again once the client has read some. */
static void count_more(ra_res *res, void *ud) {
  counter *c = ud;
  char line[32];
  while (c->i < c->n && ra_res_pending(res) < 64 * 1024) {
    int len = snprintf(line, sizeof line, "%ld\n", c->i++);
    if (ra_res_write(res, line, (size_t)len) < 0) break;
  }
  if (c->i >= c->n) {
    ra_res_end(res);
    free(c);
  }
}

static void count_cancel(ra_res *res, void *ud) {
  ra_res_end(res);
  free(ud);
}

/* ?n=N, 0..10,000,000 (default 10); -1 when malformed. */
static long count_param(ra_req *req) {
  ra_str v;
  if (!ra_req_query_get(req, "n", &v)) return 10;
  long n = 0;
  for (size_t i = 0; i < v.len; i++) {
    if (v.ptr[i] < '0' || v.ptr[i] > '9' || n > 10000000) return -1;
    n = n * 10 + (v.ptr[i] - '0');
  }
  return v.len && n <= 10000000 ? n : -1;
}

static void h_count(ra_req *req, ra_res *res, void *ud) {
  long n = count_param(req);
  counter *c = n >= 0 ? malloc(sizeof *c) : NULL;
  if (!c) {
    ra_res_send_text(res, 400, "n: 0..10000000\n");
    return;
  }
  *c = (counter){0, n};
  ra_res_set_status(res, 200);
  ra_res_add_header(res, "Content-Type", "text/plain");
  ra_res_on_cancel(res, count_cancel, c);
  ra_res_on_drain(res, count_more, c);
  count_more(res, c);
}

int main(int argc, char **argv) {
  ra_router *r;
  if (ra_router_new(&r)) return 1;
  ra_route(r, "GET", "/later", h_later, NULL);
  ra_route(r, "GET", "/count", h_count, NULL);
  const char *listen[] = {argc > 1 ? argv[1] : "127.0.0.1:3000"};
  ra_serve_opts opts = {.listen = listen, .n_listen = 1};
  int rc = ra_serve(r, &opts);
  ra_router_free(r);
  return rc ? 1 : 0;
}
