/* bench/tunnel.h: the attested-tunnel transport of ra-bench, over the
 * library's tunnel client (attest/tunnel_client.h).
 *
 * A target holds up to `ntunnels` tunnels to one origin, opened on demand
 * (the first request on a tunnel waits for its handshake: quote verified
 * with the policy, key sealed); each request goes to the tunnel with the
 * fewest requests in flight, many requests are multiplexed per tunnel.
 * one_shot: every request opens a fresh tunnel (full handshake and quote
 * verification), is sent through it, and the tunnel is closed once the
 * response is in: the `handshake` scenario.
 */
#ifndef RA_BENCH_TUNNEL_H
#define RA_BENCH_TUNNEL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "bench/bench.h"

/* The verification policy, as ra-curl's flags give it. */
typedef struct bench_policy {
  const char *trust_sim_dir; /* pin DIR/root-ca.pem (the simulated TEE's root) */
  const char *roots[8];      /* --root PEM files */
  size_t n_roots;
  bool has_mrtd, has_rtmr[4], has_report_data;
  uint8_t mrtd[48], rtmr[4][48], report_data[64];
  bool no_binding; /* --no-binding: skip the X25519 key binding check */
  bool allow_debug;
  bool any_measurement; /* --any-measurement-insecure: Intel root, no measurements */
  /* Intel collateral (apps/common/policy_flags POLICY_FLAGS_COLLATERAL and
   * _PCCS): a file loaded once and shared by every tunnel, or a PCCS the
   * tunnels fetch from (through the on-disk cache); the status policy */
  const char *collateral, *pccs, *pccs_cache_dir, *pccs_ca_file;
  bool pccs_no_cache;
  unsigned accept_tcb;
  const char *const *allowed_advisories;
  size_t n_allowed_advisories;
  bool allow_expired_collateral, require_sept_ve_disable, allow_mr_servicetd;
  /* --vcache N: the tunnels share a verified-quote cache of N entries
   * (attest/quote/vcache.h); 0: every handshake verifies the quote fully */
  size_t vcache;
} bench_policy;

/* Returns the target, or NULL with a message in err (bad policy files,
 * -ENOMEM). Free with bench_target_free (from outside its callbacks). */
bench_target *bench_tunnel_new(ra_loop *loop, const bench_origin *origin, const bench_policy *pol,
                               size_t ntunnels, bool one_shot, char *err, size_t errlen);

/* The sizes (bytes) of the inner http_request and http_response messages
 * of the first request answered through t, as the tunnel encodes them: the
 * plaintexts its cipher seals (bench/floor.h). -ENOENT before an answer,
 * -EINVAL when t is not a tunnel target. */
int bench_tunnel_msg_sizes(const bench_target *t, size_t *req, size_t *resp);

#endif
