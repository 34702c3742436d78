/* apps/hello/bulk.h: ra-hello's routes for large bodies, streamed both ways.
 *
 *   PUT|POST /upload  takes the body as it arrives (RA_ROUTE_STREAM_BODY:
 *                     never buffered, any size) and answers
 *                     {"bytes":N,"sha256":"<hex>"} (application/json);
 *   GET /bytes?n=N    streams N bytes (0 <= N <= 2^40), Content-Length N,
 *                     written as the client reads them; byte i is i % 251,
 *                     so a client can check what it got without a copy.
 */
#ifndef RA_HELLO_BULK_H
#define RA_HELLO_BULK_H

#include "raloop/http/router.h"

/* Returns 0 or -errno (ra_route_ex's). */
int hello_bulk_routes(ra_router *r);

#endif
