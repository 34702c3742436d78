/* bench/http_client.h: a minimal HTTP/1.1 client with a connection pool, the
 * "plain" transport of ra-bench.
 *
 * Keep-alive connections on core streams, responses parsed by llhttp in
 * response mode (Content-Length and chunked bodies). One request at a time
 * per connection (no pipelining: browsers and Node's fetch do not pipeline
 * either); a request finds an idle connection, else opens a new one while
 * fewer than max_conns exist, else waits in FIFO order for the next free one.
 * A request that meets a keep-alive connection the server had just closed
 * (nothing of the response arrived) is retried once on a fresh connection.
 *
 * one_shot: every request gets a new connection and "Connection: close" (the
 * plain counterpart of a tunnel handshake: time to the first response on a
 * new connection).
 */
#ifndef RA_BENCH_HTTP_CLIENT_H
#define RA_BENCH_HTTP_CLIENT_H

#include <stdbool.h>
#include <stddef.h>

#include "bench/bench.h"

/* Returns NULL on -ENOMEM. origin is copied. Free with bench_target_free
 * (from outside its callbacks): open connections are aborted and requests
 * still pending are dropped without their callback. */
bench_target *bench_http_new(ra_loop *loop, const bench_origin *origin, size_t max_conns,
                             bool one_shot);

/* Connections currently open or opening. */
size_t bench_http_conns(const bench_target *t);

#endif
