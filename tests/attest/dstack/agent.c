/* tests/attest/dstack/agent.c: the stand-in dstack guest agent as a
 * program (agent_core.c), for shell tests:
 *   ra-test-dstack-agent --socket PATH --sim-dir DIR [--mode MODE]
 *       [--app-id HEX] [--compose-hash HEX] [--instance-id HEX]
 * Serves until SIGTERM/SIGINT; prints "ready" on stdout once listening. */
#include <signal.h>

#include "tests/attest/dstack/agent_core.c"

static volatile int g_stop;
static void on_sig(int s) {
  (void)s;
  g_stop = 1;
}

int main(int argc, char **argv) {
  agent_opts o = {0};
  for (int i = 1; i + 1 < argc; i += 2) {
    const char *k = argv[i], *v = argv[i + 1];
    if (!strcmp(k, "--socket")) o.socket = v;
    else if (!strcmp(k, "--sim-dir")) o.sim_dir = v;
    else if (!strcmp(k, "--mode")) o.mode = v;
    else if (!strcmp(k, "--app-id")) o.app_id = v;
    else if (!strcmp(k, "--compose-hash")) o.compose_hash = v;
    else if (!strcmp(k, "--instance-id")) o.instance_id = v;
    else {
      fprintf(stderr, "agent: unknown option %s\n", k);
      return 2;
    }
  }
  if (!o.socket || !o.sim_dir) {
    fprintf(stderr, "usage: %s --socket PATH --sim-dir DIR [--mode MODE] [--app-id HEX] ...\n", argv[0]);
    return 2;
  }
  struct sigaction sa = {.sa_handler = on_sig};
  sigaction(SIGTERM, &sa, NULL);
  sigaction(SIGINT, &sa, NULL);
  signal(SIGPIPE, SIG_IGN);
  o.print_ready = true;
  int rc = agent_run(&o, &g_stop, 0, NULL);
  if (rc) fprintf(stderr, "agent: %s\n", strerror(-rc));
  return rc ? 1 : 0;
}
