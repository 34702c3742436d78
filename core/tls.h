/* core/tls.h: TLS 1.2/1.3 (OpenSSL 3) as a layer inside ra_stream.
 *
 * Once ra_stream_start_tls() (or ra_stream_connect_tls()) has run on a
 * stream, on_read receives plaintext and ra_stream_write/writev/write_ref
 * take plaintext: HTTP/1.1, WebSockets and the tunnel run unchanged on top.
 * The stream keeps doing the socket I/O; TLS only transforms bytes through
 * two memory BIOs, so idle and write timeouts, watermarks (counted in
 * ciphertext), pause/resume and half-close keep their meaning:
 *  - plaintext written before the handshake completes is kept and sent
 *    right after it (a client may write its request at once);
 *  - ra_stream_shutdown sends close_notify, then FIN; ra_stream_close sends
 *    close_notify before the usual flush/FIN/linger; a close before the
 *    handshake completed drops unsent plaintext (there is no key for it);
 *  - the peer's close_notify is reported like a FIN (on_eof); a FIN without
 *    close_notify too (HTTP/1.1 framing detects truncation itself);
 *  - a failed handshake, a stalled one (handshake_timeout_ms) or a bad
 *    record ends in on_close with an RA_ERR_TLS_* code (or the verify
 *    callback's own code), and ra_stream_tls_error() gives OpenSSL's reason;
 *  - write_ref with TLS: the bytes are encrypted at once, so free_cb runs
 *    before the call returns.
 * A stream without TLS pays one pointer test per call and nothing else.
 *
 * Contexts are refcounted: each stream holds a reference, so a server can
 * swap its context (SIGHUP reload of certificates) while connections made
 * with the old one live on. Loop-thread only, like the rest of core.
 */
#ifndef RA_CORE_TLS_H
#define RA_CORE_TLS_H

#include "raloop/core/api.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <openssl/ssl.h>
#include <openssl/x509.h>

#include "raloop/core/stream.h"

typedef struct ra_tls_ctx ra_tls_ctx;

/* One certificate and its key. Give either files, PEM buffers, or OpenSSL
 * objects (in that order of precedence; the objects are up-referenced, the
 * caller keeps its own references). A file or buffer may hold the leaf
 * followed by its chain. */
typedef struct ra_tls_cert {
  const char *cert_file, *key_file;
  const char *cert_pem; size_t cert_pem_len; /* len 0: NUL-terminated */
  const char *key_pem; size_t key_pem_len;
  X509 *cert;
  EVP_PKEY *key;
} ra_tls_cert;

typedef struct ra_tls_server_opts {
  /* certs[0] is the default; a ClientHello whose SNI name matches another
   * certificate's SAN (or CN without SANs; wildcards as in RFC 6125) gets
   * that one, first match wins (like nginx's server_name selection). */
  const ra_tls_cert *certs;
  size_t ncerts;
  uint64_t handshake_timeout_ms; /* 0: 10 s */
  /* ALPN. NULL: "http/1.1". A client offering ALPN without any of ours is
   * refused (no_application_protocol alert), so an h2-only client fails at
   * once instead of sending frames HTTP/1.1 cannot read; a client without
   * ALPN is accepted. "" disables ALPN. Comma-separated list. */
  const char *alpn;
} ra_tls_server_opts;

/* Peer verification hook (clients; also usable for RA-TLS). leaf is the
 * peer's certificate, valid during the call (X509_up_ref to keep it).
 * Return 0 to accept, a negative code to refuse the handshake: that code is
 * what on_close (or on_connect) receives. */
typedef int (*ra_tls_verify_cb)(X509 *leaf, void *ud);

typedef struct ra_tls_client_opts {
  const char *ca_file;        /* NULL: the system store */
  bool insecure_skip_verify;  /* accept any certificate and name (curl -k) */
  ra_tls_verify_cb verify;    /* optional, called after the CA checks pass */
  void *verify_ud;
  /* The callback alone decides: no CA chain nor host name check (RA-TLS: a
   * self-signed certificate whose key is bound to a quote). */
  bool verify_cb_only;
  const char *alpn;           /* NULL: "http/1.1"; "": none */
  uint64_t handshake_timeout_ms; /* 0: 10 s */
  /* Optional client certificate. */
  const ra_tls_cert *client_cert;
} ra_tls_client_opts;

/* Build a context (refcount 1). On failure returns a negative code
 * (RA_ERR_TLS_CONFIG, -ENOMEM, -EINVAL) and writes a one-line reason to
 * err, e.g. "cannot read key.pem: No such file or directory" or
 * "key.pem does not match cert.pem". err may be NULL. */
RA_API int ra_tls_server_ctx_new(const ra_tls_server_opts *o, ra_tls_ctx **out, char *err,
                                 size_t errlen);
RA_API int ra_tls_client_ctx_new(const ra_tls_client_opts *o, ra_tls_ctx **out, char *err,
                                 size_t errlen);
RA_API ra_tls_ctx *ra_tls_ctx_ref(ra_tls_ctx *ctx);
RA_API void ra_tls_ctx_unref(ra_tls_ctx *ctx); /* NULL is fine */
RA_API bool ra_tls_ctx_is_server(const ra_tls_ctx *ctx);
/* The default SSL_CTX (owned by ctx), for settings this API lacks. */
RA_API SSL_CTX *ra_tls_ctx_ssl_ctx(ra_tls_ctx *ctx);

/* Server reload: builds a new context from o; on success *slot's reference
 * is dropped and replaced (connections keep theirs); on failure *slot is
 * untouched and err says why. Session ticket keys carry over, so clients
 * resume across a reload. */
RA_API int ra_tls_ctx_reload(ra_tls_ctx **slot, const ra_tls_server_opts *o, char *err,
                             size_t errlen);

/* Starts TLS on s in ctx's role (the stream takes its own reference).
 * server_name: clients only, the SNI and the name the certificate must
 * carry (an IP literal is checked against IP SANs and not sent as SNI);
 * NULL with a verifying client context means no host check. Returns 0,
 * -EALREADY, -EINVAL, -ENOMEM (the stream is unchanged on error). */
RA_API int ra_stream_start_tls(ra_stream *s, ra_tls_ctx *ctx, const char *server_name);
/* Optional: called once when the handshake completed (status 0), from the
 * loop, with the stream's userdata. A failure is reported by on_close. */
RA_API void ra_stream_tls_on_handshake(ra_stream *s, ra_connect_cb cb);

/* ra_stream_connect, then TLS: on_connect is called once the handshake is
 * done (0 and the stream), or with the error and NULL (TCP or TLS failure:
 * RA_ERR_TLS_*, or the verify callback's code). server_name NULL: host. */
RA_API int ra_stream_connect_tls(ra_loop *loop, const char *host, uint16_t port, ra_tls_ctx *ctx,
                                 const char *server_name, const ra_stream_cbs *cbs,
                                 ra_connect_cb on_connect, void *ud);

RA_API bool ra_stream_is_tls(const ra_stream *s);
RA_API bool ra_stream_tls_handshake_done(const ra_stream *s);
RA_API bool ra_stream_tls_session_reused(const ra_stream *s);
/* The peer's certificate (borrowed, valid while the stream is), or NULL. */
RA_API X509 *ra_stream_tls_peer_cert(const ra_stream *s);
/* "TLSv1.3", the ALPN protocol selected ("" if none), the SNI name the
 * client sent (servers, NULL if none); NULL without TLS. */
RA_API const char *ra_stream_tls_version(const ra_stream *s);
RA_API const char *ra_stream_tls_alpn(const ra_stream *s);
RA_API const char *ra_stream_tls_sni(const ra_stream *s);
/* OpenSSL's reason for the last TLS failure on this stream ("" if none);
 * valid until the stream is freed, so readable in on_close. */
RA_API const char *ra_stream_tls_error(const ra_stream *s);
/* The underlying SSL (for what this API lacks), NULL without TLS. */
RA_API SSL *ra_stream_tls_ssl(const ra_stream *s);

#endif
