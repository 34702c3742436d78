/* apps/secrets/server.c: `ra-secrets serve` and `ra-secrets put`
 * (docs/SECRETS.md). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <jansson.h>
#include <sodium.h>

#include "attest.h"
#include "crypto.h"
#include "own.h"
#include "proto.h"
#include "raloop.h"
#include "secrets.h"

#define MAX_LISTEN    8
#define MAX_SECRETS   64
#define RECORD_PREFIX "secret-"

typedef struct server {
  ra_sealed *store;
  sec_policy pol;
  sec_table table;
  sec_own own;
  uint64_t ttl_ms;
  const char *mark; /* "" in strict mode, the relaxed-mode mark otherwise */
} server;

static void record_name(const char *name, char *out, size_t cap) {
  snprintf(out, cap, RECORD_PREFIX "%s", name);
}

static char *b64(const uint8_t *p, size_t n) {
  size_t cap = sodium_base64_ENCODED_LEN(n, sodium_base64_VARIANT_ORIGINAL);
  char *s = malloc(cap);
  if (s) sodium_bin2base64(s, cap, p, n, sodium_base64_VARIANT_ORIGINAL);
  return s;
}

static void send_doc(ra_res *res, int status, json_t *doc) {
  char *s = doc ? json_dumps(doc, JSON_COMPACT) : NULL;
  if (s)
    ra_res_send(res, status, "application/json", s, strlen(s));
  else
    ra_res_send(res, 500, "application/json", "{\"error\":\"internal\"}", 20);
  free(s);
  json_decref(doc);
}

/* Every refusal: its reason's status, {"error", "reason", "strict"}, and a
 * log line; nothing of any secret is in scope here. */
static void refuse(server *s, ra_res *res, const char *what, const char *client, sec_reason r,
                   const char *msg) {
  ra_warn("%s%s refused%s%s: %s: %s", s->mark, what, client ? " for client " : "",
          client ? client : "", sec_reason_name(r), msg);
  send_doc(res, sec_reason_status(r),
           json_pack("{s:s,s:s,s:b}", "error", sec_reason_name(r), "reason", msg, "strict",
                     s->pol.strict));
}

static void describe(const sec_peer *p, char *out, size_t cap) {
  char mr[97], app[129] = "none";
  sodium_bin2hex(mr, sizeof mr, p->mrtd, 48);
  if (p->has_app_id) sodium_bin2hex(app, sizeof app, p->app_id, p->app_id_len);
  snprintf(out, cap, "app_id %s, mrtd %.16s..%s%s", app, mr, p->simulated ? ", SIMULATED TEE" : "",
           p->debug ? ", DEBUG TD" : "");
}

static void h_challenge(ra_req *req, ra_res *res, void *ud) {
  server *s = ud;
  ra_str body = ra_req_body(req);
  sec_challenge_req r;
  char msg[512];
  sec_reason rc = sec_parse_challenge_req(body.ptr, body.len, &r, msg, sizeof msg);
  if (rc == SEC_ATTESTATION_MISSING)
    snprintf(msg, sizeof msg, "the request carries no client attestation");
  if (rc != SEC_OK) {
    refuse(s, res, "challenge", r.client_id, rc, msg);
    sec_challenge_req_clear(&r);
    return;
  }
  sec_evidence ev = {.cert = r.cert,
                     .quote = r.quote,
                     .quote_len = r.quote_len,
                     .key = r.key,
                     .key_len = r.key_len,
                     .event_log = r.event_log};
  sec_peer peer;
  rc = sec_attest_verify(&s->pol, &ev, &peer, msg, sizeof msg);
  if (rc != SEC_OK) {
    refuse(s, res, "challenge", r.client_id, rc, msg);
    sec_challenge_req_clear(&r);
    return;
  }
  uint64_t now = ra_loop_now(ra_res_loop(res));
  sec_challenge *c =
      sec_table_add(&s->table, peer.spki, peer.spki_len, r.client_id, now, s->ttl_ms);
  if (!c) {
    sec_peer_clear(&peer);
    refuse(s, res, "challenge", r.client_id, SEC_TOO_MANY,
           "too many live challenges: try again later");
    sec_challenge_req_clear(&r);
    return;
  }
  uint8_t kh[32];
  sec_sha256(peer.spki, peer.spki_len, kh);
  size_t tl = 0, sl = 0;
  uint8_t *t = sec_challenge_transcript(c->id, c->challenge, c->expires_ms, kh, c->client_id, &tl);
  uint8_t *sig = NULL;
  char idhex[2 * SEC_ID_BYTES + 1];
  sodium_bin2hex(idhex, sizeof idhex, c->id, SEC_ID_BYTES);
  char *chb = b64(c->challenge, SEC_CHALLENGE_BYTES), *sigb = NULL;
  if (!t || sec_sign(s->own.key, t, tl, &sig, &sl) || !chb || !(sigb = b64(sig, sl))) {
    c->used = true; /* never answered: never usable */
    refuse(s, res, "challenge", r.client_id, SEC_INTERNAL, "cannot sign the challenge");
  } else {
    char who[320];
    describe(&peer, who, sizeof who);
    ra_info("%schallenge %s issued to client %s (%s), expires in %llu ms", s->mark, idhex,
            c->client_id, who, (unsigned long long)s->ttl_ms);
    send_doc(res, 200,
             json_pack("{s:s,s:s,s:s,s:I,s:I,s:b,s:{s:s,s:s}}", "challenge_id", idhex, "challenge",
                       chb, "client_id", c->client_id, "expires_ms", (json_int_t)c->expires_ms,
                       "ttl_ms", (json_int_t)s->ttl_ms, "strict", s->pol.strict, "server", "cert",
                       s->own.cert_pem, "signature", sigb));
  }
  free(t);
  free(sig);
  free(chb);
  free(sigb);
  sec_peer_clear(&peer);
  sec_challenge_req_clear(&r);
}

static void h_fetch(ra_req *req, ra_res *res, void *ud) {
  server *s = ud;
  ra_str body = ra_req_body(req);
  sec_fetch_req r;
  char msg[512];
  sec_reason rc = sec_parse_fetch_req(body.ptr, body.len, &r, msg, sizeof msg);
  if (rc != SEC_OK) {
    refuse(s, res, "fetch", NULL, rc, msg);
    return;
  }
  char idhex[2 * SEC_ID_BYTES + 1];
  sodium_bin2hex(idhex, sizeof idhex, r.id, SEC_ID_BYTES);
  uint64_t now = ra_loop_now(ra_res_loop(res));
  sec_challenge *c;
  rc = sec_table_take(&s->table, r.id, now, &c);
  if (rc != SEC_OK) {
    snprintf(msg, sizeof msg, "challenge %s %s", idhex,
             rc == SEC_CHALLENGE_USED      ? "was already used (challenges are single-use)"
             : rc == SEC_CHALLENGE_EXPIRED ? "has expired"
                                           : "was never issued by this server (or is long gone)");
    refuse(s, res, "fetch", NULL, rc, msg);
    sec_fetch_req_clear(&r);
    return;
  }
  size_t tl = 0;
  uint8_t *t = sec_fetch_transcript(c->id, c->challenge, s->own.cert_hash, r.name, &tl);
  if (!t || sec_verify(c->spki, c->spki_len, t, tl, r.sig, r.sig_len)) {
    free(t);
    snprintf(
        msg, sizeof msg,
        "the response to challenge %s is not signed by the key attested for it (the challenge is "
        "now used)",
        idhex);
    refuse(s, res, "fetch", c->client_id, SEC_BAD_SIGNATURE, msg);
    sec_fetch_req_clear(&r);
    return;
  }
  free(t);
  char rec[sizeof RECORD_PREFIX + SEC_MAX_NAME];
  record_name(r.name, rec, sizeof rec);
  uint8_t *data = NULL;
  size_t len = 0;
  int grc = ra_sealed_get(s->store, rec, RA_SEALED_MAX_RECORD, &data, &len);
  if (grc) {
    if (grc == -ENOENT) {
      snprintf(msg, sizeof msg, "no secret named %s", r.name);
      refuse(s, res, "fetch", c->client_id, SEC_NOT_FOUND, msg);
    } else {
      ra_error("%ssecret %s unreadable: %s", s->mark, r.name, ra_strerror(grc));
      refuse(s, res, "fetch", c->client_id, SEC_INTERNAL, "the secret cannot be read");
    }
    sec_fetch_req_clear(&r);
    return;
  }
  sec_box box;
  uint8_t eh[32], ch[32], *st = NULL, *sig = NULL;
  size_t stl = 0, sl = 0;
  char *eb = NULL, *nb = NULL, *cb = NULL, *sb = NULL;
  int ok = sec_seal(c->spki, c->spki_len, c->id, c->challenge, r.name, data, len, &box) == 0;
  ra_sealed_data_free(data, len);
  if (ok) {
    sec_sha256(box.epk, box.epk_len, eh);
    sec_sha256(box.ct, box.ct_len, ch);
    st = sec_secret_transcript(c->id, eh, box.nonce, ch, r.name, &stl);
    ok = st && sec_sign(s->own.key, st, stl, &sig, &sl) == 0 && (eb = b64(box.epk, box.epk_len)) &&
         (nb = b64(box.nonce, 12)) && (cb = b64(box.ct, box.ct_len)) && (sb = b64(sig, sl));
  }
  if (!ok) {
    refuse(s, res, "fetch", c->client_id, SEC_INTERNAL,
           "cannot seal the secret to the client's key");
  } else {
    ra_info("%ssecret %s released to client %s (challenge %s), sealed to its attested key", s->mark,
            r.name, c->client_id, idhex);
    send_doc(res, 200,
             json_pack("{s:s,s:s,s:s,s:s,s:s,s:s}", "name", r.name, "challenge_id", idhex, "epk",
                       eb, "nonce", nb, "ciphertext", cb, "signature", sb));
  }
  sec_box_clear(&box);
  free(st);
  free(sig);
  free(eb);
  free(nb);
  free(cb);
  free(sb);
  sec_fetch_req_clear(&r);
}

static void access_log(const ra_req *req, int status, uint64_t us, void *ud) {
  server *s = ud;
  ra_str m = ra_req_method(req), t = ra_req_target(req), peer = ra_req_peer(req);
  ra_info("%s%.*s %.*s %.*s %d %lluus", s->mark, (int)peer.len, peer.ptr, (int)m.len, m.ptr,
          (int)(t.len > 200 ? 200 : t.len), t.ptr, status, (unsigned long long)us);
}

static const char *g_first_listen, *g_first_listen_tls;

static void print_listen(const char *a, bool tls, unsigned port) {
  const char *colon = strrchr(a, ':');
  if (!colon || !strncmp(a, "unix:", 5))
    printf("listening on %s%s\n", a, tls ? " (TLS)" : "");
  else
    printf("listening on %s://%.*s:%u\n", tls ? "https" : "http", (int)(colon - a), a, port);
}

/* ra_http_server_port() names the first TCP listener, which is a TLS one
 * when there are both: a plain listener's port 0 is then not known here,
 * so give plain listeners a port of their own when mixing. */
static void on_listening(ra_http_server *srv, void *ud) {
  (void)ud;
  if (g_first_listen) {
    const char *c = strrchr(g_first_listen, ':');
    unsigned p = c ? (unsigned)atoi(c + 1) : 0;
    print_listen(g_first_listen, false, p ? p : g_first_listen_tls ? 0 : ra_http_server_port(srv));
  }
  if (g_first_listen_tls) print_listen(g_first_listen_tls, true, ra_http_server_tls_port(srv));
  fflush(stdout);
}

/* RATLS_STRICT: unset or true: 1; false: 0; anything else: -1. */
int sec_strict_from_env(void) {
  const char *v = getenv("RATLS_STRICT");
  if (!v || !*v) return 1;
  static const char *const yes[] = {"1", "true", "yes", "on"}, *const no[] = {"0", "false", "no",
                                                                              "off"};
  for (size_t i = 0; i < 4; i++) {
    if (!strcasecmp(v, yes[i])) return 1;
    if (!strcasecmp(v, no[i])) return 0;
  }
  return -1;
}

static int open_store(const char *dir, const char *key_file, ra_sealed **st) {
  int rc = ra_sealed_open_env(dir, key_file, st);
  if (rc == -ENOKEY)
    fprintf(stderr,
            "ra-secrets: no key: set ENCLAVE_KEY_BASE64 (e.g. $(openssl rand -base64 32)) or "
            "give --key-file\n");
  else if (rc == -EINVAL)
    fprintf(stderr, "ra-secrets: the store key is not the base64 of 32 bytes\n");
  else if (rc == -EBUSY)
    fprintf(stderr,
            "ra-secrets: %s is open in another process (a running server: stop it, or give "
            "the secret with serve --secret)\n",
            dir);
  else if (rc)
    fprintf(stderr, "ra-secrets: cannot open the store in %s: %s\n", dir, ra_strerror(rc));
  return rc;
}

/* "@FILE" or "-" (stdin) or a literal value: the bytes, malloc'd. */
static int read_value(const char *v, uint8_t **out, size_t *len) {
  if (!strcmp(v, "-")) {
    size_t cap = 4096, n = 0;
    uint8_t *b = malloc(cap);
    for (size_t r; b && (r = fread(b + n, 1, cap - n, stdin)) > 0;) {
      n += r;
      if (n == cap) {
        uint8_t *nb = n > RA_SEALED_MAX_RECORD ? NULL : realloc(b, cap *= 2);
        if (!nb) {
          free(b);
          return -EFBIG;
        }
        b = nb;
      }
    }
    if (!b) return -ENOMEM;
    *out = b;
    *len = n;
    return 0;
  }
  if (v[0] == '@') return ra_file_read(v + 1, RA_SEALED_MAX_RECORD, out, len);
  fprintf(stderr, "ra-secrets: a value is given as @FILE or - (stdin), never on the command line "
                  "(it would show in ps and the shell's history)\n");
  return -EINVAL;
}

static int put_one(ra_sealed *st, const char *name, const char *value) {
  if (!sec_name_valid(name)) {
    fprintf(stderr,
            "ra-secrets: bad secret name '%s': 1..%d of [A-Za-z0-9._-], not starting with '.'\n",
            name, SEC_MAX_NAME);
    return SEC_EXIT_USAGE;
  }
  uint8_t *d = NULL;
  size_t n = 0;
  int rc = read_value(value, &d, &n);
  if (rc) {
    if (rc != -EINVAL) fprintf(stderr, "ra-secrets: cannot read %s: %s\n", value, ra_strerror(rc));
    return SEC_EXIT_USAGE;
  }
  char rec[sizeof RECORD_PREFIX + SEC_MAX_NAME];
  record_name(name, rec, sizeof rec);
  rc = ra_sealed_put(st, rec, d, n);
  sodium_memzero(d, n);
  free(d);
  if (rc) {
    fprintf(stderr, "ra-secrets: storing %s failed: %s\n", name, ra_strerror(rc));
    return 1;
  }
  ra_info("secret %s stored sealed (%zu bytes)", name, n);
  return 0;
}

int sec_cmd_put(int argc, char **argv) {
  const char *dir = NULL, *key_file = NULL, *name = NULL, *value = NULL;
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i], *nx = i + 1 < argc ? argv[i + 1] : NULL;
    if (!strcmp(a, "--data-dir") && nx)
      dir = argv[++i];
    else if (!strcmp(a, "--key-file") && nx)
      key_file = argv[++i];
    else if (a[0] == '-' && a[1]) {
      fprintf(stderr, "usage: ra-secrets put --data-dir DIR [--key-file F] NAME @FILE|-\n");
      return SEC_EXIT_USAGE;
    } else if (!name)
      name = a;
    else if (!value)
      value = a;
    else
      return SEC_EXIT_USAGE;
  }
  if (!dir || !name || !value) {
    fprintf(stderr, "usage: ra-secrets put --data-dir DIR [--key-file F] NAME @FILE|-\n");
    return SEC_EXIT_USAGE;
  }
  ra_sealed *st;
  if (open_store(dir, key_file, &st)) return SEC_EXIT_KEY;
  int rc = put_one(st, name, value);
  ra_sealed_free(st);
  if (rc == 0) printf("stored %s\n", name);
  return rc;
}

static void serve_usage(void) {
  fprintf(
      stderr,
      "usage: ra-secrets serve [--listen HOST:PORT]... [--listen-tls HOST:PORT --ra-tls]...\n"
      "         --data-dir DIR [--key-file F] [--tee sim|tsm|dstack[:SOCK]|auto] [--sim-dir DIR]\n"
      "         (--client-app-id HEX | --client-mrtd HEX)... [--client-trust-sim DIR] [--root "
      "PEM]...\n"
      "         [--secret NAME=@FILE]... [--challenge-ttl MS] [--quiet]\n"
      "environment: ENCLAVE_KEY_BASE64 (the store key), RATLS_STRICT (true; false relaxes)\n"
      "exit: 0 stopped, 1 failure, 2 usage, 3 store key, 4 own attestation unavailable\n");
}

int sec_cmd_serve(int argc, char **argv) {
  const char *listen[MAX_LISTEN], *listen_tls[MAX_LISTEN], *secrets[MAX_SECRETS];
  const char *roots[SEC_MAX_PINS], *trust_sim = NULL;
  size_t nl = 0, ntl = 0, ns = 0, nr = 0;
  const char *dir = NULL, *key_file = NULL, *tee = NULL, *sim_dir = NULL;
  bool ra_tls = false, quiet = false;
  long long ttl = SEC_DEFAULT_TTL_MS;
  static server s;
  memset(&s, 0, sizeof s);
  int strict = sec_strict_from_env();
  if (strict < 0) {
    fprintf(stderr, "ra-secrets: RATLS_STRICT must be true or false (failing closed)\n");
    return SEC_EXIT_USAGE;
  }
  s.pol.strict = strict;
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
    bool takes = true;
    if (!strcmp(a, "--ra-tls"))
      ra_tls = true, takes = false;
    else if (!strcmp(a, "--quiet"))
      quiet = true, takes = false;
    else if (!v) {
      serve_usage();
      return SEC_EXIT_USAGE;
    } else if (!strcmp(a, "--listen") && nl < MAX_LISTEN)
      listen[nl++] = v;
    else if (!strcmp(a, "--listen-tls") && ntl < MAX_LISTEN)
      listen_tls[ntl++] = v;
    else if (!strcmp(a, "--data-dir"))
      dir = v;
    else if (!strcmp(a, "--key-file"))
      key_file = v;
    else if (!strcmp(a, "--tee"))
      tee = v;
    else if (!strcmp(a, "--sim-dir"))
      sim_dir = v;
    else if (!strcmp(a, "--client-trust-sim"))
      trust_sim = v;
    else if (!strcmp(a, "--root") && nr < SEC_MAX_PINS)
      roots[nr++] = v;
    else if (!strcmp(a, "--secret") && ns < MAX_SECRETS)
      secrets[ns++] = v;
    else if (!strcmp(a, "--challenge-ttl")) {
      char *e;
      ttl = strtoll(v, &e, 10);
      if (*e || ttl < 1 || ttl > 3600000) {
        fprintf(stderr, "ra-secrets: --challenge-ttl: 1..3600000 ms\n");
        return SEC_EXIT_USAGE;
      }
    } else if (!strcmp(a, "--client-app-id")) {
      if (sec_policy_add_app_id(&s.pol, v)) {
        fprintf(stderr, "ra-secrets: --client-app-id: hex of 1..64 bytes (at most %d)\n",
                SEC_MAX_PINS);
        return SEC_EXIT_USAGE;
      }
    } else if (!strcmp(a, "--client-mrtd")) {
      if (sec_policy_add_mrtd(&s.pol, v)) {
        fprintf(stderr, "ra-secrets: --client-mrtd: 96 hex digits (at most %d)\n", SEC_MAX_PINS);
        return SEC_EXIT_USAGE;
      }
    } else {
      serve_usage();
      return SEC_EXIT_USAGE;
    }
    if (takes) i++;
  }
  if (!dir) {
    fprintf(stderr, "ra-secrets: --data-dir DIR is required\n");
    return SEC_EXIT_USAGE;
  }
  if (ntl && !ra_tls) {
    fprintf(stderr, "ra-secrets: --listen-tls needs --ra-tls (the TLS certificate is the server's "
                    "attested one)\n");
    return SEC_EXIT_USAGE;
  }
  if (quiet) ra_log_set_level(RA_LOG_WARN);
  s.mark = strict ? "" : "[RATLS_STRICT=false: relaxed mode] ";
  /* fail closed: a strict server that would accept any client is a
   * configuration error, not a default */
  if (strict && s.pol.n_app_id == 0 && s.pol.n_mrtd == 0) {
    fprintf(stderr, "ra-secrets: strict mode: pin the clients with --client-app-id HEX and/or "
                    "--client-mrtd HEX (RATLS_STRICT=false accepts any attested client)\n");
    return SEC_EXIT_USAGE;
  }
  if (!strict)
    fprintf(stderr,
            "ra-secrets: WARNING: RATLS_STRICT=false: RELAXED MODE: %s; debug TDs are "
            "accepted. Never in production.\n",
            s.pol.n_app_id || s.pol.n_mrtd
                ? "clients are still checked against the pins given"
                : "ANY client with a genuine quote (to a pinned root) gets secrets");
  int ret = 1;
  ra_verifier *v = NULL;
  if (ra_verifier_new(nr || trust_sim ? RA_VERIFIER_NO_DEFAULT_ROOT : 0, &v)) return 1;
  s.pol.v = v;
  /* our own attested key first (with the sim sharing the clients' root
   * directory, this creates it) */
  char err[512];
  if (sec_own_make(tee, sim_dir, true, "ra-secrets server", &s.own, err, sizeof err)) {
    fprintf(stderr, "ra-secrets: the server's own attestation: %s\n", err);
    ret = SEC_EXIT_OWN;
    goto out;
  }
  char p[4096];
  if (sec_load_roots(v, roots, nr, trust_sim, p, sizeof p)) {
    ret = SEC_EXIT_USAGE;
    goto out;
  }
  if (trust_sim) {
    fprintf(stderr,
            "ra-secrets: WARNING: clients are trusted on the SIMULATED TEE root %s: their "
            "quotes prove nothing about their machines\n",
            p);
  }
  if (sec_table_init(&s.table, SEC_MAX_CHALLENGES)) goto out;
  s.ttl_ms = (uint64_t)ttl;
  if (open_store(dir, key_file, &s.store)) {
    ret = SEC_EXIT_KEY;
    goto out;
  }
  for (size_t i = 0; i < ns; i++) {
    char nm[SEC_MAX_NAME + 2];
    const char *eq = strchr(secrets[i], '=');
    if (!eq || (size_t)(eq - secrets[i]) > SEC_MAX_NAME) {
      fprintf(stderr, "ra-secrets: --secret NAME=@FILE\n");
      ret = SEC_EXIT_USAGE;
      goto out;
    }
    snprintf(nm, sizeof nm, "%.*s", (int)(eq - secrets[i]), secrets[i]);
    if ((ret = put_one(s.store, nm, eq + 1)) != 0) goto out;
    ret = 1;
  }
  if (s.own.simulated)
    fprintf(stderr,
            "ra-secrets: WARNING: the server attests itself with the SIMULATED TEE: clients "
            "must pin the simulated root (--trust-sim) to accept it; proves nothing\n");
  ra_info("%sserver key attested by the %s provider%s; challenges live %llu ms; %s", s.mark,
          s.own.provider, s.own.is_dstack ? " (dstack event log in the certificate)" : "",
          (unsigned long long)s.ttl_ms,
          strict ? "strict mode" : "RELAXED mode (RATLS_STRICT=false)");
  ra_router *router;
  if (ra_router_new(&router)) goto out;
  ra_route(router, "POST", "/v1/secrets/challenge", h_challenge, &s);
  ra_route(router, "POST", "/v1/secrets/fetch", h_fetch, &s);
  ra_http_server_opts ho = {.access_log = access_log, .access_log_ud = &s};
  ho.limits.max_body = SEC_MAX_BODY;
  ra_tls_cert tc = {.cert_pem = s.own.cert_pem, .key_pem = s.own.key_pem};
  ra_tls_server_opts to = {.certs = &tc, .ncerts = 1};
  if (nl == 0 && ntl == 0) listen[nl++] = "127.0.0.1:3030";
  g_first_listen = nl ? listen[0] : NULL;
  g_first_listen_tls = ntl ? listen_tls[0] : NULL;
  ra_serve_opts so = {.listen = listen,
                      .n_listen = nl,
                      .listen_tls = ntl ? listen_tls : NULL,
                      .n_listen_tls = ntl,
                      .tls = ntl ? &to : NULL,
                      .tee = "none",
                      .http = &ho,
                      .on_listening = on_listening};
  int rc = ra_serve(router, &so);
  ra_router_free(router);
  ret = rc ? 1 : 0;
out:
  sec_own_clear(&s.own);
  sec_table_free(&s.table);
  ra_sealed_free(s.store);
  ra_verifier_free(v);
  return ret;
}
