/* ra-curl: fetch one URL through an attested RA-HTTPS tunnel, or over an
 * attested TLS certificate (RA-TLS).
 *
 *   ra-curl [--cacert PEM | -k | --ra-tls] [-X METHOD] [-H 'k: v']... [-d DATA | --data-binary @FILE|@-]
 *           [--mrtd HEX] [--rtmr0..3 HEX] [--report-data HEX] [--root PEM]...
 *           [--trust-sim DIR] [--no-binding] [--allow-debug]
 *           [--any-measurement-insecure] [-v] [-o FILE]
 *           [-i] [--fail] [--max-time SECONDS]
 *           [--collateral PATH | --pccs URL [--collateral-cache DIR |
 *            --no-collateral-cache] [--ca-file PEM]] [--accept-tcb LIST]
 *           [--allow-advisory ID]... [--allow-expired-collateral]
 *           [--require-sept-ve-disable] [--allow-mr-servicetd]
 *           [--client-tee sim|tsm|dstack[:SOCK]|file:PATH [--client-sim-dir DIR]]
 *           [--sev-measurement HEX]... [--sev-host-data HEX] [--trust-snp-sim DIR]
 *           [--snp-ark PEM]... URL
 *
 * AMD SEV-SNP servers (server_kx with sev_snp_data, as the reference
 * server sends): the report is verified against the VCEK/ASK/ARK it came
 * with, to a pinned ARK (AMD's Milan/Genoa/Turin; --snp-ark replaces them,
 * --trust-snp-sim DIR adds the simulated SNP TEE's), with the expected
 * measurement(s) and host_data, the debug policy (--allow-debug) and the
 * key binding (report_data == SHA-512(nonce || server key)). Giving only
 * SNP flags makes the client SNP-only: a TDX server is refused (exit 60,
 * step "tee"); giving only TDX flags refuses a SNP server the same way;
 * both kinds may be allowed at once. --snp-measurement/--snp-host-data are
 * ra-quote's spellings of the same flags.
 *
 * --client-tee presents the client's own quote when the server asks for one
 * (its server_kx carries a clientChallenge: PROTOCOL.md §10): a quote from
 * that provider over the session binding, with dstack's event log for
 * dstack (so that the server can read the app id). The simulated TEE's
 * directory (--client-sim-dir, else the default state directory) is created
 * on first use; the server trusts it with --client-trust-sim DIR. A server
 * that refuses the client's attestation closes the tunnel: exit 60 with
 * its reason. Against a server that asks for none, nothing is sent.
 *
 * With Intel's collateral (a file, or fetched for the server's quote from a
 * PCCS / Intel's PCS, kept in an on-disk cache), the server's TCB status is
 * evaluated as Intel's QVL does and must be accepted (UpToDate unless
 * --accept-tcb / --allow-advisory say otherwise): else exit 60, naming the
 * status and its advisories. A collateral that cannot be had refuses too
 * (never a silent signatures-only success). Without it, signatures only
 * (-v says "TCB not evaluated").
 *
 * URLs:
 *   http://HOST[:PORT]/path    the tunnel over ws://HOST:PORT/__ra__
 *   https:// or wss://         the tunnel over TLS (wss://.../__ra__): the
 *                              certificate is checked against the system's
 *                              CAs (or --cacert PEM) and the host name,
 *                              unless -k/--insecure (no certificate checks
 *                              at all); the tunnel's quote is verified inside
 *   --ra-tls https://...       no tunnel: a plain HTTPS request, the server's
 *                              certificate must carry a quote binding its key
 *                              (attest/quote/ratls.h, dstack's convention),
 *                              verified with the policy flags below inside
 *                              the TLS handshake, before any request byte is
 *                              sent, instead of CAs and host names
 *   --ra-tls wss://...         both: the tunnel over an RA-TLS connection
 * (--ra-tls excludes --cacert/-k, and --pccs: the check runs inside the
 * handshake; use --collateral FILE.)
 *
 * The quote the server presents is verified (signature chain to a pinned
 * root, the measurements given, the binding of the tunnel key) before any
 * request leaves. Trusting Intel's
 * root alone would accept any TDX machine anyone rents, so with it the
 * expected measurements must be named (or the danger accepted by name).
 * The body goes to stdout (or -o FILE), written as it arrives: through a
 * tunnel that negotiated streamed bodies (PROTOCOL.md §11) a response of
 * any size passes in bounded memory. -T FILE (-T - : stdin) uploads FILE
 * as the request body (PUT unless -X), read by chunks as the server's
 * credit allows (a pipe without blocking the loop: the tunnel goes on
 * while it waits); against a server without streamed bodies (the reference,
 * or --no-body-streams) it is read whole up to 64 MiB and sent in one
 * message, and a larger one fails (exit 25) saying so. -# (--progress-bar)
 * draws a progress line on stderr when stderr is a terminal
 * (--progress-force: always). Exit codes follow
 * curl's where curl has one: 0 ok, 2 usage, 7 connection failed, 22 HTTP
 * status >= 400 with --fail, 18 the server abandoned a streamed response
 * (the output is incomplete), 23 cannot write the output, 25 upload too
 * large for a server without streamed bodies, 26 unreadable --data-binary
 * or -T file, 28 timeout, 35 tunnel protocol error or TLS handshake
 * failure, 60 attestation or certificate refused.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "apps/common/policy_flags.h"
#include "raloop/attest/quote/dstack.h"
#include "raloop/attest/quote/provider.h"
#include "raloop/attest/quote/quote.h"
#include "raloop/attest/quote/ratls.h"
#include "raloop/attest/quote/hexb64.h"
#include "raloop/core/file.h"
#include "raloop/attest/quote/sim.h"
#include "raloop/attest/quote/snp_sim.h"
#include "raloop/attest/tunnel/client.h"
#include "raloop/attest/quote/verify.h"
#include "raloop/core/log.h"
#include "raloop/core/loop.h"
#include "raloop/core/tls.h"
#include "raloop/http/client.h"

enum { EX_OK = 0, EX_USAGE = 2, EX_CONNECT = 7, EX_PARTIAL = 18, EX_HTTP = 22, EX_WRITE = 23, EX_UPLOAD = 25,
       EX_READ = 26, EX_TIMEOUT = 28, EX_PROTO = 35, EX_ATTEST = 60 };

static void usage(void) {
  fprintf(stderr,
          "usage: ra-curl [--cacert PEM | -k|--insecure | --ra-tls]\n"
          "               [-X METHOD] [-H 'k: v']... [-d DATA | --data-binary @FILE|@-]\n"
          "               [--mrtd HEX] [--rtmr0..3 HEX] [--report-data HEX] [--root PEM]...\n"
          "               [--trust-sim DIR] [--no-binding] [--allow-debug]\n"
          "               [--any-measurement-insecure] [-v] [-o FILE] [-i]\n"
          "               [-T FILE|-] [-#|--progress-bar] [--progress-force] [--no-body-streams]\n"
          "               [--fail] [--max-time SECONDS]\n"
          "               [--collateral PATH | --pccs URL [--collateral-cache DIR |\n"
          "                --no-collateral-cache] [--ca-file PEM]] [--accept-tcb LIST]\n"
          "               [--allow-advisory ID]... [--allow-expired-collateral]\n"
          "               [--require-sept-ve-disable] [--allow-mr-servicetd]\n"
          "               [--client-tee sim|tsm|dstack[:SOCK]|file:PATH [--client-sim-dir DIR]]\n"
          "               [--sev-measurement HEX]... [--sev-host-data HEX] [--trust-snp-sim DIR]\n"
          "               [--snp-ark PEM]... URL\n"
          "URL: http:// (tunnel over ws://), https:// or wss:// (tunnel over TLS);\n"
          "  --cacert PEM    trust these CAs instead of the system's\n"
          "  -k, --insecure  disables certificate checks (any certificate, any name)\n"
          "  --ra-tls        https://: a plain HTTPS request to a server whose certificate\n"
          "                  carries a quote binding its key, verified with the policy flags\n"
          "                  in the handshake instead of CAs (wss://: and the tunnel inside)\n"
          "  -T FILE         upload FILE (- : stdin) as the body, streamed (PUT unless -X)\n"
          "  -o FILE         write the body to FILE as it arrives (- : stdout)\n"
          "  -#              a progress line on stderr when it is a terminal\n"
          "                  (--progress-force: always)\n"
          "  --no-body-streams  do not opt in to streamed bodies (whole-body messages)\n"
          "  --stream-window BYTES  the response credit announced (65536..4194304) [1 MiB]\n"
          "exit: 0 ok, 2 usage, 7 connection failed, 18 response incomplete (the server\n"
          "      abandoned it), 22 HTTP >= 400 with --fail, 23 cannot write the output, 25 upload too large for a server without\n"
          "      streamed bodies, 26 cannot read the -T/--data-binary file,\n"
          "      28 timeout, 35 tunnel protocol error or TLS handshake failure,\n"
          "      60 attestation refused or certificate refused\n"
          "      (with --collateral/--pccs also: a TCB status not accepted, collateral\n"
          "      expired or not obtainable)\n");
}

/* Says what was wrong with a policy flag, in ra-curl's words; the exit
 * code. */
static int report_flag_error(const policy_flags *pf) {
  const char *f = pf->error_flag;
  if (pf->error == POLICY_FLAG_NO_VALUE) {
    usage();
  } else if (pf->error == POLICY_FLAG_BAD_HEX) {
    fprintf(stderr, "ra-curl: %s needs %zu hex digits\n", f, 2 * pf->error_bytes);
  } else if (pf->error == POLICY_FLAG_BAD_STATUS) {
    fprintf(stderr, "ra-curl: %s: a comma-separated list of Intel's TCB statuses (UpToDate, "
                    "SWHardeningNeeded, ConfigurationNeeded, ConfigurationAndSWHardeningNeeded, "
                    "OutOfDate, OutOfDateConfigurationNeeded)\n", f);
  } else if (pf->error == POLICY_FLAG_TOO_MANY && !strcmp(f, "--allow-advisory")) {
    fprintf(stderr, "ra-curl: at most %d --allow-advisory\n", POLICY_FLAGS_MAX_ADVISORIES);
  } else if (pf->error == POLICY_FLAG_TOO_MANY && strstr(f, "measurement")) {
    fprintf(stderr, "ra-curl: at most %d %s\n", POLICY_FLAGS_MAX_SNP_SETS, f);
  } else if (pf->error == POLICY_FLAG_TOO_MANY && !strcmp(f, "--snp-ark")) {
    fprintf(stderr, "ra-curl: at most %d --snp-ark\n", POLICY_FLAGS_MAX_SNP_ARKS);
  }
  return EX_USAGE; /* too many --root: as ever, without a word */
}

/* --client-tee: the provider of the client's own quotes, and for dstack
 * its event log (from one GetQuote: the log is the CVM's, the same for
 * every quote). Returns 0, or -1 after printing why. */
static int open_client_tee(const char *spec, const char *sim_dir, bool verbose, ra_quote_provider **out,
                           char **evlog) {
  char dir[4096];
  *out = NULL;
  *evlog = NULL;
  if (!strcmp(spec, "sim") && !sim_dir) {
    if (ra_sim_default_dir(dir, sizeof dir) != 0) {
      fprintf(stderr, "ra-curl: no state directory for the simulated TEE: set --client-sim-dir\n");
      return -1;
    }
    sim_dir = dir;
  }
  if (strcmp(spec, "auto") == 0) {
    fprintf(stderr, "ra-curl: --client-tee: name the provider (sim, tsm, dstack[:SOCK], file:PATH)\n");
    return -1;
  }
  int rc = ra_quote_provider_open(spec, sim_dir, out);
  if (rc) {
    fprintf(stderr, "ra-curl: --client-tee %s: %s\n", spec, ra_strerror(rc));
    return -1;
  }
  if (verbose && ra_quote_provider_simulated(*out))
    fprintf(stderr, "* client attestation: SIMULATED TEE in %s (the server trusts it with "
                    "--client-trust-sim %s)\n", sim_dir, sim_dir);
  if (!strcmp(spec, "dstack") || !strncmp(spec, "dstack:", 7)) {
    const char *sock = spec[6] == ':' ? spec + 7 : NULL;
    ra_dstack_quote dq;
    uint8_t zero[64] = {0};
    rc = ra_dstack_get_quote(sock, 0, zero, sizeof zero, &dq);
    if (rc) {
      fprintf(stderr, "ra-curl: --client-tee %s: no event log from the agent: %s\n", spec, ra_strerror(rc));
      ra_quote_provider_free(*out);
      *out = NULL;
      return -1;
    }
    if (dq.event_log) *evlog = strdup(dq.event_log);
    ra_dstack_quote_clear(&dq);
    if (verbose) fprintf(stderr, "* client attestation: dstack agent%s%s, with its event log\n",
                         sock ? " at " : "", sock ? sock : "");
  }
  return 0;
}

static void hexprint(FILE *f, const uint8_t *p, size_t n) {
  for (size_t i = 0; i < n; i++) fprintf(f, "%02x", p[i]);
}

typedef struct state {
  ra_loop *loop;
  int exit_code;
  bool verbose, fail_http, include;
  FILE *out;
  ra_tunnel_client *c;
  char refused[512]; /* why the server was refused, in ra-curl's words */
  /* --ra-tls: what the handshake's check needs, and what it found */
  ra_verifier *v;
  const ra_policy *pol;
  ra_collateral *coll;
  bool no_binding;
  bool ratls_ran, ratls_refused;
  ra_ratls_result rres;
  /* -T: the file read by chunks; -o: errors writing; -#: the progress line */
  int up_fd;
  bool up_nonblock;    /* a pipe or terminal: read without blocking the loop */
  int up_old_flags;    /* its flags before, restored at the end */
  bool up_watched;
  uint64_t fetch_id;
  uint64_t up_total, up_bytes, down_total, down_bytes;
  int read_err, write_err;
  bool progress, head_seen;
  int status;
  struct timespec t0, last_draw;
} state;

static double secs_since(const struct timespec *a, const struct timespec *b) {
  return (double)(b->tv_sec - a->tv_sec) + (double)(b->tv_nsec - a->tv_nsec) / 1e9;
}

/* -#: one line on stderr, redrawn at most every 200 ms (and once at the
 * end, with a newline): the upload while it runs, then the download. */
static void draw_progress(state *st, bool done) {
  if (!st->progress) return;
  struct timespec now;
  clock_gettime(CLOCK_MONOTONIC, &now);
  if (!done && secs_since(&st->last_draw, &now) < 0.2) return;
  st->last_draw = now;
  bool up = st->up_fd >= 0 && !st->head_seen;
  uint64_t n = up ? st->up_bytes : st->down_bytes, total = up ? st->up_total : st->down_total;
  double t = secs_since(&st->t0, &now), rate = t > 0 ? (double)n / t / 1e6 : 0;
  char bar[41];
  int fill = total ? (int)(40.0 * (double)(n > total ? total : n) / (double)total) : 0;
  for (int i = 0; i < 40; i++) bar[i] = i < fill ? '#' : ' ';
  bar[40] = 0;
  if (total)
    fprintf(stderr, "\r%s %s %5.1f%% %8.1f MB %7.1f MB/s", up ? "up  " : "down", bar,
            100.0 * (double)(n > total ? total : n) / (double)total, (double)n / 1e6, rate);
  else
    fprintf(stderr, "\r%s %8.1f MB %7.1f MB/s", up ? "up  " : "down", (double)n / 1e6, rate);
  if (done) fputc('\n', stderr);
  fflush(stderr);
}

/* -T - (or any pipe): readable again: the upload goes on. */
static void upload_readable(ra_loop *loop, int fd, unsigned events, void *ud) {
  state *st = ud;
  ra_loop_watch(loop, fd, 0, upload_readable, st); /* silent until the next -EAGAIN */
  ra_tunnel_fetch_resume(st->c, st->fetch_id);
}

/* -T: the next piece of the file. A regular file is read as it is (the
 * page cache answers at once); a pipe or terminal without blocking: when it
 * has nothing, -EAGAIN and the loop watches it, so the tunnel (credit,
 * pings, a key rotation's close) goes on meanwhile. */
static ssize_t read_upload(void *ud, uint8_t *buf, size_t cap) {
  state *st = ud;
  for (;;) {
    ssize_t n = read(st->up_fd, buf, cap);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK) && st->up_nonblock) {
      if (ra_loop_watch(st->loop, st->up_fd, RA_READABLE, upload_readable, st) == 0) {
        st->up_watched = true;
        return -EAGAIN;
      }
    }
    if (n < 0) {
      st->read_err = errno;
      return -errno;
    }
    st->up_bytes += (uint64_t)n;
    draw_progress(st, false);
    return n;
  }
}

static void print_head(state *st, const ra_tunnel_response *r);

static int on_head(ra_tunnel_client *c, const ra_tunnel_response *r, void *ud) {
  state *st = ud;
  st->head_seen = true;
  st->status = r->status;
  for (size_t i = 0; i < r->n_headers; i++)
    if (ra_str_eq_nocase(r->headers[i].name, RA_STR("content-length"))) {
      char b[24];
      snprintf(b, sizeof b, "%.*s", (int)(r->headers[i].value.len < 23 ? r->headers[i].value.len : 23),
               r->headers[i].value.ptr);
      st->down_total = strtoull(b, NULL, 10);
    }
  print_head(st, r);
  return 0;
}

/* The body as it arrives: written out at once (blocking writes: bounded
 * memory whatever the size). */
static int on_data(ra_tunnel_client *c, const uint8_t *data, size_t len, void *ud) {
  state *st = ud;
  if (len && fwrite(data, 1, len, st->out) != len) {
    st->write_err = errno ? errno : EIO;
    return -EIO;
  }
  st->down_bytes += len;
  draw_progress(st, false);
  return 0;
}

static void print_time(const char *label, time_t t) {
  char b[32];
  struct tm tm;
  if (t && gmtime_r(&t, &tm) && strftime(b, sizeof b, "%Y-%m-%dT%H:%M:%SZ", &tm))
    fprintf(stderr, "%s%s", label, b);
}

static void print_attestation_of(const uint8_t *qb, size_t qlen, const ra_verdict *vd) {
  fprintf(stderr, "* attestation: %s\n", vd->err == 0 ? "VERIFIED" : "REFUSED");
  if (vd->err != 0) fprintf(stderr, "*   failed: %s: %s\n", ra_err_name(vd->err), vd->msg);
  ra_quote q;
  if (qb && ra_quote_parse(qb, qlen, &q) == 0) {
    fprintf(stderr, "*   TEE: %s, quote v%u%s\n", q.tee_type == RA_TEE_TDX ? "TDX" : "SGX", q.version,
            vd->debug ? " (DEBUG)" : "");
    if (q.tee_type == RA_TEE_TDX) {
      fprintf(stderr, "*   MRTD:  "); hexprint(stderr, q.td.mrtd, 48); fputc('\n', stderr);
      for (int i = 0; i < 4; i++) {
        fprintf(stderr, "*   RTMR%d: ", i); hexprint(stderr, q.td.rtmr[i], 48); fputc('\n', stderr);
      }
      fprintf(stderr, "*   TEE_TCB_SVN: "); hexprint(stderr, q.td.tee_tcb_svn, 16); fputc('\n', stderr);
      fprintf(stderr, "*   report_data: "); hexprint(stderr, q.td.report_data, 64); fputc('\n', stderr);
    } else {
      fprintf(stderr, "*   MRENCLAVE: "); hexprint(stderr, q.enclave.mr_enclave, 32); fputc('\n', stderr);
      fprintf(stderr, "*   MRSIGNER:  "); hexprint(stderr, q.enclave.mr_signer, 32); fputc('\n', stderr);
    }
  }
  if (vd->has_pck) {
    fprintf(stderr, "*   FMSPC: "); hexprint(stderr, vd->pck.fmspc, 6);
    fprintf(stderr, "  PCESVN: %u  CPUSVN: ", vd->pck.pcesvn); hexprint(stderr, vd->pck.cpusvn, 16);
    fprintf(stderr, "\n*   TCB component SVNs: ");
    for (int i = 0; i < 16; i++) fprintf(stderr, "%u%s", vd->pck.tcb_comp_svn[i], i < 15 ? "," : "\n");
  }
  if (vd->root_subject[0]) fprintf(stderr, "*   root: %s\n", vd->root_subject);
  if (!vd->tcb_evaluated) {
    fprintf(stderr, "*   TCB: signatures only: TCB not evaluated\n");
  } else {
    fprintf(stderr, "*   TCB: %s", ra_tcb_status_name(vd->tcb_status));
    for (int i = 0; i < vd->n_advisory_ids; i++)
      fprintf(stderr, "%s%s", i ? "," : " (", vd->advisory_ids[i]);
    fprintf(stderr, "%s%s\n", vd->n_advisory_ids ? ")" : "",
            vd->collateral_expired ? " [collateral expired, allowed]" : "");
    fprintf(stderr, "*   TCB level: %d", vd->tcb_level);
    print_time("  TCB date: ", vd->tcb_date);
    fprintf(stderr, "  QE: %s", ra_tcb_status_name(vd->qe_status));
    print_time("  collateral expires: ", vd->collateral_expiry);
    fprintf(stderr, "  (TCB evaluation data number %d)\n", vd->tcb_eval_number);
  }
  fprintf(stderr, "*   checks:");
  for (int i = 0; i < RA_CHECK__COUNT; i++)
    fprintf(stderr, " %s=%s", ra_check_name((ra_check)i), ra_check_status_name(vd->checks[i]));
  fputc('\n', stderr);
}

static void word_refusal(state *st, const ra_verdict *vd);

static void print_snp_attestation(const ra_verdict *vd, const ra_snp_verdict *s) {
  fprintf(stderr, "* attestation: %s\n", vd->err == 0 ? "VERIFIED" : "REFUSED");
  if (vd->err != 0) fprintf(stderr, "*   failed: %s: %s\n", ra_err_name(vd->err), vd->msg);
  if (!s) return;
  if (s->parsed) {
    fprintf(stderr, "*   TEE: %s, report v%u, VMPL %u, policy 0x%llx%s\n", s->tee, s->version, s->vmpl,
            (unsigned long long)s->policy, s->debug ? " (DEBUG)" : "");
    fprintf(stderr, "*   measurement: "); hexprint(stderr, s->measurement, 48); fputc('\n', stderr);
    fprintf(stderr, "*   host_data:   "); hexprint(stderr, s->host_data, 32); fputc('\n', stderr);
    fprintf(stderr, "*   report_data: "); hexprint(stderr, s->report_data, 64); fputc('\n', stderr);
    fprintf(stderr, "*   reported TCB: bl %u tee %u snp %u ucode %u\n", s->reported_tcb.bootloader,
            s->reported_tcb.tee, s->reported_tcb.snp, s->reported_tcb.microcode);
  }
  if (s->ark_subject[0]) fprintf(stderr, "*   ARK: %s\n", s->ark_subject);
  fprintf(stderr, "*   checks:");
  for (int i = 0; i < RA_SNP_CHECK__COUNT; i++)
    fprintf(stderr, " %s=%s", ra_snp_check_name((ra_snp_check)i), ra_check_status_name(s->checks[i]));
  fputc('\n', stderr);
}

static void print_attestation(ra_tunnel_client *c, const ra_verdict *vd) {
  if (ra_tunnel_client_server_is_snp(c)) {
    print_snp_attestation(vd, ra_tunnel_client_snp_verdict(c));
    return;
  }
  size_t qlen;
  const uint8_t *qb = ra_tunnel_client_quote(c, &qlen);
  print_attestation_of(qb, qlen, vd);
}

/* --ra-tls: the peer-verify callback of the TLS handshake. The server's
 * certificate must carry a quote binding its key that passes the policy;
 * refusing here aborts the handshake, so no request byte is ever sent. */
static int ratls_verify(X509 *leaf, void *ud) {
  state *st = ud;
  ra_verify_opts vo = {.collateral = st->coll};
  ra_ratls_verify_opts ro = {.skip_binding = st->no_binding};
  int rc = ra_ratls_verify_x509(st->v, leaf, &vo, st->pol, &ro, &st->rres);
  st->ratls_ran = true;
  st->ratls_refused = rc != 0;
  if (st->verbose) {
    fprintf(stderr, "* RA-TLS certificate: %s%s%s\n", rc ? "REFUSED: " : "VERIFIED",
            rc ? st->rres.msg : "", !rc && !st->rres.bound ? " (binding NOT checked: --no-binding)" : "");
    ra_ratls_ext e;
    if (st->rres.quote_ran && ra_ratls_parse_x509(leaf, &e) == 0) {
      print_attestation_of(e.quote, e.quote_len, &st->rres.vd);
      ra_ratls_ext_clear(&e);
    }
  }
  if (rc == 0) return 0;
  if (st->rres.quote_ran) word_refusal(st, &st->rres.vd);
  return -EACCES;
}

/* A refusal over the TCB status, named: "tcb_status OutOfDate
 * (INTEL-SA-00615, ...) not accepted (--accept-tcb)". */
static void word_refusal(state *st, const ra_verdict *vd) {
  size_t n = 0, cap = sizeof st->refused;
  st->refused[0] = 0;
  if (vd->err != RA_ERR_TCB_STATUS && vd->err != RA_ERR_TCB_REVOKED) return;
  n += (size_t)snprintf(st->refused + n, cap - n, "attestation refused: tcb_status %s",
                        ra_tcb_status_name(vd->tcb_status));
  for (int i = 0; i < vd->n_advisory_ids && n < cap; i++)
    n += (size_t)snprintf(st->refused + n, cap - n, "%s%s", i ? ", " : " (", vd->advisory_ids[i]);
  if (n < cap)
    snprintf(st->refused + n, cap - n, "%s %s", vd->n_advisory_ids ? ")" : "",
             vd->err == RA_ERR_TCB_REVOKED ? "is never accepted"
             : vd->n_advisory_ids ? "not accepted (--accept-tcb, --allow-advisory)"
                                  : "not accepted (--accept-tcb)");
}

static void on_ready(ra_tunnel_client *c, int status, const ra_verdict *vd, void *ud) {
  state *st = ud;
  if (status == -EACCES && vd) word_refusal(st, vd);
  if (st->verbose && vd) print_attestation(c, vd);
  if (st->verbose && status == 0)
    fprintf(stderr, "* tunnel keyed%s\n", ra_tunnel_client_attested(c) ? " (our own attestation sent)" : "");
}

/* -v / -i: the status line and headers (-i: into the output). */
static void print_head(state *st, const ra_tunnel_response *r) {
  FILE *hdr = st->include ? st->out : stderr;
  if (st->verbose || st->include) {
    if (st->progress && !st->include) fputc('\n', stderr);
    fprintf(hdr, "%s%d %.*s\n", st->include ? "" : "< ", r->status, (int)r->status_text.len, r->status_text.ptr);
    for (size_t i = 0; i < r->n_headers; i++) {
      ra_str k = r->headers[i].name, v = r->headers[i].value;
      fprintf(hdr, "%s%.*s: %.*s\n", st->include ? "" : "< ", (int)k.len, k.ptr, (int)v.len, v.ptr);
    }
    if (st->include) fputc('\n', hdr);
  }
}

static void on_response(ra_tunnel_client *c, int err, const ra_tunnel_response *r, const char *msg, void *ud) {
  state *st = ud;
  ra_loop_stop(st->loop);
  if (st->progress && (st->up_bytes || st->down_bytes)) draw_progress(st, true);
  if (err) {
    if (st->ratls_refused) {
      fprintf(stderr, "ra-curl: RA-TLS: %s\n", st->refused[0] ? st->refused : st->rres.msg);
      st->exit_code = EX_ATTEST;
      return;
    }
    if (st->write_err) {
      fprintf(stderr, "ra-curl: cannot write the output: %s\n", strerror(st->write_err));
      st->exit_code = EX_WRITE;
      return;
    }
    if (st->read_err) {
      fprintf(stderr, "ra-curl: cannot read the upload: %s\n", strerror(st->read_err));
      st->exit_code = EX_READ;
      return;
    }
    fprintf(stderr, "ra-curl: %s\n", err == -EACCES && st->refused[0] ? st->refused
                                      : msg ? msg : strerror(-err));
    /* the TLS connection under the tunnel: its failure is in the message */
    bool cert = (msg && strstr(msg, ra_strerror(RA_ERR_TLS_CERT))) ||
                (msg && strstr(msg, "client attestation refused")); /* the server refused us */
    bool tls = msg && (strstr(msg, ra_strerror(RA_ERR_TLS_HANDSHAKE)) ||
                       strstr(msg, ra_strerror(RA_ERR_TLS_TIMEOUT)));
    st->exit_code = err == -EACCES || cert ? EX_ATTEST : err == -ETIMEDOUT ? EX_TIMEOUT
                  : err == -EMSGSIZE ? EX_UPLOAD : err == -ECONNABORTED ? EX_PARTIAL
                  : err == -EPROTO || tls ? EX_PROTO : EX_CONNECT;
    return;
  }
  if (fflush(st->out) != 0) {
    fprintf(stderr, "ra-curl: cannot write the output: %s\n", strerror(errno));
    st->exit_code = EX_WRITE;
    return;
  }
  if (st->fail_http && r->status >= 400) st->exit_code = EX_HTTP;
}

static void stop_loop(ra_timer *t, void *ud) { ra_loop_stop(ud); }

/* --ra-tls https://: the plain HTTPS response. */
static void on_http(int err, const ra_http_response *r, void *ud) {
  state *st = ud;
  ra_loop_stop(st->loop);
  if (err) {
    if (st->ratls_refused) {
      fprintf(stderr, "ra-curl: RA-TLS: %s\n", st->refused[0] ? st->refused : st->rres.msg);
      st->exit_code = EX_ATTEST;
      return;
    }
    if (err == -EACCES && !st->ratls_ran)
      fprintf(stderr, "ra-curl: RA-TLS: the server's certificate was refused before the quote "
                      "could be checked\n");
    else
      fprintf(stderr, "ra-curl: %s\n", err == -EPROTO ? "TLS or HTTP protocol error" : strerror(-err));
    st->exit_code = err == -EACCES ? EX_ATTEST : err == -ETIMEDOUT ? EX_TIMEOUT
                  : err == -EPROTO ? EX_PROTO : EX_CONNECT;
    return;
  }
  FILE *hdr = st->include ? st->out : stderr;
  if (st->verbose || st->include) {
    fprintf(hdr, "%s%d\n", st->include ? "" : "< ", r->status);
    for (size_t i = 0; i < r->nheaders; i++) {
      ra_str k = r->headers[i].name, v = r->headers[i].value;
      fprintf(hdr, "%s%.*s: %.*s\n", st->include ? "" : "< ", (int)k.len, k.ptr, (int)v.len, v.ptr);
    }
    if (st->include) fputc('\n', hdr);
  }
  if (r->body.len) fwrite(r->body.ptr, 1, r->body.len, st->out);
  fflush(st->out);
  if (st->fail_http && r->status >= 400) st->exit_code = EX_HTTP;
}

int main(int argc, char **argv) {
  const char *method = NULL, *url = NULL, *outpath = NULL;
  ra_header hdrs[64];
  size_t n_hdrs = 0;
  uint8_t *body = NULL;
  size_t body_len = 0;
  bool has_body = false, body_text = true;
  double max_time = 0;
  const char *cacert = NULL;
  bool insecure = false, ra_tls = false;
  const char *client_tee = NULL, *client_sim_dir = NULL; /* the client's own attestation */
  policy_flags pf; /* --mrtd, --rtmr0..3, --report-data, --root, --trust-sim, ... */
  policy_flags_init(&pf, POLICY_FLAGS_BASIC | POLICY_FLAGS_TUNNEL | POLICY_FLAGS_COLLATERAL |
                             POLICY_FLAGS_PCCS | POLICY_FLAGS_SNP);
  int pr;
  state st = {0};
  st.out = stdout;
  st.up_fd = -1;
  const char *upload = NULL; /* -T */
  int progress = 0;          /* -#: 1 on a terminal, 2 forced */
  bool no_streams = false;
  uint32_t stream_window = 0; /* --stream-window BYTES: what we announce for the response */

  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
#define NEXT() (i + 1 < argc ? argv[++i] : (usage(), exit(EX_USAGE), (char *)NULL))
    if (!strcmp(a, "-X") || !strcmp(a, "--request")) method = NEXT();
    else if (!strcmp(a, "-H") || !strcmp(a, "--header")) {
      const char *h = NEXT();
      const char *colon = strchr(h, ':');
      if (!colon || n_hdrs == 64) { fprintf(stderr, "ra-curl: bad header '%s'\n", h); return EX_USAGE; }
      const char *v = colon + 1;
      while (*v == ' ' || *v == '\t') v++;
      hdrs[n_hdrs].name = ra_str_make(h, (size_t)(colon - h));
      hdrs[n_hdrs].value = ra_str_cstr(v);
      n_hdrs++;
    } else if (!strcmp(a, "-d") || !strcmp(a, "--data")) {
      const char *d = NEXT();
      free(body);
      body_len = strlen(d);
      body = malloc(body_len + 1);
      memcpy(body, d, body_len + 1);
      has_body = true;
      body_text = true;
    } else if (!strcmp(a, "--data-binary")) {
      const char *d = NEXT();
      free(body);
      if (d[0] == '@') {
        body = NULL;
        int rc = ra_file_read(d + 1, 1u << 30, &body, &body_len);
        if (rc) { fprintf(stderr, "ra-curl: cannot read %s: %s\n", d + 1, strerror(-rc)); return EX_READ; }
      } else {
        body_len = strlen(d);
        body = malloc(body_len + 1);
        memcpy(body, d, body_len + 1);
      }
      has_body = true;
      body_text = false;
    } else if ((pr = policy_flags_parse(&pf, a, i + 1 < argc ? argv[i + 1] : NULL)) != 0) {
      if (pr < 0) return report_flag_error(&pf);
      i += pr - 1; /* the value, if the flag took one */
    }
    else if (!strcmp(a, "--cacert")) cacert = NEXT();
    else if (!strcmp(a, "-k") || !strcmp(a, "--insecure")) insecure = true;
    else if (!strcmp(a, "--ra-tls")) ra_tls = true;
    else if (!strcmp(a, "--client-tee")) client_tee = NEXT();
    else if (!strcmp(a, "--client-sim-dir")) client_sim_dir = NEXT();
    else if (!strcmp(a, "-v") || !strcmp(a, "--verbose")) st.verbose = true;
    else if (!strcmp(a, "-i") || !strcmp(a, "--include")) st.include = true;
    else if (!strcmp(a, "-f") || !strcmp(a, "--fail")) st.fail_http = true;
    else if (!strcmp(a, "-o") || !strcmp(a, "--output")) outpath = NEXT();
    else if (!strcmp(a, "-T") || !strcmp(a, "--upload-file")) upload = NEXT();
    else if (!strcmp(a, "-#") || !strcmp(a, "--progress-bar")) progress = 1;
    else if (!strcmp(a, "--progress-force")) progress = 2;
    else if (!strcmp(a, "--no-body-streams")) no_streams = true;
    else if (!strcmp(a, "--stream-window")) stream_window = (uint32_t)strtoul(NEXT(), NULL, 10);
    else if (!strcmp(a, "-m") || !strcmp(a, "--max-time")) max_time = atof(NEXT());
    else if (!strcmp(a, "-h") || !strcmp(a, "--help")) { usage(); return EX_OK; }
    else if (a[0] == '-' && a[1]) { fprintf(stderr, "ra-curl: unknown option %s\n", a); usage(); return EX_USAGE; }
    else if (!url) url = a;
    else { usage(); return EX_USAGE; }
  }
  if (!url) { usage(); return EX_USAGE; }
  if (upload && has_body) {
    fprintf(stderr, "ra-curl: -T and -d/--data-binary both give the body: choose one\n");
    return EX_USAGE;
  }
  const char *cerr = policy_flags_check_collateral(&pf);
  if (cerr) { fprintf(stderr, "ra-curl: %s\n", cerr); return EX_USAGE; }
  const char *sim_dir = pf.trust_sim_dir, *const *roots = pf.roots;
  size_t n_roots = pf.n_roots;
  ra_tdx_expect ex = pf.tdx; /* ra-curl checks TDX measurements only */
  bool no_binding = pf.no_binding, allow_debug = pf.allow_debug, any_measurement = pf.any_measurement;
  size_t pre;
  bool tls_url = false, wss = false;
  if (!strncmp(url, "http://", 7)) pre = 7;
  else if (!strncmp(url, "https://", 8)) pre = 8, tls_url = true;
  else if (!strncmp(url, "wss://", 6)) pre = 6, tls_url = wss = true;
  else {
    fprintf(stderr, "ra-curl: only http://, https:// and wss:// URLs\n");
    return EX_USAGE;
  }
  if (ra_tls && !tls_url) {
    fprintf(stderr, "ra-curl: --ra-tls needs an https:// (or wss://) URL\n");
    return EX_USAGE;
  }
  if (ra_tls && (cacert || insecure)) {
    fprintf(stderr, "ra-curl: --ra-tls replaces the certificate authorities: no --cacert or -k with it\n");
    return EX_USAGE;
  }
  if (ra_tls && pf.pccs) {
    fprintf(stderr, "ra-curl: --ra-tls verifies inside the TLS handshake: give the collateral with "
                    "--collateral FILE, not --pccs\n");
    return EX_USAGE;
  }
  /* --ra-tls https://: a plain request (no tunnel); else the tunnel */
  bool plain_https = ra_tls && !wss;
  if (plain_https && client_tee) {
    fprintf(stderr, "ra-curl: --client-tee is for the tunnel (http://, wss://), not a plain RA-TLS request\n");
    return EX_USAGE;
  }
  const char *path = strchr(url + pre, '/');
  char origin[512];
  snprintf(origin, sizeof origin, "%.*s", path ? (int)(path - url) : (int)strlen(url), url);
  if (!path) path = "/";
  if (!st.verbose) ra_log_set_level(RA_LOG_ERROR);

  /* Which kinds of server this client accepts: SNP flags alone make it
   * SNP-only (a TDX server is then refused, and the other way round). */
  bool want_tdx = ex.has || sim_dir || n_roots || pf.collateral || pf.pccs || !pf.any_snp;
  bool want_snp = pf.any_snp;
  if (!want_tdx && ra_tls) {
    fprintf(stderr, "ra-curl: --ra-tls verifies Intel TDX/SGX certificates only (no SEV-SNP RA-TLS)\n");
    return EX_USAGE;
  }
  /* (every SNP flag either names what to expect or pins an ARK of the
   * user's: no "AMD roots and nothing expected" case to refuse) */
  ra_snp_verifier *sv = NULL;
  ra_snp_expect snp_sets[POLICY_FLAGS_MAX_SNP_SETS];
  ra_snp_policy snp_pol;
  policy_flags_snp_policy(&pf, snp_sets, &snp_pol);
  if (want_snp) {
    if (ra_snp_verifier_new(pf.n_snp_arks ? RA_SNP_VERIFIER_NO_AMD_ROOTS : 0, &sv)) return EX_CONNECT;
    for (size_t i = 0; i < pf.n_snp_arks; i++)
      if (ra_snp_verifier_add_ark_file(sv, pf.snp_arks[i]) <= 0) {
        fprintf(stderr, "ra-curl: cannot load ARK %s\n", pf.snp_arks[i]);
        ra_snp_verifier_free(sv);
        return EX_USAGE;
      }
    if (pf.trust_snp_sim_dir) {
      char p[4096];
      snprintf(p, sizeof p, "%s/%s", pf.trust_snp_sim_dir, RA_SNP_SIM_ARK_FILE);
      if (ra_snp_verifier_add_ark_file(sv, p) <= 0) {
        fprintf(stderr, "ra-curl: cannot load the simulated SEV-SNP ARK %s\n", p);
        ra_snp_verifier_free(sv);
        return EX_USAGE;
      }
      if (st.verbose) fprintf(stderr, "* trusting the SIMULATED SEV-SNP ARK %s: its reports prove nothing\n", p);
    }
  }
  ra_verifier *v = NULL;
  if (!want_tdx) goto tdx_done;
  /* Intel's root vouches for every TDX machine there is: without expected
   * measurements the binding only proves "some TD", anybody's. A root of
   * the user's own (--root, --trust-sim) narrows it to their machines. */
  if (!ex.has && !sim_dir && n_roots == 0 && !any_measurement) {
    fprintf(stderr, "ra-curl: with the Intel root, name the expected measurements (--mrtd, "
                    "--rtmr0..3, --report-data), or pin your own root (--root, --trust-sim), or "
                    "accept any genuine TEE with --any-measurement-insecure\n");
    ra_snp_verifier_free(sv);
    return EX_USAGE;
  }
  if (ra_verifier_new(n_roots ? RA_VERIFIER_NO_DEFAULT_ROOT : 0, &v)) { ra_snp_verifier_free(sv); return EX_CONNECT; }
  for (size_t i = 0; i < n_roots; i++)
    if (ra_verifier_add_root_file(v, roots[i]) <= 0) {
      fprintf(stderr, "ra-curl: cannot load root %s\n", roots[i]);
      ra_verifier_free(v);
      ra_snp_verifier_free(sv);
      return EX_USAGE;
    }
  if (sim_dir) {
    char p[4096];
    snprintf(p, sizeof p, "%s/%s", sim_dir, RA_SIM_ROOT_FILE);
    if (ra_verifier_add_root_file(v, p) <= 0) {
      fprintf(stderr, "ra-curl: cannot load the simulated root %s\n", p);
      ra_verifier_free(v);
      ra_snp_verifier_free(sv);
      return EX_USAGE;
    }
    if (st.verbose) fprintf(stderr, "* trusting the SIMULATED TEE root %s: its quotes prove nothing\n", p);
  }
tdx_done:
  if (upload && plain_https) {
    fprintf(stderr, "ra-curl: -T is for the tunnel (http://, wss://), not a plain RA-TLS request\n");
    ra_verifier_free(v); ra_snp_verifier_free(sv);
    return EX_USAGE;
  }
  if (upload) {
    st.up_fd = strcmp(upload, "-") ? open(upload, O_RDONLY | O_CLOEXEC) : 0;
    struct stat sb;
    if (st.up_fd < 0) {
      fprintf(stderr, "ra-curl: cannot read %s: %s\n", upload, strerror(errno));
      ra_verifier_free(v); ra_snp_verifier_free(sv);
      return EX_READ;
    }
    if (fstat(st.up_fd, &sb) == 0 && S_ISREG(sb.st_mode)) st.up_total = (uint64_t)sb.st_size;
    else if ((st.up_old_flags = fcntl(st.up_fd, F_GETFL)) >= 0 &&
             fcntl(st.up_fd, F_SETFL, st.up_old_flags | O_NONBLOCK) == 0)
      st.up_nonblock = true;
  }
  st.progress = progress == 2 || (progress == 1 && isatty(2));
  clock_gettime(CLOCK_MONOTONIC, &st.t0);
  if (outpath && !strcmp(outpath, "-")) outpath = NULL;
  if (outpath) {
    st.out = fopen(outpath, "wb");
    if (!st.out) { fprintf(stderr, "ra-curl: cannot write %s: %s\n", outpath, strerror(errno)); ra_verifier_free(v); ra_snp_verifier_free(sv); return EX_USAGE; }
  }
  ra_collateral *coll = NULL;
  int lrc = policy_flags_load_collateral(&pf, &coll);
  if (lrc) {
    fprintf(stderr, "ra-curl: %s: %s\n", pf.collateral, ra_strerror(lrc));
    if (outpath) fclose(st.out);
    ra_verifier_free(v); ra_snp_verifier_free(sv);
    return EX_USAGE;
  }
  ra_policy pol;
  memset(&pol, 0, sizeof pol);
  if (ex.has) { pol.tdx = &ex; pol.n_tdx = 1; }
  pol.allow_debug = allow_debug;
  policy_flags_collateral_policy(&pf, &pol);
  if (st.verbose && (coll || pf.pccs))
    fprintf(stderr, "* TCB evaluated with Intel collateral from %s\n", coll ? pf.collateral : pf.pccs);

  ra_loop_new(&st.loop);
  st.exit_code = EX_OK;
  st.v = v;
  st.pol = &pol;
  st.coll = coll;
  st.no_binding = no_binding;
  ra_tls_ctx *tls = NULL;
  if (tls_url) {
    ra_tls_client_opts to;
    memset(&to, 0, sizeof to);
    if (ra_tls) {
      to.verify = ratls_verify;
      to.verify_ud = &st;
      to.verify_cb_only = true; /* the quote instead of CAs and host names */
    } else {
      to.ca_file = cacert;
      to.insecure_skip_verify = insecure;
    }
    if (max_time > 0) to.handshake_timeout_ms = (uint64_t)(max_time * 1000);
    char err[256];
    int trc = ra_tls_client_ctx_new(&to, &tls, err, sizeof err);
    if (trc) {
      fprintf(stderr, "ra-curl: %s\n", err[0] ? err : ra_strerror(trc));
      ra_loop_free(st.loop);
      ra_collateral_free(coll);
      ra_verifier_free(v); ra_snp_verifier_free(sv);
      free(body);
      if (outpath) fclose(st.out);
      return EX_USAGE;
    }
    if (insecure && st.verbose) fprintf(stderr, "* -k: the server's certificate is NOT checked\n");
  }
  int rc;
  if (plain_https) {
    ra_http_header hh[64];
    for (size_t i = 0; i < n_hdrs; i++) hh[i] = (ra_http_header){hdrs[i].name, hdrs[i].value};
    ra_http_get_opts go = {
      .timeout_ms = max_time > 0 ? (uint64_t)(max_time * 1000) : 0, .max_body = 1u << 30,
      .tls = tls, .method = method ? method : (has_body ? "POST" : "GET"), .headers = hh,
      .nheaders = n_hdrs, .body = has_body ? body : NULL, .body_len = body_len,
    };
    if (st.verbose) fprintf(stderr, "* %s %s over RA-TLS (no tunnel)\n", go.method, url);
    rc = ra_http_get_start(st.loop, url, &go, on_http, &st, NULL);
    if (rc) {
      fprintf(stderr, "ra-curl: %s: %s\n", url, strerror(-rc));
      st.exit_code = rc == -EINVAL ? EX_USAGE : EX_CONNECT;
    } else {
      ra_loop_run(st.loop);
    }
    ra_tls_ctx_unref(tls);
    ra_loop_free(st.loop);
    ra_collateral_free(coll);
    ra_verifier_free(v); ra_snp_verifier_free(sv);
    free(body);
    if (outpath) fclose(st.out);
    return st.exit_code;
  }
  ra_quote_provider *cprov = NULL;
  char *cevlog = NULL;
  if (client_tee && open_client_tee(client_tee, client_sim_dir, st.verbose, &cprov, &cevlog)) {
    ra_loop_free(st.loop);
    ra_collateral_free(coll);
    ra_verifier_free(v); ra_snp_verifier_free(sv);
    ra_tls_ctx_unref(tls);
    free(body);
    if (outpath) fclose(st.out);
    return EX_USAGE;
  }
  ra_tunnel_client_opts o = {
    .client_provider = cprov, .client_event_log = cevlog,
    .verifier = v, .policy = &pol, .no_binding = no_binding, .on_ready = on_ready, .ud = &st,
    .snp_verifier = sv, .snp_policy = want_snp ? &snp_pol : NULL,
    .collateral = coll, .pccs_url = pf.pccs, .pccs_cache_dir = pf.collateral_cache,
    .pccs_no_cache = pf.no_collateral_cache, .pccs_ca_file = pf.ca_file, .tls = tls,
    .no_body_streams = no_streams, .stream_window = stream_window,
  };
  if (max_time > 0) o.request_timeout_ms = o.connect_timeout_ms = (uint64_t)(max_time * 1000);
  rc = ra_tunnel_client_new(st.loop, origin, &o, &st.c);
  ra_tls_ctx_unref(tls); /* the client holds its own */
  if (rc) {
    fprintf(stderr, "ra-curl: %s: %s\n", origin, strerror(-rc));
    st.exit_code = EX_USAGE;
  } else {
    ra_tunnel_request req = {
      .method = method ? method : upload ? "PUT" : (has_body ? "POST" : "GET"), .url = path,
      .headers = hdrs, .n_headers = n_hdrs, .has_body = has_body, .body_is_text = body_text && !upload,
      .body = body, .body_len = body_len, .timeout_ms = max_time > 0 ? (uint64_t)(max_time * 1000) : 0,
      .body_read = upload ? read_upload : NULL, .body_length = st.up_total,
      .on_head = on_head, .on_data = on_data, /* written as it arrives */
    };
    if (st.verbose) fprintf(stderr, "* %s %s%s via %s/__ra__\n", req.method, origin, path, origin);
    rc = ra_tunnel_fetch_start(st.c, &req, on_response, &st, &st.fetch_id);
    if (rc) { fprintf(stderr, "ra-curl: %s\n", strerror(-rc)); st.exit_code = EX_CONNECT; }
    else ra_loop_run(st.loop);
    if (st.up_watched) ra_loop_unwatch(st.loop, st.up_fd);
    ra_tunnel_client_free(st.c);
    /* let the control channel's closing handshake run (bounded) */
    ra_timer guard;
    ra_timer_init(st.loop, &guard, stop_loop, st.loop);
    ra_timer_start(&guard, 1000, 0);
    ra_timer_unref(&guard);
    ra_loop_run(st.loop);
    ra_timer_stop(&guard);
  }
  ra_quote_provider_free(cprov);
  free(cevlog);
  ra_loop_free(st.loop);
  ra_collateral_free(coll);
  ra_verifier_free(v); ra_snp_verifier_free(sv);
  free(body);
  if (st.up_nonblock) fcntl(st.up_fd, F_SETFL, st.up_old_flags); /* stdin is shared with the shell */
  if (st.up_fd > 0) close(st.up_fd);
  if (outpath && fclose(st.out) != 0 && st.exit_code == EX_OK) {
    fprintf(stderr, "ra-curl: cannot write %s: %s\n", outpath, strerror(errno));
    st.exit_code = EX_WRITE;
  }
  return st.exit_code;
}
