#!/usr/bin/env node
// browser/tunnel: the attested tunnel from a real browser. Starts ra-hello
// (simulated TEE) and a tiny static server on 127.0.0.1 (port 0 each), opens
// the page (page/index.html) in headless Chromium driven by playwright-core;
// the page, on another origin than ra-hello, runs a browser tunnel client
// written from PROTOCOL.md (page/ra_tunnel.js) and plain WebSockets, and
// reports into window.__results. This script asserts every result, checks
// /private in plaintext by a browser navigation (403), writes its verdicts
// into the page and a screenshot next to the build (argv[2]), and stops
// everything on every path. Fails (never skips) when anything is missing.
//
//   RA_BIN=<build>/bin RA_SRC=<repo> node tunnel.js [SCREENSHOT.png]
// Env: RA_CHROMIUM (default /usr/bin/chromium).
"use strict"
const assert = require("assert")
const { spawn } = require("child_process")
const fs = require("fs")
const http = require("http")
const os = require("os")
const path = require("path")

const LIMIT_MS = 50000 // whole test; ctest's TIMEOUT is the outer bound
const t0 = Date.now()
const since = () => ((Date.now() - t0) / 1000).toFixed(2) + " s"
const log = (...a) => console.log(`[${since()}]`, ...a)

const src = process.env.RA_SRC || path.join(__dirname, "..", "..")
const bin = process.env.RA_BIN
const nm = path.join(src, "tests", "node_modules")
const chromiumPath = process.env.RA_CHROMIUM || "/usr/bin/chromium"
const shotPath = process.argv[2] || path.join(process.cwd(), "browser_tunnel.png")

// ---- everything the test starts, stopped on every path --------------------
let server = null // ra-hello child
let serverErr = ""
let statics = null // http.Server
let browser = null
let tmp = null

function killServerNow() {
  if (server && server.exitCode === null && server.signalCode === null) {
    try { server.kill("SIGKILL") } catch (_) {}
  }
}
function removeTmp() {
  if (tmp) {
    try { fs.rmSync(tmp, { recursive: true, force: true }) } catch (_) {}
    tmp = null
  }
}
// Last resort (also on a thrown error or process.exit): playwright-core kills
// the browser's process group from its own exit handler.
process.on("exit", () => {
  killServerNow()
  removeTmp()
})
for (const sig of ["SIGINT", "SIGTERM", "SIGHUP"]) {
  process.on(sig, () => {
    console.error(`browser/tunnel: ${sig}, stopping`)
    process.exit(1)
  })
}
const watchdog = setTimeout(() => {
  console.error(`browser/tunnel: FAIL: not finished after ${LIMIT_MS / 1000} s`)
  stopAll().finally(() => process.exit(1))
  setTimeout(() => process.exit(1), 5000).unref()
}, LIMIT_MS)
watchdog.unref()

async function stopAll() {
  if (browser) {
    const b = browser
    browser = null
    await Promise.race([b.close().catch(() => {}), new Promise((r) => setTimeout(r, 5000))])
  }
  if (statics) {
    statics.closeAllConnections()
    statics.close()
    statics = null
  }
  // ra-hello: stopServer() on the normal path, SIGKILL from the exit handler
  // otherwise.
}

// ---- prerequisites ---------------------------------------------------------
function need(cond, what) {
  if (!cond) throw new Error("missing: " + what)
}

// Files the static server may serve: the page and the browser builds (UMD) of
// cbor-x and libsodium-wrappers from tests/node_modules. Nothing else.
const files = {
  "/index.html": [path.join(__dirname, "page", "index.html"), "text/html; charset=utf-8"],
  "/ra_tunnel.js": [path.join(__dirname, "page", "ra_tunnel.js"), "text/javascript; charset=utf-8"],
  "/checks.js": [path.join(__dirname, "page", "checks.js"), "text/javascript; charset=utf-8"],
  "/lib/cbor-x.js": [path.join(nm, "cbor-x", "dist", "index.js"), "text/javascript; charset=utf-8"],
  "/lib/libsodium.js": [path.join(nm, "libsodium", "dist", "modules", "libsodium.js"), "text/javascript; charset=utf-8"],
  "/lib/libsodium-wrappers.js": [path.join(nm, "libsodium-wrappers", "dist", "modules", "libsodium-wrappers.js"), "text/javascript; charset=utf-8"],
}

function checkPrerequisites() {
  need(bin, "RA_BIN (the build's bin folder)")
  need(fs.existsSync(path.join(bin, "ra-hello")), path.join(bin, "ra-hello") + " (build it)")
  need(fs.existsSync(chromiumPath), chromiumPath + " (Debian package chromium: scripts/deps.sh)")
  need(fs.existsSync(path.join(nm, "playwright-core")), "tests/node_modules/playwright-core (cd tests && npm ci)")
  for (const [, [f]] of Object.entries(files)) need(fs.existsSync(f), f + " (run scripts/deps.sh)")
}

// ---- ra-hello --------------------------------------------------------------
function startServer() {
  return new Promise((resolve, reject) => {
    server = spawn(path.join(bin, "ra-hello"),
      ["--listen", "127.0.0.1:0", "--tee", "sim", "--sim-dir", path.join(tmp, "sim"), "--quiet"],
      { stdio: ["ignore", "pipe", "pipe"] })
    let out = ""
    const timer = setTimeout(() => reject(new Error("ra-hello did not print its port within 10 s\n" + serverErr)), 10000)
    server.stderr.on("data", (d) => { serverErr += d })
    server.stdout.on("data", (d) => {
      out += d
      const m = /^listening on http:\/\/127\.0\.0\.1:(\d+)$/m.exec(out)
      if (m) {
        clearTimeout(timer)
        resolve(Number(m[1]))
      }
    })
    server.on("exit", (code, sig) => {
      clearTimeout(timer)
      reject(new Error(`ra-hello exited early (${code ?? sig})\n${serverErr}`))
    })
    server.on("error", (e) => {
      clearTimeout(timer)
      reject(e)
    })
  })
}

// SIGTERM, then a clean exit (0) and no sanitizer report.
function stopServer() {
  return new Promise((resolve) => {
    if (!server || server.exitCode !== null || server.signalCode !== null) {
      return resolve(server ? { code: server.exitCode, signal: server.signalCode } : null)
    }
    const timer = setTimeout(killServerNow, 5000)
    server.once("exit", (code, signal) => {
      clearTimeout(timer)
      resolve({ code, signal })
    })
    server.kill("SIGTERM")
  })
}

// ---- static server ---------------------------------------------------------
function startStatics() {
  return new Promise((resolve, reject) => {
    statics = http.createServer((req, res) => {
      const p = new URL(req.url, "http://x").pathname
      if (p === "/favicon.ico") return res.writeHead(204).end() // keeps the console clean
      const f = files[p === "/" ? "/index.html" : p]
      if (req.method !== "GET" || !f) {
        res.writeHead(404, { "content-type": "text/plain" }).end("not found\n")
        return
      }
      fs.readFile(f[0], (err, data) => {
        if (err) return res.writeHead(500).end(String(err))
        res.writeHead(200, { "content-type": f[1], "cache-control": "no-store" }).end(data)
      })
    })
    statics.on("error", reject)
    statics.listen(0, "127.0.0.1", () => resolve(statics.address().port))
  })
}

// ---- the assertions ----------------------------------------------------------
const hexOf = (s) => Buffer.from(s).toString("hex")

// One entry per step the page must report; each throws on a wrong value.
const expectations = {
  page(v) {
    assert.equal(v.secureContext, true, "127.0.0.1 pages are secure contexts (WebCrypto)")
    assert.equal(v.subtleCrypto, true)
    assert.equal(v.cborx, true)
    assert.match(v.libsodium, /^\d+\.\d+/)
  },
  handshake(v) {
    assert.equal(v.quoteVersion, 4)
    assert.equal(v.teeType, 0x81)
    assert.equal(v.keyBytes, 32)
    assert.ok(v.valBytes > 0 && v.iatBytes > 0, "verifier_data val and iat are present")
    assert.equal(v.reportData.length, 128)
    assert.equal(v.sha512, v.reportData, "report_data == SHA-512(val || iat || x25519PublicKey)")
    assert.equal(v.bound, true)
    assert.equal(v.tamperedKeyBound, false, "a different key must not match report_data")
    assert.equal(v.sealedBytes, 80, "crypto_box_seal of a 32-byte key is 80 bytes")
    // The bytes cbor-x writes for client_kx in a browser, as the reference
    // client does there: {_1 "type":"client_kx","sealedSymmetricKey":h'<80>'}.
    // Without Node's Buffer, cbor-x does not tag a Uint8Array (tag 64 is
    // Node-only: getTag in cbor-x/encode.js), so browsers send plain byte
    // strings where Node sends 64(h'…'); the server must take both.
    const head = "b90002" + "64" + hexOf("type") + "69" + hexOf("client_kx") +
      "72" + hexOf("sealedSymmetricKey") + "5850"
    assert.ok(v.clientKxHex.startsWith(head), "client_kx bytes: " + v.clientKxHex.slice(0, 80))
    assert.equal(v.clientKxHex.length, head.length + 160)
  },
  "tunnel GET /hello"(v) {
    assert.equal(v.status, 200)
    assert.equal(v.statusText, "OK")
    assert.equal(v.body, "world")
    assert.match(String(v.contentType), /^text\/plain/)
  },
  "tunnel POST /echo"(v) {
    assert.equal(v.status, 200)
    assert.equal(v.contentType, "application/json")
    assert.deepEqual(v.received, v.sent)
    assert.equal(v.same, true)
  },
  "tunnel GET /private"(v) {
    assert.equal(v.status, 200, "attested-only route through the tunnel")
    assert.equal(v.body, "secret")
  },
  "tunnel WS /echo"(v) {
    assert.equal(v.firstEvent, "open")
    assert.equal(v.textType, "string")
    assert.equal(v.textEqual, true, "text echo: " + v.text)
    assert.equal(v.binaryType, "arraybuffer")
    assert.equal(v.binaryBytes, 70000)
    assert.equal(v.binaryEqual, true)
    assert.equal(v.echoAfterClose, null, "no echo after ws_close")
    assert.equal(v.tunnelAliveAfterClose, true)
    assert.deepEqual(v.unexpected, [])
  },
  "tunnel health"(v) {
    assert.equal(v.decryptErrors, 0)
    assert.equal(v.dropped, 0)
    assert.equal(v.pending, 0)
    assert.equal(v.controlOpen, true)
  },
  "plain WS /echo"(v) {
    assert.equal(v.messages, 2)
    assert.equal(v.textType, "string")
    assert.equal(v.textEqual, true, "text echo: " + v.text)
    assert.equal(v.binaryType, "arraybuffer")
    assert.equal(v.binaryBytes, 65536)
    assert.equal(v.binaryEqual, true)
    assert.equal(v.closeCode, 1000)
    assert.equal(v.closeReason, "bye")
    assert.equal(v.wasClean, true)
  },
  "plain GET /private"(v) {
    assert.equal(v.status, 403, "attested-only route in plaintext")
    assert.ok(!/secret/.test(v.body), "no secret in the 403 body")
  },
  "plain GET /hello"(v) {
    assert.equal(v.status, 200)
    assert.equal(v.body, "world")
  },
}

// ---- main --------------------------------------------------------------------
async function main() {
  checkPrerequisites()
  const { chromium } = require(path.join(nm, "playwright-core"))
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), "ra-browser-"))

  const [port, staticPort] = await Promise.all([startServer(), startStatics()])
  log(`ra-hello on 127.0.0.1:${port}, page server on 127.0.0.1:${staticPort}`)

  // playwright-core makes a fresh, empty --user-data-dir itself (and removes
  // it) and adds --headless / --no-sandbox; the rest keeps Chromium off the
  // network (this machine's network is closed).
  browser = await chromium.launch({
    executablePath: chromiumPath,
    headless: true,
    chromiumSandbox: false,
    timeout: 20000,
    args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
      "--disable-background-networking", "--disable-component-update", "--disable-sync"],
  })
  log(`chromium ${browser.version()} started`)
  const context = await browser.newContext({ viewport: { width: 1100, height: 900 } })
  const page = await context.newPage()
  const pageErrors = []
  const consoleLines = []
  page.on("pageerror", (e) => pageErrors.push(String(e)))
  page.on("console", (m) => consoleLines.push(`${m.type()}: ${m.text()}`))

  const failures = []
  let results = null
  try {
    await page.goto(`http://127.0.0.1:${staticPort}/index.html?port=${port}`, { timeout: 10000 })
    await page.waitForFunction(() => window.__results && window.__results.done, null, { timeout: 25000 })
    results = await page.evaluate(() => window.__results)
    log("page done")

    // /private and /hello in plaintext, fetched by the browser itself: a
    // top-level navigation is not subject to CORS (ra-hello sends no CORS
    // headers, so the cross-origin page could not read these responses).
    const plain = await context.newPage()
    for (const p of ["/private", "/hello"]) {
      const r = await plain.goto(`http://127.0.0.1:${port}${p}`, { timeout: 10000 })
      const v = { status: r.status(), contentType: r.headers()["content-type"], body: await r.text() }
      await page.evaluate(([n, val]) => {
        window.__results.steps[n] = val
        window.__results.order.push(n)
        const tr = document.createElement("tr")
        tr.id = "row-" + n
        tr.innerHTML = `<td></td><td class="value"></td><td class="verdict">…</td>`
        tr.cells[0].textContent = n
        tr.cells[1].textContent = JSON.stringify(val, null, 1).replace(/\n\s*/g, " ")
        document.getElementById("rows").appendChild(tr)
      }, [`plain GET ${p}`, v])
      results.steps[`plain GET ${p}`] = v
    }
    await plain.close()
  } catch (e) {
    failures.push("driver: " + e.message)
    // what the page got to, for the report below
    if (!results) results = await page.evaluate(() => window.__results).catch(() => null)
  }

  // Every expected step must be there and right.
  const steps = (results && results.steps) || {}
  const verdicts = {}
  for (const [name, check] of Object.entries(expectations)) {
    const v = steps[name]
    try {
      if (v === undefined) throw new Error("the page did not report it")
      if (v && v.error) throw new Error("page error: " + v.error)
      check(v)
      verdicts[name] = "PASS"
      log(`ok   ${name}`)
    } catch (e) {
      verdicts[name] = "FAIL"
      failures.push(`${name}: ${e.message}\n     saw: ${JSON.stringify(v)}`)
      log(`FAIL ${name}`)
    }
  }
  if (results && results.error) failures.push("page: " + results.error)
  if (pageErrors.length) failures.push("uncaught errors in the page: " + pageErrors.join("; "))

  // Verdicts into the page, then the screenshot (on failure too).
  try {
    await page.evaluate(([vs, ok]) => {
      for (const [n, v] of Object.entries(vs)) {
        const tr = document.getElementById("row-" + n)
        if (!tr) continue
        tr.cells[2].textContent = v
        tr.cells[2].className = v === "PASS" ? "pass" : "fail"
      }
      document.getElementById("status").textContent = ok ? "all checks passed" : "FAILED (see the test log)"
    }, [verdicts, failures.length === 0])
    await page.screenshot({ path: shotPath, fullPage: true, timeout: 10000 })
    log("screenshot: " + shotPath)
  } catch (e) {
    failures.push("screenshot: " + e.message)
  }

  await stopAll()
  const exit = await stopServer()
  if (!exit || exit.code !== 0) failures.push(`ra-hello did not exit cleanly on SIGTERM: ${JSON.stringify(exit)}`)
  if (/ERROR: (Address|Leak|Undefined)Sanitizer|runtime error:/.test(serverErr)) {
    failures.push("ra-hello reported a memory error:\n" + serverErr)
  }

  if (failures.length) {
    if (consoleLines.length) console.error("page console:\n  " + consoleLines.join("\n  "))
    throw new Error(failures.join("\n"))
  }
  log(`PASS (${Object.keys(expectations).length} checks)`)
}

main().then(
  () => {
    clearTimeout(watchdog)
    process.exit(0)
  },
  async (e) => {
    console.error("browser/tunnel: FAIL:\n" + e.message)
    await stopAll().catch(() => {})
    process.exit(1)
  },
)
