// The relay protocol (docs/RELAY.md) on Node's `ws` package with tweetnacl:
// the reference the relay benchmark compares ra-hello's WS /relay with.
// Same messages, same checks where they cost (challenge box, lengths), no
// rate limit. Prints "listening on PORT".
//   node relay_ref_server.js [PORT]
"use strict"
const path = require("path")
const nm = path.join(__dirname, "..", "tests", "node_modules")
const { WebSocketServer } = require(path.join(nm, "ws"))
const nacl = require(path.join(nm, "tweetnacl"))

const b64u = (u8) => Buffer.from(u8).toString("base64url")
const unb64u = (s) => new Uint8Array(Buffer.from(s, "base64url"))
const server = nacl.box.keyPair()
const spk = b64u(server.publicKey)
const clients = new Map()
const wss = new WebSocketServer({ port: Number(process.argv[2] || 0), host: "127.0.0.1", maxPayload: 1 << 17 })
wss.on("listening", () => console.log("listening on " + wss.address().port))
wss.on("connection", (ws) => {
  const challenge = nacl.randomBytes(24)
  let me = null
  ws.send(JSON.stringify({ type: "CHALLENGE", serverPublicKey: spk, nonce: b64u(challenge) }))
  ws.on("message", (data) => {
    let m
    try { m = JSON.parse(data) } catch (e) { return ws.send('{"type":"ERROR","reason":"bad json"}') }
    if (!me) {
      if (m.type !== "CHALLENGE_RESPONSE" || typeof m.publicKey !== "string" || m.publicKey.length !== 43) return ws.close(1008)
      const p = nacl.box.open(unb64u(m.box), unb64u(m.boxNonce), unb64u(m.publicKey), server.secretKey)
      if (!p || Buffer.compare(Buffer.from(p), Buffer.from(challenge)) !== 0) {
        ws.send('{"type":"REGISTER_FAILURE","reason":"invalid box"}')
        return ws.close(1008)
      }
      me = m.publicKey
      const old = clients.get(me)
      if (old) old.close(4001, "replaced")
      clients.set(me, ws)
      return ws.send('{"type":"REGISTER_SUCCESS"}')
    }
    if (m.type !== "MESSAGE" || typeof m.to !== "string" || m.to.length !== 43 ||
        typeof m.nonce !== "string" || m.nonce.length !== 32 || typeof m.box !== "string")
      return ws.send('{"type":"ERROR","reason":"bad field"}')
    const d = clients.get(m.to)
    if (!d) return ws.send(JSON.stringify({ type: "ERROR", reason: "offline", to: m.to }))
    d.send(JSON.stringify({ type: "MESSAGE", from: me, nonce: m.nonce, box: m.box }))
  })
  ws.on("close", () => { if (me && clients.get(me) === ws) clients.delete(me) })
})
