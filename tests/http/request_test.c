/* tests/http/request_test.c: ra_req_set_body_ref, the zero-copy body a
 * transport (the tunnel) hands to a request. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "raloop/http/request.h"
#include "raloop/http/request_internal.h"

static int freed;
static void count_free(void *ud) {
  freed++;
  free(ud);
}

static void test_body_ref(void **st) {
  (void)st;
  freed = 0;
  ra_req *req;
  assert_int_equal(ra_req_new(RA_STR("POST"), RA_STR("/echo"), 11, true, &req), 0);
  assert_non_null(req);
  assert_int_equal(ra_req_append_body(req, "copied", 6), 0);
  char *big = malloc(1 << 20);
  memset(big, 'x', 1 << 20);
  /* replaces the copied body; the view is the caller's memory itself */
  assert_int_equal(ra_req_set_body_ref(req, big + 8, (1 << 20) - 8, count_free, big), 0);
  ra_str b = ra_req_body(req);
  assert_ptr_equal(b.ptr, big + 8);
  assert_int_equal(b.len, (1 << 20) - 8);
  /* not appendable any more */
  assert_int_equal(ra_req_append_body(req, "y", 1), -EINVAL);
  assert_int_equal(freed, 0);
  /* replacing it releases the first buffer, once */
  char *small = malloc(4);
  memcpy(small, "abcd", 4);
  assert_int_equal(ra_req_set_body_ref(req, small, 4, count_free, small), 0);
  assert_int_equal(freed, 1);
  b = ra_req_body(req);
  assert_int_equal(b.len, 4);
  assert_memory_equal(b.ptr, "abcd", 4);
  ra_req_free(req); /* releases the second */
  assert_int_equal(freed, 2);
}

static void test_body_ref_edge_cases(void **st) {
  (void)st;
  freed = 0;
  ra_req *req;
  assert_int_equal(ra_req_new(RA_STR("POST"), RA_STR("/"), 11, false, &req), 0);
  /* NULL data with a length: refused, and the buffer is released anyway */
  char *p = malloc(1);
  assert_int_equal(ra_req_set_body_ref(req, NULL, 5, count_free, p), -EINVAL);
  assert_int_equal(freed, 1);
  assert_int_equal(ra_req_body(req).len, 0);
  /* an empty body by reference, no callback */
  assert_int_equal(ra_req_set_body_ref(req, NULL, 0, NULL, NULL), 0);
  assert_int_equal(ra_req_body(req).len, 0);
  ra_req_free(req);
  /* a pooled request: reset releases the reference and appending works again */
  ra_req r;
  ra_req_init(&r);
  char *q = malloc(3);
  memcpy(q, "abc", 3);
  assert_int_equal(ra_req_set_body_ref(&r, q, 3, count_free, q), 0);
  ra_req_reset(&r);
  assert_int_equal(freed, 2);
  assert_int_equal(ra_req_body(&r).len, 0);
  assert_int_equal(ra_req_append_body(&r, "zz", 2), 0);
  assert_int_equal(ra_req_body(&r).len, 2);
  ra_req_cleanup(&r);
}

int main(void) {
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_body_ref),
    cmocka_unit_test(test_body_ref_edge_cases),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
