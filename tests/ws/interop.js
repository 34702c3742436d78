// tests/ws/interop.js PORT: the npm `ws` client against ra-hello's WS /echo
// and /chat: every message size the issue names, text/binary types,
// fragmented messages, ping/pong, closes in both directions, handshake
// refusals, and 1001 on server shutdown.
'use strict';
const assert = require('assert');
const crypto = require('crypto');
const http = require('http');
const WebSocket = require('ws');

const port = Number(process.argv[2]);
const base = `ws://127.0.0.1:${port}`;
const { test, runCases } = require('./cases.js')(120000);

function open(path, opts) {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(base + path, { maxPayload: 256 << 20, ...opts });
    ws.once('open', () => resolve(ws));
    ws.once('error', reject);
  });
}
function next(ws) {
  return new Promise((resolve, reject) => {
    const onClose = (c) => reject(new Error(`closed (${c}) while waiting for a message`));
    ws.once('close', onClose);
    ws.once('message', (data, isBinary) => { ws.off('close', onClose); resolve({ data, isBinary }); });
  });
}
function closed(ws) {
  return new Promise((resolve) => ws.once('close', (code, reason) => resolve({ code, reason: reason.toString() })));
}

test('text echo keeps the type', async () => {
  const ws = await open('/echo');
  const msg = 'hello, ünïcödé ✓ 🙂';
  ws.send(msg);
  const r = await next(ws);
  assert.strictEqual(r.isBinary, false);
  assert.strictEqual(r.data.toString('utf8'), msg);
  ws.close(1000);
  assert.strictEqual((await closed(ws)).code, 1000);
});

for (const size of [0, 1, 125, 126, 127, 65535, 65536, 1 << 20, 16 << 20]) {
  test(`binary ${size} bytes`, async () => {
    const ws = await open('/echo');
    const buf = crypto.randomBytes(size);
    ws.send(buf, { binary: true });
    const r = await next(ws);
    assert.strictEqual(r.isBinary, true);
    assert.strictEqual(r.data.length, size);
    assert.ok(buf.equals(r.data), 'payload differs');
    ws.close();
    await closed(ws);
  });
}

for (const size of [0, 125, 126, 65535, 65536]) {
  test(`text ${size} bytes`, async () => {
    const ws = await open('/echo');
    const s = 'x'.repeat(size);
    ws.send(s);
    const r = await next(ws);
    assert.strictEqual(r.isBinary, false);
    assert.strictEqual(r.data.toString(), s);
    ws.close();
    await closed(ws);
  });
}

test('fragmented text (a code point split across fragments) and binary', async () => {
  const ws = await open('/echo');
  const bytes = Buffer.from('fragments: é and 🙂 end', 'utf8');
  const cut1 = bytes.indexOf(0xc3) + 1; // inside "é"
  const cut2 = bytes.indexOf(0xf0) + 2; // inside "🙂"
  ws.send(bytes.subarray(0, cut1), { binary: false, fin: false });
  ws.send(bytes.subarray(cut1, cut2), { binary: false, fin: false });
  ws.ping('between');
  ws.send(Buffer.alloc(0), { binary: false, fin: false });
  ws.send(bytes.subarray(cut2), { binary: false, fin: true });
  let r = await next(ws);
  assert.strictEqual(r.isBinary, false);
  assert.ok(r.data.equals(bytes));
  const big = crypto.randomBytes(300000);
  for (let off = 0; off < big.length; off += 70000)
    ws.send(big.subarray(off, off + 70000), { binary: true, fin: off + 70000 >= big.length });
  r = await next(ws);
  assert.strictEqual(r.isBinary, true);
  assert.ok(r.data.equals(big));
  ws.close();
  await closed(ws);
});

test('ping gets a pong with the same payload', async () => {
  const ws = await open('/echo');
  const got = new Promise((resolve) => ws.once('pong', resolve));
  ws.ping(Buffer.from('are you there?'));
  assert.strictEqual((await got).toString(), 'are you there?');
  const empty = new Promise((resolve) => ws.once('pong', resolve));
  ws.ping();
  assert.strictEqual((await empty).length, 0);
  ws.close();
  await closed(ws);
});

test('client-initiated close: code and reason echoed', async () => {
  const ws = await open('/echo');
  ws.close(4000, 'bye now');
  const c = await closed(ws);
  assert.strictEqual(c.code, 4000);
  assert.strictEqual(c.reason, 'bye now');
});

test('client close without a code', async () => {
  const ws = await open('/echo');
  ws.close();
  assert.strictEqual((await closed(ws)).code, 1005);
});

test('server-initiated close: invalid UTF-8 gets 1007', async () => {
  const ws = await open('/echo');
  ws.send(Buffer.from([0x68, 0xff, 0x69]), { binary: false });
  const c = await closed(ws);
  assert.strictEqual(c.code, 1007);
});

test('many messages in flight stay in order', async () => {
  const ws = await open('/echo');
  const n = 500;
  const got = [];
  const done = new Promise((resolve) => ws.on('message', (d) => { got.push(d.toString()); if (got.length === n) resolve(); }));
  for (let i = 0; i < n; i++) ws.send(`m${i}`);
  await done;
  for (let i = 0; i < n; i++) assert.strictEqual(got[i], `m${i}`);
  ws.close();
  await closed(ws);
});

test('/chat broadcasts to every member, sender included', async () => {
  const a = await open('/chat'), b = await open('/chat'), c = await open('/chat');
  const all = [next(a), next(b), next(c)];
  a.send('hi all');
  for (const r of await Promise.all(all)) {
    assert.strictEqual(r.data.toString(), 'hi all');
    assert.strictEqual(r.isBinary, false);
  }
  // a member that left gets nothing; the others still do
  c.close();
  await closed(c);
  const two = [next(a), next(b)];
  b.send(Buffer.from([1, 2, 3]), { binary: true });
  for (const r of await Promise.all(two)) {
    assert.strictEqual(r.isBinary, true);
    assert.ok(r.data.equals(Buffer.from([1, 2, 3])));
  }
  a.close();
  b.close();
  await Promise.all([closed(a), closed(b)]);
});

function rawGet(path, headers) {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port, path, headers });
    req.on('response', (res) => {
      res.resume();
      res.on('end', () => resolve(res));
    });
    req.on('upgrade', (res, sock) => { sock.destroy(); resolve(res); });
    req.on('error', reject);
    req.end();
  });
}

test('handshake refusals: 426 without Upgrade or with version 8, 400 for a bad key', async () => {
  const key = crypto.randomBytes(16).toString('base64');
  const good = { Connection: 'Upgrade', Upgrade: 'websocket', 'Sec-WebSocket-Version': '13', 'Sec-WebSocket-Key': key };
  let r = await rawGet('/echo', {});
  assert.strictEqual(r.statusCode, 426);
  r = await rawGet('/echo', { ...good, 'Sec-WebSocket-Version': '8' });
  assert.strictEqual(r.statusCode, 426);
  assert.strictEqual(r.headers['sec-websocket-version'], '13');
  r = await rawGet('/echo', { ...good, 'Sec-WebSocket-Key': 'c2hvcnQ=' });
  assert.strictEqual(r.statusCode, 400);
  r = await rawGet('/echo', { ...good, 'Sec-WebSocket-Key': crypto.randomBytes(17).toString('base64') });
  assert.strictEqual(r.statusCode, 400);
  const { 'Sec-WebSocket-Key': _k, ...nokey } = good;
  r = await rawGet('/echo', nokey);
  assert.strictEqual(r.statusCode, 400);
  r = await rawGet('/echo', { ...good, Connection: 'keep-alive' });
  assert.strictEqual(r.statusCode, 400);
  r = await rawGet('/echo', { ...good, Upgrade: 'h2c' });
  assert.strictEqual(r.statusCode, 400);
  r = await rawGet('/echo', { ...good, Connection: 'keep-alive, Upgrade' });
  assert.strictEqual(r.statusCode, 101);
  const want = crypto.createHash('sha1').update(key + '258EAFA5-E914-47DA-95CA-C5AB0DC85B11').digest('base64');
  assert.strictEqual(r.headers['sec-websocket-accept'], want);
  assert.strictEqual(r.headers['sec-websocket-protocol'], undefined);
});

test('server shutdown closes open WebSockets with 1001', async () => {
  const pid = Number(process.env.RA_HELLO_PID || 0);
  if (!pid) return;
  const ws = await open('/echo');
  const c = closed(ws);
  process.kill(pid, 'SIGTERM');
  const r = await c;
  assert.strictEqual(r.code, 1001);
});

runCases();
