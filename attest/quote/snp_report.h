/* attest/quote/snp_report.h: the AMD SEV-SNP attestation report (versions
 * 2 to 5), as the AMD Secure Processor signs it (SEV-SNP ABI specification,
 * "ATTESTATION_REPORT structure"): exactly 1184 bytes, a 672-byte body
 * signed with ECDSA P-384 / SHA-384 by the VCEK (or VLEK), the signature
 * stored as little-endian r and s in 72-byte fields.
 *
 * Parsing is pure and bounds-checked: the parser reads nothing outside
 * [0, 1184) and refuses any other length. It does not verify anything (see
 * snp_verify.h); it only decodes the fields into a view that borrows the
 * caller's buffer.
 *
 * Usage:
 *   ra_snp_report r;
 *   if (ra_snp_report_parse(buf, len, &r) == 0) printf("vmpl %u\n", r.vmpl);
 */
#ifndef RA_ATTEST_SNP_REPORT_H
#define RA_ATTEST_SNP_REPORT_H

#include "raloop/core/api.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define RA_SNP_REPORT_LEN                 1184
#define RA_SNP_REPORT_BODY_LEN            672 /* the signed part */
#define RA_SNP_MIN_VERSION                2
#define RA_SNP_MAX_VERSION                5
#define RA_SNP_SIG_ALGO_ECDSA_P384_SHA384 1

/* Guest policy bits (the policy the guest owner launched with). */
#define RA_SNP_POLICY_SMT               (1ull << 16) /* SMT allowed */
#define RA_SNP_POLICY_RESERVED1         (1ull << 17) /* must be 1 */
#define RA_SNP_POLICY_MIGRATE_MA        (1ull << 18) /* a migration agent may be associated */
#define RA_SNP_POLICY_DEBUG             (1ull << 19) /* debugging allowed: the host can read the guest */
#define RA_SNP_POLICY_SINGLE_SOCKET     (1ull << 20)
#define RA_SNP_POLICY_CXL_ALLOW         (1ull << 21)
#define RA_SNP_POLICY_MEM_AES_256_XTS   (1ull << 22)
#define RA_SNP_POLICY_RAPL_DIS          (1ull << 23)
#define RA_SNP_POLICY_CIPHERTEXT_HIDING (1ull << 24)
#define RA_SNP_POLICY_PAGE_SWAP_DISABLE (1ull << 25)

/* Platform info bits (the state of the machine when the report was made). */
#define RA_SNP_PLATFORM_SMT_EN               (1ull << 0)
#define RA_SNP_PLATFORM_TSME_EN              (1ull << 1)
#define RA_SNP_PLATFORM_ECC_EN               (1ull << 2)
#define RA_SNP_PLATFORM_RAPL_DIS             (1ull << 3)
#define RA_SNP_PLATFORM_CIPHERTEXT_HIDING_EN (1ull << 4)
#define RA_SNP_PLATFORM_ALIAS_CHECK_COMPLETE (1ull << 5)

/* Which key signed the report (bits 2-4 of the flags word at 0x48). */
typedef enum ra_snp_signing_key {
  RA_SNP_KEY_VCEK = 0,
  RA_SNP_KEY_VLEK = 1,
  RA_SNP_KEY_NONE = 7,
} ra_snp_signing_key;

/* A TCB version, decoded. The 8-byte encoding depends on the CPU: Milan and
 * Genoa (family 19h) store bl, tee, 4 reserved, snp, ucode; Turin (family
 * 1Ah) stores fmc, bl, tee, snp, 3 reserved, ucode. `raw` is the little-
 * endian 64-bit value as stored. */
typedef struct ra_snp_tcb {
  uint64_t raw;
  uint8_t fmc; /* Turin only; 0 on older parts */
  uint8_t bootloader;
  uint8_t tee;
  uint8_t snp;
  uint8_t microcode;
} ra_snp_tcb;

/* The product a TCB layout belongs to (only the layout differs). */
typedef enum ra_snp_product {
  RA_SNP_PRODUCT_UNKNOWN = 0,
  RA_SNP_PRODUCT_MILAN,
  RA_SNP_PRODUCT_GENOA,
  RA_SNP_PRODUCT_TURIN,
} ra_snp_product;

/* "Milan", "Genoa", "Turin", "unknown". */
RA_API const char *ra_snp_product_name(ra_snp_product p);

/* Decodes raw (as stored) with the layout of product p (UNKNOWN is read as
 * Milan/Genoa, the layout of every part before Turin). */
RA_API void ra_snp_tcb_decode(uint64_t raw, ra_snp_product p, ra_snp_tcb *out);

/* The parsed report. Pointers borrow the caller's buffer (valid while it
 * is); integers are host order. Fields a version does not define are zero
 * (cpuid_* before v3, *_mit_vector before v5). */
typedef struct ra_snp_report {
  const uint8_t *raw; /* the whole report, RA_SNP_REPORT_LEN bytes */
  uint32_t version;
  uint32_t guest_svn;
  uint64_t policy;
  const uint8_t *family_id; /* 16 */
  const uint8_t *image_id;  /* 16 */
  uint32_t vmpl;
  uint32_t sig_algo;
  uint64_t current_tcb, reported_tcb, committed_tcb, launch_tcb; /* raw, see ra_snp_tcb_decode */
  uint64_t platform_info;
  uint32_t flags; /* bit 0 author_key_en, bit 1 mask_chip_key, bits 2-4 signing key */
  bool author_key_en;
  bool mask_chip_key;
  ra_snp_signing_key signing_key;
  const uint8_t *report_data;                        /* 64 */
  const uint8_t *measurement;                        /* 48 */
  const uint8_t *host_data;                          /* 32 */
  const uint8_t *id_key_digest;                      /* 48 */
  const uint8_t *author_key_digest;                  /* 48 */
  const uint8_t *report_id;                          /* 32 */
  const uint8_t *report_id_ma;                       /* 32 */
  bool has_cpuid;                                    /* v3+ */
  uint8_t cpuid_family, cpuid_model, cpuid_stepping; /* extended family/model as CPUID reports */
  const uint8_t *chip_id;                            /* 64 */
  uint8_t current_build, current_minor, current_major;
  uint8_t committed_build, committed_minor, committed_major;
  uint64_t launch_mit_vector, current_mit_vector; /* v5 */
  const uint8_t *sig_r, *sig_s;                   /* 72 each, little-endian, zero-padded */
} ra_snp_report;

/* Parses buf[0..len). Returns 0; RA_ERR_QUOTE_TRUNCATED (len < 1184);
 * RA_ERR_QUOTE_MALFORMED (len > 1184: trailing bytes, or a signature whose
 * padding bytes 48..71 of r or s are not zero); RA_ERR_QUOTE_UNSUPPORTED
 * (version outside 2..5, or a signature algorithm other than 1, ECDSA
 * P-384 with SHA-384); -EINVAL for NULL arguments. *out is zeroed first and
 * filled only on success. */
RA_API int ra_snp_report_parse(const uint8_t *buf, size_t len, ra_snp_report *out);

/* Whether buf looks like an SNP report (exact length, version 2..5) rather
 * than an Intel DCAP quote; for tools that take either. */
RA_API bool ra_snp_report_detect(const uint8_t *buf, size_t len);

/* The product this report comes from, from its CPUID fields (v3+): family
 * 19h models 00h-0Fh Milan, 10h-1Fh and A0h-AFh Genoa, family 1Ah Turin;
 * RA_SNP_PRODUCT_UNKNOWN for v2 or anything else. */
RA_API ra_snp_product ra_snp_report_product(const ra_snp_report *r);

/* The key binding of the reference tunnel (teekit's client,
 * `isSevSnpX25519Bound`): report_data = SHA-512(nonce || x25519_pub), the
 * nonce being the byte string server_kx carries in verifier_data. Returns
 * 0, or -ENOMEM/-EIO (out is then zeroed, matching nothing). nonce may be
 * NULL when nonce_len is 0. */
RA_API int ra_snp_binding(const uint8_t *nonce, size_t nonce_len, const uint8_t x25519_pub[32],
                          uint8_t report_data[64]);

#endif
