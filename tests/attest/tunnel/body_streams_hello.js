// ra-hello's PUT /upload (a RA_ROUTE_STREAM_BODY route) and GET /bytes
// through the tunnel, by this independent Node client: whole bodies as the
// reference client sends them (it never announces bodyStreams), and
// streamed ones (PROTOCOL.md §11, ra_client.js's opt-in mode), including a
// response above the 16 MiB whole-response cap. Then ra-hello
// --no-body-streams: nothing announced, whole bodies as before.
// Starts its own ra-hello instances (RA_BIN) on loopback; stops them.
"use strict"
const assert = require("assert/strict")
const crypto = require("crypto")
const { RAClient } = require("./ra_client.js")
const { test, run } = require("./harness.js")
const { helloProcs } = require("./hello_procs.js")

const hello = helloProcs("ra-hello-bs-")
const startHello = (...flags) => hello.startHello("--quiet", ...flags)
async function stop(h) {
  h.proc.kill("SIGTERM")
  const e = await h.exited
  assert.equal(e.code, 0, "ra-hello exit " + JSON.stringify(e) + h.err())
  assert.ok(!/Sanitizer|runtime error:/.test(h.err()), h.err())
}

const sha = (b) => crypto.createHash("sha256").update(b).digest("hex")
const pattern = (n) => { const b = Buffer.alloc(n); for (let i = 0; i < n; i++) b[i] = i % 251; return b }

run(async () => {
  const h = await startHello()
  await test("whole bodies (the reference client's way) to /upload and from /bytes", async () => {
    const c = await RAClient.connect(h.origin)
    assert.ok(c.serverKx.bodyStreams, "announced by default")
    const body = crypto.randomBytes(3 << 20)
    const j = JSON.parse((await c.fetch("/upload", { method: "PUT", body: new Uint8Array(body) })).text)
    assert.equal(j.bytes, body.length)
    assert.equal(j.sha256, sha(body))
    const n = 3 << 20
    const r = await c.fetch("/bytes?n=" + n)
    assert.ok(r.bytes.equals(pattern(n)))
    assert.ok(!c.received.some((m) => m.type === "http_body" || m.type === "http_credit" || "bodyStream" in m))
    c.close()
  })
  await test("streamed bodies: a 5 MiB upload, a 20 MiB answer (above the whole-response cap)", async () => {
    const c = await RAClient.connect(h.origin, { bodyStreams: { window: 1 << 20, chunk: 256 << 10 } })
    assert.ok(c.bs)
    const body = crypto.randomBytes(5 << 20)
    const st = c.stream("/upload", { body })
    const j = JSON.parse((await st.done).text)
    assert.equal(j.bytes, body.length)
    assert.equal(j.sha256, sha(body))
    const n = 20 << 20
    const d = c.stream("/bytes?n=" + n, { method: "GET", whole: true })
    const r = await d.done
    assert.equal(r.bodyStream, true)
    assert.ok(r.bytes.equals(pattern(n)))
    assert.ok(Math.max(...d.pieces) <= 256 << 10)
    assert.ok(!d.overCredit)
    c.close()
  })
  await stop(h)

  const off = await startHello("--no-body-streams")
  await test("--no-body-streams: nothing announced, whole bodies as before", async () => {
    const c = await RAClient.connect(off.origin, { bodyStreams: { window: 1 << 20, chunk: 256 << 10 } })
    assert.equal(c.serverKx.bodyStreams, undefined)
    assert.equal(c.bs, undefined)
    const body = crypto.randomBytes(1 << 20)
    const j = JSON.parse((await c.fetch("/upload", { method: "PUT", body: new Uint8Array(body) })).text)
    assert.equal(j.sha256, sha(body))
    c.close()
  })
  await stop(off)
})
