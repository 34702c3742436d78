/* apps/secrets/secrets.h: the subcommands of ra-secrets and their exit
 * codes (docs/SECRETS.md, README "The strict secret-release service"). */
#ifndef RA_APPS_SECRETS_SECRETS_H
#define RA_APPS_SECRETS_SECRETS_H

enum {
  SEC_EXIT_OK = 0,
  SEC_EXIT_FAIL = 1, /* anything else: the server's internal error, busy, ... */
  SEC_EXIT_USAGE = 2,
  SEC_EXIT_KEY = 3,       /* serve/put: the store key; fetch: the client's own attestation */
  SEC_EXIT_OWN = 4,       /* serve: the server's own attestation cannot be made */
  SEC_EXIT_CONNECT = 4,   /* fetch: connection, HTTP, or a malformed answer */
  SEC_EXIT_SERVER = 5,    /* fetch: the server's attestation refused (before asking) */
  SEC_EXIT_REFUSED = 6,   /* fetch: the server refused the client's attestation */
  SEC_EXIT_CHALLENGE = 7, /* fetch: the challenge response refused (expired, used, signature) */
  SEC_EXIT_NOT_FOUND = 8, /* fetch: no such secret */
};

int sec_cmd_serve(int argc, char **argv);
int sec_cmd_put(int argc, char **argv);
int sec_cmd_fetch(int argc, char **argv);
/* RATLS_STRICT: unset/true 1, false 0, anything else -1 (fail closed). */
int sec_strict_from_env(void);

#endif
