/* attest/provider.h: quote providers for the tunnel's server_kx.
 *
 * A provider turns the server's X25519 public key into what server_kx
 * carries besides the key (PROTOCOL.md §2, §4): the quote, runtime_data and
 * verifier_data. The tunnel asks once at start-up (one key pair per process,
 * as in the reference); nothing here touches the event loop, and a provider
 * may block (configfs-tsm takes a few milliseconds in the kernel).
 *
 * Binding, as the reference (@teekit/tunnel) does it for TDX: the server's
 * quote source is Intel Trust Authority's `trustauthority-cli evidence
 * --tdx --user-data <key>`, whose JSON gives verifier_nonce {val, iat,
 * signature} and runtime_data; the server forwards them as
 *   verifier_data = {iat: bytes, val: bytes, signature: bytes}
 * (a CBOR map in that key order, each a byte string) and
 *   runtime_data  = the user data (our X25519 public key),
 * and the client checks report_data == SHA-512(val || iat || x25519 key),
 * refusing an absent or empty val or iat. ITA's val is the ASCII base64 text
 * of 64 random bytes, its iat the ASCII time "2025-09-11 21:55:22 +0000 UTC",
 * its signature ITA's RSA signature over the nonce (no client checks it).
 * Our sim and tsm providers produce the same shape: val = 32 fresh random
 * bytes, iat = the current UTC time in ITA's text form, signature = empty
 * (nobody here could sign for ITA), runtime_data = the X25519 key.
 *
 * Providers:
 *   file  a fixed quote read from a file (binary, hex or base64). Its
 *         report_data was made for something else, so it cannot bind our
 *         key: binds_key is false, verifier_data and runtime_data are absent,
 *         and a client has to be told to skip the binding check.
 *   sim   the simulated TEE (attest/sim.h): binds the key; proves nothing
 *         about the machine (is_simulated).
 *   tsm   Linux configfs-tsm (a TDX guest's kernel interface): creates
 *         ROOT/<entry>, writes the 64-byte report_data to inblob, reads
 *         outblob, removes the entry. ROOT defaults to
 *         /sys/kernel/config/tsm/report and is configurable (tests).
 *   dstack the dstack guest agent on its unix socket (dstack.h): binds the
 *         key as tsm does; asked with a blocking request and a deadline.
 *   sim-snp the simulated SEV-SNP TEE (snp_sim.h): reports whose
 *         report_data = SHA-512(nonce || key), nonce 32 fresh bytes, and its
 *         VCEK, ASK and ARK as PEM; simulated.
 *   snp-file a fixed SEV-SNP report and its certificates (a PEM file with
 *         the VCEK and optionally the ASK and ARK, or AMD's binary
 *         certificate table); does not bind the key, as file.
 * tsm serves SEV-SNP guests too: when the entry's `provider` attribute says
 * "sev_guest" (TDX: "tdx_guest"), report_data is the SNP binding, outblob
 * the 1184-byte report and auxblob AMD's certificate table (the VCEK, ASK,
 * ARK the host provides; without a VCEK in it the provider fails: fetching
 * it from AMD's KDS is not done here).
 * Providers of other kinds plug in with ra_quote_provider_new(). */
#ifndef RA_ATTEST_PROVIDER_H
#define RA_ATTEST_PROVIDER_H

#include "raloop/core/api.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "raloop/core/error.h"

#define RA_TSM_DEFAULT_ROOT "/sys/kernel/config/tsm/report"

/* What server_kx carries for one key. All buffers are malloc'd and owned by
 * the struct: release them with ra_quote_evidence_clear(). */
typedef struct ra_quote_evidence {
  uint8_t *quote;
  size_t quote_len;
  /* runtime_data: NULL means CBOR null */
  uint8_t *runtime_data;
  size_t runtime_data_len;
  /* verifier_data {val, iat, signature}: has_verifier_data false means
     * CBOR null. When present, val, iat and signature are non-NULL;
     * signature_len may be 0 (sim, tsm: nothing can sign for ITA). */
  bool has_verifier_data;
  uint8_t *val, *iat, *signature;
  size_t val_len, iat_len, signature_len;
  /* the quote's report_data commits to the X25519 key given */
  bool binds_key;
  /* What `quote` is: an SGX/TDX DCAP quote (RA_QUOTE_TEE_INTEL, 0, what
   * every provider made before SEV-SNP) or an AMD SEV-SNP attestation
   * report (RA_QUOTE_TEE_SNP). For SNP, as the reference server sends it
   * (docs/SEV-SNP.md "Key binding"): runtime_data and verifier_data
   * {val, iat, signature} are absent; verifier_data is the byte string
   * snp_nonce (NULL: CBOR null; the key binding is then
   * report_data == SHA-512(snp_nonce || key)), and sev_snp_data carries the
   * certificates as PEM text (NUL-terminated): vcek_pem (the VCEK or VLEK,
   * required), ask_pem and ark_pem (NULL: null, the client uses its own). */
  int tee;
  uint8_t *snp_nonce;
  size_t snp_nonce_len;
  char *vcek_pem, *ask_pem, *ark_pem;
} ra_quote_evidence;

enum { RA_QUOTE_TEE_INTEL = 0, RA_QUOTE_TEE_SNP = 1 };

RA_API void ra_quote_evidence_clear(ra_quote_evidence *ev);

typedef struct ra_quote_provider ra_quote_provider;

/* The interface: get() fills *ev (zeroed by the caller of get) for the
 * given key or returns a negative code (errno or RA_ERR_*), logging what a
 * human needs beyond it (core/log.h). free_self() releases self (may be
 * NULL). */
typedef struct ra_quote_provider_ops {
  const char *name; /* static: "file", "sim", "tsm", ... */
  int (*get)(void *self, const uint8_t x25519_pub[32], ra_quote_evidence *ev);
  void (*free_self)(void *self);
} ra_quote_provider_ops;

/* Optional second entry point of a provider: a quote whose report_data is
 * exactly the 64 bytes given, for bindings other than the tunnel's (RA-TLS
 * certificates, attest/quote/ratls.h). *quote is malloc'd, owned by the
 * caller on success. sim, tsm and file have one; a custom provider adds
 * its own with ra_quote_provider_set_get_report() (kept out of the ops
 * struct so that existing positional initialisers stay complete). */
typedef int (*ra_quote_get_report_fn)(void *self, const uint8_t report_data[64], uint8_t **quote,
                                      size_t *len);

/* Wraps an implementation. ops must outlive the provider; self is owned by
 * the provider from here on (freed by ops->free_self, also on failure). */
RA_API int ra_quote_provider_new(const ra_quote_provider_ops *ops, void *self, bool binds_key,
                          bool simulated, ra_quote_provider **out);
/* Installs fn (may be NULL) as p's get_report; it is called with p's self. */
RA_API void ra_quote_provider_set_get_report(ra_quote_provider *p, ra_quote_get_report_fn fn);

/* file: reads path now (at most 1 MiB), decoding binary, hex or base64.
 * Errors: -errno from open/read, -EINVAL (undecodable or empty), -ENOMEM.
 * On error *out is NULL and the details (path, why) are logged. */
RA_API int ra_quote_provider_file(const char *path, ra_quote_provider **out);

/* sim: opens the simulated TEE in dir (ra_sim_open); errors as it, logged
 * with the directory. */
RA_API int ra_quote_provider_sim(const char *dir, ra_quote_provider **out);

/* sim-snp: opens the simulated SEV-SNP TEE in dir (ra_snp_sim_open);
 * errors as it, logged with the directory. get_report signs a report over
 * the caller's report_data (not a DCAP quote: RA-TLS verifiers of this
 * project expect Intel's, so SNP RA-TLS is not supported). */
RA_API int ra_quote_provider_sim_snp(const char *dir, ra_quote_provider **out);

/* The default directory of the simulated SEV-SNP TEE:
 * $XDG_STATE_HOME/raloop/sim-snp, else ~/.local/state/raloop/sim-snp.
 * Returns 0, -ENOENT (neither set), -ENAMETOOLONG, -EINVAL. */
RA_API int ra_quote_sim_snp_default_dir(char *out, size_t outlen);

/* snp-file: a fixed SEV-SNP report (binary, hex or base64; it must parse
 * as one) and its certificates: certs is a PEM file with the VCEK (or
 * VLEK) and optionally the ASK and the ARK in any order (told apart by
 * their AMD extensions and self-signature), or AMD's binary certificate
 * table (an auxblob). Errors: -errno (reading), -EINVAL (no report, no
 * VCEK, undecodable), -ENOMEM; logged. */
RA_API int ra_quote_provider_snp_file(const char *report, const char *certs,
                                      ra_quote_provider **out);

/* tsm: root NULL means RA_TSM_DEFAULT_ROOT. entry NULL: a fresh entry
 * "raloop-<pid>-<n>" is created for each report and removed afterwards;
 * otherwise the named entry is used and must already exist (an
 * administrator can create it and hand its files to an unprivileged
 * service). Fails with -ENODEV (and logs why) when root does not exist
 * (not a TDX/SEV-SNP guest, or configfs not mounted), -EINVAL for a bad
 * entry name. */
RA_API int ra_quote_provider_tsm(const char *root, const char *entry, ra_quote_provider **out);

/* Whether configfs-tsm is offered at root (NULL: the default). */
RA_API bool ra_tsm_available(const char *root);

/* auto: tsm at the default root when the kernel offers it, the simulated
 * TEE in sim_dir (NULL: ra_sim_default_dir()) otherwise. Choosing the sim
 * logs a loud warning; ra_quote_provider_simulated() / _name() ("sim",
 * "tsm") tell the caller which one it got. */
RA_API int ra_quote_provider_auto(const char *sim_dir, ra_quote_provider **out);

/* One of the above by name, as programs take it on their command line
 * (--tee): NULL or "auto", "sim" (in sim_dir), "tsm" (the default root),
 * "tsm:ROOT" or "tsm:ROOT,ENTRY" (another configfs-tsm root, a named entry),
 * "file:PATH", "dstack" or "dstack:SOCKET" (the dstack guest agent,
 * dstack.h; a socket named *tappd* speaks the older tappd API), "sim-snp"
 * (in sim_dir when given, else ra_quote_sim_snp_default_dir(); the SNP
 * files have names of their own, so one directory may hold both sims),
 * "sim-snp:DIR", "snp-file:REPORT,CERTS". Returns
 * what that constructor returns, or -EINVAL (logged) for any other spec. */
RA_API int ra_quote_provider_open(const char *spec, const char *sim_dir, ra_quote_provider **out);

/* Produces evidence for x25519_pub. *ev is overwritten (not cleared
 * first); on failure it is left empty and why is logged. Returns 0 or a
 * negative code (errno or RA_ERR_*). */
RA_API int ra_quote_provider_get(ra_quote_provider *p, const uint8_t x25519_pub[32],
                          ra_quote_evidence *ev);

/* A quote over the caller's report_data (64 bytes), for bindings of other
 * keys than the tunnel's X25519 one (RA-TLS: attest/quote/ratls.h). file
 * returns its fixed quote (which does not carry report_data: check
 * ra_quote_provider_binds_key()). *quote is malloc'd, the caller frees it.
 * Returns 0, -EINVAL, -ENOTSUP (a custom provider without get_report), or
 * what the provider returns (logged). */
RA_API int ra_quote_provider_get_report(ra_quote_provider *p, const uint8_t report_data[64],
                                        uint8_t **quote, size_t *len);

/* The provider's kind: "file", "sim", "tsm" (or a custom ops->name).
 * Static storage; NULL for NULL. */
RA_API const char *ra_quote_provider_name(const ra_quote_provider *p);
/* Whether the evidence binds the key (false for file: tell clients/logs). */
RA_API bool ra_quote_provider_binds_key(const ra_quote_provider *p);
/* Whether the quotes are simulated (say so loudly at start-up and in logs). */
RA_API bool ra_quote_provider_simulated(const ra_quote_provider *p);
/* For the sim provider: the root certificate clients must pin; NULL for
 * other providers. Valid until ra_quote_provider_free(). */
RA_API const char *ra_quote_provider_sim_root(const ra_quote_provider *p);
/* For the sim-snp provider: its directory (what clients name with
 * --trust-snp-sim; the ARK to pin is DIR/snp-ark.pem); NULL for other
 * providers. Valid until ra_quote_provider_free(). */
RA_API const char *ra_quote_provider_snp_sim_dir(const ra_quote_provider *p);

RA_API void ra_quote_provider_free(ra_quote_provider *p);

/* ITA's iat text for time t: "YYYY-MM-DD HH:MM:SS +0000 UTC" (29 chars +
 * NUL in out, outlen >= 30). Returns the length, or -EINVAL. */
RA_API int ra_quote_iat_format(int64_t t, char *out, size_t outlen);

#endif
