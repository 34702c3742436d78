/* ws/handshake.c: key validation, accept value, token lists. */
#include "raloop/ws/handshake.h"

#include <errno.h>
#include <string.h>
#include <strings.h>

#include <openssl/evp.h>
#include <openssl/rand.h>

static const char GUID[] = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

static ra_str trim(ra_str s) {
  while (s.len && (s.ptr[0] == ' ' || s.ptr[0] == '\t')) s.ptr++, s.len--;
  while (s.len && (s.ptr[s.len - 1] == ' ' || s.ptr[s.len - 1] == '\t')) s.len--;
  return s;
}

static bool b64_char(char c) {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
         c == '+' || c == '/';
}

bool ra_ws_key_valid(ra_str key) {
  key = trim(key);
  if (key.len != RA_WS_KEY_LEN || key.ptr[22] != '=' || key.ptr[23] != '=') return false;
  for (size_t i = 0; i < 22; i++)
    if (!b64_char(key.ptr[i])) return false;
  return true;
}

int ra_ws_accept_value(ra_str key, char out[RA_WS_ACCEPT_LEN + 1]) {
  key = trim(key);
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int mdlen = 0;
  EVP_MD_CTX *ctx = EVP_MD_CTX_new();
  int ok = ctx && EVP_DigestInit_ex(ctx, EVP_sha1(), NULL) == 1 &&
           EVP_DigestUpdate(ctx, key.ptr, key.len) == 1 &&
           EVP_DigestUpdate(ctx, GUID, sizeof GUID - 1) == 1 &&
           EVP_DigestFinal_ex(ctx, md, &mdlen) == 1 && mdlen == 20;
  EVP_MD_CTX_free(ctx);
  if (!ok) return -EIO;
  EVP_EncodeBlock((unsigned char *)out, md, 20); /* writes 28 chars + NUL */
  return 0;
}

int ra_ws_key_generate(char out[RA_WS_KEY_LEN + 1]) {
  unsigned char raw[16];
  if (RAND_bytes(raw, sizeof raw) != 1) return -EIO;
  EVP_EncodeBlock((unsigned char *)out, raw, sizeof raw); /* 24 chars + NUL */
  return 0;
}

size_t ra_ws_split_list(ra_str list, ra_str *out, size_t max) {
  size_t n = 0, i = 0;
  while (i <= list.len) {
    size_t j = i;
    while (j < list.len && list.ptr[j] != ',') j++;
    ra_str item = trim(ra_str_make(list.ptr + i, j - i));
    if (item.len) {
      if (n < max) out[n] = item;
      n++;
    }
    i = j + 1;
  }
  return n;
}

bool ra_ws_has_token(ra_str list, const char *token) {
  size_t tl = strlen(token), i = 0;
  while (i <= list.len) {
    size_t j = i;
    while (j < list.len && list.ptr[j] != ',') j++;
    ra_str item = trim(ra_str_make(list.ptr + i, j - i));
    if (item.len == tl && strncasecmp(item.ptr, token, tl) == 0) return true;
    i = j + 1;
  }
  return false;
}

ra_str ra_ws_choose_protocol(ra_ws_select_fn select, const ra_req *req, const ra_str *offered,
                             size_t n, void *ud) {
  ra_str none = RA_STR("");
  if (!select || !n) return none;
  if (n > RA_WS_MAX_PROTOCOLS) n = RA_WS_MAX_PROTOCOLS;
  int pick = select(req, offered, n, ud);
  return pick >= 0 && (size_t)pick < n ? offered[pick] : none;
}
