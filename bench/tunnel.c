/* bench/tunnel.c: TEMPORARY until attest/tunnel_client.h lands. */
#include "bench/tunnel.h"
#include <stdio.h>
bench_target *bench_tunnel_new(ra_loop *loop, const bench_origin *origin, const bench_policy *pol,
                               size_t ntunnels, bool one_shot, char *err, size_t errlen) {
  snprintf(err, errlen, "the tunnel client is not built yet");
  return NULL;
}
