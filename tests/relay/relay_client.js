// A relay client (docs/RELAY.md) with tweetnacl (the nacl.js of the original
// design) and the `ws` package. Works on any object with the WebSocket
// event API of `ws` (send, on("message"), on("close")), so the tests also run
// it through the attested tunnel (tests/attest/tunnel/ra_client.js).
"use strict"
const path = require("path")
const nm = path.join(__dirname, "..", "node_modules")
const nacl = require(path.join(nm, "tweetnacl"))
const WebSocket = require(path.join(nm, "ws"))

const b64u = (u8) => Buffer.from(u8).toString("base64url")
const unb64u = (s) => new Uint8Array(Buffer.from(s, "base64url"))

class RelayClient {
  // keyPair: nacl.box.keyPair() (default: a fresh one, as a browser tab does)
  constructor(keyPair) {
    this.kp = keyPair || nacl.box.keyPair()
    this.publicKey = b64u(this.kp.publicKey)
    this.inbox = [] // { from, text, bytes }
    this.errors = [] // ERROR messages
    this.raw = [] // every message from the relay, parsed
    this.waiters = []
    this.registered = false
    this.closed = null
    // hooks for tests: onchallenge(msg) may return the response to send
    this.onchallenge = null
  }

  // Opens url and registers; resolves once REGISTER_SUCCESS arrives, rejects
  // with the REGISTER_FAILURE reason or the close.
  connect(url, opts = {}) {
    const ws = new WebSocket(url, opts.ws)
    this.ws = ws
    ws.on("error", () => {})
    return this._attach({
      send: (s) => ws.send(s),
      close: (c, r) => ws.close(c, r),
      onmessage: (f) => ws.on("message", (d) => f(d.toString())),
      onclose: (f) => ws.on("close", (code, reason) => f(code, reason.toString())),
    }, opts)
  }

  // A transport: { send(text), close(code, reason), onmessage(f), onclose(f) }
  _attach(t, opts = {}) {
    this.t = t
    return new Promise((resolve, reject) => {
      this._reg = { resolve, reject }
      t.onmessage((text) => this._message(text))
      t.onclose((code, reason) => {
        this.closed = { code, reason }
        if (this._reg) { this._reg.reject(Object.assign(new Error("closed " + code + " " + reason), { code, reason })); this._reg = null }
        this._wake()
      })
    })
  }

  challengeResponse(challenge, kp = this.kp) {
    const boxNonce = nacl.randomBytes(24)
    const box = nacl.box(unb64u(challenge.nonce), boxNonce, unb64u(challenge.serverPublicKey), kp.secretKey)
    return { type: "CHALLENGE_RESPONSE", publicKey: b64u(kp.publicKey), boxNonce: b64u(boxNonce), box: b64u(box) }
  }

  _message(text) {
    const m = JSON.parse(text)
    this.raw.push(m)
    if (m.type === "CHALLENGE") {
      this.challenge = m
      const resp = this.onchallenge ? this.onchallenge(m) : this.challengeResponse(m)
      if (resp !== undefined) this.t.send(typeof resp === "string" ? resp : JSON.stringify(resp))
    } else if (m.type === "REGISTER_SUCCESS") {
      this.registered = true
      if (this._reg) { this._reg.resolve(this); this._reg = null }
    } else if (m.type === "REGISTER_FAILURE") {
      this.failure = m.reason
      if (this._reg) { this._reg.reject(Object.assign(new Error("refused: " + m.reason), { reason: m.reason })); this._reg = null }
    } else if (m.type === "MESSAGE") {
      const bytes = nacl.box.open(unb64u(m.box), unb64u(m.nonce), unb64u(m.from), this.kp.secretKey)
      this.inbox.push({ from: m.from, bytes, text: bytes ? Buffer.from(bytes).toString() : null, raw: m })
    } else if (m.type === "ERROR") {
      this.errors.push(m)
    }
    this._wake()
  }

  // Encrypts text (string or Uint8Array) for `to` (base64url public key).
  send(to, data) {
    const nonce = nacl.randomBytes(24)
    const msg = typeof data === "string" ? new Uint8Array(Buffer.from(data)) : data
    const box = nacl.box(msg, nonce, unb64u(to), this.kp.secretKey)
    this.t.send(JSON.stringify({ type: "MESSAGE", to, nonce: b64u(nonce), box: b64u(box) }))
  }

  sendRaw(text) { this.t.send(text) }
  close(code, reason) { this.t.close(code, reason) }

  _wake() {
    const w = this.waiters
    this.waiters = []
    for (const f of w) f()
  }
  until(pred, ms = 5000) {
    return new Promise((resolve, reject) => {
      const t = setTimeout(() => reject(new Error("timeout waiting")), ms)
      const check = () => {
        let v
        try { v = pred(this) } catch (e) { clearTimeout(t); reject(e); return }
        if (v) { clearTimeout(t); resolve(v) } else this.waiters.push(check)
      }
      check()
    })
  }
}

module.exports = { RelayClient, nacl, b64u, unb64u, WebSocket }
