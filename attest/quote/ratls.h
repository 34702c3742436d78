/* attest/quote/ratls.h: attested TLS certificates (RA-TLS), dstack's
 * convention (docs/RATLS.md).
 *
 * A certificate whose public key is bound into a TEE quote carried in an
 * X.509 extension, so that a TLS client that checks the quote (instead of,
 * or besides, a CA) knows the key it talks to lives in the attested TEE:
 *
 *   key          ECDSA P-256, fresh for every certificate
 *   report_data  SHA-512("ratls-cert:" || DER SubjectPublicKeyInfo)
 *   1.3.6.1.4.1.62397.1.1  quote      extnValue = DER OCTET STRING(quote)
 *   1.3.6.1.4.1.62397.1.2  event log  extnValue = DER OCTET STRING(JSON
 *                          text, or "ELGZv1" + gzip of it), optional
 *   1.3.6.1.4.1.62397.1.3  app id     extnValue = DER OCTET STRING(bytes),
 *                          optional
 * all non-critical (plain TLS clients, `curl -k`, still connect).
 *
 * Pure: OpenSSL (libcrypto) and the verifier, no loop, no socket. The
 * generating side takes the quote from any ra_quote_provider (sim, tsm,
 * file) through ra_quote_provider_get_report(); the verifying side runs the
 * existing verifier and policy (verify.h) after checking the binding, and
 * names the step that failed. */
#ifndef RA_ATTEST_RATLS_H
#define RA_ATTEST_RATLS_H

#include "raloop/core/api.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "raloop/attest/quote/provider.h"
#include "raloop/attest/quote/verify.h"

/* dstack's OIDs (ra-tls/src/oids.rs of Dstack-TEE/dstack) */
#define RA_RATLS_OID_QUOTE     "1.3.6.1.4.1.62397.1.1"
#define RA_RATLS_OID_EVENT_LOG "1.3.6.1.4.1.62397.1.2"
#define RA_RATLS_OID_APP_ID    "1.3.6.1.4.1.62397.1.3"
/* dstack's newer SCALE-encoded attestation (non-TDX platforms): recognised
 * and reported, not decoded (no quote extension for us) */
#define RA_RATLS_OID_ATTESTATION "1.3.6.1.4.1.62397.1.8"

/* The tag dstack hashes before the key (QuoteContentType::RaTlsCert). */
#define RA_RATLS_REPORT_DATA_TAG "ratls-cert:"

/* Caps on what the parser accepts from a peer (a TDX quote with its PEM
 * chain is ~5 KiB; dstack's event logs run to tens of KiB). */
#define RA_RATLS_MAX_CERT  (1024 * 1024)
#define RA_RATLS_MAX_QUOTE (256 * 1024)

/* report_data for a key: SHA-512(RA_RATLS_REPORT_DATA_TAG || spki_der).
 * Returns 0, -EINVAL, -EIO (OpenSSL). */
RA_API int ra_ratls_report_data(const uint8_t *spki_der, size_t len, uint8_t report_data[64]);

/* ---- generating --------------------------------------------------------- */

typedef struct ra_ratls_cert_opts {
  const char *common_name;        /* NULL: "raloop RA-TLS" */
  const char *const *dns_names;   /* subjectAltName DNS entries; NULL/0: none */
  size_t n_dns_names;
  time_t not_before;              /* 0: now - 1 hour (clock skew) */
  time_t not_after;               /* 0: not_before + validity_days */
  unsigned validity_days;         /* 0: 30 */
  const uint8_t *event_log;       /* optional, copied into 62397.1.2 as is */
  size_t event_log_len;
  const uint8_t *app_id;          /* optional, copied into 62397.1.3 */
  size_t app_id_len;
} ra_ratls_cert_opts;

/* What ra_ratls_generate() made: PEM text, malloc'd, NUL-terminated;
 * release with ra_ratls_cert_clear(). */
typedef struct ra_ratls_cert {
  char *cert_pem;
  size_t cert_pem_len;
  char *key_pem; /* PKCS#8, unencrypted: keep it in memory */
  size_t key_pem_len;
  uint8_t report_data[64];
  /* false when the provider cannot bind a key (file): the quote is carried
     * but its report_data is not ours, and verifiers refuse it unless told
     * to skip the binding */
  bool bound;
} ra_ratls_cert;

RA_API void ra_ratls_cert_clear(ra_ratls_cert *c);

/* Generates a fresh P-256 key, asks the provider for a quote over its
 * report_data and issues a self-signed certificate carrying it (and the
 * options' event log / app id). opts may be NULL. *out is overwritten.
 * Returns 0, -EINVAL, -ENOMEM, -EIO (OpenSSL), or the provider's code
 * (logged). */
RA_API int ra_ratls_generate(ra_quote_provider *p, const ra_ratls_cert_opts *opts,
                             ra_ratls_cert *out);

/* ---- parsing ------------------------------------------------------------ */

/* The RA-TLS content of a certificate. Pointers are malloc'd copies owned
 * by the struct (release with ra_ratls_ext_clear()); NULL when absent; each
 * copy is followed by a NUL byte not counted in its length (the event log
 * is JSON text). */
typedef struct ra_ratls_ext {
  uint8_t *quote;
  size_t quote_len;
  uint8_t *event_log; /* as carried (JSON or ELGZv1+gzip; not inflated) */
  size_t event_log_len;
  uint8_t *app_id;
  size_t app_id_len;
  bool has_attestation; /* 62397.1.8 present */
  uint8_t *attestation; /* its bytes, not decoded (dstack_att.h decodes them) */
  size_t attestation_len;
  uint8_t *spki;        /* DER SubjectPublicKeyInfo of the certificate */
  size_t spki_len;
  time_t not_before, not_after;
} ra_ratls_ext;

RA_API void ra_ratls_ext_clear(ra_ratls_ext *e);

/* Parses a DER certificate (at most RA_RATLS_MAX_CERT bytes) and extracts
 * the extensions above. A certificate without them parses (quote NULL).
 * Returns 0; -EINVAL when the certificate does not parse; -EBADMSG when an
 * RA-TLS extension is not one DER OCTET STRING spanning its value, or
 * appears twice; -E2BIG when the quote exceeds RA_RATLS_MAX_QUOTE; -ENOMEM.
 * Criticality is not looked at (dstack marks none critical). */
RA_API int ra_ratls_parse_der(const uint8_t *der, size_t len, ra_ratls_ext *out);

/* The same from an OpenSSL certificate (X509 *), e.g. the leaf a TLS
 * peer-verify callback receives. The certificate is borrowed. */
struct x509_st;
RA_API int ra_ratls_parse_x509(const struct x509_st *cert, ra_ratls_ext *out);

/* Decodes one extension value: a DER OCTET STRING spanning exactly
 * len bytes (definite length, minimal length octets). *content points into
 * val. Returns 0 or -EBADMSG. Exposed for the fuzzer and for readers of
 * the other dstack extensions. */
RA_API int ra_ratls_octet_string(const uint8_t *val, size_t len, const uint8_t **content,
                                 size_t *content_len);

/* ---- verifying ---------------------------------------------------------- */

/* The step that refused a certificate, in the order they run. */
typedef enum ra_ratls_step {
  RA_RATLS_OK = 0,
  RA_RATLS_STEP_CERT,      /* "certificate": does not parse */
  RA_RATLS_STEP_VALIDITY,  /* "validity": expired or not yet valid */
  RA_RATLS_STEP_NO_QUOTE,  /* "no quote extension" */
  RA_RATLS_STEP_EXTENSION, /* "malformed extension": not an OCTET STRING, too big */
  RA_RATLS_STEP_KEY_NOT_BOUND, /* "key not bound": report_data != SHA-512(tag||SPKI) */
  RA_RATLS_STEP_QUOTE,     /* "quote": the verifier refused (verdict says which check) */
} ra_ratls_step;

RA_API const char *ra_ratls_step_name(ra_ratls_step s);

typedef struct ra_ratls_verify_opts {
  /* Skip the key binding: for quotes that cannot bind a key (the file
     * provider). Insecure: any certificate carrying a copy of the quote
     * passes. The policy must then check something else (measurements). */
  bool skip_binding;
  /* Do not check the certificate's notBefore/notAfter (a TLS stack that
     * already did, with its own time source). */
  bool skip_validity;
} ra_ratls_verify_opts;

typedef struct ra_ratls_result {
  ra_ratls_step step; /* RA_RATLS_OK when accepted */
  char msg[320];      /* why, for a human: "<step>: <detail>" */
  bool quote_ran;     /* vd is filled */
  ra_verdict vd;
  bool bound;         /* the binding was checked and holds */
  bool has_event_log, has_app_id;
  uint8_t app_id[32];
  size_t app_id_len; /* at most 32 copied */
} ra_ratls_result;

/* Verifies a peer certificate: parse, validity (at vopts->at or now),
 * quote extension, binding, then ra_verify_quote(v, quote, vopts, policy).
 * The policy is the caller's as it is, with one addition: when the binding
 * held, it counts as something checked (a policy with no measurement sets
 * is not refused as empty, as with the tunnel's X25519 binding); policy
 * must not set x25519_pub (that is the tunnel's binding: -EINVAL).
 * vopts, ropts may be NULL. Fills *res always. Returns 0 when accepted,
 * -EACCES when refused (res->step, res->msg), -EINVAL for bad arguments. */
RA_API int ra_ratls_verify_der(ra_verifier *v, const uint8_t *der, size_t len,
                               const ra_verify_opts *vopts, const ra_policy *policy,
                               const ra_ratls_verify_opts *ropts, ra_ratls_result *res);
RA_API int ra_ratls_verify_x509(ra_verifier *v, const struct x509_st *cert,
                                const ra_verify_opts *vopts, const ra_policy *policy,
                                const ra_ratls_verify_opts *ropts, ra_ratls_result *res);

#endif
