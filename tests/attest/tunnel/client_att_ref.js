// The reference-compatible client (ra_client.js: what @teekit/tunnel's
// TunnelClient sends, no client quote) against a raloop server that asks
// for client attestation: the clientChallenge it does not know is ignored,
// routes without a client requirement answer, /whoami is 403 with its
// reason. Usage: node client_att_ref.js ORIGIN
// With --node-server: ORIGIN is node_server.js (shaped like the reference's
// TunnelServer, which reads sealedSymmetricKey only): a client_kx carrying
// a clientAttestation is keyed as any other.
"use strict"
const { RAClient } = require("./ra_client.js")

async function main() {
  const origin = process.argv[2]
  let fails = 0
  const check = (ok, what) => {
    console.log((ok ? "ok   " : "FAIL ") + what)
    if (!ok) fails++
  }
  if (process.argv[3] === "--node-server") {
    const c = await RAClient.connect(origin, {
      clientKxExtra: { clientAttestation: { quote: new Uint8Array(100).fill(7), event_log: "[]" } },
    })
    const h = await c.fetch("/hello")
    check(h.status === 200, `reference-shaped server, client_kx with clientAttestation: /hello ${h.status}`)
    c.close()
    process.exit(fails ? 1 : 0)
  }
  const c = await RAClient.connect(origin)
  check(c.serverKx.clientChallenge instanceof Uint8Array && c.serverKx.clientChallenge.length === 32,
    "server_kx carries clientChallenge (32 bytes), an unknown field to this client")
  const h = await c.fetch("/hello")
  check(h.status === 200 && h.text === "world", `reference client: /hello ${h.status} ${h.text}`)
  const w = await c.fetch("/whoami")
  check(w.status === 403 && /client attestation required/.test(w.text),
    `reference client: /whoami ${w.status} ${w.text.trim()}`)
  c.close()
  process.exit(fails ? 1 : 0)
}
main().catch((e) => {
  console.log("FAIL " + e.message)
  process.exit(1)
})
