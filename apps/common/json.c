/* apps/common/json.c: the programs' JSON writer. */
#include "apps/common/json.h"

void json_init(json_out *j, FILE *f, unsigned style) {
  *j = (json_out){.f = f, .style = style, .first = true};
}

static bool in_array(const json_out *j) { return j->depth > 0 && (j->arrays >> (j->depth - 1)) & 1; }

static bool items_on_lines(const json_out *j) {
  return in_array(j) && (j->style & JSON_ITEMS_ON_LINES);
}

void json_write_escaped(FILE *f, const char *s) {
  fputc('"', f);
  for (const char *c = s; *c; c++) {
    if (*c == '"' || *c == '\\')
      fprintf(f, "\\%c", *c);
    else if ((unsigned char)*c < 0x20)
      fprintf(f, "\\u%04x", *c);
    else
      fputc(*c, f);
  }
  fputc('"', f);
}

/* The separator before a value, and its key. */
static void begin_value(json_out *j, const char *key) {
  bool spaced = j->style & JSON_SPACED;
  if (!j->first) fputs(items_on_lines(j) || !spaced ? "," : ", ", j->f);
  if (items_on_lines(j)) fputs("\n  ", j->f);
  j->first = false;
  if (!key) return;
  json_write_escaped(j->f, key);
  fputs(spaced ? ": " : ":", j->f);
}

void json_begin(json_out *j, const char *key, char open) {
  begin_value(j, key);
  fputc(open, j->f);
  if (j->depth < 32) {
    if (open == '[')
      j->arrays |= 1u << j->depth;
    else
      j->arrays &= ~(1u << j->depth);
  }
  j->depth++;
  j->first = true;
}

void json_end(json_out *j) {
  if (j->depth == 0) return;
  bool array = in_array(j);
  if (items_on_lines(j) && !j->first) fputc('\n', j->f);
  fputc(array ? ']' : '}', j->f);
  j->depth--;
  j->first = false;
}

void json_string(json_out *j, const char *key, const char *s) {
  begin_value(j, key);
  json_write_escaped(j->f, s);
}

void json_uint(json_out *j, const char *key, unsigned long v) {
  begin_value(j, key);
  fprintf(j->f, "%lu", v);
}

void json_bool(json_out *j, const char *key, bool v) {
  begin_value(j, key);
  fputs(v ? "true" : "false", j->f);
}

void json_number(json_out *j, const char *key, const char *fmt, double v) {
  begin_value(j, key);
  fprintf(j->f, fmt, v);
}
