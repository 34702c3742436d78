/* apps/secrets/attest.c: see attest.h. */
#include "attest.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/pem.h>
#include <openssl/x509.h>
#include <sodium.h>

#include "raloop/attest/quote/dstack_cert.h"
#include "raloop/attest/quote/eventlog.h"
#include "raloop/attest/quote/quote.h"
#include "raloop/attest/quote/ratls.h"
#include "raloop/attest/quote/sim.h"
#include "raloop/core/error.h"

#include "crypto.h"

void sec_key_report_data(const uint8_t *spki, size_t len, uint8_t rd[64]) {
  crypto_hash_sha512_state s;
  crypto_hash_sha512_init(&s);
  crypto_hash_sha512_update(&s, (const uint8_t *)SEC_TAG_KEY, strlen(SEC_TAG_KEY));
  crypto_hash_sha512_update(&s, spki, len);
  crypto_hash_sha512_final(&s, rd);
}

void sec_peer_clear(sec_peer *p) {
  free(p->spki);
  memset(p, 0, sizeof *p);
}

static int add_hex(const char *hex, uint8_t *out, size_t max, size_t *len, bool exact) {
  size_t hl = strlen(hex), n = 0;
  if (hl == 0 || hl % 2 || hl / 2 > max || (exact && hl / 2 != max)) return -1;
  if (sodium_hex2bin(out, max, hex, hl, NULL, &n, NULL) || n != hl / 2) return -1;
  *len = n;
  return 0;
}

int sec_policy_add_app_id(sec_policy *pol, const char *hex) {
  if (pol->n_app_id >= SEC_MAX_PINS) return -1;
  if (add_hex(hex, pol->app_id[pol->n_app_id], 64, &pol->app_id_len[pol->n_app_id], false))
    return -1;
  pol->n_app_id++;
  return 0;
}

int sec_policy_add_mrtd(sec_policy *pol, const char *hex) {
  size_t n;
  if (pol->n_mrtd >= SEC_MAX_PINS || add_hex(hex, pol->mrtd[pol->n_mrtd], 48, &n, true)) return -1;
  pol->n_mrtd++;
  return 0;
}

int sec_load_roots(ra_verifier *v, const char *const *roots, size_t nr, const char *trust_sim,
                   char *sim_root, size_t cap) {
  for (size_t i = 0; i < nr; i++)
    if (ra_verifier_add_root_file(v, roots[i]) <= 0) {
      fprintf(stderr, "ra-secrets: cannot load root %s\n", roots[i]);
      return -1;
    }
  if (!trust_sim) return 0;
  snprintf(sim_root, cap, "%s/%s", trust_sim, RA_SIM_ROOT_FILE);
  if (ra_verifier_add_root_file(v, sim_root) <= 0) {
    fprintf(stderr, "ra-secrets: cannot load the simulated root %s\n", sim_root);
    return -1;
  }
  return 0;
}

static void hexs(const uint8_t *p, size_t n, char *out, size_t cap) {
  if (n * 2 + 1 > cap) n = (cap - 1) / 2;
  sodium_bin2hex(out, cap, p, n);
}

/* The quote's verdict on its own: the policy checks nothing but the chain
 * and signatures (the measurements are compared below, each with its own
 * refusal); debug TDs are judged below too. */
static void base_policy(ra_policy *p) {
  memset(p, 0, sizeof *p);
  p->signature_only = true;
  p->allow_debug = true;
}

static bool simulated_root(const ra_verdict *vd) {
  return strstr(vd->root_subject, "Simulated") != NULL;
}

static sec_reason verify_cert(const sec_policy *pol, const char *pem, sec_peer *peer, char *msg,
                              size_t msglen) {
  size_t pl = strlen(pem);
  ra_dstack_cert c;
  if (ra_dstack_cert_parse((const uint8_t *)pem, pl, &c)) {
    snprintf(msg, msglen, "the certificate does not parse");
    return SEC_ATTESTATION_INVALID;
  }
  sec_reason r = SEC_OK;
  peer->spki = malloc(c.spki_len);
  if (!peer->spki) {
    ra_dstack_cert_clear(&c);
    snprintf(msg, msglen, "out of memory");
    return SEC_INTERNAL;
  }
  memcpy(peer->spki, c.spki, c.spki_len);
  peer->spki_len = c.spki_len;
  ra_policy p;
  base_policy(&p);
  if (c.event_log || c.attestation) {
    /* dstack's app certificate: binding, quote, RTMR3 replay, app id */
    ra_dstack_identity id;
    ra_verdict vd;
    int rc = ra_dstack_cert_verify(pol->v, (const uint8_t *)pem, pl, NULL, &p, &id, &vd);
    if (rc) {
      snprintf(msg, msglen, "%s", vd.msg);
      r = vd.err == RA_ERR_BINDING       ? SEC_KEY_NOT_BOUND
          : vd.err == RA_ERR_MEASUREMENT ? SEC_EVENT_LOG_MISMATCH
                                         : SEC_ATTESTATION_INVALID;
      goto out;
    }
    memcpy(peer->mrtd, id.mrtd, 48);
    peer->has_app_id = id.has_app_id;
    memcpy(peer->app_id, id.app_id, sizeof peer->app_id);
    peer->app_id_len = id.app_id_len;
    peer->simulated = simulated_root(&vd);
    peer->debug = vd.debug;
  } else {
    /* a raloop RA-TLS certificate: binding and quote, no events */
    BIO *b = BIO_new_mem_buf(pem, (int)pl);
    X509 *x = b ? PEM_read_bio_X509(b, NULL, NULL, NULL) : NULL;
    BIO_free(b);
    ra_ratls_result res;
    int rc = x ? ra_ratls_verify_x509(pol->v, x, NULL, &p, NULL, &res) : -1;
    X509_free(x);
    if (rc) {
      snprintf(msg, msglen, "%s", x ? res.msg : "the certificate does not parse");
      r = x && res.step == RA_RATLS_STEP_KEY_NOT_BOUND ? SEC_KEY_NOT_BOUND
                                                       : SEC_ATTESTATION_INVALID;
      goto out;
    }
    ra_quote q;
    if (!c.quote || ra_quote_parse(c.quote, c.quote_len, &q) || !q.td.mrtd) {
      snprintf(msg, msglen, "not a TDX quote (only TDX peers are supported)");
      r = SEC_ATTESTATION_INVALID;
      goto out;
    }
    memcpy(peer->mrtd, q.td.mrtd, 48);
    peer->simulated = simulated_root(&res.vd);
    peer->debug = res.vd.debug;
  }
out:
  ra_dstack_cert_clear(&c);
  return r;
}

static sec_reason verify_bundle(const sec_policy *pol, const sec_evidence *ev, sec_peer *peer,
                                char *msg, size_t msglen) {
  ra_quote q;
  if (ra_quote_parse(ev->quote, ev->quote_len, &q)) {
    snprintf(msg, msglen, "the quote does not parse");
    return SEC_ATTESTATION_INVALID;
  }
  if (q.body_type != RA_BODY_TD10 && q.body_type != RA_BODY_TD15) {
    snprintf(msg, msglen, "not a TDX quote (only TDX peers are supported)");
    return SEC_ATTESTATION_INVALID;
  }
  /* 1. the binding: this quote was made for this key */
  uint8_t rd[64];
  sec_key_report_data(ev->key, ev->key_len, rd);
  if (sodium_memcmp(rd, q.td.report_data, 64)) {
    snprintf(msg, msglen,
             "report_data is not SHA-512(\"%s\" || key): the quote was made for another key",
             SEC_TAG_KEY);
    return SEC_KEY_NOT_BOUND;
  }
  /* 2. the quote */
  ra_policy p;
  base_policy(&p);
  ra_verdict vd;
  if (ra_verify_quote(pol->v, ev->quote, ev->quote_len, NULL, &p, &vd)) {
    snprintf(msg, msglen, "%s", vd.msg);
    return SEC_ATTESTATION_INVALID;
  }
  /* 3. the event log */
  if (ev->event_log) {
    ra_eventlog *log;
    if (ra_eventlog_parse(ev->event_log, strlen(ev->event_log), &log)) {
      snprintf(msg, msglen, "the event log is not dstack's JSON event log");
      return SEC_EVENT_LOG_MISMATCH;
    }
    ra_eventlog_verdict evd;
    ra_dstack_identity id;
    if (ra_eventlog_check(log, &q, &evd) || ra_dstack_identity_from(log, &q, &id)) {
      snprintf(msg, msglen, "%s", evd.msg);
      ra_eventlog_free(log);
      return SEC_EVENT_LOG_MISMATCH;
    }
    ra_eventlog_free(log);
    peer->has_app_id = id.has_app_id;
    memcpy(peer->app_id, id.app_id, sizeof peer->app_id);
    peer->app_id_len = id.app_id_len;
  }
  memcpy(peer->mrtd, q.td.mrtd, 48);
  peer->simulated = simulated_root(&vd);
  peer->debug = vd.debug;
  peer->spki = malloc(ev->key_len);
  if (!peer->spki) {
    snprintf(msg, msglen, "out of memory");
    return SEC_INTERNAL;
  }
  memcpy(peer->spki, ev->key, ev->key_len);
  peer->spki_len = ev->key_len;
  return SEC_OK;
}

sec_reason sec_attest_verify(const sec_policy *pol, const sec_evidence *ev, sec_peer *peer,
                             char *msg, size_t msglen) {
  memset(peer, 0, sizeof *peer);
  msg[0] = 0;
  sec_reason r;
  if (ev->cert)
    r = verify_cert(pol, ev->cert, peer, msg, msglen);
  else if (ev->quote && ev->key)
    r = verify_bundle(pol, ev, peer, msg, msglen);
  else {
    snprintf(msg, msglen, "no attestation");
    r = SEC_ATTESTATION_MISSING;
  }
  if (r != SEC_OK) goto fail;
  /* the key signs the response and receives the secret: P-256 only */
  if (!sec_key_is_p256(peer->spki, peer->spki_len)) {
    snprintf(msg, msglen, "the attested key is not a P-256 key");
    r = SEC_ATTESTATION_INVALID;
    goto fail;
  }
  char h[2 * 64 + 1];
  /* 4. debug TDs: their memory is open to the host */
  if (peer->debug && pol->strict) {
    snprintf(msg, msglen,
             "a debug TD (its memory is readable by the host): refused in strict mode");
    r = SEC_DEBUG_TD;
    goto fail;
  }
  /* 5. the measurement */
  if (pol->n_mrtd) {
    bool ok = false;
    for (size_t i = 0; i < pol->n_mrtd; i++) ok |= sodium_memcmp(pol->mrtd[i], peer->mrtd, 48) == 0;
    if (!ok) {
      hexs(peer->mrtd, 48, h, sizeof h);
      snprintf(msg, msglen, "MRTD %s is not one of the %zu pinned", h, pol->n_mrtd);
      r = SEC_MEASUREMENT_MISMATCH;
      goto fail;
    }
  }
  /* 6. the app id, as the replayed events say it */
  if (pol->n_app_id) {
    if (!peer->has_app_id) {
      snprintf(
          msg, msglen,
          "no attested app id (no dstack event log with an app-id event) and app ids are pinned");
      r = SEC_APP_ID_MISMATCH;
      goto fail;
    }
    bool ok = false;
    for (size_t i = 0; i < pol->n_app_id; i++)
      ok |= pol->app_id_len[i] == peer->app_id_len &&
            memcmp(pol->app_id[i], peer->app_id, peer->app_id_len) == 0;
    if (!ok) {
      hexs(peer->app_id, peer->app_id_len, h, sizeof h);
      snprintf(msg, msglen, "app id %s is not one of the %zu pinned", h, pol->n_app_id);
      r = SEC_APP_ID_MISMATCH;
      goto fail;
    }
  }
  return SEC_OK;
fail:
  sec_peer_clear(peer);
  return r;
}
