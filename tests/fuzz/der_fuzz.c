/* tests/fuzz/der_fuzz.c: the strict DER reader of PCK leaves
 * (attest/quote/der.c) on arbitrary bytes (seeds: the PCK leaves of the
 * vectors and of the simulated TEE, as DER). Besides no crash, leak or
 * out-of-bounds read: whatever the reader accepts, d2i_X509 must decode to
 * the same issuer and subject bytes, serial, validity, public key, key
 * usage, authority key id, SGX extension and signed bytes, with no
 * extension OpenSSL finds invalid or critical and unknown, not a CA by
 * OpenSSL's rules — the reader may only accept a subset of what the full
 * verification path would (a mismatch aborts). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "raloop/attest/quote/der_internal.h"
#include "raloop/attest/quote/x509_internal.h"

static void must(int ok) {
  if (!ok) abort();
}

static void same_name(const X509_NAME *n, ra_der_span s) {
  const uint8_t *d;
  size_t l;
  must(X509_NAME_get0_der(n, &d, &l) == 1 && l == s.len && !memcmp(d, s.p, l));
}

static void agrees_with_openssl(const uint8_t *data, size_t size, const ra_pck_leaf *l) {
  const uint8_t *p = data;
  X509 *x = d2i_X509(NULL, &p, (long)size);
  must(x && p == data + size);
  same_name(X509_get_issuer_name(x), l->issuer);
  same_name(X509_get_subject_name(x), l->subject);
  uint8_t *sd = NULL;
  int sn = i2d_ASN1_INTEGER(X509_get_serialNumber(x), &sd);
  must(sn == (int)l->serial.len && !memcmp(sd, l->serial.p, l->serial.len));
  OPENSSL_free(sd);
  must(ra_asn1_time_to_unix(X509_get0_notBefore(x)) == l->not_before);
  must(ra_asn1_time_to_unix(X509_get0_notAfter(x)) == l->not_after);
  uint32_t xf = X509_get_extension_flags(x);
  must(!(xf & (EXFLAG_INVALID | EXFLAG_CRITICAL | EXFLAG_PROXY)));
  must(X509_check_ca(x) == 0);
  must(X509_get_key_usage(x) == l->key_usage);
  const ASN1_OCTET_STRING *ak = X509_get0_authority_key_id(x);
  must(ak && ASN1_STRING_length(ak) == (int)l->akid.len &&
       !memcmp(ASN1_STRING_get0_data(ak), l->akid.p, l->akid.len));
  /* the point: OpenSSL may refuse it (not on the curve: the verifier's key
   * building refuses it too), never read another */
  EVP_PKEY *k = X509_get0_pubkey(x);
  uint8_t pt[65];
  size_t ptl = 0;
  if (k)
    must(EVP_PKEY_get_octet_string_param(k, OSSL_PKEY_PARAM_PUB_KEY, pt, sizeof pt, &ptl) == 1 &&
         ptl == 65 && !memcmp(pt + 1, l->pub, 64));
  ASN1_OBJECT *oid = OBJ_txt2obj(RA_PCK_SGX_EXT_OID, 1);
  int at = X509_get_ext_by_OBJ(x, oid, -1);
  must(at >= 0 && X509_get_ext_by_OBJ(x, oid, at) < 0);
  ASN1_OCTET_STRING *os = X509_EXTENSION_get_data(X509_get_ext(x, at));
  must(ASN1_STRING_length(os) == (int)l->sgx_ext.len &&
       !memcmp(ASN1_STRING_get0_data(os), l->sgx_ext.p, l->sgx_ext.len));
  ASN1_OBJECT_free(oid);
  uint8_t *tbs = NULL;
  int tn = i2d_re_X509_tbs(x, &tbs);
  must(tn == (int)l->tbs.len && !memcmp(tbs, l->tbs.p, l->tbs.len));
  OPENSSL_free(tbs);
  X509_free(x);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  ra_pck_leaf l;
  if (ra_der_pck_leaf(data, size, &l) == 0) agrees_with_openssl(data, size, &l);
  return 0;
}
