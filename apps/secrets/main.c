/* apps/secrets: ra-secrets, the strict mutually-attested secret-release
 * service and its client (docs/SECRETS.md).
 *
 *   ra-secrets serve --data-dir DIR (--client-app-id HEX | --client-mrtd HEX)... ...
 *   ra-secrets put --data-dir DIR NAME @FILE|-
 *   ra-secrets fetch --server URL --client-tee SPEC (--expect-server-app-id HEX |
 *                    --expect-server-mrtd HEX)... NAME
 */
#include <stdio.h>
#include <string.h>

#include <sodium.h>

#include "secrets.h"

int main(int argc, char **argv) {
  if (sodium_init() < 0) return SEC_EXIT_FAIL;
  if (argc >= 2 && !strcmp(argv[1], "serve")) return sec_cmd_serve(argc - 1, argv + 1);
  if (argc >= 2 && !strcmp(argv[1], "put")) return sec_cmd_put(argc - 1, argv + 1);
  if (argc >= 2 && !strcmp(argv[1], "fetch")) return sec_cmd_fetch(argc - 1, argv + 1);
  fprintf(stderr, "usage: ra-secrets serve|put|fetch ... (ra-secrets CMD --help)\n"
                  "  serve  the secret-release service (strict mode unless RATLS_STRICT=false)\n"
                  "  put    seal a secret into the service's store (while it is stopped)\n"
                  "  fetch  attest, verify the server, answer its challenge, print the secret\n");
  return SEC_EXIT_USAGE;
}
