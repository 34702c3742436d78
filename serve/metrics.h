/* serve/metrics.h: Prometheus metrics for a service, and a JSON access log.
 *
 *   ra_metrics *m;
 *   ra_metrics_new(1, &m);                           // one process
 *   ra_metrics_add_route(m, "GET", "/hello");        // fixed label set
 *   ... build the servers ...
 *   ra_metrics_attach(m, loop, http, tunnel);        // samples gauges, GET /metrics
 *   // from the access-log hooks: ra_metrics_request(m, req, status, us, tunnel)
 *
 * Everything lives in one fixed block of counters made up front: the hot
 * path (ra_metrics_request) only adds to integers, never allocates. Labels
 * are a fixed set: routes registered before the servers run (method and
 * exact path; anything else is route="other"), a fixed list of status codes
 * (others are status="other"), transport "http" or "tunnel".
 *
 * With workers (serve/workers.h), the block is a shared anonymous mapping
 * made before the fork with one slot per worker process (ra_workers_slots);
 * each worker writes only its own slot and /metrics, whichever worker the
 * kernel hands the scrape to, sums every slot: a scrape through the shared
 * port sees the whole service. Counters of a worker that exits are folded
 * into a "retired" slot by the supervisor (ra_metrics_retire), so totals
 * never go back; its gauges drop out. Gauges and the tunnel's counters are
 * sampled once a second in each worker (and when that worker serves the
 * scrape), so other workers' share may be up to a second old.
 *
 * Exposed (all prefixed ra_):
 *   http_requests_total{route,status,transport}          counter
 *   http_request_duration_seconds{transport} (+_bucket/_sum/_count) histogram
 *   http_connections, upgraded_connections, tunnels_open, websockets_open  gauges
 *   http_bytes_received_total, http_bytes_sent_total     counters (HTTP/1.1 bytes
 *                                                        up to an upgrade)
 *   tunnel_handshakes_total                              counter (client_kx accepted)
 *   tunnel_failures_total{reason}                        counter (tunnel stats)
 *   tunnel_key_age_seconds                               gauge (the oldest live key)
 *   workers                                              gauge (processes serving)
 */
#ifndef RA_SERVE_METRICS_H
#define RA_SERVE_METRICS_H

#include "raloop/core/api.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "raloop/attest/tunnel/server.h"
#include "raloop/core/loop.h"
#include "raloop/http/request.h"
#include "raloop/http/response.h"
#include "raloop/http/server.h"

#define RA_METRICS_MAX_ROUTES 32

typedef struct ra_metrics ra_metrics;

/* nslots: 1 for a single process, ra_workers_slots(n) with workers (then
 * the block is shared with the processes forked later). Returns 0 and
 * *out, -EINVAL or -ENOMEM. */
RA_API int ra_metrics_new(unsigned nslots, ra_metrics **out);
/* A route label "METHOD PATH" (copied). Before ra_metrics_attach and any
 * fork (the labels are in the shared block). -EEXIST if already there,
 * -ENOSPC past RA_METRICS_MAX_ROUTES, -ENAMETOOLONG past 127 bytes. */
RA_API int ra_metrics_add_route(ra_metrics *m, const char *method, const char *path);
/* In a worker: write to slot (ra_worker_info.slot), labelled worker index.
 * Its gauges start at zero. Without it, slot 0. */
RA_API void ra_metrics_use_slot(ra_metrics *m, unsigned slot, unsigned worker);
/* Supervisor: the process that had slot is gone (workers on_exit). */
RA_API void ra_metrics_retire(ra_metrics *m, unsigned slot);
/* One finished request (call it from the access-log hooks). */
RA_API void ra_metrics_request(ra_metrics *m, const ra_req *req, int status, uint64_t duration_us,
                               bool tunnel);
/* Samples srv and ts (ts may be NULL) now and every second (a timer that
 * does not keep the loop alive); the tunnel key's age counts from this
 * call. srv, ts and loop must outlive m, or call ra_metrics_detach first. */
RA_API int ra_metrics_attach(ra_metrics *m, ra_loop *loop, ra_http_server *srv, ra_tunnel_server *ts);
RA_API void ra_metrics_detach(ra_metrics *m);
/* The text exposition (format 0.0.4) in a malloc'd buffer (*out, *len;
 * free it). Returns 0 or -ENOMEM. */
RA_API int ra_metrics_render(ra_metrics *m, char **out, size_t *len);
/* A route handler serving ra_metrics_render; ud is the ra_metrics. */
RA_API void ra_metrics_handler(ra_req *req, ra_res *res, void *ud);
RA_API void ra_metrics_free(ra_metrics *m);

/* One JSON access-log line (with '\n') into buf: {"time","peer","method",
 * "path","status","bytes_in","bytes_out","duration_us","tunnel"[,"worker"]} (worker when
 * >= 0). Strings are escaped; bytes above 0x7f become \u00XX (the byte as
 * a code point), so every line is valid JSON whatever the request carried.
 * bytes_in is the request body's size, bytes_out the response body's
 * (ra_req_body_bytes, ra_req_response_bytes). Returns the length, truncated (the path shortened) to fit
 * len >= 512. */
RA_API size_t ra_access_log_json(char *buf, size_t len, const ra_req *req, int status,
                                 uint64_t duration_us, bool tunnel, int worker);

#endif
