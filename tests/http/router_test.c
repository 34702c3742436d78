/* tests/http/router_test.c: route matching, parameters, decoding, and the
 * router's own answers (404, 405+Allow, OPTIONS, HEAD, 403), through the
 * transport-neutral request/response with a capturing sink. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "raloop/http/request.h"
#include "raloop/http/request_internal.h"
#include "raloop/http/response.h"
#include "raloop/http/router.h"

/* ---- a sink that records what the router/handler answered ------------------ */

typedef struct cap {
  int status;
  int64_t clen;
  char headers[1024];
  char body[1024];
  size_t body_len;
  int ended;
} cap;

static int cap_head(void *s, int status, const ra_header *h, size_t n, int64_t clen) {
  cap *c = s;
  c->status = status;
  c->clen = clen;
  size_t o = 0;
  for (size_t i = 0; i < n; i++)
    o += (size_t)snprintf(c->headers + o, sizeof c->headers - o, "%.*s: %.*s\n", (int)h[i].name.len,
                          h[i].name.ptr, (int)h[i].value.len, h[i].value.ptr);
  return 0;
}
static int cap_body(void *s, const void *d, size_t n) {
  cap *c = s;
  memcpy(c->body + c->body_len, d, n);
  c->body_len += n;
  c->body[c->body_len] = '\0';
  return 0;
}
static int cap_end(void *s) {
  ((cap *)s)->ended++;
  return 0;
}
static const ra_res_sink_ops cap_ops = {.head = cap_head, .body = cap_body, .end = cap_end};

/* Records which handler ran and with which params. */
static char last[256];

static void h_named(ra_req *req, ra_res *res, void *ud) {
  ra_str id, rest;
  char p[128] = "";
  if (ra_req_param(req, "id", &id)) snprintf(p, sizeof p, " id=%.*s", (int)id.len, id.ptr);
  if (ra_req_param(req, "*", &rest))
    snprintf(p + strlen(p), sizeof p - strlen(p), " *=%.*s", (int)rest.len, rest.ptr);
  snprintf(last, sizeof last, "%s%s", (const char *)ud, p);
  ra_res_send_text(res, 200, "body");
}

static cap run(ra_router *r, const char *method, const char *target, bool attested) {
  cap c;
  memset(&c, 0, sizeof c);
  last[0] = '\0';
  ra_req *req;
  assert_int_equal(ra_req_new(ra_str_cstr(method), ra_str_cstr(target), 11, attested, &req), 0);
  assert_non_null(req);
  ra_res *res;
  assert_int_equal(ra_res_new(NULL, req, &cap_ops, &c, &res), 0);
  assert_non_null(res);
  ra_router_handle(r, req, res);
  assert_int_equal(c.ended, 1); /* every path ends the response exactly once */
  return c;
}

static ra_router *make(void) {
  ra_router *r;
  assert_int_equal(ra_router_new(&r), 0);
  assert_int_equal(ra_route(r, "GET", "/", h_named, "root"), 0);
  assert_int_equal(ra_route(r, "GET", "/users/new", h_named, "users-new"), 0);
  assert_int_equal(ra_route(r, "GET", "/users/:id", h_named, "users-id"), 0);
  assert_int_equal(ra_route(r, "POST", "/users/:id", h_named, "users-id-post"), 0);
  assert_int_equal(ra_route(r, "GET", "/users/:id/posts", h_named, "posts"), 0);
  assert_int_equal(ra_route(r, "GET", "/static/*", h_named, "static"), 0);
  assert_int_equal(ra_route(r, "GET", "/static/special", h_named, "special"), 0);
  assert_int_equal(ra_route(r, "PUT", "/only-put", h_named, "put"), 0);
  assert_int_equal(ra_route(r, "DELETE", "/a/b/", h_named, "slash"), 0);
  assert_int_equal(ra_route(r, "*", "/any", h_named, "any"), 0);
  assert_int_equal(ra_route(r, "POST", "/x/new", h_named, "x-new-post"), 0);
  assert_int_equal(ra_route(r, "GET", "/x/:id", h_named, "x-id"), 0);
  assert_int_equal(ra_route_ex(r, "GET", "/secret", h_named, "secret", RA_ROUTE_ATTESTED_ONLY), 0);
  assert_int_equal(ra_route(r, "OPTIONS", "/opt", h_named, "opt"), 0);
  return r;
}

static void test_static_param_wildcard(void **state) {
  ra_router *r = make();
  cap c = run(r, "GET", "/", false);
  assert_int_equal(c.status, 200);
  assert_string_equal(last, "root");
  run(r, "GET", "/users/new", false);
  assert_string_equal(last, "users-new"); /* static beats param */
  run(r, "GET", "/users/42", false);
  assert_string_equal(last, "users-id id=42");
  run(r, "POST", "/users/7", false);
  assert_string_equal(last, "users-id-post id=7");
  run(r, "GET", "/users/42/posts", false);
  assert_string_equal(last, "posts id=42");
  run(r, "GET", "/static/css/site.css", false);
  assert_string_equal(last, "static *=css/site.css");
  run(r, "GET", "/static/special", false);
  assert_string_equal(last, "special"); /* static beats wildcard */
  run(r, "GET", "/static/", false);
  assert_string_equal(last, "static *=");
  c = run(r, "GET", "/static", false);
  assert_int_equal(c.status, 404); /* the wildcard needs the slash */
  c = run(r, "GET", "/users/", false);
  assert_int_equal(c.status, 404); /* a parameter never matches "" */
  c = run(r, "GET", "/users/42/", false);
  assert_int_equal(c.status, 404); /* trailing slash is a different path */
  run(r, "DELETE", "/a/b/", false);
  assert_string_equal(last, "slash");
  c = run(r, "DELETE", "/a/b", false);
  assert_int_equal(c.status, 404);
  ra_router_free(r);
}

static void test_backtracking(void **state) {
  ra_router *r = make();
  /* Only POST on the static /x/new: GET falls back to /x/:id. */
  run(r, "GET", "/x/new", false);
  assert_string_equal(last, "x-id id=new");
  run(r, "POST", "/x/new", false);
  assert_string_equal(last, "x-new-post");
  cap c = run(r, "PUT", "/x/new", false);
  assert_int_equal(c.status, 405);
  assert_non_null(strstr(c.headers, "Allow: POST, GET, HEAD, OPTIONS"));
  ra_router_free(r);
}

static void test_percent_decoding(void **state) {
  ra_router *r = make();
  run(r, "GET", "/users/%41%62c", false);
  assert_string_equal(last, "users-id id=Abc");
  run(r, "GET", "/us%65rs/a%20b", false);
  assert_string_equal(last, "users-id id=a b"); /* static segments match decoded */
  run(r, "GET", "/users/a+b", false);
  assert_string_equal(last, "users-id id=a+b"); /* '+' is only a space in queries */
  run(r, "GET", "/static/a/./b/../c", false);
  assert_string_equal(last, "static *=a/c");
  run(r, "GET", "/users/x/..", false);
  assert_string_equal(last, ""); /* "/users/" -> 404 */
  cap c = run(r, "GET", "/users/%2F", false);
  assert_int_equal(c.status, 400); /* encoded slash refused */
  c = run(r, "GET", "/users/%00", false);
  assert_int_equal(c.status, 400);
  c = run(r, "GET", "/users/%zz", false);
  assert_int_equal(c.status, 400);
  c = run(r, "GET", "/users/%4", false);
  assert_int_equal(c.status, 400);
  c = run(r, "GET", "/users/%", false);
  assert_int_equal(c.status, 400);
  c = run(r, "GET", "/..", false);
  assert_int_equal(c.status, 400); /* above the root */
  c = run(r, "GET", "/static/%2e%2e/%2e%2e/etc", false);
  assert_int_equal(c.status, 400); /* encoded dots are dots */
  c = run(r, "GET", "relative", false);
  assert_int_equal(c.status, 400);
  run(r, "GET", "http://example.com/users/9?x=1", false);
  assert_string_equal(last, "users-id id=9"); /* absolute-form */
  ra_router_free(r);
}

static void test_query(void **state) {
  ra_req *req;
  assert_int_equal(ra_req_new(RA_STR("GET"), RA_STR("/p%20q?a=1&b=x+y%21&a=2&empty=&flag&n%61me=v&bad=%zz"), 11, false, &req), 0);
  ra_str v;
  assert_true(ra_str_eq_cstr(ra_req_path(req), "/p q"));
  assert_true(ra_str_eq_cstr(ra_req_query(req), "a=1&b=x+y%21&a=2&empty=&flag&n%61me=v&bad=%zz"));
  assert_true(ra_req_query_get(req, "a", &v));
  assert_true(ra_str_eq_cstr(v, "1")); /* the first one */
  assert_true(ra_req_query_get(req, "b", &v));
  assert_true(ra_str_eq_cstr(v, "x y!"));
  assert_true(ra_req_query_get(req, "empty", &v));
  assert_int_equal(v.len, 0);
  assert_true(ra_req_query_get(req, "flag", &v));
  assert_int_equal(v.len, 0);
  assert_true(ra_req_query_get(req, "name", &v)); /* names are decoded too */
  assert_true(ra_str_eq_cstr(v, "v"));
  assert_false(ra_req_query_get(req, "bad", &v)); /* malformed: absent */
  assert_false(ra_req_query_get(req, "zzz", &v));
  assert_true(ra_str_eq_cstr(ra_req_target(req), "/p%20q?a=1&b=x+y%21&a=2&empty=&flag&n%61me=v&bad=%zz"));
  ra_req_free(req);
  assert_int_equal(ra_req_new(RA_STR("GET"), RA_STR("/"), 10, false, &req), 0);
  assert_false(ra_req_query_get(req, "a", &v));
  assert_int_equal(ra_req_query(req).len, 0);
  assert_int_equal(ra_req_http_version(req), 10);
  ra_req_free(req);
}

static void test_headers_and_body(void **state) {
  ra_req *req;
  assert_int_equal(ra_req_new(RA_STR("POST"), RA_STR("/x"), 11, false, &req), 0);
  assert_int_equal(ra_req_add_header(req, RA_STR("Content-Type"), RA_STR("text/plain")), 0);
  assert_int_equal(ra_req_add_header(req, RA_STR("X-A"), RA_STR("1")), 0);
  assert_int_equal(ra_req_add_header(req, RA_STR("x-a"), RA_STR("2")), 0);
  assert_int_equal(ra_req_append_body(req, "he", 2), 0);
  assert_int_equal(ra_req_append_body(req, "llo", 3), 0);
  ra_str v;
  assert_true(ra_req_header(req, "content-type", &v));
  assert_true(ra_str_eq_cstr(v, "text/plain"));
  assert_true(ra_req_header(req, "X-a", &v));
  assert_true(ra_str_eq_cstr(v, "1"));
  assert_false(ra_req_header(req, "nope", &v));
  assert_int_equal(ra_req_header_count(req), 3);
  ra_header h = ra_req_header_at(req, 2);
  assert_true(ra_str_eq_cstr(h.name, "x-a"));
  assert_true(ra_str_eq_cstr(ra_req_body(req), "hello"));
  ra_req_free(req);
}

static void test_405_options_head(void **state) {
  ra_router *r = make();
  cap c = run(r, "DELETE", "/users/1", false);
  assert_int_equal(c.status, 405);
  assert_non_null(strstr(c.headers, "Allow: GET, POST, HEAD, OPTIONS"));
  c = run(r, "GET", "/only-put", false);
  assert_int_equal(c.status, 405);
  assert_non_null(strstr(c.headers, "Allow: PUT, OPTIONS"));
  c = run(r, "OPTIONS", "/users/1", false);
  assert_int_equal(c.status, 204);
  assert_non_null(strstr(c.headers, "Allow: GET, POST, HEAD, OPTIONS"));
  assert_int_equal(c.body_len, 0);
  run(r, "OPTIONS", "/opt", false);
  assert_string_equal(last, "opt"); /* an explicit OPTIONS route wins */
  c = run(r, "OPTIONS", "/nothing", false);
  assert_int_equal(c.status, 404);
  c = run(r, "OPTIONS", "*", false);
  assert_int_equal(c.status, 204);
  assert_non_null(strstr(c.headers, "Allow: "));
  assert_non_null(strstr(c.headers, "PUT"));
  /* HEAD through the GET route: handler runs, body suppressed, length kept */
  c = run(r, "HEAD", "/users/5", false);
  assert_string_equal(last, "users-id id=5");
  assert_int_equal(c.status, 200);
  assert_int_equal(c.clen, 4);
  assert_int_equal(c.body_len, 0);
  c = run(r, "HEAD", "/only-put", false);
  assert_int_equal(c.status, 405);
  /* "*" method: anything */
  run(r, "PATCH", "/any", false);
  assert_string_equal(last, "any");
  run(r, "OPTIONS", "/any", false);
  assert_string_equal(last, "any");
  ra_router_free(r);
}

static void test_attested_only(void **state) {
  ra_router *r = make();
  cap c = run(r, "GET", "/secret", false);
  assert_int_equal(c.status, 403);
  assert_string_equal(last, "");
  c = run(r, "GET", "/secret", true);
  assert_int_equal(c.status, 200);
  assert_string_equal(last, "secret");
  ra_router_free(r);
}

static int freed_order[4], nfreed;
static void on_router_free(void *ud) { freed_order[nfreed++] = (int)(intptr_t)ud; }

static void test_route_errors_and_match(void **state) {
  ra_router *r = make();
  nfreed = 0;
  assert_int_equal(ra_router_on_free(r, on_router_free, (void *)1), 0);
  assert_int_equal(ra_router_on_free(r, on_router_free, (void *)2), 0);
  assert_int_equal(ra_route(r, "GET", "/users/:id", h_named, NULL), -EEXIST);
  assert_int_equal(ra_route(r, "GET", "/users/:name/x", h_named, NULL), -EINVAL);
  assert_int_equal(ra_route(r, "GET", "nos", h_named, NULL), -EINVAL);
  assert_int_equal(ra_route(r, "GET", "/a/*/b", h_named, NULL), -EINVAL);
  assert_int_equal(ra_route(r, "GET", "/a/:", h_named, NULL), -EINVAL);
  assert_int_equal(ra_route(r, "G ET", "/a", h_named, NULL), -EINVAL);
  assert_int_equal(ra_route(r, "GET\r\n", "/a", h_named, NULL), -EINVAL);
  assert_int_equal(ra_route(r, "", "/a", h_named, NULL), -EINVAL);
  /* any RFC 9110 token is a method */
  assert_int_equal(ra_route(r, "M-SEARCH", "/a", h_named, NULL), 0);
  assert_int_equal(ra_route(r, "X.Custom~1", "/a", h_named, NULL), 0);
  assert_int_equal(ra_route(r, "GET", "/a", NULL, NULL), -EINVAL);

  ra_route_match m;
  ra_req *req;
  assert_int_equal(ra_req_new(RA_STR("GET"), RA_STR("/users/77/posts"), 11, false, &req), 0);
  assert_int_equal(ra_router_match(r, RA_STR("GET"), ra_req_path(req), req, &m), 0);
  assert_ptr_equal(m.handler, h_named);
  assert_string_equal((const char *)m.ud, "posts");
  ra_str id;
  assert_true(ra_req_param(req, "id", &id));
  assert_true(ra_str_eq_cstr(id, "77"));
  assert_int_equal(ra_router_match(r, RA_STR("DELETE"), RA_STR("/users/1"), NULL, &m), -EPERM);
  assert_int_equal(ra_router_match(r, RA_STR("GET"), RA_STR("/zzz"), NULL, &m), -ENOENT);
  assert_int_equal(ra_router_match(r, RA_STR("GET"), RA_STR("/secret"), NULL, &m), 0);
  assert_true(m.flags & RA_ROUTE_ATTESTED_ONLY);
  ra_req_free(req);
  ra_router_free(r);
  assert_int_equal(nfreed, 2);
  assert_int_equal(freed_order[0], 2); /* last registered first */
  assert_int_equal(freed_order[1], 1);
}

/* RA_ROUTE_CLIENT_ATTESTED: 403 JSON with a reason unless the request
 * carries a client identity (set by the tunnel); the handler reads it. */
static void h_whoami(ra_req *req, ra_res *res, void *ud) {
  const ra_client_identity *id = ra_req_client_identity(req);
  snprintf(last, sizeof last, "whoami tee=%u app=%d", id ? id->tee : 9999u, id ? id->has_app_id : -1);
  ra_res_send_text(res, 200, "me");
}

static void test_client_attested(void **state) {
  ra_router *r;
  assert_int_equal(ra_router_new(&r), 0);
  assert_int_equal(ra_route_ex(r, "GET", "/whoami", h_whoami, NULL, RA_ROUTE_CLIENT_ATTESTED), 0);
  cap c = run(r, "GET", "/whoami", false);
  assert_int_equal(c.status, 403);
  assert_non_null(strstr(c.body, "\"error\":\"client attestation required\""));
  assert_non_null(strstr(c.headers, "application/json"));
  c = run(r, "GET", "/whoami", true); /* the tunnel, no identity */
  assert_int_equal(c.status, 403);
  assert_non_null(strstr(c.body, "presented no attestation"));
  assert_string_equal(last, "");
  /* with an identity */
  memset(&c, 0, sizeof c);
  ra_req *req;
  assert_int_equal(ra_req_new(RA_STR("GET"), RA_STR("/whoami"), 11, true, &req), 0);
  ra_client_identity id = {.tee = 0x81, .has_app_id = true, .app_id_len = 20};
  assert_int_equal(ra_req_set_client_identity(req, &id), 0);
  id.tee = 1; /* copied: later changes do not show */
  assert_int_equal(ra_req_client_identity(req)->tee, 0x81);
  ra_res *res;
  assert_int_equal(ra_res_new(NULL, req, &cap_ops, &c, &res), 0);
  ra_router_handle(r, req, res);
  assert_int_equal(c.status, 200);
  assert_string_equal(last, "whoami tee=129 app=1");
  ra_router_free(r);
}

static void on_cancel_count(ra_res *res, void *ud) { (*(int *)ud)++; }
static void on_upgrade_unused(ra_stream *s, const uint8_t *rest, size_t n, ra_conn_slot *slot,
                              void *ud) { fail(); }

/* The request's arena refuses sizes it cannot round or account for,
 * instead of wrapping to a tiny block. */
static void test_arena_overflow(void **state) {
  ra_req *req;
  assert_int_equal(ra_req_new(RA_STR("GET"), RA_STR("/x"), 11, false, &req), 0);
  assert_non_null(req);
  assert_null(ra_req_alloc(req, SIZE_MAX));
  assert_null(ra_req_alloc(req, SIZE_MAX - 8));
  char *p = ra_req_alloc(req, 100);
  assert_non_null(p);
  memset(p, 'x', 100);
  ra_req_free(req);
}

static void test_response_api(void **state) {
  cap c;
  memset(&c, 0, sizeof c);
  ra_req *req;
  assert_int_equal(ra_req_new(RA_STR("GET"), RA_STR("/"), 11, false, &req), 0);
  ra_res *res;
  assert_int_equal(ra_res_new(NULL, req, &cap_ops, &c, &res), 0);
  assert_int_equal(ra_res_add_header(res, "X-Bad", "a\r\nInjected: 1"), -EINVAL);
  assert_int_equal(ra_res_add_header(res, "Bad Name", "v"), -EINVAL);
  for (int i = 0; i < 40; i++) assert_int_equal(ra_res_add_header(res, "X-Many", "value"), 0);
  assert_int_equal(ra_res_set_status(res, 99), -EINVAL);
  assert_int_equal(ra_res_set_status(res, 201), 0);
  assert_int_equal(ra_res_write(res, "ab", 2), 0);
  assert_int_equal(ra_res_add_header(res, "X-Late", "v"), -EALREADY);
  assert_int_equal(ra_res_write(res, "cd", 2), 0);
  assert_int_equal(c.status, 201);
  assert_int_equal(c.clen, -1);
  assert_non_null(strstr(c.headers, "X-Many: value\nX-Many: value"));
  assert_int_equal(ra_res_end(res), 0);
  assert_string_equal(c.body, "abcd");
  assert_int_equal(c.ended, 1);

  /* cancelled: writes fail, on_cancel runs once, the late end frees */
  memset(&c, 0, sizeof c);
  assert_int_equal(ra_req_new(RA_STR("GET"), RA_STR("/"), 11, false, &req), 0);
  assert_int_equal(ra_res_new(NULL, req, &cap_ops, &c, &res), 0);
  int cancelled = 0;
  ra_res_on_cancel(res, on_cancel_count, &cancelled);
  ra_res_cancel(res);
  ra_res_cancel(res);
  assert_int_equal(cancelled, 1);
  assert_true(ra_res_cancelled(res));
  assert_int_equal(ra_res_write(res, "x", 1), -ECANCELED);
  assert_int_equal(ra_res_send_text(res, 200, "late"), -ECANCELED);
  assert_int_equal(c.ended, 0);
  /* upgrade on a sink without it */
  assert_int_equal(ra_req_new(RA_STR("GET"), RA_STR("/"), 11, false, &req), 0);
  assert_int_equal(ra_res_new(NULL, req, &cap_ops, &c, &res), 0);
  assert_int_equal(ra_res_upgrade(res, on_upgrade_unused, NULL), -ENOTSUP);
  ra_res_end(res);
}

/* ra_router_remove: the route stops matching (the rest stay), a second
 * removal is -ENOENT, and the on_free cleanups of its user data run then,
 * unless another route still has that user data. */
static int g_cleaned;
static void count_cleanup(void *ud) { g_cleaned += *(int *)ud; }
static void test_remove(void **state) {
  ra_router *r = make();
  static int one = 1, ten = 10;
  assert_int_equal(ra_route(r, "GET", "/owned/a", h_named, &one), 0);
  assert_int_equal(ra_route(r, "GET", "/owned/b", h_named, &one), 0);
  assert_int_equal(ra_route(r, "GET", "/solo", h_named, &ten), 0);
  assert_int_equal(ra_router_on_free(r, count_cleanup, &one), 0);
  assert_int_equal(ra_router_on_free(r, count_cleanup, &ten), 0);
  g_cleaned = 0;
  assert_int_equal(ra_router_remove(r, "GET", "/users/:id"), 0);
  assert_int_equal(run(r, "GET", "/users/42", false).status, 405); /* POST is still there */
  run(r, "POST", "/users/7", false);
  assert_string_equal(last, "users-id-post id=7");
  assert_int_equal(ra_router_remove(r, "GET", "/users/:id"), -ENOENT);
  assert_int_equal(ra_router_remove(r, "GET", "/users/:name"), -ENOENT);
  assert_int_equal(ra_router_remove(r, "GET", "/nowhere"), -ENOENT);
  assert_int_equal(ra_router_remove(r, "GET", "/static/*"), 0);
  assert_int_equal(run(r, "GET", "/static/css/site.css", false).status, 404);
  run(r, "GET", "/static/special", false);
  assert_string_equal(last, "special");
  assert_int_equal(ra_router_remove(r, "GET", "/solo"), 0);
  assert_int_equal(g_cleaned, 10); /* its user data's cleanup ran now */
  assert_int_equal(ra_router_remove(r, "GET", "/owned/a"), 0);
  assert_int_equal(g_cleaned, 10); /* /owned/b still has it */
  ra_router_free(r);
  assert_int_equal(g_cleaned, 11); /* once, with the router */
}

static void test_sendf(void **state) {
  cap c;
  memset(&c, 0, sizeof c);
  ra_req *req;
  assert_int_equal(ra_req_new(RA_STR("GET"), RA_STR("/"), 11, false, &req), 0);
  ra_res *res;
  assert_int_equal(ra_res_new(NULL, req, &cap_ops, &c, &res), 0);
  assert_int_equal(ra_res_sendf(res, 404, "no user %d (%s)\n", 42, "bob"), 0);
  assert_int_equal(c.status, 404);
  assert_string_equal(c.body, "no user 42 (bob)\n");
  assert_int_equal(c.clen, (int64_t)strlen("no user 42 (bob)\n"));
  assert_non_null(strstr(c.headers, "Content-Type: text/plain; charset=utf-8\n"));
  assert_int_equal(c.ended, 1);

  /* longer than the stack buffer: formatted on the heap, same answer */
  char word[701];
  memset(word, 'w', 700);
  word[700] = '\0';
  memset(&c, 0, sizeof c);
  assert_int_equal(ra_req_new(RA_STR("GET"), RA_STR("/"), 11, false, &req), 0);
  assert_int_equal(ra_res_new(NULL, req, &cap_ops, &c, &res), 0);
  assert_int_equal(ra_res_sendf(res, 200, "<%s>", word), 0);
  assert_int_equal(c.body_len, 702);
  assert_int_equal(c.body[0], '<');
  assert_int_equal(c.body[701], '>');
  assert_int_equal(c.ended, 1);

  /* cancelled: like ra_res_send_text, the late answer still frees */
  memset(&c, 0, sizeof c);
  assert_int_equal(ra_req_new(RA_STR("GET"), RA_STR("/"), 11, false, &req), 0);
  assert_int_equal(ra_res_new(NULL, req, &cap_ops, &c, &res), 0);
  ra_res_cancel(res);
  assert_int_equal(ra_res_sendf(res, 200, "late %u", 1u), -ECANCELED);
  assert_int_equal(c.ended, 0);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_static_param_wildcard),
      cmocka_unit_test(test_backtracking),
      cmocka_unit_test(test_percent_decoding),
      cmocka_unit_test(test_query),
      cmocka_unit_test(test_headers_and_body),
      cmocka_unit_test(test_405_options_head),
      cmocka_unit_test(test_attested_only),
      cmocka_unit_test(test_route_errors_and_match),
      cmocka_unit_test(test_arena_overflow),
      cmocka_unit_test(test_response_api),
      cmocka_unit_test(test_remove),
      cmocka_unit_test(test_client_attested),
      cmocka_unit_test(test_sendf),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
