/* apps/quote/collateral.c: ra-quote collateral FILE --pccs URL --out FILE.json
 *   [--cache DIR | --no-cache] [--root-crl-url URL] [--ca-file PEM] [--timeout MS]
 *   [--at TIME]
 *
 * Reads the quote (binary, hex or base64), takes its TEE kind, FMSPC and PCK
 * CA, and gets the collateral through the cache (attest/pcs/pcs.h); writes
 * the document to --out (atomically: a temporary file, then rename). --at
 * sets the time the cache's freshness is judged at (tests). */
#include "apps/quote/collateral.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/stat.h>
#include <unistd.h>

#include "apps/common/policy_flags.h"
#include "raloop/attest/pcs/pcs.h"
#include "raloop/attest/quote/hexb64.h"
#include "raloop/core/error.h"
#include "raloop/core/file.h"
#include "raloop/core/loop.h"

#define EXIT_FAIL 1
#define EXIT_USAGE 2

static void usage_collateral(void) {
  fputs("usage: ra-quote collateral FILE --pccs URL --out FILE.json [--cache DIR | --no-cache]\n"
        "           [--root-crl-url URL] [--ca-file PEM] [--timeout MS] [--at ISO-8601]\n"
        "Fetches the TCB info, QE identity, PCK CRL and root CA CRL the quote needs from an\n"
        "Intel PCS v4 API or a PCCS (http:// or https://; the server's certificate is checked\n"
        "against the system's CAs, or --ca-file's) into one JSON document\n"
        "(dcap-qvl's shape). Kept in a cache (default $XDG_CACHE_HOME/raloop/collateral)\n"
        "until an hour before its earliest nextUpdate.\n"
        "exit: 0 written, 1 fetch failure, 2 usage error or unreadable input\n",
        stderr);
}

typedef struct run {
  const char *out;
  int exit_code;
  ra_loop *loop;
} run;

static int write_atomic(const char *path, const char *data, size_t len) {
  size_t pl = strlen(path);
  char *tmp = malloc(pl + 16);
  if (!tmp) return -ENOMEM;
  snprintf(tmp, pl + 16, "%s.tmp-XXXXXX", path);
  int fd = mkstemp(tmp);
  if (fd < 0) {
    int e = -errno;
    free(tmp);
    return e;
  }
  int rc = 0;
  for (size_t off = 0; off < len && !rc;) {
    ssize_t w = write(fd, data + off, len - off);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) rc = w < 0 ? -errno : -EIO;
    else off += (size_t)w;
  }
  if (!rc && fchmod(fd, 0644)) rc = -errno;
  if (close(fd) && !rc) rc = -errno;
  if (!rc && rename(tmp, path)) rc = -errno;
  if (rc) unlink(tmp);
  free(tmp);
  return rc;
}

static void on_done(int err, const ra_pcs_result *res, void *ud) {
  run *r = ud;
  ra_loop_stop(r->loop);
  if (err) {
    fprintf(stderr, "ra-quote: collateral: fetch failed: %s (%s)\n", ra_strerror(err), ra_err_name(err));
    r->exit_code = EXIT_FAIL;
    return;
  }
  int rc = write_atomic(r->out, res->doc.ptr, res->doc.len);
  if (rc) {
    fprintf(stderr, "ra-quote: %s: %s\n", r->out, strerror(-rc));
    r->exit_code = EXIT_FAIL;
    return;
  }
  char when[32] = "?";
  time_t t = (time_t)res->next_update;
  struct tm tm;
  if (gmtime_r(&t, &tm)) strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%SZ", &tm);
  if (res->refresh_failed)
    fprintf(stderr, "ra-quote: warning: refresh failed (%s): the cached collateral is used until its "
            "next update\n", ra_strerror(res->refresh_failed));
  fprintf(stderr, "ra-quote: collateral written to %s (%s; next update %s)\n", r->out,
          res->from_cache ? "from the cache" : res->cache_written ? "fetched, cached" : "fetched", when);
  r->exit_code = 0;
}

int cmd_collateral(int argc, char **argv) {
  const char *file = NULL, *pccs = NULL, *out = NULL, *cache = NULL, *root_crl = NULL, *ca_file = NULL;
  bool no_cache = false;
  unsigned long timeout = 0;
  time_t at = 0;
  for (int i = 0; i < argc; i++) {
    const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
    if (!strcmp(a, "--pccs") && v) pccs = v, i++;
    else if (!strcmp(a, "--out") && v) out = v, i++;
    else if (!strcmp(a, "--cache") && v) cache = v, i++;
    else if (!strcmp(a, "--root-crl-url") && v) root_crl = v, i++;
    else if (!strcmp(a, "--ca-file") && v) ca_file = v, i++;
    else if (!strcmp(a, "--no-cache")) no_cache = true;
    else if (!strcmp(a, "--timeout") && v) {
      char *e;
      timeout = strtoul(v, &e, 10);
      if (*e || !timeout) {
        fprintf(stderr, "ra-quote: --timeout: milliseconds > 0 expected\n");
        return EXIT_USAGE;
      }
      i++;
    } else if (!strcmp(a, "--at") && v) {
      if (policy_flags_parse_time(v, &at)) {
        fprintf(stderr, "ra-quote: --at: bad time '%s'\n", v);
        return EXIT_USAGE;
      }
      i++;
    } else if (!file && (a[0] != '-' || !strcmp(a, "-"))) file = a;
    else {
      fprintf(stderr, "ra-quote: collateral: unknown or incomplete option '%s'\n", a);
      usage_collateral();
      return EXIT_USAGE;
    }
  }
  if (!file || !pccs || !out || (cache && no_cache)) {
    usage_collateral();
    return EXIT_USAGE;
  }
  if (ca_file && access(ca_file, R_OK)) {
    fprintf(stderr, "ra-quote: %s: %s\n", ca_file, strerror(errno));
    return EXIT_USAGE;
  }
  uint8_t *raw, *q;
  size_t n, qlen;
  int rc = ra_file_read(file, 64u << 20, &raw, &n);
  if (rc) {
    fprintf(stderr, "ra-quote: %s: %s\n", file, strerror(-rc));
    return EXIT_USAGE;
  }
  rc = ra_decode_auto(raw, n, &q, &qlen, NULL);
  free(raw);
  if (rc) {
    fprintf(stderr, "ra-quote: %s: cannot decode\n", file);
    return EXIT_USAGE;
  }
  ra_pcs_key key;
  rc = ra_pcs_key_from_quote(q, qlen, &key);
  free(q);
  if (rc) {
    fprintf(stderr, "ra-quote: %s: cannot tell which collateral the quote needs: %s (%s)\n", file,
            ra_strerror(rc), ra_err_name(rc));
    return EXIT_FAIL;
  }
  char fm[13];
  ra_hex_encode(key.fmspc, 6, fm);
  for (char *c = fm; *c; c++)
    if (*c >= 'a' && *c <= 'f') *c = (char)(*c - 'a' + 'A');
  fprintf(stderr, "ra-quote: %s quote, FMSPC %s, PCK %s CA\n", key.tee == RA_PCS_TDX ? "TDX" : "SGX",
          fm, key.ca == RA_PCS_CA_PROCESSOR ? "Processor" : "Platform");
  run r = {.out = out, .exit_code = EXIT_FAIL};
  if ((rc = ra_loop_new(&r.loop))) {
    fprintf(stderr, "ra-quote: loop: %s\n", ra_strerror(rc));
    return EXIT_FAIL;
  }
  ra_pcs_opts o = {.base_url = pccs, .root_crl_url = root_crl, .cache_dir = cache, .ca_file = ca_file,
                   .no_cache = no_cache, .timeout_ms = timeout, .now = (int64_t)at};
  rc = ra_pcs_fetch_start(r.loop, &o, &key, on_done, &r, NULL);
  if (rc) {
    fprintf(stderr, "ra-quote: collateral: %s: %s\n", pccs,
            rc == -EPROTONOSUPPORT ? "only http:// and https:// URLs" : ra_strerror(rc));
    ra_loop_free(r.loop);
    return rc == -EINVAL || rc == -EPROTONOSUPPORT ? EXIT_USAGE : EXIT_FAIL;
  }
  ra_loop_run(r.loop);
  ra_loop_free(r.loop);
  return r.exit_code;
}
