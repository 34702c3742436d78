// tests/http/hello_raw.js: ra-hello driven over raw TCP sockets (Node's net):
// pipelining, byte-at-a-time, every bad input (status, then close),
// back-pressure (a client that never reads), SIGTERM during /delay.
'use strict';
const net = require('net');
const fs = require('fs');
const { spawn } = require('child_process');
const path = require('path');

const BIN = process.env.RA_BIN || path.join(__dirname, '../../build/bin');
let failures = 0;
function check(cond, what) {
  if (cond) console.log('ok   ' + what);
  else { console.log('FAIL ' + what); failures++; }
}

const children = new Set();
process.on('exit', () => { for (const c of children) { try { c.kill('SIGKILL'); } catch (e) { /* gone */ } } });
setTimeout(() => { console.log('FAIL: overall timeout'); process.exit(1); }, 60000).unref();

function startServer(extra = []) {
  return new Promise((resolve, reject) => {
    const p = spawn(path.join(BIN, 'ra-hello'), ['--listen', '127.0.0.1:0', ...extra],
                    { stdio: ['ignore', 'pipe', 'pipe'] });
    children.add(p);
    p.on('exit', () => children.delete(p));
    let out = '';
    p.stderr.on('data', (d) => { if (process.env.VERBOSE) process.stderr.write(d); });
    p.stdout.on('data', (d) => {
      out += d;
      const m = out.match(/listening on http:\/\/127\.0\.0\.1:(\d+)/);
      if (m) resolve({ proc: p, port: +m[1] });
    });
    p.on('exit', (code) => reject(new Error('server exited early: ' + code)));
    setTimeout(() => reject(new Error('server did not start')), 5000);
  });
}

// Sends `chunks` (with `gapMs` between them), collects everything until the
// server closes (or `timeoutMs`). Resolves {data, closed}.
function exchange(port, chunks, { gapMs = 0, timeoutMs = 3000, endAfter = 0 } = {}) {
  return new Promise((resolve) => {
    const s = net.connect(port, '127.0.0.1');
    let data = Buffer.alloc(0);
    let done = false;
    const finish = (closed) => {
      if (done) return;
      done = true;
      s.destroy();
      resolve({ data: data.toString('latin1'), closed });
    };
    s.on('data', (d) => {
      data = Buffer.concat([data, d]);
      if (endAfter && (data.toString('latin1').match(/HTTP\/1\.1 \d\d\d/g) || []).length >= endAfter &&
          /\r\n\r\n/.test(data.toString('latin1'))) {
        setTimeout(() => finish(false), 50);
      }
    });
    s.on('close', () => finish(true));
    s.on('error', () => finish(true));
    setTimeout(() => finish(false), timeoutMs);
    s.on('connect', async () => {
      for (const c of chunks) {
        if (done) return;
        s.write(c);
        if (gapMs) await new Promise((r) => setTimeout(r, gapMs));
      }
    });
  });
}

function statuses(text) { return (text.match(/HTTP\/1\.1 (\d\d\d)/g) || []).map((x) => +x.slice(9)); }

function vmRSSkB(pid) {
  const st = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
  return +st.match(/VmRSS:\s+(\d+)/)[1];
}

async function main() {
  const { proc, port } = await startServer(['--quiet', '--header-timeout-ms', '300']);

  // --- pipelining: three requests in one write, answers in order ---
  {
    const r = await exchange(port, [
      'GET /delay?ms=100 HTTP/1.1\r\nHost: x\r\n\r\n' +
      'GET /hello HTTP/1.1\r\nHost: x\r\n\r\n' +
      'POST /echo HTTP/1.1\r\nHost: x\r\nContent-Type: text/x\r\nContent-Length: 4\r\n\r\nping' +
      'GET /hello HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n'], { timeoutMs: 3000 });
    check(r.closed, 'pipelining: closed after Connection: close');
    const body = r.data;
    const iok = body.indexOf('\r\n\r\nok'), iw = body.indexOf('\r\n\r\nworld'), ip = body.indexOf('\r\n\r\nping');
    check(statuses(body).join() === '200,200,200,200', 'pipelining: four 200s, got ' + statuses(body).join());
    check(iok > 0 && iok < iw && iw < ip, 'pipelining: answers in request order (slow first)');
  }

  // --- byte at a time ---
  {
    const req = 'POST /echo HTTP/1.1\r\nHost: x\r\nContent-Type: a/b\r\nTransfer-Encoding: chunked\r\n\r\n' +
                '3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n';
    const r = await exchange(port, req.split(''), { gapMs: 1, endAfter: 1, timeoutMs: 5000 });
    check(statuses(r.data)[0] === 200 && r.data.endsWith('\r\n\r\nabcde') && /Content-Type: a\/b/.test(r.data),
          'byte-at-a-time chunked upload echoed');
  }

  // chunk extensions, quoted or with BWS, are accepted (and dropped)
  {
    const req = 'POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n' +
      '3;c="d"\r\nabc\r\n2 ; e = "f\\"g";h\r\nde\r\n0\r\n\r\n';
    const r = await exchange(port, [req], { timeoutMs: 3000 });
    check(statuses(r.data)[0] === 200 && r.data.endsWith('\r\n\r\nabcde'), 'quoted chunk extension accepted');
  }

  // --- bad input: status, then the connection closes ---
  const big = (n, ch) => ch.repeat(n);
  const bad = [
    ['malformed request line', 'BLAH\r\n\r\n', 400],
    ['bad header', 'GET /hello HTTP/1.1\r\nHost: x\r\nNo colon here\r\n\r\n', 400],
    ['CL and TE together', 'POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nTransfer-Encoding: chunked\r\n\r\n', 400],
    ['bad chunk size', 'POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nxyz\r\n', 400],
    ['request line too long', 'GET /' + big(9000, 'a') + ' HTTP/1.1\r\nHost: x\r\n\r\n', 414],
    ['header section too large', 'GET /hello HTTP/1.1\r\nHost: x\r\nX-Big: ' + big(17000, 'b') + '\r\n\r\n', 431],
    ['too many headers', 'GET /hello HTTP/1.1\r\nHost: x\r\n' + Array.from({ length: 120 }, (_, i) => `X-${i}: v\r\n`).join('') + '\r\n', 431],
    ['body too large', 'POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999\r\n\r\n', 413],
    ['unsupported transfer-encoding', 'POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\n', 501],
    // RFC 9112 strictness
    ['no Host in HTTP/1.1', 'GET /hello HTTP/1.1\r\n\r\n', 400],
    ['two Host headers', 'GET /hello HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n', 400],
    ['double space in the request line', 'GET  /hello HTTP/1.1\r\nHost: x\r\n\r\n', 400],
    ['chunked body in HTTP/1.0', 'POST /echo HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n', 400],
    ['obs-folded Transfer-Encoding', 'POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding:\r\n chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n', 400],
    ['obs-folded Content-Length', 'POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length:\r\n 3\r\n\r\nabc', 400],
    ['slowloris (header timeout)', 'GET /hello HTTP/1.1\r\nHost: x\r\n', 408],
  ];
  for (const [name, req, want] of bad) {
    const t0 = Date.now();
    const r = await exchange(port, [req], { timeoutMs: 3000 });
    const st = statuses(r.data);
    check(st.length === 1 && st[0] === want && r.closed && /Connection: close/.test(r.data),
          `${name}: ${want} then close (got ${st.join()} closed=${r.closed} in ${Date.now() - t0} ms)`);
  }
  // slowloris trickling one header byte every 50 ms still times out
  {
    const chunks = ['GET /hello HTTP/1.1\r\nHost: x\r\n'].concat('X-Slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa'.split(''));
    const r = await exchange(port, chunks, { gapMs: 50, timeoutMs: 4000 });
    check(statuses(r.data)[0] === 408 && r.closed, 'trickling slowloris: 408 then close');
  }

  // --- a client that never reads: server memory stays bounded ---
  {
    const rss0 = vmRSSkB(proc.pid);
    const s = net.connect(port, '127.0.0.1');
    await new Promise((r) => s.on('connect', r));
    s.pause(); // never read
    s.write('GET /stream?n=20000000 HTTP/1.1\r\nHost: x\r\n\r\n');
    await new Promise((r) => setTimeout(r, 1500));
    const rss1 = vmRSSkB(proc.pid);
    await new Promise((r) => setTimeout(r, 500));
    const rss2 = vmRSSkB(proc.pid);
    check(rss2 - rss0 < 8 * 1024 && rss2 - rss1 < 1024,
          `non-reading client: RSS bounded (${rss0} -> ${rss1} -> ${rss2} kB)`);
    // the server still serves others meanwhile
    const r = await exchange(port, ['GET /hello HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n']);
    check(r.data.endsWith('world'), 'server responsive while one client stalls');
    // reading it all back works (a prefix is enough to see it flows)
    let got = 0;
    s.on('data', (d) => { got += d.length; });
    s.resume();
    await new Promise((r) => setTimeout(r, 300));
    check(got > 1024 * 1024, `stalled stream resumes when read (${got} bytes in 300 ms)`);
    s.destroy();
  }

  proc.kill('SIGKILL');

  // --- SIGTERM during a slow request: it still completes ---
  {
    const { proc: p2, port: port2 } = await startServer([]);
    const pending = exchange(port2, ['GET /delay?ms=1500 HTTP/1.1\r\nHost: x\r\n\r\n'], { timeoutMs: 5000 });
    await new Promise((r) => setTimeout(r, 300));
    const t0 = Date.now();
    const exited = new Promise((r) => p2.on('exit', (code, sig) => r({ code, sig })));
    p2.kill('SIGTERM');
    // new connections are refused once stopping
    await new Promise((r) => setTimeout(r, 100));
    const refused = await new Promise((r) => {
      const s = net.connect(port2, '127.0.0.1');
      s.on('connect', () => { s.destroy(); r(false); });
      s.on('error', () => r(true));
    });
    check(refused, 'after SIGTERM: listener closed');
    const r = await pending;
    const ex = await exited;
    check(statuses(r.data)[0] === 200 && r.data.endsWith('\r\n\r\nok') && /Connection: close/.test(r.data),
          'SIGTERM during /delay?ms=1500: request completed with 200 ok');
    check(r.closed, 'SIGTERM: connection closed after the answer');
    check(ex.code === 0, `server exited 0 after draining (code ${ex.code}, ${Date.now() - t0} ms)`);
  }

  if (failures) {
    console.log(`${failures} check(s) failed`);
    process.exit(1);
  }
  console.log('all raw-socket checks passed');
}

main().catch((e) => { console.error(e); process.exit(1); });
