#!/usr/bin/env node
// Generates tests/attest/tunnel/cborx_vectors.inc: control-channel messages
// encoded by cbor-x (the reference implementation's own CBOR encoder).
//   ref:  the object as the reference TypeScript code builds it (Uint8Array
//         values -> tag 64, fields set to undefined -> 0xf7);
//   norm: the same message as raloop's encoder is expected to write it
//         (Node Buffers -> plain byte strings, field order and absent fields
//         as in attest/tunnel_msg.c). The C test decodes `ref`, re-encodes
//         with our encoder and must get exactly `norm`.
// Usage: node tests/attest/gen_vectors.js > tests/attest/tunnel/cborx_vectors.inc
"use strict"
const path = require("path")
const { encode } = require(path.join(__dirname, "..", "node_modules", "cbor-x"))

const hex = (o) => Buffer.from(encode(o)).toString("hex")
const seq = (n, k = 1) => Uint8Array.from({ length: n }, (_, i) => (i * k + 7) & 0xff)
const buf = (u8) => Buffer.from(u8)

const pk = seq(32, 3), quote = seq(600, 5), nonce = seq(24, 11)
const val = seq(32, 13), iat = seq(8, 17), sig = seq(64, 19)
const cases = []
const add = (name, ref, norm) => cases.push({ name, ref: hex(ref), norm: hex(norm === undefined ? ref : norm) })

add("client_kx_ready", { type: "client_kx_ready" })
add("server_kx_minimal",
  { type: "server_kx", x25519PublicKey: pk, quote: buf(quote), runtime_data: null, verifier_data: null, sev_snp_data: null },
  { type: "server_kx", x25519PublicKey: buf(pk), quote: buf(quote), runtime_data: null, verifier_data: null, sev_snp_data: null })
add("server_kx_omitted_optionals",
  { type: "server_kx", x25519PublicKey: pk, quote: quote },
  { type: "server_kx", x25519PublicKey: buf(pk), quote: buf(quote), runtime_data: null, verifier_data: null, sev_snp_data: null })
add("server_kx_tdx_nonce",
  { type: "server_kx", x25519PublicKey: pk, quote: quote, runtime_data: seq(16), verifier_data: { val, iat, signature: sig }, sev_snp_data: null },
  { type: "server_kx", x25519PublicKey: buf(pk), quote: buf(quote), runtime_data: buf(seq(16)), verifier_data: { val: buf(val), iat: buf(iat), signature: buf(sig) }, sev_snp_data: null })
add("server_kx_sev",
  { type: "server_kx", x25519PublicKey: pk, quote: quote, runtime_data: null, verifier_data: seq(32, 7), sev_snp_data: { vcek_cert: "-----BEGIN CERTIFICATE-----\nAAAA\n", ask_cert: null, ark_cert: "ark" } },
  { type: "server_kx", x25519PublicKey: buf(pk), quote: buf(quote), runtime_data: null, verifier_data: buf(seq(32, 7)), sev_snp_data: { vcek_cert: "-----BEGIN CERTIFICATE-----\nAAAA\n", ask_cert: null, ark_cert: "ark" } })
// SEV-SNP as the reference server sends it (server.ts #sendServerKx with
// SevSnpQuoteData): a 1184-byte report, verifier_data = the nonce as a
// Uint8Array, runtime_data null, all three certificates as PEM strings
const pem = (tag, n) => "-----BEGIN CERTIFICATE-----\n" + Buffer.from(seq(n, 29)).toString("base64").replace(/(.{64})/g, "$1\n") + "\n-----END CERTIFICATE-----\n"
const snpReport = seq(1184, 31), snpNonce = seq(32, 37)
const snpCerts = { vcek_cert: pem("vcek", 1100), ask_cert: pem("ask", 1600), ark_cert: pem("ark", 1400) }
add("server_kx_sev_snp_report",
  { type: "server_kx", x25519PublicKey: pk, quote: snpReport, runtime_data: null, verifier_data: snpNonce, sev_snp_data: snpCerts },
  { type: "server_kx", x25519PublicKey: buf(pk), quote: buf(snpReport), runtime_data: null, verifier_data: buf(snpNonce), sev_snp_data: snpCerts })
add("client_kx",
  { type: "client_kx", sealedSymmetricKey: seq(80, 23) },
  { type: "client_kx", sealedSymmetricKey: buf(seq(80, 23)) })
add("enc",
  { type: "enc", nonce, ciphertext: seq(300, 29) },
  { type: "enc", nonce: buf(nonce), ciphertext: buf(seq(300, 29)) })
add("http_request_get",
  { type: "http_request", requestId: "17954986156863vjmpawqo", method: "GET", url: "/hello", headers: {}, body: undefined },
  { type: "http_request", requestId: "17954986156863vjmpawqo", method: "GET", url: "/hello", headers: {} })
// names as the caller wrote them; ours go out lowercased (as a browser's
// Headers sends them: the reference's Express body parsers need that), and
// header text is ISO-8859-1 code points (what fetch makes of header bytes)
add("http_request_post_json",
  { type: "http_request", requestId: "r2", method: "POST", url: "http://127.0.0.1:36349/echo?x=1", headers: { "content-type": "application/json", "X-Mixed-Case": "v", "x-latin": "caf\u00e9 \u00ff" }, body: "{\"a\":1}" },
  { type: "http_request", requestId: "r2", method: "POST", url: "http://127.0.0.1:36349/echo?x=1", headers: { "content-type": "application/json", "x-mixed-case": "v", "x-latin": "caf\u00e9 \u00ff" }, body: "{\"a\":1}" })
add("http_request_bytes_body_timeout",
  { type: "http_request", requestId: "r3", method: "PUT", url: "/b", headers: { a: "1" }, body: seq(300), timeout: 1500 },
  { type: "http_request", requestId: "r3", method: "PUT", url: "/b", headers: { a: "1" }, body: buf(seq(300)) })
add("http_request_long_strings",
  { type: "http_request", requestId: "x".repeat(300), method: "GET", url: "/" + "u".repeat(300), headers: { h: "v".repeat(24) } })
add("http_response_express",
  { type: "http_response", requestId: "17954986156863vjmpawqo", status: 200, statusText: "OK", headers: { "x-powered-by": "Express" }, body: "world" })
add("http_response_hono_bytes",
  { type: "http_response", requestId: "q", status: 200, statusText: "OK", headers: { "content-type": "text/plain; charset=UTF-8" }, body: new TextEncoder().encode("world") },
  { type: "http_response", requestId: "q", status: 200, statusText: "OK", headers: { "content-type": "text/plain; charset=UTF-8" }, body: Buffer.from("world") })
add("http_response_multi_header",
  { type: "http_response", requestId: "m", status: 201, statusText: "Created", headers: { "set-cookie": ["a=1", "b=2"], "x-one": "1" }, body: "" })
// the bytes of "\u2713" (e2 9c 93) and a raw 0xe9, as a browser shows them
add("http_response_latin1_header",
  { type: "http_response", requestId: "l", status: 200, statusText: "OK", headers: { "x-check": "\u00e2\u009c\u0093", "x-raw": ["\u00e9", "a\u00e9b"] }, body: "" })
add("http_response_204_null",
  { type: "http_response", requestId: "n", status: 204, statusText: "No Content", headers: {}, body: null })
add("http_response_error",
  { type: "http_response", requestId: "e", status: 500, statusText: "Internal Server Error", headers: {}, body: "", error: "boom" })
add("ws_connect_protocols",
  { type: "ws_connect", connectionId: "ws_1795498615750ia2c94olo", url: "ws://127.0.0.1:36349/echo", protocols: ["p1"] })
add("ws_connect_undefined_protocols",
  { type: "ws_connect", connectionId: "c", url: "ws://h/x", protocols: undefined },
  { type: "ws_connect", connectionId: "c", url: "ws://h/x" })
add("ws_message_text",
  { type: "ws_message", connectionId: "c", data: "hi", dataType: "string" })
add("ws_message_binary",
  { type: "ws_message", connectionId: "ws_1795498615750ia2c94olo", data: new Uint8Array([1, 2, 3]), dataType: "arraybuffer" },
  { type: "ws_message", connectionId: "ws_1795498615750ia2c94olo", data: Buffer.from([1, 2, 3]), dataType: "arraybuffer" })
add("ws_close_args",
  { type: "ws_close", connectionId: "c", code: 1000, reason: "done" })
add("ws_close_undefined",
  { type: "ws_close", connectionId: "c", code: undefined, reason: undefined },
  { type: "ws_close", connectionId: "c" })
add("ws_event_open",
  { type: "ws_event", connectionId: "ws_1795498615750ia2c94olo", eventType: "open" })
add("ws_event_close",
  { type: "ws_event", connectionId: "c", eventType: "close", code: 4000, reason: "bye" })
add("ws_event_close_undefined",
  { type: "ws_event", connectionId: "c", eventType: "close", code: undefined, reason: undefined },
  { type: "ws_event", connectionId: "c", eventType: "close" })
add("ws_event_error",
  { type: "ws_event", connectionId: "c", eventType: "error", error: "no route" })
add("unknown_keys_ignored",
  { type: "ws_message", extra: { deep: [1, 2, { x: null }], f: 1.5 }, connectionId: "c", n: -70000, data: "z", t: true, dataType: "string" },
  { type: "ws_message", connectionId: "c", data: "z", dataType: "string" })
add("type_last",
  { connectionId: "c", url: "ws://h/y", type: "ws_connect" },
  { type: "ws_connect", connectionId: "c", url: "ws://h/y" })

let out = "/* Generated by tests/attest/gen_vectors.js with cbor-x " +
  require(path.join(__dirname, "..", "node_modules", "cbor-x", "package.json")).version +
  ". Do not edit. */\n"
out += "static const struct cborx_vector { const char *name, *ref, *norm; } cborx_vectors[] = {\n"
const lit = (s) => {
  const parts = []
  for (let i = 0; i < s.length; i += 96) parts.push('"' + s.slice(i, i + 96) + '"')
  return parts.join("\n    ")
}
for (const c of cases) out += `  {"${c.name}",\n    ${lit(c.ref)},\n    ${lit(c.norm)}},\n`
out += "};\n"
process.stdout.write(out)
