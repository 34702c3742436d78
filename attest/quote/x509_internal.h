/* attest/quote/x509_internal.h: decoding certificates (PEM/DER blobs as
 * quotes and collateral files carry them), a cache of decoded ones, and the
 * few facts about a certificate the checks need. Private to attest/quote. */
#ifndef RA_ATTEST_X509_INTERNAL_H
#define RA_ATTEST_X509_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include <openssl/x509.h>

#include "raloop/attest/quote/der_internal.h"
#include "raloop/attest/quote/pck.h"

/* More certificates than this in one blob is not a PCK chain. */
#define RA_MAX_CHAIN_CERTS 8
#define RA_CERT_CACHE_SIZE 32

/* Decoded certificates by exact DER bytes. OpenSSL 3.0 spends ~80 us
 * decoding one certificate (its public key goes through the provider
 * decoders); every quote of a platform repeats the same intermediate and
 * root, and a client often sees the same leaf again. Only parsing is cached
 * here (the verifier also memoises PCK paths validated with these objects:
 * ra_chain_memo, chain_internal.h). Zero-initialised it is
 * empty and on; off = true decodes every certificate anew. */
struct ra_roots;
typedef struct ra_cert_cache {
  struct ra_cert_entry {
    uint8_t *der;
    size_t len;
    X509 *x;
  } entries[RA_CERT_CACHE_SIZE];
  unsigned next;
  bool off;
  /* Keep CA certificates only (RA_VERIFIER_CACHE_CA_ONLY): the root and
   * intermediates every platform shares stay decoded, each leaf is decoded
   * anew (as a quote of a platform never seen before would be). */
  bool ca_only;
  /* The verifier's pinned roots (may be NULL): a certificate with exactly
   * the DER bytes of a pinned root is that root's object, never decoded
   * again, whether the cache is on or off (each DER decoded once: the root
   * a quote carries is the one pinned). */
  const struct ra_roots *pinned;
} ra_cert_cache;

void ra_cert_cache_clear(ra_cert_cache *c);

/* A certificate not to decode while parsing: the first one whose DER is
 * exactly der[0..len) is left out of the stack, and `at` says where it
 * was (its index in the blob; -1: absent). For the Intel root in
 * collateral issuer chains, which the verifier supplies later (its pinned
 * object) without decoding it anew. */
typedef struct ra_cert_defer {
  const uint8_t *der;
  size_t len;
  int at;
} ra_cert_defer;

/* Parses a blob of certificates: PEM blocks and/or concatenated DER, with
 * whitespace and NUL padding between them (Intel's type-5 data is PEM with a
 * trailing NUL; its sample TDX quote is DER). At least one and at most
 * RA_MAX_CHAIN_CERTS certificates, else NULL (also on ENOMEM). cache may be
 * NULL. The caller frees the stack with sk_X509_pop_free(.., X509_free). */
STACK_OF(X509) * ra_certs_parse(ra_cert_cache *cache, const uint8_t *data, size_t len);
/* The same, leaving out the certificate d names (d may be NULL; a blob that
 * holds only that certificate gives an empty stack, not NULL). */
STACK_OF(X509) * ra_certs_parse_defer(ra_cert_cache *cache, const uint8_t *data, size_t len,
                                      ra_cert_defer *d);

/* The certificates of a blob as ra_certs_parse reads it (same grammar),
 * as DER spans, decoding none: DER ones point into data, PEM ones into
 * buf[0..cap) where their base64 is decoded (cap >= len suffices). Returns
 * the count (1..max), or -EBADMSG (malformed, more than max, buf full). */
int ra_certs_split(const uint8_t *data, size_t len, uint8_t *buf, size_t cap, ra_der_span *out,
                   int max);

/* A new reference to the decoded certificate with exactly these DER bytes
 * when the verifier holds one (a pinned root, or one in the cache when it
 * is on), else NULL: nothing is decoded. *pinned (when not NULL): whether
 * it is a pinned root. */
X509 *ra_cert_cache_lookup(ra_cert_cache *c, const uint8_t *der, size_t len, bool *pinned);

/* The DER of the Intel SGX Root CA compiled in (intel_root.c), decoded
 * into out (at least 2048 bytes); its length, 0 on failure. */
size_t ra_intel_root_der(uint8_t *out, size_t cap);

/* The leaf: the one certificate that issued none of the others; NULL when
 * there are two such (not one path). */
X509 *ra_certs_leaf(STACK_OF(X509) * sk);

bool ra_cert_self_issued(X509 *x);
/* One-line subject ("/C=US/O=Intel..."), "?" when it cannot be printed. */
void ra_cert_subject_line(X509 *x, char *out, size_t n);
/* 0 when t is NULL or does not parse. */
time_t ra_asn1_time_to_unix(const ASN1_TIME *t);

/* The SGX extensions of a PCK leaf (extension oid, RA_PCK_SGX_EXT_OID).
 * Returns 0, -ENOENT (absent), -EINVAL (present twice or malformed). */
int ra_cert_pck_ext(X509 *leaf, const ASN1_OBJECT *oid, ra_pck_info *out);

#endif
