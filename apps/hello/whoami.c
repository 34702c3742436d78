/* apps/hello/whoami.c: see whoami.h. */
#include "apps/hello/whoami.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "apps/common/json.h"
#include "raloop/attest/quote/quote.h"
#include "raloop/attest/quote/sim.h"
#include "raloop/core/log.h"
#include "raloop/http/response.h"

void hello_client_init(hello_client *hc) {
  memset(hc, 0, sizeof *hc);
  policy_flags_init(&hc->pf, POLICY_FLAGS_BASIC | POLICY_FLAGS_TUNNEL | POLICY_FLAGS_COLLATERAL |
                                 POLICY_FLAGS_DSTACK);
  hc->pf.prefix = "--client-";
}

int hello_client_parse(hello_client *hc, const char *arg, const char *next) {
  int pr = policy_flags_parse(&hc->pf, arg, next);
  if (pr >= 0) return pr;
  const policy_flags *pf = &hc->pf;
  const char *f = pf->error_flag;
  switch (pf->error) {
  case POLICY_FLAG_NO_VALUE: fprintf(stderr, "ra-hello: %s needs a value\n", f); break;
  case POLICY_FLAG_BAD_HEX: fprintf(stderr, "ra-hello: %s needs %zu hex digits\n", f, 2 * pf->error_bytes); break;
  case POLICY_FLAG_BAD_HEX_VAR:
    fprintf(stderr, "ra-hello: %s needs hex of 1 to %zu bytes\n", f, pf->error_bytes);
    break;
  case POLICY_FLAG_BAD_STATUS:
    fprintf(stderr, "ra-hello: %s: a comma-separated list of Intel's TCB statuses\n", f);
    break;
  case POLICY_FLAG_TOO_MANY: fprintf(stderr, "ra-hello: too many %s\n", f); break;
  default: fprintf(stderr, "ra-hello: bad %s\n", f); break;
  }
  return -1;
}

int hello_client_build(hello_client *hc) {
  policy_flags *pf = &hc->pf;
  if (!pf->any) return 0;
  if (pf->no_binding) {
    fprintf(stderr, "ra-hello: --client-no-binding: a client quote is always bound to its session\n");
    return -1;
  }
  /* as ra-curl: Intel's root alone vouches for every TDX machine there is */
  if (!pf->tdx.has && !pf->has_app_id && !pf->has_compose_hash && !pf->trust_sim_dir &&
      pf->n_roots == 0 && !pf->any_measurement) {
    fprintf(stderr, "ra-hello: with the Intel root, name the clients' expected measurements "
                    "(--client-mrtd, --client-rtmr0..3, --client-app-id), or pin your own root "
                    "(--client-root, --client-trust-sim), or accept any genuine TEE with "
                    "--client-any-measurement-insecure\n");
    return -1;
  }
  if (ra_verifier_new(pf->n_roots ? RA_VERIFIER_NO_DEFAULT_ROOT : 0, &hc->v)) return -1;
  for (size_t i = 0; i < pf->n_roots; i++)
    if (ra_verifier_add_root_file(hc->v, pf->roots[i]) <= 0) {
      fprintf(stderr, "ra-hello: cannot load client root %s\n", pf->roots[i]);
      return -1;
    }
  if (pf->trust_sim_dir) {
    /* created on first use (the clients' sim may not have run yet): a
     * simulated TEE's keys, which is all such a root stands for */
    ra_sim *sim = NULL;
    int src = ra_sim_open(pf->trust_sim_dir, &sim);
    ra_sim_free(sim);
    if (src) {
      fprintf(stderr, "ra-hello: --client-trust-sim %s: %s\n", pf->trust_sim_dir, ra_strerror(src));
      return -1;
    }
    char p[4096];
    snprintf(p, sizeof p, "%s/%s", pf->trust_sim_dir, RA_SIM_ROOT_FILE);
    if (ra_verifier_add_root_file(hc->v, p) <= 0) {
      fprintf(stderr, "ra-hello: cannot load the clients' simulated root %s\n", p);
      return -1;
    }
    ra_warn("client attestation: trusting the SIMULATED TEE root %s: its quotes prove nothing", p);
  }
  int lrc = policy_flags_load_collateral(pf, &hc->coll);
  if (lrc) {
    fprintf(stderr, "ra-hello: %s: %s\n", pf->collateral, ra_strerror(lrc));
    return -1;
  }
  ra_policy *pol = &hc->cp.policy;
  hc->ex = pf->tdx;
  hc->ex.has &= ~(uint32_t)RA_TDX_REPORT_DATA; /* report_data is the session binding */
  if (hc->ex.has) {
    pol->tdx = &hc->ex;
    pol->n_tdx = 1;
  } else {
    pol->signature_only = true; /* the roots, the binding, the app id decide */
  }
  pol->allow_debug = pf->allow_debug;
  policy_flags_collateral_policy(pf, pol);
  hc->cp.verifier = hc->v;
  hc->cp.collateral = hc->coll;
  if (pf->has_app_id) {
    hc->cp.app_id = pf->app_id;
    hc->cp.app_id_len = pf->app_id_len;
  }
  if (pf->has_compose_hash) {
    hc->cp.compose_hash = pf->compose_hash;
    hc->cp.compose_hash_len = pf->compose_hash_len;
  }
  hc->active = true;
  return 0;
}

const ra_tunnel_client_policy *hello_client_policy(const hello_client *hc) {
  return hc->active ? &hc->cp : NULL;
}

void hello_client_free(hello_client *hc) {
  ra_collateral_free(hc->coll);
  ra_verifier_free(hc->v);
  hc->coll = NULL;
  hc->v = NULL;
}

static void hexs(char *out, const uint8_t *p, size_t n) {
  for (size_t i = 0; i < n; i++) sprintf(out + 2 * i, "%02x", p[i]);
  out[2 * n] = '\0';
}

void hello_whoami(ra_req *req, ra_res *res, void *ud) {
  (void)ud;
  const ra_client_identity *id = ra_req_client_identity(req);
  char *body = NULL;
  size_t len = 0;
  FILE *f = open_memstream(&body, &len);
  if (!id || !f) {
    if (f) fclose(f);
    free(body);
    ra_res_send_text(res, 500, "Internal Server Error\n");
    return;
  }
  json_out j;
  json_init(&j, f, 0);
  char hex[2 * 48 + 1];
  json_begin(&j, NULL, '{');
  bool tdx = id->tee == RA_TEE_TDX;
  json_string(&j, "tee", tdx ? "tdx" : "sgx");
  json_bool(&j, "simulated", id->simulated);
  json_bool(&j, "debug", id->debug);
  if (tdx) {
    hexs(hex, id->mrtd, 48);
    json_string(&j, "mrtd", hex);
    static const char *const rn[4] = {"rtmr0", "rtmr1", "rtmr2", "rtmr3"};
    for (int i = 0; i < 4; i++) {
      hexs(hex, id->rtmr[i], 48);
      json_string(&j, rn[i], hex);
    }
  } else {
    hexs(hex, id->mrtd, 32);
    json_string(&j, "mr_enclave", hex);
    hexs(hex, id->mr_signer, 32);
    json_string(&j, "mr_signer", hex);
  }
  if (id->has_app_id) hexs(hex, id->app_id, id->app_id_len), json_string(&j, "app_id", hex);
  if (id->has_compose_hash)
    hexs(hex, id->compose_hash, id->compose_hash_len), json_string(&j, "compose_hash", hex);
  if (id->has_instance_id)
    hexs(hex, id->instance_id, id->instance_id_len), json_string(&j, "instance_id", hex);
  json_string(&j, "tcb_status", id->tcb_evaluated ? id->tcb_status : "not evaluated");
  json_string(&j, "root", id->root);
  json_end(&j);
  fputc('\n', f);
  fclose(f);
  ra_res_send(res, 200, "application/json", body, len);
  free(body);
}
