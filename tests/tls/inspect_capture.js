// inspect_capture.js DIR SECRET...: reads the relay's capture (conn-N.c2s /
// conn-N.s2c), and checks that what the middle saw of the attested tunnel is
// ciphertext only:
//  - no SECRET (request and response plaintext markers) occurs anywhere in
//    the captured bytes, in any direction;
//  - every connection that upgraded to the tunnel's control channel carries
//    WebSocket messages that decode (CBOR) to the handshake
//    (client_kx_ready, server_kx, client_kx) and then `enc` envelopes only.
// Prints a summary; exits 1 on any violation, 2 if no tunnel was captured.
'use strict';
const fs = require('fs');
const path = require('path');
const { decode } = require('cbor-x');
const [dir, ...secrets] = process.argv.slice(2);
let bad = 0, tunnels = 0;
const fail = (m) => { console.log('FAIL ' + m); bad++; };

function frames(buf) { // WebSocket frames -> whole messages (opcode, payload)
  const out = []; let off = 0, parts = [], op = 0;
  while (off + 2 <= buf.length) {
    const b0 = buf[off], b1 = buf[off + 1];
    let len = b1 & 0x7f, p = off + 2;
    if (len === 126) { if (p + 2 > buf.length) break; len = buf.readUInt16BE(p); p += 2; }
    else if (len === 127) { if (p + 8 > buf.length) break; len = Number(buf.readBigUInt64BE(p)); p += 8; }
    let mask = null;
    if (b1 & 0x80) { if (p + 4 > buf.length) break; mask = buf.subarray(p, p + 4); p += 4; }
    if (p + len > buf.length) break;
    let payload = Buffer.from(buf.subarray(p, p + len));
    if (mask) for (let i = 0; i < payload.length; i++) payload[i] ^= mask[i & 3];
    const opcode = b0 & 0x0f;
    if (opcode >= 8) out.push({ opcode, payload });
    else {
      if (opcode !== 0) op = opcode;
      parts.push(payload);
      if (b0 & 0x80) { out.push({ opcode: op, payload: Buffer.concat(parts) }); parts = []; }
    }
    off = p + len;
  }
  return out;
}

function checkDirection(name, buf) {
  const head = buf.indexOf('\r\n\r\n');
  if (head < 0) return null;
  const start = buf.subarray(0, head).toString('latin1');
  if (!/^(GET \/__ra__|HTTP\/1\.1 101)/.test(start)) return null; // not the tunnel
  const types = [];
  for (const f of frames(buf.subarray(head + 4))) {
    if (f.opcode === 8 || f.opcode === 9 || f.opcode === 10) continue;
    let m;
    try { m = decode(f.payload); } catch (e) { fail(`${name}: a message that is not CBOR`); continue; }
    types.push(m && m.type);
  }
  const hs = new Set(['client_kx_ready', 'server_kx', 'client_kx']);
  let seenEnc = false;
  for (const t of types) {
    if (t === 'enc') seenEnc = true;
    else if (!hs.has(t) || seenEnc) fail(`${name}: a '${t}' message on the wire`);
  }
  if (!seenEnc) fail(`${name}: no enc envelope (the tunnel carried nothing?)`);
  const count = {};
  for (const t of types) count[t] = (count[t] || 0) + 1;
  console.log(`${name}: ${JSON.stringify(count)}`);
  return types;
}

const files = fs.readdirSync(dir).filter((f) => /^conn-\d+\.(c2s|s2c)$/.test(f)).sort();
for (const f of files) {
  const buf = fs.readFileSync(path.join(dir, f));
  for (const s of secrets) {
    if (buf.includes(Buffer.from(s))) fail(`${f}: plaintext '${s}' visible to the middle`);
  }
  if (checkDirection(f, buf) && f.endsWith('.c2s')) tunnels++;
}
if (!tunnels) { console.log('FAIL no tunnel connection captured'); process.exit(2); }
console.log(`${tunnels} tunnel connection(s) captured, ${files.length} capture files, ` +
  `${secrets.length} secrets looked for: ${bad ? bad + ' violations' : 'none visible'}`);
process.exit(bad ? 1 : 0);
