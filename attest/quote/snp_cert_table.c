/* attest/quote/snp_cert_table.c: AMD's SEV-SNP certificate table. Every
 * entry is read only after checking that its 24 bytes are inside the
 * buffer, and every (offset, length) against the buffer in 64 bits. */
#include "raloop/attest/quote/snp_cert_table.h"

#include <errno.h>
#include <stdbool.h>
#include <string.h>

#define ENTRY       24
#define MAX_ENTRIES 64

/* RFC 4122 byte order */
static const uint8_t k_guid[5][16] = {
    {0x63, 0xda, 0x75, 0x8d, 0xe6, 0x64, 0x45, 0x64, 0xad, 0xc5, 0xf4, 0xb9, 0x3b, 0xe8, 0xac,
     0xcd}, /* VCEK */
    {0xa8, 0x07, 0x4b, 0xc2, 0xa2, 0x5a, 0x48, 0x3e, 0xaa, 0xe6, 0x39, 0xc0, 0x45, 0xa0, 0xb8,
     0xa1}, /* VLEK */
    {0x4a, 0xb7, 0xb3, 0x79, 0xbb, 0xac, 0x4f, 0xe4, 0xa0, 0x2f, 0x05, 0xae, 0xf3, 0x27, 0xc7,
     0x82}, /* ASK */
    {0xc0, 0xb4, 0x06, 0xa4, 0xa8, 0x03, 0x49, 0x52, 0x97, 0x43, 0x3f, 0xb6, 0x01, 0x4c, 0xd0,
     0xae}, /* ARK */
    {0x92, 0xf8, 0x1b, 0xc3, 0x58, 0x11, 0x4d, 0x3d, 0x97, 0xff, 0xd1, 0x9f, 0x88, 0xdc, 0x67,
     0xea}, /* CRL */
};

/* the UEFI form: the first three fields little-endian */
static void mixed(const uint8_t in[16], uint8_t out[16]) {
  static const uint8_t order[16] = {3, 2, 1, 0, 5, 4, 7, 6, 8, 9, 10, 11, 12, 13, 14, 15};
  for (int i = 0; i < 16; i++) out[i] = in[order[i]];
}

static uint32_t le32(const uint8_t *p) {
  return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

int ra_snp_cert_table_parse(const uint8_t *buf, size_t len, ra_snp_cert_table *out) {
  if (!out) return -EINVAL;
  memset(out, 0, sizeof *out);
  if (len == 0) return 0;
  if (!buf) return -EINVAL;
  size_t n = 0;
  for (;; n++) {
    if (n > MAX_ENTRIES || (n + 1) * ENTRY > len) return -EINVAL;
    const uint8_t *e = buf + n * ENTRY;
    bool zero = true;
    for (int i = 0; i < ENTRY; i++) zero &= e[i] == 0;
    if (zero) break;
  }
  size_t header = (n + 1) * ENTRY;
  ra_snp_cert_table t; /* filled, then copied out only when all of it parsed */
  memset(&t, 0, sizeof t);
  const uint8_t **slot[5] = {&t.vcek, &t.vlek, &t.ask, &t.ark, &t.crl};
  size_t *slot_len[5] = {&t.vcek_len, &t.vlek_len, &t.ask_len, &t.ark_len, &t.crl_len};
  for (size_t i = 0; i < n; i++) {
    const uint8_t *e = buf + i * ENTRY;
    uint64_t off = le32(e + 16), l = le32(e + 20);
    if (l == 0 || off < header || off + l > len) return -EINVAL;
    for (int k = 0; k < 5; k++) {
      uint8_t m[16];
      mixed(k_guid[k], m);
      if (memcmp(e, k_guid[k], 16) != 0 && memcmp(e, m, 16) != 0) continue;
      if (*slot[k]) return -EINVAL;
      *slot[k] = buf + off;
      *slot_len[k] = (size_t)l;
    }
  }
  t.n_entries = (int)n;
  *out = t;
  return 0;
}
