// tests/ws/malformed.js PORT: raw sockets (Node net) sending each kind of
// malformed frame to ra-hello's WS /echo; checks the close code in the
// server's close frame and that the server then closes the TCP connection.
'use strict';
const assert = require('assert');
const crypto = require('crypto');
const net = require('net');

const port = Number(process.argv[2]);
const deadline = setTimeout(() => { console.error('FAIL: timed out'); process.exit(1); }, 60000);

// A frame; mask: a 4-byte key, or null for an unmasked frame. len7/ext let a
// case force a (non-minimal) length encoding.
function frame({ fin = true, rsv = 0, op, payload = Buffer.alloc(0), mask = crypto.randomBytes(4), lenBytes }) {
  const p = Buffer.from(payload);
  let hdr;
  if (lenBytes) hdr = Buffer.concat([Buffer.from([0, 0]), lenBytes]);
  else if (p.length < 126) hdr = Buffer.from([0, p.length]);
  else if (p.length < 65536) { hdr = Buffer.alloc(4); hdr[1] = 126; hdr.writeUInt16BE(p.length, 2); }
  else { hdr = Buffer.alloc(10); hdr[1] = 127; hdr.writeBigUInt64BE(BigInt(p.length), 2); }
  hdr[0] = (fin ? 0x80 : 0) | (rsv << 4) | op;
  if (lenBytes) hdr[1] = lenBytes.length === 2 ? 126 : 127;
  if (!mask) return Buffer.concat([hdr, p]);
  hdr[1] |= 0x80;
  const m = Buffer.from(p);
  for (let i = 0; i < m.length; i++) m[i] ^= mask[i & 3];
  return Buffer.concat([hdr, mask, m]);
}
const TEXT = 1, BIN = 2, CONT = 0, CLOSE = 8, PING = 9;
const closeFrame = (code, reason = Buffer.alloc(0)) => {
  const b = Buffer.alloc(2); b.writeUInt16BE(code);
  return frame({ op: CLOSE, payload: Buffer.concat([b, Buffer.from(reason)]) });
};

// Opens a WebSocket by hand, sends `bytes`, returns the close code the
// server sent (null if none) and whether it closed the TCP connection.
function run(bytes) {
  return new Promise((resolve, reject) => {
    const sock = net.connect(port, '127.0.0.1');
    const key = crypto.randomBytes(16).toString('base64');
    let buf = Buffer.alloc(0), upgraded = false, code = null, gotClose = false;
    const timer = setTimeout(() => { sock.destroy(); reject(new Error('server did not close the connection')); }, 8000);
    sock.on('connect', () => sock.write(
      `GET /echo HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
      `Sec-WebSocket-Key: ${key}\r\nSec-WebSocket-Version: 13\r\n\r\n`));
    sock.on('data', (d) => {
      buf = Buffer.concat([buf, d]);
      if (!upgraded) {
        const e = buf.indexOf('\r\n\r\n');
        if (e < 0) return;
        const head = buf.subarray(0, e).toString();
        if (!head.startsWith('HTTP/1.1 101')) { reject(new Error('no 101: ' + head)); return; }
        upgraded = true;
        buf = buf.subarray(e + 4);
        sock.write(bytes);
      }
      // server frames: unmasked, short (the close frame is what we want)
      while (buf.length >= 2 && !gotClose) {
        if (buf[1] & 0x80) { reject(new Error('server frame is masked')); return; }
        let len = buf[1] & 0x7f, off = 2;
        if (len === 126) { if (buf.length < 4) return; len = buf.readUInt16BE(2); off = 4; }
        else if (len === 127) { if (buf.length < 10) return; len = Number(buf.readBigUInt64BE(2)); off = 10; }
        if (buf.length < off + len) return;
        const op = buf[0] & 0x0f;
        if (op === CLOSE) {
          gotClose = true;
          code = len >= 2 ? buf.readUInt16BE(off) : 1005;
        }
        buf = buf.subarray(off + len);
      }
    });
    sock.on('error', () => {});
    sock.on('close', () => { clearTimeout(timer); resolve({ code, upgraded }); });
  });
}

const cases = [
  ['unmasked client frame', frame({ op: TEXT, payload: 'hi', mask: null }), 1002],
  ['RSV1 without an extension', frame({ op: TEXT, rsv: 4, payload: 'hi' }), 1002],
  ['RSV2', frame({ op: BIN, rsv: 2, payload: 'hi' }), 1002],
  ['RSV3', frame({ op: BIN, rsv: 1, payload: 'hi' }), 1002],
  ['reserved data opcode 3', frame({ op: 3, payload: 'hi' }), 1002],
  ['reserved control opcode 0xB', frame({ op: 0xb }), 1002],
  ['ping with 126 bytes', frame({ op: PING, payload: Buffer.alloc(126) }), 1002],
  ['fragmented ping', frame({ op: PING, fin: false, payload: 'x' }), 1002],
  ['fragmented close', frame({ op: CLOSE, fin: false, payload: Buffer.from([3, 232]) }), 1002],
  ['continuation without a start', frame({ op: CONT, payload: 'x' }), 1002],
  ['text frame inside a fragmented message',
    Buffer.concat([frame({ op: TEXT, fin: false, payload: 'a' }), frame({ op: TEXT, payload: 'b' })]), 1002],
  ['binary frame inside a fragmented message',
    Buffer.concat([frame({ op: BIN, fin: false, payload: 'a' }), frame({ op: BIN, payload: 'b' })]), 1002],
  ['non-minimal 16-bit length', frame({ op: BIN, payload: 'abc', lenBytes: Buffer.from([0, 3]) }), 1002],
  ['non-minimal 64-bit length', frame({ op: BIN, payload: 'abc', lenBytes: Buffer.from([0, 0, 0, 0, 0, 0, 0, 3]) }), 1002],
  ['64-bit length with the top bit set', frame({ op: BIN, lenBytes: Buffer.from([0x80, 0, 0, 0, 0, 0, 0, 1]) }), 1002],
  ['invalid UTF-8 text', frame({ op: TEXT, payload: Buffer.from([0xce, 0xba, 0xff]) }), 1007],
  ['over-long UTF-8', frame({ op: TEXT, payload: Buffer.from([0xc0, 0xaf]) }), 1007],
  ['UTF-16 surrogate in UTF-8', frame({ op: TEXT, payload: Buffer.from([0xed, 0xa0, 0x80]) }), 1007],
  ['code point above U+10FFFF', frame({ op: TEXT, payload: Buffer.from([0xf4, 0x90, 0x80, 0x80]) }), 1007],
  ['invalid UTF-8 across fragments',
    Buffer.concat([frame({ op: TEXT, fin: false, payload: Buffer.from([0xf0, 0x90]) }),
      frame({ op: CONT, payload: Buffer.from([0x41]) })]), 1007],
  ['text ending inside a code point',
    Buffer.concat([frame({ op: TEXT, fin: false, payload: 'ok' }), frame({ op: CONT, payload: Buffer.from([0xe2, 0x82]) })]), 1007],
  ['close with a 1-byte payload', frame({ op: CLOSE, payload: Buffer.from([3]) }), 1002],
  ['close code 999', closeFrame(999), 1002],
  ['close code 1004', closeFrame(1004), 1002],
  ['close code 1005', closeFrame(1005), 1002],
  ['close code 1006', closeFrame(1006), 1002],
  ['close code 1015', closeFrame(1015), 1002],
  ['close code 2999', closeFrame(2999), 1002],
  ['close code 5000', closeFrame(5000), 1002],
  ['close reason not UTF-8', closeFrame(1000, Buffer.from([0xff])), 1007],
  ['message over the limit (announced 100 MiB)',
    frame({ op: BIN, lenBytes: Buffer.from([0, 0, 0, 0, 0x06, 0x40, 0, 0]) }), 1009],
  ['fragments adding up over the limit',
    Buffer.concat([frame({ op: BIN, fin: false, payload: Buffer.alloc(40 << 20) }),
      frame({ op: CONT, payload: Buffer.alloc(30 << 20) })]), 1009],
  // well-formed endings, for contrast
  ['valid close 1000 is echoed', closeFrame(1000, 'done'), 1000],
  ['valid close 4999 is echoed', closeFrame(4999), 4999],
  ['empty close answered with an empty close', frame({ op: CLOSE }), 1005],
];

(async () => {
  let failed = 0;
  for (const [name, bytes, want] of cases) {
    try {
      const r = await run(bytes);
      assert.ok(r.upgraded, 'not upgraded');
      assert.strictEqual(r.code, want, `close code ${r.code}, want ${want}`);
      console.log(`ok   ${name}: ${r.code}`);
    } catch (e) {
      failed++;
      console.log(`FAIL ${name}: ${e.message}`);
    }
  }
  // byte at a time: the same verdicts
  for (const [name, bytes, want] of cases.slice(0, 22)) {
    try {
      const r = await runSlow(bytes);
      assert.strictEqual(r, want, `close code ${r}, want ${want}`);
    } catch (e) {
      failed++;
      console.log(`FAIL (byte at a time) ${name}: ${e.message}`);
    }
  }
  clearTimeout(deadline);
  console.log(failed ? `${failed} failed` : `all ${cases.length} cases passed (and ${Math.min(22, cases.length)} byte at a time)`);
  process.exit(failed ? 1 : 0);
})();

// Same as run(), but writes the frame bytes one per write with a pause, so
// the server sees them in separate reads.
function runSlow(bytes) {
  return new Promise((resolve, reject) => {
    const sock = net.connect(port, '127.0.0.1');
    sock.setNoDelay(true);
    const key = crypto.randomBytes(16).toString('base64');
    let buf = Buffer.alloc(0), upgraded = false, code = null, i = 0, iv = null;
    const timer = setTimeout(() => { sock.destroy(); reject(new Error('no close')); }, 8000);
    sock.on('connect', () => sock.write(
      `GET /echo HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
      `Sec-WebSocket-Key: ${key}\r\nSec-WebSocket-Version: 13\r\n\r\n`));
    sock.on('data', (d) => {
      buf = Buffer.concat([buf, d]);
      if (!upgraded) {
        const e = buf.indexOf('\r\n\r\n');
        if (e < 0) return;
        upgraded = true;
        buf = buf.subarray(e + 4);
        iv = setInterval(() => {
          if (i >= bytes.length || sock.destroyed) { clearInterval(iv); return; }
          sock.write(bytes.subarray(i, i + 1));
          i++;
        }, 1);
      }
      if (code === null && buf.length >= 4 && (buf[0] & 0x0f) === CLOSE) code = (buf[1] & 0x7f) >= 2 ? buf.readUInt16BE(2) : 1005;
    });
    sock.on('error', () => {});
    sock.on('close', () => { clearTimeout(timer); if (iv) clearInterval(iv); resolve(code); });
  });
}
