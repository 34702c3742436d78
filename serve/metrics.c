/* serve/metrics.c: see metrics.h. One block: a header (labels, a sequence
 * number for the supervisor's folds) and nslots + 1 slots of integers (the
 * last one holds retired workers' counters). Writers are single per slot
 * (its process); readers in any process. Relaxed atomics: each value is
 * read whole; a scrape is a sum of values each at most a second old. */

#include "raloop/serve/metrics.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>

#define NSTATUS 27
static const int status_codes[NSTATUS - 1] = {101, 200, 201, 202, 204, 206, 301, 302, 304, 307, 308, 400, 401, 403,
                                              404, 405, 408, 409, 413, 414, 429, 431, 500, 501, 502, 503};
/* seconds: the usual Prometheus client defaults, finer at the low end */
#define NBUCKETS 14
static const uint64_t bucket_us[NBUCKETS] = {100, 250, 500, 1000, 2500, 5000, 10000, 25000,
                                             50000, 100000, 250000, 500000, 1000000, 2500000};
static const char *const bucket_le[NBUCKETS] = {"0.0001", "0.00025", "0.0005", "0.001", "0.0025",
                                                "0.005",  "0.01",    "0.025",  "0.05",  "0.1",
                                                "0.25",   "0.5",     "1",      "2.5"};

enum { F_BAD_SEALED_KEY, F_DECRYPT, F_REPLAY, F_KX_TIMEOUT, F_BAD_CBOR, F_BEFORE_KEY, F_PLAINTEXT,
       F_UNKEYED_REFUSED, F_TUNNELS_REFUSED, F_HEARTBEAT, NFAIL };
static const char *const fail_names[NFAIL] = {
    "bad_sealed_key", "decrypt_failed", "replay", "kx_timeout", "bad_cbor", "dropped_before_key",
    "dropped_plaintext", "unkeyed_refused", "tunnels_refused", "heartbeat_timeout"};

typedef struct slot {
  /* counters */
  uint64_t req[RA_METRICS_MAX_ROUTES + 1][NSTATUS][2];
  uint64_t bucket[2][NBUCKETS + 1]; /* not cumulative; the last is +Inf */
  uint64_t sum_us[2], count[2];
  uint64_t bytes_in, bytes_out, handshakes, fail[NFAIL];
  /* gauges (zeroed when the process goes) */
  uint64_t live, conns, upgraded, tunnels, key_created_s;
} slot;

typedef struct shared {
  uint64_t seq; /* odd while the supervisor folds a slot */
  unsigned nroutes;
  char route_method[RA_METRICS_MAX_ROUTES][32];
  char route_path[RA_METRICS_MAX_ROUTES][128];
  slot slots[]; /* nslots + 1 */
} shared;

struct ra_metrics {
  shared *sh;
  size_t size;
  unsigned nslots;
  slot *mine;
  int worker; /* -1 without workers */
  ra_loop *loop;
  ra_http_server *http;
  ra_tunnel_server *ts;
  ra_timer timer;
  bool attached;
};

#define LOAD(p) __atomic_load_n((p), __ATOMIC_RELAXED)
#define STORE(p, v) __atomic_store_n((p), (v), __ATOMIC_RELAXED)
#define ADD(p, v) __atomic_fetch_add((p), (v), __ATOMIC_RELAXED)

int ra_metrics_new(unsigned nslots, ra_metrics **out) {
  *out = NULL;
  if (nslots == 0 || nslots > 65536) return -EINVAL;
  ra_metrics *m = calloc(1, sizeof *m);
  if (!m) return -ENOMEM;
  m->size = sizeof(shared) + (nslots + 1) * sizeof(slot);
  /* shared with the workers forked later (a single process: private) */
  void *p = mmap(NULL, m->size, PROT_READ | PROT_WRITE,
                 (nslots > 1 ? MAP_SHARED : MAP_PRIVATE) | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED) {
    free(m);
    return -ENOMEM;
  }
  m->sh = p;
  m->nslots = nslots;
  m->mine = &m->sh->slots[0];
  m->worker = -1;
  if (nslots == 1) STORE(&m->mine->live, 1); /* with workers: ra_metrics_use_slot */
  *out = m;
  return 0;
}

int ra_metrics_add_route(ra_metrics *m, const char *method, const char *path) {
  shared *sh = m->sh;
  for (unsigned i = 0; i < sh->nroutes; i++)
    if (strcmp(sh->route_method[i], method) == 0 && strcmp(sh->route_path[i], path) == 0) return -EEXIST;
  if (sh->nroutes == RA_METRICS_MAX_ROUTES) return -ENOSPC;
  if (strlen(method) >= sizeof sh->route_method[0] || strlen(path) >= sizeof sh->route_path[0])
    return -ENAMETOOLONG;
  strcpy(sh->route_method[sh->nroutes], method);
  strcpy(sh->route_path[sh->nroutes], path);
  sh->nroutes++;
  return 0;
}

static void zero_gauges(slot *s) {
  STORE(&s->live, 0);
  STORE(&s->conns, 0);
  STORE(&s->upgraded, 0);
  STORE(&s->tunnels, 0);
  STORE(&s->key_created_s, 0);
}

void ra_metrics_use_slot(ra_metrics *m, unsigned slot_no, unsigned worker) {
  if (slot_no >= m->nslots) return;
  m->mine = &m->sh->slots[slot_no];
  m->worker = (int)worker;
  zero_gauges(m->mine);
  STORE(&m->mine->live, 1);
}

void ra_metrics_retire(ra_metrics *m, unsigned slot_no) {
  if (slot_no >= m->nslots) return;
  slot *s = &m->sh->slots[slot_no], *r = &m->sh->slots[m->nslots];
  /* readers retry while seq is odd: the fold is never seen half done */
  __atomic_fetch_add(&m->sh->seq, 1, __ATOMIC_SEQ_CST);
  uint64_t *src = (uint64_t *)s, *dst = (uint64_t *)r;
  size_t ncounters = offsetof(slot, live) / sizeof(uint64_t);
  for (size_t i = 0; i < ncounters; i++) {
    ADD(&dst[i], LOAD(&src[i]));
    STORE(&src[i], 0);
  }
  zero_gauges(s);
  __atomic_fetch_add(&m->sh->seq, 1, __ATOMIC_SEQ_CST);
}

static unsigned route_index(const shared *sh, const ra_req *req) {
  ra_str me = ra_req_method(req), pa = ra_req_path(req);
  for (unsigned i = 0; i < sh->nroutes; i++) {
    const char *rm = sh->route_method[i], *rp = sh->route_path[i];
    if (strlen(rm) == me.len && memcmp(rm, me.ptr, me.len) == 0 && strlen(rp) == pa.len &&
        memcmp(rp, pa.ptr, pa.len) == 0)
      return i;
  }
  return RA_METRICS_MAX_ROUTES; /* "other" */
}

static unsigned status_index(int status) {
  for (unsigned i = 0; i < NSTATUS - 1; i++)
    if (status_codes[i] == status) return i;
  return NSTATUS - 1;
}

void ra_metrics_request(ra_metrics *m, const ra_req *req, int status, uint64_t us, bool tunnel) {
  slot *s = m->mine;
  unsigned t = tunnel ? 1 : 0, b = 0;
  ADD(&s->req[route_index(m->sh, req)][status_index(status)][t], 1);
  while (b < NBUCKETS && us > bucket_us[b]) b++;
  ADD(&s->bucket[t][b], 1);
  ADD(&s->sum_us[t], us);
  ADD(&s->count[t], 1);
}

static void sample(ra_metrics *m) {
  slot *s = m->mine;
  if (m->http) {
    ra_http_stats hs;
    ra_http_server_stats(m->http, &hs);
    STORE(&s->conns, hs.connections);
    STORE(&s->upgraded, hs.upgraded);
    STORE(&s->bytes_in, hs.bytes_in);
    STORE(&s->bytes_out, hs.bytes_out);
  }
  if (m->ts) {
    ra_tunnel_stats st;
    ra_tunnel_server_stats(m->ts, &st);
    STORE(&s->tunnels, st.tunnels_open);
    STORE(&s->handshakes, st.keyed);
    uint64_t f[NFAIL] = {st.bad_sealed_key,    st.decrypt_failed,  st.replays,
                         st.kx_timeouts,       st.bad_cbor,        st.dropped_before_key,
                         st.dropped_plaintext, st.unkeyed_refused, st.tunnels_refused,
                         st.heartbeat_drops};
    for (int i = 0; i < NFAIL; i++) STORE(&s->fail[i], f[i]);
    /* the current key's birth: a rotation (SIGUSR1, the key lifetime)
     * starts the age again */
    uint64_t now = (uint64_t)time(NULL), age_s = st.key_age_ms / 1000;
    STORE(&s->key_created_s, now > age_s ? now - age_s : 1);
  }
}

static void on_tick(ra_timer *t, void *ud) { sample(ud); }

int ra_metrics_attach(ra_metrics *m, ra_loop *loop, ra_http_server *srv, ra_tunnel_server *ts) {
  ra_metrics_detach(m);
  m->loop = loop;
  m->http = srv;
  m->ts = ts;
  STORE(&m->mine->key_created_s, ts ? (uint64_t)time(NULL) : 0);
  ra_timer_init(loop, &m->timer, on_tick, m);
  int rc = ra_timer_start(&m->timer, 1000, 1000);
  if (rc) return rc;
  ra_timer_unref(&m->timer);
  m->attached = true;
  sample(m);
  return 0;
}

void ra_metrics_detach(ra_metrics *m) {
  if (!m->attached) return;
  ra_timer_stop(&m->timer);
  sample(m);
  m->attached = false;
  m->http = NULL;
  m->ts = NULL;
}

/* ---- rendering --------------------------------------------------------------- */

typedef struct out {
  char *p;
  size_t len, cap;
  bool oom;
} out;

__attribute__((format(printf, 2, 3))) static void put(out *o, const char *fmt, ...) {
  for (;;) {
    va_list ap;
    va_start(ap, fmt);
    int n = o->oom ? 0 : vsnprintf(o->p + o->len, o->cap - o->len, fmt, ap);
    va_end(ap);
    if (o->oom || n < 0) return;
    if ((size_t)n < o->cap - o->len) {
      o->len += (size_t)n;
      return;
    }
    size_t cap = o->cap * 2 + (size_t)n;
    char *p = realloc(o->p, cap);
    if (!p) {
      o->oom = true;
      return;
    }
    o->p = p;
    o->cap = cap;
  }
}

/* A label value: \, " and newline escaped (the format's rules). */
static void put_label(out *o, const char *s) {
  for (; *s; s++) {
    if (*s == '\\' || *s == '"') put(o, "\\%c", *s);
    else if (*s == '\n') put(o, "\\n");
    else put(o, "%c", *s);
  }
}

int ra_metrics_render(ra_metrics *m, char **res, size_t *reslen) {
  if (m->attached) sample(m); /* this worker's share is current */
  slot *sum = malloc(sizeof *sum);
  if (!sum) return -ENOMEM;
  shared *sh = m->sh;
  uint64_t key_oldest = 0;
  for (int tries = 0; tries < 100; tries++) {
    uint64_t seq = __atomic_load_n(&sh->seq, __ATOMIC_SEQ_CST);
    if (seq & 1) continue;
    memset(sum, 0, sizeof *sum);
    key_oldest = 0;
    size_t nwords = sizeof(slot) / sizeof(uint64_t);
    size_t key_word = offsetof(slot, key_created_s) / sizeof(uint64_t);
    for (unsigned i = 0; i <= m->nslots; i++) {
      const uint64_t *src = (const uint64_t *)&sh->slots[i];
      uint64_t *dst = (uint64_t *)sum;
      for (size_t w = 0; w < nwords; w++) dst[w] += LOAD(&src[w]);
      uint64_t k = LOAD(&src[key_word]);
      if (k && (!key_oldest || k < key_oldest)) key_oldest = k;
    }
    if (__atomic_load_n(&sh->seq, __ATOMIC_SEQ_CST) == seq) break;
  }
  out o = {.cap = 16384};
  o.p = malloc(o.cap);
  if (!o.p) {
    free(sum);
    return -ENOMEM;
  }
  static const char *const tname[2] = {"http", "tunnel"};
  put(&o, "# HELP ra_http_requests_total Requests answered, by route, status and transport.\n"
          "# TYPE ra_http_requests_total counter\n");
  for (unsigned r = 0; r <= RA_METRICS_MAX_ROUTES; r++)
    for (unsigned st = 0; st < NSTATUS; st++)
      for (unsigned t = 0; t < 2; t++) {
        uint64_t v = sum->req[r][st][t];
        if (!v) continue;
        put(&o, "ra_http_requests_total{route=\"");
        if (r < sh->nroutes) {
          put_label(&o, sh->route_method[r]);
          put(&o, " ");
          put_label(&o, sh->route_path[r]);
        } else {
          put(&o, "other");
        }
        if (st < NSTATUS - 1) put(&o, "\",status=\"%d\"", status_codes[st]);
        else put(&o, "\",status=\"other\"");
        put(&o, ",transport=\"%s\"} %llu\n", tname[t], (unsigned long long)v);
      }
  put(&o, "# HELP ra_http_request_duration_seconds Time from a request's first byte to its response handed to the transport.\n"
          "# TYPE ra_http_request_duration_seconds histogram\n");
  for (unsigned t = 0; t < 2; t++) {
    uint64_t cum = 0;
    for (unsigned b = 0; b < NBUCKETS; b++) {
      cum += sum->bucket[t][b];
      put(&o, "ra_http_request_duration_seconds_bucket{transport=\"%s\",le=\"%s\"} %llu\n", tname[t],
          bucket_le[b], (unsigned long long)cum);
    }
    cum += sum->bucket[t][NBUCKETS];
    put(&o, "ra_http_request_duration_seconds_bucket{transport=\"%s\",le=\"+Inf\"} %llu\n", tname[t],
        (unsigned long long)cum);
    put(&o, "ra_http_request_duration_seconds_sum{transport=\"%s\"} %.6f\n", tname[t],
        (double)sum->sum_us[t] / 1e6);
    put(&o, "ra_http_request_duration_seconds_count{transport=\"%s\"} %llu\n", tname[t],
        (unsigned long long)sum->count[t]);
  }
  uint64_t ws = sum->upgraded > sum->tunnels ? sum->upgraded - sum->tunnels : 0;
  struct {
    const char *name, *type, *help;
    uint64_t v;
  } simple[] = {
      {"ra_http_connections", "gauge", "Open HTTP connections (not upgraded).", sum->conns},
      {"ra_upgraded_connections", "gauge", "Open upgraded connections (WebSockets and tunnels).", sum->upgraded},
      {"ra_tunnels_open", "gauge", "Open attested tunnels (control channels).", sum->tunnels},
      {"ra_websockets_open", "gauge", "Open WebSockets over HTTP (upgraded connections that are not tunnels).", ws},
      {"ra_http_bytes_received_total", "counter", "HTTP/1.1 bytes read (plaintext side, up to an upgrade).", sum->bytes_in},
      {"ra_http_bytes_sent_total", "counter", "HTTP/1.1 bytes written (plaintext side, up to an upgrade).", sum->bytes_out},
      {"ra_tunnel_handshakes_total", "counter", "Tunnel key exchanges accepted (client_kx).", sum->handshakes},
      {"ra_workers", "gauge", "Processes serving.", sum->live},
  };
  for (size_t i = 0; i < sizeof simple / sizeof simple[0]; i++)
    put(&o, "# HELP %s %s\n# TYPE %s %s\n%s %llu\n", simple[i].name, simple[i].help, simple[i].name,
        simple[i].type, simple[i].name, (unsigned long long)simple[i].v);
  put(&o, "# HELP ra_tunnel_failures_total Tunnel messages or channels refused, by reason.\n"
          "# TYPE ra_tunnel_failures_total counter\n");
  for (int i = 0; i < NFAIL; i++)
    put(&o, "ra_tunnel_failures_total{reason=\"%s\"} %llu\n", fail_names[i],
        (unsigned long long)sum->fail[i]);
  uint64_t now = (uint64_t)time(NULL);
  put(&o, "# HELP ra_tunnel_key_age_seconds Age of the current tunnel key (the oldest across workers).\n"
          "# TYPE ra_tunnel_key_age_seconds gauge\nra_tunnel_key_age_seconds %llu\n",
      (unsigned long long)(key_oldest && now > key_oldest ? now - key_oldest : 0));
  free(sum);
  if (o.oom) {
    free(o.p);
    return -ENOMEM;
  }
  *res = o.p;
  *reslen = o.len;
  return 0;
}

void ra_metrics_handler(ra_req *req, ra_res *res, void *ud) {
  char *text;
  size_t len;
  if (ra_metrics_render(ud, &text, &len)) {
    ra_res_send_text(res, 503, "out of memory\n");
    return;
  }
  ra_res_send(res, 200, "text/plain; version=0.0.4; charset=utf-8", text, len);
  free(text);
}

void ra_metrics_free(ra_metrics *m) {
  if (!m) return;
  ra_metrics_detach(m);
  munmap(m->sh, m->size);
  free(m);
}

/* ---- JSON access log --------------------------------------------------------- */

static size_t json_str(char *b, size_t cap, ra_str s) {
  size_t n = 0;
  for (size_t i = 0; i < s.len && n + 7 < cap; i++) {
    unsigned char c = (unsigned char)s.ptr[i];
    if (c == '"' || c == '\\') {
      b[n++] = '\\';
      b[n++] = (char)c;
    } else if (c < 0x20 || c >= 0x7f) {
      n += (size_t)snprintf(b + n, cap - n, "\\u%04x", c);
    } else {
      b[n++] = (char)c;
    }
  }
  return n;
}

size_t ra_access_log_json(char *buf, size_t len, const ra_req *req, int status, uint64_t us,
                          bool tunnel, int worker) {
  if (len < 512) return 0;
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  struct tm tm;
  gmtime_r(&ts.tv_sec, &tm);
  char peer[128], method[80];
  ra_str p = ra_req_peer(req);
  peer[json_str(peer, sizeof peer, p)] = '\0';
  method[json_str(method, sizeof method, ra_req_method(req))] = '\0';
  size_t n = (size_t)snprintf(buf, len,
                              "{\"time\":\"%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ\",\"peer\":\"%s\","
                              "\"method\":\"%s\",\"path\":\"",
                              tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min,
                              tm.tm_sec, ts.tv_nsec / 1000000, peer, method);
  char tail[192];
  int tl = snprintf(tail, sizeof tail,
                    "\",\"status\":%d,\"bytes_in\":%llu,\"bytes_out\":%llu,\"duration_us\":%llu,\"tunnel\":%s",
                    status, (unsigned long long)ra_req_body_bytes(req),
                    (unsigned long long)ra_req_response_bytes(req), (unsigned long long)us, tunnel ? "true" : "false");
  if (worker >= 0) tl += snprintf(tail + tl, sizeof tail - (size_t)tl, ",\"worker\":%d", worker);
  tl += snprintf(tail + tl, sizeof tail - (size_t)tl, "}\n");
  /* the path gets what is left */
  if (n + (size_t)tl + 8 < len) n += json_str(buf + n, len - n - (size_t)tl, ra_req_target(req));
  memcpy(buf + n, tail, (size_t)tl + 1);
  return n + (size_t)tl;
}
