#!/usr/bin/env node
// browser/relay: two pages in headless Chromium (playwright-core) exchange a
// message through ra-hello's WS /relay (docs/RELAY.md), each with its own
// tweetnacl key pair (page/relay.html), one message each way; a plaintext
// never reaches the server's log. Starts ra-hello and a static server on
// 127.0.0.1 (port 0), stops everything on every path.
//   RA_BIN=<build>/bin RA_SRC=<repo> node relay.js
"use strict"
const assert = require("assert/strict")
const { spawn } = require("child_process")
const fs = require("fs")
const http = require("http")
const os = require("os")
const path = require("path")

const src = process.env.RA_SRC || path.join(__dirname, "..", "..")
const bin = process.env.RA_BIN
const nm = path.join(src, "tests", "node_modules")
const chromiumPath = process.env.RA_CHROMIUM || "/usr/bin/chromium"
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "ra-relay-browser-"))
let server = null, statics = null, browser = null, serverErr = ""
process.on("exit", () => {
  if (server && server.exitCode === null) try { server.kill("SIGKILL") } catch (_) {}
  fs.rmSync(tmp, { recursive: true, force: true })
})
setTimeout(() => { console.error("browser/relay: FAIL: timeout"); process.exit(1) }, 50000).unref()

const files = {
  "/relay.html": [path.join(__dirname, "page", "relay.html"), "text/html; charset=utf-8"],
  "/lib/nacl-fast.js": [path.join(nm, "tweetnacl", "nacl-fast.js"), "text/javascript; charset=utf-8"],
}

function startServer() {
  return new Promise((resolve, reject) => {
    server = spawn(path.join(bin, "ra-hello"),
      ["--listen", "127.0.0.1:0", "--tee", "sim", "--sim-dir", path.join(tmp, "sim")],
      { stdio: ["ignore", "pipe", "pipe"] })
    let out = ""
    server.stderr.on("data", (d) => { serverErr += d })
    server.stdout.on("data", (d) => {
      out += d
      const m = /^listening on http:\/\/127\.0\.0\.1:(\d+)$/m.exec(out)
      if (m) resolve(Number(m[1]))
    })
    server.on("exit", (c) => reject(new Error("ra-hello exited " + c + "\n" + serverErr)))
  })
}

function startStatics() {
  return new Promise((resolve, reject) => {
    statics = http.createServer((req, res) => {
      const f = files[new URL(req.url, "http://x").pathname]
      if (!f) return res.writeHead(404).end()
      res.writeHead(200, { "content-type": f[1] }).end(fs.readFileSync(f[0]))
    })
    statics.on("error", reject)
    statics.listen(0, "127.0.0.1", () => resolve(statics.address().port))
  })
}

async function main() {
  for (const f of [path.join(bin || "", "ra-hello"), chromiumPath, ...Object.values(files).map((x) => x[0])])
    if (!fs.existsSync(f)) throw new Error("missing: " + f)
  const port = await startServer()
  const sport = await startStatics()
  const { chromium } = require(path.join(nm, "playwright-core"))
  browser = await chromium.launch({
    executablePath: chromiumPath, headless: true, chromiumSandbox: false, timeout: 20000,
    args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
      "--disable-background-networking", "--disable-component-update", "--disable-sync"],
  })
  const pages = []
  const errors = []
  for (let i = 0; i < 2; i++) {
    const ctx = await browser.newContext()
    const p = await ctx.newPage()
    p.on("pageerror", (e) => errors.push(String(e)))
    await p.goto(`http://127.0.0.1:${sport}/relay.html`, { timeout: 10000 })
    pages.push(p)
  }
  const url = `ws://127.0.0.1:${port}/relay`
  const [ka, kb] = await Promise.all(pages.map((p) => p.evaluate((u) => window.relayOpen(u), url)))
  assert.match(ka, /^[A-Za-z0-9_-]{43}$/)
  assert.notEqual(ka, kb)
  const secret = "browser secret " + Date.now()
  await pages[0].evaluate(([to, t]) => window.relaySend(to, t), [kb, secret + " a->b"])
  await pages[1].evaluate(([to, t]) => window.relaySend(to, t), [ka, secret + " b->a"])
  const wait = (p) => p.waitForFunction(() => window.inbox.length >= 1, null, { timeout: 10000 })
  await Promise.all(pages.map(wait))
  const ia = await pages[0].evaluate(() => window.inbox)
  const ib = await pages[1].evaluate(() => window.inbox)
  assert.deepEqual(ib, [{ from: ka, text: secret + " a->b" }])
  assert.deepEqual(ia, [{ from: kb, text: secret + " b->a" }])
  assert.deepEqual(errors, [])
  await browser.close()
  browser = null
  statics.close()
  server.removeAllListeners("exit")
  const exited = new Promise((r) => server.once("exit", (c) => r(c)))
  server.kill("SIGTERM")
  assert.equal(await exited, 0)
  assert.ok(!serverErr.includes("browser secret"), "plaintext in the server's log")
  assert.doesNotMatch(serverErr, /ERROR: (Address|Leak|Undefined)Sanitizer|runtime error:/)
  console.log("ok   two browser pages exchanged a message each way through /relay")
}

main().then(() => process.exit(0), async (e) => {
  console.log("FAIL " + ((e && e.stack) || e))
  if (browser) await browser.close().catch(() => {})
  process.exit(1)
})
