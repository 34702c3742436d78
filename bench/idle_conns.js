// bench/idle_conns.js PORT COUNT: opens COUNT keep-alive connections to
// 127.0.0.1:PORT, sends one GET /hello on each and reads the answer, then
// prints "ready N" and keeps them open and idle until stdin closes or a
// signal arrives. Used by bench/http_bench.sh to measure server memory per
// idle connection.
'use strict';
const net = require('net');
const port = +process.argv[2];
const count = +process.argv[3];
const path = process.argv[4] || '/hello';
const socks = [];
let ready = 0, failed = 0;

function openOne() {
  return new Promise((resolve) => {
    const s = net.connect({ port, host: '127.0.0.1' });
    let got = '';
    s.setNoDelay(true);
    s.on('connect', () => s.write(`GET ${path} HTTP/1.1\r\nHost: x\r\n\r\n`));
    s.on('data', (d) => {
      got += d.toString('latin1');
      const h = got.indexOf('\r\n\r\n');
      const m = got.match(/Content-Length: (\d+)/i);
      if (h >= 0 && m && got.length >= h + 4 + +m[1]) { ready++; resolve(); }
    });
    s.on('error', () => { failed++; resolve(); });
    socks.push(s);
  });
}

(async () => {
  const batch = 200;
  for (let i = 0; i < count; i += batch) {
    const n = Math.min(batch, count - i);
    await Promise.all(Array.from({ length: n }, openOne));
  }
  console.log(`ready ${ready} failed ${failed}`);
})();
process.stdin.on('end', () => process.exit(0));
process.stdin.resume();
process.on('SIGTERM', () => process.exit(0));
