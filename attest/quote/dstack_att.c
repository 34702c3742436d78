/* attest/dstack_att.c: dstack's versioned attestation, SCALE V0 with a TDX
 * quote (dstack_att.h). */
#include "raloop/attest/quote/dstack_att.h"

#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "raloop/attest/quote/eventlog.h"
#include "raloop/attest/quote/hexb64.h"
#include "raloop/core/log.h"

typedef struct rd {
  const uint8_t *p;
  size_t left;
} rd;

/* SCALE compact integer (up to 64 bits). */
static bool compact(rd *r, uint64_t *v) {
  if (!r->left) return false;
  uint8_t b0 = r->p[0];
  size_t n;
  switch (b0 & 3) {
  case 0: n = 1; break;
  case 1: n = 2; break;
  case 2: n = 4; break;
  default: n = 1 + (size_t)(b0 >> 2) + 4; break;
  }
  if (n > r->left || n > 9) return false;
  uint64_t x = 0;
  if ((b0 & 3) == 3) {
    for (size_t i = n - 1; i >= 1; i--) x = x << 8 | r->p[i];
  } else {
    for (size_t i = n; i-- > 0;) x = x << 8 | r->p[i];
    x >>= 2;
  }
  r->p += n;
  r->left -= n;
  *v = x;
  return true;
}

static bool bytes(rd *r, const uint8_t **b, size_t *len) {
  uint64_t n;
  if (!compact(r, &n) || n > r->left) return false;
  *b = r->p;
  *len = (size_t)n;
  r->p += n;
  r->left -= (size_t)n;
  return true;
}

static bool u32le(rd *r, uint32_t *v) {
  if (r->left < 4) return false;
  *v = (uint32_t)r->p[0] | (uint32_t)r->p[1] << 8 | (uint32_t)r->p[2] << 16 |
       (uint32_t)r->p[3] << 24;
  r->p += 4;
  r->left -= 4;
  return true;
}

/* hex of b[0..n) as a new JSON string */
static json_t *jhex(const uint8_t *b, size_t n) {
  char *h = malloc(2 * n + 1);
  if (!h) return NULL;
  ra_hex_encode(b, n, h);
  json_t *s = json_stringn(h, 2 * n);
  free(h);
  return s;
}

/* one event as the GetQuote JSON shape; NULL on bad UTF-8 or ENOMEM */
static json_t *jevent(uint32_t imr, uint32_t type, const uint8_t *dg, size_t dl, const uint8_t *nm,
                      size_t nl, const uint8_t *pl, size_t pll) {
  /* NULL: not UTF-8; a NUL in a name is refused too (names are C strings
     * downstream, and dstack's are plain ASCII) */
  json_t *name = nl && memchr(nm, 0, nl) ? NULL : json_stringn((const char *)nm, nl);
  json_t *o = name ? json_object() : NULL;
  if (!o || json_object_set_new(o, "imr", json_integer(imr)) ||
      json_object_set_new(o, "event_type", json_integer(type)) ||
      json_object_set_new(o, "digest", jhex(dg, dl)) || json_object_set_new(o, "event", name) ||
      json_object_set_new(o, "event_payload", jhex(pl, pll))) {
    if (!o) json_decref(name);
    json_decref(o);
    return NULL;
  }
  return o;
}

void ra_dstack_att_clear(ra_dstack_att *a) {
  if (!a) return;
  free(a->quote);
  free(a->event_log);
  free(a->runtime);
  free(a->config);
  memset(a, 0, sizeof *a);
}

int ra_dstack_att_decode(const uint8_t *buf, size_t len, ra_dstack_att *out) {
  if (!out) return -EINVAL;
  memset(out, 0, sizeof *out);
  if (!buf || !len || len > RA_DSTACK_ATT_MAX) {
    ra_debug("dstack attestation: empty or over %u bytes", RA_DSTACK_ATT_MAX);
    return -EINVAL;
  }
  if (buf[0] != 0x00) {
    ra_debug("dstack attestation: not the SCALE V0 form (first byte 0x%02x: msgpack V1 or "
             "unknown), not supported",
             buf[0]);
    return -ENOTSUP;
  }
  if (len < 2 || buf[1] != 0x00) {
    ra_debug("dstack attestation: not a TDX quote (AttestationQuote variant %d), not supported",
             len < 2 ? -1 : buf[1]);
    return len < 2 ? -EINVAL : -ENOTSUP;
  }
  rd r = {buf + 2, len - 2};
  int rc = -EINVAL;
  const char *why = "truncated";
  json_t *ev = json_array(), *rt = json_array();
  const uint8_t *q, *s;
  size_t ql, sl;
  uint64_t n;
  if (!ev || !rt) {
    rc = -ENOMEM;
    goto fail;
  }
  if (!bytes(&r, &q, &ql)) goto fail;
  if (!compact(&r, &n) || n > r.left / 11) goto fail; /* each event takes >= 11 bytes */
  for (uint64_t i = 0; i < n; i++) {
    uint32_t imr, type;
    const uint8_t *dg, *nm, *pl;
    size_t dl, nl, pll;
    if (!u32le(&r, &imr) || !u32le(&r, &type) || !bytes(&r, &dg, &dl) || !bytes(&r, &nm, &nl) ||
        !bytes(&r, &pl, &pll))
      goto fail;
    json_t *e = jevent(imr, type, dg, dl, nm, nl, pl, pll);
    if (!e || json_array_append_new(ev, e)) {
      why = "an event name that is not UTF-8 (or holds a NUL)";
      goto fail;
    }
  }
  if (!compact(&r, &n) || n > r.left / 2) goto fail;
  for (uint64_t i = 0; i < n; i++) {
    const uint8_t *nm, *pl;
    size_t nl, pll;
    if (!bytes(&r, &nm, &nl) || !bytes(&r, &pl, &pll)) goto fail;
    json_t *e = jevent(3, RA_DSTACK_RUNTIME_EVENT, NULL, 0, nm, nl, pl, pll);
    if (!e || json_array_append_new(rt, e)) {
      why = "a runtime event name that is not UTF-8 (or holds a NUL)";
      goto fail;
    }
  }
  if (r.left < 64) goto fail;
  memcpy(out->report_data, r.p, 64);
  r.p += 64;
  r.left -= 64;
  if (!bytes(&r, &s, &sl)) goto fail;
  if (r.left) {
    why = "trailing bytes";
    goto fail;
  }
  out->quote = malloc(ql ? ql : 1);
  out->config = malloc(sl + 1);
  out->event_log = json_dumps(ev, JSON_COMPACT);
  out->runtime = json_dumps(rt, JSON_COMPACT);
  if (!out->quote || !out->config || !out->event_log || !out->runtime) {
    rc = -ENOMEM;
    goto fail;
  }
  memcpy(out->quote, q, ql);
  out->quote_len = ql;
  memcpy(out->config, s, sl);
  out->config[sl] = 0;
  json_decref(ev);
  json_decref(rt);
  return 0;
fail:
  if (rc == -EINVAL) ra_debug("dstack attestation: malformed SCALE: %s", why);
  json_decref(ev);
  json_decref(rt);
  ra_dstack_att_clear(out);
  return rc;
}
