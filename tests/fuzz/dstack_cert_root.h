/* tests/fuzz/dstack_cert_root.h: the root of the simulated TEE that made
 * the certificate seeds in corpus/dstack/ (cert-*; generated once, with
 * the stand-in agent's generator, tests/attest/dstack/agent_core.c). */
/* a time inside the validity of that root's hierarchy (made 2026-12-01) */
#define DSTACK_FUZZ_SIM_TIME 1796198226

static const char dstack_fuzz_sim_root[] =
    "-----BEGIN CERTIFICATE-----\n"
    "MIIB7zCCAZagAwIBAgIQRcxUPxkUVzp0nEisJ0yrZTAKBggqhkjOPQQDAjBGMSUw\n"
    "IwYDVQQDDBxyYWxvb3AgU2ltdWxhdGVkIFNHWCBSb290IENBMR0wGwYDVQQKDBRy\n"
    "YWxvb3Agc2ltdWxhdGVkIFRFRTAeFw0yNjEyMDEwNjU3MDZaFw0zNjExMzAwNjU3\n"
    "MDZaMEYxJTAjBgNVBAMMHHJhbG9vcCBTaW11bGF0ZWQgU0dYIFJvb3QgQ0ExHTAb\n"
    "BgNVBAoMFHJhbG9vcCBzaW11bGF0ZWQgVEVFMFkwEwYHKoZIzj0CAQYIKoZIzj0D\n"
    "AQcDQgAEIy4hJcVRB5k/s4/HoaYjtgSPNvs0t5iS7JcoomyFnVhojU6dkkSHkesQ\n"
    "cOLYaRWNe655wWoLorXC3yTnl3dQw6NmMGQwHQYDVR0OBBYEFLQP+ZDyuMW20ude\n"
    "8hla/NA/ObSqMB8GA1UdIwQYMBaAFLQP+ZDyuMW20ude8hla/NA/ObSqMA4GA1Ud\n"
    "DwEB/wQEAwIBBjASBgNVHRMBAf8ECDAGAQH/AgEBMAoGCCqGSM49BAMCA0cAMEQC\n"
    "IDIvqnLE2Q7sKycVoZfD6OlwPte22rdRKgMANEjy3QtpAiAKNTA6reAPoPkh02JA\n"
    "iI62LAZKgnlCpKZ3SDNn5ZF1Ow==\n"
    "-----END CERTIFICATE-----\n"
    ;
