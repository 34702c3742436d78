/* tests/apps/json_test.c: the programs' JSON writer, in both styles. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "apps/common/json.h"

typedef struct sink {
  char *buf;
  size_t len;
  FILE *f;
} sink;

static void sink_open(sink *s) {
  s->buf = NULL;
  s->len = 0;
  s->f = open_memstream(&s->buf, &s->len);
  assert_non_null(s->f);
}

/* Closes the stream and checks what was written. */
static void sink_expect(sink *s, const char *want) {
  fclose(s->f);
  assert_string_equal(s->buf, want);
  free(s->buf);
}

static void test_compact_nested(void **state) {
  (void)state;
  sink s;
  json_out j;
  sink_open(&s);
  json_init(&j, s.f, 0);
  json_begin(&j, NULL, '{');
  json_bool(&j, "valid", true);
  json_string(&j, "error", "RA_VERIFY_OK");
  json_uint(&j, "n", 27);
  json_begin(&j, "checks", '{');
  json_string(&j, "parse", "pass");
  json_string(&j, "chain", "fail");
  json_end(&j);
  json_begin(&j, "empty", '{');
  json_end(&j);
  json_uint(&j, "after", 1);
  json_end(&j);
  sink_expect(&s, "{\"valid\":true,\"error\":\"RA_VERIFY_OK\",\"n\":27,"
                  "\"checks\":{\"parse\":\"pass\",\"chain\":\"fail\"},\"empty\":{},\"after\":1}");
}

static void test_escaping(void **state) {
  (void)state;
  sink s;
  json_out j;
  sink_open(&s);
  json_init(&j, s.f, 0);
  json_begin(&j, NULL, '{');
  json_string(&j, "msg", "a \"b\" c\\d\n\x01");
  json_end(&j);
  sink_expect(&s, "{\"msg\":\"a \\\"b\\\" c\\\\d\\u000a\\u0001\"}");
}

/* ra-bench's style: items on lines, spaced members, "[]" when empty. */
static void test_spaced_items_on_lines(void **state) {
  (void)state;
  sink s;
  json_out j;
  sink_open(&s);
  json_init(&j, s.f, JSON_SPACED | JSON_ITEMS_ON_LINES);
  json_begin(&j, NULL, '[');
  for (int i = 0; i < 2; i++) {
    json_begin(&j, NULL, '{');
    json_string(&j, "mode", i ? "plain" : "tunnel");
    json_number(&j, "avg_ms", "%.4f", 1.5 + i);
    json_end(&j);
  }
  json_end(&j);
  sink_expect(&s, "[\n  {\"mode\": \"tunnel\", \"avg_ms\": 1.5000},\n"
                  "  {\"mode\": \"plain\", \"avg_ms\": 2.5000}\n]");
  sink_open(&s);
  json_init(&j, s.f, JSON_SPACED | JSON_ITEMS_ON_LINES);
  json_begin(&j, NULL, '[');
  json_end(&j);
  sink_expect(&s, "[]");
}

static void test_arrays_of_values(void **state) {
  (void)state;
  sink s;
  json_out j;
  sink_open(&s);
  json_init(&j, s.f, 0);
  json_begin(&j, NULL, '{');
  json_begin(&j, "xs", '[');
  json_uint(&j, NULL, 1);
  json_string(&j, NULL, "two");
  json_bool(&j, NULL, false);
  json_end(&j);
  json_end(&j);
  sink_expect(&s, "{\"xs\":[1,\"two\",false]}");
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_compact_nested),
      cmocka_unit_test(test_escaping),
      cmocka_unit_test(test_spaced_items_on_lines),
      cmocka_unit_test(test_arrays_of_values),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
