/* attest/tunnel_client.h: the client side of the RA-HTTPS / RA-WSS tunnel
 * (PROTOCOL.md), on the loop.
 *
 * ra_tunnel_client_new() opens the control channel ws://HOST:PORT/__ra__ of
 * an origin ("http://HOST:PORT"), or wss://HOST:PORT/__ra__ for
 * "https://" / "wss://" origins (TLS outside, the attested tunnel inside:
 * the certificate is checked as opts.tls says, the quote as always). On server_kx it verifies the quote with the
 * caller's verifier and policy, adding the key binding of PROTOCOL.md §4
 * (report_data == SHA-512(val || iat || server key) for TDX, SHA-256(key)
 * for SGX) unless told not to; only if every check passes does it draw a
 * random key, seal it to the server's key and send client_kx. Then:
 *   - ra_tunnel_fetch(): http_request -> one http_response; many in flight,
 *     matched by requestId; each with its own timeout [30 s];
 *   - ra_tunnel_ws_connect(): a tunnelled WebSocket, the same ra_ws as
 *     everywhere (ws/ws.h), carried as ws_connect / ws_message / ws_close.
 * Requests made before the handshake completes wait for it (their timeouts
 * run). When the control channel drops, pending requests fail with
 * -ECONNRESET and tunnelled sockets get on_close 1006; with `reconnect`, a
 * new connection and a fresh handshake (new key, quote verified again)
 * follow after reconnect_delay_ms.
 * Key rotation: when the server closes the control channel with 1012
 * (its key was replaced: PROTOCOL.md §8) the client reconnects at once,
 * `reconnect` or not, and verifies the new quote. Requests not sent yet go
 * out on the new tunnel; so do GET and HEAD requests in flight or refused
 * with the server's "tunnel key rotated" 503 (their encoded bytes are kept
 * until answered: they are idempotent and small); any other request in
 * flight fails with -ECONNRESET ("tunnel closed for key rotation"), never
 * replayed, since the server may have acted on it; so does a fetch whose
 * body was being streamed either way (a streamed upload that had begun
 * reading its source, a response whose head had arrived). Tunnelled
 * WebSockets that were open get on_close 1012 with the reason "tunnel key
 * rotated: reopen" (not the 1006 of a drop): the application may open them
 * again at once (from on_close: the new socket waits for the new tunnel);
 * sockets whose ws_connect had not been sent yet go on the new tunnel.
 *
 * Streamed bodies (PROTOCOL.md §11): when the server announces bodyStreams
 * in server_kx the client opts in (unless opts.no_body_streams) and then
 *   - a request whose body comes from req.body_read is sent as http_request
 *     bodyStream + http_body pieces within the server's credit: a body of
 *     any size in bounded memory (one chunk);
 *   - a response the server streams is handed to req.on_data as it comes
 *     (credit granted as on_data takes it; -EAGAIN from on_data pauses it
 *     until ra_tunnel_fetch_resume), or, for a caller without on_data,
 *     collected whole (up to max_envelope) and given to the fetch callback
 *     as ever.
 * Without the extension (the reference server, or a raloop server that does
 * not announce it) everything is whole-body as before: a body_read source
 * is read into memory up to opts.max_whole_upload [64 MiB] and sent whole
 * (beyond: the fetch fails -EMSGSIZE), and on_data gets the whole body in
 * one call.
 */
#ifndef RA_ATTEST_TUNNEL_CLIENT_H
#define RA_ATTEST_TUNNEL_CLIENT_H

#include "raloop/core/api.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "raloop/attest/quote/collateral.h"
#include "raloop/attest/quote/provider.h"
#include "raloop/attest/quote/snp_verify.h"
#include "raloop/attest/quote/verify.h"
#include "raloop/core/loop.h"
#include "raloop/core/str.h"
#include "raloop/core/tls.h"
#include "raloop/http/request.h"
#include "raloop/ws/ws.h"

typedef struct ra_tunnel_client ra_tunnel_client;

/* The handshake finished: status 0 (the channel is keyed), -EACCES (the
 * quote was refused: vd says which check failed and why), -EPROTO (a
 * malformed server_kx), or the connection's error (-ECONNREFUSED,
 * -ETIMEDOUT, -ECONNRESET...). vd is valid during the call (NULL when no
 * quote was verified). For a SEV-SNP server vd carries only err and msg
 * ("STEP: why", STEP one of snp_verify.h's check names, or "tee" when the
 * server's kind is not one this client is configured for);
 * ra_tunnel_client_snp_verdict() has the rest. Runs once per connection
 * attempt. */
typedef void (*ra_tunnel_ready_cb)(ra_tunnel_client *c, int status, const ra_verdict *vd, void *ud);

typedef struct ra_tunnel_client_opts {
  /* Intel TDX/SGX servers: the verifier (borrowed, must outlive the
   * client). At least one of verifier and snp_verifier is required; a
   * server whose kind has none is refused (fail closed: a client set up for
   * TDX does not accept SEV-SNP, and the other way round). */
  ra_verifier *verifier;
  /* Measurements, debug refusal, callback (verify.h). Copied (shallowly:
   * what it points to must outlive the client). x25519_pub and binding_*
   * are set by the client for each handshake. NULL: no measurement policy
   * (then the binding alone must make the policy non-empty). */
  const ra_policy *policy;
  bool no_binding;             /* skip the key binding check (e.g. a fixed
                                  sample quote that cannot bind our key) */
  uint64_t request_timeout_ms; /* [30 s] default for fetches */
  uint64_t connect_timeout_ms; /* [10 s] connect + WebSocket handshake + server_kx */
  bool reconnect;              /* reconnect after a drop [off] */
  uint64_t reconnect_delay_ms; /* [1 s] */
  uint64_t max_envelope;       /* [64 MiB] larger control messages: close 1009 */
  ra_tunnel_ready_cb on_ready; /* optional */
  void *ud;

  /* Intel collateral (TCB status, QE identity, TDX module identity, CRLs;
   * the policy's accept_tcb / allowed_advisories / allow_expired_collateral
   * say what is accepted). Neither set: signatures only, as before (the
   * verdict says "TCB not evaluated"). At most one of:
   *  - collateral: borrowed (must outlive the client), used for every
   *    handshake; not const: it memoises the signatures it verified, so it
   *    serves this client's loop thread only;
   *  - pccs_url: a PCCS or Intel's PCS ("https://api.trustedservices.intel.com")
   *    from which, after server_kx, the client fetches the collateral for
   *    the server's quote (attest/pcs/pcs.h: on the loop, through the
   *    on-disk cache) and only then verifies and sends client_kx; the
   *    parsed collateral is kept for later handshakes while fresh (an hour
   *    before its nextUpdate it is fetched again). connect_timeout_ms
   *    covers the fetch.
   * Fail closed: a fetch that fails, a document that does not parse, or a
   * status the policy does not accept refuses the server (on_ready -EACCES,
   * the verdict names the check; pending requests fail with -EACCES). */
  ra_collateral *collateral;
  const char *pccs_url;         /* copied */
  const char *pccs_cache_dir;   /* NULL: ra_pcs_cache_default_dir(); copied */
  bool pccs_no_cache;           /* neither read nor write the on-disk cache */
  const char *pccs_ca_file;     /* https PCCS: PEM CAs instead of the system's; copied */
  uint64_t pccs_timeout_ms;     /* per request; 0: the connect timeout */

  /* https:// / wss:// origins: the client TLS context (referenced by the
   * client; NULL: the system's CAs, host name checked), and the name for
   * SNI and the host check (NULL: the origin's host; copied). */
  ra_tls_ctx *tls;
  const char *tls_server_name;

  /* The client's own attestation (PROTOCOL.md §10). When a server_kx
   * announces a clientChallenge (raloop servers with a client policy; the
   * reference server never does, and then nothing is sent), client_kx
   * carries clientAttestation: a quote from client_provider whose
   * report_data is SHA-512("raloop-client-v1" || server key || challenge ||
   * the sealed key sent), and client_event_log when set. The provider is
   * asked once per handshake, after the server's quote passed, on a thread
   * of its own (core/work.h: a dstack agent request or a configfs-tsm quote
   * may take milliseconds to seconds; the loop serves on meanwhile, and a
   * quote for a connection that closed meanwhile is dropped); it must not
   * be used from the loop at the same time, and ra_tunnel_client_free
   * waits for a call still running.
   * A provider that fails fails the handshake (on_ready -EIO, requests
   * fail with its reason): nothing is sent unattested in its place.
   * client_provider: borrowed, must outlive the client; NULL: never attest.
   * client_event_log: dstack's event log as JSON text (the GetQuote or Info
   * answer, or the array), which lets the server replay the RTMRs and read
   * the app id; copied. */
  ra_quote_provider *client_provider;
  const char *client_event_log;

  /* Optional verified-quote cache (attest/quote/vcache.h; borrowed, must
   * outlive the client, may be shared by the clients of one loop thread):
   * a server quote verified before with the same verifier, collateral and
   * policy is not verified again while every validity window involved
   * holds; the key binding to this handshake's server key and the policy
   * callback are still checked on every handshake (docs/VCACHE.md). */
  struct ra_vcache *vcache;

  /* AMD SEV-SNP servers (a server_kx with sev_snp_data, as the reference
   * server sends it): the report is verified with snp_verifier (borrowed;
   * it pins the ARKs: AMD's, or the simulated one) against the
   * certificates of sev_snp_data under snp_policy (copied shallowly; NULL:
   * the binding alone), to which the client adds the reference's key
   * binding, report_data == SHA-512(nonce || server key), the nonce being
   * verifier_data (docs/SEV-SNP.md), unless no_binding. Intel collateral
   * and vcache do not apply. */
  ra_snp_verifier *snp_verifier;
  const ra_snp_policy *snp_policy;

  /* Streamed bodies (PROTOCOL.md §11). no_body_streams: never opt in (the
   * tunnel is whole-body, as with the reference server). stream_window /
   * stream_chunk: what the client announces for the response bodies it
   * receives (0: 1 MiB / 256 KiB; out of the ranges of msg.h's
   * ra_tmsg_body_streams_valid: ra_tunnel_client_new fails -EINVAL).
   * max_whole_upload: on a tunnel without streams, the most bytes of a
   * body_read source read into memory and sent whole [64 MiB]. */
  bool no_body_streams;
  uint32_t stream_window, stream_chunk;
  uint64_t max_whole_upload;
} ra_tunnel_client_opts;

/* origin: "http[s]://HOST[:PORT]" (or "ws[s]://"; a trailing path is
 * ignored). opts is copied. Returns 0 (connecting), -EINVAL (bad origin,
 * neither verifier nor snp_verifier, both collateral and pccs_url),
 * -ENOMEM. */
RA_API int ra_tunnel_client_new(ra_loop *loop, const char *origin, const ra_tunnel_client_opts *opts,
                         ra_tunnel_client **out);

/* Fails every pending request (-ECANCELED; callbacks run inside this call),
 * closes tunnelled sockets and the control channel, frees c. Must not be
 * called from inside a callback of c's: defer it. */
RA_API void ra_tunnel_client_free(ra_tunnel_client *c);

RA_API bool ra_tunnel_client_ready(const ra_tunnel_client *c);
/* The verdict of the last handshake (valid until the next one / free). */
RA_API const ra_verdict *ra_tunnel_client_verdict(const ra_tunnel_client *c);
/* The SEV-SNP verdict of the last handshake when the server presented
 * SEV-SNP evidence and it was verified (valid until the next one / free),
 * else NULL. */
RA_API const ra_snp_verdict *ra_tunnel_client_snp_verdict(const ra_tunnel_client *c);
/* Whether the last server_kx carried SEV-SNP evidence (sev_snp_data). */
RA_API bool ra_tunnel_client_server_is_snp(const ra_tunnel_client *c);
/* The server's X25519 key once server_kx arrived (32 bytes), else NULL. */
RA_API const uint8_t *ra_tunnel_client_server_key(const ra_tunnel_client *c);
/* Whether the last handshake sent a client attestation (the server asked
 * for one and client_provider gave a quote). */
RA_API bool ra_tunnel_client_attested(const ra_tunnel_client *c);
/* The quote of the last server_kx (a copy, valid until the next one / free),
 * NULL before any. */
RA_API const uint8_t *ra_tunnel_client_quote(const ra_tunnel_client *c, size_t *len);

struct ra_tunnel_response;

typedef struct ra_tunnel_request {
  const char *method;        /* NULL: "GET" */
  const char *url;           /* "/path?q" or an absolute URL */
  const ra_header *headers;  /* names sent lowercased (as a browser's fetch
                                does), repeated ones joined with ", " */
  size_t n_headers;
  bool has_body;
  bool body_is_text;         /* text string (the reference client sends text) */
  const void *body;
  size_t body_len;
  uint64_t timeout_ms;       /* 0: the client's default; for a fetch whose
                                body is streamed either way, the time allowed
                                without progress (a piece sent or received) */
  /* Streamed request body (PROTOCOL.md §11), for bodies of unknown or large
   * size: when body_read is set, has_body / body / body_len are ignored and
   * the body is pulled from it on the loop, at most cap bytes a call, as
   * the server's credit allows. It returns the bytes written to buf, 0 at
   * the end, -EAGAIN when it has nothing now (call ra_tunnel_fetch_resume
   * when it has), or another negative errno: the upload is abandoned
   * (http_cancel) and the fetch fails with that error. ud: the fetch's.
   * buf is valid during the call only. body_length: the size when known (0:
   * unknown): on a tunnel without streams, one over max_whole_upload fails
   * at once; one that fits the server's chunk goes whole (one message). */
  ssize_t (*body_read)(void *ud, uint8_t *buf, size_t cap);
  uint64_t body_length;
  /* Streamed response body: on_head(res) with the status and headers
   * (res->body NULL; valid during the call), then on_data(data, len) for
   * each piece as it arrives (data valid during the call), then the fetch
   * callback with err 0 and a res holding only the status (no headers, body
   * NULL). on_data returns 0 (taken), -EAGAIN (taken, but send no more
   * credit until ra_tunnel_fetch_resume), or another negative errno (the
   * fetch is cancelled: http_cancel, the fetch callback gets that error).
   * on_head returns 0, or a negative errno likewise. A whole response goes
   * to on_data in one call. ud: the fetch's. Either may be NULL (on_data
   * NULL: the body is given to the fetch callback whole). */
  int (*on_head)(ra_tunnel_client *c, const struct ra_tunnel_response *res, void *ud);
  int (*on_data)(ra_tunnel_client *c, const uint8_t *data, size_t len, void *ud);
} ra_tunnel_request;

/* Everything in it is valid during the fetch callback only. */
typedef struct ra_tunnel_response {
  int status;
  ra_str status_text;
  const ra_header *headers;  /* in the order sent, names as sent; a header
                                sent as an array of values is one entry per
                                value; values are
                                the header's bytes (the wire's ISO-8859-1 code
                                points turned back into bytes) */
  size_t n_headers;
  const uint8_t *body;       /* NULL when the server sent none */
  size_t body_len;
  bool body_is_text;
} ra_tunnel_response;

/* err: 0 (res valid during the call) or a negative errno: -ETIMEDOUT, -ECONNRESET (the tunnel
 * dropped), -EACCES (the quote was refused), -EPROTO (the server answered
 * with `error`: msg holds it; or a response header has a character above
 * U+00FF, which no HTTP header can carry), -ECANCELED (client freed),
 * -ENOMEM; with streamed bodies also -ECANCELED (ra_tunnel_fetch_cancel),
 * -EMSGSIZE (a body_read body too large for a tunnel without streams, or a
 * streamed response over max_envelope for a caller without on_data),
 * -EPROTO (the server broke the stream's rules: PROTOCOL.md §11), -ECONNABORTED
 * (the server abandoned a streamed response with http_cancel: the body is
 * incomplete), the error body_read / on_head / on_data returned.
 * msg: a human-readable reason when err != 0 (valid during the call). */
typedef void (*ra_tunnel_fetch_cb)(ra_tunnel_client *c, int err, const ra_tunnel_response *res,
                                   const char *msg, void *ud);

/* Sends (or queues until the handshake) one request; everything in req is
 * copied. cb runs exactly once, never from inside this call. Returns 0 or
 * -ENOMEM / -EINVAL (no url). */
RA_API int ra_tunnel_fetch(ra_tunnel_client *c, const ra_tunnel_request *req, ra_tunnel_fetch_cb cb, void *ud);
/* The same, and *id (may be NULL) names the fetch for the calls below (ids
 * are never reused by a client; one that finished is simply unknown). */
RA_API int ra_tunnel_fetch_start(ra_tunnel_client *c, const ra_tunnel_request *req, ra_tunnel_fetch_cb cb,
                                 void *ud, uint64_t *id);
/* body_read said -EAGAIN, or on_data paused: go on (from the loop).
 * Returns 0 or -ENOENT (no such fetch in progress). */
RA_API int ra_tunnel_fetch_resume(ra_tunnel_client *c, uint64_t id);
/* Abandons a fetch: the server is told (http_cancel on a tunnel with
 * streams: its handler is cancelled) and the fetch callback runs with
 * -ECANCELED from the loop, not from inside this call. reason: NULL or
 * text sent along (copied). Returns 0 or -ENOENT. */
RA_API int ra_tunnel_fetch_cancel(ra_tunnel_client *c, uint64_t id, const char *reason);
/* Whether the current tunnel negotiated streamed bodies (PROTOCOL.md §11). */
RA_API bool ra_tunnel_client_body_streams(const ra_tunnel_client *c);

/* A tunnelled WebSocket to url ("ws://HOST:PORT/path"): on_open after the
 * server's ws_event open; on_close (1006 and the server's reason) on
 * ws_event error or when the tunnel drops; 1012 "tunnel key rotated:
 * reopen" when the server closed the tunnel for key rotation (see above). protocols may be NULL. Returns 0
 * and *out (valid until on_close returns), or -ENOMEM. */
RA_API int ra_tunnel_ws_connect(ra_tunnel_client *c, const char *url, const char *const *protocols,
                         size_t n_protocols, const ra_ws_handlers *h, void *ud, ra_ws **out);

#endif
