// tests/ws/hostile.js PORT: what a hostile run found in ra-hello's
// WebSockets (issue 10), through the npm `ws` client:
//  - /chat with members that never read: one large broadcast costs its
//    size once (server RSS stays bounded), the slow members are closed
//    with 1013 once their send limit is reached, fast members get every
//    message;
//  - 20 clients upgrading while SIGTERM arrives: each gets 1001 (or a
//    clean refusal before the upgrade), and the server exits promptly
//    (not through its 6 s backstop). Last: it stops the server.
'use strict';
const assert = require('assert');
const fs = require('fs');
const WebSocket = require('ws');

const port = Number(process.argv[2]);
const pid = Number(process.env.RA_HELLO_PID || 0);
const base = `ws://127.0.0.1:${port}`;
const { test, runCases } = require('./cases.js')(60000);

function open(path) {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(base + path, { maxPayload: 64 << 20 });
    ws.once('open', () => resolve(ws));
    ws.once('error', reject);
  });
}
function closed(ws) {
  return new Promise((resolve) => ws.once('close', (code) => resolve(code)));
}
function rssMiB() {
  const m = /VmRSS:\s+(\d+) kB/.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
  return Number(m[1]) / 1024;
}
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

test('/chat: members that never read are closed with 1013, memory stays bounded, fast members get everything', async () => {
  const SLOW = 10, N = 48, SIZE = 1 << 20; // /chat's max message: 1 MiB
  const slow = [];
  for (let i = 0; i < SLOW; i++) {
    const ws = await open('/chat');
    ws._socket.pause(); // never reads (until the end)
    slow.push({ ws, code: closed(ws) });
  }
  const sender = await open('/chat'), fast = await open('/chat');
  let got = 0, bytes = 0;
  const arrivals = [];
  fast.on('message', (d) => { got++; bytes += d.length; const r = arrivals.shift(); if (r) r(); });
  const echoes = [];
  sender.on('message', () => { const r = echoes.shift(); if (r) r(); });
  const before = pid ? rssMiB() : 0;
  let peak = before;
  const msg = Buffer.alloc(SIZE, 7);
  for (let i = 0; i < N; i++) {
    // paced by its own copy and by the fast member's: a member that reads
    // as fast as messages come (one client process holds every socket, so
    // pacing on the sender alone let a slower Node (Debian's 18) fall 4 MiB
    // behind on the fast member too, and be closed as slow)
    const echoed = new Promise((r) => echoes.push(r));
    const arrived = new Promise((r) => arrivals.push(r));
    sender.send(msg, { binary: true });
    await Promise.all([echoed, arrived]);
    if (pid) peak = Math.max(peak, rssMiB());
  }
  // the fast member got every message
  for (let i = 0; i < 100 && got < N; i++) await sleep(20);
  assert.strictEqual(got, N);
  assert.strictEqual(bytes, N * SIZE);
  // N x SIZE to each of 10 members would be 480 MiB in copies
  if (pid) {
    console.log(`  server RSS ${before.toFixed(0)} MiB -> peak ${peak.toFixed(0)} MiB`);
    assert.ok(peak - before < 160, `server RSS grew by ${(peak - before).toFixed(0)} MiB`);
  }
  // reading again, each slow member finds the close code after its backlog
  for (const s of slow) s.ws._socket.resume();
  for (const s of slow) assert.strictEqual(await s.code, 1013);
  sender.close();
  fast.close();
  await Promise.all([closed(sender), closed(fast)]);
});

test('upgrades racing SIGTERM: each gets 1001 or a clean refusal, the server exits promptly', async () => {
  if (!pid) return;
  const K = 20;
  let opened = 0;
  const results = [];
  let signalled = false;
  let t0 = 0;
  const kill = () => {
    if (signalled) return;
    signalled = true;
    t0 = Date.now();
    process.kill(pid, 'SIGTERM');
  };
  for (let i = 0; i < K; i++) {
    results.push(new Promise((resolve) => {
      const ws = new WebSocket(base + '/echo');
      let wasOpen = false;
      ws.on('upgrade', kill); // the first 101: the others are mid-upgrade
      ws.on('open', () => { wasOpen = true; opened++; });
      ws.on('error', () => {}); // a refusal before the upgrade
      ws.on('close', (code) => resolve({ wasOpen, code }));
    }));
  }
  const rs = await Promise.all(results);
  for (const r of rs) {
    if (r.wasOpen) assert.strictEqual(r.code, 1001, `an open WebSocket got ${r.code}`);
  }
  assert.ok(opened > 0);
  // exits well before the 6 s backstop
  let alive = true;
  while (alive && Date.now() - t0 < 4000) {
    try { process.kill(pid, 0); await sleep(20); } catch (e) { alive = false; }
  }
  assert.ok(!alive, 'the server did not exit within 4 s of SIGTERM');
  console.log(`  ${opened}/${K} opened, all closed with 1001; server exited after ${Date.now() - t0} ms`);
});

runCases();
