/* ws/message.h: message assembly on top of the frame parser (no I/O).
 *
 * Fed raw bytes from the peer (any split), an ra_ws_assembler returns whole
 * messages: data messages reassembled from their fragments (control frames
 * may arrive in between and are returned on their own), with the message
 * rules of RFC 6455 enforced: text must be valid UTF-8, checked as the
 * fragments arrive (1007); a message larger than max_message is refused as
 * soon as a frame header announces it (1009), before anything is buffered;
 * close payloads must be empty or carry a valid code (1002) and a UTF-8
 * reason (1007). Frame-level rules are the parser's (ws/frame.h, 1002).
 *
 * Memory: one growable buffer per assembler for fragmented or masked data
 * messages (released again after a large message, so idle connections stay
 * cheap). An unmasked unfragmented frame that arrives whole in one input is
 * returned as a view into the input, without a copy.
 */
#ifndef RA_WS_MESSAGE_H
#define RA_WS_MESSAGE_H

#include "raloop/core/api.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "raloop/ws/frame.h"
#include "raloop/ws/utf8.h"

typedef struct ra_ws_msg {
  uint8_t opcode;          /* 0: none; TEXT, BINARY, CLOSE, PING or PONG */
  const uint8_t *data;     /* the unmasked payload (see lifetime below) */
  size_t len;
  uint16_t close_code;     /* CLOSE: the code, or 1005 for an empty payload */
  const uint8_t *reason;   /* CLOSE: UTF-8 reason (inside data), may be empty */
  size_t reason_len;
} ra_ws_msg;

typedef struct ra_ws_assembler {
  ra_ws_parser parser;
  uint8_t *buf;            /* data message being assembled */
  size_t len, cap;
  uint64_t max_message;
  uint8_t msg_op;          /* TEXT or BINARY while a message is open */
  bool reset_buf;          /* a message was returned from buf */
  ra_utf8 utf8;
  uint8_t ctl[RA_WS_MAX_CONTROL];
  uint8_t ctl_len;
  uint16_t close_code;     /* after an error: the close code to send */
  const char *error;       /* after an error: static text for logs */
} ra_ws_assembler;

/* role: which side we are (a server expects masked frames). max_message:
 * the largest data message accepted (0: 16 MiB). */
RA_API void ra_ws_assembler_init(ra_ws_assembler *a, ra_ws_role role, uint64_t max_message);
RA_API void ra_ws_assembler_free(ra_ws_assembler *a);
/* Frees the message buffer when no data message is half assembled (an idle
 * connection); the next masked or fragmented message allocates again. */
RA_API void ra_ws_assembler_trim(ra_ws_assembler *a);

/* Consumes a prefix of data[0..len) up to and including the end of the next
 * complete message. Returns the bytes consumed and sets out->opcode (0 if
 * the input ran out before a message completed; every byte is then
 * consumed: partial frames are kept inside). On a violation returns
 * -EPROTO (1002), -EILSEQ (1007), -EMSGSIZE (1009) or -ENOMEM (1011) and
 * sets a->close_code / a->error; the assembler is then dead.
 * out->data points into `data` or into the assembler and stays valid until
 * the next call or ra_ws_assembler_free. */
RA_API long ra_ws_assembler_feed(ra_ws_assembler *a, const uint8_t *data, size_t len, ra_ws_msg *out);

/* True while a fragmented data message is partially received. */
static inline bool ra_ws_assembler_in_message(const ra_ws_assembler *a) { return a->msg_op != 0; }

#endif
