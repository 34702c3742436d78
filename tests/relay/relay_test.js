// The secure WebSocket relay (issue 14, docs/RELAY.md) on ra-hello's WS
// /relay, with the Node client (tweetnacl + ws): exchange both ways, a
// third client cannot open a box not meant for it, the server's logs never
// hold the plaintext, refused registrations with their reasons, the same key
// registered twice (4001), bad input (ERROR, then 1008), offline, 1,000
// clients to random peers (exactly once, right key), a reader that stops
// (1013, bounded RSS), and the relay through the attested tunnel.
// Starts its own ra-hello instances (RA_BIN) on loopback.
"use strict"
const assert = require("assert/strict")
const fs = require("fs")
const path = require("path")
const crypto = require("crypto")
const { RelayClient, nacl, b64u, unb64u, WebSocket } = require("./relay_client.js")
const { test, sleep, run } = require("../attest/tunnel/harness.js")
const { helloProcs } = require("../attest/tunnel/hello_procs.js")

const bin = process.env.RA_BIN
const { tmp, startHello: startRaHello } = helloProcs("ra-relay-")
async function startHello(...flags) {
  const h = await startRaHello(...flags)
  return { ...h, url: `ws://127.0.0.1:${h.port}/relay` }
}

async function stopHello(h) {
  h.proc.kill("SIGTERM")
  const e = await h.exited
  assert.doesNotMatch(h.err(), /ERROR: (Address|Leak|Undefined)Sanitizer|runtime error:/)
  return e
}

function rssMB(pid) {
  const m = fs.readFileSync(`/proc/${pid}/status`, "utf8").match(/VmRSS:\s+(\d+) kB/)
  return m ? Number(m[1]) / 1024 : 0
}

const connect = async (url, kp) => new RelayClient(kp).connect(url)

// A client whose challenge answer is made by `make(challenge, client)`;
// resolves { client, reason, close }.
async function refused(url, make) {
  const c = new RelayClient()
  c.onchallenge = (ch) => make(ch, c)
  let err
  try { await c.connect(url) } catch (e) { err = e }
  assert.ok(err, "registration should have been refused")
  await c.until((x) => x.closed)
  return { client: c, reason: c.failure, close: c.closed }
}

run(async () => {
  const h = await startHello()
  const url = h.url
  const secret = "attack at dawn " + crypto.randomBytes(8).toString("hex")

  await test("challenge: fresh per connection, exact lengths", async () => {
    const a = await connect(url), b = await connect(url)
    assert.equal(a.challenge.serverPublicKey.length, 43)
    assert.equal(a.challenge.nonce.length, 32)
    assert.equal(a.challenge.serverPublicKey, b.challenge.serverPublicKey)
    assert.notEqual(a.challenge.nonce, b.challenge.nonce)
    assert.deepEqual(Object.keys(a.challenge).sort(), ["nonce", "serverPublicKey", "type"])
    a.close(); b.close()
  })

  await test("two clients exchange messages both ways; a third cannot open them; no plaintext in logs", async () => {
    const a = await connect(url), b = await connect(url), c = await connect(url)
    a.send(b.publicKey, secret + " a->b")
    b.send(a.publicKey, secret + " b->a")
    await b.until((x) => x.inbox.length === 1)
    await a.until((x) => x.inbox.length === 1)
    assert.equal(b.inbox[0].text, secret + " a->b")
    assert.equal(b.inbox[0].from, a.publicKey)
    assert.equal(a.inbox[0].text, secret + " b->a")
    assert.equal(a.inbox[0].from, b.publicKey)
    assert.deepEqual(Object.keys(b.inbox[0].raw).sort(), ["box", "from", "nonce", "type"])
    // the box b got, handed to c: c cannot open it
    const raw = b.inbox[0].raw
    assert.equal(nacl.box.open(unb64u(raw.box), unb64u(raw.nonce), unb64u(raw.from), c.kp.secretKey), null)
    // a box made for b but addressed to c by mistake: forwarded, unopenable
    const nonce = nacl.randomBytes(24)
    const box = nacl.box(Buffer.from(secret + " misdirected"), nonce, b.kp.publicKey, a.kp.secretKey)
    a.sendRaw(JSON.stringify({ type: "MESSAGE", to: c.publicKey, nonce: b64u(nonce), box: b64u(box) }))
    await c.until((x) => x.inbox.length === 1)
    assert.equal(c.inbox[0].bytes, null)
    assert.equal(c.inbox[0].from, a.publicKey)
    for (const x of [a, b, c]) x.close()
    await sleep(100)
    const logs = h.err() + h.out()
    assert.ok(!logs.includes("attack at dawn"), "plaintext in the server's logs")
    assert.ok(!logs.includes(raw.box), "a box in the server's logs")
  })

  await test("offline recipient: ERROR offline with to", async () => {
    const a = await connect(url)
    const nobody = b64u(nacl.box.keyPair().publicKey)
    a.send(nobody, "hello?")
    const e = await a.until((x) => x.errors[0])
    assert.deepEqual(e, { type: "ERROR", reason: "offline", to: nobody })
    a.close()
  })

  await test("refused: wrong box", async () => {
    const r = await refused(url, (ch, c) => {
      const resp = c.challengeResponse(ch)
      const box = unb64u(resp.box); box[3] ^= 1
      resp.box = b64u(box)
      return resp
    })
    assert.equal(r.reason, "invalid box")
    assert.equal(r.close.code, 1008)
  })

  await test("refused: someone else's public key", async () => {
    const victim = await connect(url)
    const r = await refused(url, (ch, c) => {
      const resp = c.challengeResponse(ch) // boxed with our own secret key
      resp.publicKey = victim.publicKey
      return resp
    })
    assert.equal(r.reason, "invalid box")
    assert.equal(r.close.code, 1008)
    // the victim is untouched
    const a = await connect(url)
    a.send(victim.publicKey, "still here")
    await victim.until((x) => x.inbox.length === 1)
    a.close(); victim.close()
  })

  await test("refused: a CHALLENGE_RESPONSE replayed from another connection", async () => {
    const kp = nacl.box.keyPair()
    const first = new RelayClient(kp)
    let captured
    first.onchallenge = (ch) => { captured = first.challengeResponse(ch); return undefined }
    const p1 = first.connect(url).catch(() => {})
    await first.until((x) => x.challenge)
    const r = await refused(url, () => captured)
    assert.equal(r.reason, "wrong challenge")
    assert.equal(r.close.code, 1008)
    first.close(); await p1
  })

  await test("refused: malformed CHALLENGE_RESPONSE; MESSAGE before registration", async () => {
    const r = await refused(url, (ch, c) => ({ ...c.challengeResponse(ch), publicKey: "AAAA" }))
    assert.equal(r.reason, "bad field")
    const c = new RelayClient()
    c.onchallenge = () => JSON.stringify({ type: "MESSAGE", to: c.publicKey, nonce: b64u(nacl.randomBytes(24)), box: b64u(nacl.randomBytes(40)) })
    c.connect(url).catch(() => {})
    const e = await c.until((x) => x.errors[0])
    assert.equal(e.reason, "not registered")
    c.close()
  })

  await test("bad JSON and unknown types: ERROR each, then close 1008", async () => {
    const a = await connect(url)
    const bad = ["{", "[1]", '{"type":"MESSAGE","type":"MESSAGE"}', '{"type":"HELLO"}', '{"type":"MESSAGE","to":1}', "null"]
    for (const s of bad) a.sendRaw(s)
    await a.until((x) => x.closed)
    assert.deepEqual(a.errors.map((e) => e.reason), ["bad json", "bad json", "bad json", "unknown type", "bad field"])
    assert.equal(a.closed.code, 1008)
  })

  await test("the same key registered twice: the old connection is closed with 4001", async () => {
    const kp = nacl.box.keyPair()
    const old = await connect(url, kp)
    const neu = await connect(url, kp)
    await old.until((x) => x.closed)
    assert.equal(old.closed.code, 4001)
    assert.equal(old.closed.reason, "replaced")
    const a = await connect(url)
    a.send(neu.publicKey, "to the new one")
    await neu.until((x) => x.inbox.length === 1)
    assert.equal(neu.inbox[0].text, "to the new one")
    a.close(); neu.close()
  })

  await test("1,000 clients to random peers: each message exactly once, to the right key", async () => {
    const N = 1000, PER = 20
    const clients = []
    for (let i = 0; i < N; i += 100) {
      const batch = await Promise.all(Array.from({ length: Math.min(100, N - i) }, () => connect(url)))
      clients.push(...batch)
    }
    const idx = new Map(clients.map((c, i) => [c.publicKey, i]))
    const expected = new Map()
    for (let i = 0; i < N; i++) {
      for (let k = 0; k < PER; k++) {
        let j = crypto.randomInt(N - 1); if (j >= i) j++
        const id = `${i}:${k}:${j}`
        expected.set(id, j)
        clients[i].send(clients[j].publicKey, id)
      }
    }
    const total = N * PER
    const count = () => clients.reduce((s, c) => s + c.inbox.length, 0)
    const t0 = Date.now()
    while (count() < total && Date.now() - t0 < 60000) await sleep(50)
    await sleep(300)
    assert.equal(count(), total)
    const seen = new Set()
    clients.forEach((c, j) => {
      for (const m of c.inbox) {
        assert.ok(m.text !== null, "a box did not open")
        assert.equal(expected.get(m.text), j, "delivered to the wrong key")
        const [from] = m.text.split(":")
        assert.equal(idx.get(m.from), Number(from))
        assert.ok(!seen.has(m.text), "delivered twice: " + m.text)
        seen.add(m.text)
      }
      assert.equal(c.errors.length, 0)
    })
    assert.equal(seen.size, total)
    for (const c of clients) c.close()
    await sleep(300)
  })

  await test("through the attested tunnel: registration and a message", async () => {
    const { RAClient } = require("../attest/tunnel/ra_client.js")
    const t = await RAClient.connect(`http://127.0.0.1:${h.port}`)
    const s = t.websocket("ws://h/relay")
    const tc = new RelayClient()
    const reg = tc._attach({
      send: (x) => s.send(x),
      close: (c, r) => s.close(c, r),
      onmessage: (f) => { s._message = (m) => f(typeof m.data === "string" ? m.data : Buffer.from(m.data).toString()) },
      onclose: (f) => { s._event = (e) => { if (e.eventType === "close" || e.eventType === "error") f(e.code, e.reason || "") } },
    })
    await reg
    const plain = await connect(url)
    plain.send(tc.publicKey, "into the tunnel")
    await tc.until((x) => x.inbox.length === 1)
    assert.equal(tc.inbox[0].text, "into the tunnel")
    tc.send(plain.publicKey, "out of the tunnel")
    await plain.until((x) => x.inbox.length === 1)
    assert.equal(plain.inbox[0].text, "out of the tunnel")
    assert.equal(plain.inbox[0].from, tc.publicKey)
    plain.close(); t.close()
  })

  await test("the C client through the attested tunnel (ra_tunnel_ws_connect) and plain, both ways", async () => {
    const out = require("child_process").execFileSync(path.join(bin, "relay-client-check"),
      ["tunnel", url, path.join(tmp, "sim")], { encoding: "utf8", timeout: 30000 })
    assert.match(out, /^ok$/m)
  })

  await test("rate limit per key: past the burst, ERROR rate limited", async () => {
    const h4 = await startHello("--relay-rate", "5")
    try {
      const a = await connect(h4.url), b = await connect(h4.url)
      for (let i = 0; i < 20; i++) a.send(b.publicKey, "m" + i)
      await a.until((x) => x.errors.length >= 10)
      await sleep(100)
      assert.ok(a.errors.every((e) => e.reason === "rate limited" && e.to === b.publicKey))
      assert.ok(b.inbox.length >= 5 && b.inbox.length <= 7, "delivered " + b.inbox.length)
      assert.equal(b.inbox.length + a.errors.length, 20)
      assert.equal(a.closed, null, "rate limiting does not close")
      a.close(); b.close()
    } finally { await stopHello(h4) }
  })

  await stopHello(h)
  await test("no plaintext of any case in the server's logs", async () => {
    const logs = h.err() + h.out()
    for (const p of ["attack at dawn", "into the tunnel", "out of the tunnel", "to the new one", "still here"])
      assert.ok(!logs.includes(p), "plaintext in the server's logs: " + p)
  })

  await test("expired challenge: REGISTER_FAILURE challenge expired, 1008", async () => {
    const h2 = await startHello("--relay-challenge-ms", "300")
    try {
      const r = await refused(h2.url, () => undefined) // never answers
      assert.equal(r.reason, "challenge expired")
      assert.equal(r.close.code, 1008)
      // an answer after expiry is refused too (the connection is closing)
      const c = new RelayClient()
      c.onchallenge = (ch) => { setTimeout(() => { try { c.sendRaw(JSON.stringify(c.challengeResponse(ch))) } catch (e) {} }, 500); return undefined }
      await c.connect(h2.url).catch(() => {})
      await c.until((x) => x.closed)
      assert.equal(c.failure, "challenge expired")
      assert.equal(c.registered, false)
    } finally { await stopHello(h2) }
  })

  await test("a client that stops reading is closed with 1013; the server's memory stays bounded", async () => {
    const h3 = await startHello("--relay-queue-bytes", "262144", "--relay-rate", "100000")
    try {
      const slow = await connect(h3.url)
      const fast = await connect(h3.url)
      const rss0 = rssMB(h3.proc.pid)
      slow.ws._socket.pause()
      const big = crypto.randomBytes(32 * 1024)
      let sent = 0
      for (let round = 0; round < 40 && !fast.errors.length; round++) {
        for (let i = 0; i < 50; i++) { fast.send(slow.publicKey, big); sent++ }
        await sleep(20)
      }
      await fast.until((x) => x.errors.length > 0, 20000)
      assert.equal(fast.errors[0].reason, "offline")
      const rss1 = rssMB(h3.proc.pid)
      assert.ok(rss1 - rss0 < 64, `RSS grew ${rss1 - rss0} MB`)
      slow.ws._socket.resume()
      await slow.until((x) => x.closed, 10000)
      assert.equal(slow.closed.code, 1013)
      assert.ok(slow.inbox.length < sent)
      fast.close()
    } finally { await stopHello(h3) }
  })
}, 240000)
