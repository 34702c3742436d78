/* attest/quote/simdir_internal.h: what the two simulated TEEs (sim.c, the
 * Intel TDX one, and snp_sim.c, the AMD SEV-SNP one) share about their
 * directory: the hierarchy bundle (private keys and certificates as PEM)
 * created once, exclusively, so that racing processes agree on one
 * hierarchy; the public PEM files beside it replaced durably only when
 * their content changes; and the X.509 pieces both hierarchies are built
 * from. Private to attest/quote. */
#ifndef RA_ATTEST_SIMDIR_INTERNAL_H
#define RA_ATTEST_SIMDIR_INTERNAL_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <openssl/evp.h>
#include <openssl/x509.h>

/* Largest bundle or public PEM file either simulator reads back. */
#define RA_SIMDIR_FILE_MAX (64 * 1024)

/* dir "/" name as a malloc'd string (caller frees), NULL without memory. */
char *ra_simdir_join(const char *dir, const char *name);

/* mkdir -p with mode 0700 for what it creates; an existing directory is
 * left as it is. Returns 0, -ENOTDIR when dir names something else, or a
 * negative errno. */
int ra_simdir_mkdir_p(const char *dir);

/* Creates path with data (mode, not masked) unless it exists: the first of
 * several racing writers wins, the others get -EEXIST and read the
 * winner's file, which is never seen half-written. Durable once it returns
 * 0 (the file and its directory are fsync'd). */
int ra_simdir_create_exclusive(const char *path, const void *data, size_t len, mode_t mode);

/* Replaces path durably and atomically (ra_file_write_atomic) with data,
 * unless it already holds exactly that: a directory shared by several
 * processes is not rewritten by every one that opens it. */
int ra_simdir_replace_if_different(const char *path, const void *data, size_t len, mode_t mode);

/* A simulator's hierarchy, as ra_simdir_load_or_create sees it: ctx is the
 * simulator's handle. generate fills ctx with a fresh hierarchy, encode
 * writes it as the bundle (malloc'd, caller frees), decode fills ctx from
 * a bundle (checking it), release frees what generate or decode left in
 * ctx (also after a failure) so that decode can run on a clean ctx. */
typedef struct ra_simdir_ops {
  int (*generate)(void *ctx);
  int (*encode)(const void *ctx, uint8_t **out, size_t *len);
  int (*decode)(void *ctx, const uint8_t *data, size_t len);
  void (*release)(void *ctx);
} ra_simdir_ops;

/* Loads the bundle at path into ctx, or generates a hierarchy and creates
 * the bundle exclusively; when another process created it first, its
 * hierarchy is loaded instead of ours. The bundle bytes (private keys) are
 * cleansed before they are freed. Returns 0 or a negative errno; on
 * failure ctx may hold part of a hierarchy, for the caller's release. */
int ra_simdir_load_or_create(const char *path, const ra_simdir_ops *ops, void *ctx);

/* The bundle: keys[i] then certs[i] (when i < ncerts) for each key, as PEM
 * (unencrypted: the simulator's keys protect nothing real), into a
 * malloc'd buffer the caller frees. Returns 0, -ENOMEM or -EIO. */
int ra_simdir_bundle_encode(EVP_PKEY *const *keys, size_t nkeys, X509 *const *certs,
                            size_t ncerts, uint8_t **out, size_t *len);

/* Reads what ra_simdir_bundle_encode wrote into keys and certs (owned by
 * the caller, to be freed also on failure), and checks it: every
 * certificate matches its key, certs[0] is self-signed and each
 * certificate is signed by the one before it. Returns 0 or -EINVAL (fail
 * closed on a bundle edited by hand into something else). */
int ra_simdir_bundle_decode(const uint8_t *data, size_t len, EVP_PKEY **keys, size_t nkeys,
                            X509 **certs, size_t ncerts);

/* Adds the extension nid = value (OpenSSL's config syntax) to cert, as
 * issued by issuer (cert itself when self-signed). Returns 0 or -EIO. */
int ra_simdir_add_ext(X509 *cert, X509 *issuer, int nid, const char *value);

/* Adds an extension with the dotted OID and the already-encoded DER value
 * (non-critical). Returns 0 or -EIO. */
int ra_simdir_add_ext_der(X509 *cert, const char *oid, const uint8_t *der, size_t len);

/* "CN=cn, O=raloop simulated TEE" (caller frees), NULL on failure. */
X509_NAME *ra_simdir_name(const char *cn);

#endif
