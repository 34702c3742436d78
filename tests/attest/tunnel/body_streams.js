// The streamed-body extension (PROTOCOL.md §11) of our C tunnel server,
// driven with raw inner messages by the Node client (ra_client.js's
// opt-in streaming mode). Server started with
//   --bs-window 65536 --bs-chunk 16384
// Usage: node body_streams.js PORT
"use strict"
const assert = require("assert/strict")
const crypto = require("crypto")
const { RAClient } = require("./ra_client.js")
const { test, sleep, run } = require("./harness.js")

const port = Number(process.argv[2])
const origin = `http://127.0.0.1:${port}`
const WINDOW = 65536, CHUNK = 16384
const MINE = { window: 65536, chunk: 16384 } // what the client announces

const sha = (b) => crypto.createHash("sha256").update(b).digest("hex")
const pattern = (n) => { const b = Buffer.alloc(n); for (let i = 0; i < n; i++) b[i] = i % 251; return b }
async function until(pred, ms = 5000, what = "condition") {
  const t0 = Date.now()
  for (;;) {
    const v = await pred()
    if (v) return v
    if (Date.now() - t0 > ms) throw new Error("timeout waiting for " + what)
    await sleep(10)
  }
}
const stats = async (c) => JSON.parse((await c.fetch("/stats")).text)
const msgsFor = (c, id) => c.received.filter((m) => m.requestId === id)

run(async () => {
  const c = await RAClient.connect(origin, { bodyStreams: MINE })

  await test("negotiation: server_kx announces bodyStreams; only a valid client_kx announcement turns it on", async () => {
    assert.deepEqual(c.serverKx.bodyStreams, { window: WINDOW, chunk: CHUNK })
    assert.ok(c.bs)
    const before = (await stats(c)).body_streams_negotiated
    // a reference-like client (no announcement) and one with a window out of range
    const plain = await RAClient.connect(origin)
    const bad = await RAClient.connect(origin, { bodyStreams: { window: 1000, chunk: 500 } })
    assert.equal((await stats(c)).body_streams_negotiated, before)
    for (const x of [plain, bad]) {
      x.bs = { server: { window: WINDOW, chunk: CHUNK }, mine: MINE } // pretend, to send the messages anyway
      const st = x.stream("/upload", { body: Buffer.alloc(10) })
      const r = await st.done
      assert.equal(r.status, 400)
      assert.ok(!msgsFor(x, st.requestId).some((m) => m.type === "http_credit"))
      // whole bodies as today
      const w = await x.fetch("/echo", { method: "POST", body: new Uint8Array([1, 2, 3]) })
      assert.deepEqual([...w.bytes], [1, 2, 3])
      x.close()
    }
  })

  await test("streamed upload to a RA_ROUTE_STREAM_BODY route: bytes and sha256 right, credit granted", async () => {
    const body = crypto.randomBytes(1 << 20)
    const st = c.stream("/upload", { body })
    const r = await st.done
    assert.equal(r.status, 200)
    const j = JSON.parse(r.text)
    assert.equal(j.bytes, body.length)
    assert.equal(j.sha256, sha(body))
    assert.equal(j.streamed, true)
    assert.equal(st.sent, body.length)
    assert.ok(st.log.filter((m) => m.type === "http_credit").length >= 10)
    assert.ok(!st.log.some((m) => m.type === "http_cancel"))
    // a piece after the end of a finished stream: http_cancel, no second answer
    c.sendInner({ type: "http_body", requestId: st.requestId, end: true, data: new Uint8Array(1) })
    await until(() => msgsFor(c, st.requestId).some((m) => m.type === "http_cancel"), 5000, "cancel")
    assert.equal(msgsFor(c, st.requestId).filter((m) => m.type === "http_response").length, 1)
  })

  await test("streamed upload to a normal route: assembled, the handler gets the whole body", async () => {
    const body = crypto.randomBytes(300000)
    const st = c.stream("/echo", { method: "POST", body, headers: { "content-type": "application/x-test" } })
    const r = await st.done
    assert.equal(r.status, 200)
    assert.equal(r.headers["x-method"], "POST")
    assert.equal(sha(r.bytes), sha(body))
    assert.equal(r.bodyStream, true, "300000 bytes over a 16 KiB chunk: the answer is streamed too")
  })

  await test("a paused handler: the client's credit stops at window + the chunk taken, then resumes", async () => {
    const body = crypto.randomBytes(1 << 20)
    const st = c.stream("/upload?pause=1", { body })
    await until(() => st.credit === 0, 5000, "credit spent")
    await sleep(300)
    assert.equal(st.credit, 0)
    assert.ok(st.sent <= WINDOW + CHUNK, "sent " + st.sent)
    assert.ok(st.sent >= WINDOW, "sent " + st.sent)
    assert.equal((await stats(c)).paused, 1)
    assert.equal((await c.fetch("/resume")).text, "1")
    const j = JSON.parse((await st.done).text)
    assert.equal(j.bytes, body.length)
    assert.equal(j.sha256, sha(body))
  })

  await test("streamed response: pieces within the chunk and the credit; without credit the server stops", async () => {
    const n = 3 << 20
    const st = c.stream("/bytes?n=" + n, { method: "GET", whole: true })
    const r = await st.done
    assert.equal(r.status, 200)
    assert.equal(r.bodyStream, true)
    assert.equal(r.body, null)
    assert.equal(r.bytes.length, n)
    assert.ok(r.bytes.equals(pattern(n)))
    assert.ok(Math.max(...st.pieces) <= MINE.chunk)
    assert.ok(!st.overCredit)
    // no credit: the server sends the window, then waits
    const st2 = c.stream("/bytes?n=" + n + "&nolen=1", { method: "GET", whole: true, noGrant: true })
    await until(() => st2.received >= MINE.window, 5000, "the window")
    await sleep(300)
    assert.equal(st2.received, MINE.window)
    const s = await stats(c)
    assert.ok(s.max_pending < 2 << 20, "max pending " + s.max_pending)
    st2.grant(n) // all the rest at once
    const r2 = await st2.done
    assert.ok(r2.bytes.equals(pattern(n)))
  })

  await test("small answers on a negotiated tunnel go whole, as before", async () => {
    const r = await c.fetch("/hello")
    assert.equal(r.text, "world")
    const m = c.received.filter((x) => x.type === "http_response").pop()
    assert.ok(!("bodyStream" in m))
    const small = c.stream("/upload", { body: Buffer.from("abc") })
    const j = JSON.parse((await small.done).text)
    assert.equal(j.bytes, 3)
  })

  await test("http_cancel from the client: the request body and a streamed response", async () => {
    const before = (await stats(c)).upload_cancelled
    const st = c.stream("/upload?pause=1", { body: crypto.randomBytes(1 << 20) })
    await until(() => st.credit === 0, 5000, "credit spent")
    st.cancel("changed my mind")
    await until(async () => (await stats(c)).upload_cancelled === before + 1, 5000, "upload cancelled")
    const st2 = c.stream("/bytes?n=" + (10 << 20), { method: "GET", whole: true, noGrant: true })
    await until(() => st2.received >= MINE.window, 5000, "the window")
    st2.cancel()
    await until(async () => (await stats(c)).upload_cancelled === before + 2, 5000, "response cancelled")
    await sleep(100)
    assert.ok(!msgsFor(c, st.requestId).some((m) => m.type === "http_response"))
    assert.equal(st2.received, MINE.window)
    assert.equal((await stats(c)).paused, 0)
  })

  await test("early answer: the response, then http_cancel; later pieces are ignored", async () => {
    const v0 = (await stats(c)).body_stream_violations
    const st = c.stream("/upload?early=1", { body: crypto.randomBytes(1 << 20), hold: true })
    const r = await st.done
    assert.equal(r.text, "early")
    await until(() => st.log.some((m) => m.type === "http_cancel"), 5000, "http_cancel")
    const types = st.log.map((m) => m.type)
    assert.ok(types.indexOf("http_response") < types.indexOf("http_cancel"))
    c.sendInner({ type: "http_body", requestId: st.requestId, end: false, data: new Uint8Array(100) })
    await sleep(100)
    assert.equal((await stats(c)).body_stream_violations, v0)
  })

  await test("violations fail that stream only: 400 and http_cancel, the tunnel goes on", async () => {
    const expectFail = async (id, what) => {
      await until(() => msgsFor(c, id).some((m) => m.type === "http_cancel"), 5000, what)
      const resp = msgsFor(c, id).filter((m) => m.type === "http_response")
      assert.equal(resp.length, 1, what)
      assert.equal(resp[0].status, 400, what)
      assert.equal((await c.fetch("/hello")).text, "world")
    }
    const v0 = (await stats(c)).body_stream_violations
    // a piece larger than the announced chunk
    let st = c.stream("/upload", { body: Buffer.alloc(0), hold: true })
    c.sendInner({ type: "http_body", requestId: st.requestId, end: false, data: new Uint8Array(CHUNK + 1) })
    await expectFail(st.requestId, "over the chunk")
    // data beyond the credit (the handler pauses, no credit comes)
    st = c.stream("/upload?pause=1", { body: Buffer.alloc(0), hold: true })
    for (let i = 0; i < 6; i++)
      c.sendInner({ type: "http_body", requestId: st.requestId, end: false, data: new Uint8Array(CHUNK) })
    await expectFail(st.requestId, "over the credit")
    // http_body for no stream
    c.sendInner({ type: "http_body", requestId: "nosuch", end: true, data: new Uint8Array(1) })
    await expectFail("nosuch", "unknown stream")
    // http_body after the end
    st = c.stream("/upload?pause=1", { body: Buffer.alloc(0), hold: true })
    c.sendInner({ type: "http_body", requestId: st.requestId, end: false, data: new Uint8Array(10) })
    c.sendInner({ type: "http_body", requestId: st.requestId, end: true, data: new Uint8Array(10) })
    await until(async () => (await stats(c)).paused === 1, 5000, "paused")
    c.sendInner({ type: "http_body", requestId: st.requestId, end: true, data: new Uint8Array(1) })
    await expectFail(st.requestId, "after the end")
    // a second bodyStream request with a requestId in flight
    st = c.stream("/upload", { body: Buffer.alloc(0), hold: true })
    c.sendInner({ type: "http_request", requestId: st.requestId, method: "PUT", url: "/upload", headers: {}, bodyStream: true })
    await expectFail(st.requestId, "second request")
    // bodyStream with a body
    c.sendInner({ type: "http_request", requestId: "both", method: "PUT", url: "/upload", headers: {}, bodyStream: true, body: new Uint8Array(3) })
    await expectFail("both", "bodyStream with a body")
    const s = await stats(c)
    assert.equal(s.body_stream_violations, v0 + 6)
    assert.equal(s.paused, 0)
  })

  await test("the control channel drops mid-stream: every stream's response is cancelled", async () => {
    const d = await RAClient.connect(origin, { bodyStreams: MINE })
    const before = (await stats(c)).upload_cancelled
    const up = d.stream("/upload?pause=1", { body: crypto.randomBytes(1 << 20) })
    const down = d.stream("/bytes?n=" + (10 << 20), { method: "GET", whole: true, noGrant: true })
    const asm = d.stream("/echo", { method: "POST", body: crypto.randomBytes(200000), hold: true })
    await until(() => up.credit === 0 && down.received >= MINE.window, 5000, "streams under way")
    d.close()
    await until(async () => (await stats(c)).upload_cancelled === before + 2, 5000, "both cancelled")
    assert.equal((await stats(c)).paused, 0)
    void asm
  })

  await test("the reference's whole bodies still reach /upload and /bytes", async () => {
    const plain = await RAClient.connect(origin)
    const body = crypto.randomBytes(2 << 20)
    const r = await plain.fetch("/upload", { method: "PUT", body: new Uint8Array(body) })
    const j = JSON.parse(r.text)
    assert.equal(j.bytes, body.length)
    assert.equal(j.sha256, sha(body))
    assert.equal(j.streamed, false)
    const n = 3 << 20
    const b = await plain.fetch("/bytes?n=" + n)
    assert.ok(!("bodyStream" in b))
    assert.ok(b.bytes.equals(pattern(n)))
    assert.ok(!plain.received.some((m) => m.type === "http_body" || m.type === "http_credit"))
    plain.close()
  })

  c.close()
})
