/* core/stream.h: a non-blocking byte stream (TCP or unix socket) on the loop.
 *
 * Reading: the loop reads into one scratch buffer shared by all streams and
 * hands the bytes to on_read; whatever on_read does not consume is kept in a
 * per-stream buffer allocated only then (an idle stream holds no buffer).
 *
 * Writing: ra_stream_write* first tries writev() directly; only what the
 * kernel did not take is queued (copied, or referenced for write_ref). When
 * the queue exceeds the high-water mark, reading is paused (a peer that does
 * not read its responses cannot make us buffer without bound) until it falls
 * below the low-water mark, at which point on_drain is called.
 */
#ifndef RA_CORE_STREAM_H
#define RA_CORE_STREAM_H

#include "raloop/core/api.h"

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/uio.h>

#include "raloop/core/loop.h"

typedef struct ra_stream ra_stream;

typedef struct ra_stream_cbs {
  /* Bytes arrived: data is valid until the callback returns. Returns how many
   * bytes it consumed; the rest is offered again, first, with the next bytes.
   * Returning less than len with no new input coming is allowed (e.g. while
   * paused): the rest is also offered again (from the loop, not from inside
   * the call) after ra_stream_resume_read and ra_stream_set_userdata. Never
   * called while paused. The stream may be closed from inside. */
  size_t (*on_read)(ra_stream *s, const uint8_t *data, size_t len, void *ud);
  /* The write queue fell to the low-water mark (or emptied). Optional. */
  void (*on_drain)(ra_stream *s, void *ud);
  /* The peer half-closed (read returned 0). The stream stays open for
   * writing; close it when done. Optional: default closes the stream once
   * the write queue is flushed. */
  void (*on_eof)(ra_stream *s, void *ud);
  /* Last callback: the stream is closed and is freed right after this
   * returns. err is 0 for an orderly close, else a negative errno
   * (-ECONNRESET, -ETIMEDOUT for the idle or write timeout, ...). */
  void (*on_close)(ra_stream *s, int err, void *ud);
} ra_stream_cbs;

/* Wraps a connected non-blocking socket; takes ownership of fd (closed in
 * every case, also on failure). cbs is copied. Returns 0 and *out, or
 * -EBADF, -ENOMEM, the watch's -errno and *out NULL. */
RA_API int ra_stream_new(ra_loop *loop, int fd, const ra_stream_cbs *cbs, void *ud, ra_stream **out);

/* Client side: resolves host (a numeric address at once, a name with
 * getaddrinfo on a thread of its own, so that DNS never stalls the loop;
 * "::1" and "[::1]" both work; "unix:PATH" connects to a unix socket and
 * ignores port), connects non-blocking (trying each address in turn), then
 * calls on_connect, always from the loop, with status 0 and the stream, or
 * a negative errno (RA_ERR_HOST_UNKNOWN: the name does not resolve) and
 * NULL (the stream is then already gone). Returns 0 if the attempt started
 * (on_connect will be called exactly once), or a negative errno (it will
 * not be called). */
typedef void (*ra_connect_cb)(ra_stream *s, int status, void *ud);
RA_API int ra_stream_connect(ra_loop *loop, const char *host, uint16_t port,
                      const ra_stream_cbs *cbs, ra_connect_cb on_connect, void *ud);

RA_API ra_loop *ra_stream_loop(const ra_stream *s);
RA_API int ra_stream_fd(const ra_stream *s);
RA_API void *ra_stream_userdata(const ra_stream *s);
RA_API void ra_stream_set_userdata(ra_stream *s, const ra_stream_cbs *cbs, void *ud);

/* Writes at once what the kernel takes; copies and queues the rest.
 * Returns 0, -EPIPE after shutdown/close, or another negative errno if the
 * connection failed or memory ran out: the stream is then aborted (on_close
 * follows with that error). */
RA_API int ra_stream_write(ra_stream *s, const void *data, size_t len);
RA_API int ra_stream_writev(ra_stream *s, const struct iovec *iov, int iovcnt);
/* Zero-copy: queues a reference to data; free_cb(free_ud) (may be NULL) is
 * called exactly once, when the bytes are written (possibly before this call
 * returns), when the stream is closed, or when this call fails. data must
 * stay valid and unchanged until then. */
RA_API int ra_stream_write_ref(ra_stream *s, const void *data, size_t len,
                        void (*free_cb)(void *), void *free_ud);
/* Bytes queued and not yet written to the kernel. */
RA_API size_t ra_stream_queued(const ra_stream *s);
/* Defaults: high 1 MiB, low 256 KiB. Past high, reading pauses; on_drain
 * is called (and reading resumes) once a queue falls to low. */
RA_API void ra_stream_set_watermarks(ra_stream *s, size_t high, size_t low);

RA_API void ra_stream_pause_read(ra_stream *s);
RA_API void ra_stream_resume_read(ra_stream *s);

/* Closes the stream after a read or write has not happened for ms (0: off).
 * Re-armed by every successful read or write. */
RA_API void ra_stream_set_idle_timeout(ra_stream *s, uint64_t ms);

/* Write (send-progress) timeout: aborts the stream (on_close gets
 * -ETIMEDOUT) when bytes are queued and none of them could be written for
 * ms (0: off, the default). Timed from the moment the queue became
 * non-empty and re-armed by every write that takes queued bytes, so a peer
 * that reads slowly but steadily is kept, and one that never reads is
 * dropped even while it keeps sending (which re-arms the idle timeout).
 * Independent of the idle timeout; a graceful close keeps its own flush
 * bound. Costs nothing while the kernel takes every write. */
RA_API void ra_stream_set_write_timeout(ra_stream *s, uint64_t ms);

/* Half-close: shutdown(SHUT_WR) once the queue is flushed. */
RA_API void ra_stream_shutdown(ra_stream *s);
/* Graceful close: stops reading, flushes the queue (bounded by the idle
 * timeout, or 5 s if none: past it on_close gets -ETIMEDOUT), then closes.
 * On TCP it first sends FIN and discards input until the peer's FIN (at most
 * 2 s), so that a peer still sending gets our last bytes, not a reset.
 * Writes fail with -EPIPE from now on. on_close is called, deferred. */
RA_API void ra_stream_close(ra_stream *s);
/* Immediate close: drops the queue (write_ref free_cbs run now). err is
 * passed to on_close (a positive errno is negated). on_close is called,
 * deferred. ra_stream_fd returns -1 from now on. */
RA_API void ra_stream_abort(ra_stream *s, int err);

#endif
