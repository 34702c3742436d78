// WebSockets through ra-gateway: node ws_check.js ws://GATEWAY UPSTREAM_LOG
// Echo of text and binary (256 KiB) messages, the subprotocol passed on, an
// upstream close (4001 "bye") reaching the client with its code and reason,
// and a client close (4002 "client-bye") reaching the upstream.
"use strict"
const path = require("path")
const fs = require("fs")
const WebSocket = require(path.join(__dirname, "..", "..", "node_modules", "ws"))
const [base, logFile] = process.argv.slice(2)
let fails = 0
const ok = (c, m) => { console.log((c ? "ok   " : "FAIL ") + m); if (!c) fails++ }
const open = (p, protos) => new Promise((res, rej) => {
  const ws = new WebSocket(base + p, protos)
  ws.once("open", () => res(ws))
  ws.once("error", rej)
})
const next = (ws) => new Promise((res) => ws.once("message", (d, bin) => res({ d, bin })))
const closed = (ws) => new Promise((res) => ws.once("close", (code, reason) => res({ code, reason: reason.toString() })))
const sleep = (ms) => new Promise((r) => setTimeout(r, ms))
;(async () => {
  const ws = await open("/ws/echo?x=1", ["chat.v1"])
  ok(ws.protocol === "chat.v1", `ws: subprotocol passed on (${ws.protocol})`)
  ws.send("hello")
  let m = await next(ws)
  ok(!m.bin && m.d.toString() === "hello", "ws: text echoed")
  const big = Buffer.alloc(256 * 1024)
  for (let i = 0; i < big.length; i++) big[i] = i % 253
  ws.send(big)
  m = await next(ws)
  ok(m.bin && Buffer.compare(m.d, big) === 0, "ws: 256 KiB binary echoed")
  const c = closed(ws)
  ws.send("close:4001:bye")
  const r = await c
  ok(r.code === 4001 && r.reason === "bye", `ws: upstream close reaches the client (${r.code} ${r.reason})`)

  const ws2 = await open("/ws/two")
  ws2.send("x")
  await next(ws2)
  const c2 = closed(ws2)
  ws2.close(4002, "client-bye")
  await c2
  await sleep(300)
  const log = fs.readFileSync(logFile, "utf8")
  ok(log.includes('{"ws_close":4002,"reason":"client-bye"}'), "ws: client close reaches the upstream with its code")
  process.exit(fails ? 1 : 0)
})().catch((e) => { console.log("FAIL ws: " + e.message); process.exit(1) })
