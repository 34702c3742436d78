// Limits of our C tunnel server, started with small values:
//   --heartbeat 100 --heartbeat-timeout 300 --max-tunnels 4
//   --max-envelopes-per-key 20 --drain-timeout 400
// Usage: node limits.js PORT
"use strict"
const assert = require("assert/strict")
const path = require("path")
const WebSocket = require(path.join(__dirname, "..", "..", "node_modules", "ws"))
const { RAClient } = require("./ra_client.js")
const { test, sleep, run } = require("./harness.js")

const port = Number(process.argv[2])
const origin = `http://127.0.0.1:${port}`

run(async () => {
  await test("heartbeat: pings come; a peer that never answers is dropped, a live one stays", async () => {
    const live = await RAClient.connect(origin)
    let pings = 0
    live.ws.on("ping", () => pings++)
    const mute = new WebSocket(`ws://127.0.0.1:${port}/__ra__`, { autoPong: false })
    const closed = new Promise((r) => mute.on("close", (code) => r(code)))
    const t0 = Date.now()
    const code = await closed
    const dt = Date.now() - t0
    assert.equal(code, 1006)
    assert.ok(dt >= 250 && dt < 2000, "dropped after " + dt + " ms")
    assert.ok(pings >= 2, "pings " + pings)
    assert.equal((await live.fetch("/hello")).text, "world")
    const st = JSON.parse((await live.fetch("/stats")).text)
    assert.ok(st.heartbeat_drops >= 1)
    live.close()
  })

  await test("max tunnels: the fifth control channel is closed with 1008", async () => {
    await sleep(100)
    const cs = []
    for (let i = 0; i < 4; i++) cs.push(await RAClient.connect(origin))
    const extra = new WebSocket(`ws://127.0.0.1:${port}/__ra__`)
    const code = await new Promise((r) => extra.on("close", (c) => r(c)))
    assert.equal(code, 1008)
    assert.equal((await cs[3].fetch("/hello")).text, "world")
    cs[0].close()
    await sleep(100)
    const again = await RAClient.connect(origin)
    assert.equal((await again.fetch("/hello")).text, "world")
    again.close()
    cs.slice(1).forEach((c) => c.close())
  })

  // The replay set holds 20 nonces per key here. The request that crosses
  // it gets a 503 with `error` (the reference client fails just that fetch),
  // and so does every later one; responses still pending finish; then 1008.
  await test("envelopes per key: 503 + error past the limit, pending responses finish, then 1008", async () => {
    await sleep(100)
    const c = await RAClient.connect(origin)
    const closed = new Promise((r) => { c.onclose = (code) => r({ code, at: Date.now() }) })
    const done = {}
    const ps = []
    const track = (name, p) => ps.push(p.then((r) => { done[name] = Date.now(); return r.text }, (e) => "error: " + e.message))
    for (let i = 0; i < 18; i++) track("h" + i, c.fetch("/hello"))
    track("slow1", c.fetch("/slow?ms=300"))
    track("slow2", c.fetch("/slow?ms=350")) // the 20th envelope: still accepted
    for (let i = 0; i < 3; i++) track("over" + i, c.fetch("/hello"))
    const t0 = Date.now()
    const cl = await closed
    const res = await Promise.all(ps)
    assert.equal(cl.code, 1008)
    assert.deepEqual(res.slice(0, 18), Array(18).fill("world"))
    assert.equal(res[18], "slow 300")
    assert.equal(res[19], "slow 350")
    for (const r of res.slice(20)) assert.match(r, /^error: envelope limit for this tunnel key reached/)
    const over = c.received.filter((m) => m.type === "http_response" && m.status === 503)
    assert.equal(over.length, 3)
    assert.ok(over.every((m) => typeof m.error === "string"))
    assert.ok(cl.at >= done.slow2, "closed only after the pending responses finished")
    assert.ok(cl.at - t0 < 2000, "closed " + (cl.at - t0) + " ms after")
    const d = await RAClient.connect(origin)
    assert.equal((await d.fetch("/hello")).text, "world")
    d.close()
  })

  await test("envelopes per key: a response that never comes is cut off after the drain timeout", async () => {
    await sleep(100)
    const c = await RAClient.connect(origin)
    const closed = new Promise((r) => { c.onclose = (code) => r({ code, at: Date.now() }) })
    const ps = []
    for (let i = 0; i < 19; i++) ps.push(c.fetch("/hello").then((r) => r.text))
    const held = c.fetch("/hold").then(() => "answered", (e) => "error: " + e.message)
    await Promise.all(ps)
    const t0 = Date.now()
    const over = await c.fetch("/hello").then(() => "answered", (e) => "error: " + e.message)
    assert.match(over, /^error: envelope limit/)
    const cl = await closed
    assert.equal(cl.code, 1008)
    const waited = cl.at - t0
    assert.ok(waited >= 300 && waited < 3000, "closed after " + waited + " ms (drain timeout 400)")
    assert.equal(await held, "error: Tunnel disconnected")
    const st = JSON.parse((await (await RAClient.connect(origin)).fetch("/stats")).text)
    assert.ok(st.requests_refused >= 4, JSON.stringify(st))
  })

})
