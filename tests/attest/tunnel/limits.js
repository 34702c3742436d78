// Limits of our C tunnel server, started with small values:
//   --heartbeat 100 --heartbeat-timeout 300 --max-tunnels 4
//   --max-envelopes-per-key 20
// Usage: node limits.js PORT
"use strict"
const assert = require("assert/strict")
const path = require("path")
const WebSocket = require(path.join(__dirname, "..", "..", "node_modules", "ws"))
const { RAClient } = require("./ra_client.js")

const port = Number(process.argv[2])
const origin = `http://127.0.0.1:${port}`
setTimeout(() => { console.log("FAIL global timeout"); process.exit(1) }, 120000).unref()
const sleep = (ms) => new Promise((r) => setTimeout(r, ms))
let failures = 0
async function test(name, fn) {
  try {
    await fn()
    console.log("ok   " + name)
  } catch (e) {
    failures++
    console.log("FAIL " + name + ": " + (e && e.stack || e))
  }
}

;(async () => {
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

  await test("envelopes per key: past the limit the channel closes (1008) and a new key works", async () => {
    await sleep(100)
    const c = await RAClient.connect(origin)
    const closed = new Promise((r) => { c.onclose = (code) => r(code) })
    const ps = []
    for (let i = 0; i < 25; i++) ps.push(c.fetch("/hello").then((r) => r.text, () => "failed"))
    assert.equal(await closed, 1008)
    const res = await Promise.all(ps)
    assert.equal(res.filter((x) => x === "world").length, 20)
    const d = await RAClient.connect(origin)
    assert.equal((await d.fetch("/hello")).text, "world")
    d.close()
  })

  await sleep(50)
  if (failures) {
    console.log(`${failures} failure(s)`)
    process.exit(1)
  }
  console.log("all passed")
  process.exit(0)
})().catch((e) => {
  console.log("FAIL setup: " + (e && e.stack || e))
  process.exit(1)
})
