// A WebSocket through the attested tunnel and ra-gateway to the upstream:
// node ws_tunnel_check.js http://GATEWAY UPSTREAM_LOG
// Echo both ways, the upstream's close code reaching the tunnelled client,
// X-Attested: 1 on the upstream's upgrade request.
"use strict"
const fs = require("fs")
const path = require("path")
const { RAClient } = require(path.join(__dirname, "..", "..", "attest", "tunnel", "ra_client.js"))
const [origin, logFile] = process.argv.slice(2)
let fails = 0
const ok = (c, m) => { console.log((c ? "ok   " : "FAIL ") + m); if (!c) fails++ }
;(async () => {
  const c = await RAClient.connect(origin)
  const s = c.websocket(origin.replace("http", "ws") + "/ws/tunnel", [])
  const ev = await s.until((x) => x.events.find((e) => e.eventType === "open" || e.eventType === "error"))
  ok(ev.eventType === "open", `tunnel ws: opened on a proxied path (${ev.eventType} ${ev.error || ""})`)
  s.send("through the tunnel")
  const m = await s.until((x) => x.messages[0])
  ok(String(m.data) === "through the tunnel", "tunnel ws: text echoed by the upstream")
  s.send(new Uint8Array([0, 1, 2, 255]))
  const b = await s.until((x) => x.messages[1])
  ok(Buffer.from(b.data).equals(Buffer.from([0, 1, 2, 255])), "tunnel ws: binary echoed")
  s.send("close:4003:tunnel-bye")
  const cl = await s.until((x) => x.events.find((e) => e.eventType === "close"))
  ok(cl.code === 4003 && cl.reason === "tunnel-bye", `tunnel ws: upstream close reaches the client (${cl.code} ${cl.reason})`)
  const log = fs.readFileSync(logFile, "utf8")
  ok(/"UPGRADE","url":"\/ws\/tunnel","headers":\{[^}]*"x-attested":"1"/.test(log), "tunnel ws: the upstream saw X-Attested: 1")
  c.close()
  process.exit(fails ? 1 : 0)
})().catch((e) => { console.log("FAIL tunnel ws: " + e.message); process.exit(1) })
