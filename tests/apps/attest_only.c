/* tests/apps/attest_only.c: a verifier-only program, built against the
 * installed libraloop-attest alone (`pkg-config --cflags --libs
 * raloop-attest`): it verifies the quote file argv[1] at the time argv[2]
 * (Unix seconds) against the Intel SGX Root CA, signature only, and prints
 * the verdict. Exit 0 when the quote is valid, 1 when not, 2 on usage or
 * system errors. */
#include <raloop/attest/quote/verify.h>
#include <raloop/core/error.h>
#include <raloop/core/file.h>

#include <stdio.h>
#include <stdlib.h>

static int verify_file(const char *path, time_t at) {
  uint8_t *quote = NULL;
  size_t len = 0;
  ra_verifier *v = NULL;
  int rc = ra_file_read(path, 1u << 20, &quote, &len);
  if (rc == 0) rc = ra_verifier_new(0, &v);
  if (rc) {
    fprintf(stderr, "attest_only: %s: %s (%s)\n", path, ra_strerror(rc), ra_err_name(rc));
    free(quote);
    return 2;
  }
  ra_policy pol = {.signature_only = true};
  ra_verify_opts opts = {.at = at};
  ra_verdict vd;
  rc = ra_verify_quote(v, quote, len, &opts, &pol, &vd);
  printf("%s: %s %s: %s (chain %d, root %s)\n", path, rc == 0 ? "VALID" : "INVALID",
         ra_err_name(vd.err), vd.msg, vd.chain_len, vd.root_subject);
  ra_verifier_free(v);
  free(quote);
  return rc == 0 ? 0 : 1;
}

int main(int argc, char **argv) {
  if (argc != 3) {
    fprintf(stderr, "usage: attest_only QUOTE UNIX_TIME\n");
    return 2;
  }
  return verify_file(argv[1], (time_t)strtoll(argv[2], NULL, 10));
}
