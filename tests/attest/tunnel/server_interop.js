// Our C tunnel server (tunnel-test-server) against the independent Node.js
// client of ra_client.js. Usage: node server_interop.js PORT
"use strict"
const assert = require("assert/strict")
const http = require("http")
const { RAClient, encode, decode, sodium } = require("./ra_client.js")
const { test, sleep, run } = require("./harness.js")

const port = Number(process.argv[2])
const origin = `http://127.0.0.1:${port}`
function plainGet(p) {
  return new Promise((resolve, reject) => {
    http.get(origin + p, (res) => {
      let b = ""
      res.on("data", (d) => (b += d))
      res.on("end", () => resolve({ status: res.statusCode, body: b }))
    }).on("error", reject)
  })
}
// A plain HTTP request; headers as Node's parser gives them (ISO-8859-1
// strings, like a browser's fetch), repeated ones kept apart.
function plainRequest(p, method = "GET", headers = {}) {
  return new Promise((resolve, reject) => {
    const req = http.request(origin + p, { method, headers }, (res) => {
      const hs = {}
      for (let i = 0; i < res.rawHeaders.length; i += 2) {
        const k = res.rawHeaders[i].toLowerCase(), v = res.rawHeaders[i + 1]
        hs[k] = k in hs ? [].concat(hs[k], v) : v
      }
      res.resume()
      res.on("end", () => resolve({ status: res.statusCode, headers: hs }))
    })
    req.on("error", reject)
    req.end()
  })
}

run(async () => {
  const c = await RAClient.connect(origin)

  await test("server_kx shape", async () => {
    const kx = c.serverKx
    assert.equal(kx.type, "server_kx")
    assert.equal(kx.x25519PublicKey.length, 32)
    assert.ok(kx.quote.length > 1000)
    assert.ok(kx.verifier_data && kx.verifier_data.val.length > 0 && kx.verifier_data.iat.length > 0)
    assert.ok(Buffer.from(kx.runtime_data).equals(Buffer.from(kx.x25519PublicKey)))
    assert.equal(kx.sev_snp_data, null)
  })

  await test("GET /hello", async () => {
    const r = await c.fetch("/hello")
    assert.equal(r.status, 200)
    assert.equal(r.statusText, "OK")
    assert.equal(r.text, "world")
    assert.equal(typeof r.headers, "object")
    assert.ok(r.headers["content-type"].startsWith("text/plain"))
    for (const k of Object.keys(r.headers)) assert.equal(k, k.toLowerCase())
    assert.ok(r.body instanceof Uint8Array) // body as bytes
  })

  await test("the reference client's captured GET (PROTOCOL.md §6), byte for byte", async () => {
    const hex = "b9000664747970656c687474705f7265717565737469726571756573744964763137393534393836313536383633766a6d706177716f666d6574686f64634745546375726c662f68656c6c6f6768656164657273b9000064626f6479f7"
    const p = new Promise((resolve, reject) => {
      c.pending.set("17954986156863vjmpawqo", { resolve, reject, timer: setTimeout(() => reject(new Error("timeout")), 5000) })
    })
    const nonce = sodium.randombytes_buf(24)
    const ct = sodium.crypto_secretbox_easy(Buffer.from(hex, "hex"), nonce, c.key)
    c.sendRaw(encode({ type: "enc", nonce, ciphertext: ct }))
    const r = await p
    assert.equal(r.status, 200)
    assert.equal(Buffer.from(r.body).toString(), "world")
  })

  await test("POST JSON text body, mixed-case request header", async () => {
    const r = await c.fetch("/echo", {
      method: "POST", headers: { "Content-Type": "application/json", "X-Test": "v1" }, body: "{\"a\":1}",
    })
    assert.equal(r.status, 200)
    assert.equal(r.text, "{\"a\":1}")
    assert.equal(r.headers["content-type"], "application/json")
    assert.equal(r.headers["x-test-echo"], "v1")
    assert.equal(r.headers["x-method"], "POST")
  })

  await test("header bytes >= 0x80 travel as ISO-8859-1 code points, as over plain HTTP", async () => {
    // a raw 0xe9 would not be UTF-8 (cbor-x refuses the message: the fetch
    // times out) and U+2713 would make a fetch Headers object throw
    const r = await c.fetch("/hdr", { timeoutMs: 3000 })
    const plain = await plainRequest("/hdr")
    assert.equal(r.headers["x-check"], "\u00e2\u009c\u0093")
    assert.equal(r.headers["x-latin"], "caf\u00e9")
    assert.deepEqual(r.headers["x-multi"], ["\u00e9", "\u00ff"])
    for (const k of ["x-check", "x-latin", "x-multi"]) assert.deepEqual(r.headers[k], plain.headers[k], k)
    for (const v of Object.values(r.headers))
      for (const x of [].concat(v)) for (const ch of x) assert.ok(ch.codePointAt(0) <= 0xff, JSON.stringify(x))
    // and back: "é" in a request header reaches the application as the byte
    // e9, as it does over plain HTTP
    const e = await c.fetch("/echo", { method: "POST", headers: { "x-test": "caf\u00e9" }, body: "", timeoutMs: 3000 })
    const pe = await plainRequest("/echo", "POST", { "x-test": "caf\u00e9" })
    assert.equal(pe.headers["x-test-hex"], "636166e9")
    assert.equal(e.headers["x-test-hex"], "636166e9")
    assert.equal(e.headers["x-test-echo"], "caf\u00e9")
    // a character no header byte can carry: refused, like a malformed header
    const bad = await c.fetch("/echo", { method: "POST", headers: { "x-test": "ok \u2713" }, body: "", timeoutMs: 3000 })
    assert.equal(bad.status, 400)
    assert.equal((await c.fetch("/hello")).text, "world")
  })

  await test("PUT with a binary (byte string) body", async () => {
    const body = new Uint8Array([0, 1, 2, 255, 254])
    const r = await c.fetch("/echo", { method: "PUT", headers: {}, body })
    assert.equal(r.status, 200)
    assert.deepEqual([...r.bytes], [0, 1, 2, 255, 254])
  })

  await test("binary response", async () => {
    const r = await c.fetch("/bin")
    assert.equal(r.status, 200)
    assert.equal(r.bytes.length, 256)
    for (let i = 0; i < 256; i++) assert.equal(r.bytes[i], i)
  })

  await test("1 MiB response", async () => {
    const r = await c.fetch("/big?n=1048576")
    assert.equal(r.bytes.length, 1048576)
    assert.equal(r.text.slice(0, 3), "abc")
  })

  await test("404", async () => {
    const r = await c.fetch("/missing")
    assert.equal(r.status, 404)
    assert.equal(r.statusText, "Not Found")
  })

  await test("absolute URL", async () => {
    const r = await c.fetch(`http://127.0.0.1:${port}/hello?x=1#frag`)
    assert.equal(r.status, 200)
    assert.equal(r.text, "world")
  })

  await test("a plain fetch of a WebSocket route: an HTTP error, not a hang", async () => {
    const r = await c.fetch("/ws/echo")
    assert.ok(r.status >= 400 && r.status < 500, "status " + r.status)
  })

  await test("204 without body", async () => {
    const r = await c.fetch("/empty")
    assert.equal(r.status, 204)
    assert.ok(r.body === null || r.body === undefined)
  })

  await test("HEAD has no body", async () => {
    const r = await c.fetch("/hello", { method: "HEAD" })
    assert.equal(r.status, 200)
    assert.equal(r.bytes.length, 0)
  })

  await test("multi-valued headers as arrays", async () => {
    const r = await c.fetch("/cookies")
    assert.deepEqual(r.headers["set-cookie"], ["a=1", "b=2"])
    assert.equal(r.headers["x-single"], "one")
  })

  await test("async routes, out-of-order completion", async () => {
    const order = []
    const a = c.fetch("/slow?ms=150").then((r) => { order.push("a"); return r })
    const b = c.fetch("/slow?ms=10").then((r) => { order.push("b"); return r })
    const [ra, rb] = await Promise.all([a, b])
    assert.equal(ra.text, "slow 150")
    assert.equal(rb.text, "slow 10")
    assert.deepEqual(order, ["b", "a"])
  })

  await test("200 requests multiplexed", async () => {
    const rs = await Promise.all(Array.from({ length: 200 }, (_, i) => c.fetch(`/slow?ms=${i % 7}`)))
    rs.forEach((r, i) => assert.equal(r.text, `slow ${i % 7}`))
  })

  await test("attested-only route: 200 through the tunnel, 403 in plaintext", async () => {
    const r = await c.fetch("/private")
    assert.equal(r.status, 200)
    assert.equal(r.text, "secret")
    const p = await plainGet("/private")
    assert.equal(p.status, 403)
  })

  await test("tunnelled WebSocket: open, protocol, text, binary, client close", async () => {
    const s = c.websocket(`ws://127.0.0.1:${port}/ws/echo?q=1`, ["p1", "p2"])
    await s.until((x) => x.events.find((e) => e.eventType === "open"))
    s.send("info")
    const info = await s.until((x) => x.messages[0])
    assert.equal(info.data, "path=/ws/echo attested=1 protocol=p2")
    assert.equal(info.dataType, "string")
    s.send("hi")
    const t = await s.until((x) => x.messages[1])
    assert.equal(t.data, "hi")
    assert.equal(t.dataType, "string")
    s.send(Buffer.from([1, 2, 3]))
    const b = await s.until((x) => x.messages[2])
    assert.equal(b.dataType, "arraybuffer")
    assert.deepEqual([...b.data], [1, 2, 3])
    s.close(1000, "done")
    await sleep(50)
    // closed on the server: further messages are ignored, the tunnel lives on
    s.send("after close")
    const r = await c.fetch("/hello")
    assert.equal(r.text, "world")
    assert.equal(s.messages.length, 3)
  })

  await test("tunnelled WebSocket: server-side close", async () => {
    const s = c.websocket(`ws://127.0.0.1:${port}/ws/echo`)
    await s.until((x) => x.events.find((e) => e.eventType === "open"))
    s.send("close")
    const ev = await s.until((x) => x.events.find((e) => e.eventType === "close"))
    assert.equal(ev.code, 4000)
    assert.equal(ev.reason, "bye")
  })

  await test("tunnelled WebSocket: no route -> ws_event error", async () => {
    const s = c.websocket(`ws://127.0.0.1:${port}/nope`)
    const ev = await s.until((x) => x.events[0])
    assert.equal(ev.eventType, "error")
    assert.ok(ev.error)
  })

  await test("several tunnels at once, each with its own key", async () => {
    // no client_kx_ready (like the reference's ServiceWorker client); one with a
    // query string after /__ra__ (ignored)
    const cs = await Promise.all([{ hello: false }, { hello: false }, { query: "?v=1&x=y" }].map((o) => RAClient.connect(origin, o)))
    const rs = await Promise.all(cs.map((x) => x.fetch("/hello")))
    rs.forEach((r) => assert.equal(r.text, "world"))
    assert.notDeepEqual(Buffer.from(cs[0].key), Buffer.from(cs[1].key))
    cs.forEach((x) => x.close())
  })

  await test("the control channel drop closes tunnelled sockets and cancels responses", async () => {
    const d = await RAClient.connect(origin)
    const s = d.websocket(`ws://127.0.0.1:${port}/ws/echo`)
    await s.until((x) => x.events.find((e) => e.eventType === "open"))
    const pending = d.fetch("/slow?ms=300").catch((e) => e)
    await sleep(30)
    d.ws.terminate()
    const e = await pending
    assert.ok(e instanceof Error)
    await sleep(400) // the late answer of /slow goes nowhere, safely
    const st = JSON.parse((await c.fetch("/stats")).text)
    assert.ok(st.responses_cancelled >= 1, JSON.stringify(st))
  })

  c.close()
})
