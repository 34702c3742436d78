// bench/ws_bench.js URL N SIZE: N sequential echo round trips of SIZE-byte
// binary messages with the npm `ws` client; prints round trips/s and MB/s
// (payload bytes both ways).
'use strict';
const WebSocket = require('ws');
const [url, n, size] = [process.argv[2], Number(process.argv[3]), Number(process.argv[4])];
const ws = new WebSocket(url, { maxPayload: 256 << 20, perMessageDeflate: false });
const buf = Buffer.alloc(size, 0x5a);
let done = 0, t0;
ws.on('open', () => { t0 = process.hrtime.bigint(); ws.send(buf); });
ws.on('message', (d) => {
  if (d.length !== size) { console.error('wrong echo size'); process.exit(1); }
  if (++done < n) { ws.send(buf); return; }
  const s = Number(process.hrtime.bigint() - t0) / 1e9;
  console.log(`${n} round trips of ${size} bytes in ${s.toFixed(3)} s: ${(n / s).toFixed(0)} rt/s, ${(n * size * 2 / s / 1e6).toFixed(1)} MB/s`);
  ws.close();
});
ws.on('error', (e) => { console.error(e.message); process.exit(1); });
