/* apps/secrets/own.c: see own.h. */
#include "own.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <openssl/crypto.h>

#include "attest.h"
#include "crypto.h"
#include "raloop/attest/quote/dstack.h"
#include "raloop/attest/quote/provider.h"
#include "raloop/attest/quote/ratls.h"
#include "raloop/core/error.h"

const char *sec_dstack_socket(const char *spec) {
  if (!spec) return NULL;
  if (!strcmp(spec, "dstack")) return RA_DSTACK_SOCKET;
  if (!strncmp(spec, "dstack:", 7) && spec[7]) return spec + 7;
  return NULL;
}

void sec_own_clear(sec_own *o) {
  EVP_PKEY_free(o->key);
  free(o->spki);
  free(o->cert_pem);
  if (o->key_pem) {
    OPENSSL_cleanse(o->key_pem, strlen(o->key_pem));
    free(o->key_pem);
  }
  free(o->quote);
  free(o->event_log);
  memset(o, 0, sizeof *o);
}

/* The event log of the CVM, from the agent's Info (its tcb_info's
 * event_log: an array, or a string holding one), as JSON array text. */
static char *dstack_event_log(const char *sock, char *err, size_t errlen) {
  ra_dstack_info info = {0};
  int rc = ra_dstack_get_info(sock, 0, &info);
  if (rc) {
    snprintf(err, errlen, "dstack agent %s: Info failed: %s", sock, ra_strerror(rc));
    return NULL;
  }
  char *out = NULL;
  json_t *t = info.tcb_info ? json_loads(info.tcb_info, 0, NULL) : NULL;
  json_t *el = json_object_get(t, "event_log");
  if (json_is_array(el))
    out = json_dumps(el, JSON_COMPACT);
  else if (json_is_string(el))
    out = strdup(json_string_value(el));
  if (!out) snprintf(err, errlen, "dstack agent %s: Info has no tcb_info with an event_log", sock);
  json_decref(t);
  ra_dstack_info_clear(&info);
  return out;
}

int sec_own_make(const char *spec, const char *sim_dir, bool want_cert, const char *common_name,
                 sec_own *out, char *err, size_t errlen) {
  memset(out, 0, sizeof *out);
  ra_quote_provider *p = NULL;
  int rc = ra_quote_provider_open(spec, sim_dir, &p);
  if (rc) {
    snprintf(err, errlen, "quote provider %s: %s", spec ? spec : "auto", ra_strerror(rc));
    return -1;
  }
  out->provider = ra_quote_provider_name(p);
  out->simulated = ra_quote_provider_simulated(p);
  const char *sock = sec_dstack_socket(spec);
  out->is_dstack = sock != NULL;
  if (want_cert) {
    if (sock && !(out->event_log = dstack_event_log(sock, err, errlen))) goto fail;
    /* a year: the server makes its key once, at start-up (the agent is
     * not asked from the loop); restart it to renew */
    ra_ratls_cert_opts ro = {.common_name = common_name, .validity_days = 365};
    if (out->event_log) {
      ro.event_log = (const uint8_t *)out->event_log;
      ro.event_log_len = strlen(out->event_log);
    }
    ra_ratls_cert c = {0};
    rc = ra_ratls_generate(p, &ro, &c);
    if (rc) {
      snprintf(err, errlen, "cannot make an attested certificate (%s provider): %s", out->provider,
               ra_strerror(rc));
      goto fail;
    }
    out->cert_pem = strdup(c.cert_pem);
    out->key_pem = strdup(c.key_pem);
    ra_ratls_cert_clear(&c);
    if (!out->cert_pem || !out->key_pem || !(out->key = sec_key_from_pem(out->key_pem)) ||
        sec_cert_info(out->cert_pem, &out->spki, &out->spki_len, out->cert_hash)) {
      snprintf(err, errlen, "cannot load the attested key");
      goto fail;
    }
  } else {
    uint8_t rd[64];
    if (!(out->key = sec_key_gen()) || sec_spki(out->key, &out->spki, &out->spki_len)) {
      snprintf(err, errlen, "cannot generate a key");
      goto fail;
    }
    sec_key_report_data(out->spki, out->spki_len, rd);
    rc = ra_quote_provider_get_report(p, rd, &out->quote, &out->quote_len);
    if (rc) {
      snprintf(err, errlen, "the %s provider gave no quote: %s", out->provider, ra_strerror(rc));
      goto fail;
    }
  }
  ra_quote_provider_free(p);
  return 0;
fail:
  ra_quote_provider_free(p);
  sec_own_clear(out);
  return -1;
}
