/* core/error.c: names and descriptions of raloop's error codes. */
#include "raloop/core/error.h"

#include <string.h>

/* The last RA_ERR_* code: the table below must grow with the enum. */
#define RA_ERR_LAST RA_ERR_HOST_UNKNOWN
#define N_RA_CODES  (RA_ERR_BASE - RA_ERR_LAST)

/* Indexed by RA_ERR_BASE - code, so that codes and rows cannot drift. The
 * quote parser's three descriptions are the texts its results always had
 * (ra-quote prints them). */
#define ROW(code, desc) [RA_ERR_BASE - (code)] = {#code, desc}
static const char *const RA_CODES[N_RA_CODES + 1][2] = {
    ROW(RA_ERR_QUOTE_TRUNCATED, "quote truncated: a field runs past the end of the input"),
    ROW(RA_ERR_QUOTE_MALFORMED, "quote malformed: inconsistent lengths or types"),
    ROW(RA_ERR_QUOTE_UNSUPPORTED,
        "quote unsupported: version, attestation key type, TEE type or body type"),
    ROW(RA_ERR_QE_VENDOR, "QE vendor is not Intel"),
    ROW(RA_ERR_NO_PCK_CHAIN, "no PCK certificate chain"),
    ROW(RA_ERR_CERT_PARSE, "a certificate does not parse"),
    ROW(RA_ERR_CHAIN_BROKEN, "PCK chain is not a single path"),
    ROW(RA_ERR_ROOT_UNTRUSTED, "chain does not end at a pinned root"),
    ROW(RA_ERR_CHAIN_SIGNATURE, "certificate signature invalid"),
    ROW(RA_ERR_CERT_EXPIRED, "certificate expired"),
    ROW(RA_ERR_CERT_NOT_YET_VALID, "certificate not yet valid"),
    ROW(RA_ERR_CHAIN_INVALID, "certificate chain invalid"),
    ROW(RA_ERR_CRL_SIGNATURE, "CRL signature invalid (forged CRL)"),
    ROW(RA_ERR_CRL_EXPIRED, "CRL not valid at the verification time"),
    ROW(RA_ERR_CERT_REVOKED, "certificate revoked"),
    ROW(RA_ERR_PCK_EXTENSION, "PCK SGX extensions missing or malformed"),
    ROW(RA_ERR_QE_REPORT_SIGNATURE, "QE report signature invalid"),
    ROW(RA_ERR_QE_REPORT_DATA, "QE report does not bind the attestation key"),
    ROW(RA_ERR_ATT_KEY, "attestation key invalid"),
    ROW(RA_ERR_QUOTE_SIGNATURE, "quote signature invalid"),
    ROW(RA_ERR_POLICY_EMPTY, "policy checks nothing"),
    ROW(RA_ERR_DEBUG, "debug enclave/TD refused"),
    ROW(RA_ERR_MEASUREMENT, "measurements not accepted"),
    ROW(RA_ERR_BINDING, "report_data does not bind the key"),
    ROW(RA_ERR_CALLBACK, "refused by the policy callback"),
    ROW(RA_ERR_INTERNAL, "internal error"),
    ROW(RA_ERR_QE_DEBUG, "quoting enclave is a debug enclave"),
    ROW(RA_ERR_COLLATERAL_PARSE, "collateral malformed"),
    ROW(RA_ERR_COLLATERAL_SIGNATURE, "collateral signature or issuer chain invalid"),
    ROW(RA_ERR_COLLATERAL_EXPIRED, "collateral not valid at the verification time"),
    ROW(RA_ERR_COLLATERAL_MISMATCH, "collateral is not for this platform (id, FMSPC, PCE ID)"),
    ROW(RA_ERR_QE_IDENTITY, "quoting enclave does not match Intel's QE identity"),
    ROW(RA_ERR_TCB_NOT_SUPPORTED, "TCB not supported: no TCB level matches"),
    ROW(RA_ERR_TDX_MODULE, "TDX module identity does not match the TCB info"),
    ROW(RA_ERR_TCB_STATUS, "TCB status not accepted by the policy"),
    ROW(RA_ERR_TCB_REVOKED, "TCB revoked"),
    ROW(RA_ERR_TD_ATTRIBUTES, "TD attributes refused"),
    ROW(RA_ERR_CRL_MISSING, "CRLs do not cover every CA of the chain"),
    ROW(RA_ERR_COLLATERAL_UNAVAILABLE, "the collateral could not be obtained (PCCS/PCS)"),
    ROW(RA_ERR_TLS_HANDSHAKE, "TLS handshake failed"),
    ROW(RA_ERR_TLS_CERT, "TLS peer certificate refused"),
    ROW(RA_ERR_TLS_TIMEOUT, "TLS handshake timed out"),
    ROW(RA_ERR_TLS, "TLS error"),
    ROW(RA_ERR_TLS_CONFIG, "TLS configuration error (certificate or key)"),
    ROW(RA_ERR_HOST_UNKNOWN, "host name does not resolve"),
};
#undef ROW

/* The row of a raloop code, NULL for anything else. */
static const char *const *ra_code_row(int code) {
  if (code >= RA_ERR_BASE || code < RA_ERR_LAST) return NULL;
  const char *const *row = RA_CODES[RA_ERR_BASE - code];
  return row[0] ? row : NULL;
}

/* errno values are positive below the kernel's limit of 4095. */
static int errno_of(int code) { return code < 0 && code > RA_ERR_BASE ? -code : 0; }

const char *ra_strerror(int code) {
  if (code == 0) return "success";
  const char *const *row = ra_code_row(code);
  if (row) return row[1];
  const char *s = errno_of(code) ? strerrordesc_np(errno_of(code)) : NULL;
  return s ? s : "unknown error";
}

const char *ra_err_name(int code) {
  if (code == 0) return "OK";
  const char *const *row = ra_code_row(code);
  if (row) return row[0];
  const char *s = errno_of(code) ? strerrorname_np(errno_of(code)) : NULL;
  return s ? s : "UNKNOWN";
}
