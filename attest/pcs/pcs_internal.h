/* attest/pcs/pcs_internal.h: the parsing pieces of attest/pcs/pcs.c that
 * tests drive directly (not installed). */
#ifndef RA_ATTEST_PCS_INTERNAL_H
#define RA_ATTEST_PCS_INTERNAL_H

#include <stdint.h>

#include "raloop/attest/pcs/pcs.h"
#include "raloop/core/buf.h"
#include "raloop/core/str.h"

/* Strict JSON: skips one value starting at *p (whitespace before it too);
 * 0 and *p after it, or -EBADMSG. */
int ra_pcs_json_skip(const char **p, const char *end, int depth);
/* The raw text of member key of the object obj (whole text must be one
 * object, whitespace around allowed): 0, -ENOENT (no such member), -EBADMSG. */
int ra_pcs_json_member(ra_str obj, const char *key, ra_str *raw);
/* Unescapes a raw JSON string (with its quotes) into out (appended). */
int ra_pcs_json_unescape(ra_str raw, ra_buf *out);
/* Appends s as a JSON string, quotes included, escaped as serde_json does. */
int ra_pcs_json_escape(ra_buf *out, ra_str s);

/* "2025-07-19T10:16:03Z" (fraction of seconds allowed) to seconds. */
int ra_pcs_parse_date(ra_str s, int64_t *out);

/* What one PCS answer gives. */
int ra_pcs_split_signed(ra_str body, const char *member, ra_str *signed_body, ra_str *sig_hex);
/* Percent-decodes a header value into out (appended); checks it holds PEM. */
int ra_pcs_decode_chain(ra_str hdr, ra_buf *out);
/* A CRL as served (DER, PEM or hex text) to lowercase hex of its DER;
 * *next_update from it. */
int ra_pcs_crl_to_hex(ra_str body, ra_buf *hex, int64_t *next_update);

/* The nine parts, in document order. */
enum {
  RA_PCS_PCK_CRL_CHAIN, RA_PCS_ROOT_CRL, RA_PCS_PCK_CRL, RA_PCS_TCB_CHAIN, RA_PCS_TCB_INFO,
  RA_PCS_TCB_SIG, RA_PCS_QE_CHAIN, RA_PCS_QE_ID, RA_PCS_QE_SIG, RA_PCS_NPARTS
};
extern const char *const ra_pcs_part_names[RA_PCS_NPARTS];
/* Writes the document (dcap-qvl's layout: two-space indent, no final newline). */
int ra_pcs_doc_write(ra_buf *out, const ra_str parts[RA_PCS_NPARTS]);

#endif
