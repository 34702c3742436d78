/* apps/hello/tunnel.c: picks ra-hello's quote provider and starts the tunnel. */
#include "apps/hello/tunnel.h"

#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "raloop/attest/quote/sim.h"
#include "raloop/core/error.h"
#include "raloop/core/log.h"

static bool body_streams = true;
void hello_tunnel_body_streams(bool on) { body_streams = on; }

int hello_tunnel_start(ra_loop *loop, ra_router *router, const char *tee, const char *sim_dir,
                       ra_access_log_cb access_log, ra_tunnel_server **out) {
  return hello_tunnel_start_ex(loop, router, tee, sim_dir, access_log, NULL, out);
}

int hello_tunnel_start_ex(ra_loop *loop, ra_router *router, const char *tee, const char *sim_dir,
                          ra_access_log_cb access_log, const ra_tunnel_client_policy *client_policy,
                          ra_tunnel_server **out) {
  char dir[4096];
  /* The sim's directory is printed below, so resolve the default here. */
  if (!sim_dir && (!tee || strcmp(tee, "sim") == 0)) {
    if (ra_sim_default_dir(dir, sizeof dir) != 0) {
      fprintf(stderr, "ra-hello: no state directory for the simulated TEE: set --sim-dir\n");
      return -1;
    }
    sim_dir = dir;
  }
  ra_quote_provider *p = NULL;
  int prc = ra_quote_provider_open(tee, sim_dir, &p); /* logs the details */
  if (prc != 0) {
    fprintf(stderr, "ra-hello: attestation: %s\n", ra_strerror(prc));
    return -1;
  }
  /* the tunnel server warns about simulated or unbound quotes; what only
   * ra-hello knows is where the sim's keys are */
  const char *snp_dir = ra_quote_provider_snp_sim_dir(p);
  if (snp_dir)
    ra_warn("simulated SEV-SNP TEE keys in %s (clients: --trust-snp-sim %s)", snp_dir, snp_dir);
  else if (ra_quote_provider_simulated(p))
    ra_warn("simulated TEE keys in %s (clients: --trust-sim %s)", sim_dir, sim_dir);
  ra_tunnel_server_opts opts = {.access_log = access_log, .access_log_ud = (void *)"tunnel",
                                .client_policy = client_policy,
                                .no_body_streams = !body_streams, /* PROTOCOL.md §11 */
                                .adopt_provider = true}; /* SIGUSR1 and --key-lifetime rotate */
  int rc = ra_tunnel_server_new(loop, router, p, &opts, out);
  const char *name = ra_quote_provider_name(p);
  if (rc == 0) ra_info("attested tunnel on /__ra__ (quote provider: %s)%s", name,
                       client_policy ? "; clients may attest (GET /whoami)" : "");
  if (rc != 0) ra_quote_provider_free(p); /* else the tunnel server keeps it */
  if (rc != 0) {
    fprintf(stderr, "ra-hello: tunnel: %s\n", strerror(-rc)); /* details: in the log */
    return -1;
  }
  return 0;
}
