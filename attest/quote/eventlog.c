/* attest/eventlog.c: dstack event log parsing and RTMR replay (eventlog.h). */
#include "raloop/attest/quote/eventlog.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <openssl/evp.h>

#include "raloop/attest/quote/hexb64.h"
#include "raloop/core/error.h"
#include "raloop/core/log.h"

struct ra_eventlog {
  ra_evlog_event *ev;
  size_t n;
  /* names and payloads live in one arena per event (owned here) */
  void **blocks;
};

/* SHA-384 over up to three pieces (NULL pieces skipped). */
static int sha384_3(const void *a, size_t al, const void *b, size_t bl, const void *c, size_t cl,
                    uint8_t out[48]) {
  EVP_MD_CTX *ctx = EVP_MD_CTX_new();
  unsigned int n = 0;
  bool ok = ctx && EVP_DigestInit_ex(ctx, EVP_sha384(), NULL) == 1 &&
            (!a || EVP_DigestUpdate(ctx, a, al) == 1) && (!b || EVP_DigestUpdate(ctx, b, bl) == 1) &&
            (!c || EVP_DigestUpdate(ctx, c, cl) == 1) && EVP_DigestFinal_ex(ctx, out, &n) == 1;
  EVP_MD_CTX_free(ctx);
  return ok && n == 48 ? 0 : -ENOMEM;
}

/* Appends s as a JSON string the way RFC 8785 (JCS) writes it: '"' and
 * '\\' escaped, \b \f \n \r \t short, other controls \u00xx (lowercase),
 * everything else (UTF-8 included) verbatim. Returns the new length or
 * -1 when out (cap bytes) is too small. */
static long jcs_string(char *out, size_t cap, size_t at, const char *s) {
  static const char hexd[] = "0123456789abcdef";
  if (at + 1 > cap) return -1;
  out[at++] = '"';
  for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
    char esc = 0;
    switch (*p) {
    case '"': esc = '"'; break;
    case '\\': esc = '\\'; break;
    case '\b': esc = 'b'; break;
    case '\f': esc = 'f'; break;
    case '\n': esc = 'n'; break;
    case '\r': esc = 'r'; break;
    case '\t': esc = 't'; break;
    default: break;
    }
    if (esc) {
      if (at + 2 > cap) return -1;
      out[at++] = '\\';
      out[at++] = esc;
    } else if (*p < 0x20) {
      if (at + 6 > cap) return -1;
      memcpy(out + at, "\\u00", 4);
      out[at + 4] = hexd[*p >> 4];
      out[at + 5] = hexd[*p & 15];
      at += 6;
    } else {
      if (at + 1 > cap) return -1;
      out[at++] = (char)*p;
    }
  }
  if (at + 1 > cap) return -1;
  out[at++] = '"';
  return (long)at;
}

/* The digest of a runtime event (cc-eventlog runtime_events.rs). */
static int runtime_digest(ra_evlog_event *e) {
  if (e->version != 2) {
    uint8_t t[4] = {(uint8_t)e->event_type, (uint8_t)(e->event_type >> 8),
                    (uint8_t)(e->event_type >> 16), (uint8_t)(e->event_type >> 24)};
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    unsigned int n = 0;
    bool ok = ctx && EVP_DigestInit_ex(ctx, EVP_sha384(), NULL) == 1 &&
              EVP_DigestUpdate(ctx, t, 4) == 1 && EVP_DigestUpdate(ctx, ":", 1) == 1 &&
              EVP_DigestUpdate(ctx, e->name, strlen(e->name)) == 1 &&
              EVP_DigestUpdate(ctx, ":", 1) == 1 &&
              (!e->payload_len || EVP_DigestUpdate(ctx, e->payload, e->payload_len) == 1) &&
              EVP_DigestFinal_ex(ctx, e->digest, &n) == 1;
    EVP_MD_CTX_free(ctx);
    return ok && n == 48 ? 0 : -ENOMEM;
  }
  /* {"name":...,"payload":"hex","type":134217729}: keys in JCS order */
  size_t cap = 6 * strlen(e->name) + 2 * e->payload_len + 64;
  char *buf = malloc(cap);
  if (!buf) return -ENOMEM;
  size_t at = 0;
  memcpy(buf, "{\"name\":", 8);
  at = 8;
  long r = jcs_string(buf, cap, at, e->name);
  if (r < 0) {
    free(buf);
    return -ENOMEM;
  }
  at = (size_t)r;
  memcpy(buf + at, ",\"payload\":\"", 12);
  at += 12;
  ra_hex_encode(e->payload, e->payload_len, buf + at);
  at += 2 * e->payload_len;
  at += (size_t)snprintf(buf + at, cap - at, "\",\"type\":%u}", (unsigned)e->event_type);
  int rc = sha384_3(buf, at, NULL, 0, NULL, 0, e->digest);
  free(buf);
  return rc;
}

static bool get_u32(json_t *o, const char *key, uint32_t *out) {
  json_t *v = json_object_get(o, key);
  if (!json_is_integer(v)) return false;
  json_int_t i = json_integer_value(v);
  if (i < 0 || i > 0xffffffffLL) return false;
  *out = (uint32_t)i;
  return true;
}

/* A hex member (absent or null = empty). Returns length or -1. */
static long get_hex(json_t *o, const char *key, uint8_t **out) {
  json_t *v = json_object_get(o, key);
  *out = NULL;
  if (!v || json_is_null(v)) return 0;
  if (!json_is_string(v)) return -1;
  const char *s = json_string_value(v);
  size_t l = json_string_length(v);
  if (l % 2) return -1;
  *out = malloc(l / 2 + 1);
  if (!*out) return -1;
  if (l && ra_hex_decode_exact(s, l, *out, l / 2)) {
    free(*out);
    *out = NULL;
    return -1;
  }
  return (long)(l / 2);
}

static int parse_event(json_t *o, size_t i, ra_evlog_event *e, void **block) {
  if (!json_is_object(o)) {
    ra_debug("event log: event %zu: not an object", i);
    return -EINVAL;
  }
  if (!get_u32(o, "imr", &e->imr) || e->imr > 3) {
    ra_debug("event log: event %zu: imr must be 0..3", i);
    return -EINVAL;
  }
  if (!get_u32(o, "event_type", &e->event_type)) {
    ra_debug("event log: event %zu: event_type must be a 32-bit integer", i);
    return -EINVAL;
  }
  json_t *ver = json_object_get(o, "version");
  e->version = 1;
  if (ver && !json_is_null(ver)) {
    if (!json_is_integer(ver) || (json_integer_value(ver) != 1 && json_integer_value(ver) != 2)) {
      ra_debug("event log: event %zu: version must be 1 or 2", i);
      return -EINVAL;
    }
    e->version = (int)json_integer_value(ver);
  }
  json_t *name = json_object_get(o, "event");
  if (name && !json_is_null(name) && !json_is_string(name)) {
    ra_debug("event log: event %zu: event name must be a string", i);
    return -EINVAL;
  }
  const char *nm = json_is_string(name) ? json_string_value(name) : "";
  size_t nl = json_is_string(name) ? json_string_length(name) : 0;
  if (strlen(nm) != nl) {
    ra_debug("event log: event %zu: NUL in the event name", i);
    return -EINVAL;
  }
  uint8_t *payload = NULL, *digest = NULL;
  long pl = get_hex(o, "event_payload", &payload);
  if (pl < 0) {
    ra_debug("event log: event %zu: event_payload must be hex", i);
    return -EINVAL;
  }
  long dl = get_hex(o, "digest", &digest);
  if (dl < 0) {
    free(payload);
    ra_debug("event log: event %zu: digest must be hex", i);
    return -EINVAL;
  }
  /* one block: the name, NUL, the payload */
  char *b = malloc(nl + 1 + (size_t)pl + 1);
  if (!b) {
    free(payload);
    free(digest);
    return -ENOMEM;
  }
  memcpy(b, nm, nl + 1);
  if (pl) memcpy(b + nl + 1, payload, (size_t)pl);
  free(payload);
  *block = b;
  e->name = b;
  e->payload = (const uint8_t *)b + nl + 1;
  e->payload_len = (size_t)pl;
  int rc = 0;
  if (e->event_type == RA_DSTACK_RUNTIME_EVENT) {
    rc = runtime_digest(e);
  } else if (dl != 48) {
    ra_debug("event log: event %zu (imr %u, type 0x%x): digest must be 48 bytes of hex, not %ld", i,
           e->imr, e->event_type, dl);
    rc = -EINVAL;
  } else {
    memcpy(e->digest, digest, 48);
  }
  free(digest);
  return rc;
}

/* Finds the array in the shapes ra_eventlog_parse takes. Returns a new
 * reference or NULL (err set). depth bounds the nesting of strings. */
static json_t *find_array(json_t *root, int depth) {
  if (json_is_array(root)) return json_incref(root), root;
  if (!json_is_object(root) || depth > 2) {
    ra_debug("event log: not an event log (want a JSON array, or an object with event_log)");
    return NULL;
  }
  json_t *el = json_object_get(root, "event_log");
  const char *key = "event_log";
  if (!el) {
    el = json_object_get(root, "tcb_info");
    key = "tcb_info";
  }
  if (!el) {
    ra_debug("event log: no event_log (nor tcb_info) member");
    return NULL;
  }
  if (json_is_array(el) && !strcmp(key, "event_log")) return json_incref(el), el;
  if (json_is_object(el)) return find_array(el, depth + 1);
  if (!json_is_string(el)) {
    ra_debug("event log: %s is neither an array nor a JSON string", key);
    return NULL;
  }
  json_error_t je;
  json_t *inner = json_loadb(json_string_value(el), json_string_length(el), 0, &je);
  if (!inner) {
    ra_debug("event log: %s: garbled JSON: %s (line %d)", key, je.text, je.line);
    return NULL;
  }
  json_t *r = find_array(inner, depth + 1);
  json_decref(inner);
  return r;
}

int ra_eventlog_parse(const char *json, size_t len, ra_eventlog **out) {
  if (!out) return -EINVAL;
  *out = NULL;
  if (!json || len > RA_EVENTLOG_MAX) {
    ra_debug("event log: event log missing or larger than %u bytes", RA_EVENTLOG_MAX);
    return -EINVAL;
  }
  json_error_t je;
  json_t *root = json_loadb(json, len, 0, &je);
  if (!root) {
    ra_debug("event log: garbled JSON: %s (line %d)", je.text, je.line);
    return -EINVAL;
  }
  json_t *arr = find_array(root, 0);
  json_decref(root);
  if (!arr) return -EINVAL;
  size_t n = json_array_size(arr);
  ra_eventlog *log = calloc(1, sizeof *log);
  if (log) {
    log->ev = calloc(n ? n : 1, sizeof *log->ev);
    log->blocks = calloc(n ? n : 1, sizeof *log->blocks);
  }
  if (!log || !log->ev || !log->blocks) {
    json_decref(arr);
    ra_eventlog_free(log);
    return -ENOMEM;
  }
  int rc = 0;
  for (size_t i = 0; i < n && !rc; i++) {
    rc = parse_event(json_array_get(arr, i), i, &log->ev[i], &log->blocks[i]);
    log->n = i + 1; /* blocks[i] may be set even on failure */
  }
  json_decref(arr);
  if (rc) {
    ra_eventlog_free(log);
    return rc;
  }
  *out = log;
  return 0;
}

void ra_eventlog_free(ra_eventlog *log) {
  if (!log) return;
  if (log->blocks)
    for (size_t i = 0; i < log->n; i++) free(log->blocks[i]);
  free(log->blocks);
  free(log->ev);
  free(log);
}

size_t ra_eventlog_count(const ra_eventlog *log) { return log ? log->n : 0; }

const ra_evlog_event *ra_eventlog_event(const ra_eventlog *log, size_t i) {
  return log && i < log->n ? &log->ev[i] : NULL;
}

const ra_evlog_event *ra_eventlog_find(const ra_eventlog *log, const char *name) {
  if (!log || !name) return NULL;
  for (size_t i = 0; i < log->n; i++) {
    const ra_evlog_event *e = &log->ev[i];
    if (e->event_type != RA_DSTACK_RUNTIME_EVENT) continue;
    if (!strcmp(e->name, "system-ready")) break;
    if (!strcmp(e->name, name)) return e;
  }
  return NULL;
}

void ra_eventlog_replay(const ra_eventlog *log, uint8_t rtmr[4][48]) {
  memset(rtmr, 0, 4 * 48);
  if (!log) return;
  for (size_t i = 0; i < log->n; i++) {
    uint8_t *r = rtmr[log->ev[i].imr];
    uint8_t next[48];
    /* SHA-384 of 96 bytes cannot fail short of OOM in OpenSSL's context
     * allocation; then the replay is left unequal, which refuses. */
    if (sha384_3(r, 48, log->ev[i].digest, 48, NULL, 0, next) == 0)
      memcpy(r, next, 48);
    else
      memset(r, 0xff, 48);
  }
}

int ra_eventlog_check_rtmrs(const ra_eventlog *log, const ra_quote *q, unsigned mask,
                            ra_eventlog_verdict *vd) {
  if (!vd) return -EINVAL;
  memset(vd, 0, sizeof *vd);
  vd->rtmr = -1;
  mask &= 0xf;
  if (!mask) {
    vd->err = -EINVAL;
    snprintf(vd->msg, sizeof vd->msg, "no RTMR to compare");
    return vd->err;
  }
  if (!q || (q->body_type != RA_BODY_TD10 && q->body_type != RA_BODY_TD15)) {
    vd->err = -EINVAL;
    snprintf(vd->msg, sizeof vd->msg, "not a TDX quote: no RTMRs to replay against");
    return vd->err;
  }
  ra_eventlog_replay(log, vd->replayed);
  for (int i = 0; i < 4; i++) {
    if (!(mask & (1u << i)) || memcmp(vd->replayed[i], q->td.rtmr[i], 48) == 0) continue;
    vd->rtmr = i;
    vd->err = RA_ERR_MEASUREMENT;
    char qh[97], rh[97];
    ra_hex_encode(q->td.rtmr[i], 48, qh);
    ra_hex_encode(vd->replayed[i], 48, rh);
    snprintf(vd->msg, sizeof vd->msg, "RTMR%d mismatch: quoted %s, replayed %s", i, qh, rh);
    return vd->err;
  }
  if (mask == 0xf)
    snprintf(vd->msg, sizeof vd->msg, "RTMR0-3 replayed from %zu events match the quote",
             log ? log->n : 0);
  else {
    char which[16] = "";
    size_t w = 0;
    for (int i = 0; i < 4; i++)
      if (mask & (1u << i)) w += (size_t)snprintf(which + w, sizeof which - w, "%s%d", w ? "," : "", i);
    snprintf(vd->msg, sizeof vd->msg, "RTMR %s replayed from %zu events match the quote", which,
             log ? log->n : 0);
  }
  return 0;
}

int ra_eventlog_check(const ra_eventlog *log, const ra_quote *q, ra_eventlog_verdict *vd) {
  return ra_eventlog_check_rtmrs(log, q, 0xf, vd);
}

static int take(const ra_eventlog *log, const char *name, bool *has, uint8_t *out, size_t cap,
                size_t *len) {
  const ra_evlog_event *e = ra_eventlog_find(log, name);
  *has = e != NULL;
  *len = 0;
  if (!e) return 0;
  if (e->payload_len > cap) return -EINVAL;
  memcpy(out, e->payload, e->payload_len);
  *len = e->payload_len;
  return 0;
}

int ra_dstack_identity_from(const ra_eventlog *log, const ra_quote *q, ra_dstack_identity *id) {
  if (!id) return -EINVAL;
  memset(id, 0, sizeof *id);
  if (!q || (q->body_type != RA_BODY_TD10 && q->body_type != RA_BODY_TD15)) return -EINVAL;
  id->tee = RA_TEE_TDX;
  memcpy(id->mrtd, q->td.mrtd, 48);
  for (int i = 0; i < 4; i++) memcpy(id->rtmr[i], q->td.rtmr[i], 48);
  if (take(log, "app-id", &id->has_app_id, id->app_id, sizeof id->app_id, &id->app_id_len) ||
      take(log, "compose-hash", &id->has_compose_hash, id->compose_hash, sizeof id->compose_hash,
           &id->compose_hash_len) ||
      take(log, "instance-id", &id->has_instance_id, id->instance_id, sizeof id->instance_id,
           &id->instance_id_len) ||
      take(log, "os-image-hash", &id->has_os_image_hash, id->os_image_hash,
           sizeof id->os_image_hash, &id->os_image_hash_len))
    return -EINVAL;
  const ra_evlog_event *kp = ra_eventlog_find(log, "key-provider");
  if (kp) {
    id->has_key_provider = true;
    size_t n = kp->payload_len;
    if (n >= sizeof id->key_provider) {
      n = sizeof id->key_provider - 1;
      id->key_provider_truncated = true;
    }
    memcpy(id->key_provider, kp->payload, n);
    id->key_provider[n] = 0;
  }
  return 0;
}
