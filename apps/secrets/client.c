/* apps/secrets/client.c: `ra-secrets fetch`, the client of the strict flow
 * (docs/SECRETS.md): attest, verify the server, answer the challenge, open
 * the sealed secret. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>
#include <openssl/x509.h>
#include <sodium.h>

#include "attest.h"
#include "crypto.h"
#include "own.h"
#include "proto.h"
#include "raloop.h"
#include "raloop/http/client.h"
#include "secrets.h"

typedef struct post {
  ra_loop *loop;
  bool done;
  int err, status;
  char *body;
  size_t body_len;
} post;

/* https: the server's TLS leaf, compared with its attested certificate */
static uint8_t g_leaf_hash[32];
static bool g_leaf_seen;

static int leaf_cb(X509 *leaf, void *ud) {
  (void)ud;
  unsigned char *d = NULL;
  int n = i2d_X509(leaf, &d);
  if (n <= 0) return -EACCES;
  sec_sha256(d, (size_t)n, g_leaf_hash);
  OPENSSL_free(d);
  g_leaf_seen = true;
  return 0; /* judged once the attested certificate is known */
}

static void post_done(int err, const ra_http_response *res, void *ud) {
  post *p = ud;
  p->done = true;
  p->err = err;
  if (!err) {
    p->status = res->status;
    p->body = malloc(res->body.len + 1);
    if (p->body) {
      memcpy(p->body, res->body.ptr, res->body.len);
      p->body[res->body.len] = 0;
      p->body_len = res->body.len;
    } else {
      p->err = -ENOMEM;
    }
  }
  ra_loop_stop(p->loop);
}

/* POSTs json to url; *answer parsed (an object) and *status. 0, or -1
 * (said on stderr). */
static int post_json(ra_loop *loop, ra_tls_ctx *tls, const char *url, const char *json, int *status,
                     json_t **answer) {
  post p = {.loop = loop};
  ra_http_header h = {.name = RA_STR("Content-Type"), .value = RA_STR("application/json")};
  ra_http_get_opts o = {.timeout_ms = 30000,
                        .max_body = 128u << 20,
                        /* a sealed secret: 64 MiB, in base64 */ .method = "POST",
                        .headers = &h,
                        .nheaders = 1,
                        .body = json,
                        .body_len = strlen(json),
                        .tls = tls,
                        .accept = "application/json"};
  int rc = ra_http_get_start(loop, url, &o, post_done, &p, NULL);
  if (rc) {
    fprintf(stderr, "ra-secrets: %s: %s\n", url, ra_strerror(rc));
    return -1;
  }
  while (!p.done) ra_loop_run(loop);
  if (p.err) {
    fprintf(stderr, "ra-secrets: %s: %s\n", url, ra_strerror(p.err));
    free(p.body);
    return -1;
  }
  *status = p.status;
  *answer = json_loadb(p.body, p.body_len, 0, NULL);
  free(p.body);
  if (!json_is_object(*answer)) {
    fprintf(stderr, "ra-secrets: %s answered HTTP %d without a JSON object\n", url, p.status);
    json_decref(*answer);
    *answer = NULL;
    return -1;
  }
  return 0;
}

/* A refusal's exit code, after saying it. */
static int refused(const char *what, int status, json_t *a) {
  const char *e = json_string_value(json_object_get(a, "error"));
  const char *why = json_string_value(json_object_get(a, "reason"));
  fprintf(stderr, "ra-secrets: %s refused (HTTP %d): %s: %s\n", what, status, e ? e : "?",
          why ? why : "");
  switch (sec_reason_from_name(e)) {
  case SEC_ATTESTATION_MISSING:
  case SEC_ATTESTATION_INVALID:
  case SEC_KEY_NOT_BOUND:
  case SEC_EVENT_LOG_MISMATCH:
  case SEC_APP_ID_MISMATCH:
  case SEC_MEASUREMENT_MISMATCH:
  case SEC_DEBUG_TD:
    return SEC_EXIT_REFUSED;
  case SEC_UNKNOWN_CHALLENGE:
  case SEC_CHALLENGE_EXPIRED:
  case SEC_CHALLENGE_USED:
  case SEC_BAD_SIGNATURE:
    return SEC_EXIT_CHALLENGE;
  case SEC_NOT_FOUND:
    return SEC_EXIT_NOT_FOUND;
  case SEC_BAD_REQUEST:
  case SEC_BAD_NAME:
    return SEC_EXIT_USAGE;
  default:
    return SEC_EXIT_FAIL;
  }
}

static char *b64(const uint8_t *p, size_t n) {
  size_t cap = sodium_base64_ENCODED_LEN(n, sodium_base64_VARIANT_ORIGINAL);
  char *s = malloc(cap);
  if (s) sodium_bin2base64(s, cap, p, n, sodium_base64_VARIANT_ORIGINAL);
  return s;
}

/* base64 member of a into a malloc'd buffer; 0 or -1 */
static int get_b64(json_t *a, const char *key, uint8_t **out, size_t *len) {
  const char *s = json_string_value(json_object_get(a, key));
  if (!s) return -1;
  size_t sl = strlen(s), cap = sl / 4 * 3 + 3;
  *out = malloc(cap);
  if (!*out) return -1;
  if (sodium_base642bin(*out, cap, s, sl, NULL, len, NULL, sodium_base64_VARIANT_ORIGINAL)) {
    free(*out);
    *out = NULL;
    return -1;
  }
  return 0;
}

static void fetch_usage(void) {
  fprintf(stderr,
          "usage: ra-secrets fetch --server URL --client-tee sim|tsm|dstack[:SOCK]|file:PATH|none\n"
          "         [--client-sim-dir DIR] [--client-id ID]\n"
          "         (--expect-server-app-id HEX | --expect-server-mrtd HEX)... [--trust-sim DIR] "
          "[--root PEM]...\n"
          "         [-o FILE] [--dump-challenge FILE] [--dump-fetch FILE] [--delay-fetch MS] "
          "[--sign-with-other-key] NAME\n"
          "environment: RATLS_STRICT (true; false: no server pins needed, said loudly)\n"
          "exit: 0 secret released, 1 other failure, 2 usage, 3 own attestation unavailable,\n"
          "      4 connection/HTTP/malformed answer, 5 server attestation refused,\n"
          "      6 client attestation refused, 7 challenge refused, 8 no such secret\n");
}

int sec_cmd_fetch(int argc, char **argv) {
  const char *server = NULL, *tee = NULL, *sim_dir = NULL, *client_id = "ra-secrets-client";
  const char *trust_sim = NULL, *roots[SEC_MAX_PINS], *outpath = NULL, *dump = NULL, *name = NULL;
  const char *dump_ch = NULL;
  size_t nr = 0;
  long delay_ms = 0;
  bool other_key = false;
  static sec_policy pol;
  memset(&pol, 0, sizeof pol);
  int strict = sec_strict_from_env();
  if (strict < 0) {
    fprintf(stderr, "ra-secrets: RATLS_STRICT must be true or false (failing closed)\n");
    return SEC_EXIT_USAGE;
  }
  pol.strict = strict;
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
    if (!strcmp(a, "--sign-with-other-key")) {
      other_key = true;
      continue;
    }
    if (a[0] != '-' || !a[1]) {
      if (name) {
        fetch_usage();
        return SEC_EXIT_USAGE;
      }
      name = a;
      continue;
    }
    if (!v) {
      fetch_usage();
      return SEC_EXIT_USAGE;
    }
    i++;
    if (!strcmp(a, "--server"))
      server = v;
    else if (!strcmp(a, "--client-tee"))
      tee = v;
    else if (!strcmp(a, "--client-sim-dir"))
      sim_dir = v;
    else if (!strcmp(a, "--client-id"))
      client_id = v;
    else if (!strcmp(a, "--trust-sim"))
      trust_sim = v;
    else if (!strcmp(a, "--root") && nr < SEC_MAX_PINS)
      roots[nr++] = v;
    else if (!strcmp(a, "-o"))
      outpath = v;
    else if (!strcmp(a, "--dump-fetch"))
      dump = v;
    else if (!strcmp(a, "--dump-challenge"))
      dump_ch = v;
    else if (!strcmp(a, "--delay-fetch"))
      delay_ms = atol(v);
    else if (!strcmp(a, "--expect-server-app-id")) {
      if (sec_policy_add_app_id(&pol, v)) {
        fprintf(stderr, "ra-secrets: --expect-server-app-id: hex of 1..64 bytes\n");
        return SEC_EXIT_USAGE;
      }
    } else if (!strcmp(a, "--expect-server-mrtd")) {
      if (sec_policy_add_mrtd(&pol, v)) {
        fprintf(stderr, "ra-secrets: --expect-server-mrtd: 96 hex digits\n");
        return SEC_EXIT_USAGE;
      }
    } else {
      fetch_usage();
      return SEC_EXIT_USAGE;
    }
  }
  if (!server || !tee || !name) {
    fetch_usage();
    return SEC_EXIT_USAGE;
  }
  if (!sec_name_valid(name) || !sec_client_id_valid(client_id)) {
    fprintf(stderr, "ra-secrets: bad secret name or client id\n");
    return SEC_EXIT_USAGE;
  }
  bool https = !strncmp(server, "https://", 8);
  if (!https && strncmp(server, "http://", 7)) {
    fprintf(stderr, "ra-secrets: --server: an http:// or https:// URL\n");
    return SEC_EXIT_USAGE;
  }
  if (strict && pol.n_app_id == 0 && pol.n_mrtd == 0) {
    fprintf(stderr,
            "ra-secrets: strict mode: pin the server with --expect-server-app-id HEX and/or "
            "--expect-server-mrtd HEX (RATLS_STRICT=false accepts any attested server)\n");
    return SEC_EXIT_USAGE;
  }
  if (!strict)
    fprintf(stderr,
            "ra-secrets: WARNING: RATLS_STRICT=false: RELAXED MODE: %s; debug TDs accepted\n",
            pol.n_app_id || pol.n_mrtd
                ? "the server is still checked against the pins given"
                : "ANY server with a genuine quote (to a pinned root) is believed");
  ra_log_set_level(RA_LOG_ERROR); /* what matters is said on stderr in our words */

  int ret = SEC_EXIT_FAIL;
  ra_verifier *v = NULL;
  ra_loop *loop = NULL;
  ra_tls_ctx *tls = NULL;
  sec_own own = {0};
  sec_peer srv = {0};
  json_t *ans = NULL, *req = NULL;
  EVP_PKEY *signer = NULL;
  char *reqs = NULL, *srv_cert = NULL;
  uint8_t *chal = NULL, *ssig = NULL, *t = NULL, *sig = NULL;
  size_t chal_len = 0, ssig_len = 0, tl = 0, sl = 0;
  uint8_t *epk = NULL, *nonce = NULL, *ct = NULL, *psig = NULL, *pt = NULL;
  size_t epk_len = 0, nonce_len = 0, ct_len = 0, psig_len = 0, pt_len = 0;

  if (ra_verifier_new(nr || trust_sim ? RA_VERIFIER_NO_DEFAULT_ROOT : 0, &v)) goto out;
  pol.v = v;
  char sim_root[4096];
  if (sec_load_roots(v, roots, nr, trust_sim, sim_root, sizeof sim_root)) {
    ret = SEC_EXIT_USAGE;
    goto out;
  }

  /* 1. our own attested key: a certificate through the dstack agent (its
   * event log names our app id), a quote bundle otherwise */
  char err[512];
  bool none = !strcmp(tee, "none");
  if (!none && sec_own_make(tee, sim_dir, sec_dstack_socket(tee) != NULL, "ra-secrets client", &own,
                            err, sizeof err)) {
    fprintf(stderr, "ra-secrets: our own attestation: %s\n", err);
    ret = SEC_EXIT_KEY;
    goto out;
  }
  if (none && !(own.key = sec_key_gen())) goto out;
  if (none && sec_spki(own.key, &own.spki, &own.spki_len)) goto out;
  req = json_pack("{s:s}", "client_id", client_id);
  if (own.cert_pem) {
    json_object_set_new(req, "attestation", json_pack("{s:s}", "cert", own.cert_pem));
  } else if (own.quote) {
    char *qb = b64(own.quote, own.quote_len), *kb = b64(own.spki, own.spki_len);
    if (qb && kb)
      json_object_set_new(req, "attestation", json_pack("{s:s,s:s}", "quote", qb, "key", kb));
    free(qb);
    free(kb);
  }
  reqs = json_dumps(req, JSON_COMPACT);
  /* tests: what went on the wire, to replay or alter it */
  if (reqs && dump_ch) {
    FILE *f = fopen(dump_ch, "w");
    if (f) {
      fputs(reqs, f);
      fclose(f);
    }
  }
  if (!reqs || ra_loop_new(&loop)) goto out;
  if (https) {
    ra_tls_client_opts to = {.verify = leaf_cb, .verify_cb_only = true};
    if (ra_tls_client_ctx_new(&to, &tls, err, sizeof err)) {
      fprintf(stderr, "ra-secrets: TLS: %s\n", err);
      goto out;
    }
  }

  /* 2. the challenge */
  char url[2048];
  snprintf(url, sizeof url, "%s/v1/secrets/challenge", server);
  int status = 0;
  if (post_json(loop, tls, url, reqs, &status, &ans)) {
    ret = SEC_EXIT_CONNECT;
    goto out;
  }
  if (status != 200) {
    ret = refused("challenge", status, ans);
    goto out;
  }
  json_t *sj = json_object_get(ans, "server");
  const char *idhex = json_string_value(json_object_get(ans, "challenge_id"));
  const char *echo_id = json_string_value(json_object_get(ans, "client_id"));
  json_t *exp = json_object_get(ans, "expires_ms");
  const char *cert = json_string_value(json_object_get(sj, "cert"));
  uint8_t id[SEC_ID_BYTES];
  if (!idhex || !echo_id || !json_is_integer(exp) || !cert ||
      sodium_hex2bin(id, sizeof id, idhex, strlen(idhex), NULL, &sl, NULL) || sl != SEC_ID_BYTES ||
      get_b64(ans, "challenge", &chal, &chal_len) || chal_len != SEC_CHALLENGE_BYTES ||
      get_b64(sj, "signature", &ssig, &ssig_len)) {
    fprintf(stderr, "ra-secrets: the challenge answer is malformed\n");
    ret = SEC_EXIT_CONNECT;
    goto out;
  }
  if (json_is_false(json_object_get(ans, "strict")))
    fprintf(stderr,
            "ra-secrets: WARNING: the server runs with RATLS_STRICT=false (relaxed mode)\n");

  /* 3. the server: its attestation against our pins, then its signature
   * over the challenge, our key and our id: the challenge is its, for us */
  sec_evidence sev = {.cert = cert};
  sec_reason r = sec_attest_verify(&pol, &sev, &srv, err, sizeof err);
  if (r != SEC_OK) {
    fprintf(stderr, "ra-secrets: the server's attestation is refused (%s): %s; nothing was asked\n",
            sec_reason_name(r), err);
    ret = SEC_EXIT_SERVER;
    goto out;
  }
  uint8_t kh[32], sh[32];
  uint8_t *dummy = NULL;
  size_t dl = 0;
  if (sec_cert_info(cert, &dummy, &dl, sh)) goto out;
  free(dummy);
  sec_sha256(own.spki, own.spki_len, kh);
  t = sec_challenge_transcript(id, chal, (uint64_t)json_integer_value(exp), kh, echo_id, &tl);
  if (!t || strcmp(echo_id, client_id) ||
      sec_verify(srv.spki, srv.spki_len, t, tl, ssig, ssig_len)) {
    fprintf(stderr,
            "ra-secrets: the challenge is not signed by the attested server key for our key "
            "and id: refused; nothing was asked\n");
    ret = SEC_EXIT_SERVER;
    goto out;
  }
  if (https && (!g_leaf_seen || memcmp(g_leaf_hash, sh, 32))) {
    fprintf(stderr,
            "ra-secrets: the TLS certificate is not the server's attested one (run the server "
            "with --ra-tls): refused; nothing was asked\n");
    ret = SEC_EXIT_SERVER;
    goto out;
  }
  free(t);

  /* 4. the response: our attested key signs challenge, server, name */
  if (delay_ms > 0) {
    struct timespec ts = {delay_ms / 1000, (delay_ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
  }
  t = sec_fetch_transcript(id, chal, sh, name, &tl);
  signer = other_key ? sec_key_gen() : NULL; /* tests: a key that was never attested */
  if (!t || sec_sign(other_key ? signer : own.key, t, tl, &sig, &sl)) goto out;
  char *sigb = b64(sig, sl);
  json_decref(req);
  req = json_pack("{s:s,s:s,s:s}", "challenge_id", idhex, "name", name, "signature",
                  sigb ? sigb : "");
  free(sigb);
  free(reqs);
  reqs = json_dumps(req, JSON_COMPACT);
  if (!reqs) goto out;
  if (dump) {
    FILE *f = fopen(dump, "w");
    if (f) {
      fputs(reqs, f);
      fclose(f);
    }
  }
  char rid[sizeof id * 2 + 1];
  snprintf(rid, sizeof rid, "%s", idhex);
  json_decref(ans);
  ans = NULL;
  snprintf(url, sizeof url, "%s/v1/secrets/fetch", server);
  if (post_json(loop, tls, url, reqs, &status, &ans)) {
    ret = SEC_EXIT_CONNECT;
    goto out;
  }
  if (status != 200) {
    ret = refused("fetch", status, ans);
    goto out;
  }

  /* 5. the secret: signed by the attested server, sealed to our key */
  const char *aname = json_string_value(json_object_get(ans, "name"));
  const char *aid = json_string_value(json_object_get(ans, "challenge_id"));
  sec_box box = {0};
  if (!aname || strcmp(aname, name) || !aid || strcmp(aid, rid) ||
      get_b64(ans, "epk", &epk, &epk_len) || get_b64(ans, "nonce", &nonce, &nonce_len) ||
      nonce_len != 12 || get_b64(ans, "ciphertext", &ct, &ct_len) ||
      get_b64(ans, "signature", &psig, &psig_len)) {
    fprintf(stderr, "ra-secrets: the fetch answer is malformed\n");
    ret = SEC_EXIT_CONNECT;
    goto out;
  }
  uint8_t eh[32], ch[32];
  sec_sha256(epk, epk_len, eh);
  sec_sha256(ct, ct_len, ch);
  free(t);
  t = sec_secret_transcript(id, eh, nonce, ch, name, &tl);
  if (!t || sec_verify(srv.spki, srv.spki_len, t, tl, psig, psig_len)) {
    fprintf(stderr, "ra-secrets: the secret is not signed by the attested server key: refused\n");
    ret = SEC_EXIT_SERVER;
    goto out;
  }
  box.epk = epk;
  box.epk_len = epk_len;
  memcpy(box.nonce, nonce, 12);
  box.ct = ct;
  box.ct_len = ct_len;
  if (sec_open(own.key, id, chal, name, &box, &pt, &pt_len)) {
    fprintf(stderr, "ra-secrets: the secret does not open with our key\n");
    ret = SEC_EXIT_SERVER;
    goto out;
  }
  FILE *f = outpath ? fopen(outpath, "wb") : stdout;
  if (!f || fwrite(pt, 1, pt_len, f) != pt_len || (outpath ? fclose(f) : fflush(f))) {
    fprintf(stderr, "ra-secrets: cannot write the secret%s%s\n", outpath ? " to " : "",
            outpath ? outpath : "");
    goto out;
  }
  ret = SEC_EXIT_OK;
out:
  if (pt) sodium_memzero(pt, pt_len);
  free(pt);
  free(epk);
  free(nonce);
  free(ct);
  free(psig);
  free(t);
  free(sig);
  free(chal);
  free(ssig);
  free(reqs);
  free(srv_cert);
  EVP_PKEY_free(signer);
  json_decref(req);
  json_decref(ans);
  sec_peer_clear(&srv);
  sec_own_clear(&own);
  ra_tls_ctx_unref(tls);
  ra_loop_free(loop);
  ra_verifier_free(v);
  return ret;
}
