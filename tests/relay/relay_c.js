// The C relay client (relay-client-check) against ra-hello's WS /relay
// (port in argv[2], started by tests/ws/run_with_hello.sh): two C clients
// both ways, then a C peer and a Node client exchange both ways.
"use strict"
const assert = require("assert/strict")
const path = require("path")
const { spawn, execFileSync } = require("child_process")
const { RelayClient } = require("./relay_client.js")
const { test, run } = require("../attest/tunnel/harness.js")

const url = `ws://127.0.0.1:${process.argv[2]}/relay`
const exe = path.join(process.env.RA_BIN, "relay-client-check")

run(async () => {
  await test("two C clients exchange messages both ways; offline gets ERROR", async () => {
    const out = execFileSync(exe, ["pair", url], { encoding: "utf8", timeout: 30000 })
    assert.match(out, /^ok$/m)
  })
  await test("C and Node clients exchange messages both ways", async () => {
    const p = spawn(exe, ["peer", url, "2"], { stdio: ["ignore", "pipe", "inherit"] })
    let out = ""
    const exited = new Promise((r) => p.on("exit", (code) => r(code)))
    const pk = await new Promise((resolve, reject) => {
      p.stdout.on("data", (d) => { out += d; const m = out.match(/^pk (\S{43})$/m); if (m) resolve(m[1]) })
      p.on("exit", () => reject(new Error("peer exited: " + out)))
    })
    const n = await new RelayClient().connect(url)
    n.send(pk, "one")
    n.send(pk, "two ü")
    await n.until((x) => x.inbox.length === 2, 10000)
    assert.deepEqual(n.inbox.map((m) => m.text), ["echo:one", "echo:two ü"])
    assert.ok(n.inbox.every((m) => m.from === pk))
    assert.equal(await exited, 0)
    assert.match(out, new RegExp(`^got ${n.publicKey} one$`, "m"))
    n.close()
  })
}, 60000)
