// ra-hello processes for a Node test script, so that each script holds only
// what it tests: each on a free loopback port with a simulated TEE in the
// script's own temporary folder; when the script exits, whatever still runs
// is killed and the folder removed (no process outlives the test).
//   const { tmp, startHello } = helloProcs("ra-rotate-")  // RA_BIN: the build's bin
//   const h = await startHello("--quiet")                  // any ra-hello flags
//   h.proc, h.port, h.origin ("http://127.0.0.1:PORT"),
//   h.err(), h.out() (its stderr, stdout so far),
//   h.exited (a promise of { code, sig, at: Date.now() at the exit })
// startHello rejects if ra-hello exits before it says where it listens.
"use strict"
const fs = require("fs")
const os = require("os")
const path = require("path")
const { spawn } = require("child_process")

function helloProcs(tmpPrefix) {
  const bin = process.env.RA_BIN
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), tmpPrefix))
  const children = new Set()
  process.on("exit", () => {
    for (const c of children) try { c.kill("SIGKILL") } catch (e) {}
    fs.rmSync(tmp, { recursive: true, force: true })
  })

  function startHello(...flags) {
    return new Promise((resolve, reject) => {
      const proc = spawn(path.join(bin, "ra-hello"),
        ["--listen", "127.0.0.1:0", "--tee", "sim", "--sim-dir", path.join(tmp, "sim"), ...flags],
        { stdio: ["ignore", "pipe", "pipe"] })
      children.add(proc)
      let out = "", err = ""
      const exited = new Promise((r) => proc.on("exit", (code, sig) => { children.delete(proc); r({ code, sig, at: Date.now() }) }))
      proc.stderr.on("data", (d) => { err += d })
      proc.stdout.on("data", (d) => {
        out += d
        const m = out.match(/listening on http:\/\/127\.0\.0\.1:(\d+)/)
        if (m) resolve({ proc, port: Number(m[1]), origin: "http://127.0.0.1:" + m[1], err: () => err, out: () => out, exited })
      })
      proc.on("exit", () => reject(new Error("ra-hello exited: " + err)))
    })
  }
  return { tmp, startHello }
}

module.exports = { helloProcs }
