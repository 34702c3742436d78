// tests/tls/wss.js HTTPS_ORIGIN: WebSockets over TLS against ra-hello's
// --listen-tls listener (run by tests/tls/https.sh, which sets
// NODE_EXTRA_CA_CERTS to its test CA so that every client here verifies the
// certificate): WS /echo with Node's `ws`, the relay on /relay (issue 14:
// registration and an exchange over wss, one peer over wss and one over
// plain ws when PLAIN_ORIGIN is given), and the attested tunnel over wss://
// with the reference-compatible Node client (tests/attest/tunnel/ra_client.js).
"use strict"
const assert = require("assert/strict")
// "localhost" (the certificate's name) must reach the server's 127.0.0.1:
// Debian's Node 18 tries only the first address getaddrinfo gives, ::1.
require("dns").setDefaultResultOrder("ipv4first")
const path = require("path")
const { test, run } = require("../attest/tunnel/harness.js")
const { RelayClient, WebSocket } = require("../relay/relay_client.js")
const { RAClient } = require("../attest/tunnel/ra_client.js")

const origin = process.argv[2] // https://localhost:PORT
const plain = process.argv[3] // http://127.0.0.1:PORT (optional)
const wss = origin.replace(/^https/, "wss")

function open(url, opts) {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, opts)
    ws.once("open", () => resolve(ws))
    ws.once("error", reject)
  })
}
const nextMessage = (ws) => new Promise((resolve) => ws.once("message", (d, bin) => resolve({ d, bin })))

run(async () => {
  await test("wss /echo: text, 1 MiB binary, close 1000", async () => {
    const ws = await open(wss + "/echo")
    assert.equal(ws._socket.alpnProtocol || false, false) // ws offers no ALPN: accepted without
    ws.send("hello over tls")
    const m = await nextMessage(ws)
    assert.equal(m.d.toString(), "hello over tls")
    const big = require("crypto").randomBytes(1 << 20)
    ws.send(big)
    const b = await nextMessage(ws)
    assert.ok(b.bin && Buffer.compare(b.d, big) === 0)
    const code = await new Promise((resolve) => { ws.once("close", (c) => resolve(c)); ws.close(1000, "bye") })
    assert.equal(code, 1000)
  })

  await test("wss refused without the CA (certificate checked by default)", async () => {
    let err = null
    try { await open(wss + "/echo", { ca: [] }) } catch (e) { err = e }
    assert.ok(err, "connected without trusting the CA")
    // refused for the certificate, not for any failure (a dead server, a reset)
    assert.match(String(err.code), /UNABLE_TO_(VERIFY|GET_ISSUER)|SELF_SIGNED|CERT_/, `not a certificate error: ${err.code} ${err.message}`)
  })

  await test("wss /relay: registration and messages both ways", async () => {
    const a = await new RelayClient().connect(wss + "/relay")
    const b = await new RelayClient().connect(plain ? plain.replace(/^http/, "ws") + "/relay" : wss + "/relay")
    a.send(b.publicKey, "from a over wss")
    await b.until((x) => x.inbox.length === 1)
    assert.equal(b.inbox[0].text, "from a over wss")
    assert.equal(b.inbox[0].from, a.publicKey)
    b.send(a.publicKey, "back to a")
    await a.until((x) => x.inbox.length === 1)
    assert.equal(a.inbox[0].text, "back to a")
    a.close(); b.close()
  })

  await test("attested tunnel over wss:// (Node reference-compatible client)", async () => {
    const t = await RAClient.connect(origin) // wss://.../__ra__, binding checked
    const r = await t.fetch("/hello")
    assert.equal(r.status, 200)
    assert.equal(r.text, "world")
    const p = await t.fetch("/private") // attested-only route
    assert.equal(p.text, "secret")
    const e = await t.fetch("/echo", { method: "POST", body: "tunnelled body", headers: { "content-type": "text/plain" } })
    assert.equal(e.text, "tunnelled body")
    t.close()
  })
})
