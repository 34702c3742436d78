/* tests/core/proxy_proto_test.c: PROXY protocol v2 encoding, v1/v2 parsing
 * (the spec's examples, every prefix, errors), and the socket reader that
 * leaves the bytes after the header in the socket. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "raloop/core/loop.h"
#include "raloop/core/proxy_proto.h"
#include <linux/vm_sockets.h>

static struct sockaddr_in v4(const char *ip, uint16_t port) {
  struct sockaddr_in s = {.sin_family = AF_INET, .sin_port = htons(port)};
  assert_int_equal(inet_pton(AF_INET, ip, &s.sin_addr), 1);
  return s;
}
static struct sockaddr_in6 v6(const char *ip, uint16_t port) {
  struct sockaddr_in6 s = {.sin6_family = AF_INET6, .sin6_port = htons(port)};
  assert_int_equal(inet_pton(AF_INET6, ip, &s.sin6_addr), 1);
  return s;
}
static const char *str(const struct sockaddr_storage *ss) {
  static char b[2][200];
  static int k;
  k ^= 1;
  return ra_proxy_proto_addr_str(ss, b[k], sizeof b[k]);
}

/* Every proper prefix says "need more"; the whole says its length. */
static void prefixes(const uint8_t *h, size_t n) {
  ra_proxy_proto_info info;
  for (size_t i = 0; i < n; i++) assert_int_equal(ra_proxy_proto_parse(h, i, &info), 0);
  assert_int_equal(ra_proxy_proto_parse(h, n, &info), (int)n);
}

static void test_v2_ipv4(void **s) {
  struct sockaddr_in src = v4("192.168.0.1", 56324), dst = v4("192.168.0.11", 443);
  uint8_t h[RA_PROXY_PROTO_V2_MAX + 8];
  int n = ra_proxy_proto_encode((struct sockaddr *)&src, (struct sockaddr *)&dst, h, sizeof h);
  assert_int_equal(n, 28);
  static const uint8_t want[28] = {0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D, 0x0A, 0x51, 0x55, 0x49,
                                   0x54, 0x0A, 0x21, 0x11, 0x00, 0x0C, 192,  168,  0,    1,
                                   192,  168,  0,    11,   0xDC, 0x04, 0x01, 0xBB};
  assert_memory_equal(h, want, 28);
  prefixes(h, 28);
  /* What follows the header is not the header's. */
  memcpy(h + 28, "\x16\x03\x01", 3);
  ra_proxy_proto_info info;
  assert_int_equal(ra_proxy_proto_parse(h, 31, &info), 28);
  assert_int_equal(info.version, 2);
  assert_false(info.local);
  assert_string_equal(str(&info.src), "192.168.0.1:56324");
  assert_string_equal(str(&info.dst), "192.168.0.11:443");
  assert_int_equal(info.src_len, sizeof(struct sockaddr_in));
  assert_int_equal(n, ra_proxy_proto_encode((struct sockaddr *)&src, (struct sockaddr *)&dst, h, 28));
  assert_int_equal(-ENOSPC, ra_proxy_proto_encode((struct sockaddr *)&src, (struct sockaddr *)&dst, h, 27));
}

static void test_v2_ipv6_and_mixed(void **s) {
  struct sockaddr_in6 src = v6("2001:db8::1", 1234), dst = v6("::1", 8443);
  uint8_t h[RA_PROXY_PROTO_V2_MAX];
  int n = ra_proxy_proto_encode((struct sockaddr *)&src, (struct sockaddr *)&dst, h, sizeof h);
  assert_int_equal(n, 52);
  assert_int_equal(h[13], 0x21);
  prefixes(h, 52);
  ra_proxy_proto_info info;
  assert_int_equal(ra_proxy_proto_parse(h, 52, &info), 52);
  assert_string_equal(str(&info.src), "[2001:db8::1]:1234");
  assert_string_equal(str(&info.dst), "[::1]:8443");
  /* IPv4 client on an IPv6 socket: mapped. */
  struct sockaddr_in c4 = v4("10.1.2.3", 40000);
  n = ra_proxy_proto_encode((struct sockaddr *)&c4, (struct sockaddr *)&dst, h, sizeof h);
  assert_int_equal(n, 52);
  assert_int_equal(ra_proxy_proto_parse(h, 52, &info), 52);
  assert_string_equal(str(&info.src), "[::ffff:10.1.2.3]:40000");
}

static void test_v2_unix_and_local(void **s) {
  struct sockaddr_un a = {.sun_family = AF_UNIX}, b = {.sun_family = AF_UNIX};
  strcpy(b.sun_path, "/run/enclave.sock");
  uint8_t h[RA_PROXY_PROTO_V2_MAX];
  int n = ra_proxy_proto_encode((struct sockaddr *)&a, (struct sockaddr *)&b, h, sizeof h);
  assert_int_equal(n, 16 + 216);
  assert_int_equal(n, RA_PROXY_PROTO_V2_MAX);
  ra_proxy_proto_info info;
  assert_int_equal(ra_proxy_proto_parse(h, (size_t)n, &info), n);
  assert_string_equal(str(&info.src), "unix:");
  assert_string_equal(str(&info.dst), "unix:/run/enclave.sock");
  /* Nothing to tell (NULL, vsock, mixed): LOCAL, 16 bytes. */
  struct sockaddr_vm vm = {.svm_family = AF_VSOCK, .svm_cid = 3, .svm_port = 5005};
  struct sockaddr_in c4 = v4("10.1.2.3", 40000);
  const struct sockaddr *odd[][2] = {{NULL, NULL}, {(struct sockaddr *)&vm, (struct sockaddr *)&vm},
                                     {(struct sockaddr *)&c4, (struct sockaddr *)&b}};
  for (size_t i = 0; i < 3; i++) {
    n = ra_proxy_proto_encode(odd[i][0], odd[i][1], h, sizeof h);
    assert_int_equal(n, 16);
    assert_int_equal(h[12], 0x20);
    assert_int_equal(ra_proxy_proto_parse(h, 16, &info), 16);
    assert_true(info.local);
    assert_string_equal(str(&info.src), "-");
  }
}

static void test_v2_tlvs_and_errors(void **s) {
  struct sockaddr_in src = v4("1.2.3.4", 1), dst = v4("5.6.7.8", 2);
  uint8_t h[64];
  int n = ra_proxy_proto_encode((struct sockaddr *)&src, (struct sockaddr *)&dst, h, sizeof h);
  assert_int_equal(n, 28);
  /* An ALPN TLV after the addresses: skipped, counted in the length. */
  memcpy(h + 28, "\x01\x00\x02h2", 5);
  h[15] = 12 + 5;
  prefixes(h, 33);
  ra_proxy_proto_info info;
  assert_string_equal((ra_proxy_proto_parse(h, 33, &info), str(&info.src)), "1.2.3.4:1");
  uint8_t bad[64];
  /* version 1 / 3 in the binary form, command 2, family 4, transport 3 */
  const struct { int at; uint8_t v; } muts[] = {{12, 0x11}, {12, 0x31}, {12, 0x22}, {13, 0x41}, {13, 0x13}};
  for (size_t i = 0; i < sizeof muts / sizeof muts[0]; i++) {
    memcpy(bad, h, 33);
    bad[muts[i].at] = muts[i].v;
    assert_int_equal(ra_proxy_proto_parse(bad, 33, &info), -EPROTO);
  }
  /* a body too short for its family */
  memcpy(bad, h, 33);
  bad[15] = 11;
  assert_int_equal(ra_proxy_proto_parse(bad, 33, &info), -EPROTO);
  /* a broken signature, at every byte */
  for (int i = 0; i < 12; i++) {
    memcpy(bad, h, 33);
    bad[i] ^= 0x40;
    assert_int_equal(ra_proxy_proto_parse(bad, (size_t)i + 1, &info), -EPROTO);
  }
  /* longer than we accept: known from the first 16 bytes */
  memcpy(bad, h, 16);
  bad[14] = 0xff;
  assert_int_equal(ra_proxy_proto_parse(bad, 16, &info), -E2BIG);
  /* PROXY with UNSPEC family: addresses not usable, like LOCAL */
  memcpy(bad, h, 16);
  bad[13] = 0x00;
  bad[14] = bad[15] = 0;
  assert_int_equal(ra_proxy_proto_parse(bad, 16, &info), 16);
  assert_true(info.local);
  /* not PROXY at all: a TLS ClientHello, an HTTP request */
  assert_int_equal(ra_proxy_proto_parse((const uint8_t *)"\x16\x03\x01\x02", 4, &info), -EPROTO);
  assert_int_equal(ra_proxy_proto_parse((const uint8_t *)"GET / HTTP/1.1\r\n", 16, &info), -EPROTO);
  assert_int_equal(ra_proxy_proto_parse((const uint8_t *)"PRO", 3, &info), 0);
}

static void test_v1(void **s) {
  ra_proxy_proto_info info;
  const char *l4 = "PROXY TCP4 192.168.0.1 192.168.0.11 56324 443\r\nGET / HTTP/1.1\r\n";
  size_t hl = strlen("PROXY TCP4 192.168.0.1 192.168.0.11 56324 443\r\n");
  prefixes((const uint8_t *)l4, hl);
  assert_int_equal(ra_proxy_proto_parse((const uint8_t *)l4, strlen(l4), &info), (int)hl);
  assert_int_equal(info.version, 1);
  assert_string_equal(str(&info.src), "192.168.0.1:56324");
  assert_string_equal(str(&info.dst), "192.168.0.11:443");
  const char *l6 = "PROXY TCP6 2001:db8::1 ::1 1 65535\r\n";
  assert_int_equal(ra_proxy_proto_parse((const uint8_t *)l6, strlen(l6), &info), (int)strlen(l6));
  assert_string_equal(str(&info.src), "[2001:db8::1]:1");
  assert_string_equal(str(&info.dst), "[::1]:65535");
  const char *un = "PROXY UNKNOWN ffff::1 ffff::2 1 2\r\n";
  assert_int_equal(ra_proxy_proto_parse((const uint8_t *)un, strlen(un), &info), (int)strlen(un));
  assert_true(info.local);
  assert_int_equal(ra_proxy_proto_parse((const uint8_t *)"PROXY UNKNOWN\r\n", 15, &info), 15);
  const char *bad[] = {
      "PROXY TCP4 1.2.3.4 5.6.7.8 1 65536\r\n", "PROXY TCP4 1.2.3.4 5.6.7.8 01 2\r\n",
      "PROXY TCP4 1.2.3.4 5.6.7.8 1 2 3\r\n",   "PROXY TCP4 1.2.3.4 5.6.7.8 1\r\n",
      "PROXY TCP4 1.2.3.4  5.6.7.8 1 2\r\n",    "PROXY TCP4 ::1 5.6.7.8 1 2\r\n",
      "PROXY TCP6 1.2.3.4 ::1 1 2\r\n",         "PROXY UDP4 1.2.3.4 5.6.7.8 1 2\r\n",
      "PROXY TCP4 1.2.3.4 5.6.7.8 1 2\n",       "PROXY TCP4 1.2.3.4 5.6.7.8 1 2\rX",
      "PROXY TCP4 1.2.3.4 5.6.7.8 -1 2\r\n",    "PROXY\tTCP4 1.2.3.4 5.6.7.8 1 2\r\n",
      "proxy TCP4 1.2.3.4 5.6.7.8 1 2\r\n",
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
    assert_int_equal(ra_proxy_proto_parse((const uint8_t *)bad[i], strlen(bad[i]), &info), -EPROTO);
  /* no CRLF within 107 bytes */
  char lng[200];
  memset(lng, 'a', sizeof lng);
  memcpy(lng, "PROXY UNKNOWN ", 14);
  assert_int_equal(ra_proxy_proto_parse((const uint8_t *)lng, 106, &info), 0);
  assert_int_equal(ra_proxy_proto_parse((const uint8_t *)lng, 107, &info), -EPROTO);
}

/* ---- the reader ---------------------------------------------------------------- */

typedef struct rd {
  int calls, err, fd;
  ra_proxy_proto_info info;
} rd;
static void rd_done(int fd, int err, const ra_proxy_proto_info *info, void *ud) {
  rd *r = ud;
  r->calls++;
  r->err = err;
  r->fd = fd;
  if (info) r->info = *info;
  else assert_int_not_equal(err, 0);
}

static void run_until(ra_loop *loop, const int *flag, int ms) {
  for (int i = 0; i < ms / 10 && !*flag; i++) ra_loop_run_once(loop, 10);
}

static void test_reader(void **s) {
  ra_loop *loop;
  assert_int_equal(ra_loop_new(&loop), 0);
  int sp[2];
  assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sp), 0);
  struct sockaddr_in src = v4("203.0.113.7", 51000), dst = v4("198.51.100.1", 443);
  uint8_t h[64];
  int n = ra_proxy_proto_encode((struct sockaddr *)&src, (struct sockaddr *)&dst, h, sizeof h);
  memcpy(h + n, "\x16\x03\x01hello", 8);
  rd r = {0};
  ra_proxy_proto_reader *rr;
  assert_int_equal(ra_proxy_proto_read(loop, sp[1], 2000, rd_done, &r, &rr), 0);
  /* The header in pieces (5, 9, then the rest with the next bytes). */
  assert_int_equal(write(sp[0], h, 5), 5);
  run_until(loop, &r.calls, 50);
  assert_int_equal(write(sp[0], h + 5, 9), 9);
  run_until(loop, &r.calls, 50);
  assert_int_equal(r.calls, 0);
  assert_int_equal(write(sp[0], h + 14, (size_t)n - 14 + 8), n - 14 + 8);
  run_until(loop, &r.calls, 1000);
  assert_int_equal(r.calls, 1);
  assert_int_equal(r.err, 0);
  assert_int_equal(r.fd, sp[1]);
  assert_string_equal(str(&r.info.src), "203.0.113.7:51000");
  /* The bytes after the header are still in the socket, all of them. */
  char rest[16];
  assert_int_equal(read(sp[1], rest, sizeof rest), 8);
  assert_memory_equal(rest, "\x16\x03\x01hello", 8);
  close(sp[0]);
  close(sp[1]);

  /* garbage, early close, silence, cancel */
  const char *what[] = {"GET / HTTP/1.1\r\n\r\n", "\r\n\r\n", "", NULL};
  const int want[] = {-EPROTO, -ECONNRESET, -ETIMEDOUT};
  for (int i = 0; i < 4; i++) {
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sp), 0);
    memset(&r, 0, sizeof r);
    assert_int_equal(ra_proxy_proto_read(loop, sp[1], 100, rd_done, &r, &rr), 0);
    if (i < 2) assert_true(write(sp[0], what[i], strlen(what[i])) > 0);
    if (i == 1) shutdown(sp[0], SHUT_WR);
    if (i == 3) {
      ra_proxy_proto_read_cancel(rr);
      run_until(loop, &r.calls, 200);
      assert_int_equal(r.calls, 0);
    } else {
      run_until(loop, &r.calls, 2000);
      assert_int_equal(r.calls, 1);
      assert_int_equal(r.err, want[i]);
    }
    close(sp[0]);
    close(sp[1]);
  }
  ra_loop_free(loop);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_v2_ipv4),           cmocka_unit_test(test_v2_ipv6_and_mixed),
      cmocka_unit_test(test_v2_unix_and_local), cmocka_unit_test(test_v2_tlvs_and_errors),
      cmocka_unit_test(test_v1),                cmocka_unit_test(test_reader),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
