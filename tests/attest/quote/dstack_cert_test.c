/* tests/attest/quote/dstack_cert_test.c: dstack's attested app certificate
 * (dstack_cert.h). Certificates are made by the stand-in agent's generator
 * (tests/attest/dstack/agent_core.c: P-256, dstack's extensions, a sim
 * quote binding the key as dstack does), and one is fetched from the
 * running stand-in agent's Info, as a dstack app would get its own. No
 * public dstack RA-TLS certificate was found in Dstack-TEE/dstack to use as
 * a vector (docs/DSTACK.md). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <pthread.h>

#include "tests/attest/dstack/agent_core.c"

#include "raloop/attest/quote/dstack.h"
#include "raloop/attest/quote/dstack_cert.h"
#include "raloop/attest/quote/verify.h"
#include "raloop/core/error.h"

static char g_tmp[256];
static ra_sim *g_sim;

static const char *sub(const char *name) {
  static char p[4][512];
  static int i;
  i = (i + 1) % 4;
  snprintf(p[i], sizeof p[i], "%s/%s", g_tmp, name);
  return p[i];
}

static int setup(void **state) {
  (void)state;
  snprintf(g_tmp, sizeof g_tmp, "/tmp/ra-dstack-cert-test-XXXXXX");
  assert_non_null(mkdtemp(g_tmp));
  assert_int_equal(ra_sim_open(sub("sim"), &g_sim), 0);
  return 0;
}

static int teardown(void **state) {
  (void)state;
  ra_sim_free(g_sim);
  char cmd[400];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", g_tmp);
  return system(cmd) == 0 ? 0 : -1;
}

static ra_verifier *sim_verifier(void) {
  ra_verifier *v;
  assert_int_equal(ra_verifier_new(RA_VERIFIER_NO_DEFAULT_ROOT, &v), 0);
  assert_true(ra_verifier_add_root_file(v, ra_sim_root_pem_path(g_sim)) > 0);
  return v;
}

/* verifies pem with a signature-only policy; returns vd.err (0: valid) */
static int verify(const char *pem, ra_dstack_identity *id, ra_verdict *vd) {
  ra_verifier *v = sim_verifier();
  ra_policy pol = {.signature_only = true};
  int rc = ra_dstack_cert_verify(v, (const uint8_t *)pem, strlen(pem), NULL, &pol, id, vd);
  ra_verifier_free(v);
  assert_int_equal(rc, vd->err ? -EACCES : 0);
  return vd->err;
}

static void test_valid(void **state) {
  (void)state;
  agent_opts o = {.app_id = "00112233445566778899aabbccddeeff00112233"};
  char *pem = agent_app_cert(g_sim, &o, NULL);
  assert_non_null(pem);
  ra_dstack_cert c;
  assert_int_equal(ra_dstack_cert_parse((const uint8_t *)pem, strlen(pem), &c), 0);
  assert_non_null(c.quote);
  assert_non_null(c.event_log);
  assert_true(c.has_app_id);
  assert_int_equal(c.app_id_len, 20);
  assert_null(c.attestation);
  ra_dstack_cert_clear(&c);
  ra_dstack_identity id;
  ra_verdict vd;
  assert_int_equal(verify(pem, &id, &vd), 0);
  assert_non_null(strstr(vd.msg, "the quote binds the certificate key; RTMR0-3 replayed"));
  assert_int_equal(id.tee, RA_TEE_TDX);
  char h[129];
  ra_hex_encode(id.app_id, id.app_id_len, h);
  assert_string_equal(h, "00112233445566778899aabbccddeeff00112233");
  ra_hex_encode(id.compose_hash, id.compose_hash_len, h);
  assert_string_equal(h, AGENT_COMPOSE_HASH);
  assert_true(id.has_instance_id && id.has_key_provider);
  ra_sim_td td;
  ra_sim_td_default(&td);
  assert_memory_equal(id.mrtd, td.mrtd, 48);

  /* DER works too */
  BIO *b = BIO_new_mem_buf(pem, -1);
  X509 *x = PEM_read_bio_X509(b, NULL, NULL, NULL);
  unsigned char *der = NULL;
  int dl = i2d_X509(x, &der);
  ra_verifier *v = sim_verifier();
  ra_policy pol = {.signature_only = true};
  assert_int_equal(ra_dstack_cert_verify(v, der, (size_t)dl, NULL, &pol, NULL, &vd), 0);
  /* a measurement policy applies: another MRTD is refused */
  ra_tdx_expect ex = {.has = RA_TDX_MRTD};
  memset(ex.mrtd, 0x11, 48);
  ra_policy strict = {.tdx = &ex, .n_tdx = 1};
  assert_int_equal(ra_dstack_cert_verify(v, der, (size_t)dl, NULL, &strict, &id, &vd), -EACCES);
  assert_int_equal(vd.err, RA_ERR_MEASUREMENT);
  assert_false(id.has_app_id); /* nothing said on failure */
  /* ... and the right one accepted */
  memcpy(ex.mrtd, td.mrtd, 48);
  assert_int_equal(ra_dstack_cert_verify(v, der, (size_t)dl, NULL, &strict, &id, &vd), 0);
  /* the Intel root alone refuses the sim's quote */
  ra_verifier *intel;
  assert_int_equal(ra_verifier_new(0, &intel), 0);
  assert_int_equal(ra_dstack_cert_verify(intel, der, (size_t)dl, NULL, &pol, NULL, &vd), -EACCES);
  assert_int_equal(vd.err, RA_ERR_ROOT_UNTRUSTED);
  ra_verifier_free(intel);
  ra_verifier_free(v);
  OPENSSL_free(der);
  X509_free(x);
  BIO_free(b);
  free(pem);
}

/* dstack 0.5.6+: the attestation extension (SCALE V0) instead of 1.1/1.2 */
static void test_attestation_ext(void **state) {
  (void)state;
  agent_opts o = {.app_id = "0102030405060708090a0b0c0d0e0f1011121314"};
  cert_forge f = {.attestation = true};
  char *pem = agent_app_cert(g_sim, &o, &f);
  ra_dstack_cert c;
  assert_int_equal(ra_dstack_cert_parse((const uint8_t *)pem, strlen(pem), &c), 0);
  assert_null(c.quote);
  assert_null(c.event_log);
  assert_non_null(c.attestation);
  ra_dstack_cert_clear(&c);
  ra_dstack_identity id;
  ra_verdict vd;
  assert_int_equal(verify(pem, &id, &vd), 0);
  assert_non_null(strstr(vd.msg, "the quote binds the certificate key; RTMR 3 replayed from 7 events"));
  char h[129];
  ra_hex_encode(id.app_id, id.app_id_len, h);
  assert_string_equal(h, "0102030405060708090a0b0c0d0e0f1011121314");
  assert_true(id.has_compose_hash && id.has_instance_id && id.has_key_provider);
  free(pem);
}

static void forged(const cert_forge *f, int want, const char *says) {
  agent_opts o = {0};
  char *pem = agent_app_cert(g_sim, &o, f);
  assert_non_null(pem);
  ra_dstack_identity id;
  ra_verdict vd;
  int rc = verify(pem, &id, &vd);
  if (rc != want) fail_msg("got %d (%s), want %d", rc, vd.msg, want);
  if (!strstr(vd.msg, says)) fail_msg("'%s' does not say '%s'", vd.msg, says);
  assert_false(id.has_app_id);
  free(pem);
}

static void test_forged(void **state) {
  (void)state;
  forged(&(cert_forge){.bind_other_key = true}, RA_ERR_BINDING, "does not bind the certificate's key");
  forged(&(cert_forge){.no_quote = true}, -EINVAL, "no dstack quote (1.3.6.1.4.1.62397.1.1) or attestation");
  forged(&(cert_forge){.attestation_only = true}, -ENOTSUP, "not supported yet (msgpack");
  forged(&(cert_forge){.attestation = true, .att_other_rd = true}, RA_ERR_BINDING,
         "the attestation's report_data is not its quote's");
  forged(&(cert_forge){.no_event_log = true}, -EINVAL, "no event log extension");
  forged(&(cert_forge){.app_id_ext = "ffffffffffffffffffffffffffffffffffffffff"}, RA_ERR_MEASUREMENT,
         "disagrees with the attested app-id");
  /* a log that does not replay to the quote: another app's */
  agent_opts other = {.app_id = "eeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeee"};
  char *el = agent_event_log(&other);
  forged(&(cert_forge){.event_log = el, .app_id_ext = AGENT_APP_ID}, RA_ERR_MEASUREMENT,
         "RTMR3 mismatch");
  forged(&(cert_forge){.attestation = true, .event_log = el, .app_id_ext = AGENT_APP_ID},
         RA_ERR_MEASUREMENT, "RTMR3 mismatch");
  free(el);
  forged(&(cert_forge){.event_log = "[{\"imr\":"}, -EINVAL, "is not a dstack event log");
}

static void test_not_a_cert(void **state) {
  (void)state;
  ra_dstack_cert c;
  assert_int_equal(ra_dstack_cert_parse((const uint8_t *)"hello", 5, &c), -EINVAL);
  assert_null(c.spki);
  ra_verifier *v = sim_verifier();
  ra_policy pol = {.signature_only = true};
  ra_verdict vd;
  assert_int_equal(ra_dstack_cert_verify(v, (const uint8_t *)"hello", 5, NULL, &pol, NULL, &vd), -EACCES);
  assert_int_equal(vd.err, RA_ERR_CERT_PARSE);
  ra_verifier_free(v);
  const char *pem = "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n";
  assert_int_equal(ra_dstack_cert_parse((const uint8_t *)pem, strlen(pem), &c), -EINVAL);
}

typedef struct running {
  pthread_t th;
  agent_opts o;
  volatile int stop, ready;
} running;

static void *agent_thread(void *arg) {
  running *r = arg;
  agent_run(&r->o, &r->stop, 0, &r->ready);
  return NULL;
}

/* The app certificate from the agent's Info, verified */
static void test_from_agent_info(void **state) {
  (void)state;
  running r = {0};
  char sock[512];
  snprintf(sock, sizeof sock, "%s", sub("dstack.sock"));
  r.o.socket = sock;
  r.o.sim_dir = sub("sim");
  assert_int_equal(pthread_create(&r.th, NULL, agent_thread, &r), 0);
  for (int i = 0; i < 500 && !r.ready; i++) usleep(10000);
  assert_true(r.ready);
  ra_dstack_info info;
  assert_int_equal(ra_dstack_get_info(sock, 0, &info), 0);
  assert_non_null(info.app_cert);
  ra_dstack_identity id;
  ra_verdict vd;
  assert_int_equal(verify(info.app_cert, &id, &vd), 0);
  char h[129];
  ra_hex_encode(id.app_id, id.app_id_len, h);
  assert_string_equal(h, info.app_id);
  ra_dstack_info_clear(&info);
  r.stop = 1;
  pthread_join(r.th, NULL);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_valid),
      cmocka_unit_test(test_forged),
      cmocka_unit_test(test_attestation_ext),
      cmocka_unit_test(test_not_a_cert),
      cmocka_unit_test(test_from_agent_info),
  };
  return cmocka_run_group_tests(tests, setup, teardown);
}
