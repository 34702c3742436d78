/* core/loop_internal.h: what the other core modules need from the loop. */
#ifndef RA_CORE_LOOP_INTERNAL_H
#define RA_CORE_LOOP_INTERNAL_H

#include <stdint.h>

#include "raloop/core/loop.h"

/* One read buffer shared by every stream of a loop: reads land here and are
 * handed to on_read; only what is not consumed gets copied out. Valid for the
 * loop's lifetime; only use it between a read and the return of the callback
 * that consumes it (the loop is single-threaded, reads never nest). */
#define RA_LOOP_SCRATCH_SIZE (64u * 1024u)
uint8_t *ra_loop_scratch(ra_loop *loop);

#endif
