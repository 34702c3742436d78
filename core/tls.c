/* core/tls.c: TLS contexts (server with SNI, client with verification
 * hooks) and the per-stream engine over two memory BIOs.
 *
 * Why memory BIOs rather than SSL_set_fd: the stream keeps its own socket
 * I/O, write queue, watermarks and timeouts, so TLS changes none of them;
 * the engine only turns ciphertext into plaintext and back, which also
 * makes it testable and fuzzable without sockets. */
#include "raloop/core/tls_internal.h"

#include <arpa/inet.h>
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>

#include "raloop/core/error.h"

#define DEFAULT_HANDSHAKE_MS 10000u
#define WBIO_KEEP (64u * 1024u) /* a larger output buffer is released after use */

struct ra_tls_ctx {
  int refs;
  bool server;
  size_t n;          /* servers: one SSL_CTX per certificate, [0] the default */
  SSL_CTX **ssl;
  X509 **leaf;       /* borrowed from ssl[i] */
  uint64_t hs_ms;
  unsigned char *alpn; /* wire format (length-prefixed), NULL: none */
  size_t alpn_len;
  /* clients */
  bool insecure, cb_only;
  ra_tls_verify_cb verify;
  void *verify_ud;
};

/* ---- errors ---------------------------------------------------------------- */

static void seterr(char *err, size_t len, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void seterr(char *err, size_t len, const char *fmt, ...) {
  if (!err || !len) return;
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(err, len, fmt, ap);
  va_end(ap);
}

/* OpenSSL's last reason, short ("wrong version number"); clears the queue. */
static const char *ossl_reason(char *buf, size_t len) {
  unsigned long e = ERR_peek_last_error();
  const char *r = e ? ERR_reason_error_string(e) : NULL;
  if (r)
    snprintf(buf, len, "%s", r);
  else if (e)
    ERR_error_string_n(e, buf, len);
  else
    snprintf(buf, len, "unknown OpenSSL error");
  ERR_clear_error();
  return buf;
}

/* ---- certificates ---------------------------------------------------------- */

static int readable(const char *path, char *err, size_t errlen) {
  FILE *f = fopen(path, "r");
  if (!f) {
    seterr(err, errlen, "cannot read %s: %s", path, strerror(errno));
    return RA_ERR_TLS_CONFIG;
  }
  fclose(f);
  return 0;
}

static int load_cert(SSL_CTX *ctx, const ra_tls_cert *c, char *err, size_t errlen) {
  char why[160];
  ERR_clear_error();
  if (c->cert_file || c->key_file) {
    if (!c->cert_file || !c->key_file) {
      seterr(err, errlen, "a certificate needs both a cert and a key file");
      return -EINVAL;
    }
    int rc = readable(c->cert_file, err, errlen);
    if (!rc) rc = readable(c->key_file, err, errlen);
    if (rc) return rc;
    if (SSL_CTX_use_certificate_chain_file(ctx, c->cert_file) != 1) {
      seterr(err, errlen, "%s: no usable PEM certificate (%s)", c->cert_file,
             ossl_reason(why, sizeof why));
      return RA_ERR_TLS_CONFIG;
    }
    if (SSL_CTX_use_PrivateKey_file(ctx, c->key_file, SSL_FILETYPE_PEM) != 1) {
      unsigned long e = ERR_peek_last_error();
      if (ERR_GET_REASON(e) == X509_R_KEY_VALUES_MISMATCH ||
          ERR_GET_REASON(e) == X509_R_KEY_TYPE_MISMATCH) {
        ERR_clear_error();
        seterr(err, errlen, "%s does not match %s", c->key_file, c->cert_file);
      } else {
        seterr(err, errlen, "%s: no usable PEM private key (%s)", c->key_file,
               ossl_reason(why, sizeof why));
      }
      return RA_ERR_TLS_CONFIG;
    }
    if (SSL_CTX_check_private_key(ctx) != 1) {
      ERR_clear_error();
      seterr(err, errlen, "%s does not match %s", c->key_file, c->cert_file);
      return RA_ERR_TLS_CONFIG;
    }
    return 0;
  }
  if (c->cert_pem || c->key_pem) {
    if (!c->cert_pem || !c->key_pem) {
      seterr(err, errlen, "a certificate needs both a cert and a key PEM");
      return -EINVAL;
    }
    int rc = RA_ERR_TLS_CONFIG;
    X509 *x = NULL;
    EVP_PKEY *k = NULL;
    BIO *b = BIO_new_mem_buf(c->cert_pem, c->cert_pem_len ? (int)c->cert_pem_len : -1);
    BIO *kb = BIO_new_mem_buf(c->key_pem, c->key_pem_len ? (int)c->key_pem_len : -1);
    if (!b || !kb) {
      rc = -ENOMEM;
      goto out;
    }
    x = PEM_read_bio_X509(b, NULL, NULL, NULL);
    if (!x || SSL_CTX_use_certificate(ctx, x) != 1) {
      seterr(err, errlen, "certificate PEM: %s", ossl_reason(why, sizeof why));
      goto out;
    }
    X509 *ca;
    while ((ca = PEM_read_bio_X509(b, NULL, NULL, NULL))) {
      if (SSL_CTX_add0_chain_cert(ctx, ca) != 1) {
        X509_free(ca);
        seterr(err, errlen, "certificate PEM chain: %s", ossl_reason(why, sizeof why));
        goto out;
      }
    }
    ERR_clear_error(); /* the end of the PEM input */
    k = PEM_read_bio_PrivateKey(kb, NULL, NULL, NULL);
    if (!k) {
      seterr(err, errlen, "key PEM: %s", ossl_reason(why, sizeof why));
      goto out;
    }
    if (SSL_CTX_use_PrivateKey(ctx, k) != 1 || SSL_CTX_check_private_key(ctx) != 1) {
      ERR_clear_error();
      seterr(err, errlen, "the key PEM does not match the certificate PEM");
      goto out;
    }
    rc = 0;
  out:
    X509_free(x);
    EVP_PKEY_free(k);
    BIO_free(b);
    BIO_free(kb);
    return rc;
  }
  if (c->cert && c->key) {
    if (SSL_CTX_use_certificate(ctx, c->cert) != 1) {
      seterr(err, errlen, "certificate: %s", ossl_reason(why, sizeof why));
      return RA_ERR_TLS_CONFIG;
    }
    if (SSL_CTX_use_PrivateKey(ctx, c->key) != 1 || SSL_CTX_check_private_key(ctx) != 1) {
      ERR_clear_error();
      seterr(err, errlen, "the key does not match the certificate");
      return RA_ERR_TLS_CONFIG;
    }
    return 0;
  }
  seterr(err, errlen, "no certificate given");
  return -EINVAL;
}

/* "http/1.1,h2" -> wire format. */
static int alpn_wire(ra_tls_ctx *t, const char *list) {
  if (!list) list = "http/1.1";
  size_t n = strlen(list);
  if (!n) return 0;
  t->alpn = malloc(n + 1);
  if (!t->alpn) return -ENOMEM;
  size_t o = 0;
  const char *p = list;
  while (*p) {
    const char *e = strchr(p, ',');
    size_t l = e ? (size_t)(e - p) : strlen(p);
    if (l == 0 || l > 255) return -EINVAL;
    t->alpn[o++] = (unsigned char)l;
    memcpy(t->alpn + o, p, l);
    o += l;
    p += l;
    if (*p == ',') p++;
  }
  t->alpn_len = o;
  return 0;
}

/* ---- server callbacks ------------------------------------------------------- */

static int sni_cb(SSL *ssl, int *al, void *arg) {
  (void)al;
  ra_tls_ctx *t = arg;
  const char *name = SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name);
  if (!name || t->n < 2) return SSL_TLSEXT_ERR_OK;
  for (size_t i = 0; i < t->n; i++) {
    if (t->leaf[i] && X509_check_host(t->leaf[i], name, 0, 0, NULL) == 1) {
      if (i > 0) SSL_set_SSL_CTX(ssl, t->ssl[i]);
      return SSL_TLSEXT_ERR_OK;
    }
  }
  return SSL_TLSEXT_ERR_OK; /* the default certificate */
}

static int alpn_cb(SSL *ssl, const unsigned char **out, unsigned char *outlen,
                   const unsigned char *in, unsigned int inlen, void *arg) {
  (void)ssl;
  ra_tls_ctx *t = arg;
  unsigned char *sel = NULL;
  if (SSL_select_next_proto(&sel, outlen, t->alpn, (unsigned)t->alpn_len, in, inlen) !=
      OPENSSL_NPN_NEGOTIATED)
    return SSL_TLSEXT_ERR_ALERT_FATAL; /* no_application_protocol */
  *out = sel;
  return SSL_TLSEXT_ERR_OK;
}

static SSL_CTX *new_ssl_ctx(bool server) {
  SSL_CTX *c = SSL_CTX_new(server ? TLS_server_method() : TLS_client_method());
  if (!c) return NULL;
  SSL_CTX_set_min_proto_version(c, TLS1_2_VERSION);
  /* An idle connection keeps no record buffers (like nginx). */
  SSL_CTX_set_mode(c, SSL_MODE_RELEASE_BUFFERS);
  SSL_CTX_set_options(c, SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_COMPRESSION);
  if (server) {
    SSL_CTX_set_options(c, SSL_OP_CIPHER_SERVER_PREFERENCE);
    static const unsigned char sid[] = "raloop";
    SSL_CTX_set_session_id_context(c, sid, sizeof sid - 1);
  }
  return c;
}

static void ctx_free(ra_tls_ctx *t) {
  if (!t) return;
  for (size_t i = 0; i < t->n; i++) SSL_CTX_free(t->ssl[i]);
  free(t->ssl);
  free(t->leaf);
  free(t->alpn);
  free(t);
}

int ra_tls_server_ctx_new(const ra_tls_server_opts *o, ra_tls_ctx **out, char *err,
                          size_t errlen) {
  *out = NULL;
  if (err && errlen) err[0] = '\0';
  if (!o || !o->certs || !o->ncerts) {
    seterr(err, errlen, "no certificate given");
    return -EINVAL;
  }
  ra_tls_ctx *t = calloc(1, sizeof *t);
  if (!t) return -ENOMEM;
  t->refs = 1;
  t->server = true;
  t->hs_ms = o->handshake_timeout_ms ? o->handshake_timeout_ms : DEFAULT_HANDSHAKE_MS;
  t->ssl = calloc(o->ncerts, sizeof *t->ssl);
  t->leaf = calloc(o->ncerts, sizeof *t->leaf);
  int rc = -ENOMEM;
  if (!t->ssl || !t->leaf) goto fail;
  rc = alpn_wire(t, o->alpn);
  if (rc) {
    seterr(err, errlen, "bad ALPN list");
    goto fail;
  }
  for (size_t i = 0; i < o->ncerts; i++) {
    SSL_CTX *c = new_ssl_ctx(true);
    if (!c) {
      rc = -ENOMEM;
      goto fail;
    }
    t->ssl[t->n++] = c;
    rc = load_cert(c, &o->certs[i], err, errlen);
    if (rc) goto fail;
    t->leaf[i] = SSL_CTX_get0_certificate(c);
    if (t->alpn) SSL_CTX_set_alpn_select_cb(c, alpn_cb, t);
  }
  SSL_CTX_set_tlsext_servername_callback(t->ssl[0], sni_cb);
  SSL_CTX_set_tlsext_servername_arg(t->ssl[0], t);
  *out = t;
  return 0;
fail:
  ctx_free(t);
  return rc;
}

/* ---- client verification ---------------------------------------------------- */

static int verify_cb(int ok, X509_STORE_CTX *x) {
  SSL *ssl = X509_STORE_CTX_get_ex_data(x, SSL_get_ex_data_X509_STORE_CTX_idx());
  ra_tls_conn *c = ssl ? SSL_get_app_data(ssl) : NULL;
  if (!c) return ok;
  ra_tls_ctx *t = c->ctx;
  if (!ok && !t->insecure && !t->cb_only) {
    if (!c->verify_err) {
      c->verify_err = RA_ERR_TLS_CERT;
      snprintf(c->err, sizeof c->err, "certificate verify failed: %s",
               X509_verify_cert_error_string(X509_STORE_CTX_get_error(x)));
    }
    return 0;
  }
  if (t->verify && X509_STORE_CTX_get_error_depth(x) == 0 && !c->verify_called) {
    c->verify_called = true;
    int rc = t->verify(X509_STORE_CTX_get_current_cert(x), t->verify_ud);
    if (rc) {
      c->verify_err = rc < 0 ? rc : RA_ERR_TLS_CERT;
      snprintf(c->err, sizeof c->err, "certificate refused by the verify callback: %s",
               ra_strerror(c->verify_err));
      return 0;
    }
  }
  return 1;
}

int ra_tls_client_ctx_new(const ra_tls_client_opts *o, ra_tls_ctx **out, char *err,
                          size_t errlen) {
  *out = NULL;
  if (err && errlen) err[0] = '\0';
  ra_tls_client_opts def = {0};
  if (!o) o = &def;
  ra_tls_ctx *t = calloc(1, sizeof *t);
  if (!t) return -ENOMEM;
  t->refs = 1;
  t->hs_ms = o->handshake_timeout_ms ? o->handshake_timeout_ms : DEFAULT_HANDSHAKE_MS;
  t->insecure = o->insecure_skip_verify;
  t->cb_only = o->verify_cb_only && o->verify;
  t->verify = o->verify;
  t->verify_ud = o->verify_ud;
  int rc = -ENOMEM;
  t->ssl = calloc(1, sizeof *t->ssl);
  t->leaf = calloc(1, sizeof *t->leaf);
  if (!t->ssl || !t->leaf || !(t->ssl[0] = new_ssl_ctx(false))) goto fail;
  t->n = 1;
  SSL_CTX *c = t->ssl[0];
  rc = alpn_wire(t, o->alpn);
  if (rc) {
    seterr(err, errlen, "bad ALPN list");
    goto fail;
  }
  if (t->alpn && SSL_CTX_set_alpn_protos(c, t->alpn, (unsigned)t->alpn_len) != 0) {
    rc = -ENOMEM;
    goto fail;
  }
  SSL_CTX_set_verify(c, SSL_VERIFY_PEER, verify_cb);
  if (!t->insecure && !t->cb_only) {
    char why[160];
    if (o->ca_file) {
      rc = readable(o->ca_file, err, errlen);
      if (rc) goto fail;
      if (SSL_CTX_load_verify_locations(c, o->ca_file, NULL) != 1) {
        seterr(err, errlen, "%s: no usable CA certificate (%s)", o->ca_file,
               ossl_reason(why, sizeof why));
        rc = RA_ERR_TLS_CONFIG;
        goto fail;
      }
    } else if (SSL_CTX_set_default_verify_paths(c) != 1) {
      seterr(err, errlen, "system CA store: %s", ossl_reason(why, sizeof why));
      rc = RA_ERR_TLS_CONFIG;
      goto fail;
    }
  }
  if (o->client_cert) {
    rc = load_cert(c, o->client_cert, err, errlen);
    if (rc) goto fail;
  }
  *out = t;
  return 0;
fail:
  ctx_free(t);
  return rc;
}

ra_tls_ctx *ra_tls_ctx_ref(ra_tls_ctx *t) {
  if (t) t->refs++;
  return t;
}

void ra_tls_ctx_unref(ra_tls_ctx *t) {
  if (t && --t->refs == 0) ctx_free(t);
}

bool ra_tls_ctx_is_server(const ra_tls_ctx *t) { return t->server; }
SSL_CTX *ra_tls_ctx_ssl_ctx(ra_tls_ctx *t) { return t->ssl[0]; }
uint64_t ra_tls_ctx_handshake_ms(const ra_tls_ctx *t) { return t->hs_ms; }

int ra_tls_ctx_reload(ra_tls_ctx **slot, const ra_tls_server_opts *o, char *err, size_t errlen) {
  ra_tls_ctx *n;
  int rc = ra_tls_server_ctx_new(o, &n, err, errlen);
  if (rc) return rc;
  ra_tls_ctx *old = *slot;
  if (old && old->server) {
    /* Same ticket keys: tickets issued before the reload still resume. */
    unsigned char keys[80];
    if (SSL_CTX_get_tlsext_ticket_keys(old->ssl[0], keys, sizeof keys) == 1)
      SSL_CTX_set_tlsext_ticket_keys(n->ssl[0], keys, sizeof keys);
    OPENSSL_cleanse(keys, sizeof keys);
  }
  *slot = n;
  ra_tls_ctx_unref(old);
  return 0;
}

/* ---- the engine ------------------------------------------------------------- */

static bool ip_literal(const char *name, char *out, size_t outlen) {
  size_t n = strlen(name);
  if (n >= 2 && name[0] == '[' && name[n - 1] == ']') {
    name++;
    n -= 2;
  }
  if (n == 0 || n >= outlen) return false;
  memcpy(out, name, n);
  out[n] = '\0';
  unsigned char b[16];
  return inet_pton(AF_INET, out, b) == 1 || inet_pton(AF_INET6, out, b) == 1;
}

int ra_tls_conn_new(ra_tls_ctx *t, const char *server_name, ra_tls_conn **out) {
  *out = NULL;
  ra_tls_conn *c = calloc(1, sizeof *c);
  if (!c) return -ENOMEM;
  c->ssl = SSL_new(t->ssl[0]);
  c->rbio = BIO_new(BIO_s_mem());
  c->wbio = BIO_new(BIO_s_mem());
  if (!c->ssl || !c->rbio || !c->wbio) goto nomem;
  BIO_set_mem_eof_return(c->rbio, -1); /* empty means "retry", not EOF */
  SSL_set_bio(c->ssl, c->rbio, c->wbio);
  SSL_set_app_data(c->ssl, c);
  if (t->server) {
    SSL_set_accept_state(c->ssl);
  } else {
    SSL_set_connect_state(c->ssl);
    if (server_name && *server_name && strncmp(server_name, "unix:", 5) != 0) {
      char ip[64];
      bool check = !t->insecure && !t->cb_only;
      if (ip_literal(server_name, ip, sizeof ip)) {
        if (check && X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(c->ssl), ip) != 1) goto nomem;
      } else {
        if (SSL_set_tlsext_host_name(c->ssl, server_name) != 1) goto nomem;
        if (check && SSL_set1_host(c->ssl, server_name) != 1) goto nomem;
      }
    }
  }
  c->ctx = ra_tls_ctx_ref(t);
  *out = c;
  return 0;
nomem:
  if (c->ssl) {
    SSL_free(c->ssl); /* frees the BIOs once set */
  } else {
    BIO_free(c->rbio);
    BIO_free(c->wbio);
  }
  ERR_clear_error();
  free(c);
  return -ENOMEM;
}

void ra_tls_conn_free(ra_tls_conn *c) {
  if (!c) return;
  SSL_free(c->ssl);
  ra_buf_free(&c->pending);
  ra_tls_ctx_unref(c->ctx);
  free(c);
}

int ra_tls_conn_feed(ra_tls_conn *c, const void *p, size_t n) {
  while (n) {
    int k = n > INT_MAX ? INT_MAX : (int)n;
    int w = BIO_write(c->rbio, p, k);
    if (w <= 0) return -ENOMEM;
    p = (const uint8_t *)p + w;
    n -= (size_t)w;
  }
  return 0;
}

static int map_err(ra_tls_conn *c, int r) {
  int e = SSL_get_error(c->ssl, r);
  if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
    ERR_clear_error();
    return RA_TLS_AGAIN;
  }
  if (e == SSL_ERROR_ZERO_RETURN) {
    ERR_clear_error();
    return RA_TLS_EOF;
  }
  if (!c->err[0]) ossl_reason(c->err, sizeof c->err);
  ERR_clear_error();
  if (c->verify_err) return c->verify_err;
  if (!c->hs_done) return RA_ERR_TLS_HANDSHAKE;
  return RA_ERR_TLS;
}

int ra_tls_conn_handshake(ra_tls_conn *c) {
  if (c->hs_done) return 1;
  ERR_clear_error();
  int r = SSL_do_handshake(c->ssl);
  if (r == 1) {
    c->hs_done = true;
    return 1;
  }
  int m = map_err(c, r);
  if (m == RA_TLS_AGAIN) return 0;
  if (m == RA_TLS_EOF) {
    snprintf(c->err, sizeof c->err, "close_notify during the handshake");
    return RA_ERR_TLS_HANDSHAKE;
  }
  return m;
}

int ra_tls_conn_read(ra_tls_conn *c, uint8_t *buf, size_t cap, size_t *n) {
  *n = 0;
  ERR_clear_error();
  int r = SSL_read(c->ssl, buf, cap > INT_MAX ? INT_MAX : (int)cap);
  if (r > 0) {
    *n = (size_t)r;
    return 0;
  }
  return map_err(c, r);
}

int ra_tls_conn_write(ra_tls_conn *c, const void *p, size_t n) {
  while (n) {
    int k = n > (1u << 30) ? (1 << 30) : (int)n;
    ERR_clear_error();
    int r = SSL_write(c->ssl, p, k);
    if (r <= 0) {
      int m = map_err(c, r);
      return m > 0 ? RA_ERR_TLS : m;
    }
    p = (const uint8_t *)p + r;
    n -= (size_t)r;
  }
  return 0;
}

void ra_tls_conn_close_notify(ra_tls_conn *c) {
  if (c->notify_sent || !c->hs_done) return;
  c->notify_sent = true;
  ERR_clear_error();
  SSL_shutdown(c->ssl);
  ERR_clear_error();
}

size_t ra_tls_conn_out(ra_tls_conn *c, const uint8_t **p) {
  char *d = NULL;
  long n = BIO_get_mem_data(c->wbio, &d);
  *p = (const uint8_t *)d;
  return n > 0 ? (size_t)n : 0;
}

void ra_tls_conn_out_clear(ra_tls_conn *c) {
  BUF_MEM *bm = NULL;
  BIO_get_mem_ptr(c->wbio, &bm);
  if (bm && bm->max > WBIO_KEEP) {
    /* A burst grew the buffer: give the memory back rather than keep it
     * for the connection's lifetime. */
    BIO *nb = BIO_new(BIO_s_mem());
    if (nb) {
      SSL_set0_wbio(c->ssl, nb); /* frees the old one */
      c->wbio = nb;
      return;
    }
  }
  (void)BIO_reset(c->wbio);
}

bool ra_tls_conn_has_input(const ra_tls_conn *c) {
  return SSL_pending(c->ssl) > 0 || BIO_ctrl_pending(c->rbio) > 0;
}
