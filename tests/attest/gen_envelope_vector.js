#!/usr/bin/env node
// Produces the interop vector of tests/attest/envelope_test.c with an
// independent implementation (libsodium-wrappers, the WebAssembly build) and
// cbor-x: a key pair from a fixed seed, a sealed 32-byte key (random
// ephemeral key: every run prints a different, equally valid, sealed box),
// and an `enc` envelope of an http_request under a fixed nonce.
"use strict"
const path = require("path")
const nm = path.join(__dirname, "..", "node_modules")
const sodium = require(path.join(nm, "libsodium-wrappers"))
const { encode } = require(path.join(nm, "cbor-x"))
;(async () => {
  await sodium.ready
  const h = (x) => Buffer.from(x).toString("hex")
  const kp = sodium.crypto_box_seed_keypair(new Uint8Array(32).map((_, i) => i + 1))
  const K = new Uint8Array(32).map((_, i) => 0xa0 + i)
  const sealed = sodium.crypto_box_seal(K, kp.publicKey)
  const pt = encode({ type: "http_request", requestId: "1", method: "GET", url: "/hello", headers: {}, body: undefined })
  const nonce = new Uint8Array(24).map((_, i) => 0x30 + i)
  const ct = sodium.crypto_secretbox_easy(pt, nonce, K)
  for (const [k, v] of Object.entries({ sk: kp.privateKey, pk: kp.publicKey, K, sealed, pt, nonce, ct,
    env: encode({ type: "enc", nonce, ciphertext: ct }) })) console.log(k, h(v))
})()
