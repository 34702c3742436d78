// Hardening of our C tunnel server against a hostile client (issue 10),
// with small limits:
//   --max-tunnels 4 --kx-timeout 400 --max-unkeyed 8 --max-unkeyed-per-addr 3
//   --max-response 1048576 --max-buffered-per-tunnel 2500000
//   --max-buffered 3500000
// and streamed bodies (PROTOCOL.md §11) at their defaults (window 1 MiB).
// Attackers connect from 127.0.0.2 and 127.0.0.3 (loopback aliases), real
// clients from 127.0.0.1.
// Usage: node hardening.js PORT
"use strict"
const assert = require("assert/strict")
const path = require("path")
const WebSocket = require(path.join(__dirname, "..", "..", "node_modules", "ws"))
const { RAClient, encode } = require("./ra_client.js")
const { test, sleep, run } = require("./harness.js")

const port = Number(process.argv[2])
const origin = `http://127.0.0.1:${port}`

// A control channel that never sends client_kx (it answers pings, as any
// ws client does). Resolves its close code, with the time it took.
function idle(from) {
  const ws = new WebSocket(`ws://127.0.0.1:${port}/__ra__`, { localAddress: from })
  const t0 = Date.now()
  ws.closed = new Promise((r) => ws.on("close", (code, reason) => r({ code, reason: reason.toString(), ms: Date.now() - t0 })))
  ws.on("error", () => {})
  ws.opened = new Promise((r) => { ws.on("open", () => r(true)); ws.on("close", () => r(false)) })
  return ws
}

run(async () => {
  const observer = await RAClient.connect(origin)
  const stats = async () => JSON.parse((await observer.fetch("/stats")).text)

  await test("channels without a key exchange: bounded per address and apart from keyed tunnels, closed at the deadline", async () => {
    const before = await stats()
    // 6 idle channels: more than max_tunnels (4), within max_unkeyed (8)
    const a = [idle("127.0.0.2"), idle("127.0.0.2"), idle("127.0.0.2"), idle("127.0.0.3"), idle("127.0.0.3"), idle("127.0.0.3")]
    await Promise.all(a.map((w) => w.opened))
    // a fourth from one address is refused at once
    const extra = idle("127.0.0.2")
    const ex = await extra.closed
    assert.equal(ex.code, 1008)
    assert.ok(ex.ms < 300, "refused after " + ex.ms + " ms")
    // real clients still get keyed tunnels (up to max_tunnels with the observer)
    const real = []
    for (let i = 0; i < 3; i++) real.push(await RAClient.connect(origin))
    for (const c of real) assert.equal((await c.fetch("/hello")).text, "world")
    // every idle channel is closed by the key-exchange deadline (400 ms)
    const res = await Promise.all(a.map((w) => w.closed))
    for (const r of res) {
      assert.equal(r.code, 1008)
      assert.equal(r.reason, "key exchange timeout")
      assert.ok(r.ms >= 300 && r.ms < 3000, "closed after " + r.ms + " ms")
    }
    const after = await stats()
    assert.equal(after.kx_timeouts - before.kx_timeouts, 6)
    assert.equal(after.unkeyed_refused - before.unkeyed_refused, 1) // the fourth from 127.0.0.2
    real.forEach((c) => c.close())
    await sleep(100)
  })

  await test("no control channel inside a tunnel", async () => {
    const c = await RAClient.connect(origin)
    const before = await stats()
    const s = c.websocket("ws://127.0.0.1/__ra__")
    const ev = await s.until((x) => x.events.find((e) => e.eventType === "error" || e.eventType === "open"))
    assert.equal(ev.eventType, "error")
    assert.match(ev.error, /tunnel inside a tunnel/)
    const after = await stats()
    assert.equal(after.nested_refused - before.nested_refused, 1)
    assert.equal(after.tunnels_open, before.tunnels_open)
    assert.equal((await c.fetch("/hello")).text, "world")
    c.close()
    await sleep(50)
  })

  await test("a method longer than HTTP/1.1 allows: 400, not 500", async () => {
    const c = await RAClient.connect(origin)
    for (const len of [32, 255, 256, 300]) {
      const r = await c.fetch("/echo", { method: "X".repeat(len) })
      assert.equal(r.status, 400, "method of " + len + ": " + r.status + " " + r.text)
      assert.match(r.text, /method/)
    }
    const ok = await c.fetch("/echo", { method: "Y".repeat(31) })
    assert.equal(ok.status, 200)
    c.close()
    await sleep(50)
  })

  await test("a response above max_response: 502 at once, the server lives", async () => {
    const c = await RAClient.connect(origin)
    const before = await stats()
    const small = await c.fetch("/big?n=1000000")
    assert.equal(small.status, 200)
    assert.equal(small.bytes.length, 1000000)
    const big = await c.fetch("/big?n=3000000")
    assert.equal(big.status, 502)
    assert.match(big.text, /too large/)
    const after = await stats()
    assert.equal(after.responses_too_large - before.responses_too_large, 1)
    assert.equal((await c.fetch("/hello")).text, "world")
    c.close()
    await sleep(50)
  })

  await test("bytes held for pending requests: capped per tunnel (503, 413; responses too) and server-wide (503)", async () => {
    const mb = "z".repeat(1000000)
    const a = await RAClient.connect(origin)
    const b = await RAClient.connect(origin)
    const before = await stats()
    const held = []
    held.push(a.fetch("/hold", { body: mb }), a.fetch("/hold", { body: mb }))
    await sleep(100)
    // per tunnel: a third megabyte on a is over 2.5 MB
    const third = await a.fetch("/hold", { body: mb })
    assert.equal(third.status, 503)
    // a response is counted too: 900 kB more on a is over 2.5 MB
    const resp = await a.fetch("/big?n=900000")
    assert.equal(resp.status, 503)
    assert.match(resp.text, /too many bytes pending/)
    // one body above the per-tunnel bound: 413
    const huge = await b.fetch("/hold", { body: "z".repeat(2600000) })
    assert.equal(huge.status, 413)
    // server-wide: b may hold 1 MB (3 MB in all), not 2 (4 MB > 3.5 MB)
    held.push(b.fetch("/hold", { body: mb }))
    await sleep(100)
    const over = await b.fetch("/hold", { body: mb })
    assert.equal(over.status, 503)
    // small requests still pass, and released ones free their bytes
    assert.equal((await b.fetch("/hello")).text, "world")
    assert.equal((await observer.fetch("/release")).text, "3")
    for (const r of await Promise.all(held)) assert.equal(r.text, "released")
    held.length = 0
    held.push(a.fetch("/hold", { body: mb }), a.fetch("/hold", { body: mb }), b.fetch("/hold", { body: mb }))
    await sleep(100)
    assert.equal((await observer.fetch("/release")).text, "3")
    for (const r of await Promise.all(held)) assert.equal(r.text, "released")
    const after = await stats()
    assert.equal(after.buffered_refused - before.buffered_refused, 4)
    a.close()
    b.close()
  })
  await test("streamed request bodies (PROTOCOL.md §11) reserve their window within the buffered bounds", async () => {
    // the server's window is 1 MiB: two streams fit the 2.5 MB per-tunnel
    // bound, a third gets 503 and http_cancel; finished ones free theirs
    const c = await RAClient.connect(origin, { bodyStreams: { window: 1 << 20, chunk: 256 << 10 } })
    const before = await stats()
    const s1 = c.stream("/upload?pause=1", { body: Buffer.alloc(2 << 20, 1) })
    const s2 = c.stream("/upload?pause=1", { body: Buffer.alloc(2 << 20, 2) })
    const s3 = c.stream("/upload", { body: Buffer.alloc(10, 3) })
    const r3 = await s3.done
    assert.equal(r3.status, 503)
    for (let i = 0; i < 200 && !s3.log.some((m) => m.type === "http_cancel"); i++) await sleep(10)
    assert.ok(s3.log.some((m) => m.type === "http_cancel"))
    // both paused after their first piece, whenever it came: resume until done
    let done = 0
    Promise.all([s1.done, s2.done]).then(() => { done = 1 }, () => { done = -1 })
    for (let i = 0; i < 500 && !done; i++) {
      await c.fetch("/resume")
      await sleep(10)
    }
    for (const st of [s1, s2]) {
      const j = JSON.parse((await st.done).text)
      assert.equal(j.bytes, 2 << 20)
    }
    const s4 = c.stream("/upload", { body: Buffer.alloc(10, 4) })
    assert.equal(JSON.parse((await s4.done).text).bytes, 10)
    assert.equal((await stats()).buffered_refused - before.buffered_refused, 1)
    c.close()
  })
  observer.close()
}, 60000)
