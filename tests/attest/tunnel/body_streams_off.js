// Our C tunnel server started with --no-body-streams 1: server_kx announces
// nothing, a client's announcement is ignored, bodyStream requests get 400,
// and large answers go whole as without the extension.
// Usage: node body_streams_off.js PORT
"use strict"
const assert = require("assert/strict")
const { RAClient } = require("./ra_client.js")
const { test, run } = require("./harness.js")

const port = Number(process.argv[2])
const origin = `http://127.0.0.1:${port}`

run(async () => {
  await test("switched off: no announcement, no streams", async () => {
    const c = await RAClient.connect(origin, { bodyStreams: { window: 65536, chunk: 16384 } })
    assert.equal(c.serverKx.bodyStreams, undefined)
    assert.equal(c.bs, undefined)
    c.sendInner({ type: "http_request", requestId: "x", method: "PUT", url: "/upload", headers: {}, bodyStream: true })
    c.sendInner({ type: "http_body", requestId: "x", end: true, data: new Uint8Array(5) })
    const r = await c.fetch("/bytes?n=" + (2 << 20))
    assert.equal(r.bytes.length, 2 << 20)
    assert.ok(!("bodyStream" in r))
    const x = c.received.filter((m) => m.requestId === "x")
    assert.equal(x.length, 1)
    assert.equal(x[0].status, 400)
    const s = JSON.parse((await c.fetch("/stats")).text)
    assert.equal(s.body_streams_negotiated, 0)
    c.close()
  })
})
