/* attest/provider.c: quote providers (see provider.h). */
#include "raloop/attest/quote/provider.h"
#include "raloop/core/file.h"
#include "raloop/core/log.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/rand.h>

#include "raloop/attest/quote/dstack.h"
#include "raloop/attest/quote/hexb64.h"
#include "raloop/attest/quote/quote.h"
#include "raloop/attest/quote/sim.h"
#include "provider_internal.h"
#include "raloop/attest/quote/snp_provider_internal.h"
#include "raloop/attest/quote/snp_report.h"

#define QUOTE_MAX   (1024 * 1024)
#define NONCE_LEN   32
#define TSM_RETRIES 3

struct ra_quote_provider {
  const ra_quote_provider_ops *ops;
  void *self;
  bool binds_key, simulated;
  ra_quote_get_report_fn get_report;
};

void ra_quote_evidence_clear(ra_quote_evidence *ev) {
  if (!ev) return;
  free(ev->quote);
  free(ev->runtime_data);
  free(ev->val);
  free(ev->iat);
  free(ev->signature);
  free(ev->snp_nonce);
  free(ev->vcek_pem);
  free(ev->ask_pem);
  free(ev->ark_pem);
  memset(ev, 0, sizeof *ev);
}

int ra_quote_provider_new(const ra_quote_provider_ops *ops, void *self, bool binds_key,
                          bool simulated, ra_quote_provider **out) {
  if (!out) return -EINVAL;
  *out = NULL;
  if (!ops || !ops->get) {
    if (ops && ops->free_self && self) ops->free_self(self);
    return -EINVAL;
  }
  ra_quote_provider *p = calloc(1, sizeof *p);
  if (!p) {
    if (ops->free_self && self) ops->free_self(self);
    return -ENOMEM;
  }
  p->ops = ops;
  p->self = self;
  p->binds_key = binds_key;
  p->simulated = simulated;
  *out = p;
  return 0;
}

void ra_quote_provider_free(ra_quote_provider *p) {
  if (!p) return;
  if (p->ops->free_self && p->self) p->ops->free_self(p->self);
  free(p);
}

int ra_quote_provider_get(ra_quote_provider *p, const uint8_t x25519_pub[32],
                          ra_quote_evidence *ev) {
  if (!p || !x25519_pub || !ev) return -EINVAL;
  memset(ev, 0, sizeof *ev);
  int rc = p->ops->get(p->self, x25519_pub, ev);
  if (rc == 0 && (!ev->quote || ev->quote_len == 0)) {
    rc = -EIO;
    ra_error("%s provider returned an empty quote", p->ops->name);
  }
  if (rc == 0 && ev->tee == RA_QUOTE_TEE_SNP && !ev->vcek_pem) {
    rc = -EIO; /* the reference client refuses SEV-SNP evidence without one */
    ra_error("%s provider returned a SEV-SNP report without its VCEK", p->ops->name);
  }
  if (rc) {
    ra_quote_evidence_clear(ev);
    ra_error("%s provider failed: %s", p->ops->name, ra_strerror(rc));
    return rc;
  }
  /* the provider's kind decides, not the implementation's say-so */
  ev->binds_key = p->binds_key;
  return 0;
}

void ra_quote_provider_set_get_report(ra_quote_provider *p, ra_quote_get_report_fn fn) {
  if (p) p->get_report = fn;
}

int ra_quote_provider_get_report(ra_quote_provider *p, const uint8_t report_data[64],
                                 uint8_t **quote, size_t *len) {
  if (!quote || !len) return -EINVAL;
  *quote = NULL;
  *len = 0;
  if (!p || !report_data) return -EINVAL;
  if (!p->get_report) {
    ra_error("%s provider cannot quote arbitrary report_data", p->ops->name);
    return -ENOTSUP;
  }
  int rc = p->get_report(p->self, report_data, quote, len);
  if (rc == 0 && (!*quote || *len == 0)) {
    free(*quote);
    rc = -EIO;
    ra_error("%s provider returned an empty quote", p->ops->name);
  }
  if (rc) {
    *quote = NULL;
    *len = 0;
    ra_error("%s provider failed: %s", p->ops->name, ra_strerror(rc));
  }
  return rc;
}

const char *ra_quote_provider_name(const ra_quote_provider *p) { return p ? p->ops->name : NULL; }
bool ra_quote_provider_binds_key(const ra_quote_provider *p) { return p && p->binds_key; }
bool ra_quote_provider_simulated(const ra_quote_provider *p) { return p && p->simulated; }

int ra_quote_iat_format(int64_t t, char *out, size_t outlen) {
  struct tm tm;
  time_t tt = (time_t)t;
  if (!out || outlen < 30 || !gmtime_r(&tt, &tm)) return -EINVAL;
  size_t n = strftime(out, outlen, "%Y-%m-%d %H:%M:%S +0000 UTC", &tm);
  return n == 29 ? (int)n : -EINVAL;
}

uint8_t *ra_quote_dup_bytes(const void *p, size_t n) {
  uint8_t *d = malloc(n ? n : 1);
  if (d && n) memcpy(d, p, n);
  return d;
}

int ra_quote_ev_tdx_binding(const uint8_t pub[32], ra_quote_evidence *ev, uint8_t rd[64]) {
  char iat[32];
  int n = ra_quote_iat_format((int64_t)time(NULL), iat, sizeof iat);
  if (n < 0) {
    ra_error("cannot format the current time");
    return -EIO;
  }
  ev->val = malloc(NONCE_LEN);
  ev->iat = ra_quote_dup_bytes(iat, (size_t)n);
  ev->runtime_data = ra_quote_dup_bytes(pub, 32);
  /* no one here can sign for Intel Trust Authority: an empty signature,
     * still a valid pointer so that encoders may memcpy from it */
  ev->signature = ra_quote_dup_bytes("", 0);
  if (!ev->val || !ev->iat || !ev->runtime_data || !ev->signature) return -ENOMEM;
  ev->val_len = NONCE_LEN;
  ev->iat_len = (size_t)n;
  ev->runtime_data_len = 32;
  ev->has_verifier_data = true;
  if (RAND_bytes(ev->val, NONCE_LEN) != 1) {
    ra_error("no randomness for the verifier nonce");
    return -EIO;
  }
  return ra_sim_tdx_binding(ev->val, ev->val_len, ev->iat, ev->iat_len, pub, rd);
}

int ra_quote_read_decoded(const char *path, size_t max, const char *noun, uint8_t **out,
                          size_t *len) {
  uint8_t *raw = NULL;
  size_t rawlen = 0;
  int rc = ra_file_read(path, max, &raw, &rawlen);
  if (rc) {
    ra_error("cannot read %s %s: %s", noun, path, ra_strerror(rc));
    return rc;
  }
  ra_encoding enc;
  rc = ra_decode_auto(raw, rawlen, out, len, &enc);
  free(raw);
  if (rc) {
    ra_error("%s %s: malformed hex/base64", noun, path);
    return rc == -ENOMEM ? rc : -EINVAL;
  }
  return 0;
}

/* ---- file ------------------------------------------------------------- */

typedef struct file_prov {
  uint8_t *quote;
  size_t len;
} file_prov;

static int file_get(void *self, const uint8_t pub[32], ra_quote_evidence *ev) {
  (void)pub;
  file_prov *f = self;
  ev->quote = ra_quote_dup_bytes(f->quote, f->len);
  if (!ev->quote) return -ENOMEM;
  ev->quote_len = f->len;
  /* no verifier_data / runtime_data: nothing binds the key, and saying
     * null is more honest than data that would fail the check */
  return 0;
}

static void file_free(void *self) {
  file_prov *f = self;
  free(f->quote);
  free(f);
}

static int file_get_report(void *self, const uint8_t rd[64], uint8_t **quote, size_t *len) {
  (void)rd; /* a fixed quote: its report_data is whatever it was made for */
  file_prov *f = self;
  if (!(*quote = ra_quote_dup_bytes(f->quote, f->len))) return -ENOMEM;
  *len = f->len;
  return 0;
}

static const ra_quote_provider_ops file_ops = {"file", file_get, file_free};

int ra_quote_provider_file(const char *path, ra_quote_provider **out) {
  if (!out) return -EINVAL;
  *out = NULL;
  if (!path) return -EINVAL;
  uint8_t *dec = NULL;
  size_t declen = 0;
  int rc = ra_quote_read_decoded(path, 4 * QUOTE_MAX, "quote file", &dec, &declen);
  if (rc) return rc;
  /* refuse what does not parse as a DCAP quote now rather than serve
     * garbage to every client; trailing padding (some providers pad) is
     * served as it was read */
  ra_quote q;
  int prc = ra_quote_parse(dec, declen, &q);
  if (prc) {
    free(dec);
    ra_error("quote file %s: not an SGX/TDX quote (%zu bytes): %s", path, declen,
            ra_strerror(prc));
    return -EINVAL;
  }
  file_prov *f = malloc(sizeof *f);
  if (!f) {
    free(dec);
    return -ENOMEM;
  }
  f->quote = dec;
  f->len = declen;
  int nrc = ra_quote_provider_new(&file_ops, f, false, false, out);
  if (nrc == 0) ra_quote_provider_set_get_report(*out, file_get_report);
  return nrc;
}

/* ---- sim -------------------------------------------------------------- */

static int sim_get(void *self, const uint8_t pub[32], ra_quote_evidence *ev) {
  uint8_t rd[64];
  int rc = ra_quote_ev_tdx_binding(pub, ev, rd);
  if (rc) return rc;
  rc = ra_sim_quote(self, NULL, rd, &ev->quote, &ev->quote_len);
  if (rc) ra_error("simulated TEE: quote generation failed: %s", ra_strerror(rc));
  return rc;
}

static void sim_free(void *self) { ra_sim_free(self); }

static int sim_get_report(void *self, const uint8_t rd[64], uint8_t **quote, size_t *len) {
  int rc = ra_sim_quote(self, NULL, rd, quote, len);
  if (rc) ra_error("simulated TEE: quote generation failed: %s", ra_strerror(rc));
  return rc;
}

static const ra_quote_provider_ops sim_ops = {"sim", sim_get, sim_free};

int ra_quote_provider_sim(const char *dir, ra_quote_provider **out) {
  if (!out) return -EINVAL;
  *out = NULL;
  if (!dir) return -EINVAL;
  ra_sim *s = NULL;
  int rc = ra_sim_open(dir, &s);
  if (rc) {
    ra_error("simulated TEE in %s: %s", dir,
            rc == -EINVAL ? "corrupt or mismatched key bundle" : ra_strerror(rc));
    return rc;
  }
  int nrc = ra_quote_provider_new(&sim_ops, s, true, true, out);
  if (nrc == 0) ra_quote_provider_set_get_report(*out, sim_get_report);
  return nrc;
}

const char *ra_quote_provider_sim_root(const ra_quote_provider *p) {
  return p && p->ops == &sim_ops ? ra_sim_root_pem_path(p->self) : NULL;
}

const char *ra_quote_provider_snp_sim_dir(const ra_quote_provider *p) {
  return p ? ra_snp_provider_sim_dir(p->ops, p->self) : NULL;
}

/* ---- tsm -------------------------------------------------------------- */

typedef struct tsm_prov {
  char *root, *entry;
  unsigned counter;
} tsm_prov;

static int write_file(const char *path, const void *data, size_t len) {
  int fd = open(path, O_WRONLY | O_TRUNC | O_CLOEXEC); /* configfs attributes exist: never create */
  if (fd < 0) return -errno;
  const uint8_t *p = data;
  int rc = 0;
  while (len) {
    ssize_t w = write(fd, p, len);
    if (w < 0) {
      if (errno == EINTR) continue;
      rc = -errno;
      break;
    }
    p += w;
    len -= (size_t)w;
  }
  if (close(fd) != 0 && !rc) rc = -errno;
  return rc;
}

/* Reads a small text attribute (generation, provider); -ENOENT when the
 * attribute does not exist. */
static int read_attr(const char *path, char *out, size_t outlen) {
  uint8_t *b = NULL;
  size_t n = 0;
  int rc = ra_file_read(path, 4096, &b, &n);
  if (rc) return rc;
  while (n && (b[n - 1] == '\n' || b[n - 1] == ' ')) n--;
  if (n >= outlen) n = outlen - 1;
  memcpy(out, b, n);
  out[n] = '\0';
  free(b);
  return 0;
}

/* The quote must carry the report_data we asked for: a stale outblob (a
 * concurrent writer on a shared entry) must never reach a client. */
static int tdx_report_data_matches(const uint8_t *q, size_t len, const uint8_t rd[64]) {
  if (len < 48) return 0;
  unsigned version = q[0] | (unsigned)q[1] << 8;
  uint32_t tee = q[4] | (uint32_t)q[5] << 8 | (uint32_t)q[6] << 16 | (uint32_t)q[7] << 24;
  if (tee != 0x81) return 0;
  size_t off;
  if (version == 4)
    off = 48 + 520;
  else if (version == 5)
    off = 48 + 6 + 520; /* body type and size precede the TD report */
  else
    return 0;
  return len >= off + 64 && CRYPTO_memcmp(q + off, rd, 64) == 0;
}

/* One configfs-tsm round. With pub, the evidence for that key: the binding
 * of the guest's kind (the entry's provider attribute: "tdx_guest", or
 * "sev_guest" for SEV-SNP, whose auxblob then gives the certificates);
 * without, a bare quote over rd_in (get_report). ev is cleared on failure. */
/* The SEV-SNP report's report_data (offset 0x50) is the one written. */
static int snp_report_data_matches(const uint8_t *r, size_t len, const uint8_t rd[64]) {
  return len == RA_SNP_REPORT_LEN && CRYPTO_memcmp(r + 0x50, rd, 64) == 0;
}

static int tsm_once(tsm_prov *t, const uint8_t *pub, const uint8_t *rd_in, ra_quote_evidence *ev) {
  char dir[4096], path[4200], attr[128], g1[64], g2[64];
  uint8_t rd[64];
  bool created = false, snp = false;
  int rc;
  struct stat st;
  if (stat(t->root, &st) != 0 || !S_ISDIR(st.st_mode)) {
    ra_error("configfs-tsm not available: %s does not exist (not a TDX or SEV-SNP guest, kernel without "
            "CONFIG_TSM_REPORTS, or configfs not mounted)",
            t->root);
    return -ENODEV;
  }
  if (t->entry) {
    if ((size_t)snprintf(dir, sizeof dir, "%s/%s", t->root, t->entry) >= sizeof dir)
      return -ENAMETOOLONG;
    if (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode)) {
      ra_error("configfs-tsm entry %s does not exist", dir);
      return -ENOENT;
    }
  } else {
    if ((size_t)snprintf(dir, sizeof dir, "%s/raloop-%ld-%u", t->root, (long)getpid(),
                         t->counter++) >= sizeof dir)
      return -ENAMETOOLONG;
    if (mkdir(dir, 0700) != 0) {
      rc = -errno;
      ra_error("cannot create configfs-tsm entry %s: %s%s", dir, ra_strerror(rc),
              rc == -EACCES || rc == -EPERM ? " (needs root, or an entry made for this service)"
                                            : "");
      return rc;
    }
    created = true;
  }

  snprintf(path, sizeof path, "%s/provider", dir);
  rc = read_attr(path, attr, sizeof attr);
  if (rc == 0 && strcmp(attr, "sev_guest") == 0) {
    snp = true;
  } else if (rc == 0 && strcmp(attr, "tdx_guest") != 0) {
    ra_error("configfs-tsm provider \"%s\" is not supported (tdx_guest and sev_guest are)", attr);
    rc = -ENOTSUP;
    goto out;
  }
  if (pub) {
    rc = snp ? ra_snp_ev_binding(pub, ev, rd) : ra_quote_ev_tdx_binding(pub, ev, rd);
    if (rc) goto out;
  } else {
    memcpy(rd, rd_in, 64);
  }
  snprintf(path, sizeof path, "%s/inblob", dir);
  rc = write_file(path, rd, 64);
  if (rc) {
    ra_error("cannot write %s: %s", path, ra_strerror(rc));
    goto out;
  }
  /* generation counts inblob writes: equal before and after reading outblob
     * means no one else wrote inblob in between */
  snprintf(path, sizeof path, "%s/generation", dir);
  int have_gen = read_attr(path, g1, sizeof g1) == 0;
  snprintf(path, sizeof path, "%s/outblob", dir);
  rc = ra_file_read(path, QUOTE_MAX, &ev->quote, &ev->quote_len);
  if (rc) {
    ra_error("cannot read %s: %s", path, ra_strerror(rc));
    goto out;
  }
  if (have_gen) {
    snprintf(path, sizeof path, "%s/generation", dir);
    if (read_attr(path, g2, sizeof g2) != 0 || strcmp(g1, g2) != 0) {
      ra_error("configfs-tsm entry %s was written concurrently", dir);
      rc = -EAGAIN;
      goto out;
    }
  }
  if (ev->quote_len == 0) {
    ra_error("configfs-tsm returned an empty quote");
    rc = -EIO;
    goto out;
  }
  if (snp ? !snp_report_data_matches(ev->quote, ev->quote_len, rd)
          : !tdx_report_data_matches(ev->quote, ev->quote_len, rd)) {
    ra_error("configfs-tsm outblob is not a %s for the report_data written",
             snp ? "SEV-SNP report" : "TDX quote");
    rc = -EPROTO;
    goto out;
  }
  if (snp && pub) {
    /* the certificate table the host gave with this report: read in the
     * same round, so that it goes with this outblob */
    uint8_t *aux = NULL;
    size_t aux_len = 0;
    snprintf(path, sizeof path, "%s/auxblob", dir);
    rc = ra_file_read(path, QUOTE_MAX, &aux, &aux_len);
    if (rc && rc != -ENOENT) {
      ra_error("cannot read %s: %s", path, ra_strerror(rc));
      goto out;
    }
    rc = ra_snp_ev_certs_from_table(aux, aux_len, ev); /* logs why */
    free(aux);
  }
out:
  if (rc) ra_quote_evidence_clear(ev);
  if (created) rmdir(dir); /* best effort: configfs removes the attributes with it */
  return rc;
}

static int tsm_get(void *self, const uint8_t pub[32], ra_quote_evidence *ev) {
  int rc = -EAGAIN;
  for (int i = 0; i < TSM_RETRIES && rc == -EAGAIN; i++) rc = tsm_once(self, pub, NULL, ev);
  return rc;
}

static void tsm_free(void *self) {
  tsm_prov *t = self;
  free(t->root);
  free(t->entry);
  free(t);
}

static int tsm_get_report(void *self, const uint8_t rd[64], uint8_t **quote, size_t *len) {
  ra_quote_evidence ev;
  memset(&ev, 0, sizeof ev);
  int rc = -EAGAIN;
  for (int i = 0; i < TSM_RETRIES && rc == -EAGAIN; i++) rc = tsm_once(self, NULL, rd, &ev);
  if (rc == 0) {
    *quote = ev.quote; /* tsm_once fills only the quote */
    *len = ev.quote_len;
  }
  return rc;
}

static const ra_quote_provider_ops tsm_ops = {"tsm", tsm_get, tsm_free};

bool ra_tsm_available(const char *root) {
  struct stat st;
  return stat(root ? root : RA_TSM_DEFAULT_ROOT, &st) == 0 && S_ISDIR(st.st_mode);
}

int ra_quote_provider_tsm(const char *root, const char *entry, ra_quote_provider **out) {
  if (!out) return -EINVAL;
  *out = NULL;
  if (!root) root = RA_TSM_DEFAULT_ROOT;
  if (entry && (!*entry || strchr(entry, '/') || !strcmp(entry, ".") || !strcmp(entry, ".."))) {
    ra_error("bad configfs-tsm entry name \"%s\"", entry);
    return -EINVAL;
  }
  if (!ra_tsm_available(root)) {
    ra_error("configfs-tsm not available: %s does not exist (not a TDX or SEV-SNP guest, kernel without "
            "CONFIG_TSM_REPORTS, or configfs not mounted)",
            root);
    return -ENODEV;
  }
  tsm_prov *t = calloc(1, sizeof *t);
  if (!t) return -ENOMEM;
  t->root = strdup(root);
  t->entry = entry ? strdup(entry) : NULL;
  if (!t->root || (entry && !t->entry)) {
    tsm_free(t);
    return -ENOMEM;
  }
  int nrc = ra_quote_provider_new(&tsm_ops, t, true, false, out);
  if (nrc == 0) ra_quote_provider_set_get_report(*out, tsm_get_report);
  return nrc;
}

/* ---- auto ------------------------------------------------------------- */

int ra_quote_provider_auto(const char *sim_dir, ra_quote_provider **out) {
  if (!out) return -EINVAL;
  *out = NULL;
  if (ra_tsm_available(NULL)) return ra_quote_provider_tsm(NULL, NULL, out);
  char defdir[4096];
  if (!sim_dir) {
    int drc = ra_sim_default_dir(defdir, sizeof defdir);
    if (drc) {
      ra_error("no directory for the simulated TEE (set HOME or XDG_STATE_HOME)");
      return drc;
    }
    sim_dir = defdir;
  }
  int rc = ra_quote_provider_sim(sim_dir, out);
  /* said here, once, so that no caller of auto can forget to say it */
  if (rc == 0)
    ra_warn("WARNING: no TEE available (configfs-tsm absent at " RA_TSM_DEFAULT_ROOT
            "): using the SIMULATED TEE. Simulated attestation proves NOTHING about this "
            "machine; only clients that explicitly trust the simulated root will connect.");
  return rc;
}

int ra_quote_provider_open(const char *spec, const char *sim_dir, ra_quote_provider **out) {
  *out = NULL;
  if (!spec || strcmp(spec, "auto") == 0) return ra_quote_provider_auto(sim_dir, out);
  if (strcmp(spec, "sim") == 0) return ra_quote_provider_sim(sim_dir, out);
  if (strcmp(spec, "tsm") == 0) return ra_quote_provider_tsm(NULL, NULL, out);
  if (strncmp(spec, "tsm:", 4) == 0 && spec[4]) { /* tsm:ROOT or tsm:ROOT,ENTRY */
    const char *comma = strchr(spec + 4, ',');
    char *root = strndup(spec + 4, comma ? (size_t)(comma - (spec + 4)) : strlen(spec + 4));
    if (!root) return -ENOMEM;
    int rc = ra_quote_provider_tsm(root, comma ? comma + 1 : NULL, out);
    free(root);
    return rc;
  }
  if (strncmp(spec, "file:", 5) == 0 && spec[5]) return ra_quote_provider_file(spec + 5, out);
  if (strcmp(spec, "dstack") == 0) return ra_quote_provider_dstack(NULL, out);
  if (strcmp(spec, "sim-snp") == 0) {
    char defdir[4096];
    if (!sim_dir) {
      int drc = ra_quote_sim_snp_default_dir(defdir, sizeof defdir);
      if (drc) {
        ra_error("no directory for the simulated SEV-SNP TEE (set HOME or XDG_STATE_HOME)");
        return drc;
      }
      sim_dir = defdir;
    }
    return ra_quote_provider_sim_snp(sim_dir, out);
  }
  if (strncmp(spec, "sim-snp:", 8) == 0 && spec[8]) return ra_quote_provider_sim_snp(spec + 8, out);
  if (strncmp(spec, "snp-file:", 9) == 0) {
    const char *comma = strchr(spec + 9, ',');
    if (!comma || comma == spec + 9 || !comma[1]) {
      ra_error("quote provider: snp-file:REPORT,CERTS (the report, and a PEM file with its VCEK "
               "[ASK, ARK] or AMD's certificate table)");
      return -EINVAL;
    }
    char *rep = strndup(spec + 9, (size_t)(comma - (spec + 9)));
    if (!rep) return -ENOMEM;
    int rc = ra_quote_provider_snp_file(rep, comma + 1, out);
    free(rep);
    return rc;
  }
  if (strncmp(spec, "dstack:", 7) == 0 && spec[7]) return ra_quote_provider_dstack(spec + 7, out);
  ra_error("quote provider: '%s' is none of auto, sim, tsm[:ROOT[,ENTRY]], file:PATH, dstack[:SOCKET], "
           "sim-snp[:DIR], snp-file:REPORT,CERTS", spec);
  return -EINVAL;
}
