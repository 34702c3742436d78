/* apps/secrets/own.h: a program's own attested key (server and client).
 *
 * A fresh P-256 key whose public half is bound into a quote from the
 * program's TEE (ra_quote_provider_open spec: sim, tsm, dstack[:SOCKET],
 * file:PATH, auto), in one of the two forms of the protocol:
 *   cert    an RA-TLS certificate in dstack's convention (ratls.h:
 *           report_data = SHA-512("ratls-cert:" || SPKI)); with the dstack
 *           provider it carries the CVM's event log (from the agent's Info
 *           tcb_info), so that the peer can replay RTMR3 and read the app id
 *   bundle  the quote itself, report_data = SHA-512(SEC_TAG_KEY || SPKI),
 *           with the key's SPKI
 * Blocking (the provider may talk to the agent): call before the loop runs. */
#ifndef RA_APPS_SECRETS_OWN_H
#define RA_APPS_SECRETS_OWN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <openssl/evp.h>

typedef struct sec_own {
  EVP_PKEY *key;
  uint8_t *spki;
  size_t spki_len;
  char *cert_pem, *key_pem; /* cert form */
  uint8_t cert_hash[32];    /* cert form: SHA-256 of the certificate's DER */
  uint8_t *quote;           /* bundle form */
  size_t quote_len;
  char *event_log; /* dstack: the JSON array; NULL otherwise */
  bool simulated, is_dstack;
  const char *provider; /* static: "sim", "dstack", ... */
} sec_own;

/* 0, or -1 with why in err. */
int sec_own_make(const char *spec, const char *sim_dir, bool want_cert, const char *common_name,
                 sec_own *out, char *err, size_t errlen);
void sec_own_clear(sec_own *o);

/* The socket of a "dstack[:SOCKET]" spec, NULL for other specs. */
const char *sec_dstack_socket(const char *spec);

#endif
