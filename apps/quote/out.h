/* apps/quote/out.h: ra-quote's output, the same fields as indented text
 * lines or as compact JSON (apps/common/json), for the TDX side (main.c)
 * and the SEV-SNP side (snp.c). */
#ifndef RA_APPS_QUOTE_OUT_H
#define RA_APPS_QUOTE_OUT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "apps/common/json.h"

typedef struct qout {
  bool json;
  json_out j;      /* when json: compact, on stdout */
  int depth;       /* text: indentation */
  bool snp_heads;  /* text: "name:" headings, unnamed objects not indented */
  uint32_t named;  /* text: a bit per open object, whether it was named */
} qout;

/* Text headings: TDX's as "name" padded like a key, every object (named
 * or not) indenting what it holds; snp_heads: "name:", only named objects
 * indenting. */
void qo_init(qout *o, bool json, bool snp_heads);
void qo_open(qout *o, const char *k); /* k NULL: the top level or an array element */
void qo_close(qout *o);
void qo_str(qout *o, const char *k, const char *v);
void qo_uint(qout *o, const char *k, unsigned long v);
void qo_bool(qout *o, const char *k, bool v);
/* lowercase hex of the first 1024 bytes at p (nothing when p is NULL) */
void qo_hex(qout *o, const char *k, const uint8_t *p, size_t n);
/* ISO 8601 UTC */
void qo_time(qout *o, const char *k, time_t t);

#endif
