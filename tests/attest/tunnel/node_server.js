// An independent RA-HTTPS / RA-WSS tunnel server, written from
// docs/PROTOCOL.md only (cbor-x, libsodium-wrappers, ws, node:http),
// shaped like the reference's Express TunnelServer: Express-style response
// headers (x-powered-by), string bodies, Uint8Array binary bodies (tag 64),
// `undefined` fields, ws_event close with code/reason. Its quote comes from
// the simulated TEE (`ra-quote sim`), bound like the reference binds a TDX
// quote: report_data = SHA-512(val || iat || x25519 key).
//
// Usage: node node_server.js RA_BIN SIM_DIR [--swap-key] [--no-verifier-data] [--streams]
// --streams: announces raloop's streamed bodies (PROTOCOL.md §11, written
// from the agreed wire format) in server_kx; with a client that opts in,
// /upload takes bodyStream requests (credit granted per piece) and /bytes?n=N
// streams its answer (byte i = i % 251) within the client's credit; and
// rule breakers for the client's checks: /over-credit (sends past the
// credit), /big-chunk (a piece over the client's chunk), /early-body (an
// http_body before the response head), /abandon (http_cancel halfway through
// a streamed response: it cannot be completed). /stats counts the http_cancel received.
// Prints "PORT <n>" once listening. Routes: /hello, /echo (POST), /bin,
// /missing (404), /empty (204), /cookies, /slow?ms=N, /error (http_response
// with `error`), /drop (closes the control channel without answering),
// /stats, /json (parses the body only under the key "content-type" exactly,
// as the reference's Express server does), /latin (header values with code
// points 0x80..0xff, what a browser shows for such header bytes), /wide (a
// header value above U+00FF), /upload (PUT|POST: {"bytes":N,"sha256":HEX} of
// the whole body, as ra-hello's route answers; this server never announces
// streamed bodies, so the body comes whole);
// tunnelled WebSocket at any path: echo, "close" -> close 4000 bye; a path
// ending in /greet gets a ws_message before ws_event open (the reference
// runs the application's connection handler before it sends open).
"use strict"
const path = require("path")
const http = require("http")
const fs = require("fs")
const os = require("os")
const crypto = require("crypto")
const { execFileSync } = require("child_process")
const nm = path.join(__dirname, "..", "..", "node_modules")
const { WebSocketServer } = require(path.join(nm, "ws"))
const { encode, decode } = require(path.join(nm, "cbor-x"))
const sodium = require(path.join(nm, "libsodium-wrappers"))

const [raBin, simDir, ...flags] = process.argv.slice(2)
const stats = { tunnels: 0, requests: 0, decryptErrors: 0 }

;(async () => {
  await sodium.ready
  const kp = sodium.crypto_box_keypair()
  const val = crypto.randomBytes(32)
  const iat = Buffer.from(new Date().toISOString())
  const rd = crypto.createHash("sha512").update(val).update(iat).update(kp.publicKey).digest()
  const qfile = path.join(os.tmpdir(), `ra-node-quote-${process.pid}.bin`)
  execFileSync(path.join(raBin, "ra-quote"), ["sim", "--dir", simDir, "--report-data", rd.toString("hex"), "--out", qfile])
  const quote = fs.readFileSync(qfile)
  fs.unlinkSync(qfile)
  // --swap-key: announce another key than the one the quote binds (a MITM)
  const announced = flags.includes("--swap-key") ? sodium.crypto_box_keypair() : kp
  const serverKx = {
    type: "server_kx",
    x25519PublicKey: announced.publicKey, // Uint8Array: tag 64
    quote, // Buffer: plain byte string
    runtime_data: null,
    verifier_data: flags.includes("--no-verifier-data") ? null : { val: new Uint8Array(val), iat: new Uint8Array(iat), signature: new Uint8Array(0) },
    sev_snp_data: null,
  }
  const streams = flags.includes("--streams")
  const SERVER_BS = { window: 1 << 20, chunk: 256 << 10 }
  if (streams) serverKx.bodyStreams = SERVER_BS
  stats.cancels = 0

  const server = http.createServer((req, res) => {
    res.writeHead(200, { "content-type": "text/plain" })
    res.end("plain http\n")
  })
  const wss = new WebSocketServer({ noServer: true })
  server.on("upgrade", (req, socket, head) => {
    if (!req.url.startsWith("/__ra__")) return socket.destroy()
    wss.handleUpgrade(req, socket, head, (ws) => control(ws))
  })

  function control(ws) {
    stats.tunnels++
    let key = null
    const sockets = new Map()
    const t = { bs: null, uploads: new Map(), downloads: new Map() } // bs: the client's, when negotiated
    const send = (inner) => {
      const nonce = sodium.randombytes_buf(24)
      ws.send(encode({ type: "enc", nonce, ciphertext: sodium.crypto_secretbox_easy(encode(inner), nonce, key) }))
    }
    ws.send(encode(serverKx)) // at once, before client_kx_ready
    ws.on("message", (data) => {
      let m
      try { m = decode(data) } catch { return }
      if (!m || typeof m !== "object") return
      if (m.type === "client_kx") {
        if (key) return
        try { key = sodium.crypto_box_seal_open(m.sealedSymmetricKey, kp.publicKey, kp.privateKey) } catch { }
        if (streams && m.bodyStreams && m.bodyStreams.window >= 65536 && m.bodyStreams.chunk >= 16384) t.bs = m.bodyStreams
        return
      }
      if (!key || m.type !== "enc") return
      let inner
      try { inner = decode(sodium.crypto_secretbox_open_easy(m.ciphertext, m.nonce, key)) } catch { stats.decryptErrors++; return }
      if (inner.type === "http_request" && inner.bodyStream && t.bs) {
        const u = { n: 0, h: crypto.createHash("sha256"), since: 0 }
        t.uploads.set(inner.requestId, u)
        u.done = () => handle({ ...inner, body: undefined, streamed: u }, send, ws, t)
      } else if (inner.type === "http_request") handle(inner, send, ws, t)
      else if (inner.type === "http_body" && t.bs) {
        const u = t.uploads.get(inner.requestId)
        if (!u) return
        const d = inner.data || new Uint8Array(0)
        u.n += d.length
        u.h.update(d)
        u.since += d.length
        if (inner.end) { t.uploads.delete(inner.requestId); u.done() }
        else if (u.since >= SERVER_BS.chunk) {
          send({ type: "http_credit", requestId: inner.requestId, bytes: u.since })
          u.since = 0
        }
      } else if (inner.type === "http_credit" && t.bs) {
        const d = t.downloads.get(inner.requestId)
        if (d) { d.credit += inner.bytes; d.pump() }
      } else if (inner.type === "http_cancel" && t.bs) {
        stats.cancels++
        const d = t.downloads.get(inner.requestId)
        if (d) { d.stopped = true; t.downloads.delete(inner.requestId) }
        t.uploads.delete(inner.requestId)
      }
      else if (inner.type === "ws_connect") {
        sockets.set(inner.connectionId, { url: inner.url, protocols: inner.protocols })
        if (/\/greet$/.test(new URL(inner.url).pathname))
          send({ type: "ws_message", connectionId: inner.connectionId, data: "welcome", dataType: "string" })
        send({ type: "ws_event", connectionId: inner.connectionId, eventType: "open" })
      } else if (inner.type === "ws_message") {
        if (!sockets.has(inner.connectionId)) return
        if (inner.data === "close") {
          sockets.delete(inner.connectionId)
          send({ type: "ws_event", connectionId: inner.connectionId, eventType: "close", code: 4000, reason: "bye" })
          return
        }
        if (inner.data === "info") {
          const s = sockets.get(inner.connectionId)
          send({ type: "ws_message", connectionId: inner.connectionId, data: `url=${s.url} protocols=${JSON.stringify(s.protocols)}`, dataType: "string" })
          return
        }
        const data = typeof inner.data === "string" ? inner.data : new Uint8Array(inner.data)
        send({ type: "ws_message", connectionId: inner.connectionId, data, dataType: typeof data === "string" ? "string" : "arraybuffer" })
      } else if (inner.type === "ws_close") {
        sockets.delete(inner.connectionId)
        stats.lastClose = { code: inner.code, reason: inner.reason }
      }
    })
  }

  // a streamed answer of n bytes (byte i = i % 251) within the client's credit;
  // hostile: "over" ignores the credit, "big" sends one piece over the chunk
  function streamOut(r, send, t, n, hostile) {
    send({ type: "http_response", requestId: r.requestId, status: 200, statusText: "OK", headers: { "content-length": String(n) }, body: null, bodyStream: true })
    const d = { sent: 0, credit: t.bs.window, stopped: false }
    t.downloads.set(r.requestId, d)
    const piece = (len) => Uint8Array.from({ length: len }, (_, i) => (d.sent + i) % 251)
    d.pump = () => {
      while (!d.stopped && d.sent < n && (hostile === "over" || d.sent < d.credit)) {
        if (hostile === "abandon" && d.sent >= n / 2) { // cannot complete: cancel, never a false end
          send({ type: "http_cancel", requestId: r.requestId, reason: "out of memory" })
          d.stopped = true
          t.downloads.delete(r.requestId)
          return
        }
        let len = Math.min(t.bs.chunk, n - d.sent)
        if (hostile !== "over") len = Math.min(len, d.credit - d.sent)
        if (hostile === "big") len = t.bs.chunk + 1
        send({ type: "http_body", requestId: r.requestId, end: d.sent + len >= n, data: piece(len) })
        d.sent += len
      }
      if (d.sent >= n) t.downloads.delete(r.requestId)
    }
    d.pump()
  }

  function handle(r, send, ws, t) {
    stats.requests++
    stats.lastRequest = { method: r.method, url: r.url, headers: r.headers, body: r.body, bodyIsText: typeof r.body === "string" }
    const u = new URL(r.url, "http://localhost")
    const base = { type: "http_response", requestId: r.requestId }
    const ok = (body, headers = {}, status = 200, statusText = "OK") =>
      send({ ...base, status, statusText, headers: { "x-powered-by": "Express", ...headers }, body })
    switch (u.pathname) {
      case "/hello": return ok("world", { "content-type": "text/html; charset=utf-8" })
      case "/echo": { // header names arrive in the caller's case: match case-insensitively
        const ct = Object.entries(r.headers || {}).find(([k]) => k.toLowerCase() === "content-type")
        return ok(r.body === undefined ? "" : r.body, { "content-type": ct ? ct[1] : "text/plain", "x-method": r.method })
      }
      case "/bin": return ok(Uint8Array.from({ length: 256 }, (_, i) => i), { "content-type": "application/octet-stream" })
      case "/empty": return ok("", {}, 204, "No Content")
      case "/cookies": return ok("ok", { "set-cookie": ["a=1", "b=2"], "x-single": "one" })
      case "/slow": {
        const ms = Number(u.searchParams.get("ms") || 20)
        return setTimeout(() => ok(`slow ${ms}`), ms)
      }
      case "/error": return send({ ...base, status: 500, statusText: "Internal Server Error", headers: {}, body: "", error: "handler exploded" })
      case "/drop": return ws.terminate()
      case "/stats": return ok(JSON.stringify(stats), { "content-type": "application/json" })
      case "/json": { // express.json(): the exact key, as a browser's Headers sends it
        if (r.headers["content-type"] !== "application/json") return ok("body not parsed", {}, 415, "Unsupported Media Type")
        let v
        try { v = JSON.parse(r.body) } catch { return ok("bad json", {}, 400, "Bad Request") }
        return ok(JSON.stringify({ parsed: v }), { "content-type": "application/json" })
      }
      case "/latin": return ok("ok", { "x-check": "\u00e2\u009c\u0093", "x-latin": ["caf\u00e9", "\u00ff"] })
      case "/wide": return ok("ok", { "x-wide": "\u2713" }) // no HTTP header byte can carry it
      case "/bytes": case "/over-credit": case "/big-chunk": case "/abandon": {
        const n = Number(u.searchParams.get("n") || 1000)
        if (t && t.bs) return streamOut(r, send, t, n, u.pathname === "/over-credit" ? "over" : u.pathname === "/big-chunk" ? "big" : u.pathname === "/abandon" ? "abandon" : null)
        return ok(Uint8Array.from({ length: n }, (_, i) => i % 251), { "content-type": "application/octet-stream" })
      }
      case "/early-body": // a piece before any response head
        send({ type: "http_body", requestId: r.requestId, end: true, data: new Uint8Array(10) })
        return ok("whole")
      case "/upload": {
        if (r.streamed) return ok(JSON.stringify({ bytes: r.streamed.n, sha256: r.streamed.h.digest("hex") }) + "\n", { "content-type": "application/json" })
        const b = r.body === undefined || r.body === null ? Buffer.alloc(0) : typeof r.body === "string" ? Buffer.from(r.body) : Buffer.from(r.body)
        stats.lastRequest.body = undefined // not kept: it may be large
        return ok(JSON.stringify({ bytes: b.length, sha256: crypto.createHash("sha256").update(b).digest("hex") }) + "\n", { "content-type": "application/json" })
      }
      default: return ok("Cannot GET " + u.pathname, { "content-type": "text/html" }, 404, "Not Found")
    }
  }

  server.listen(0, "127.0.0.1", () => {
    console.log("PORT " + server.address().port)
  })
  process.on("SIGTERM", () => process.exit(0))
})().catch((e) => {
  console.error(e)
  process.exit(1)
})
