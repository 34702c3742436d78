// A minimal test runner for the tunnel's Node integration scripts: named
// cases that report "ok"/"FAIL" and keep going, a global timeout, and one
// exit code for the whole script (what ctest reads).
"use strict"

let failures = 0
const sleep = (ms) => new Promise((r) => setTimeout(r, ms))

async function test(name, fn) {
  try {
    await fn()
    console.log("ok   " + name)
  } catch (e) {
    failures++
    console.log("FAIL " + name + ": " + ((e && e.stack) || e))
  }
}

// Runs main (an async function of no arguments), then exits 0 only if every
// case passed. A script still running after timeoutMs fails.
function run(main, timeoutMs = 120000) {
  setTimeout(() => { console.log("FAIL global timeout"); process.exit(1) }, timeoutMs).unref()
  main().then(async () => {
    await sleep(50)
    if (failures) {
      console.log(`${failures} failure(s)`)
      process.exit(1)
    }
    console.log("all passed")
    process.exit(0)
  }, (e) => {
    console.log("FAIL setup: " + ((e && e.stack) || e))
    process.exit(1)
  })
}

module.exports = { test, sleep, run }
