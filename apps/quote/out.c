/* apps/quote/out.c: ra-quote's text or JSON output (out.h). */
#include "apps/quote/out.h"

#include <stdio.h>
#include <string.h>

#include "raloop/attest/quote/hexb64.h"

void qo_init(qout *o, bool json, bool snp_heads) {
  memset(o, 0, sizeof *o);
  o->json = json;
  o->snp_heads = snp_heads;
  json_init(&o->j, stdout, 0);
}

static void key_text(qout *o, const char *k) { printf("%*s%-20s ", o->depth * 2, "", k); }

void qo_open(qout *o, const char *k) {
  bool indent = !o->snp_heads || k;
  o->named = o->named << 1 | (indent ? 1u : 0u);
  if (o->json) {
    json_begin(&o->j, k, '{');
  } else if (k && o->snp_heads) {
    printf("%*s%s:\n", o->depth * 2, "", k);
  } else if (k) {
    key_text(o, k);
    putchar('\n');
  }
  /* JSON output never reads depth, so it may count as text does */
  if (indent) o->depth++;
}

void qo_close(qout *o) {
  if (o->json) json_end(&o->j);
  if (o->named & 1u) o->depth--;
  o->named >>= 1;
}

void qo_str(qout *o, const char *k, const char *v) {
  if (o->json) {
    json_string(&o->j, k, v);
    return;
  }
  key_text(o, k);
  printf("%s\n", v);
}

void qo_uint(qout *o, const char *k, unsigned long v) {
  if (o->json) {
    json_uint(&o->j, k, v);
    return;
  }
  key_text(o, k);
  printf("%lu\n", v);
}

void qo_bool(qout *o, const char *k, bool v) {
  if (o->json) {
    json_bool(&o->j, k, v);
    return;
  }
  key_text(o, k);
  printf("%s\n", v ? "true" : "false");
}

void qo_hex(qout *o, const char *k, const uint8_t *p, size_t n) {
  char buf[2 * 1024 + 1];
  if (!p) return;
  if (n > 1024) n = 1024;
  ra_hex_encode(p, n, buf);
  qo_str(o, k, buf);
}

void qo_time(qout *o, const char *k, time_t t) {
  char b[32];
  struct tm tm;
  gmtime_r(&t, &tm);
  strftime(b, sizeof b, "%Y-%m-%dT%H:%M:%SZ", &tm);
  qo_str(o, k, b);
}
