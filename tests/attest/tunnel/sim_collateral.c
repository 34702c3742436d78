/* tests/attest/tunnel/sim_collateral.c: writes collateral for the simulated
 * TEE of DIR (ra_sim_collateral_json), genuine or forged the ways the
 * tunnel client's tests need (signed by the sim's TCB signing certificate,
 * so only the status or the window is wrong):
 *   sim-collateral DIR OUT                 as `ra-quote sim --collateral-out`
 *   sim-collateral DIR OUT --outdated      the sim's TCB level is OutOfDate,
 *                                          with INTEL-SA-00615 and INTEL-SA-00828
 *   sim-collateral DIR OUT --expired       valid from 40 days ago to 10 days ago
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "raloop/attest/quote/sim.h"

int main(int argc, char **argv) {
  if (argc < 3) {
    fprintf(stderr, "usage: sim-collateral DIR OUT [--outdated] [--expired]\n");
    return 2;
  }
  int outdated = 0, expired = 0;
  for (int i = 3; i < argc; i++) {
    if (!strcmp(argv[i], "--outdated")) outdated = 1;
    else if (!strcmp(argv[i], "--expired")) expired = 1;
    else { fprintf(stderr, "sim-collateral: unknown option %s\n", argv[i]); return 2; }
  }
  ra_sim *sim;
  if (ra_sim_open(argv[1], &sim)) { fprintf(stderr, "sim-collateral: cannot open %s\n", argv[1]); return 1; }
  time_t now = time(NULL);
  ra_sim_collateral_opts o;
  memset(&o, 0, sizeof o);
  if (expired) {
    o.issue_date = now - 40 * 86400;
    o.next_update = now - 10 * 86400;
  }
  char *body = NULL;
  if (outdated) {
    time_t is = o.issue_date ? o.issue_date : now - 86400;
    body = ra_sim_tcb_info_body(is, o.next_update ? o.next_update : is + 30 * 86400);
    /* the platform's (first) level: the one whose tcb has sgxtcbcomponents */
    const char *from = "\"tcbStatus\":\"UpToDate\"},{\"tcb\":{\"sgxtcbcomponents\"";
    const char *to = "\"tcbStatus\":\"OutOfDate\",\"advisoryIDs\":[\"INTEL-SA-00615\",\"INTEL-SA-00828\"]},"
                     "{\"tcb\":{\"sgxtcbcomponents\"";
    char *at = body ? strstr(body, from) : NULL;
    if (!at) { fprintf(stderr, "sim-collateral: the sim's TCB info has changed shape\n"); return 1; }
    char *forged = malloc(strlen(body) + strlen(to) + 1);
    if (!forged) return 1;
    sprintf(forged, "%.*s%s%s", (int)(at - body), body, to, at + strlen(from));
    free(body);
    body = forged;
    o.tcb_info = body;
  }
  char *json;
  size_t len;
  int rc = ra_sim_collateral_json(sim, &o, &json, &len);
  free(body);
  ra_sim_free(sim);
  if (rc) { fprintf(stderr, "sim-collateral: %d\n", rc); return 1; }
  FILE *f = fopen(argv[2], "wb");
  if (!f || fwrite(json, 1, len, f) != len || fclose(f)) { fprintf(stderr, "sim-collateral: cannot write %s\n", argv[2]); return 1; }
  free(json);
  return 0;
}
