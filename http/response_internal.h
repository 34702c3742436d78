/* http/response_internal.h: the ra_res layout, so a transport can embed a
 * response in its own per-request object and recycle it (the HTTP/1.1
 * connection does, to keep the hot path free of allocation). */
#ifndef RA_HTTP_RESPONSE_INTERNAL_H
#define RA_HTTP_RESPONSE_INTERNAL_H

#include "raloop/http/response.h"

enum { RA_RES_BUILDING, RA_RES_HEAD_SENT, RA_RES_ENDED };

/* Called instead of free() once the response ended (or was cancelled and
 * then ended): the transport owns the memory of res and its req. */
typedef void (*ra_res_release_fn)(ra_res *res, void *ud);

struct ra_res {
  ra_loop *loop;
  ra_req *req;
  const ra_res_sink_ops *ops; /* NULL once cancelled */
  void *sink;
  ra_header *hdrs;            /* point into hbuf (rebased when it moves) */
  uint32_t nhdrs, hdr_cap;
  ra_buf hbuf;
  int status;
  int64_t content_length;     /* -1: unknown */
  uint8_t state;
  bool cancelled;
  bool is_head;               /* body suppressed: answer to HEAD */
  bool in_end;
  bool head_done;             /* HEAD: complete with its head, sink released */
  bool cancel_owed;           /* head_done: on_cancel to run from the loop */
  bool drain_owed;            /* budget spent: on_drain on a later turn */
  bool aborted;               /* ra_res_abort: the body is incomplete */
  size_t turn_bytes;          /* body bytes written in turn `turn` */
  uint64_t turn;
  ra_defer defer;             /* cancel_owed / drain_owed */
  ra_res_cancel_cb on_cancel;
  void *cancel_ud;
  ra_res_drain_cb on_drain;
  void *drain_ud;
  ra_res_release_fn release;
  void *release_ud;
};

/* In-place life cycle. init: req is not owned (the embedding object owns
 * it); release is called at the end instead of freeing. reset keeps small
 * buffers for reuse; cleanup frees them. */
void ra_res_init(ra_res *res, ra_loop *loop, ra_req *req, const ra_res_sink_ops *ops,
                 void *sink, ra_res_release_fn release, void *release_ud);
void ra_res_reset(ra_res *res);
void ra_res_cleanup(ra_res *res);

#endif
