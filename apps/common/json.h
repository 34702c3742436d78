/* apps/common/json.h: the programs' JSON output (ra-quote --json, ra-bench
 * --format json): a streaming writer that puts the separators and escapes
 * strings, in one of two styles so that each program's output stays what
 * it was:
 *   compact  {"a":1,"b":{"c":true}}                          (ra-quote)
 *   spaced   {"a": 1, "b": 2}; with JSON_ITEMS_ON_LINES array items each
 *            on a line of their own, indented by two spaces   (ra-bench)
 * Keys are written escaped like strings. Nesting up to 32 levels. */
#ifndef RA_APPS_JSON_H
#define RA_APPS_JSON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

enum {
  JSON_SPACED = 1u << 0,         /* ": " and ", " */
  JSON_ITEMS_ON_LINES = 1u << 1, /* "[\n  item,\n  item\n]" */
};

typedef struct json_out {
  FILE *f;
  unsigned style;  /* JSON_* */
  bool first;      /* nothing written yet in the current object/array */
  int depth;
  uint32_t arrays; /* bit d: the container at depth d+1 is an array */
} json_out;

void json_init(json_out *j, FILE *f, unsigned style);

/* Opens an object ('{') or array ('[') as the value of key (NULL inside an
 * array or at the top level); json_end closes the innermost one. */
void json_begin(json_out *j, const char *key, char open);
void json_end(json_out *j);

/* Members (key non-NULL) or array items / top-level values (key NULL). */
void json_string(json_out *j, const char *key, const char *s);
void json_uint(json_out *j, const char *key, unsigned long v);
void json_bool(json_out *j, const char *key, bool v);
/* A number printed with a printf format for one double ("%.4f"). */
void json_number(json_out *j, const char *key, const char *fmt, double v);

/* Writes s as a JSON string literal (quotes included) to f. */
void json_write_escaped(FILE *f, const char *s);

#endif
