// A browser RA-HTTPS / RA-WSS tunnel client, written from
// docs/PROTOCOL.md only. It runs in the page as a classic script and
// uses the browser builds of cbor-x (window.CBOR, the reference's own CBOR
// encoder) and libsodium-wrappers (window.sodium), plus WebCrypto for the
// key-binding hash. It checks the binding of the server's X25519 key into the
// quote (TDX: report_data == SHA-512(val || iat || key)); it does not verify
// the quote's signature chain (the browser test uses the simulated TEE; our
// C verifier and ra-curl are tested for that elsewhere).
"use strict"
;(function (global) {
  const { encode, decode } = global.CBOR
  const sodium = global.sodium
  const utf8 = new TextEncoder()

  function hex(b) {
    return Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("")
  }

  // A byte-string field, tagged (64) or not: cbor-x gives a Uint8Array.
  function bytes(v, what) {
    if (v instanceof Uint8Array) return v
    if (v instanceof ArrayBuffer) return new Uint8Array(v)
    throw new Error(what + ": not a byte string")
  }

  function concat(...parts) {
    const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0))
    let o = 0
    for (const p of parts) {
      out.set(p, o)
      o += p.length
    }
    return out
  }

  function sameBytes(a, b) {
    if (a.length !== b.length) return false
    let d = 0
    for (let i = 0; i < a.length; i++) d |= a[i] ^ b[i]
    return d === 0
  }

  // TDX quote v4: a 48-byte header (version u16 LE = 4, TEE type u32 LE at 4
  // = 0x81), then the TD report body (584 bytes) whose last 64 bytes are
  // report_data.
  function tdxQuote(quote) {
    if (quote.length < 48 + 584) throw new Error("quote too short for TDX: " + quote.length)
    const dv = new DataView(quote.buffer, quote.byteOffset, quote.byteLength)
    const version = dv.getUint16(0, true)
    const teeType = dv.getUint32(4, true)
    if (version !== 4 || teeType !== 0x81) throw new Error(`not a TDX v4 quote (version ${version}, tee ${teeType})`)
    return { version, teeType, reportData: quote.subarray(48 + 520, 48 + 584) }
  }

  // SHA-512(val || iat || x25519PublicKey), the TDX binding of PROTOCOL.md §4.
  async function bindingHash(val, iat, pk) {
    return new Uint8Array(await crypto.subtle.digest("SHA-512", concat(val, iat, pk)))
  }

  let idSeq = 0
  function newId(prefix) {
    const r = new Uint8Array(6)
    crypto.getRandomValues(r)
    return prefix + Date.now().toString(36) + (idSeq++).toString(36) + hex(r)
  }

  class RATunnel {
    constructor(origin) {
      this.origin = origin
      this.key = null
      this.pending = new Map()
      this.sockets = new Map()
      this.decryptErrors = 0
      this.dropped = 0
    }

    // Opens the control channel, verifies the key binding and sends the
    // sealed key. opts.onKx(info) receives what was checked (for reports).
    // Resolves once client_kx is sent; rejects (and sends nothing) when a
    // check fails.
    static connect(origin, opts = {}) {
      const t = new RATunnel(origin)
      return t._open(opts).then(() => t)
    }

    _open(opts) {
      return new Promise((resolve, reject) => {
        let settled = false
        const fail = (e) => {
          if (!settled) {
            settled = true
            reject(e)
          }
          try { this.ws.close() } catch (_) {}
        }
        const ws = new WebSocket(this.origin.replace(/^http/, "ws") + "/__ra__")
        this.ws = ws
        ws.binaryType = "arraybuffer"
        // Messages are handled one after another even though the server_kx
        // check is asynchronous (WebCrypto).
        let chain = Promise.resolve()
        ws.onopen = () => ws.send(encode({ type: "client_kx_ready" }))
        ws.onerror = () => fail(new Error("control channel error"))
        ws.onclose = (ev) => {
          this.closed = { code: ev.code, reason: ev.reason }
          for (const [, p] of this.pending) p.reject(new Error("tunnel disconnected"))
          this.pending.clear()
          for (const [, s] of this.sockets) s._event({ eventType: "close", code: 1006, reason: "tunnel closed" })
          this.sockets.clear()
          fail(new Error("control channel closed before the handshake: " + ev.code))
        }
        ws.onmessage = (ev) => {
          chain = chain.then(() => this._onMessage(ev.data, opts)).then((done) => {
            if (done && !settled) {
              settled = true
              resolve()
            }
          }, fail)
        }
      })
    }

    // Returns true when the handshake has just completed.
    async _onMessage(data, opts) {
      if (typeof data === "string") { this.dropped++; return false } // control messages are binary
      let msg
      try {
        msg = decode(new Uint8Array(data))
      } catch (e) {
        this.dropped++
        return false
      }
      if (!msg || typeof msg !== "object") { this.dropped++; return false }
      if (msg.type === "server_kx") {
        if (this.key) return false
        const pk = bytes(msg.x25519PublicKey, "x25519PublicKey")
        if (pk.length !== 32) throw new Error("x25519PublicKey is not 32 bytes")
        const quote = bytes(msg.quote, "quote")
        const q = tdxQuote(quote)
        const vd = msg.verifier_data
        if (!vd || typeof vd !== "object" || vd instanceof Uint8Array) throw new Error("verifier_data {val, iat} missing")
        const val = bytes(vd.val, "verifier_data.val")
        const iat = bytes(vd.iat, "verifier_data.iat")
        const expect = await bindingHash(val, iat, pk)
        const bound = sameBytes(expect, q.reportData)
        // The same check with one bit of the key flipped must fail, or the
        // check above proves nothing.
        const other = pk.slice()
        other[0] ^= 1
        const tamperedBound = sameBytes(await bindingHash(val, iat, other), q.reportData)
        const info = {
          quoteBytes: quote.length, quoteVersion: q.version, teeType: q.teeType,
          keyBytes: pk.length, valBytes: val.length, iatBytes: iat.length,
          reportData: hex(q.reportData), sha512: hex(expect),
          bound, tamperedKeyBound: tamperedBound,
        }
        if (!bound) {
          if (opts.onKx) opts.onKx(info)
          throw new Error("report_data does not bind the server key")
        }
        this.serverKey = pk
        this.key = sodium.randombytes_buf(32)
        const sealed = sodium.crypto_box_seal(this.key, pk)
        const kx = encode({ type: "client_kx", sealedSymmetricKey: sealed })
        info.sealedBytes = sealed.length
        info.clientKxHex = hex(kx)
        if (opts.onKx) opts.onKx(info)
        this.ws.send(kx)
        return true
      }
      if (msg.type !== "enc" || !this.key) { this.dropped++; return false }
      let inner
      try {
        const pt = sodium.crypto_secretbox_open_easy(bytes(msg.ciphertext, "ciphertext"), bytes(msg.nonce, "nonce"), this.key)
        inner = decode(pt)
      } catch (e) {
        this.decryptErrors++
        return false
      }
      this._dispatch(inner)
      return false
    }

    _dispatch(m) {
      if (!m || typeof m !== "object") return
      if (m.type === "http_response") {
        const p = this.pending.get(m.requestId)
        if (!p) return
        this.pending.delete(m.requestId)
        if (m.error) p.reject(new Error(m.error))
        else p.resolve(m)
      } else if (m.type === "ws_event" || m.type === "ws_message") {
        const s = this.sockets.get(m.connectionId)
        if (!s) return
        if (m.type === "ws_event") s._event(m)
        else s._message(m)
      }
    }

    send(inner) {
      const nonce = sodium.randombytes_buf(24)
      const ciphertext = sodium.crypto_secretbox_easy(encode(inner), nonce, this.key)
      this.ws.send(encode({ type: "enc", nonce, ciphertext }))
    }

    // A fetch through the tunnel. init: method, headers (object), body
    // (string), timeoutMs. Resolves with {status, statusText, headers,
    // body: Uint8Array, bodyWasText, text()}.
    fetch(url, init = {}) {
      const requestId = newId("r")
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => {
          this.pending.delete(requestId)
          reject(new Error("tunnel request timeout: " + url))
        }, init.timeoutMs || 10000)
        this.pending.set(requestId, {
          resolve: (m) => {
            clearTimeout(timer)
            const b = m.body
            const body = b === null || b === undefined ? new Uint8Array(0) : typeof b === "string" ? utf8.encode(b) : bytes(b, "body")
            resolve({
              status: m.status, statusText: m.statusText, headers: m.headers, body,
              bodyWasText: typeof b === "string", text: () => new TextDecoder().decode(body),
            })
          },
          reject: (e) => {
            clearTimeout(timer)
            reject(e)
          },
        })
        // body: undefined for a GET, written as CBOR undefined like the reference.
        this.send({ type: "http_request", requestId, method: init.method || "GET", url, headers: init.headers || {}, body: init.body })
      })
    }

    // A WebSocket through the tunnel, routed by the URL's path.
    websocket(url, protocols) {
      const s = new TunnelSocket(this, newId("ws_"))
      this.sockets.set(s.id, s)
      this.send({ type: "ws_connect", connectionId: s.id, url, protocols })
      return s
    }

    close() {
      this.ws.close(1000)
    }
  }

  // Events and messages are queued; next(pred, ms) waits for the first one
  // that matches.
  class TunnelSocket {
    constructor(tunnel, id) {
      this.tunnel = tunnel
      this.id = id
      this.queue = []
      this.waiters = []
    }
    _event(m) { this._push({ kind: "event", eventType: m.eventType, code: m.code, reason: m.reason, error: m.error }) }
    _message(m) {
      const binary = m.dataType === "arraybuffer"
      this._push({ kind: "message", dataType: m.dataType, data: binary ? bytes(m.data, "data") : m.data })
    }
    _push(x) {
      this.queue.push(x)
      for (const w of this.waiters.slice()) w()
    }
    next(pred, ms = 5000) {
      return new Promise((resolve, reject) => {
        const check = () => {
          const i = this.queue.findIndex(pred)
          if (i < 0) return false
          const [x] = this.queue.splice(i, 1)
          clearTimeout(timer)
          this.waiters = this.waiters.filter((w) => w !== check)
          resolve(x)
          return true
        }
        const timer = setTimeout(() => {
          this.waiters = this.waiters.filter((w) => w !== check)
          reject(new Error("timeout waiting on tunnelled socket " + this.id))
        }, ms)
        if (!check()) this.waiters.push(check)
      })
    }
    send(data) {
      const text = typeof data === "string"
      this.tunnel.send({
        type: "ws_message", connectionId: this.id,
        data: text ? data : new Uint8Array(data), dataType: text ? "string" : "arraybuffer",
      })
    }
    close(code, reason) {
      this.tunnel.send({ type: "ws_close", connectionId: this.id, code, reason })
    }
  }

  global.RATunnel = RATunnel
  global.RATunnelUtil = { hex, sameBytes, concat }
})(window)
