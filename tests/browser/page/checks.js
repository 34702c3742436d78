// The browser side of tests/browser/tunnel.js: talks to ra-hello (origin
// from ?port=) through the attested tunnel and with plain WebSockets, and
// records what it saw in window.__results.steps (one entry per check). The
// Node.js test asserts the values and writes its verdicts into the table.
"use strict"
;(function () {
  const port = Number(new URLSearchParams(location.search).get("port"))
  const origin = `http://127.0.0.1:${port}`
  const { hex, sameBytes } = window.RATunnelUtil
  const results = (window.__results = { done: false, origin, steps: {}, order: [], error: null })

  function show(v) {
    return JSON.stringify(v, (k, x) => (x instanceof Uint8Array ? "bytes(" + x.length + ")" : x), 1)
      .replace(/\n\s*/g, " ")
  }

  function row(name) {
    let tr = document.getElementById("row-" + name)
    if (!tr) {
      tr = document.createElement("tr")
      tr.id = "row-" + name
      tr.innerHTML = `<td></td><td class="value"></td><td class="verdict">…</td>`
      tr.cells[0].textContent = name
      document.getElementById("rows").appendChild(tr)
    }
    return tr
  }

  function record(name, value) {
    if (!(name in results.steps)) results.order.push(name)
    results.steps[name] = value
    row(name).cells[1].textContent = show(value)
  }

  // Runs one check; an exception becomes {error} so later checks still run.
  async function step(name, fn) {
    try {
      record(name, await fn())
    } catch (e) {
      record(name, { error: String((e && e.message) || e) })
    }
  }

  function timeout(ms, what) {
    return new Promise((_, reject) => setTimeout(() => reject(new Error("timeout: " + what)), ms))
  }
  const within = (p, ms, what) => Promise.race([p, timeout(ms, what)])

  function pattern(n) {
    const b = new Uint8Array(n)
    for (let i = 0; i < n; i++) b[i] = (i * 31 + (i >> 8)) & 0xff
    return b
  }

  // A plain browser WebSocket (no tunnel) to ra-hello's WS /echo.
  function plainEcho() {
    return new Promise((resolve, reject) => {
      const ws = new WebSocket(`ws://127.0.0.1:${port}/echo`)
      ws.binaryType = "arraybuffer"
      const big = pattern(64 * 1024)
      const text = "héllo ✓ 🚀 plain"
      const out = { url: ws.url }
      const got = []
      ws.onopen = () => {
        ws.send(text)
        ws.send(big)
      }
      ws.onerror = () => reject(new Error("plain WebSocket error"))
      ws.onmessage = (ev) => {
        got.push(ev.data)
        if (got.length === 2) {
          out.textType = typeof got[0]
          out.textEqual = got[0] === text
          out.text = got[0]
          out.binaryType = got[1] instanceof ArrayBuffer ? "arraybuffer" : typeof got[1]
          out.binaryBytes = got[1].byteLength
          out.binaryEqual = got[1] instanceof ArrayBuffer && sameBytes(new Uint8Array(got[1]), big)
          ws.close(1000, "bye")
        }
      }
      ws.onclose = (ev) => {
        out.messages = got.length
        out.closeCode = ev.code
        out.closeReason = ev.reason
        out.wasClean = ev.wasClean
        resolve(out)
      }
    })
  }

  async function main() {
    document.getElementById("meta").textContent =
      `page ${location.origin} → ra-hello ${origin} (cross-origin) · ${(navigator.userAgent.match(/(HeadlessChrome|Chrome)\/[\d.]+/) || [navigator.userAgent])[0]}`
    await sodium.ready
    record("page", {
      secureContext: window.isSecureContext, subtleCrypto: !!(crypto.subtle && crypto.subtle.digest),
      cborx: typeof CBOR.encode === "function", libsodium: sodium.sodium_version_string(),
      origin: location.origin, server: origin,
    })

    let tunnel
    await step("handshake", async () => {
      let kx = null
      tunnel = await within(RATunnel.connect(origin, { onKx: (i) => (kx = i) }), 10000, "handshake")
      return kx
    })
    if (!tunnel) return

    // Three requests in flight at once on the one tunnel.
    const json = { a: 1, s: "héllo ✓ 🚀", n: [1, 2.5, null, true], o: { k: "v" } }
    const [hello, echo, priv] = await Promise.allSettled([
      tunnel.fetch("/hello"),
      tunnel.fetch("/echo", { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(json) }),
      tunnel.fetch("/private"),
    ])
    const unwrap = (s) => { if (s.status === "rejected") throw s.reason; return s.value }
    await step("tunnel GET /hello", async () => {
      const r = unwrap(hello)
      return { status: r.status, statusText: r.statusText, contentType: r.headers["content-type"], body: r.text() }
    })
    await step("tunnel POST /echo", async () => {
      const r = unwrap(echo)
      let parsed = null
      try { parsed = JSON.parse(r.text()) } catch (e) {}
      return {
        status: r.status, contentType: r.headers["content-type"], sent: json, received: parsed,
        same: JSON.stringify(parsed) === JSON.stringify(json),
      }
    })
    await step("tunnel GET /private", async () => {
      const r = unwrap(priv)
      return { status: r.status, body: r.text() }
    })

    await step("tunnel WS /echo", async () => {
      const s = tunnel.websocket(`ws://127.0.0.1:${port}/echo`)
      const out = {}
      const first = await s.next(() => true)
      out.firstEvent = first.eventType
      if (first.eventType !== "open") return out
      const text = "héllo ✓ 🚀 tunnel"
      s.send(text)
      const t = await s.next((x) => x.kind === "message")
      out.text = t.data
      out.textType = t.dataType
      out.textEqual = t.data === text
      const bin = pattern(70000) // > 65535: a 4-byte CBOR length inside the envelope
      s.send(bin.buffer)
      const b = await s.next((x) => x.kind === "message")
      out.binaryType = b.dataType
      out.binaryBytes = b.data.length
      out.binaryEqual = b.dataType === "arraybuffer" && sameBytes(b.data, bin)
      s.close(1000, "done")
      // Closed on the server: a later message is not echoed, and the tunnel
      // itself lives on.
      s.send("after close")
      const after = await s.next((x) => x.kind === "message", 300).then((m) => m.data, () => null)
      out.echoAfterClose = after
      const again = await tunnel.fetch("/hello")
      out.tunnelAliveAfterClose = again.status === 200 && again.text() === "world"
      out.unexpected = s.queue.filter((x) => x.kind !== "event" || x.eventType !== "close")
      return out
    })

    await step("tunnel health", async () => ({
      decryptErrors: tunnel.decryptErrors, dropped: tunnel.dropped, pending: tunnel.pending.size,
      controlOpen: tunnel.ws.readyState === WebSocket.OPEN,
    }))
    tunnel.close()

    await step("plain WS /echo", () => within(plainEcho(), 10000, "plain WebSocket"))
  }

  main()
    .catch((e) => { results.error = String((e && e.stack) || e) })
    .finally(() => {
      results.done = true
      document.getElementById("status").textContent = results.error ? "page error: " + results.error : "page done; verdicts by the Node.js test"
    })
})()
