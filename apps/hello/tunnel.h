/* apps/hello/tunnel.h: ra-hello's attested tunnel (--tee, --sim-dir). */
#ifndef RA_HELLO_TUNNEL_H
#define RA_HELLO_TUNNEL_H

#include "raloop/attest/tunnel/server.h"

/* tee: "sim", "tsm", "file:PATH", or NULL for auto (tsm when the kernel
 * offers it, else sim). sim_dir: NULL for the default state directory.
 * Creates the provider and the tunnel server on router, logging loudly when
 * attestation is simulated or cannot bind the key. access_log (NULL: none)
 * gets each tunnelled request, with the string "tunnel" as its user data.
 * Returns 0 and *out, or -1 after printing why to stderr. */
int hello_tunnel_start(ra_loop *loop, ra_router *router, const char *tee, const char *sim_dir,
                       ra_access_log_cb access_log, ra_tunnel_server **out);
/* The same with a policy for the clients' own attestation (NULL: none asked
 * for; see ra_tunnel_client_policy), borrowed for the server's life. */
int hello_tunnel_start_ex(ra_loop *loop, ra_router *router, const char *tee, const char *sim_dir,
                          ra_access_log_cb access_log, const ra_tunnel_client_policy *client_policy,
                          ra_tunnel_server **out);
/* --no-body-streams: the tunnel does not announce streamed bodies
 * (PROTOCOL.md §11; on by default). Before hello_tunnel_start. */
void hello_tunnel_body_streams(bool on);

#endif
