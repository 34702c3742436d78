// tests/apps/enclave/tunnel_wss.js HTTPS_ORIGIN: ra-enclave's routes through
// the attested tunnel over wss:// (its TLS listener), with the independent
// Node tunnel client (tests/attest/tunnel/ra_client.js: binding checked).
// NODE_EXTRA_CA_CERTS names the enclave's self-signed certificate, so the
// TLS certificate is verified too. Run by enclave.sh.
"use strict"
const assert = require("assert/strict")
// "localhost" (the certificate's name) must reach the server's 127.0.0.1:
// Debian's Node 18 tries only the first address getaddrinfo gives, ::1.
require("dns").setDefaultResultOrder("ipv4first")
const { test, run } = require("../../attest/tunnel/harness.js")
const { RAClient } = require("../../attest/tunnel/ra_client.js")

const origin = process.argv[2] // https://localhost:PORT
const body = '{"via":"wss tunnel","marker":"wss-marker-5d1e"}'

run(async () => {
  await test("POST then GET /private-data through the tunnel over wss", async () => {
    const t = await RAClient.connect(origin)
    const p = await t.fetch("/private-data", { method: "POST", body, headers: { "content-type": "application/json" } })
    assert.equal(p.status, 200, p.text)
    assert.match(p.text, /"status":"stored"/)
    const g = await t.fetch("/private-data")
    assert.equal(g.status, 200)
    assert.equal(g.text, body)
    const bad = await t.fetch("/private-data", { method: "POST", body: "{" })
    assert.equal(bad.status, 400)
    t.close()
  })
})
