/* ws/frame.h: the RFC 6455 frame codec. Pure: no I/O, no allocation.
 *
 * Parsing is incremental (wslay/picohttpparser shape): feed any split of the
 * input, one call produces at most one event, and payload bytes are handed
 * back as (ptr, len) views into the caller's input, still masked (unmask them
 * with ra_ws_mask() / ra_ws_mask_copy() wherever you copy them to).
 *
 * The parser enforces every frame-level rule of RFC 6455 and reports the
 * close code the peer deserves: RSV bits without an extension, unknown
 * opcodes, masking (client frames masked, server frames not), control frames
 * fragmented or longer than 125 bytes, over-long (non-minimal) or > 2^63
 * length encodings, a continuation without a started message or a new data
 * frame inside a fragmented one: all 1002. Message-level rules (UTF-8 1007,
 * size limit 1009, close payloads) are ra_ws_assembler's (ws/message.h).
 */
#ifndef RA_WS_FRAME_H
#define RA_WS_FRAME_H

#include "raloop/core/api.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum {
  RA_WS_OP_CONT = 0x0,
  RA_WS_OP_TEXT = 0x1,
  RA_WS_OP_BINARY = 0x2,
  RA_WS_OP_CLOSE = 0x8,
  RA_WS_OP_PING = 0x9,
  RA_WS_OP_PONG = 0xA,
};

/* Close codes (RFC 6455 section 7.4.1). */
enum {
  RA_WS_CLOSE_NORMAL = 1000,
  RA_WS_CLOSE_GOING_AWAY = 1001,
  RA_WS_CLOSE_PROTOCOL = 1002,
  RA_WS_CLOSE_UNSUPPORTED = 1003,
  RA_WS_CLOSE_NO_STATUS = 1005,   /* never on the wire */
  RA_WS_CLOSE_ABNORMAL = 1006,    /* never on the wire */
  RA_WS_CLOSE_INVALID_DATA = 1007,
  RA_WS_CLOSE_POLICY = 1008,
  RA_WS_CLOSE_TOO_BIG = 1009,
  RA_WS_CLOSE_EXTENSION = 1010,
  RA_WS_CLOSE_INTERNAL = 1011,
  RA_WS_CLOSE_TRY_AGAIN = 1013, /* overload: e.g. a peer too slow to read */
};

#define RA_WS_MAX_HEADER 14  /* 2 + 8 (length) + 4 (mask) */
#define RA_WS_MAX_CONTROL 125

static inline bool ra_ws_op_is_control(unsigned op) { return (op & 0x8) != 0; }

/* True for a code a peer may send in a close frame: 1000-1003, 1007-1014,
 * 3000-4999 (1004-1006, 1015, other 1xxx and everything else are invalid). */
RA_API bool ra_ws_close_code_valid(unsigned code);

/* A parsed frame header. */
typedef struct ra_ws_frame {
  uint64_t len;     /* payload length */
  uint8_t opcode;
  uint8_t rsv;      /* the three RSV bits, as 0..7 (RSV1 = 4) */
  bool fin;
  bool masked;
  uint8_t key[4];   /* valid when masked */
} ra_ws_frame;

/* Which side the parser sits on: a server requires masked frames (from
 * clients), a client requires unmasked ones. */
typedef enum { RA_WS_SERVER = 0, RA_WS_CLIENT = 1 } ra_ws_role;

typedef enum {
  RA_WS_EV_NONE = 0,  /* all input consumed, no event: feed more */
  RA_WS_EV_HEADER,    /* a frame header: ev.frame */
  RA_WS_EV_PAYLOAD,   /* payload bytes: ev.data/ev.len at ev.offset */
} ra_ws_event_type;

typedef struct ra_ws_event {
  ra_ws_event_type type;
  /* HEADER and PAYLOAD: the current frame's header. */
  ra_ws_frame frame;
  /* PAYLOAD: a view into the input given to ra_ws_parse (masked bytes as
   * received), valid as long as that input. offset is the position of
   * data[0] within the frame's payload (for the mask phase). */
  const uint8_t *data;
  size_t len;
  uint64_t offset;
  /* HEADER and PAYLOAD: true when the frame is complete with this event
   * (a HEADER event for an empty payload is the frame's last event). */
  bool frame_end;
} ra_ws_event;

typedef struct ra_ws_parser {
  uint8_t hdr[RA_WS_MAX_HEADER];
  uint8_t hdr_len;     /* header bytes gathered so far */
  uint8_t rsv_allowed; /* RSV bits a negotiated extension permits (0) */
  uint8_t role;        /* ra_ws_role */
  bool in_payload;
  bool in_message;     /* a fragmented data message is open */
  ra_ws_frame frame;
  uint64_t done;       /* payload bytes of the current frame handed out */
  uint16_t close_code; /* after an error: the close code to send */
  const char *error;   /* after an error: static text for logs */
} ra_ws_parser;

RA_API void ra_ws_parser_init(ra_ws_parser *p, ra_ws_role role);

/* Consumes a prefix of data[0..len) and fills *ev. Returns the number of
 * bytes consumed (possibly 0 with an event, e.g. the end of an empty frame),
 * or -EPROTO on a protocol violation: p->close_code and p->error tell why;
 * the parser is then dead (every later call fails the same way).
 * Call again with the rest while ev->type != RA_WS_EV_NONE. */
RA_API long ra_ws_parse(ra_ws_parser *p, const uint8_t *data, size_t len, ra_ws_event *ev);

/* Writes a frame header to out (>= RA_WS_MAX_HEADER bytes) with the
 * minimal length encoding; key == NULL for an unmasked frame. Returns the
 * header length. rsv is 0..7. No checks: callers pass valid frames. */
RA_API size_t ra_ws_frame_header(uint8_t *out, bool fin, unsigned rsv, unsigned opcode,
                          uint64_t len, const uint8_t *key);

/* XORs buf[0..len) with key, starting at byte `offset` of the masked
 * payload. A word at a time, alignment-safe for any buffer. */
RA_API void ra_ws_mask(uint8_t *buf, size_t len, const uint8_t key[4], uint64_t offset);
/* Same, from src into dst (may be the same buffer, must not otherwise
 * overlap). */
RA_API void ra_ws_mask_copy(uint8_t *dst, const uint8_t *src, size_t len,
                     const uint8_t key[4], uint64_t offset);

#endif
