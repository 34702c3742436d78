// A test upstream for ra-gateway: node upstream.js LOGFILE [PORT|unix:PATH]
// Prints "PORT n" (or "UNIX path") once listening. Every request is logged
// to LOGFILE as one JSON line {method, url, headers} before it is answered.
//   GET  /hello            "world"
//   POST /echo             the body back (same Content-Type), x-body-sha256 header
//   GET  /headers          the request headers as JSON
//   GET  /chunked?n=N      N chunks "chunk i\n", chunked encoding, one per tick
//   GET  /slow?ms=N        "slow" after N ms
//   GET  /stall            never answers
//   GET  /close            destroys the socket without answering
//   GET  /cut              head + half the announced body, then destroys the socket
//   GET  /cutbig           the same with 1 MiB of an announced 2 MiB
//   GET  /big?mb=N         N MiB of a repeating pattern, streamed with back-pressure
//   GET  /hop              answers with hop-by-hop headers that must not pass
"use strict"
const http = require("http")
const fs = require("fs")
const crypto = require("crypto")
const log = fs.openSync(process.argv[2], "a")
const where = process.argv[3] || "0"

const srv = http.createServer((req, res) => {
  fs.writeSync(log, JSON.stringify({ method: req.method, url: req.url, headers: req.headers }) + "\n")
  const u = new URL(req.url, "http://x")
  const q = (k, d) => (u.searchParams.has(k) ? Number(u.searchParams.get(k)) : d)
  switch (u.pathname) {
    case "/hello":
      res.setHeader("Content-Type", "text/plain")
      return res.end("world")
    case "/echo": {
      const parts = []
      req.on("data", (d) => parts.push(d))
      req.on("end", () => {
        const b = Buffer.concat(parts)
        res.setHeader("Content-Type", req.headers["content-type"] || "application/octet-stream")
        res.setHeader("x-body-sha256", crypto.createHash("sha256").update(b).digest("hex"))
        res.end(b)
      })
      return
    }
    case "/headers":
      res.setHeader("Content-Type", "application/json")
      return res.end(JSON.stringify(req.headers))
    case "/chunked": {
      const n = q("n", 10)
      let i = 0
      res.setHeader("Content-Type", "text/plain")
      const next = () => {
        if (i >= n) return res.end()
        res.write(`chunk ${i++}\n`)
        setImmediate(next)
      }
      return next()
    }
    case "/slow":
      return setTimeout(() => res.end("slow"), q("ms", 500))
    case "/private":
    case "/private/x":
      return res.end("attested=" + (req.headers["x-attested"] || "none"))
    case "/stall":
      return // never answers
    case "/close":
      return req.socket.destroy()
    case "/cut":
      res.writeHead(200, { "Content-Length": "1000" })
      res.write(Buffer.alloc(500, 97))
      return setTimeout(() => req.socket.destroy(), 50)
    case "/cutbig": // past the tunnel's chunk: streamed through it, then cut
      res.writeHead(200, { "Content-Length": String(2 << 20) })
      res.write(Buffer.alloc(1 << 20, 98))
      return setTimeout(() => req.socket.destroy(), 100)
    case "/cutchunked":
      res.writeHead(200, { "Content-Type": "text/plain" })
      res.write("part one\n")
      return setTimeout(() => req.socket.destroy(), 50)
    case "/hop":
      res.writeHead(200, {
        Connection: "keep-alive, X-Hop-Custom",
        "X-Hop-Custom": "secret",
        "Keep-Alive": "timeout=5",
        "Proxy-Authenticate": "Basic",
        Trailer: "X-T",
        Upgrade: "h2c",
        "X-End-To-End": "kept",
      })
      return res.end("ok")
    case "/big": {
      const total = q("mb", 1) * 1024 * 1024
      const pat = Buffer.alloc(64 * 1024)
      for (let i = 0; i < pat.length; i++) pat[i] = i % 251
      res.writeHead(200, { "Content-Type": "application/octet-stream", "Content-Length": String(total) })
      let sent = 0
      const pump = () => {
        while (sent < total) {
          const n = Math.min(pat.length, total - sent)
          sent += n
          if (!res.write(n === pat.length ? pat : pat.subarray(0, n))) return res.once("drain", pump)
        }
        res.end()
      }
      return pump()
    }
    default:
      res.statusCode = 404
      return res.end("no such path\n")
  }
})
srv.keepAliveTimeout = 60000
process.on("uncaughtException", (e) => console.error("upstream: " + e.stack))
// WebSocket echo on /ws: "close:CODE:REASON" makes the upstream close with
// that code; the close codes it receives are logged ({ws_close, reason}).
const path = require("path")
const WebSocket = require(path.join(__dirname, "..", "..", "node_modules", "ws"))
const wss = new WebSocket.Server({ noServer: true, handleProtocols: (ps) => [...ps][0] || false })
srv.on("upgrade", (req, sock, head) => {
  fs.writeSync(log, JSON.stringify({ method: "UPGRADE", url: req.url, headers: req.headers }) + "\n")
  if (!req.url.startsWith("/ws")) return sock.destroy()
  wss.handleUpgrade(req, sock, head, (ws) => {
    ws.on("message", (data, isBinary) => {
      const s = isBinary ? "" : data.toString()
      if (s.startsWith("close:")) {
        const [, code, reason] = s.split(":")
        return ws.close(Number(code), reason)
      }
      ws.send(data, { binary: isBinary })
    })
    ws.on("close", (code, reason) => {
      fs.writeSync(log, JSON.stringify({ ws_close: code, reason: reason.toString() }) + "\n")
    })
  })
})
if (where.startsWith("unix:")) {
  const p = where.slice(5)
  try { fs.unlinkSync(p) } catch {}
  srv.listen(p, () => console.log("UNIX " + p))
} else {
  srv.listen(Number(where), "127.0.0.1", () => console.log("PORT " + srv.address().port))
}
process.on("SIGTERM", () => process.exit(0))
