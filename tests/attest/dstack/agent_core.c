/* tests/attest/dstack/agent_core.c: a stand-in for the dstack guest agent
 * (Dstack-TEE/dstack guest-agent), for tests. Included by the standalone
 * program (agent.c) and by tests/attest/quote/dstack_test.c (run in a
 * thread there).
 *
 * Speaks the agent's API on a unix socket, HTTP/1.1, one request per
 * connection: POST /GetQuote, /Info (dstack), /prpc/Tappd.TdxQuote,
 * /prpc/Tappd.RawQuote, /prpc/Tappd.Info (tappd), answering with quotes
 * of the simulated TEE (attest/quote/sim.h) whose RTMRs are the replay of
 * the event log it hands out (boot events on RTMR0-2, dstack's runtime
 * events on RTMR3: app-id, compose-hash, instance-id, key-provider ...).
 * Modes make it misbehave: "500", "garbled" (invalid JSON), "short-quote"
 * (a quote cut to 100 bytes), "wrong-rd" (a quote for other report_data),
 * "hang" (never answers), "chunked" (a correct answer, chunked). */
#include <errno.h>
#include <poll.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <jansson.h>
#include <openssl/evp.h>

#include "raloop/attest/quote/eventlog.h"
#include "raloop/attest/quote/hexb64.h"
#include "raloop/attest/quote/sim.h"

#define AGENT_APP_ID       "a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1"
#define AGENT_COMPOSE_HASH "c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0"
#define AGENT_INSTANCE_ID  "1d1d1d1d1d1d1d1d1d1d1d1d1d1d1d1d1d1d1d1d"

typedef struct agent_opts {
  const char *socket;
  const char *sim_dir;
  const char *mode;         /* NULL or "ok": behave */
  const char *app_id;       /* hex; default 20 bytes of 0xa1 */
  const char *compose_hash; /* hex; default 32 bytes of 0xc0 */
  const char *instance_id;  /* hex; default 20 bytes of 0x1d */
  const char *app_cert;     /* PEM for Info, or NULL */
  bool print_ready;         /* print "ready" on stdout once listening */
} agent_opts;

/* The event log the agent serves, as JSON text (malloc'd). */
static char *agent_event_log(const agent_opts *o) {
  json_t *a = json_array();
  /* boot-time events: digests only, as dstack strips their payloads */
  for (int imr = 0; imr < 3; imr++)
    for (int k = 0; k < 2; k++) {
      uint8_t d[48];
      char h[97];
      memset(d, 0x10 * (imr + 1) + k, 48);
      ra_hex_encode(d, 48, h);
      json_array_append_new(a, json_pack("{s:i,s:I,s:s,s:s,s:s}", "imr", imr, "event_type",
                                         (json_int_t)(imr == 0 ? 0x80000001u : 0x80000007u),
                                         "digest", h, "event",
                                         "", "event_payload", ""));
    }
  const char *kp = "7b226e616d65223a226b6d73222c226964223a2273696d227d"; /* {"name":"kms","id":"sim"} */
  struct {
    const char *name, *payload;
  } rt[] = {
      {"system-preparing", ""},
      {"app-id", o->app_id ? o->app_id : AGENT_APP_ID},
      {"compose-hash", o->compose_hash ? o->compose_hash : AGENT_COMPOSE_HASH},
      {"instance-id", o->instance_id ? o->instance_id : AGENT_INSTANCE_ID},
      {"boot-mr-done", ""},
      {"key-provider", kp},
      {"system-ready", ""},
  };
  for (size_t i = 0; i < sizeof rt / sizeof *rt; i++)
    json_array_append_new(a, json_pack("{s:i,s:i,s:s,s:s,s:s}", "imr", 3, "event_type",
                                       (int)RA_DSTACK_RUNTIME_EVENT, "digest", "", "event",
                                       rt[i].name, "event_payload", rt[i].payload));
  char *s = json_dumps(a, JSON_COMPACT);
  json_decref(a);
  return s;
}

/* A sim quote for report_data whose RTMRs are the event log's replay. */
static int agent_quote(ra_sim *sim, const char *evlog, const uint8_t rd[64], uint8_t **q,
                       size_t *qlen) {
  ra_eventlog *log;
  if (ra_eventlog_parse(evlog, strlen(evlog), &log)) return -EINVAL;
  ra_sim_td td;
  ra_sim_td_default(&td);
  ra_eventlog_replay(log, td.rtmr);
  ra_eventlog_free(log);
  return ra_sim_quote(sim, &td, rd, q, qlen);
}

static void agent_send(int fd, int status, const char *body, bool chunked) {
  char head[256];
  const char *reason = status == 200 ? "OK" : status == 400 ? "Bad Request" : "Internal Server Error";
  size_t bl = strlen(body);
  int hl = chunked ? snprintf(head, sizeof head,
                              "HTTP/1.1 %d %s\r\nContent-Type: application/json\r\n"
                              "Transfer-Encoding: chunked\r\n\r\n",
                              status, reason)
                   : snprintf(head, sizeof head,
                              "HTTP/1.1 %d %s\r\nContent-Type: application/json\r\n"
                              "Content-Length: %zu\r\n\r\n",
                              status, reason, bl);
  (void)!write(fd, head, (size_t)hl);
  if (!chunked) {
    (void)!write(fd, body, bl);
    return;
  }
  /* two chunks and the end */
  size_t half = bl / 2;
  char sz[32];
  int n = snprintf(sz, sizeof sz, "%zx\r\n", half);
  (void)!write(fd, sz, (size_t)n);
  (void)!write(fd, body, half);
  n = snprintf(sz, sizeof sz, "\r\n%zx\r\n", bl - half);
  (void)!write(fd, sz, (size_t)n);
  (void)!write(fd, body + half, bl - half);
  (void)!write(fd, "\r\n0\r\n\r\n", 7);
}

static void agent_error(int fd, int status, const char *msg) {
  json_t *j = json_pack("{s:s}", "error", msg);
  char *s = json_dumps(j, JSON_COMPACT);
  agent_send(fd, status, s, false);
  free(s);
  json_decref(j);
}

/* Reads one request; returns the target (static buffer) and *body. */
static int agent_read(int fd, char *buf, size_t cap, char **target, char **body) {
  size_t len = 0;
  for (;;) {
    ssize_t n = read(fd, buf + len, cap - 1 - len);
    if (n <= 0) return -1;
    len += (size_t)n;
    buf[len] = 0;
    char *e = strstr(buf, "\r\n\r\n");
    if (!e) {
      if (len == cap - 1) return -1;
      continue;
    }
    long cl = 0;
    char *c = strcasestr(buf, "\r\nContent-Length:");
    if (c && c < e) cl = strtol(c + 17, NULL, 10);
    if ((size_t)(e + 4 - buf) + (size_t)cl > len) {
      if (len == cap - 1) return -1;
      continue;
    }
    *body = e + 4;
    (*body)[cl] = 0;
    char *sp = strchr(buf, ' ');
    if (!sp) return -1;
    *target = sp + 1;
    char *sp2 = strchr(*target, ' ');
    if (!sp2) return -1;
    *sp2 = 0;
    return 0;
  }
}

typedef struct cert_forge cert_forge;
static char *agent_app_cert(ra_sim *sim, const agent_opts *o, const cert_forge *f);

static void agent_handle(const agent_opts *o, ra_sim *sim, int fd) {
  static char buf[65536];
  char *target, *body;
  const char *mode = o->mode ? o->mode : "ok";
  if (agent_read(fd, buf, sizeof buf, &target, &body)) return;
  if (!strcmp(mode, "hang")) {
    char c;
    (void)!read(fd, &c, 1); /* until the client gives up */
    return;
  }
  if (!strcmp(mode, "500")) {
    agent_error(fd, 500, "simulated agent failure");
    return;
  }
  if (!strcmp(mode, "garbled")) {
    agent_send(fd, 200, "{\"quote\": \"00", false);
    return;
  }
  bool chunked = !strcmp(mode, "chunked");
  char *evlog = agent_event_log(o);
  json_t *req = json_loads(body, 0, NULL);
  json_t *ans = NULL;
  if (!strcmp(target, "/GetQuote") || !strcmp(target, "/prpc/Tappd.TdxQuote") ||
      !strcmp(target, "/prpc/Tappd.RawQuote")) {
    bool tappd = strncmp(target, "/prpc/", 6) == 0;
    const char *hex = json_string_value(json_object_get(req, "report_data"));
    const char *alg = json_string_value(json_object_get(req, "hash_algorithm"));
    uint8_t rd[64] = {0};
    size_t hl = hex ? strlen(hex) : 0;
    if (!hex || hl % 2 || hl > 128 || (hl && ra_hex_decode_exact(hex, hl, rd, hl / 2))) {
      agent_error(fd, 400, "report_data: hex of at most 64 bytes");
      goto out;
    }
    if (tappd && strcmp(target, "/prpc/Tappd.RawQuote") && !(alg && !strcmp(alg, "raw"))) {
      /* tappd's default: sha512("app-data:" || data) */
      uint8_t data[64];
      memcpy(data, rd, 64);
      unsigned int n;
      EVP_MD_CTX *c = EVP_MD_CTX_new();
      EVP_DigestInit_ex(c, EVP_sha512(), NULL);
      EVP_DigestUpdate(c, "app-data:", 9);
      EVP_DigestUpdate(c, data, hl / 2);
      EVP_DigestFinal_ex(c, rd, &n);
      EVP_MD_CTX_free(c);
    } else if (tappd && hl != 128) {
      agent_error(fd, 400, "invalid content length");
      goto out;
    }
    if (!strcmp(mode, "wrong-rd")) rd[0] ^= 0xff;
    uint8_t *q;
    size_t ql;
    if (agent_quote(sim, evlog, rd, &q, &ql)) {
      agent_error(fd, 500, "quote generation failed");
      goto out;
    }
    if (!strcmp(mode, "short-quote")) ql = 100;
    char *qh = malloc(2 * ql + 1), rdh[129];
    ra_hex_encode(q, ql, qh);
    ra_hex_encode(rd, 64, rdh);
    ans = tappd ? json_pack("{s:s,s:s,s:s,s:s}", "quote", qh, "event_log", evlog, "hash_algorithm",
                            alg ? alg : "sha512", "prefix", "")
                : json_pack("{s:s,s:s,s:s,s:s}", "quote", qh, "event_log", evlog, "report_data",
                            rdh, "vm_config", "{}");
    free(q);
    free(qh);
  } else if (!strcmp(target, "/Info") || !strcmp(target, "/prpc/Tappd.Info")) {
    uint8_t zero[64] = {0}, *q;
    size_t ql;
    if (agent_quote(sim, evlog, zero, &q, &ql)) {
      agent_error(fd, 500, "quote generation failed");
      goto out;
    }
    ra_quote pq;
    ra_quote_parse(q, ql, &pq);
    char m[5][97];
    ra_hex_encode(pq.td.mrtd, 48, m[0]);
    for (int i = 0; i < 4; i++) ra_hex_encode(pq.td.rtmr[i], 48, m[i + 1]);
    json_t *tcb = json_pack("{s:s,s:s,s:s,s:s,s:s,s:s,s:o,s:s}", "mrtd", m[0], "rtmr0", m[1],
                            "rtmr1", m[2], "rtmr2", m[3], "rtmr3", m[4], "compose_hash",
                            o->compose_hash ? o->compose_hash : AGENT_COMPOSE_HASH, "event_log",
                            json_loads(evlog, 0, NULL), "app_compose", "{}");
    char *tcbs = json_dumps(tcb, JSON_INDENT(2));
    char *cert = o->app_cert ? NULL : agent_app_cert(sim, o, NULL);
    ans = json_pack("{s:s,s:s,s:s,s:s,s:s,s:s,s:s}", "app_id",
                    o->app_id ? o->app_id : AGENT_APP_ID,
                    "instance_id",
                    o->instance_id ? o->instance_id : AGENT_INSTANCE_ID,
                    "app_cert", o->app_cert ? o->app_cert : cert ? cert : "", "tcb_info", tcbs, "app_name",
                    "stand-in", "key_provider_info", "{\"name\":\"kms\",\"id\":\"sim\"}",
                    "compose_hash", o->compose_hash ? o->compose_hash : AGENT_COMPOSE_HASH);
    free(tcbs);
    free(cert);
    json_decref(tcb);
    free(q);
  } else {
    agent_error(fd, 404, "no such method");
    goto out;
  }
  char *s = json_dumps(ans, JSON_COMPACT);
  agent_send(fd, 200, s, chunked);
  free(s);
out:
  json_decref(ans);
  json_decref(req);
  free(evlog);
}

/* Listens on o->socket (replacing a stale file) and serves until *stop
 * (checked every 50 ms) or, when max > 0, after max connections. Returns 0
 * or -errno. *ready (may be NULL) is set once listening. */
static int agent_run(const agent_opts *o, volatile int *stop, int max, volatile int *ready) {
  ra_sim *sim;
  int rc = ra_sim_open(o->sim_dir, &sim);
  if (rc) return rc;
  int lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  struct sockaddr_un sa = {.sun_family = AF_UNIX};
  snprintf(sa.sun_path, sizeof sa.sun_path, "%s", o->socket);
  unlink(o->socket);
  if (lfd < 0 || bind(lfd, (struct sockaddr *)&sa, sizeof sa) || listen(lfd, 16)) {
    rc = -errno;
    if (lfd >= 0) close(lfd);
    ra_sim_free(sim);
    return rc;
  }
  if (ready) *ready = 1;
  if (o->print_ready) {
    printf("ready\n");
    fflush(stdout);
  }
  for (int served = 0; !(stop && *stop) && (max <= 0 || served < max);) {
    struct pollfd p = {lfd, POLLIN, 0};
    if (poll(&p, 1, 50) <= 0) continue;
    int fd = accept(lfd, NULL, NULL);
    if (fd < 0) continue;
    agent_handle(o, sim, fd);
    close(fd);
    served++;
  }
  close(lfd);
  unlink(o->socket);
  ra_sim_free(sim);
  return 0;
}

/* ---- an app certificate in dstack's RA-TLS shape (dstack_cert.h) ---- */

#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "raloop/attest/quote/dstack_cert.h"

/* What to get wrong, for tests (all false/NULL: a correct certificate). */
typedef struct cert_forge {
  bool bind_other_key;   /* the quote binds another key */
  bool no_quote;         /* no 1.1 extension */
  bool no_event_log;     /* no 1.2 extension */
  bool attestation_only; /* a 1.8 extension in msgpack form (not decoded) instead of 1.1/1.2 */
  bool attestation;      /* a 1.8 extension (SCALE V0, as dstack 0.5.6+) instead of 1.1/1.2 */
  bool att_other_rd;     /* ... whose report_data is not its quote's */
  const char *app_id_ext; /* hex for 1.3 (NULL: the log's app id) */
  const char *event_log;  /* served instead of the quote's own log */
} cert_forge;

static void cert_add_ext(X509 *x, const char *oid, const void *bytes, size_t len) {
  ASN1_OCTET_STRING *inner = ASN1_OCTET_STRING_new(), *outer = ASN1_OCTET_STRING_new();
  ASN1_OCTET_STRING_set(inner, bytes, (int)len);
  unsigned char *der = NULL;
  int dl = i2d_ASN1_OCTET_STRING(inner, &der);
  ASN1_OCTET_STRING_set(outer, der, dl);
  ASN1_OBJECT *obj = OBJ_txt2obj(oid, 1);
  X509_EXTENSION *ext = X509_EXTENSION_create_by_OBJ(NULL, obj, 0, outer);
  X509_add_ext(x, ext, -1);
  X509_EXTENSION_free(ext);
  ASN1_OBJECT_free(obj);
  OPENSSL_free(der);
  ASN1_OCTET_STRING_free(inner);
  ASN1_OCTET_STRING_free(outer);
}

/* SCALE, as dstack-attest encodes LegacyVersionedAttestation::V0 */
typedef struct sbuf {
  uint8_t *p;
  size_t len, cap;
} sbuf;

static void s_put(sbuf *b, const void *d, size_t n) {
  if (b->len + n > b->cap) {
    b->cap = (b->len + n) * 2 + 64;
    b->p = realloc(b->p, b->cap);
  }
  memcpy(b->p + b->len, d, n);
  b->len += n;
}

static void s_compact(sbuf *b, uint64_t v) {
  uint8_t t[9];
  if (v < 64) {
    t[0] = (uint8_t)(v << 2);
    s_put(b, t, 1);
  } else if (v < 16384) {
    uint16_t x = (uint16_t)(v << 2 | 1);
    t[0] = (uint8_t)x;
    t[1] = (uint8_t)(x >> 8);
    s_put(b, t, 2);
  } else if (v < (1u << 30)) {
    uint32_t x = (uint32_t)(v << 2 | 2);
    for (int i = 0; i < 4; i++) t[i] = (uint8_t)(x >> (8 * i));
    s_put(b, t, 4);
  } else {
    t[0] = (uint8_t)((8 - 4) << 2 | 3);
    for (int i = 0; i < 8; i++) t[1 + i] = (uint8_t)(v >> (8 * i));
    s_put(b, t, 9);
  }
}

static void s_bytes(sbuf *b, const void *d, size_t n) {
  s_compact(b, n);
  s_put(b, d, n);
}

static void s_u32(sbuf *b, uint32_t v) {
  uint8_t t[4] = {(uint8_t)v, (uint8_t)(v >> 8), (uint8_t)(v >> 16), (uint8_t)(v >> 24)};
  s_put(b, t, 4);
}

static void s_hex(sbuf *b, const char *hex) {
  size_t n = hex ? strlen(hex) / 2 : 0;
  uint8_t *t = malloc(n + 1);
  if (n) ra_hex_decode_exact(hex, 2 * n, t, n);
  s_bytes(b, t, n);
  free(t);
}

/* V0 { DstackTdx { quote, event_log }, runtime_events, report_data, config } */
static uint8_t *agent_scale_attestation(const uint8_t *q, size_t ql, const char *evlog,
                                        const uint8_t rd[64], size_t *len) {
  sbuf b = {0};
  uint8_t z = 0;
  s_put(&b, &z, 1); /* V0 */
  s_put(&b, &z, 1); /* DstackTdx */
  s_bytes(&b, q, ql);
  json_t *a = json_loads(evlog, 0, NULL);
  size_t i, nrt = 0;
  json_t *e;
  s_compact(&b, json_array_size(a));
  json_array_foreach(a, i, e) {
    s_u32(&b, (uint32_t)json_integer_value(json_object_get(e, "imr")));
    uint32_t type = (uint32_t)json_integer_value(json_object_get(e, "event_type"));
    s_u32(&b, type);
    if (type == RA_DSTACK_RUNTIME_EVENT) nrt++;
    s_hex(&b, json_string_value(json_object_get(e, "digest")));
    const char *nm = json_string_value(json_object_get(e, "event"));
    s_bytes(&b, nm, strlen(nm));
    s_hex(&b, json_string_value(json_object_get(e, "event_payload")));
  }
  s_compact(&b, nrt);
  json_array_foreach(a, i, e) {
    if ((uint32_t)json_integer_value(json_object_get(e, "event_type")) != RA_DSTACK_RUNTIME_EVENT)
      continue;
    const char *nm = json_string_value(json_object_get(e, "event"));
    s_bytes(&b, nm, strlen(nm));
    s_hex(&b, json_string_value(json_object_get(e, "event_payload")));
  }
  json_decref(a);
  s_put(&b, rd, 64);
  s_bytes(&b, "{}", 2);
  *len = b.len;
  return b.p;
}

/* A self-signed P-256 certificate whose 1.1 quote (sim TEE) binds its key
 * as dstack does, with the agent's event log (1.2) and app id (1.3).
 * Returns malloc'd PEM or NULL. */
static char *agent_app_cert(ra_sim *sim, const agent_opts *o, const cert_forge *f) {
  cert_forge none = {0};
  if (!f) f = &none;
  EVP_PKEY *key = EVP_EC_gen("P-256"), *other = EVP_EC_gen("P-256");
  X509 *x = X509_new();
  char *evlog = agent_event_log(o), *pem = NULL;
  uint8_t *q = NULL;
  size_t ql = 0;
  if (!key || !other || !x || !evlog) goto out;
  X509_set_version(x, 2);
  ASN1_INTEGER_set(X509_get_serialNumber(x), 1);
  X509_gmtime_adj(X509_getm_notBefore(x), -3600);
  X509_gmtime_adj(X509_getm_notAfter(x), 86400);
  X509_NAME *n = X509_get_subject_name(x);
  X509_NAME_add_entry_by_txt(n, "CN", MBSTRING_ASC, (const unsigned char *)"stand-in dstack app", -1, -1, 0);
  X509_set_issuer_name(x, n);
  X509_set_pubkey(x, key);
  unsigned char *spki = NULL;
  int sl = f->bind_other_key ? i2d_PUBKEY(other, &spki) : i2d_X509_PUBKEY(X509_get_X509_PUBKEY(x), &spki);
  uint8_t rd[64];
  ra_dstack_cert_report_data(spki, (size_t)sl, rd);
  OPENSSL_free(spki);
  if (agent_quote(sim, evlog, rd, &q, &ql)) goto out;
  if (f->attestation_only) {
    const uint8_t msgpack[] = {0x83, 0xa7, 'v', 'e', 'r', 's', 'i', 'o', 'n', 0x01};
    cert_add_ext(x, RA_DSTACK_OID_ATTESTATION, msgpack, sizeof msgpack);
  } else if (f->attestation) {
    uint8_t ard[64];
    memcpy(ard, rd, 64);
    if (f->att_other_rd) ard[0] ^= 1;
    size_t al;
    uint8_t *att = agent_scale_attestation(q, ql, f->event_log ? f->event_log : evlog, ard, &al);
    cert_add_ext(x, RA_DSTACK_OID_ATTESTATION, att, al);
    free(att);
  } else {
    if (!f->no_quote) cert_add_ext(x, RA_DSTACK_OID_QUOTE, q, ql);
    const char *el = f->event_log ? f->event_log : evlog;
    if (!f->no_event_log) cert_add_ext(x, RA_DSTACK_OID_EVENT_LOG, el, strlen(el));
  }
  const char *aid = f->app_id_ext ? f->app_id_ext : o->app_id ? o->app_id : AGENT_APP_ID;
  uint8_t ab[64];
  size_t al = strlen(aid) / 2;
  if (al <= 64 && !ra_hex_decode_exact(aid, 2 * al, ab, al)) cert_add_ext(x, RA_DSTACK_OID_APP_ID, ab, al);
  if (!X509_sign(x, key, EVP_sha256())) goto out;
  BIO *b = BIO_new(BIO_s_mem());
  PEM_write_bio_X509(b, x);
  char *p;
  long pl = BIO_get_mem_data(b, &p);
  pem = malloc((size_t)pl + 1);
  if (pem) {
    memcpy(pem, p, (size_t)pl);
    pem[pl] = 0;
  }
  BIO_free(b);
out:
  free(q);
  free(evlog);
  X509_free(x);
  EVP_PKEY_free(key);
  EVP_PKEY_free(other);
  return pem;
}
