/* core/error.h: raloop's error codes, one space for every layer.
 *
 * A function that can fail returns a negative code: a negative errno value
 * (-ENOMEM, -EINVAL, ...) or one of raloop's own RA_ERR_* codes below, which
 * lie below every errno value (the kernel's errno values stop at 4095, our
 * codes start under RA_ERR_BASE). 0 is success everywhere; there is no OK
 * code. Values never change; new codes are appended (RA_ERR_BASE - 28, ...).
 *
 * Text comes from two functions only: ra_strerror() (a description) and
 * ra_err_name() (a stable identifier). */
#ifndef RA_CORE_ERROR_H
#define RA_CORE_ERROR_H

#include "raloop/core/api.h"

#define RA_ERR_BASE (-4000)

/* Quote verification (attest/quote): the first failed check of a verdict.
 * The quote parser returns the first three. */
enum {
  RA_ERR_QUOTE_TRUNCATED = RA_ERR_BASE - 1,     /* a field runs past the end of the input */
  RA_ERR_QUOTE_MALFORMED = RA_ERR_BASE - 2,     /* inconsistent lengths/types */
  RA_ERR_QUOTE_UNSUPPORTED = RA_ERR_BASE - 3,   /* version, key type, TEE, body or cert data type */
  RA_ERR_QE_VENDOR = RA_ERR_BASE - 4,           /* QE vendor id is not Intel's */
  RA_ERR_NO_PCK_CHAIN = RA_ERR_BASE - 5,        /* no chain in the quote and none supplied */
  RA_ERR_CERT_PARSE = RA_ERR_BASE - 6,          /* a certificate of the chain does not parse */
  RA_ERR_CHAIN_BROKEN = RA_ERR_BASE - 7,        /* no single leaf, or no path from the leaf to a root */
  RA_ERR_ROOT_UNTRUSTED = RA_ERR_BASE - 8,      /* the chain ends at a root that is not pinned */
  RA_ERR_CHAIN_SIGNATURE = RA_ERR_BASE - 9,     /* a certificate's signature does not verify */
  RA_ERR_CERT_EXPIRED = RA_ERR_BASE - 10,       /* a certificate expired before the verification time */
  RA_ERR_CERT_NOT_YET_VALID = RA_ERR_BASE - 11, /* a certificate is not valid yet at that time */
  RA_ERR_CHAIN_INVALID = RA_ERR_BASE - 12,      /* another X.509 path failure (RFC 5280 strict), or
                                                   not the shape leaf -> CA -> root with an
                                                   end-entity leaf */
  RA_ERR_CRL_SIGNATURE = RA_ERR_BASE - 13, /* a CRL names an issuer of the chain but its signature
                                              fails (forged) */
  RA_ERR_CRL_EXPIRED = RA_ERR_BASE - 14,   /* outside thisUpdate..nextUpdate, no nextUpdate, bad time */
  RA_ERR_CERT_REVOKED = RA_ERR_BASE - 15,  /* a certificate of the chain is revoked */
  RA_ERR_PCK_EXTENSION = RA_ERR_BASE - 16, /* PCK leaf SGX extensions missing or malformed */
  RA_ERR_QE_REPORT_SIGNATURE = RA_ERR_BASE - 17, /* the QE report is not signed by the PCK key */
  RA_ERR_QE_REPORT_DATA = RA_ERR_BASE - 18,      /* QE report_data != SHA-256(att key || QE auth
                                                    data) || 0^32 */
  RA_ERR_ATT_KEY = RA_ERR_BASE - 19,             /* attestation key is not a P-256 point */
  RA_ERR_QUOTE_SIGNATURE = RA_ERR_BASE - 20,     /* header+body not signed by the attestation key */
  RA_ERR_POLICY_EMPTY = RA_ERR_BASE - 21,        /* the policy checks nothing (or an empty set) */
  RA_ERR_DEBUG = RA_ERR_BASE - 22,               /* debug enclave / debug TD and allow_debug is off */
  RA_ERR_MEASUREMENT = RA_ERR_BASE - 23,         /* no accepted measurement set matches */
  RA_ERR_BINDING = RA_ERR_BASE - 24,             /* report_data does not bind the X25519 key */
  RA_ERR_CALLBACK = RA_ERR_BASE - 25,            /* the caller's callback refused the quote */
  RA_ERR_INTERNAL = RA_ERR_BASE - 26,            /* out of memory, OpenSSL failure */
  RA_ERR_QE_DEBUG = RA_ERR_BASE - 27,            /* the QE report comes from a debug quoting enclave */
  /* Collateral (TCB info, QE identity, CRLs; attest/quote/collateral.h) */
  RA_ERR_COLLATERAL_PARSE = RA_ERR_BASE - 28,     /* collateral malformed (JSON, hex, PEM, a field) */
  RA_ERR_COLLATERAL_SIGNATURE = RA_ERR_BASE - 29, /* TCB info / QE identity signature or its issuer
                                                     chain fails */
  RA_ERR_COLLATERAL_EXPIRED = RA_ERR_BASE - 30,   /* TCB info / QE identity outside issueDate..
                                                     nextUpdate at the verification time */
  RA_ERR_COLLATERAL_MISMATCH = RA_ERR_BASE - 31,  /* TCB info id/FMSPC/PCE ID or QE identity id not
                                                     the quote's */
  RA_ERR_QE_IDENTITY = RA_ERR_BASE - 32,          /* QE report's MRSIGNER/ISVPRODID/MISCSELECT/
                                                     ATTRIBUTES differ from the QE identity */
  RA_ERR_TCB_NOT_SUPPORTED = RA_ERR_BASE - 33,    /* no TCB level of the TCB info matches */
  RA_ERR_TDX_MODULE = RA_ERR_BASE - 34,           /* TDX module identity (MRSIGNERSEAM, SEAM
                                                     attributes, TDX_xx) does not match */
  RA_ERR_TCB_STATUS = RA_ERR_BASE - 35,           /* the TCB status is not accepted by the policy */
  RA_ERR_TCB_REVOKED = RA_ERR_BASE - 36,          /* the TCB status is Revoked */
  RA_ERR_TD_ATTRIBUTES = RA_ERR_BASE - 37,        /* TD attributes: reserved bits, SEPT_VE_DISABLE,
                                                     MR_SERVICETD refused by the policy */
  RA_ERR_CRL_MISSING = RA_ERR_BASE - 38,          /* the CRLs do not cover every CA of a chain */
  RA_ERR_COLLATERAL_UNAVAILABLE = RA_ERR_BASE - 39, /* the collateral could not be obtained (a
                                                       PCCS/PCS fetch failed) */
  /* TLS on streams (core/tls.h); ra_stream_tls_error() has OpenSSL's reason */
  RA_ERR_TLS_HANDSHAKE = RA_ERR_BASE - 40, /* the TLS handshake failed (protocol version, no
                                              shared cipher or ALPN, not TLS at all...) */
  RA_ERR_TLS_CERT = RA_ERR_BASE - 41,      /* the peer's certificate was refused (chain,
                                              expiry, host name) */
  RA_ERR_TLS_TIMEOUT = RA_ERR_BASE - 42,   /* the TLS handshake did not complete in time */
  RA_ERR_TLS = RA_ERR_BASE - 43,           /* a TLS failure after the handshake (bad record) */
  RA_ERR_TLS_CONFIG = RA_ERR_BASE - 44,    /* a TLS context cannot be built (unreadable or
                                              mismatched certificate/key) */
  /* Connecting (core/stream.h) */
  RA_ERR_HOST_UNKNOWN = RA_ERR_BASE - 45,  /* the host name does not resolve (no such name, or
                                              the resolver failed for now) */
};

/* A description: "success" for 0, the C library's text for -errno
 * ("No such file or directory"), ours for RA_ERR_*, "unknown error" for
 * anything else. Static storage, never NULL. */
RA_API const char *ra_strerror(int code);

/* A stable identifier: "OK" for 0, "ENOENT" for -ENOENT,
 * "RA_ERR_CERT_REVOKED" for RA_ERR_CERT_REVOKED, "UNKNOWN" for anything
 * else. Static storage, never NULL. */
RA_API const char *ra_err_name(int code);

#endif
