// The case runner of the ws Node tests (interop.js, hostile.js): cases
// registered with test(name, fn) run one after another; each prints
// "ok   NAME (N ms)" or "FAIL NAME: ERROR" and a failure does not stop the
// rest; the process exits 0 only if all passed, and 1 if the whole run
// outlives timeoutMs (a hung case must not hang ctest).
//   const { test, runCases } = require('./cases.js')(60000);
//   test('name', async () => { ... });
//   runCases();   // last
'use strict';

module.exports = function cases(timeoutMs) {
  const deadline = setTimeout(() => { console.error('FAIL: timed out'); process.exit(1); }, timeoutMs);
  const tests = [];
  const test = (name, fn) => tests.push({ name, fn });
  async function runCases() {
    let failed = 0;
    for (const t of tests) {
      const t0 = Date.now();
      try {
        await t.fn();
        console.log(`ok   ${t.name} (${Date.now() - t0} ms)`);
      } catch (e) {
        failed++;
        console.log(`FAIL ${t.name}: ${e && e.stack || e}`);
      }
    }
    clearTimeout(deadline);
    console.log(failed ? `${failed} of ${tests.length} failed` : `all ${tests.length} passed`);
    process.exit(failed ? 1 : 0);
  }
  return { test, runCases };
};
