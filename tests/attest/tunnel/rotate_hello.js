// Tunnel key rotation (issue 17) against ra-hello, through the independent
// Node tunnel client (ra_client.js, which behaves as the reference does on
// a closed control channel: pending fetches fail):
//   - after SIGUSR1 a new tunnel gets a different server key, bound by its
//     quote (report_data checked by the client), while a tunnel opened
//     before keeps working until --key-grace has passed
//   - at the grace, the old tunnel's in-flight request completes (200), a
//     new request on it gets the 503 `error` (rejected fetch), then the
//     control channel closes 1012; a new tunnel works (the new key)
//   - an old tunnel whose request outlives the drain timeout: closed 1012
//     anyway, its pending fetch fails
//   - with --workers 2, SIGUSR1 to the supervisor rotates both workers' keys
// Starts its own ra-hello on loopback (RA_BIN); stops it.
"use strict"
const assert = require("assert/strict")
const { RAClient } = require("./ra_client.js")
const { test, sleep, run } = require("./harness.js")
const { helloProcs } = require("./hello_procs.js")

const { startHello } = helloProcs("ra-rotate-")

async function waitFor(pred, ms, what) {
  const t0 = Date.now()
  while (!pred()) {
    if (Date.now() - t0 > ms) throw new Error("timed out waiting for " + what)
    await sleep(20)
  }
}

const hex = (b) => Buffer.from(b).toString("hex")
const outcome = (p) => p.then((r) => ({ status: r.status }), (e) => ({ error: e.message }))

run(async () => {
  const GRACE = 1500
  const h = await startHello("--key-lifetime", "0", "--key-grace", GRACE + "ms")
  const origin = `http://127.0.0.1:${h.port}`
  try {
    const old = await RAClient.connect(origin)
    const stuck = await RAClient.connect(origin) // its request outlives the drain timeout
    const pk1 = hex(old.serverKx.x25519PublicKey)
    assert.equal((await old.fetch("/hello")).status, 200)
    const stuckReq = outcome(stuck.fetch("/delay?ms=20000", { timeoutMs: 30000 }))

    let fresh, t0
    await test("SIGUSR1: a new tunnel gets a new key bound by its quote; the old one goes on", async () => {
      h.proc.kill("SIGUSR1")
      t0 = Date.now()
      await waitFor(() => /key rotated/.test(h.err()), 5000, "the rotation log line")
      fresh = await RAClient.connect(origin) // checks report_data binds the key
      const pk2 = hex(fresh.serverKx.x25519PublicKey)
      assert.notEqual(pk2, pk1)
      assert.notEqual(hex(fresh.serverKx.quote), hex(old.serverKx.quote))
      assert.equal((await fresh.fetch("/hello")).status, 200)
      assert.equal((await old.fetch("/hello")).status, 200, "the old tunnel still works before the grace")
      assert.equal(old.closed, undefined)
    })

    await test("at the grace: in-flight request answered, new ones refused, then close 1012", async () => {
      // in flight across the grace
      const inflight = outcome(old.fetch(`/delay?ms=${GRACE + 800}`))
      await sleep(Math.max(0, GRACE + 300 - (Date.now() - t0)))
      const late = await outcome(old.fetch("/hello"))
      assert.match(late.error || "", /rotated/, "a request during the drain: " + JSON.stringify(late))
      assert.equal(old.closed, undefined, "not closed while a request is in flight")
      assert.deepEqual(await inflight, { status: 200 })
      await waitFor(() => old.closed, 3000, "the old tunnel's close")
      assert.equal(old.closed.code, 1012)
      assert.equal((await fresh.fetch("/hello")).status, 200, "the tunnel on the new key is not drained")
    })

    await test("a request outliving the drain timeout: closed 1012, the pending fetch fails", async () => {
      await waitFor(() => stuck.closed, 8000, "the stuck tunnel's close")
      assert.equal(stuck.closed.code, 1012)
      const r = await stuckReq
      assert.match(r.error || "", /disconnected/i, JSON.stringify(r))
    })

    await test("after the close the client opens a new tunnel (the new key) and goes on", async () => {
      const again = await RAClient.connect(origin)
      assert.equal(hex(again.serverKx.x25519PublicKey), hex(fresh.serverKx.x25519PublicKey))
      assert.equal((await again.fetch("/hello")).status, 200)
      again.close()
      fresh.close()
    })

    await test("ra-hello exits cleanly", async () => {
      h.proc.kill("SIGTERM")
      const ex = await h.exited
      assert.equal(ex.code, 0, h.err())
      assert.doesNotMatch(h.err(), /ERROR: (Address|Leak|Undefined)Sanitizer|runtime error:/)
    })
  } finally {
    h.proc.kill("SIGKILL")
  }

  await test("--workers 2: SIGUSR1 to the supervisor rotates every worker's key", async () => {
    const w = await startHello("--workers", "2")
    try {
      await waitFor(() => (w.err().match(/attested tunnel on/g) || []).length >= 2, 10000, "both workers")
      w.proc.kill("SIGUSR1")
      await waitFor(() => (w.err().match(/SIGUSR1: noted: tunnel key rotated/g) || []).length >= 2, 5000,
        "two rotations (one per worker)")
      w.proc.kill("SIGTERM")
      assert.equal((await w.exited).code, 0)
    } finally {
      w.proc.kill("SIGKILL")
    }
  })
}, 60000)
