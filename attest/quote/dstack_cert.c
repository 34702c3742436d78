/* attest/dstack_cert.c: dstack's attested app certificate (dstack_cert.h). */
#include "raloop/attest/quote/dstack_cert.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/asn1.h>
#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/objects.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "raloop/attest/quote/dstack_att.h"
#include "raloop/attest/quote/hexb64.h"
#include "raloop/attest/quote/quote.h"
#include "raloop/core/error.h"
#include "raloop/core/log.h"

/* The reason of a refusal, in vd->msg and at debug level. */
static int refuse(ra_verdict *vd, int code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int refuse(ra_verdict *vd, int code, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(vd->msg, sizeof vd->msg, fmt, ap);
  va_end(ap);
  vd->err = code;
  ra_debug("dstack certificate: %s", vd->msg);
  return -EACCES;
}

void ra_dstack_cert_clear(ra_dstack_cert *c) {
  if (!c) return;
  free(c->spki);
  free(c->quote);
  free(c->event_log);
  free(c->attestation);
  memset(c, 0, sizeof *c);
}

int ra_dstack_cert_report_data(const uint8_t *spki, size_t spki_len, uint8_t rd[64]) {
  return ra_ratls_report_data(spki, spki_len, rd);
}

/* DER first: a DER certificate of dstack's kind holds a quote whose PCK
 * chain is PEM text, so "-----BEGIN" inside it proves nothing. */
static X509 *load_cert(const uint8_t *data, size_t len) {
  const unsigned char *p = data;
  X509 *x = d2i_X509(NULL, &p, (long)len);
  if (x && p == data + len) return x;
  X509_free(x);
  x = NULL;
  ERR_clear_error(); /* not DER: the queue must not mislead later callers */
  BIO *b = BIO_new_mem_buf(data, (int)len);
  if (b) x = PEM_read_bio_X509(b, NULL, NULL, NULL);
  BIO_free(b);
  if (!x) ERR_clear_error();
  return x;
}

int ra_dstack_cert_parse(const uint8_t *data, size_t len, ra_dstack_cert *out) {
  if (!out) return -EINVAL;
  memset(out, 0, sizeof *out);
  if (!data || !len || len > RA_DSTACK_CERT_MAX) {
    ra_debug("dstack certificate: no certificate (empty or over %d bytes)", RA_DSTACK_CERT_MAX);
    return -EINVAL;
  }
  X509 *x = load_cert(data, len);
  if (!x) {
    ra_debug("dstack certificate: not an X.509 certificate (PEM or DER)");
    return -EINVAL;
  }
  ra_ratls_ext e;
  int rc = ra_ratls_parse_x509(x, &e);
  X509_free(x);
  if (rc) {
    ra_debug("dstack certificate: its extensions do not parse (%s)", ra_strerror(rc));
    return rc == -ENOMEM ? rc : -EINVAL;
  }
  if (e.app_id && e.app_id_len > sizeof out->app_id) {
    ra_debug("dstack certificate: app id extension of %zu bytes (at most 64)", e.app_id_len);
    ra_ratls_ext_clear(&e);
    return -EINVAL;
  }
  /* take the buffers over (each NUL-terminated by the reader) */
  out->spki = e.spki;
  out->spki_len = e.spki_len;
  out->quote = e.quote;
  out->quote_len = e.quote_len;
  out->event_log = (char *)e.event_log;
  out->event_log_len = e.event_log_len;
  out->attestation = e.attestation;
  out->attestation_len = e.attestation_len;
  if (e.app_id) {
    memcpy(out->app_id, e.app_id, e.app_id_len);
    out->app_id_len = e.app_id_len;
    out->has_app_id = true;
  }
  free(e.app_id);
  return 0;
}

int ra_dstack_cert_verify(ra_verifier *v, const uint8_t *data, size_t len,
                          const ra_verify_opts *opts, const ra_policy *policy,
                          ra_dstack_identity *id, ra_verdict *vd) {
  if (id) memset(id, 0, sizeof *id);
  if (!vd) return -EINVAL;
  memset(vd, 0, sizeof *vd);
  vd->matched_set = -1;
  vd->tcb_level = -1;
  if (!v || !policy) return -EINVAL;
  ra_dstack_cert c;
  int rc = ra_dstack_cert_parse(data, len, &c);
  if (rc == -ENOMEM) return rc;
  if (rc) return refuse(vd, RA_ERR_CERT_PARSE, "not a certificate with dstack's extensions "
                                               "(does not parse)");
  ra_eventlog *log = NULL;
  ra_dstack_att att = {0};
  const uint8_t *quote = c.quote;
  size_t quote_len = c.quote_len;
  const char *events = c.event_log;
  size_t events_len = c.event_log_len;
  const char *from = "event log extension";
  if (!quote && c.attestation) {
    rc = ra_dstack_att_decode(c.attestation, c.attestation_len, &att);
    if (rc == -ENOMEM) goto out;
    if (rc == -ENOTSUP) {
      rc = refuse(vd, -ENOTSUP, "the attestation extension (%s) is in a form not supported yet "
                                "(msgpack, or not TDX)",
                  RA_DSTACK_OID_ATTESTATION);
      goto out;
    }
    if (rc) {
      rc = refuse(vd, -EINVAL, "the attestation extension (%s) is malformed",
                  RA_DSTACK_OID_ATTESTATION);
      goto out;
    }
    quote = att.quote;
    quote_len = att.quote_len;
    events = att.runtime;
    events_len = strlen(att.runtime);
    from = "attestation's runtime events";
  }
  if (!quote) {
    rc = refuse(vd, -EINVAL, "no dstack quote (%s) or attestation (%s) extension",
                RA_DSTACK_OID_QUOTE, RA_DSTACK_OID_ATTESTATION);
    goto out;
  }
  ra_quote q;
  if (ra_quote_parse(quote, quote_len, &q)) {
    rc = refuse(vd, RA_ERR_QUOTE_MALFORMED, "the quote does not parse as a DCAP quote");
    goto out;
  }
  if (att.quote && memcmp(att.report_data, ra_quote_report_data(&q), 64) != 0) {
    rc = refuse(vd, RA_ERR_BINDING, "the attestation's report_data is not its quote's");
    goto out;
  }
  uint8_t rd[64];
  if ((rc = ra_dstack_cert_report_data(c.spki, c.spki_len, rd))) goto out;
  if (memcmp(ra_quote_report_data(&q), rd, 64) != 0) {
    rc = refuse(vd, RA_ERR_BINDING, "the quote does not bind the certificate's key "
                                    "(report_data != SHA-512(\"ratls-cert:\" || SPKI))");
    goto out;
  }
  if (ra_verify_quote(v, quote, quote_len, opts, policy, vd) != 0) {
    rc = -EACCES; /* vd says why */
    goto out;
  }
  if (!events) {
    rc = refuse(vd, -EINVAL, "no event log extension (%s)", RA_DSTACK_OID_EVENT_LOG);
    goto out;
  }
  if (events_len >= 6 && !memcmp(events, "ELGZv1", 6)) {
    rc = refuse(vd, -ENOTSUP, "the event log extension is gzip-compressed (ELGZv1): not supported yet");
    goto out;
  }
  rc = ra_eventlog_parse(events, events_len, &log);
  if (rc == -ENOMEM) goto out;
  if (rc) {
    rc = refuse(vd, -EINVAL, "the %s is not a dstack event log", from);
    goto out;
  }
  /* RTMR3 as dstack checks it; all four when the log happens to cover them */
  ra_eventlog_verdict ev, all;
  if (ra_eventlog_check_rtmrs(log, &q, 0x8, &ev)) {
    rc = refuse(vd, ev.err, "%s (from the %s)", ev.msg, from);
    goto out;
  }
  if (ra_eventlog_check(log, &q, &all) == 0) ev = all;
  ra_dstack_identity tmp;
  if (ra_dstack_identity_from(log, &q, &tmp)) {
    rc = refuse(vd, -EINVAL, "an identity event's payload is too long");
    goto out;
  }
  if (c.has_app_id && tmp.has_app_id &&
      (c.app_id_len != tmp.app_id_len || memcmp(c.app_id, tmp.app_id, c.app_id_len))) {
    rc = refuse(vd, RA_ERR_MEASUREMENT, "the app id extension disagrees with the attested "
                                        "app-id event");
    goto out;
  }
  if (id) *id = tmp;
  size_t l = strlen(vd->msg);
  snprintf(vd->msg + l, sizeof vd->msg - l, "; the quote binds the certificate key; %s", ev.msg);
  rc = 0;
out:
  ra_eventlog_free(log);
  ra_dstack_att_clear(&att);
  ra_dstack_cert_clear(&c);
  return rc;
}
