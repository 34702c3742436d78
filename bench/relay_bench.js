// The relay benchmark (issue 14): N registered clients (default 1,000) each
// send M messages (default 50) to random peers, all at once, through
// ra-hello's WS /relay and through the same protocol on Node's `ws`
// (relay_ref_server.js), in one run. Reports relayed messages/s (first send
// to last delivery) and delivery latency p50/p99. Boxes are precomputed
// (the relay never opens them) and the nonce carries the message number, so
// the clients' crypto is not what is measured; both servers get the same
// driver (one Node process).
//   RA_BIN=<build>/bin node bench/relay_bench.js [N] [M]
"use strict"
const path = require("path")
const fs = require("fs")
const os = require("os")
const { spawn } = require("child_process")
const nm = path.join(__dirname, "..", "tests", "node_modules")
const WebSocket = require(path.join(nm, "ws"))
const nacl = require(path.join(nm, "tweetnacl"))
const b64u = (u8) => Buffer.from(u8).toString("base64url")
const unb64u = (s) => new Uint8Array(Buffer.from(s, "base64url"))

const N = Number(process.argv[2] || 1000), M = Number(process.argv[3] || 50)

function start(cmd, args) {
  return new Promise((resolve, reject) => {
    const p = spawn(cmd, args, { stdio: ["ignore", "pipe", "inherit"] })
    let out = ""
    p.stdout.on("data", (d) => {
      out += d
      const m = out.match(/listening on (?:http:\/\/127\.0\.0\.1:)?(\d+)/)
      if (m) resolve({ p, port: Number(m[1]) })
    })
    p.on("exit", (c) => reject(new Error(cmd + " exited " + c)))
  })
}

function register(url) {
  return new Promise((resolve, reject) => {
    const kp = nacl.box.keyPair()
    const ws = new WebSocket(url)
    ws.on("error", reject)
    ws.on("message", (d) => {
      const m = JSON.parse(d)
      if (m.type === "CHALLENGE") {
        const n = nacl.randomBytes(24)
        ws.send(JSON.stringify({ type: "CHALLENGE_RESPONSE", publicKey: b64u(kp.publicKey), boxNonce: b64u(n),
          box: b64u(nacl.box(unb64u(m.nonce), n, unb64u(m.serverPublicKey), kp.secretKey)) }))
      } else if (m.type === "REGISTER_SUCCESS") {
        ws.removeAllListeners("message")
        resolve({ ws, pk: b64u(kp.publicKey) })
      } else reject(new Error(JSON.stringify(m)))
    })
  })
}

async function runOne(name, url) {
  const cs = []
  for (let i = 0; i < N; i += 100) cs.push(...await Promise.all(Array.from({ length: Math.min(100, N - i) }, () => register(url))))
  const box = b64u(nacl.randomBytes(16 + 64)) // a 64-byte message's box
  const total = N * M
  const sentAt = new Float64Array(total)
  const lat = []
  let got = 0, errors = 0, done
  const finished = new Promise((r) => { done = r })
  for (const c of cs) {
    c.ws.on("message", (d) => {
      const s = d.toString()
      if (s.charCodeAt(9) !== 77) { errors++; return } // {"type":"MESSAGE"
      const i = s.indexOf('"nonce":"') + 9
      const id = Buffer.from(s.slice(i, i + 32), "base64url").readUInt32LE(0)
      lat.push(performance.now() - sentAt[id])
      if (++got + errors >= total) done()
    })
  }
  const nonce = Buffer.alloc(24)
  const t0 = performance.now()
  let id = 0
  for (let k = 0; k < M; k++) {
    for (let i = 0; i < N; i++) {
      let j = Math.floor(Math.random() * (N - 1)); if (j >= i) j++
      nonce.writeUInt32LE(id, 0)
      sentAt[id] = performance.now()
      cs[i].ws.send(`{"type":"MESSAGE","to":"${cs[j].pk}","nonce":"${nonce.toString("base64url")}","box":"${box}"}`)
      id++
    }
    if (k % 5 === 4) await new Promise((r) => setImmediate(r))
  }
  await Promise.race([finished, new Promise((r) => setTimeout(r, 120000))])
  const secs = (performance.now() - t0) / 1000
  lat.sort((a, b) => a - b)
  const q = (p) => lat.length ? lat[Math.min(lat.length - 1, Math.floor(p * lat.length))].toFixed(1) : "-"
  for (const c of cs) c.ws.terminate()
  return { name, clients: N, messages: total, delivered: got, errors, msgs_per_s: Math.round(got / secs), p50_ms: q(0.5), p99_ms: q(0.99) }
}

;(async () => {
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "relay-bench-"))
  const ra = await start(path.join(process.env.RA_BIN, "ra-hello"),
    ["--listen", "127.0.0.1:0", "--quiet", "--no-tunnel", "--relay-rate", "10000000", "--relay-queue-bytes", String(64 << 20)])
  const ref = await start("node", [path.join(__dirname, "relay_ref_server.js")])
  const rows = []
  try {
    rows.push(await runOne("raloop ra-hello /relay", `ws://127.0.0.1:${ra.port}/relay`))
    rows.push(await runOne("node ws reference", `ws://127.0.0.1:${ref.port}/`))
  } finally {
    ra.p.kill("SIGTERM"); ref.p.kill("SIGTERM")
    fs.rmSync(tmp, { recursive: true, force: true })
  }
  console.table(rows)
  console.log(JSON.stringify(rows))
  process.exit(0)
})().catch((e) => { console.error(e); process.exit(1) })
