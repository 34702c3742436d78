/* apps/enclave: ra-enclave, the private-data enclave service.
 *
 *   ra-enclave [--listen HOST:PORT|unix:PATH|vsock:CID:PORT]... [--data-dir DIR]
 *              [--key-file PATH] [--max-body BYTES]
 *              [--tunnel | --tee sim|tsm|file:PATH|auto] [--sim-dir DIR]
 *              [--attested-only] [--quiet]
 *   environment: ENCLAVE_KEY_BASE64 (the key, unless --key-file), ENCLAVE_PORT
 *   (5005: the default listener, vsock any CID), USE_TLS (true), TLS_CERT_PATH
 *   (cert.pem), TLS_KEY_PATH (key.pem), ENCLAVE_DATA_DIR (./data)
 *
 * POST /private-data stores the request body (JSON, at most --max-body
 * bytes: 413 beyond, 400 if it is not JSON) sealed at rest (store/sealed.h:
 * XChaCha20-Poly1305 under the 32-byte key, written atomically and durably);
 * GET /private-data returns it (404 before the first POST). A stored record
 * that fails authentication is never served: 500 and an error line in the
 * log. The enclave terminates TLS itself (USE_TLS: every listener is TLS,
 * TLS_CERT_PATH / TLS_KEY_PATH, reloaded on SIGHUP), so the host in front
 * (ra-proxy over vsock) forwards bytes it cannot read. With --tunnel the
 * routes are also served through the attested tunnel on /__ra__, and with
 * --attested-only only there (403 in plaintext).
 *
 * Exit codes: 0 after SIGINT/SIGTERM (graceful stop), 1 run-time or
 * listen failure, 2 usage, 3 key missing, malformed or not the store's,
 * 4 TLS certificate or key unusable.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <jansson.h>
#include <sodium.h>

#include "raloop.h"

#define RECORD "private-data"
#define DEFAULT_MAX_BODY ((size_t)1 << 20)
#define MAX_LISTEN 8
#define EXIT_USAGE 2
#define EXIT_KEY 3
#define EXIT_TLS 4

static void usage(void) {
  fprintf(stderr,
          "usage: ra-enclave [--listen HOST:PORT|unix:PATH|vsock:CID:PORT]... [--data-dir DIR]\n"
          "                  [--key-file PATH] [--max-body BYTES]\n"
          "                  [--tunnel | --tee sim|tsm|file:PATH|auto] [--sim-dir DIR]\n"
          "                  [--attested-only] [--proxy-protocol] [--quiet]\n"
          "environment: ENCLAVE_KEY_BASE64 (32 bytes, base64; or --key-file),\n"
          "  ENCLAVE_PORT [5005] (default listener: vsock, any CID), ENCLAVE_DATA_DIR [./data],\n"
          "  USE_TLS [true], TLS_CERT_PATH [cert.pem], TLS_KEY_PATH [key.pem]\n"
          "exit: 0 stopped, 1 failure, 2 usage, 3 key missing/malformed/not the store's, 4 TLS\n");
}

typedef struct put_job put_job;

typedef struct enclave {
  ra_sealed *store;
  size_t max_body;
  /* puts, in the order the requests came: one at a time on a thread of
   * its own (two fsyncs each: milliseconds on a real disk, which the loop
   * must not wait for), the rest queued behind it */
  put_job *puts_head, *puts_tail;
  bool put_running;
} enclave;

/* A POST's body being sealed and written (core/work.h). */
struct put_job {
  put_job *next;
  enclave *e;
  ra_res *res; /* NULL once the client went away: the write still happens */
  ra_loop *loop;
  uint8_t *body;
  size_t len;
  int rc;
};

static void send_json(ra_res *res, int status, const char *json) {
  ra_res_send(res, status, "application/json", json, strlen(json));
}

static void put_answer(put_job *j) {
  if (!j->res) return;
  if (j->rc) {
    ra_error("private-data: storing failed: %s (the previous version, if any, is kept)", ra_strerror(j->rc));
    send_json(j->res, 500, "{\"error\":\"could not store the data\"}");
    return;
  }
  char ok[96];
  snprintf(ok, sizeof ok, "{\"status\":\"stored\",\"bytes\":%zu}", j->len);
  send_json(j->res, 200, ok);
}

static void put_job_free(put_job *j) {
  if (j->body) sodium_memzero(j->body, j->len); /* private data: no copy left in the heap */
  free(j->body);
  free(j);
}

static void put_write(void *ud) { /* on the work's thread: the store and j only */
  put_job *j = ud;
  /* stored as sent, byte for byte: GET returns exactly this */
  j->rc = ra_sealed_put(j->e->store, RECORD, j->body, j->len);
}

/* The write is over (j->rc): the client hears how, if still there. */
static void put_finish(put_job *j) {
  if (j->res) ra_res_on_cancel(j->res, NULL, NULL);
  put_answer(j);
  put_job_free(j);
}

static void put_next(enclave *e);

static void put_done(ra_work *w, void *ud) {
  (void)w;
  put_job *j = ud;
  enclave *e = j->e;
  e->put_running = false;
  put_finish(j);
  put_next(e);
}

/* Starts the oldest queued put, if none is running. */
static void put_next(enclave *e) {
  while (!e->put_running && e->puts_head) {
    put_job *j = e->puts_head;
    e->puts_head = j->next;
    if (!e->puts_head) e->puts_tail = NULL;
    int rc = ra_work_start(j->loop, put_write, put_done, j, NULL);
    if (rc == 0) {
      e->put_running = true;
      return;
    }
    j->rc = rc; /* no thread: answered 500 now, the next one tried */
    put_finish(j);
  }
}

/* The client went away: its put still happens (it may have been sent
 * already); only the answer is dropped. */
static void put_cancel(ra_res *res, void *ud) {
  put_job *j = ud;
  j->res = NULL;
  ra_res_end(res);
}

static void put_enqueue(enclave *e, ra_res *res, ra_str body) {
  put_job *j = calloc(1, sizeof *j);
  uint8_t *copy = body.len ? malloc(body.len) : NULL;
  if (!j || (body.len && !copy)) {
    free(j);
    free(copy);
    send_json(res, 503, "{\"error\":\"out of memory\"}");
    return;
  }
  if (body.len) memcpy(copy, body.ptr, body.len);
  *j = (put_job){.e = e, .res = res, .body = copy, .len = body.len, .loop = ra_res_loop(res)};
  ra_res_on_cancel(res, put_cancel, j);
  if (e->puts_tail) e->puts_tail->next = j;
  else e->puts_head = j;
  e->puts_tail = j;
  put_next(e);
}

static void h_post(ra_req *req, ra_res *res, void *ud) {
  enclave *e = ud;
  ra_str body = ra_req_body(req);
  /* the HTTP server refuses larger bodies before they are read; this
   * covers the tunnel, whose own bound is larger */
  if (body.len > e->max_body) {
    send_json(res, 413, "{\"error\":\"body too large\"}");
    return;
  }
  json_error_t jerr;
  json_t *doc = json_loadb(body.ptr, body.len, JSON_DECODE_ANY | JSON_REJECT_DUPLICATES, &jerr);
  if (!doc) {
    /* the parser's message names a position, never the content */
    char msg[256];
    snprintf(msg, sizeof msg, "{\"error\":\"invalid JSON at line %d column %d\"}", jerr.line, jerr.column);
    send_json(res, 400, msg);
    return;
  }
  json_decref(doc);
  put_enqueue(e, res, body);
}

static void h_get(ra_req *req, ra_res *res, void *ud) {
  enclave *e = ud;
  uint8_t *data = NULL;
  size_t len = 0;
  int rc = ra_sealed_get(e->store, RECORD, RA_SEALED_MAX_RECORD, &data, &len);
  if (rc == 0) {
    ra_res_send(res, 200, "application/json", data, len);
    ra_sealed_data_free(data, len);
    return;
  }
  if (rc == -ENOENT) {
    send_json(res, 404, "{\"error\":\"no private data stored yet\"}");
    return;
  }
  char path[4096] = "?";
  ra_sealed_path(e->store, RECORD, path, sizeof path);
  if (rc == -EBADMSG)
    ra_error("private-data: %s failed authentication (tampered with or corrupt): not served", path);
  else if (rc == -EKEYREJECTED)
    ra_error("private-data: %s was sealed under another key: not served", path);
  else
    ra_error("private-data: reading %s failed: %s", path, ra_strerror(rc));
  send_json(res, 500, "{\"error\":\"stored data unavailable\"}");
}

static void access_log(const ra_req *req, int status, uint64_t us, void *ud) {
  ra_str m = ra_req_method(req), t = ra_req_target(req), peer = ra_req_peer(req);
  ra_info("%.*s %.*s %.*s %d %lluus%s", (int)peer.len, peer.ptr, (int)m.len, m.ptr,
          (int)(t.len > 200 ? 200 : t.len), t.ptr, status, (unsigned long long)us, ud ? " (tunnel)" : "");
}

static const char *g_first_listen;
static bool g_tls;

static void on_listening(ra_http_server *srv, void *ud) {
  (void)ud;
  const char *a = g_first_listen;
  const char *colon = strrchr(a, ':');
  if (strncmp(a, "unix:", 5) == 0 || strncmp(a, "vsock:", 6) == 0 || !colon) {
    printf("listening on %s%s\n", a, g_tls ? " (TLS)" : "");
  } else {
    int hl = (int)(colon - a);
    printf("listening on %s://%.*s:%u\n", g_tls ? "https" : "http", hl ? hl : 7, hl ? a : "0.0.0.0",
           g_tls ? ra_http_server_tls_port(srv) : ra_http_server_port(srv));
  }
  fflush(stdout);
}

/* "true"/"false" and the usual spellings; -1 for anything else. */
static int env_bool(const char *name, int dflt) {
  const char *v = getenv(name);
  if (!v || !*v) return dflt;
  static const char *const yes[] = {"1", "true", "yes", "on"}, *const no[] = {"0", "false", "no", "off"};
  for (size_t i = 0; i < 4; i++) {
    if (strcasecmp(v, yes[i]) == 0) return 1;
    if (strcasecmp(v, no[i]) == 0) return 0;
  }
  return -1;
}

static const char *env_or(const char *name, const char *dflt) {
  const char *v = getenv(name);
  return v && *v ? v : dflt;
}

/* The key, from --key-file or ENCLAVE_KEY_BASE64; what is wrong with it on
 * stderr (never any of its bytes). */
static int load_key(const char *key_file, uint8_t key[RA_SEALED_KEY_BYTES]) {
  int rc;
  if (key_file) {
    rc = ra_sealed_key_read(key_file, key);
    if (rc == -EINVAL)
      fprintf(stderr, "ra-enclave: key file %s is not a 32-byte key (base64 text, or 32 raw bytes)\n", key_file);
    else if (rc)
      fprintf(stderr, "ra-enclave: cannot read key file %s: %s\n", key_file, ra_strerror(rc));
    return rc;
  }
  const char *b64 = getenv("ENCLAVE_KEY_BASE64");
  if (!b64 || !*b64) {
    fprintf(stderr, "ra-enclave: no key: set ENCLAVE_KEY_BASE64 (e.g. $(openssl rand -base64 32)) "
                    "or give --key-file\n");
    return -ENOKEY;
  }
  rc = ra_sealed_key_parse(b64, strlen(b64), key);
  if (rc) fprintf(stderr, "ra-enclave: ENCLAVE_KEY_BASE64 is not the base64 of 32 bytes\n");
  return rc;
}

/* The store as found at start-up: a record sealed under another key means
 * the wrong key was given (refuse to start: serving 500s or overwriting it
 * would both be wrong); a tampered one is reported and answered with 500
 * until a POST replaces it. */
static int check_store(ra_sealed *st, const char *dir) {
  uint8_t *data = NULL;
  size_t len = 0;
  int rc = ra_sealed_get(st, RECORD, RA_SEALED_MAX_RECORD, &data, &len);
  if (rc == 0) {
    ra_info("private-data: %s holds a record of %zu bytes", dir, len);
    ra_sealed_data_free(data, len);
  } else if (rc == -ENOENT) {
    ra_info("private-data: %s holds no record yet", dir);
  } else if (rc == -EKEYREJECTED) {
    fprintf(stderr, "ra-enclave: the record in %s was sealed under another key: refusing to start "
                    "(give the key it was sealed with)\n", dir);
    return EXIT_KEY;
  } else if (rc == -EBADMSG) {
    ra_error("private-data: the record in %s failed authentication (tampered with or corrupt): "
             "GET answers 500 until a POST replaces it", dir);
  } else {
    fprintf(stderr, "ra-enclave: cannot read the record in %s: %s\n", dir, ra_strerror(rc));
    return 1;
  }
  return 0;
}

static long num(const char *s) {
  char *end;
  errno = 0;
  long v = strtol(s, &end, 10);
  return (errno || *end || v <= 0) ? -1 : v;
}

int main(int argc, char **argv) {
  const char *listen[MAX_LISTEN];
  size_t n_listen = 0;
  const char *data_dir = env_or("ENCLAVE_DATA_DIR", "data"), *key_file = NULL;
  const char *tee = NULL, *sim_dir = NULL;
  bool attested_only = false, quiet = false, proxy_protocol = false;
  size_t max_body = DEFAULT_MAX_BODY;
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    bool has = i + 1 < argc;
    if (strcmp(a, "--listen") == 0 && has) {
      if (n_listen == MAX_LISTEN) { fprintf(stderr, "ra-enclave: at most %d --listen\n", MAX_LISTEN); return EXIT_USAGE; }
      listen[n_listen++] = argv[++i];
    } else if (strcmp(a, "--data-dir") == 0 && has) data_dir = argv[++i];
    else if (strcmp(a, "--key-file") == 0 && has) key_file = argv[++i];
    else if (strcmp(a, "--tee") == 0 && has) tee = argv[++i];
    else if (strcmp(a, "--tunnel") == 0) tee = tee ? tee : "auto";
    else if (strcmp(a, "--sim-dir") == 0 && has) sim_dir = argv[++i];
    else if (strcmp(a, "--attested-only") == 0) attested_only = true;
    else if (strcmp(a, "--quiet") == 0) quiet = true;
    else if (strcmp(a, "--proxy-protocol") == 0) proxy_protocol = true;
    else if (strcmp(a, "--max-body") == 0 && has) {
      long v = num(argv[++i]);
      if (v < 0 || (size_t)v > RA_SEALED_MAX_RECORD) {
        fprintf(stderr, "ra-enclave: --max-body: 1..%zu\n", RA_SEALED_MAX_RECORD);
        return EXIT_USAGE;
      }
      max_body = (size_t)v;
    } else if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
      usage();
      return 0;
    } else {
      usage();
      return EXIT_USAGE;
    }
  }
  if (attested_only && !tee) {
    fprintf(stderr, "ra-enclave: --attested-only needs the tunnel (--tunnel or --tee)\n");
    return EXIT_USAGE;
  }
  int use_tls = env_bool("USE_TLS", 1);
  if (use_tls < 0) {
    fprintf(stderr, "ra-enclave: USE_TLS must be true or false\n");
    return EXIT_USAGE;
  }
  char vsock_default[64];
  if (n_listen == 0) {
    const char *port = env_or("ENCLAVE_PORT", "5005");
    long p = num(port);
    if (p < 0 || p > 0xffffffffL) {
      fprintf(stderr, "ra-enclave: ENCLAVE_PORT must be a port number\n");
      return EXIT_USAGE;
    }
    snprintf(vsock_default, sizeof vsock_default, "vsock:-1:%ld", p);
    listen[n_listen++] = vsock_default;
  }
  if (quiet) ra_log_set_level(RA_LOG_WARN);

  /* The key first: without it nothing else matters. */
  uint8_t key[RA_SEALED_KEY_BYTES];
  int rc = load_key(key_file, key);
  if (rc) return EXIT_KEY;
  /* TLS: the certificate and key are checked here, before anything
   * listens, so an unreadable or mismatched pair is its own exit code */
  ra_tls_cert tls_cert = {.cert_file = env_or("TLS_CERT_PATH", "cert.pem"),
                          .key_file = env_or("TLS_KEY_PATH", "key.pem")};
  ra_tls_server_opts tls_opts = {.certs = &tls_cert, .ncerts = 1};
  if (use_tls) {
    ra_tls_ctx *probe;
    char err[512];
    if (ra_tls_server_ctx_new(&tls_opts, &probe, err, sizeof err)) {
      fprintf(stderr, "ra-enclave: TLS (TLS_CERT_PATH=%s, TLS_KEY_PATH=%s): %s\n", tls_cert.cert_file,
              tls_cert.key_file, err);
      sodium_memzero(key, sizeof key);
      return EXIT_TLS;
    }
    ra_tls_ctx_unref(probe);
  }
  enclave e = {.max_body = max_body};
  rc = ra_sealed_open(data_dir, key, &e.store);
  sodium_memzero(key, sizeof key);
  if (rc) {
    if (rc == -EBUSY) fprintf(stderr, "ra-enclave: %s is in use by another process\n", data_dir);
    else fprintf(stderr, "ra-enclave: cannot open the data directory %s: %s\n", data_dir, ra_strerror(rc));
    return 1;
  }
  int code = check_store(e.store, data_dir);
  if (code) {
    ra_sealed_free(e.store);
    return code;
  }

  g_tls = use_tls;
  g_first_listen = listen[0];

  ra_router *router;
  if (ra_router_new(&router)) {
    ra_sealed_free(e.store);
    return 1;
  }
  int flags = attested_only ? RA_ROUTE_ATTESTED_ONLY : 0;
  if (ra_route_ex(router, "POST", "/private-data", h_post, &e, flags) ||
      ra_route_ex(router, "GET", "/private-data", h_get, &e, flags)) {
    ra_router_free(router);
    ra_sealed_free(e.store);
    return 1;
  }
  ra_http_server_opts ho = {0};
  ho.server_name = "ra-enclave";
  ho.limits.max_body = max_body;
  /* behind ra-proxy --proxy-protocol: the client's address comes from the
   * header, read before TLS starts */
  ho.proxy_protocol = proxy_protocol;
  if (!quiet) ho.access_log = access_log;
  ra_tunnel_server_opts to = {0};
  if (!quiet) {
    to.access_log = access_log;
    to.access_log_ud = "tunnel";
  }
  ra_serve_opts so = {0};
  if (use_tls) {
    /* TLS only: the enclave never answers in plaintext; SIGHUP reloads
     * the certificate and key from the same files */
    so.listen_tls = listen;
    so.n_listen_tls = n_listen;
    so.tls = &tls_opts;
  } else {
    so.listen = listen;
    so.n_listen = n_listen;
  }
  so.tee = tee ? tee : "none";
  so.sim_dir = sim_dir;
  so.http = &ho;
  so.tunnel = &to;
  so.on_listening = on_listening;
  ra_service *svc;
  rc = ra_service_new(router, &so, &svc); /* logs which part failed */
  if (rc) {
    fprintf(stderr, "ra-enclave: start-up failed: %s\n", ra_strerror(rc));
    ra_router_free(router);
    ra_sealed_free(e.store);
    return 1;
  }
  if (attested_only) ra_info("private-data: attested-only (403 in plaintext; through /__ra__ only)");
  rc = ra_service_run(svc);
  ra_service_free(svc);
  ra_router_free(router);
  ra_sealed_free(e.store);
  return rc ? 1 : 0;
}
