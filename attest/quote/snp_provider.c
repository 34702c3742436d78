/* attest/quote/snp_provider.c: the SEV-SNP quote providers (provider.h):
 * sim-snp, snp-file, and the certificate handling tsm shares. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "provider_internal.h"
#include "raloop/attest/quote/hexb64.h"
#include "raloop/attest/quote/provider.h"
#include "raloop/attest/quote/snp_cert_table.h"
#include "raloop/attest/quote/snp_provider_internal.h"
#include "raloop/attest/quote/snp_report.h"
#include "raloop/attest/quote/snp_sim.h"
#include "raloop/attest/quote/snp_vcek.h"
#include "raloop/core/file.h"
#include "raloop/core/log.h"

#define CERTS_MAX (1024 * 1024)


int ra_snp_ev_binding(const uint8_t pub[32], ra_quote_evidence *ev, uint8_t rd[64]) {
  ev->tee = RA_QUOTE_TEE_SNP;
  ev->snp_nonce = malloc(RA_SNP_NONCE_LEN);
  if (!ev->snp_nonce) return -ENOMEM;
  ev->snp_nonce_len = RA_SNP_NONCE_LEN;
  if (RAND_bytes(ev->snp_nonce, RA_SNP_NONCE_LEN) != 1) {
    ra_error("no randomness for the SEV-SNP nonce");
    return -EIO;
  }
  return ra_snp_binding(ev->snp_nonce, ev->snp_nonce_len, pub, rd);
}

/* The PEM text of one certificate (X509 object), malloc'd, NUL-terminated. */
static char *x509_pem(X509 *x) {
  BIO *b = BIO_new(BIO_s_mem());
  char *out = NULL;
  if (b && PEM_write_bio_X509(b, x) == 1) {
    char *p;
    long n = BIO_get_mem_data(b, &p);
    if (n > 0 && (out = malloc((size_t)n + 1))) {
      memcpy(out, p, (size_t)n);
      out[n] = '\0';
    }
  }
  BIO_free(b);
  return out;
}

/* DER -> PEM; NULL when it does not parse or on ENOMEM (*bad says which). */
static char *der_pem(const uint8_t *der, size_t len, bool *bad) {
  const unsigned char *p = der;
  X509 *x = d2i_X509(NULL, &p, (long)len);
  if (!x) {
    ERR_clear_error();
    *bad = true;
    return NULL;
  }
  char *s = x509_pem(x);
  X509_free(x);
  return s;
}

int ra_snp_ev_certs_from_table(const uint8_t *tab, size_t len, ra_quote_evidence *ev) {
  ra_snp_cert_table t;
  if (!tab || len == 0) {
    ra_error("SEV-SNP: no certificate table (auxblob) beside the report: the host provides no "
             "VCEK, and fetching it from AMD's KDS is not done here");
    return -EINVAL;
  }
  if (ra_snp_cert_table_parse(tab, len, &t) != 0) {
    ra_error("SEV-SNP: the certificate table (%zu bytes) does not parse", len);
    return -EINVAL;
  }
  const uint8_t *vcek = t.vcek ? t.vcek : t.vlek;
  size_t vcek_len = t.vcek ? t.vcek_len : t.vlek_len;
  if (!vcek) {
    ra_error("SEV-SNP: the certificate table has no VCEK or VLEK");
    return -EINVAL;
  }
  bool bad = false;
  ev->vcek_pem = der_pem(vcek, vcek_len, &bad);
  if (!bad && t.ask) ev->ask_pem = der_pem(t.ask, t.ask_len, &bad);
  if (!bad && t.ark) ev->ark_pem = der_pem(t.ark, t.ark_len, &bad);
  if (bad) {
    ra_error("SEV-SNP: a certificate of the certificate table does not parse");
    return -EINVAL;
  }
  if (!ev->vcek_pem || (t.ask && !ev->ask_pem) || (t.ark && !ev->ark_pem)) return -ENOMEM;
  return 0;
}

/* ---- sim-snp ---------------------------------------------------------- */

typedef struct sim_snp {
  ra_snp_sim *sim;
  char *dir;
  char *ask_pem, *ark_pem; /* the chain file split: ASK, ARK */
} sim_snp;

/* Splits a PEM chain (ASK then ARK, or any order) into ASK and ARK by the
 * ARK's self-signature. Returns 0, -EINVAL, -ENOMEM. */
static int split_chain(const char *pem, char **ask, char **ark) {
  BIO *b = BIO_new_mem_buf(pem, -1);
  int rc = 0;
  X509 *x;
  if (!b) return -ENOMEM;
  while (rc == 0 && (x = PEM_read_bio_X509(b, NULL, NULL, NULL))) {
    char **slot = X509_check_issued(x, x) == X509_V_OK ? ark : ask;
    if (*slot) rc = -EINVAL;
    else if (!(*slot = x509_pem(x))) rc = -ENOMEM;
    X509_free(x);
  }
  ERR_clear_error();
  BIO_free(b);
  if (rc == 0 && (!*ask || !*ark)) rc = -EINVAL;
  return rc;
}

static int dup_certs(const char *vcek, const char *ask, const char *ark, ra_quote_evidence *ev) {
  ev->vcek_pem = strdup(vcek);
  if (ask) ev->ask_pem = strdup(ask);
  if (ark) ev->ark_pem = strdup(ark);
  if (!ev->vcek_pem || (ask && !ev->ask_pem) || (ark && !ev->ark_pem)) return -ENOMEM;
  return 0;
}

static int sim_snp_get(void *self, const uint8_t pub[32], ra_quote_evidence *ev) {
  sim_snp *s = self;
  uint8_t rd[64];
  int rc = ra_snp_ev_binding(pub, ev, rd);
  if (rc) return rc;
  if ((rc = dup_certs(ra_snp_sim_vcek_pem(s->sim), s->ask_pem, s->ark_pem, ev))) return rc;
  if (!(ev->quote = malloc(RA_SNP_REPORT_LEN))) return -ENOMEM;
  ev->quote_len = RA_SNP_REPORT_LEN;
  rc = ra_snp_sim_report(s->sim, NULL, rd, ev->quote);
  if (rc) ra_error("simulated SEV-SNP TEE: report generation failed: %s", ra_strerror(rc));
  return rc;
}

static int sim_snp_get_report(void *self, const uint8_t rd[64], uint8_t **quote, size_t *len) {
  sim_snp *s = self;
  if (!(*quote = malloc(RA_SNP_REPORT_LEN))) return -ENOMEM;
  *len = RA_SNP_REPORT_LEN;
  int rc = ra_snp_sim_report(s->sim, NULL, rd, *quote);
  if (rc) {
    free(*quote);
    *quote = NULL;
    ra_error("simulated SEV-SNP TEE: report generation failed: %s", ra_strerror(rc));
  }
  return rc;
}

static void sim_snp_free(void *self) {
  sim_snp *s = self;
  ra_snp_sim_free(s->sim);
  free(s->dir);
  free(s->ask_pem);
  free(s->ark_pem);
  free(s);
}

static const ra_quote_provider_ops sim_snp_ops = {"sim-snp", sim_snp_get, sim_snp_free};

int ra_quote_provider_sim_snp(const char *dir, ra_quote_provider **out) {
  if (!out) return -EINVAL;
  *out = NULL;
  if (!dir) return -EINVAL;
  sim_snp *s = calloc(1, sizeof *s);
  if (!s) return -ENOMEM;
  int rc = ra_snp_sim_open(dir, &s->sim);
  if (rc) {
    ra_error("simulated SEV-SNP TEE in %s: %s", dir,
             rc == -EINVAL ? "corrupt or mismatched key bundle" : ra_strerror(rc));
    free(s);
    return rc;
  }
  if (!(s->dir = strdup(dir))) rc = -ENOMEM;
  else if ((rc = split_chain(ra_snp_sim_chain_pem(s->sim), &s->ask_pem, &s->ark_pem)))
    ra_error("simulated SEV-SNP TEE in %s: its chain is not an ASK and an ARK", dir);
  if (rc) {
    sim_snp_free(s);
    return rc;
  }
  int nrc = ra_quote_provider_new(&sim_snp_ops, s, true, true, out);
  if (nrc == 0) ra_quote_provider_set_get_report(*out, sim_snp_get_report);
  return nrc;
}

int ra_quote_sim_snp_default_dir(char *out, size_t outlen) {
  const char *xdg = getenv("XDG_STATE_HOME"), *home = getenv("HOME");
  int n;
  if (!out || outlen == 0) return -EINVAL;
  if (xdg && xdg[0] == '/')
    n = snprintf(out, outlen, "%s/raloop/sim-snp", xdg);
  else if (home && home[0] == '/')
    n = snprintf(out, outlen, "%s/.local/state/raloop/sim-snp", home);
  else
    return -ENOENT;
  return n > 0 && (size_t)n < outlen ? 0 : -ENAMETOOLONG;
}

const char *ra_snp_provider_sim_dir(const ra_quote_provider_ops *ops, void *self) {
  return ops == &sim_snp_ops ? ((sim_snp *)self)->dir : NULL;
}

/* ---- snp-file --------------------------------------------------------- */

typedef struct snp_file {
  uint8_t report[RA_SNP_REPORT_LEN];
  char *vcek_pem, *ask_pem, *ark_pem;
} snp_file;

static int snp_file_get(void *self, const uint8_t pub[32], ra_quote_evidence *ev) {
  (void)pub; /* fixed: its report_data was made for something else */
  snp_file *f = self;
  ev->tee = RA_QUOTE_TEE_SNP;
  int rc = dup_certs(f->vcek_pem, f->ask_pem, f->ark_pem, ev);
  if (rc) return rc;
  if (!(ev->quote = ra_quote_dup_bytes(f->report, sizeof f->report))) return -ENOMEM;
  ev->quote_len = sizeof f->report;
  return 0;
}

static int snp_file_get_report(void *self, const uint8_t rd[64], uint8_t **quote, size_t *len) {
  (void)rd;
  snp_file *f = self;
  if (!(*quote = ra_quote_dup_bytes(f->report, sizeof f->report))) return -ENOMEM;
  *len = sizeof f->report;
  return 0;
}

static void snp_file_free(void *self) {
  snp_file *f = self;
  free(f->vcek_pem);
  free(f->ask_pem);
  free(f->ark_pem);
  free(f);
}

static const ra_quote_provider_ops snp_file_ops = {"snp-file", snp_file_get, snp_file_free};

/* PEM certificates in any order: the VCEK/VLEK by its AMD extensions, the
 * ARK by its self-signature, the ASK otherwise. */
static int certs_from_pem(const uint8_t *buf, size_t len, snp_file *f) {
  BIO *b = BIO_new_mem_buf(buf, (int)len);
  int rc = 0;
  X509 *x;
  if (!b) return -ENOMEM;
  while (rc == 0 && (x = PEM_read_bio_X509(b, NULL, NULL, NULL))) {
    unsigned char *der = NULL;
    int dlen = i2d_X509(x, &der);
    ra_snp_vcek_info vi;
    char **slot = dlen > 0 && ra_snp_vcek_parse(der, (size_t)dlen, &vi) == 0 ? &f->vcek_pem
                  : X509_check_issued(x, x) == X509_V_OK                     ? &f->ark_pem
                                                                              : &f->ask_pem;
    OPENSSL_free(der);
    if (*slot) rc = -EINVAL; /* two of a kind */
    else if (!(*slot = x509_pem(x))) rc = -ENOMEM;
    X509_free(x);
  }
  ERR_clear_error();
  BIO_free(b);
  if (rc == 0 && !f->vcek_pem) rc = -EINVAL;
  return rc;
}

int ra_quote_provider_snp_file(const char *report, const char *certs, ra_quote_provider **out) {
  if (!out) return -EINVAL;
  *out = NULL;
  if (!report || !certs) return -EINVAL;
  uint8_t *raw = NULL, *dec = NULL;
  size_t rawlen = 0, declen = 0;
  int rc = ra_quote_read_decoded(report, 4 * CERTS_MAX, "SEV-SNP report", &dec, &declen);
  if (rc) return rc;
  ra_snp_report r;
  if (ra_snp_report_parse(dec, declen, &r) != 0) {
    ra_error("%s: not a SEV-SNP report (%zu bytes)", report, declen);
    free(dec);
    return -EINVAL;
  }
  snp_file *f = calloc(1, sizeof *f);
  if (!f) {
    free(dec);
    return -ENOMEM;
  }
  memcpy(f->report, dec, sizeof f->report);
  free(dec);
  rc = ra_file_read(certs, CERTS_MAX, &raw, &rawlen);
  if (rc) {
    ra_error("cannot read SEV-SNP certificates %s: %s", certs, ra_strerror(rc));
    snp_file_free(f);
    return rc;
  }
  if (memmem(raw, rawlen, "-----BEGIN", 10)) {
    rc = certs_from_pem(raw, rawlen, f);
    if (rc == -EINVAL)
      ra_error("%s: needs the VCEK (or VLEK), and at most one ASK and one ARK", certs);
  } else {
    ra_quote_evidence tmp;
    memset(&tmp, 0, sizeof tmp);
    rc = ra_snp_ev_certs_from_table(raw, rawlen, &tmp); /* logs why */
    f->vcek_pem = tmp.vcek_pem;
    f->ask_pem = tmp.ask_pem;
    f->ark_pem = tmp.ark_pem;
  }
  free(raw);
  if (rc) {
    snp_file_free(f);
    return rc;
  }
  int nrc = ra_quote_provider_new(&snp_file_ops, f, false, false, out);
  if (nrc == 0) ra_quote_provider_set_get_report(*out, snp_file_get_report);
  return nrc;
}
