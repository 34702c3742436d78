/* tests/fuzz/secrets_root.h: the simulated root the seeds of secrets_fuzz.c
 * (tests/fuzz/corpus/secrets/challenge-*-{cert,bundle}) were made under. */
static const char secrets_fuzz_root[] =
  "-----BEGIN CERTIFICATE-----\n"
  "MIIB7zCCAZagAwIBAgIQKWd7PjfOx/Jg+2LS0OYL6jAKBggqhkjOPQQDAjBGMSUw\n"
  "IwYDVQQDDBxyYWxvb3AgU2ltdWxhdGVkIFNHWCBSb290IENBMR0wGwYDVQQKDBRy\n"
  "YWxvb3Agc2ltdWxhdGVkIFRFRTAeFw0yNjEyMDEwNzE4MDFaFw0zNjExMzAwNzE4\n"
  "MDFaMEYxJTAjBgNVBAMMHHJhbG9vcCBTaW11bGF0ZWQgU0dYIFJvb3QgQ0ExHTAb\n"
  "BgNVBAoMFHJhbG9vcCBzaW11bGF0ZWQgVEVFMFkwEwYHKoZIzj0CAQYIKoZIzj0D\n"
  "AQcDQgAEX58FOEc8ooLgtCT5nrCcIQ+2ixPl3WUM9JEedg1Ioq+M35MyN7Gg7JKN\n"
  "rcBboUOwvMCD3ppQFamPWAo7gymeLqNmMGQwHQYDVR0OBBYEFN8/F0dMVg41kP4f\n"
  "KV4DZ7dcEaXZMB8GA1UdIwQYMBaAFN8/F0dMVg41kP4fKV4DZ7dcEaXZMA4GA1Ud\n"
  "DwEB/wQEAwIBBjASBgNVHRMBAf8ECDAGAQH/AgEBMAoGCCqGSM49BAMCA0cAMEQC\n"
  "IBdF1vVLAFoELsAK0iFE+YjYKy5JrDpeY0qy6+VKYnbAAiA7Udn326ZEkZZcw0M3\n"
  "lUByveGYRkaK2d5sWsJz/0pryw==\n"
  "-----END CERTIFICATE-----\n"
  ;
