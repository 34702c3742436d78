/* attest/quote/der_internal.h: a strict DER reader for Intel's PCK leaf
 * certificate, the one certificate a quote of a new platform brings that the
 * verifier has not decoded before. OpenSSL 3.0 spends ~1.5 M instructions
 * decoding a certificate (1.05 M of them building a decoder context for its
 * public key); Intel's leaf has one fixed shape, read here in ~7 k.
 *
 * The reader accepts a strict subset of what d2i_X509 + X509_verify_cert
 * (X509_V_FLAG_X509_STRICT) accept: anything outside the shape below is
 * -EBADMSG, and the verifier then takes the full OpenSSL path, which names
 * the failure or accepts an unusual but valid certificate. It never accepts
 * a certificate the full path would refuse (tests/attest/quote/der_test.c
 * checks both paths' verdicts over every PCK certificate in the vectors and
 * mutations of them; tests/fuzz/der_fuzz.c checks that whatever it accepts
 * d2i_X509 decodes to the same fields). The shape:
 *
 *   Certificate: SEQUENCE { tbs, ecdsa-with-SHA256 (no parameters), BIT
 *     STRING (0 unused bits) of a canonical ECDSA-Sig-Value }, nothing after;
 *   tbs: version v3, a positive minimal serial of 1..21 octets (20 and a
 *     0x00), the same algorithm identifier byte for byte, issuer and subject
 *     Names (one attribute per RDN, well-formed OIDs, printable ASCII in
 *     PrintableString/UTF8String/IA5String), validity (UTCTime before 2050,
 *     GeneralizedTime from 2050, "…Z", valid dates), an id-ecPublicKey
 *     P-256 named-curve key as an uncompressed point, no unique ids,
 *     extensions;
 *   extensions, each once, nothing else: authorityKeyIdentifier (keyId only,
 *     required, not critical), subjectKeyIdentifier (not critical),
 *     keyUsage (required; digitalSignature set, keyCertSign clear; canonical
 *     bits), basicConstraints (empty: not a CA), cRLDistributionPoints
 *     (full-name URIs only, not critical), Intel's SGX extension (required,
 *     not critical; its contents read by ra_pck_parse_ext).
 *
 * Whether the point is on the curve, the signature verifies and the issuer
 * is right is for the caller (chain.c); this module only reads bytes. */
#ifndef RA_ATTEST_DER_INTERNAL_H
#define RA_ATTEST_DER_INTERNAL_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

/* A view into the certificate's bytes (valid while they are). */
typedef struct ra_der_span {
  const uint8_t *p;
  size_t len;
} ra_der_span;

/* What the checks need from a PCK leaf; every span points into the DER
 * given to ra_der_pck_leaf and lives as long as it. */
typedef struct ra_pck_leaf {
  ra_der_span tbs;              /* the signed bytes: the whole TBSCertificate TLV */
  ra_der_span serial;           /* the serial's INTEGER TLV (for d2i_ASN1_INTEGER) */
  ra_der_span issuer;           /* the issuer Name TLV, byte for byte */
  ra_der_span subject;          /* the subject Name TLV */
  time_t not_before, not_after; /* as timegm() of the certificate's times */
  uint8_t pub[64];              /* the P-256 public key x || y */
  uint8_t sig[64];              /* the signature r || s, each 32 bytes big-endian */
  ra_der_span akid;             /* authorityKeyIdentifier's keyIdentifier octets */
  ra_der_span skid;             /* subjectKeyIdentifier's octets (len 0: absent) */
  ra_der_span sgx_ext;          /* the SGX extension's value (OCTET STRING contents) */
  unsigned key_usage;           /* as OpenSSL's X509_get_key_usage: KU_* bits */
} ra_pck_leaf;

/* Reads der[0..len) as a PCK leaf of the shape above into out. Returns 0
 * or -EBADMSG (outside the shape: out is then unspecified). */
int ra_der_pck_leaf(const uint8_t *der, size_t len, ra_pck_leaf *out);

/* How many PCK leaves a verifier checked through this reader instead of
 * decoding them (verify.c; for tests that must know which path ran). */
struct ra_verifier;
unsigned ra_verifier_der_leaves(const struct ra_verifier *v);

#endif
