/* apps/gateway: ra-gateway, the attested tunnel in front of any HTTP service.
 *
 *   ra-gateway --listen HOST:PORT --upstream http://HOST:PORT|unix:PATH
 *              [--tee sim|tsm|file:PATH] [--sim-dir DIR]
 *              [--attested-only PATH]... [--plain PATH]... [--refuse PATH]...
 *              [--connect-timeout-ms N] [--timeout-ms N] [--max-conns N]
 *              [--max-body BYTES] [--quiet]
 *
 * Everything under "/" is forwarded to the upstream (http/proxy.h), in
 * plaintext and through the attested tunnel on /__ra__, unless a longer
 * prefix says otherwise: --attested-only PATH answers 403 in plaintext and
 * forwards only tunnelled requests (with X-Attested: 1); --plain PATH is
 * forwarded both ways (health checks under an attested-only "/");
 * --refuse PATH answers 404 without reaching the upstream. Paths are
 * prefixes ("/api" covers "/api" and "/api/..."). The upstream can trust
 * X-Attested: the gateway removes it from every client request.
 * SIGINT/SIGTERM: graceful stop.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "raloop.h"

#define MAX_RULES 64

static void usage(void) {
  fprintf(stderr,
          "usage: ra-gateway --listen HOST:PORT --upstream http://HOST:PORT|unix:PATH\n"
          "                  [--tee sim|tsm|file:PATH] [--sim-dir DIR]\n"
          "                  [--attested-only PATH]... [--plain PATH]... [--refuse PATH]...\n"
          "                  [--connect-timeout-ms N] [--timeout-ms N] [--max-conns N]\n"
          "                  [--max-body BYTES] [--quiet]\n"
          "Request bodies are buffered up to --max-body [8 MiB] (413 beyond);\n"
          "responses are streamed.\n");
}

static void access_log(const ra_req *req, int status, uint64_t us, void *ud) {
  ra_str m = ra_req_method(req), t = ra_req_target(req);
  ra_info("%.*s %.*s %d %lluus%s%s%s", (int)m.len, m.ptr, (int)(t.len > 200 ? 200 : t.len), t.ptr,
          status, (unsigned long long)us, ud ? " (" : "", ud ? (const char *)ud : "", ud ? ")" : "");
}

static const char *g_listen;

static void on_listening(ra_http_server *srv, void *ud) {
  (void)ud;
  const char *colon = strrchr(g_listen, ':');
  if (strncmp(g_listen, "unix:", 5) == 0 || !colon) {
    printf("listening on %s\n", g_listen);
  } else {
    int hl = (int)(colon - g_listen);
    printf("listening on http://%.*s:%u\n", hl ? hl : 7, hl ? g_listen : "0.0.0.0",
           ra_http_server_port(srv));
  }
  fflush(stdout);
}

static long num(const char *s) {
  char *e;
  long v = strtol(s, &e, 10);
  return (*e || v <= 0) ? -1 : v;
}

typedef struct rule {
  const char *path;
  ra_proxy_policy policy;
} rule;

int main(int argc, char **argv) {
  const char *listen = NULL, *upstream = NULL, *tee = NULL, *sim_dir = NULL;
  bool quiet = false;
  size_t max_body = 0;
  rule rules[MAX_RULES];
  size_t nrules = 0;
  ra_proxy_opts po = {0};
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    bool has = i + 1 < argc;
    if (strcmp(a, "--listen") == 0 && has) listen = argv[++i];
    else if (strcmp(a, "--upstream") == 0 && has) upstream = argv[++i];
    else if (strcmp(a, "--tee") == 0 && has) tee = argv[++i];
    else if (strcmp(a, "--sim-dir") == 0 && has) sim_dir = argv[++i];
    else if ((strcmp(a, "--attested-only") == 0 || strcmp(a, "--plain") == 0 ||
              strcmp(a, "--refuse") == 0) && has) {
      if (nrules == MAX_RULES) { fprintf(stderr, "ra-gateway: at most %d paths\n", MAX_RULES); return 2; }
      rules[nrules].path = argv[++i];
      rules[nrules].policy = a[2] == 'a' ? RA_PROXY_ATTESTED_ONLY : a[2] == 'p' ? RA_PROXY_PASS : RA_PROXY_REFUSE;
      nrules++;
    } else if (strcmp(a, "--connect-timeout-ms") == 0 && has) {
      long v = num(argv[++i]);
      if (v < 0) { usage(); return 2; }
      po.connect_timeout_ms = (uint64_t)v;
    } else if (strcmp(a, "--timeout-ms") == 0 && has) {
      long v = num(argv[++i]);
      if (v < 0) { usage(); return 2; }
      po.first_byte_timeout_ms = po.idle_timeout_ms = (uint64_t)v;
    } else if (strcmp(a, "--max-conns") == 0 && has) {
      long v = num(argv[++i]);
      if (v < 0) { usage(); return 2; }
      po.max_conns = (size_t)v;
    } else if (strcmp(a, "--max-body") == 0 && has) {
      long v = num(argv[++i]);
      if (v < 0) { usage(); return 2; }
      max_body = (size_t)v;
    } else if (strcmp(a, "--quiet") == 0) quiet = true;
    else if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) { usage(); return 0; }
    else { usage(); return 2; }
  }
  if (!listen || !upstream) {
    usage();
    return 2;
  }
  if (quiet) ra_log_set_level(RA_LOG_WARN);
  g_listen = listen;
  ra_router *router;
  if (ra_router_new(&router)) { fprintf(stderr, "ra-gateway: out of memory\n"); return 1; }
  ra_serve_opts so = {0};
  so.listen = &listen;
  so.n_listen = 1;
  so.tee = tee;
  so.sim_dir = sim_dir;
  so.on_listening = on_listening;
  ra_http_server_opts ho = {0};
  ho.server_name = "ra-gateway";
  ho.limits.max_body = max_body;
  if (!quiet) ho.access_log = access_log;
  so.http = &ho;
  ra_service *svc;
  int rc = ra_service_new(router, &so, &svc);
  if (rc) {
    fprintf(stderr, "ra-gateway: %s\n", ra_strerror(rc));
    ra_router_free(router);
    return 1;
  }
  po.upstream = upstream;
  ra_proxy *px;
  rc = ra_proxy_new(ra_service_loop(svc), &po, &px);
  if (rc) {
    fprintf(stderr, "ra-gateway: bad --upstream %s (http://HOST:PORT or unix:PATH)\n", upstream);
    ra_service_free(svc);
    ra_router_free(router);
    return 2;
  }
  bool root = false;
  for (size_t i = 0; i < nrules; i++)
    if (strcmp(rules[i].path, "/") == 0) root = true;
  if (!root) rc = ra_proxy_route(router, "/", px, RA_PROXY_PASS);
  for (size_t i = 0; i < nrules && rc == 0; i++) {
    rc = ra_proxy_route(router, rules[i].path, px, rules[i].policy);
    if (rc) fprintf(stderr, "ra-gateway: path %s: %s\n", rules[i].path,
                    rc == -EEXIST ? "given twice" : "must start with '/' (a prefix, no '*' or ':')");
  }
  if (rc) {
    ra_service_free(svc);
    ra_proxy_free(px);
    ra_router_free(router);
    return 2;
  }
  if (!quiet) ra_info("ra-gateway: forwarding to %s", upstream);
  rc = ra_service_run(svc);
  ra_proxy_free(px); /* its connections close on the loop, so before the service frees it */
  ra_service_free(svc);
  ra_router_free(router);
  return rc ? 1 : 0;
}
