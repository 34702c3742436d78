// Hostile input against our C tunnel server (default limits). Each case
// states its expected outcome, checked on the wire and in the server's
// counters (GET /stats), and that the server still serves others.
// Usage: node hostile.js PORT
"use strict"
const assert = require("assert/strict")
const { RAClient, encode, sodium } = require("./ra_client.js")
const { test, sleep, run } = require("./harness.js")

const port = Number(process.argv[2])
const origin = `http://127.0.0.1:${port}`

run(async () => {
  const observer = await RAClient.connect(origin)
  const stats = async () => JSON.parse((await observer.fetch("/stats")).text)
  const stillServing = async () => assert.equal((await observer.fetch("/hello")).text, "world")

  await test("garbage CBOR before and after the key: dropped, counted, tunnel lives", async () => {
    const before = await stats()
    const c = await RAClient.connect(origin, {
      beforeClientKx: (x) => x.sendRaw(Buffer.from([0xff, 0x00, 0x13, 0x37])),
    })
    c.sendRaw(Buffer.from("not cbor at all"))
    c.sendRaw(Buffer.from([0xbf, 0x64])) // truncated indefinite map
    c.sendRaw(Buffer.from([0x5b, 0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff])) // huge bytes
    assert.equal((await c.fetch("/hello")).text, "world")
    const after = await stats()
    assert.equal(after.bad_cbor - before.bad_cbor, 4)
    c.close()
  })

  await test("wrong field types inside an envelope: no response, counted", async () => {
    const c = await RAClient.connect(origin)
    const before = await stats()
    c.sendInner({ type: "http_request", requestId: "x1", method: 7, url: "/hello", headers: {} })
    c.sendInner({ type: "http_request", requestId: "x2", method: "GET", url: "/hello", headers: ["a"] })
    c.sendInner({ type: "http_request", requestId: "x3", method: "GET", url: "/hello", headers: { a: 1 } })
    c.sendInner({ type: "ws_connect", connectionId: 5, url: "ws://h/ws/echo" })
    c.sendInner({ type: "ws_close", connectionId: "c", code: "x" })
    assert.equal((await c.fetch("/hello")).text, "world")
    const after = await stats()
    assert.equal(after.bad_cbor - before.bad_cbor, 5)
    assert.equal(c.received.filter((m) => m.requestId && m.requestId.startsWith("x")).length, 0)
    c.close()
  })

  await test("enc before client_kx: dropped; the handshake still works after", async () => {
    const before = await stats()
    const c = await RAClient.connect(origin, {
      beforeClientKx: (x) => {
        const k = sodium.randombytes_buf(32)
        const nonce = sodium.randombytes_buf(24)
        const ct = sodium.crypto_secretbox_easy(encode({ type: "http_request", requestId: "early", method: "GET", url: "/hello", headers: {} }), nonce, k)
        x.sendRaw(encode({ type: "enc", nonce, ciphertext: ct }))
        x.sendRaw(encode({ type: "http_request", requestId: "plain", method: "GET", url: "/hello", headers: {} }))
      },
    })
    assert.equal((await c.fetch("/hello")).text, "world")
    const after = await stats()
    assert.equal(after.dropped_before_key - before.dropped_before_key, 2)
    assert.equal(c.received.filter((m) => m.requestId === "early" || m.requestId === "plain").length, 0)
    c.close()
  })

  await test("a sealed key that does not open: dropped; a good one afterwards works", async () => {
    const before = await stats()
    const c = await RAClient.connect(origin, {
      beforeClientKx: (x) => {
        const bad = sodium.crypto_box_seal(sodium.randombytes_buf(32), sodium.crypto_box_keypair().publicKey)
        x.sendRaw(encode({ type: "client_kx", sealedSymmetricKey: bad }))
        x.sendRaw(encode({ type: "client_kx", sealedSymmetricKey: new Uint8Array(79) }))
      },
    })
    assert.equal((await c.fetch("/hello")).text, "world")
    const after = await stats()
    assert.equal(after.bad_sealed_key - before.bad_sealed_key, 2)
    c.close()
  })

  await test("a second client_kx is ignored", async () => {
    const c = await RAClient.connect(origin)
    const other = sodium.crypto_box_seal(sodium.randombytes_buf(32), c.serverKx.x25519PublicKey)
    c.sendRaw(encode({ type: "client_kx", sealedSymmetricKey: other }))
    assert.equal((await c.fetch("/hello")).text, "world") // still the first key
    c.close()
  })

  await test("plaintext after the key: dropped", async () => {
    const c = await RAClient.connect(origin)
    const before = await stats()
    c.sendRaw(encode({ type: "http_request", requestId: "pt", method: "GET", url: "/hello", headers: {} }))
    c.sendRaw(encode({ type: "client_kx_ready" }))
    assert.equal((await c.fetch("/hello")).text, "world")
    const after = await stats()
    assert.equal(after.dropped_plaintext - before.dropped_plaintext, 2)
    c.close()
  })

  await test("ciphertext with a flipped bit: dropped, counted, no response", async () => {
    const c = await RAClient.connect(origin)
    const before = await stats()
    for (const where of ["mac", "body", "nonce"]) {
      const nonce = sodium.randombytes_buf(24)
      const ct = sodium.crypto_secretbox_easy(encode({ type: "http_request", requestId: "flip-" + where, method: "GET", url: "/hello", headers: {} }), nonce, c.key)
      if (where === "mac") ct[3] ^= 1
      else if (where === "body") ct[ct.length - 1] ^= 0x80
      else nonce[0] ^= 1
      c.sendRaw(encode({ type: "enc", nonce, ciphertext: ct }))
    }
    assert.equal((await c.fetch("/hello")).text, "world")
    const after = await stats()
    assert.equal(after.decrypt_failed - before.decrypt_failed, 3)
    assert.equal(c.received.filter((m) => String(m.requestId).startsWith("flip")).length, 0)
    c.close()
  })

  await test("a replayed envelope: answered once, the replay dropped and counted", async () => {
    const c = await RAClient.connect(origin)
    const before = await stats()
    const env = c.seal({ type: "http_request", requestId: "rp", method: "POST", url: "/echo", headers: {}, body: "once" })
    c.sendRaw(env)
    c.sendRaw(env)
    c.sendRaw(env)
    await sleep(100)
    assert.equal((await c.fetch("/hello")).text, "world")
    assert.equal(c.received.filter((m) => m.requestId === "rp").length, 1)
    const after = await stats()
    assert.equal(after.replays - before.replays, 2)
    c.close()
  })

  await test("an oversized envelope: the control channel is closed with 1009", async () => {
    const c = await RAClient.connect(origin)
    const closed = new Promise((r) => { c.onclose = (code) => r(code) })
    c.sendRaw(Buffer.alloc(17 * 1024 * 1024, 0x41))
    assert.equal(await closed, 1009)
    await stillServing()
  })

  await test("10,000 requests in flight on one tunnel: 4096 served, the rest 503, nothing lost", async () => {
    const c = await RAClient.connect(origin)
    let refused = 0
    const ps = Array.from({ length: 10000 }, () =>
      c.fetch("/hold", { timeoutMs: 60000 }).then((r) => { if (r.status === 503) refused++; return r }))
    for (let i = 0; i < 600 && refused < 10000 - 4096; i++) await sleep(10)
    assert.equal((await observer.fetch("/release")).text, "4096")
    const rs = await Promise.all(ps)
    const ok = rs.filter((r) => r.status === 200 && r.text === "released").length
    const busy = rs.filter((r) => r.status === 503).length
    assert.equal(ok, 4096)
    assert.equal(busy, 10000 - 4096)
    assert.equal((await c.fetch("/hello")).text, "world")
    c.close()
  })

  await test("a client that vanishes mid-response: responses cancelled, others served", async () => {
    const before = await stats()
    const c = await RAClient.connect(origin)
    const ps = Array.from({ length: 50 }, () => c.fetch("/slow?ms=200").catch(() => "gone"))
    const s = c.websocket(`ws://127.0.0.1:${port}/ws/echo`)
    await s.until((x) => x.events.find((e) => e.eventType === "open"))
    await sleep(20)
    c.ws._socket.destroy() // no close frame: the TCP connection just goes
    const res = await Promise.all(ps)
    assert.ok(res.every((r) => r === "gone"))
    await sleep(300)
    const after = await stats()
    assert.equal(after.responses_cancelled - before.responses_cancelled, 50)
    await stillServing()
  })

  await test("101 request headers: 431, the tunnel lives on", async () => {
    const c = await RAClient.connect(origin)
    const headers = {}
    for (let i = 0; i < 101; i++) headers["x-h" + i] = "v"
    const r = await c.fetch("/hello", { headers })
    assert.equal(r.status, 431)
    delete headers["x-h100"]
    assert.equal((await c.fetch("/hello", { headers })).status, 200)
    c.close()
  })

  await test("unknown connectionId and inner messages meant for clients: ignored", async () => {
    const c = await RAClient.connect(origin)
    c.sendInner({ type: "ws_message", connectionId: "nobody", data: "x", dataType: "string" })
    c.sendInner({ type: "ws_close", connectionId: "nobody" })
    c.sendInner({ type: "http_response", requestId: "r", status: 200, statusText: "OK", headers: {}, body: "" })
    c.sendInner({ type: "ws_event", connectionId: "c", eventType: "open" })
    c.sendInner({ type: "something_else" })
    assert.equal((await c.fetch("/hello")).text, "world")
    c.close()
  })

  await test("invalid UTF-8 in a text ws_message: that socket is closed (1007), not the tunnel", async () => {
    const c = await RAClient.connect(origin)
    const s = c.websocket(`ws://127.0.0.1:${port}/ws/echo`)
    await s.until((x) => x.events.find((e) => e.eventType === "open"))
    // a text string with a lone surrogate encoded as invalid UTF-8 bytes (hand-made CBOR)
    const inner = Buffer.concat([
      Buffer.from("b9000464747970656a77735f6d6573736167656c636f6e6e656374696f6e4964", "hex"),
      encode(s.id).subarray(0), Buffer.from("6464617461", "hex"), Buffer.from([0x62, 0xed, 0xa0]),
      Buffer.from("68646174615479706566737472696e67", "hex"),
    ])
    const nonce = sodium.randombytes_buf(24)
    c.sendRaw(encode({ type: "enc", nonce, ciphertext: sodium.crypto_secretbox_easy(inner, nonce, c.key) }))
    const ev = await s.until((x) => x.events.find((e) => e.eventType === "close"))
    assert.equal(ev.code, 1007)
    assert.equal((await c.fetch("/hello")).text, "world")
    c.close()
  })

  await test("requestIds short and long on one tunnel (its request memory reused): each answered under its id", async () => {
    const c = await RAClient.connect(origin)
    // lengths around the server's pooled id room (64): a spare too small
    // for the next id, then one that fits again
    const ids = ["a", "b".repeat(63), "c".repeat(64), "d".repeat(300), "e", "f".repeat(2000), "g", "h".repeat(65)]
    for (const id of ids) {
      c.sendInner({ type: "http_request", requestId: id, method: "GET", url: "/hello", headers: {} })
      for (let i = 0; i < 1000 && !c.received.find((m) => m.requestId === id); i++) await sleep(10)
      const r = c.received.find((m) => m.requestId === id)
      assert.ok(r, `an answer for the ${id.length}-byte id`)
      assert.equal(r.status, 200)
      assert.equal(Buffer.from(r.body).toString(), "world")
    }
    assert.equal((await c.fetch("/hello")).text, "world")
    c.close()
  })

  observer.close()
})
