/* ws/message.c: fragments -> messages, with the message-level rules. */
#include "raloop/ws/message.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define DEFAULT_MAX_MESSAGE (16u << 20)
/* Keep at most this much buffer between messages. */
#define KEEP_BUF (64u << 10)
#define EAGER (256u << 10)

void ra_ws_assembler_init(ra_ws_assembler *a, ra_ws_role role, uint64_t max_message) {
  memset(a, 0, sizeof *a);
  ra_ws_parser_init(&a->parser, role);
  a->max_message = max_message ? max_message : DEFAULT_MAX_MESSAGE;
  ra_utf8_init(&a->utf8);
}

void ra_ws_assembler_free(ra_ws_assembler *a) {
  free(a->buf);
  a->buf = NULL;
  a->len = a->cap = 0;
}

void ra_ws_assembler_trim(ra_ws_assembler *a) {
  /* a message open (msg_op) or bytes of one kept: still needed */
  if (a->msg_op || (a->len && !a->reset_buf)) return;
  a->reset_buf = false;
  ra_ws_assembler_free(a);
}

static long fail(ra_ws_assembler *a, long err, uint16_t code, const char *why) {
  a->close_code = code;
  a->error = why;
  return err;
}

/* Grows buf for `need` more bytes. Geometric in what has actually arrived,
 * so a message in many small fragments costs O(log n) reallocations, not
 * one per fragment; never past the end of the message's last frame (`hint`
 * bytes from here to the frame's end; `last`: the frame has FIN) nor past
 * max_message: a peer announcing a large frame and sending little makes us
 * hold about twice what it sent, not what it announced. */
static int grow(ra_ws_assembler *a, size_t need, uint64_t hint, bool last) {
  if (a->cap - a->len >= need) return 0;
  size_t want = a->cap ? a->cap * 2 : 4096;
  if (want < a->len + need) want = a->len + need;
  if (hint < need) hint = need;
  /* A frame that fits in EAGER bytes is allocated at once: one allocation
   * for the common case, a bounded cost for a peer that lies. */
  if (a->len + hint <= EAGER && want < a->len + hint) want = (size_t)(a->len + hint);
  if (last && (uint64_t)want > a->len + hint) want = (size_t)(a->len + hint);
  if ((uint64_t)want > a->max_message) want = (size_t)a->max_message; /* >= len + need */
  uint8_t *p = realloc(a->buf, want);
  if (!p) return -ENOMEM;
  a->buf = p;
  a->cap = want;
  return 0;
}

static void release_buf(ra_ws_assembler *a) {
  a->len = 0;
  if (a->cap > KEEP_BUF) {
    free(a->buf);
    a->buf = NULL;
    a->cap = 0;
  }
}

static long close_msg(ra_ws_assembler *a, ra_ws_msg *out) {
  out->opcode = RA_WS_OP_CLOSE;
  out->data = a->ctl;
  out->len = a->ctl_len;
  out->reason = NULL;
  out->reason_len = 0;
  if (a->ctl_len == 0) {
    out->close_code = RA_WS_CLOSE_NO_STATUS;
    return 0;
  }
  if (a->ctl_len == 1) return fail(a, -EPROTO, RA_WS_CLOSE_PROTOCOL, "close payload of 1 byte");
  unsigned code = ((unsigned)a->ctl[0] << 8) | a->ctl[1];
  if (!ra_ws_close_code_valid(code)) return fail(a, -EPROTO, RA_WS_CLOSE_PROTOCOL, "invalid close code");
  if (!ra_utf8_valid(a->ctl + 2, a->ctl_len - 2u))
    return fail(a, -EILSEQ, RA_WS_CLOSE_INVALID_DATA, "close reason is not UTF-8");
  out->close_code = (uint16_t)code;
  out->reason = a->ctl + 2;
  out->reason_len = a->ctl_len - 2u;
  return 0;
}

long ra_ws_assembler_feed(ra_ws_assembler *a, const uint8_t *data, size_t len, ra_ws_msg *out) {
  memset(out, 0, sizeof *out);
  if (a->close_code) return -EPROTO;
  if (a->reset_buf) {
    a->reset_buf = false;
    release_buf(a);
  }
  size_t used = 0;
  for (;;) {
    ra_ws_event ev;
    long n = ra_ws_parse(&a->parser, data + used, len - used, &ev);
    if (n < 0) return fail(a, n, a->parser.close_code, a->parser.error);
    used += (size_t)n;
    if (ev.type == RA_WS_EV_NONE) return (long)used;
    const ra_ws_frame *f = &ev.frame;
    bool control = ra_ws_op_is_control(f->opcode);

    if (ev.type == RA_WS_EV_HEADER) {
      if (control) {
        a->ctl_len = 0;
      } else {
        if (f->opcode != RA_WS_OP_CONT) {
          a->msg_op = f->opcode;
          a->len = 0;
          ra_utf8_init(&a->utf8);
        }
        if (f->len > a->max_message - a->len)
          return fail(a, -EMSGSIZE, RA_WS_CLOSE_TOO_BIG, "message larger than the limit");
      }
      if (!ev.frame_end) continue;
    } else if (control) {
      /* key is all zero for an unmasked frame: a plain copy */
      ra_ws_mask_copy(a->ctl + ev.offset, ev.data, ev.len, f->key, ev.offset);
      a->ctl_len = (uint8_t)(ev.offset + ev.len);
      if (!ev.frame_end) continue;
    } else if (f->fin && ev.offset == 0 && ev.frame_end && !f->masked && a->len == 0) {
      /* Whole unfragmented unmasked frame in the input: no copy. */
      if (a->msg_op == RA_WS_OP_TEXT && !ra_utf8_valid(ev.data, ev.len))
        return fail(a, -EILSEQ, RA_WS_CLOSE_INVALID_DATA, "text message is not UTF-8");
      out->opcode = a->msg_op;
      out->data = ev.data;
      out->len = ev.len;
      a->msg_op = 0;
      return (long)used;
    } else {
      if (grow(a, ev.len, f->len - ev.offset, f->fin) < 0)
        return fail(a, -ENOMEM, RA_WS_CLOSE_INTERNAL, "out of memory");
      uint8_t *dst = a->buf + a->len;
      if (f->masked) ra_ws_mask_copy(dst, ev.data, ev.len, f->key, ev.offset);
      else memcpy(dst, ev.data, ev.len);
      a->len += ev.len;
      if (a->msg_op == RA_WS_OP_TEXT && !ra_utf8_feed(&a->utf8, dst, ev.len))
        return fail(a, -EILSEQ, RA_WS_CLOSE_INVALID_DATA, "text message is not UTF-8");
      if (!ev.frame_end) continue;
    }

    /* A frame just ended. */
    if (control) {
      if (f->opcode == RA_WS_OP_CLOSE) {
        long r = close_msg(a, out);
        if (r < 0) return r;
      } else {
        out->opcode = f->opcode;
        out->data = a->ctl;
        out->len = a->ctl_len;
      }
      return (long)used;
    }
    if (!f->fin) continue;
    if (a->msg_op == RA_WS_OP_TEXT && !ra_utf8_complete(&a->utf8))
      return fail(a, -EILSEQ, RA_WS_CLOSE_INVALID_DATA, "text message ends inside a UTF-8 sequence");
    out->opcode = a->msg_op;
    out->data = a->buf ? a->buf : (const uint8_t *)"";
    out->len = a->len;
    a->msg_op = 0;
    a->reset_buf = true;
    return (long)used;
  }
}
