/* http/router.c: a segment trie. Each node has static children, at most one
 * ":param" child and a set of trailing-wildcard endpoints; the search tries
 * static, then param, then wildcard, backtracking until a node has an
 * endpoint for the method (so GET /u/:id still serves /u/new when only
 * POST /u/new exists). */
#include "raloop/http/router.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "raloop/http/request_internal.h"
#include "raloop/http/router_internal.h"
#include "raloop/http/server.h"
#include "raloop/http/token.h"

#define RT_MAX_PARAMS 16
#define RT_METHOD_MAX 31

typedef struct rt_ep {
  char method[RT_METHOD_MAX + 1];
  ra_handler handler;
  void *ud;
  unsigned flags;
} rt_ep;

typedef struct rt_node rt_node;
struct rt_node {
  char *seg;
  size_t seg_len;
  rt_node **kids;
  size_t nkids;
  rt_node *param;
  char *param_name;
  rt_ep *eps;
  size_t neps;
  rt_ep *wild;
  size_t nwild;
};

typedef struct rt_cleanup {
  void (*fn)(void *);
  void *ud;
} rt_cleanup;

struct ra_router {
  rt_node root;
  uint64_t gen; /* counts changes to the routes: a kept ra_route_lookup is stale after one */
  rt_cleanup *cleanups;
  size_t ncleanups;
};

int ra_router_new(ra_router **out) {
  *out = calloc(1, sizeof(ra_router));
  return *out ? 0 : -ENOMEM;
}

static void node_free(rt_node *n) {
  for (size_t i = 0; i < n->nkids; i++) {
    node_free(n->kids[i]);
    free(n->kids[i]);
  }
  free(n->kids);
  if (n->param) {
    node_free(n->param);
    free(n->param);
  }
  free(n->param_name);
  free(n->seg);
  free(n->eps);
  free(n->wild);
}

void ra_router_free(ra_router *r) {
  if (!r) return;
  node_free(&r->root);
  for (size_t i = r->ncleanups; i-- > 0;) r->cleanups[i].fn(r->cleanups[i].ud);
  free(r->cleanups);
  free(r);
}

int ra_router_on_free(ra_router *r, void (*fn)(void *ud), void *ud) {
  if (!r || !fn) return -EINVAL;
  rt_cleanup *c = realloc(r->cleanups, (r->ncleanups + 1) * sizeof *c);
  if (!c) return -ENOMEM;
  r->cleanups = c;
  c[r->ncleanups].fn = fn;
  c[r->ncleanups].ud = ud;
  r->ncleanups++;
  return 0;
}

/* A method is an RFC 9110 token (or "*", any method). */
static bool method_ok(const char *m) {
  size_t n = strlen(m);
  if (n > RT_METHOD_MAX) return false;
  return strcmp(m, "*") == 0 || ra_http_token_valid(ra_str_make(m, n));
}

static int add_ep(rt_ep **eps, size_t *n, const char *method, ra_handler h, void *ud, unsigned flags) {
  for (size_t i = 0; i < *n; i++)
    if (strcmp((*eps)[i].method, method) == 0) return -EEXIST;
  rt_ep *e = realloc(*eps, (*n + 1) * sizeof *e);
  if (!e) return -ENOMEM;
  *eps = e;
  rt_ep *x = &e[(*n)++];
  memset(x, 0, sizeof *x);
  strcpy(x->method, method);
  x->handler = h;
  x->ud = ud;
  x->flags = flags;
  return 0;
}

/* A parameter name (":id"): not an HTTP token but a name handlers spell in
 * C strings, so letters, digits, '_' and '-' only. */
static bool name_ok(const char *p, size_t n) {
  if (n == 0) return false;
  for (size_t i = 0; i < n; i++) {
    char c = p[i];
    if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '-'))
      return false;
  }
  return true;
}

/* Checks the whole pattern before touching the trie, so a bad pattern
 * leaves the router unchanged. */
static int pattern_check(const char *pattern) {
  if (pattern[0] != '/') return -EINVAL;
  const char *s = pattern + 1;
  int nparams = 0;
  for (;;) {
    const char *e = strchr(s, '/');
    size_t len = e ? (size_t)(e - s) : strlen(s);
    if (len == 1 && s[0] == '*') {
      if (e) return -EINVAL; /* wildcard only at the end */
    } else if (len > 0 && s[0] == ':') {
      if (!name_ok(s + 1, len - 1) || ++nparams >= RT_MAX_PARAMS) return -EINVAL;
    } else {
      for (size_t i = 0; i < len; i++)
        if (s[i] == '*' || s[i] == '?' || s[i] == '#' || s[i] == '%') return -EINVAL;
    }
    if (!e) break;
    s = e + 1;
  }
  return 0;
}

int ra_router__add(ra_router *r, const char *method, const char *pattern, ra_handler handler,
                   void *ud, unsigned flags) {
  if (!r || !method || !pattern || !handler || !method_ok(method)) return -EINVAL;
  r->gen++;
  int rc = pattern_check(pattern);
  if (rc) return rc;
  rt_node *n = &r->root;
  const char *s = pattern + 1;
  for (;;) {
    const char *e = strchr(s, '/');
    size_t len = e ? (size_t)(e - s) : strlen(s);
    if (len == 1 && s[0] == '*') return add_ep(&n->wild, &n->nwild, method, handler, ud, flags);
    rt_node *next = NULL;
    if (len > 0 && s[0] == ':') {
      if (n->param) {
        if (strlen(n->param->param_name) != len - 1 || memcmp(n->param->param_name, s + 1, len - 1) != 0)
          return -EINVAL; /* one parameter name per position */
        next = n->param;
      } else {
        next = calloc(1, sizeof *next);
        char *pn = strndup(s + 1, len - 1);
        if (!next || !pn) {
          free(next);
          free(pn);
          return -ENOMEM;
        }
        next->param_name = pn;
        n->param = next;
      }
    } else {
      for (size_t i = 0; i < n->nkids; i++) {
        if (n->kids[i]->seg_len == len && memcmp(n->kids[i]->seg, s, len) == 0) {
          next = n->kids[i];
          break;
        }
      }
      if (!next) {
        rt_node **k = realloc(n->kids, (n->nkids + 1) * sizeof *k);
        if (!k) return -ENOMEM;
        n->kids = k;
        next = calloc(1, sizeof *next);
        char *sg = strndup(s, len);
        if (!next || !sg) {
          free(next);
          free(sg);
          return -ENOMEM;
        }
        next->seg = sg;
        next->seg_len = len;
        n->kids[n->nkids++] = next;
      }
    }
    n = next;
    if (!e) return add_ep(&n->eps, &n->neps, method, handler, ud, flags);
    s = e + 1;
  }
}

int ra_route_ex(ra_router *r, const char *method, const char *pattern, ra_handler handler,
                void *ud, unsigned flags) {
  if (flags & RA_ROUTE_WEBSOCKET) return -EINVAL; /* ws/'s own, see router.h */
  return ra_router__add(r, method, pattern, handler, ud, flags);
}

int ra_route(ra_router *r, const char *method, const char *pattern, ra_handler handler, void *ud) {
  return ra_route_ex(r, method, pattern, handler, ud, 0);
}

/* ---- removal ------------------------------------------------------------------ */

/* The node a pattern ends at (the node holding its wildcard endpoints when
 * *wild), or NULL when no route was ever registered down that path. */
static rt_node *node_find(rt_node *n, const char *pattern, bool *wild) {
  const char *s = pattern + 1;
  *wild = false;
  for (;;) {
    const char *e = strchr(s, '/');
    size_t len = e ? (size_t)(e - s) : strlen(s);
    if (len == 1 && s[0] == '*' && !e) {
      *wild = true;
      return n;
    }
    rt_node *next = NULL;
    if (len > 0 && s[0] == ':') {
      if (n->param && strlen(n->param->param_name) == len - 1 &&
          memcmp(n->param->param_name, s + 1, len - 1) == 0)
        next = n->param;
    } else {
      for (size_t i = 0; i < n->nkids && !next; i++)
        if (n->kids[i]->seg_len == len && memcmp(n->kids[i]->seg, s, len) == 0) next = n->kids[i];
    }
    if (!next) return NULL;
    n = next;
    if (!e) return n;
    s = e + 1;
  }
}

static bool ud_in_use(const rt_node *n, const void *ud) {
  for (size_t i = 0; i < n->neps; i++)
    if (n->eps[i].ud == ud) return true;
  for (size_t i = 0; i < n->nwild; i++)
    if (n->wild[i].ud == ud) return true;
  for (size_t i = 0; i < n->nkids; i++)
    if (ud_in_use(n->kids[i], ud)) return true;
  return n->param && ud_in_use(n->param, ud);
}

/* Runs (and forgets) the on_free cleanups of ud, in reverse order as
 * ra_router_free would. */
static void run_cleanups_of(ra_router *r, void *ud) {
  for (size_t i = r->ncleanups; i-- > 0;) {
    if (r->cleanups[i].ud != ud) continue;
    rt_cleanup c = r->cleanups[i];
    memmove(&r->cleanups[i], &r->cleanups[i + 1], (r->ncleanups - i - 1) * sizeof c);
    r->ncleanups--;
    c.fn(c.ud);
  }
}

int ra_router_remove(ra_router *r, const char *method, const char *pattern) {
  if (!r || !method || !pattern || pattern[0] != '/') return -EINVAL;
  r->gen++;
  bool wild;
  rt_node *n = node_find(&r->root, pattern, &wild);
  if (!n) return -ENOENT;
  rt_ep *eps = wild ? n->wild : n->eps;
  size_t *neps = wild ? &n->nwild : &n->neps;
  for (size_t i = 0; i < *neps; i++) {
    if (strcmp(eps[i].method, method) != 0) continue;
    void *ud = eps[i].ud;
    memmove(&eps[i], &eps[i + 1], (*neps - i - 1) * sizeof *eps);
    (*neps)--;
    /* the (now empty) trie nodes stay: they match nothing */
    if (!ud_in_use(&r->root, ud)) run_cleanups_of(r, ud);
    return 0;
  }
  return -ENOENT;
}

/* ---- matching ----------------------------------------------------------------- */

typedef struct rt_search {
  ra_str method;
  ra_req_kv params[RT_MAX_PARAMS + 1];
  size_t nparams;
  const rt_ep *found;
  bool path_matched;
  /* Allow collection (method.len == 0): every method of every node whose
   * pattern matches the path. */
  const rt_ep *allow[64];
  size_t nallow;
} rt_search;

static const rt_ep *pick(rt_search *st, const rt_ep *eps, size_t n) {
  if (n == 0) return NULL;
  st->path_matched = true;
  if (st->method.len == 0) {
    for (size_t i = 0; i < n && st->nallow < 64; i++) st->allow[st->nallow++] = &eps[i];
    return NULL;
  }
  const rt_ep *any = NULL, *get = NULL;
  bool head = ra_str_eq_cstr(st->method, "HEAD");
  for (size_t i = 0; i < n; i++) {
    if (ra_str_eq_cstr(st->method, eps[i].method)) return &eps[i];
    if (eps[i].method[0] == '*') any = &eps[i];
    if (head && strcmp(eps[i].method, "GET") == 0) get = &eps[i];
  }
  return get ? get : any;
}

/* s: start of the next segment (just past a '/'), end: end of the path. */
static bool search(rt_search *st, const rt_node *n, const char *s, const char *end) {
  const char *e = memchr(s, '/', (size_t)(end - s));
  bool last = (e == NULL);
  if (!e) e = end;
  size_t len = (size_t)(e - s);
  for (size_t i = 0; i < n->nkids; i++) {
    const rt_node *k = n->kids[i];
    if (k->seg_len != len || memcmp(k->seg, s, len) != 0) continue;
    if (last ? (st->found = pick(st, k->eps, k->neps)) != NULL : search(st, k, e + 1, end)) return true;
    break;
  }
  if (n->param && len > 0 && st->nparams < RT_MAX_PARAMS) {
    st->params[st->nparams++] = (ra_req_kv){ra_str_cstr(n->param->param_name), ra_str_make(s, len)};
    const rt_node *k = n->param;
    if (last ? (st->found = pick(st, k->eps, k->neps)) != NULL : search(st, k, e + 1, end)) return true;
    st->nparams--;
  }
  if (n->nwild) {
    if ((st->found = pick(st, n->wild, n->nwild)) != NULL) {
      st->params[st->nparams++] = (ra_req_kv){ra_str_make("*", 1), ra_str_make(s, (size_t)(end - s))};
      return true;
    }
  }
  return false;
}

static int do_match(ra_router *r, rt_search *st, ra_str path) {
  st->nparams = 0;
  st->found = NULL;
  st->path_matched = false;
  st->nallow = 0;
  if (path.len == 0 || path.ptr[0] != '/') return -ENOENT;
  if (search(st, &r->root, path.ptr + 1, path.ptr + path.len)) return 0;
  return st->path_matched ? -EPERM : -ENOENT;
}

/* ra_router_match for any method ("": none matches, as in an Allow
 * search). */
static int match(ra_router *r, ra_str method, ra_str path, ra_req *req, ra_route_match *m) {
  rt_search st;
  st.method = method;
  int rc = do_match(r, &st, path);
  if (rc) return rc;
  if (req) {
    int prc = ra_req_set_params(req, st.params, st.nparams);
    if (prc) return prc;
  }
  if (m) {
    m->handler = st.found->handler;
    m->ud = st.found->ud;
    m->flags = st.found->flags;
  }
  return 0;
}

int ra_router_match(ra_router *r, ra_str method, ra_str path, ra_req *req, ra_route_match *m) {
  return method.len ? match(r, method, path, req, m) : -EINVAL;
}

static void allow_add(char *buf, size_t cap, size_t *len, const char *m) {
  /* dedupe: exact token match in the list built so far */
  size_t ml = strlen(m);
  const char *p = buf;
  while (p < buf + *len) {
    const char *c = strstr(p, ", ");
    size_t tl = c ? (size_t)(c - p) : (size_t)(buf + *len - p);
    if (tl == ml && memcmp(p, m, ml) == 0) return;
    if (!c) break;
    p = c + 2;
  }
  int w = snprintf(buf + *len, cap - *len, "%s%s", *len ? ", " : "", m);
  if (w > 0 && (size_t)w < cap - *len) *len += (size_t)w;
}

static void collect_all(const rt_node *n, char *buf, size_t cap, size_t *len, bool *get) {
  for (size_t i = 0; i < n->neps; i++) {
    if (n->eps[i].method[0] != '*') allow_add(buf, cap, len, n->eps[i].method);
    if (strcmp(n->eps[i].method, "GET") == 0) *get = true;
  }
  for (size_t i = 0; i < n->nwild; i++) {
    if (n->wild[i].method[0] != '*') allow_add(buf, cap, len, n->wild[i].method);
    if (strcmp(n->wild[i].method, "GET") == 0) *get = true;
  }
  for (size_t i = 0; i < n->nkids; i++) collect_all(n->kids[i], buf, cap, len, get);
  if (n->param) collect_all(n->param, buf, cap, len, get);
}

static void send_allow(ra_res *res, int status, const char *allow) {
  ra_res_add_header(res, "Allow", allow);
  if (status == 204) {
    ra_res_set_status(res, 204);
    ra_res_end(res);
  } else {
    ra_res_send_text(res, status, "Method Not Allowed\n");
  }
}

/* RA_ROUTE_CLIENT_ATTESTED without an identity. A client attestation that
 * was presented and failed never gets here: the tunnel closes (1008) on it
 * (fail closed, PROTOCOL.md §10). */
static void client_refused(ra_req *req, ra_res *res) {
  const char *why = ra_req_attested(req)
                        ? "the tunnel's client presented no attestation of its own"
                        : "only a client attested through the tunnel is served";
  char body[256];
  int n = snprintf(body, sizeof body, "{\"error\":\"client attestation required\",\"reason\":\"%s\"}\n", why);
  ra_res_send(res, 403, "application/json", body, (size_t)n);
}

void ra_router__lookup(ra_router *r, ra_req *req, ra_route_lookup *out) {
  out->rc = match(r, ra_req_method(req), ra_req_path(req), req, &out->m);
  out->gen = r->gen;
}

void ra_router_handle(ra_router *r, ra_req *req, ra_res *res) { ra_router__dispatch(r, req, res, NULL); }

void ra_router__dispatch(ra_router *r, ra_req *req, ra_res *res, const ra_route_lookup *l) {
  ra_str method = ra_req_method(req);
  if (!req->path_ok) {
    ra_res_send_text(res, 400, "Bad Request\n");
    return;
  }
  ra_str path = ra_req_path(req);
  bool options = ra_str_eq_cstr(method, "OPTIONS");
  if (path.len == 1 && path.ptr[0] == '*') {
    /* "OPTIONS *": what the server as a whole supports. */
    if (!options) {
      ra_res_send_text(res, 400, "Bad Request\n");
      return;
    }
    char allow[512];
    size_t len = 0;
    bool get = false;
    allow[0] = '\0';
    collect_all(&r->root, allow, sizeof allow, &len, &get);
    if (get) allow_add(allow, sizeof allow, &len, "HEAD");
    allow_add(allow, sizeof allow, &len, "OPTIONS");
    send_allow(res, 204, allow);
    return;
  }
  ra_route_lookup now;
  if (!l || l->gen != r->gen) {
    ra_router__lookup(r, req, &now);
    l = &now;
  }
  if (l->rc == 0) {
    if ((l->m.flags & RA_ROUTE_ATTESTED_ONLY) && !ra_req_attested(req)) {
      ra_res_send_text(res, 403, "Forbidden: attested tunnel required\n");
      return;
    }
    if ((l->m.flags & RA_ROUTE_CLIENT_ATTESTED) && !ra_req_client_identity(req)) {
      client_refused(req, res);
      return;
    }
    l->m.handler(req, res, l->m.ud);
    return;
  }
  if (l->rc == -ENOENT) {
    ra_res_send_text(res, 404, "Not Found\n");
    return;
  }
  if (l->rc != -EPERM) { /* the params: out of memory */
    ra_res_send_text(res, 500, "Internal Server Error\n");
    return;
  }
  /* Path matched, method did not: Allow lists what would have matched. */
  rt_search st;
  st.method = ra_str_make("", 0);
  (void)do_match(r, &st, path);
  char allow[512];
  size_t len = 0;
  bool get = false;
  allow[0] = '\0';
  for (size_t i = 0; i < st.nallow; i++) {
    if (st.allow[i]->method[0] == '*') continue;
    allow_add(allow, sizeof allow, &len, st.allow[i]->method);
    if (strcmp(st.allow[i]->method, "GET") == 0) get = true;
  }
  if (get) allow_add(allow, sizeof allow, &len, "HEAD");
  allow_add(allow, sizeof allow, &len, "OPTIONS");
  send_allow(res, options ? 204 : 405, allow);
}
