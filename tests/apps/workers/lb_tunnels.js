// Many attested tunnels through an L4 balancer in front of two ra-hello
// backends, with the reference-compatible client (tests/attest/tunnel/
// ra_client.js). Usage: node lb_tunnels.js LB A B PID_A N
//   LB, A, B: http://127.0.0.1:PORT origins (the balancer, each backend)
// Each backend has its own X25519 key: a tunnel's backend is the key of its
// server_kx (learnt first by connecting to A and B directly). N tunnels are
// opened through LB and each fetches /delay?ms=40..100 in a loop (a request
// is in flight most of the time); after a second,
// backend A is killed (SIGKILL). A tunnel that closes fails its pending
// fetches, reconnects through LB (a new client_kx key: a rekey) and goes on.
// Checks: the tunnels spread over both backends; those on B never fail nor
// close; those on A close, reconnect to B and succeed again; no failure
// elsewhere than on A's tunnels. Prints a JSON summary; exit 1 on failure.
"use strict"
const path = require("path")
const { RAClient } = require(path.join(__dirname, "..", "..", "attest", "tunnel", "ra_client.js"))

const [lb, originA, originB, pidA, nArg] = process.argv.slice(2)
const N = parseInt(nArg || "12", 10)
const hex = (u) => Buffer.from(u).toString("hex")
const sleep = (ms) => new Promise((r) => setTimeout(r, ms))

async function keyOf(origin) {
  const c = await RAClient.connect(origin)
  const k = hex(c.serverKx.x25519PublicKey)
  c.close()
  return k
}

async function main() {
  const keys = { [await keyOf(originA)]: "A", [await keyOf(originB)]: "B" }
  const tunnels = []
  let stopping = false
  const connect = async (t) => {
    for (let i = 0; i < 200; i++) {
      try {
        const c = await RAClient.connect(lb)
        t.client = c
        t.backend = keys[hex(c.serverKx.x25519PublicKey)] || "?"
        t.backends.push(t.backend)
        c.onclose = () => {
          t.closes++
          t.client = null
          if (!stopping) setTimeout(() => connect(t), 20)
        }
        return
      } catch (e) {
        t.connectErrors++
        await sleep(50)
      }
    }
  }
  for (let i = 0; i < N; i++) {
    const t = { id: i, backends: [], ok: 0, failed: 0, okAfterKill: 0, closes: 0, connectErrors: 0 }
    tunnels.push(t)
    await connect(t)
  }
  let killed = false
  const loop = async (t) => {
    while (!stopping) {
      const c = t.client
      if (c) {
        try {
          // a different pace per tunnel: they do not all sit idle at once
          const r = await c.fetch("/delay?ms=" + (40 + (t.id % 7) * 10), { timeoutMs: 5000 })
          if (r.status === 200 && r.text === "ok") {
            t.ok++
            if (killed) t.okAfterKill++
          } else {
            t.failed++
          }
        } catch (e) {
          t.failed++
        }
      }
      await sleep(5)
    }
  }
  const loops = tunnels.map(loop)
  await sleep(1000)
  process.kill(parseInt(pidA, 10), "SIGKILL")
  killed = true
  await sleep(2500)
  stopping = true
  await Promise.all(loops)
  for (const t of tunnels) if (t.client) t.client.close()

  const onA = tunnels.filter((t) => t.backends[0] === "A")
  const onB = tunnels.filter((t) => t.backends[0] === "B")
  const problems = []
  if (!onA.length || !onB.length) problems.push(`not spread: ${onA.length} on A, ${onB.length} on B`)
  // requests take 40-100 ms: A's tunnels had some in flight when it died
  if (!onA.reduce((a, t) => a + t.failed, 0)) problems.push("no request failed on A: none in flight?")
  for (const t of onB)
    if (t.failed || t.closes || t.backends.length !== 1) problems.push(`tunnel ${t.id} on B noticed: ${JSON.stringify(t)}`)
  for (const t of onA) {
    if (!t.closes) problems.push(`tunnel ${t.id} on A not closed`)
    if (t.backend !== "B") problems.push(`tunnel ${t.id} did not reconnect to B: ${t.backends}`)
    if (!t.okAfterKill) problems.push(`tunnel ${t.id} did not recover`)
  }
  const summary = {
    tunnels: N,
    onA: onA.length,
    onB: onB.length,
    ok: tunnels.reduce((a, t) => a + t.ok, 0),
    failedOnA: onA.reduce((a, t) => a + t.failed, 0),
    failedOnB: onB.reduce((a, t) => a + t.failed, 0),
    reconnected: onA.filter((t) => t.backends.length > 1).length,
    problems,
  }
  console.log(JSON.stringify(summary))
  process.exit(problems.length ? 1 : 0)
}

main().catch((e) => {
  console.log(JSON.stringify({ problems: [String(e && e.stack)] }))
  process.exit(1)
})
