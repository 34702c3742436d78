/* attest/quote/snp_report.c: decoding the SEV-SNP attestation report.
 * Offsets are those of the SEV-SNP ABI specification (rev. 1.55+, table
 * "ATTESTATION_REPORT structure"); every read is at a fixed offset below
 * RA_SNP_REPORT_LEN, and the length is checked before any of them. */
#include "raloop/attest/quote/snp_report.h"

#include <errno.h>
#include <string.h>

#include <openssl/evp.h>

#include "raloop/core/error.h"

enum {
  OFF_VERSION = 0x00,
  OFF_GUEST_SVN = 0x04,
  OFF_POLICY = 0x08,
  OFF_FAMILY_ID = 0x10,
  OFF_IMAGE_ID = 0x20,
  OFF_VMPL = 0x30,
  OFF_SIG_ALGO = 0x34,
  OFF_CURRENT_TCB = 0x38,
  OFF_PLATFORM_INFO = 0x40,
  OFF_FLAGS = 0x48,
  OFF_REPORT_DATA = 0x50,
  OFF_MEASUREMENT = 0x90,
  OFF_HOST_DATA = 0xC0,
  OFF_ID_KEY_DIGEST = 0xE0,
  OFF_AUTHOR_KEY_DIGEST = 0x110,
  OFF_REPORT_ID = 0x140,
  OFF_REPORT_ID_MA = 0x160,
  OFF_REPORTED_TCB = 0x180,
  OFF_CPUID_FAM = 0x188, /* v3+: family, model, stepping */
  OFF_CHIP_ID = 0x1A0,
  OFF_COMMITTED_TCB = 0x1E0,
  OFF_CURRENT_VER = 0x1E8, /* build, minor, major, reserved */
  OFF_COMMITTED_VER = 0x1EC,
  OFF_LAUNCH_TCB = 0x1F0,
  OFF_LAUNCH_MIT = 0x1F8,  /* v5 */
  OFF_CURRENT_MIT = 0x200, /* v5 */
  OFF_SIG_R = 0x2A0,
  OFF_SIG_S = 0x2E8,
};

_Static_assert(OFF_SIG_R == RA_SNP_REPORT_BODY_LEN, "signature follows the body");
_Static_assert(OFF_SIG_S + 72 <= RA_SNP_REPORT_LEN, "signature inside the report");

static uint32_t le32(const uint8_t *p) {
  return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint64_t le64(const uint8_t *p) { return (uint64_t)le32(p) | (uint64_t)le32(p + 4) << 32; }

static bool all_zero(const uint8_t *p, size_t n) {
  uint8_t acc = 0;
  for (size_t i = 0; i < n; i++) acc |= p[i];
  return acc == 0;
}

const char *ra_snp_product_name(ra_snp_product p) {
  switch (p) {
  case RA_SNP_PRODUCT_MILAN:
    return "Milan";
  case RA_SNP_PRODUCT_GENOA:
    return "Genoa";
  case RA_SNP_PRODUCT_TURIN:
    return "Turin";
  default:
    return "unknown";
  }
}

void ra_snp_tcb_decode(uint64_t raw, ra_snp_product p, ra_snp_tcb *out) {
  memset(out, 0, sizeof *out);
  out->raw = raw;
  uint8_t b[8];
  for (int i = 0; i < 8; i++) b[i] = (uint8_t)(raw >> (8 * i));
  if (p == RA_SNP_PRODUCT_TURIN) {
    out->fmc = b[0];
    out->bootloader = b[1];
    out->tee = b[2];
    out->snp = b[3];
  } else {
    out->bootloader = b[0];
    out->tee = b[1];
    out->snp = b[6];
  }
  out->microcode = b[7];
}

bool ra_snp_report_detect(const uint8_t *buf, size_t len) {
  if (!buf || len != RA_SNP_REPORT_LEN) return false;
  uint32_t v = le32(buf + OFF_VERSION);
  return v >= RA_SNP_MIN_VERSION && v <= RA_SNP_MAX_VERSION;
}

int ra_snp_report_parse(const uint8_t *buf, size_t len, ra_snp_report *out) {
  if (!out) return -EINVAL;
  memset(out, 0, sizeof *out);
  if (!buf && len) return -EINVAL;
  if (len < RA_SNP_REPORT_LEN) return RA_ERR_QUOTE_TRUNCATED;
  if (len > RA_SNP_REPORT_LEN) return RA_ERR_QUOTE_MALFORMED;
  ra_snp_report r;
  memset(&r, 0, sizeof r);
  r.raw = buf;
  r.version = le32(buf + OFF_VERSION);
  if (r.version < RA_SNP_MIN_VERSION || r.version > RA_SNP_MAX_VERSION)
    return RA_ERR_QUOTE_UNSUPPORTED;
  r.sig_algo = le32(buf + OFF_SIG_ALGO);
  if (r.sig_algo != RA_SNP_SIG_ALGO_ECDSA_P384_SHA384) return RA_ERR_QUOTE_UNSUPPORTED;
  r.guest_svn = le32(buf + OFF_GUEST_SVN);
  r.policy = le64(buf + OFF_POLICY);
  r.family_id = buf + OFF_FAMILY_ID;
  r.image_id = buf + OFF_IMAGE_ID;
  r.vmpl = le32(buf + OFF_VMPL);
  r.current_tcb = le64(buf + OFF_CURRENT_TCB);
  r.platform_info = le64(buf + OFF_PLATFORM_INFO);
  r.flags = le32(buf + OFF_FLAGS);
  r.author_key_en = r.flags & 1u;
  r.mask_chip_key = (r.flags >> 1) & 1u;
  r.signing_key = (ra_snp_signing_key)((r.flags >> 2) & 7u);
  r.report_data = buf + OFF_REPORT_DATA;
  r.measurement = buf + OFF_MEASUREMENT;
  r.host_data = buf + OFF_HOST_DATA;
  r.id_key_digest = buf + OFF_ID_KEY_DIGEST;
  r.author_key_digest = buf + OFF_AUTHOR_KEY_DIGEST;
  r.report_id = buf + OFF_REPORT_ID;
  r.report_id_ma = buf + OFF_REPORT_ID_MA;
  r.reported_tcb = le64(buf + OFF_REPORTED_TCB);
  if (r.version >= 3) {
    r.has_cpuid = true;
    r.cpuid_family = buf[OFF_CPUID_FAM];
    r.cpuid_model = buf[OFF_CPUID_FAM + 1];
    r.cpuid_stepping = buf[OFF_CPUID_FAM + 2];
  }
  r.chip_id = buf + OFF_CHIP_ID;
  r.committed_tcb = le64(buf + OFF_COMMITTED_TCB);
  r.current_build = buf[OFF_CURRENT_VER];
  r.current_minor = buf[OFF_CURRENT_VER + 1];
  r.current_major = buf[OFF_CURRENT_VER + 2];
  r.committed_build = buf[OFF_COMMITTED_VER];
  r.committed_minor = buf[OFF_COMMITTED_VER + 1];
  r.committed_major = buf[OFF_COMMITTED_VER + 2];
  r.launch_tcb = le64(buf + OFF_LAUNCH_TCB);
  if (r.version >= 5) {
    r.launch_mit_vector = le64(buf + OFF_LAUNCH_MIT);
    r.current_mit_vector = le64(buf + OFF_CURRENT_MIT);
  }
  r.sig_r = buf + OFF_SIG_R;
  r.sig_s = buf + OFF_SIG_S;
  /* r and s are 48-byte P-384 scalars in 72-byte fields: the padding is
   * zero, so that one report has one encoding (no malleable bytes). */
  if (!all_zero(r.sig_r + 48, 24) || !all_zero(r.sig_s + 48, 24)) return RA_ERR_QUOTE_MALFORMED;
  *out = r;
  return 0;
}

ra_snp_product ra_snp_report_product(const ra_snp_report *r) {
  if (!r || !r->has_cpuid) return RA_SNP_PRODUCT_UNKNOWN;
  if (r->cpuid_family == 0x19) {
    if (r->cpuid_model <= 0x0f) return RA_SNP_PRODUCT_MILAN;
    if ((r->cpuid_model >= 0x10 && r->cpuid_model <= 0x1f) ||
        (r->cpuid_model >= 0xa0 && r->cpuid_model <= 0xaf))
      return RA_SNP_PRODUCT_GENOA;
    return RA_SNP_PRODUCT_UNKNOWN;
  }
  if (r->cpuid_family == 0x1a) return RA_SNP_PRODUCT_TURIN;
  return RA_SNP_PRODUCT_UNKNOWN;
}

int ra_snp_binding(const uint8_t *nonce, size_t nonce_len, const uint8_t x25519_pub[32],
                   uint8_t report_data[64]) {
  if (!report_data) return -EINVAL;
  memset(report_data, 0, 64);
  if (!x25519_pub || (!nonce && nonce_len)) return -EINVAL;
  EVP_MD_CTX *c = EVP_MD_CTX_new();
  if (!c) return -ENOMEM;
  unsigned n = 0;
  int ok = EVP_DigestInit_ex(c, EVP_sha512(), NULL) &&
           (nonce_len == 0 || EVP_DigestUpdate(c, nonce, nonce_len)) &&
           EVP_DigestUpdate(c, x25519_pub, 32) && EVP_DigestFinal_ex(c, report_data, &n) && n == 64;
  EVP_MD_CTX_free(c);
  if (!ok) {
    memset(report_data, 0, 64);
    return -EIO;
  }
  return 0;
}
