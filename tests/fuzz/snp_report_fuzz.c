/* tests/fuzz/snp_report_fuzz.c: the SEV-SNP report parser, the VCEK
 * extension parser and the whole SNP verification on arbitrary bytes
 * and the certificate table parser (seeds: GCP's reports and VCEK,
 * tests/vectors/snp, and a certificate table). Checks that every
 * view the parser returns lies inside the input and that verification
 * gives a verdict whatever the input. The verifier gets GCP's real VCEK
 * and Milan chain at a time inside their validity, so that mutated reports
 * reach the extension match and the signature check. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "raloop/attest/quote/snp_cert_table.h"
#include "raloop/attest/quote/snp_report.h"
#include "raloop/attest/quote/snp_vcek.h"
#include "raloop/attest/quote/snp_verify.h"
#include "raloop/core/file.h"

static ra_snp_verifier *g_v;
static uint8_t *g_vcek, *g_chain;
static size_t g_vcek_len, g_chain_len;

static void load(const char *name, uint8_t **out, size_t *len) {
  char path[512];
  const char *dir = getenv("RA_VECTORS") ? getenv("RA_VECTORS") : RA_VECTORS_DIR;
  snprintf(path, sizeof path, "%s/snp/%s", dir, name);
  if (ra_file_read(path, 1 << 20, out, len) != 0) abort();
}

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerInitialize(int *argc, char ***argv) {
  (void)argc;
  (void)argv;
  if (ra_snp_verifier_new(0, &g_v) != 0) abort();
  load("sev-gcp-vcek.pem", &g_vcek, &g_vcek_len);
  load("sev-gcp-cert-chain.pem", &g_chain, &g_chain_len);
  return 0;
}

static void inside(const uint8_t *p, size_t n, const uint8_t *buf, size_t len) {
  if (!p && !n) return; /* absent */
  if (!p || p < buf || p + n > buf + len) abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  /* the parser sees exactly the input (a copy, so ASan bounds it) */
  uint8_t *buf = malloc(size ? size : 1);
  if (!buf) return 0;
  memcpy(buf, data, size);
  ra_snp_report r;
  if (ra_snp_report_parse(buf, size, &r) == 0) {
    if (size != RA_SNP_REPORT_LEN || r.version < 2 || r.version > 5) abort();
    inside(r.family_id, 16, buf, size);
    inside(r.image_id, 16, buf, size);
    inside(r.report_data, 64, buf, size);
    inside(r.measurement, 48, buf, size);
    inside(r.host_data, 32, buf, size);
    inside(r.id_key_digest, 48, buf, size);
    inside(r.author_key_digest, 48, buf, size);
    inside(r.report_id, 32, buf, size);
    inside(r.report_id_ma, 32, buf, size);
    inside(r.chip_id, 64, buf, size);
    inside(r.sig_r, 72, buf, size);
    inside(r.sig_s, 72, buf, size);
    (void)ra_snp_report_product(&r);
  }
  (void)ra_snp_report_detect(buf, size);

  /* verification with the real chain: the first 1184 bytes as the report */
  ra_snp_verify_opts o = {.at = 1768435200,
                          .vcek = g_vcek,
                          .vcek_len = g_vcek_len,
                          .ask = g_chain,
                          .ask_len = g_chain_len};
  ra_snp_policy p = {.signature_only = true};
  ra_snp_verdict vd;
  size_t rl = size < RA_SNP_REPORT_LEN ? size : RA_SNP_REPORT_LEN;
  ra_snp_verify(g_v, buf, rl, &o, &p, &vd);
  if (vd.err == 0 && (vd.checks[RA_SNP_CHECK_REPORT_SIG] != RA_CHECK_PASS)) abort();

  /* the rest (or all of it) as a certificate for the extension parser and
   * as the VCEK of a verification */
  const uint8_t *cert = size > RA_SNP_REPORT_LEN ? buf + RA_SNP_REPORT_LEN : buf;
  size_t cl = size > RA_SNP_REPORT_LEN ? size - RA_SNP_REPORT_LEN : size;
  ra_snp_vcek_info info;
  if (cl && ra_snp_vcek_parse(cert, cl, &info) == 0) {
    if (info.hwid_len > 64 ||
        strnlen(info.product_name, sizeof info.product_name) >= sizeof info.product_name)
      abort();
  }
  /* and as a certificate table: every view inside the input */
  ra_snp_cert_table ct;
  if (ra_snp_cert_table_parse(buf, size, &ct) == 0) {
    inside(ct.vcek, ct.vcek_len, buf, size);
    inside(ct.vlek, ct.vlek_len, buf, size);
    inside(ct.ask, ct.ask_len, buf, size);
    inside(ct.ark, ct.ark_len, buf, size);
    inside(ct.crl, ct.crl_len, buf, size);
  }
  if (size > RA_SNP_REPORT_LEN) {
    o.vcek = cert;
    o.vcek_len = cl;
    ra_snp_verify(g_v, buf, RA_SNP_REPORT_LEN, &o, &p, &vd);
  }
  free(buf);
  return 0;
}
