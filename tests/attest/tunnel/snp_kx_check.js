#!/usr/bin/env node
// tests/attest/tunnel/snp_kx_check.js: the server_kx of a raloop SEV-SNP
// server (ra-hello --tee sim-snp), decoded with cbor-x and checked the way
// the reference client (canvasxyz/teekit packages/tunnel/src/client.ts in
// `sevsnp` mode, packages/qvl verifySevSnp) checks it, written here
// independently with Node's crypto: the field shapes of the reference's
// ControlChannelKXAnnounce for SEV-SNP (runtime_data null, verifier_data the
// nonce as a byte string, sev_snp_data {vcek_cert, ask_cert, ark_cert} PEM
// strings), the chain VCEK <- ASK <- ARK with the ARK the one pinned, the
// report's ECDSA P-384 signature, debug refused, and report_data ==
// SHA-512(nonce || x25519PublicKey). Then a whole session: the sealed key
// sent, one request tunnelled (ra_client.js, the independent client).
//
// Usage: node snp_kx_check.js ORIGIN PINNED_ARK_PEM
"use strict"
const fs = require("fs")
const path = require("path")
const crypto = require("crypto")
const nm = path.join(__dirname, "..", "..", "node_modules")
const WebSocket = require(path.join(nm, "ws"))
const { encode, decode } = require(path.join(nm, "cbor-x"))

const [origin, arkFile] = process.argv.slice(2)
let fails = 0
const ok = (what, cond, detail) => {
  if (cond) console.log("ok   " + what)
  else { console.log("FAIL " + what + (detail ? ": " + detail : "")); fails++ }
}
const certs = (pem) => pem.split("-----BEGIN CERTIFICATE-----").slice(1)
  .map((b) => new crypto.X509Certificate("-----BEGIN CERTIFICATE-----" + b))

// teekit's convertSignatureComponent: trim trailing zeros, reverse, right-align in 48 bytes
function component(le72) {
  let end = le72.length
  while (end > 0 && le72[end - 1] === 0) end--
  const be = Buffer.from(le72.subarray(0, end)).reverse()
  const out = Buffer.alloc(48)
  if (be.length > 48) be.subarray(be.length - 48).copy(out); else be.copy(out, 48 - be.length)
  return out
}

function serverKx() {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(origin.replace(/^http/, "ws") + "/__ra__")
    ws.binaryType = "nodebuffer"
    const t = setTimeout(() => reject(new Error("no server_kx")), 5000)
    ws.on("open", () => ws.send(encode({ type: "client_kx_ready" })))
    ws.on("message", (data) => {
      const m = decode(data)
      if (m.type !== "server_kx") return
      clearTimeout(t)
      ws.close()
      resolve(m)
    })
    ws.on("error", reject)
  })
}

;(async () => {
  const m = await serverKx()
  const u8 = (x) => x instanceof Uint8Array
  ok("x25519PublicKey: 32 bytes", u8(m.x25519PublicKey) && m.x25519PublicKey.length === 32)
  ok("quote: the 1184-byte SEV-SNP report", u8(m.quote) && m.quote.length === 1184)
  ok("runtime_data: null (as the reference's SEV-SNP server_kx)", m.runtime_data === null)
  ok("verifier_data: the nonce as a byte string", u8(m.verifier_data) && m.verifier_data.length > 0)
  const sd = m.sev_snp_data
  ok("sev_snp_data: vcek_cert, ask_cert, ark_cert PEM strings",
     sd && typeof sd.vcek_cert === "string" && typeof sd.ask_cert === "string" && typeof sd.ark_cert === "string" &&
     sd.vcek_cert.startsWith("-----BEGIN CERTIFICATE-----"))
  const keys = Object.keys(m)
  // the reference's fields first, in its order; raloop's extensions (which
  // the reference client ignores: bodyStreams §11, clientChallenge §10) after
  ok("field order as the reference's",
     keys.slice(0, 6).join(",") === "type,x25519PublicKey,quote,runtime_data,verifier_data,sev_snp_data" &&
     keys.slice(6).every((k) => k === "bodyStreams" || k === "clientChallenge"), keys.join(","))

  const report = Buffer.from(m.quote)
  const vcek = certs(sd.vcek_cert)[0], ask = certs(sd.ask_cert)[0], ark = certs(sd.ark_cert)[0]
  const pinned = certs(fs.readFileSync(arkFile, "utf8"))[0]
  ok("chain: VCEK <- ASK <- ARK, ARK self-signed", vcek.verify(ask.publicKey) && ask.verify(ark.publicKey) && ark.verify(ark.publicKey))
  ok("ARK sent is the pinned one", ark.fingerprint256 === pinned.fingerprint256)
  ok("report version >= 2", report.readUInt32LE(0) >= 2)
  const key = await crypto.webcrypto.subtle.importKey("spki", vcek.publicKey.export({ type: "spki", format: "der" }),
    { name: "ECDSA", namedCurve: "P-384" }, false, ["verify"])
  const sig = Buffer.concat([component(report.subarray(0x2a0, 0x2a0 + 72)), component(report.subarray(0x2e8, 0x2e8 + 72))])
  ok("report signature (ECDSA P-384 SHA-384 over bytes 0..671) by the VCEK",
     await crypto.webcrypto.subtle.verify({ name: "ECDSA", hash: "SHA-384" }, key, sig, report.subarray(0, 672)))
  ok("not a debug guest (policy bit 19)", (report.readBigUInt64LE(8) & (1n << 19n)) === 0n)
  // isSevSnpX25519Bound / getX25519ExpectedReportData
  const want = crypto.createHash("sha512").update(Buffer.from(m.verifier_data)).update(Buffer.from(m.x25519PublicKey)).digest()
  ok("report_data == SHA-512(nonce || x25519PublicKey)", want.equals(report.subarray(0x50, 0x90)))

  // a whole session with the independent client: key sealed, a request through
  const { RAClient } = require(path.join(__dirname, "ra_client.js"))
  let c
  try {
    // the SNP binding was checked above: the TDX one of ra_client.js does not apply
    c = await RAClient.connect(origin, { checkBinding: false })
    const r = await c.fetch("/")
    ok("a request through the tunnel (independent client)", r.status > 0, String(r.status))
  } catch (e) {
    ok("a request through the tunnel (independent client)", false, e.message)
  } finally {
    try { c && c.close() } catch {}
  }
  console.log(fails ? `${fails} failed` : "all passed")
  process.exit(fails ? 1 : 0)
})().catch((e) => { console.log("FAIL " + e.stack); process.exit(1) })
