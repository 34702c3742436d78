/* attest/quote/snp_vcek.c: AMD's VCEK/VLEK extensions, and their match
 * with the report they sign. */
#include "raloop/attest/quote/snp_vcek.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include <openssl/asn1.h>
#include <openssl/err.h>
#include <openssl/x509.h>

#include "raloop/attest/quote/snp_internal.h"
#include "raloop/core/error.h"

#define AMD_PREFIX "1.3.6.1.4.1.3704.1."

/* The extension's value (a DER INTEGER) as 0..255, -1 if malformed. */
static int spl_of(const ASN1_OCTET_STRING *os) {
  const unsigned char *p = ASN1_STRING_get0_data(os);
  ASN1_INTEGER *i = d2i_ASN1_INTEGER(NULL, &p, ASN1_STRING_length(os));
  int v = -1;
  int64_t l = -1;
  if (i && p == ASN1_STRING_get0_data(os) + ASN1_STRING_length(os) &&
      ASN1_INTEGER_get_int64(&l, i) && l >= 0 && l <= 255)
    v = (int)l;
  ASN1_INTEGER_free(i);
  return v;
}

/* an IA5String value into out (NUL-terminated); false if malformed or
 * too long */
static bool ia5_of(const ASN1_OCTET_STRING *os, char *out, size_t n) {
  const unsigned char *p = ASN1_STRING_get0_data(os);
  ASN1_IA5STRING *s = d2i_ASN1_IA5STRING(NULL, &p, ASN1_STRING_length(os));
  bool ok = s && p == ASN1_STRING_get0_data(os) + ASN1_STRING_length(os) &&
            (size_t)ASN1_STRING_length(s) < n;
  if (ok) {
    const unsigned char *d = ASN1_STRING_get0_data(s);
    int len = ASN1_STRING_length(s);
    for (int i = 0; i < len; i++)
      if (d[i] < 0x20 || d[i] > 0x7e) ok = false; /* printable: it ends up in messages */
    if (ok) {
      memcpy(out, d, (size_t)len);
      out[len] = '\0';
    }
  }
  ASN1_IA5STRING_free(s);
  return ok;
}

static ra_snp_product product_of(const char *name) {
  static const struct {
    const char *prefix;
    ra_snp_product p;
  } k[] = {{"Milan", RA_SNP_PRODUCT_MILAN},
           {"Genoa", RA_SNP_PRODUCT_GENOA},
           {"Turin", RA_SNP_PRODUCT_TURIN}};
  for (size_t i = 0; i < sizeof k / sizeof k[0]; i++) {
    size_t n = strlen(k[i].prefix);
    if (strncmp(name, k[i].prefix, n) == 0 && (name[n] == '\0' || name[n] == '-')) return k[i].p;
  }
  return RA_SNP_PRODUCT_UNKNOWN;
}

int ra_snp_vcek_ext(X509 *x, ra_snp_vcek_info *out) {
  memset(out, 0, sizeof *out);
  out->struct_version = -1;
  enum { F_VER, F_NAME, F_BL, F_TEE, F_SNP, F_UCODE, F_FMC, F_HWID, F_CSP, F__N };
  bool seen[F__N] = {0};
  int n = X509_get_ext_count(x);
  for (int i = 0; i < n; i++) {
    X509_EXTENSION *e = X509_get_ext(x, i);
    char oid[64];
    if (OBJ_obj2txt(oid, sizeof oid, X509_EXTENSION_get_object(e), 1) <= 0) continue;
    if (strncmp(oid, AMD_PREFIX, sizeof AMD_PREFIX - 1) != 0) continue;
    const char *s = oid + sizeof AMD_PREFIX - 1;
    const ASN1_OCTET_STRING *os = X509_EXTENSION_get_data(e);
    int f = -1, v = 0;
    if (!strcmp(s, "1"))
      f = F_VER;
    else if (!strcmp(s, "2"))
      f = F_NAME;
    else if (!strcmp(s, "3.1"))
      f = F_BL;
    else if (!strcmp(s, "3.2"))
      f = F_TEE;
    else if (!strcmp(s, "3.3"))
      f = F_SNP;
    else if (!strcmp(s, "3.8"))
      f = F_UCODE;
    else if (!strcmp(s, "3.9"))
      f = F_FMC;
    else if (!strcmp(s, "4"))
      f = F_HWID;
    else if (!strcmp(s, "5"))
      f = F_CSP;
    if (f < 0) continue; /* spl_4..7 (reserved) and anything newer */
    if (seen[f]) return -EINVAL;
    seen[f] = true;
    switch (f) {
    case F_VER:
      if ((v = spl_of(os)) < 0) return -EINVAL;
      out->struct_version = v;
      break;
    case F_NAME:
      if (!ia5_of(os, out->product_name, sizeof out->product_name)) return -EINVAL;
      break;
    case F_CSP:
      if (!ia5_of(os, out->csp_id, sizeof out->csp_id)) return -EINVAL;
      out->is_vlek = true;
      break;
    case F_HWID: {
      /* AMD puts the raw bytes in the extension (64; 8 on Turin); a DER
       * OCTET STRING around them is accepted too */
      const unsigned char *p = ASN1_STRING_get0_data(os);
      int len = ASN1_STRING_length(os);
      if (len == 64 || len == 8) {
        out->hwid_len = (size_t)len;
        memcpy(out->hwid, p, (size_t)len);
        break;
      }
      ASN1_OCTET_STRING *h = d2i_ASN1_OCTET_STRING(NULL, &p, len);
      bool ok = h && p == ASN1_STRING_get0_data(os) + len && ASN1_STRING_length(h) > 0 &&
                ASN1_STRING_length(h) <= 64;
      if (ok) {
        out->hwid_len = (size_t)ASN1_STRING_length(h);
        memcpy(out->hwid, ASN1_STRING_get0_data(h), out->hwid_len);
      }
      ASN1_OCTET_STRING_free(h);
      if (!ok) return -EINVAL;
      break;
    }
    default:
      if ((v = spl_of(os)) < 0) return -EINVAL;
      if (f == F_BL) out->tcb.bootloader = (uint8_t)v;
      if (f == F_TEE) out->tcb.tee = (uint8_t)v;
      if (f == F_SNP) out->tcb.snp = (uint8_t)v;
      if (f == F_UCODE) out->tcb.microcode = (uint8_t)v;
      if (f == F_FMC) {
        out->tcb.fmc = (uint8_t)v;
        out->has_fmc = true;
      }
    }
  }
  ERR_clear_error();
  if (!seen[F_NAME] || !seen[F_BL] || !seen[F_TEE] || !seen[F_SNP] || !seen[F_UCODE])
    return -ENOENT;
  if (!out->is_vlek && !out->hwid_len) return -EINVAL;
  out->product = product_of(out->product_name);
  return 0;
}

int ra_snp_vcek_parse(const uint8_t *cert, size_t len, ra_snp_vcek_info *out) {
  if (!cert || !out) return -EINVAL;
  memset(out, 0, sizeof *out);
  STACK_OF(X509) *sk = ra_snp_certs_parse(cert, len);
  if (!sk) return -EINVAL;
  int rc = sk_X509_num(sk) == 1 ? ra_snp_vcek_ext(sk_X509_value(sk, 0), out) : -EINVAL;
  sk_X509_pop_free(sk, X509_free);
  return rc;
}

static bool all_zero(const uint8_t *p, size_t n) {
  uint8_t a = 0;
  for (size_t i = 0; i < n; i++) a |= p[i];
  return a == 0;
}

void ra_snp_vcek_match(const ra_snp_report *r, const ra_snp_vcek_info *info, ra_snp_verdict *vd) {
  const ra_snp_check C = RA_SNP_CHECK_VCEK_EXT;
  if (info->product == RA_SNP_PRODUCT_UNKNOWN) {
    ra_snp_fail(vd, C, RA_ERR_PCK_EXTENSION, "unknown product name \"%s\" in the VCEK",
                info->product_name);
    return;
  }
  ra_snp_product rp = ra_snp_report_product(r);
  if (rp != RA_SNP_PRODUCT_UNKNOWN && rp != info->product) {
    ra_snp_fail(vd, C, RA_ERR_PCK_EXTENSION, "the report comes from a %s CPU, the VCEK is for %s",
                ra_snp_product_name(rp), info->product_name);
    return;
  }
  if (r->signing_key == RA_SNP_KEY_VCEK && info->is_vlek) {
    ra_snp_fail(vd, C, RA_ERR_PCK_EXTENSION,
                "the report says VCEK-signed, the certificate is a VLEK");
    return;
  }
  if (r->signing_key == RA_SNP_KEY_VLEK && !info->is_vlek) {
    ra_snp_fail(vd, C, RA_ERR_PCK_EXTENSION,
                "the report says VLEK-signed, the certificate is a VCEK");
    return;
  }
  if (r->signing_key != RA_SNP_KEY_VCEK && r->signing_key != RA_SNP_KEY_VLEK) {
    ra_snp_fail(vd, C, RA_ERR_PCK_EXTENSION, "the report is signed by no endorsement key (%u)",
                (unsigned)r->signing_key);
    return;
  }
  ra_snp_tcb t;
  ra_snp_tcb_decode(r->reported_tcb, info->product, &t);
  if (t.bootloader != info->tcb.bootloader || t.tee != info->tcb.tee || t.snp != info->tcb.snp ||
      t.microcode != info->tcb.microcode ||
      (info->product == RA_SNP_PRODUCT_TURIN && t.fmc != info->tcb.fmc)) {
    ra_snp_fail(
        vd, C, RA_ERR_PCK_EXTENSION,
        "reported_tcb (bl %u tee %u snp %u ucode %u fmc %u) is not the VCEK's (bl %u tee %u "
        "snp %u ucode %u fmc %u)",
        t.bootloader, t.tee, t.snp, t.microcode, t.fmc, info->tcb.bootloader, info->tcb.tee,
        info->tcb.snp, info->tcb.microcode, info->tcb.fmc);
    return;
  }
  if (!info->is_vlek) {
    /* Turin's hwID is 8 bytes: the chip_id then holds it followed by zeros */
    if (r->mask_chip_key || memcmp(info->hwid, r->chip_id, info->hwid_len) != 0 ||
        !all_zero(r->chip_id + info->hwid_len, 64 - info->hwid_len)) {
      ra_snp_fail(vd, C, RA_ERR_PCK_EXTENSION, "the report's chip_id is not the VCEK's hwID%s",
                  r->mask_chip_key ? " (masked by the guest)" : "");
      return;
    }
  }
  ra_snp_pass(vd, C);
}
