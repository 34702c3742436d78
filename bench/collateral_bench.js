// bench/collateral_bench.js DIR AT N NAME...: @phala/dcap-qvl's verify()
// on DIR/NAME with DIR/NAME_collateral.json at unix time AT, N times:
// first call, then median / p90 (the anchor for bench/collateral_bench.sh).
'use strict';
const fs = require('fs');
const qvl = require('@phala/dcap-qvl');
const [dir, at, n] = [process.argv[2], Number(process.argv[3]), Number(process.argv[4])];
for (const name of process.argv.slice(5)) {
  const quote = fs.readFileSync(`${dir}/${name}`);
  const raw = fs.readFileSync(`${dir}/${name}_collateral.json`, 'utf8');
  const coll = () => {
    const c = JSON.parse(raw);
    for (const k of ['root_ca_crl', 'pck_crl', 'tcb_info_signature', 'qe_identity_signature'])
      c[k] = Array.from(Buffer.from(c[k], 'hex'));
    return c;
  };
  const t = [];
  let status = '';
  for (let i = 0; i < n; i++) {
    const c = coll();
    const t0 = process.hrtime.bigint();
    status = qvl.verify(quote, c, at).status;
    t.push(Number(process.hrtime.bigint() - t0) / 1e3);
  }
  const first = t[0];
  t.sort((a, b) => a - b);
  console.log(`dcap-qvl ${name} (${status}) n=${n} first ${first.toFixed(0)} us  median ` +
              `${t[n >> 1].toFixed(1)} us  p90 ${t[Math.floor(n * 0.9)].toFixed(1)} us  min ${t[0].toFixed(1)} us`);
}
