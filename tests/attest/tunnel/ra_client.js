// An independent RA-HTTPS / RA-WSS tunnel client, written from
// docs/PROTOCOL.md only, with the reference's own CBOR library
// (cbor-x), libsodium-wrappers and the `ws` package. Used by the integration
// tests against our C server. It encodes exactly as the reference client
// does: Uint8Array values (tag 64), `undefined` fields (0xf7), maps headed
// 0xb9.
"use strict"
const path = require("path")
const crypto = require("crypto")
const nm = path.join(__dirname, "..", "..", "node_modules")
const WebSocket = require(path.join(nm, "ws"))
const { encode, decode } = require(path.join(nm, "cbor-x"))
const sodium = require(path.join(nm, "libsodium-wrappers"))

const u8 = (b) => new Uint8Array(b.buffer ? b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength) : b)

// TDX v4: 48-byte header, TD report body (584 bytes) whose last 64 bytes are
// report_data.
function tdxReportData(quote) {
  return Buffer.from(quote).subarray(48 + 520, 48 + 584)
}

class RAClient {
  constructor(origin) {
    this.origin = origin
    this.pending = new Map()
    this.sockets = new Map()
    this.seq = 0
    this.received = [] // every decrypted inner message (tests inspect it)
    this.rawReceived = [] // every outer message
  }

  // Opens the control channel, checks the server_kx binding (unless
  // opts.checkBinding === false), sends client_kx. opts.hello: send
  // client_kx_ready first (the reference client does).
  static async connect(origin, opts = {}) {
    await sodium.ready
    const c = new RAClient(origin)
    await c._open(opts)
    return c
  }

  _open(opts) {
    return new Promise((resolve, reject) => {
      const url = this.origin.replace(/^http/, "ws") + "/__ra__" + (opts.query || "")
      const ws = new WebSocket(url)
      this.ws = ws
      ws.binaryType = "nodebuffer"
      ws.on("open", () => {
        if (opts.hello !== false) ws.send(encode({ type: "client_kx_ready" }))
      })
      ws.on("error", (e) => reject(e))
      ws.on("close", (code, reason) => {
        this.closed = { code, reason: reason.toString() }
        for (const [, p] of this.pending) p.reject(new Error("Tunnel disconnected"))
        this.pending.clear()
        for (const [, s] of this.sockets) s._event({ eventType: "close", code: 1006, reason: "tunnel closed" })
        this.sockets.clear()
        if (this.onclose) this.onclose(code, reason.toString())
        reject(new Error("closed before the handshake: " + code))
      })
      ws.on("message", (data) => {
        let msg
        try {
          msg = decode(data)
        } catch (e) {
          this.decodeErrors = (this.decodeErrors || 0) + 1
          return
        }
        this.rawReceived.push(msg)
        if (msg.type === "server_kx") {
          try {
            this.serverKx = msg
            if (opts.onServerKx) opts.onServerKx(msg)
            const pk = msg.x25519PublicKey
            if (!(pk instanceof Uint8Array) || pk.length !== 32) throw new Error("bad x25519PublicKey")
            if (!msg.quote || msg.quote.length === 0) throw new Error("empty quote")
            if (opts.checkBinding !== false) {
              const vd = msg.verifier_data
              if (!vd || !vd.val || !vd.iat) throw new Error("missing verifier_data")
              const h = crypto.createHash("sha512").update(vd.val).update(vd.iat).update(pk).digest()
              if (!h.equals(tdxReportData(msg.quote))) throw new Error("report_data does not bind the key")
            }
            this.key = sodium.randombytes_buf(32)
            const sealed = sodium.crypto_box_seal(this.key, u8(pk))
            if (opts.beforeClientKx) opts.beforeClientKx(this)
            // opts.clientKxExtra: more fields (raloop's clientAttestation, PROTOCOL.md §10)
            const kx = Object.assign({ type: "client_kx", sealedSymmetricKey: sealed }, opts.clientKxExtra || {})
            // opts.bodyStreams {window, chunk}: opt in to streamed bodies
            // (PROTOCOL.md §11) when the server announced them
            if (opts.bodyStreams && msg.bodyStreams) {
              kx.bodyStreams = opts.bodyStreams
              this.bs = { server: msg.bodyStreams, mine: opts.bodyStreams }
            }
            ws.send(encode(kx))
            resolve()
          } catch (e) {
            reject(e)
            ws.close()
          }
          return
        }
        if (msg.type === "enc" && this.key) {
          let inner
          try {
            const pt = sodium.crypto_secretbox_open_easy(u8(msg.ciphertext), u8(msg.nonce), this.key)
            inner = decode(pt)
          } catch (e) {
            this.decryptErrors = (this.decryptErrors || 0) + 1
            return
          }
          this.received.push(inner)
          this._dispatch(inner)
        }
      })
    })
  }

  // The envelope bytes for an inner message (tests replay or alter them).
  seal(inner) {
    const nonce = sodium.randombytes_buf(24)
    const ct = sodium.crypto_secretbox_easy(encode(inner), nonce, this.key)
    return encode({ type: "enc", nonce, ciphertext: ct })
  }
  sendInner(inner) {
    const bytes = this.seal(inner)
    this.ws.send(bytes)
    return bytes
  }
  sendRaw(bytes) {
    this.ws.send(bytes)
  }

  _dispatch(m) {
    if (m.type === "http_body" || m.type === "http_credit" || m.type === "http_cancel") {
      const st = this.streams && this.streams.get(m.requestId)
      if (st) st.on(m)
      return
    }
    if (m.type === "http_response") {
      const st = this.streams && this.streams.get(m.requestId)
      if (st && st.onResponse && st.onResponse(m)) return // a streamed body follows
      const p = this.pending.get(m.requestId)
      if (!p) return
      this.pending.delete(m.requestId)
      clearTimeout(p.timer)
      if (m.error) p.reject(new Error(m.error))
      else p.resolve(m)
    } else if (m.type === "ws_event" || m.type === "ws_message") {
      const s = this.sockets.get(m.connectionId)
      if (!s) return
      if (m.type === "ws_event") s._event(m)
      else s._message(m)
    }
  }

  // Resolves with the http_response message, plus .text and .bytes views.
  fetch(url, init = {}) {
    const requestId = Date.now().toString() + "r" + this.seq++
    let headers = init.headers || {}
    const req = {
      type: "http_request",
      requestId,
      method: init.method || "GET",
      url,
      headers,
      body: init.body,
    }
    if (init.timeout !== undefined) req.timeout = init.timeout
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(requestId)
        reject(new Error("Request timeout"))
      }, init.timeoutMs || 30000)
      this.pending.set(requestId, {
        resolve: (m) => {
          const body = m.body
          m.bytes = body === null || body === undefined ? Buffer.alloc(0)
            : typeof body === "string" ? Buffer.from(body) : Buffer.from(body)
          m.text = m.bytes.toString()
          resolve(m)
        },
        reject,
        timer,
      })
      this.sendInner(req)
    })
  }

  // Streamed bodies (PROTOCOL.md §11), after connect({bodyStreams}). Sends
  // http_request {bodyStream: true} unless init.whole, then init.body (a
  // Buffer) in http_body pieces of init.chunk bytes (default the server's
  // chunk) within the credit; init.hold: stop sending until st.release().
  // A streamed response body is collected, credit granted per chunk taken
  // unless init.noGrant (st.grant(n) grants by hand). Returns st: st.done
  // resolves with the http_response (.bytes: the whole body); st.log lists
  // what the server sent for this request; st.sent is what was sent.
  stream(url, init = {}) {
    if (!this.streams) this.streams = new Map()
    const requestId = init.requestId || "s" + Date.now() + "_" + this.seq++
    const bs = this.bs || { server: { window: 0, chunk: 0 }, mine: { window: 0, chunk: 0 } }
    const body = init.body || Buffer.alloc(0)
    const chunk = init.chunk || bs.server.chunk
    const st = {
      requestId, sent: 0, credit: bs.server.window, log: [], pieces: [], received: 0,
      outCredit: bs.mine.window, hold: !!init.hold, cancelled: null, ended: false,
    }
    let resolve, reject
    st.done = new Promise((res, rej) => { resolve = res; reject = rej })
    st.done.catch(() => {})
    const timer = setTimeout(() => reject(new Error("stream timeout " + requestId)), init.timeoutMs || 30000)
    const finish = (m) => { clearTimeout(timer); this.streams.delete(requestId); resolve(m) }
    let resp = null
    const pump = () => {
      while (!st.hold && !st.cancelled && st.sent < body.length && st.credit > 0) {
        const n = Math.min(chunk, st.credit, body.length - st.sent)
        const last = st.sent + n === body.length
        this.sendInner({ type: "http_body", requestId, end: last, data: new Uint8Array(body.subarray(st.sent, st.sent + n)) })
        st.sent += n
        st.credit -= n
        if (last) st.ended = true
      }
      if (!st.hold && !st.cancelled && !st.ended && body.length === 0) {
        this.sendInner({ type: "http_body", requestId, end: true, data: new Uint8Array(0) })
        st.ended = true
      }
    }
    st.release = () => { st.hold = false; pump() }
    st.grant = (n) => { this.sendInner({ type: "http_credit", requestId, bytes: n }); st.outCredit += n }
    st.cancel = (reason) => { this.sendInner({ type: "http_cancel", requestId, reason }) }
    st.pump = pump
    let unacked = 0
    st.on = (m) => {
      st.log.push(m)
      if (m.type === "http_credit") { st.credit += m.bytes; pump() }
      else if (m.type === "http_cancel") {
        st.cancelled = m.reason || "cancelled"
        if (resp && !resp.complete) { clearTimeout(timer); this.streams.delete(requestId); reject(new Error("cancelled: " + st.cancelled)) }
        else if (resp && resp.complete) finish(resp)
      } else if (m.type === "http_body") {
        if (!resp || !resp.bodyStream) { st.protocolErrors = (st.protocolErrors || 0) + 1; return }
        const d = Buffer.from(m.data)
        st.pieces.push(d.length)
        st.received += d.length
        st.outCredit -= d.length
        if (st.outCredit < 0) st.overCredit = true
        resp.parts.push(d)
        unacked += d.length
        if (!init.noGrant && unacked >= bs.mine.chunk && !m.end) { st.grant(unacked); unacked = 0 }
        if (m.end) {
          resp.complete = true
          resp.bytes = Buffer.concat(resp.parts)
          resp.text = resp.bytes.toString()
          finish(resp)
        }
      }
    }
    st.onResponse = (m) => {
      st.log.push(m)
      resp = m
      if (m.bodyStream) { m.parts = []; return true }
      m.bytes = m.body === null || m.body === undefined ? Buffer.alloc(0) : Buffer.from(m.body)
      m.text = m.bytes.toString()
      m.complete = true
      if (m.error) { clearTimeout(timer); this.streams.delete(requestId); reject(new Error(m.error)); return true }
      // the answer came; a cancel for the body may follow, keep listening a moment
      finish(m)
      this.streams.set(requestId, st)
      setTimeout(() => { if (this.streams.get(requestId) === st) this.streams.delete(requestId) }, 2000)
      return true
    }
    this.streams.set(requestId, st)
    const req = { type: "http_request", requestId, method: init.method || "PUT", url, headers: init.headers || {} }
    if (init.whole) req.body = new Uint8Array(body)
    else req.bodyStream = true
    this.sendInner(req)
    if (!init.whole) pump()
    return st
  }

  websocket(url, protocols) {
    const id = "ws_" + Date.now() + "_" + this.seq++
    const s = new TunnelSocket(this, id)
    this.sockets.set(id, s)
    this.sendInner({ type: "ws_connect", connectionId: id, url, protocols })
    return s
  }

  close() {
    if (this.ws) this.ws.close()
  }
}

class TunnelSocket {
  constructor(client, id) {
    this.client = client
    this.id = id
    this.events = []
    this.messages = []
    this.waiters = []
  }
  _event(m) {
    this.events.push(m)
    this._wake()
  }
  _message(m) {
    this.messages.push(m)
    this._wake()
  }
  _wake() {
    const w = this.waiters
    this.waiters = []
    for (const f of w) f()
  }
  // Waits until pred() is truthy (checked on every event), or rejects.
  until(pred, ms = 5000) {
    return new Promise((resolve, reject) => {
      const check = () => {
        const v = pred(this)
        if (v) { clearTimeout(t); resolve(v) } else this.waiters.push(check)
      }
      const t = setTimeout(() => reject(new Error("timeout waiting on " + this.id)), ms)
      check()
    })
  }
  send(data) {
    const isText = typeof data === "string"
    this.client.sendInner({
      type: "ws_message", connectionId: this.id,
      data: isText ? data : new Uint8Array(data), dataType: isText ? "string" : "arraybuffer",
    })
  }
  close(code, reason) {
    this.client.sendInner({ type: "ws_close", connectionId: this.id, code, reason })
  }
}

module.exports = { RAClient, tdxReportData, encode, decode, sodium }
