/* apps/hello/whoami.h: ra-hello's policy for the clients of its tunnel
 * (--client-* flags) and GET /whoami, which answers an attested client
 * with the identity the tunnel verified (PROTOCOL.md §10). */
#ifndef RA_HELLO_WHOAMI_H
#define RA_HELLO_WHOAMI_H

#include <stdbool.h>

#include "apps/common/policy_flags.h"
#include "raloop/attest/tunnel/server.h"
#include "raloop/http/router.h"

typedef struct hello_client {
  policy_flags pf; /* prefix "--client-" */
  ra_verifier *v;
  ra_collateral *coll;
  ra_tdx_expect ex;
  ra_tunnel_client_policy cp;
  bool active; /* some --client-* flag: a client policy is built */
} hello_client;

void hello_client_init(hello_client *hc);
/* For the argv loop: 0 not a --client-* flag, 1 or 2 arguments consumed,
 * -1 after printing what is wrong. */
int hello_client_parse(hello_client *hc, const char *arg, const char *next);
/* Builds the policy from the flags (when any). 0, or -1 after printing why. */
int hello_client_build(hello_client *hc);
/* The policy for ra_tunnel_server_opts.client_policy, or NULL. */
const ra_tunnel_client_policy *hello_client_policy(const hello_client *hc);
void hello_client_free(hello_client *hc);

/* The /whoami handler: JSON of ra_req_client_identity (registered with
 * RA_ROUTE_CLIENT_ATTESTED, so it is never NULL here). */
void hello_whoami(ra_req *req, ra_res *res, void *ud);

#endif
