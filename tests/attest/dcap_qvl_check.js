// tests/attest/dcap_qvl_check.js: cross-check of ra-quote's TCB verdicts
// against an independent implementation, @phala/dcap-qvl (pure JS, npm;
// tests/package.json), on the samples with real Intel collateral and on the
// simulated TEE's signed collateral (with the sim root pinned in both).
//
// dcap-qvl follows Intel's QVL for the TCB level, QE identity and status
// convergence; its known deviations, none of which these samples hit:
//  - it takes the first certificate of a chain as the leaf (Intel's sample
//    chains are root-first; these are leaf-first);
//  - its SEPT_VE_DISABLE refusal is its own policy (every TD here sets it);
//  - it does not check the PCE ID (each PCE ID here matches);
//  - its wasm build says "Unknown" where it should fail (this is the JS one).
// Where it fails with "No matching TCB level found", Intel's QVL says
// TCB_NOT_SUPPORTED: raloop's verdict is NotSupported.
//
// Usage: node dcap_qvl_check.js   (env: RA_BIN, RA_VECTORS)
'use strict';
const fs = require('fs'), os = require('os'), path = require('path');
const { execFileSync, spawnSync } = require('child_process');
const crypto = require('crypto');
const qvl = require('@phala/dcap-qvl');

const Q = path.join(process.env.RA_BIN, 'ra-quote');
const P = path.join(process.env.RA_VECTORS, 'collateral', 'phala');
const ALL = 'UpToDate,SWHardeningNeeded,ConfigurationNeeded,ConfigurationAndSWHardeningNeeded,' +
            'OutOfDate,OutOfDateConfigurationNeeded';
let fails = 0;

function theirs(quoteFile, collFile, at, rootDer) {
  const c = JSON.parse(fs.readFileSync(collFile, 'utf8'));
  for (const k of ['root_ca_crl', 'pck_crl', 'tcb_info_signature', 'qe_identity_signature'])
    c[k] = Array.from(Buffer.from(c[k], 'hex'));
  const v = rootDer ? new qvl.QuoteVerifier(rootDer) : qvl.QuoteVerifier.newProd();
  try {
    const r = v.verify(fs.readFileSync(quoteFile), c, at);
    return { status: r.status, adv: [...r.advisory_ids].sort() };
  } catch (e) {
    const msg = `${e.message} ${e.cause ? e.cause.message : ''}`;
    if (/No matching TCB level/.test(msg)) return { status: 'NotSupported', adv: [] };
    return { status: 'error', msg };
  }
}

function ours(quoteFile, collFile, at, root) {
  const args = ['verify', quoteFile, '--collateral', collFile, '--at', `@${at}`, '--accept-tcb', ALL,
                '--json'];
  if (root) args.push('--root', root);
  const r = spawnSync(Q, args, { encoding: 'utf8' });
  const j = JSON.parse(r.stdout);
  return { status: j.tcb_status, adv: [...(j.advisory_ids || [])].sort(), error: j.error };
}

function check(name, quoteFile, collFile, at, root) {
  const rootDer = root ? new crypto.X509Certificate(fs.readFileSync(root)).raw : null;
  const t = theirs(quoteFile, collFile, at, rootDer), o = ours(quoteFile, collFile, at, root);
  const same = t.status === o.status && JSON.stringify(t.adv) === JSON.stringify(o.adv);
  console.log(`${same ? 'ok' : 'FAIL'}: ${name}: dcap-qvl ${t.status}${t.msg ? ` (${t.msg})` : ''}` +
              ` [${t.adv || ''}], raloop ${o.status} [${o.adv}] (${o.error})`);
  if (!same) fails++;
}

const at = (s) => Math.floor(Date.parse(s) / 1000);
check('tdx_quote', `${P}/tdx_quote`, `${P}/tdx_quote_collateral.json`, at('2025-07-01T00:00:00Z'));
check('sgx_quote', `${P}/sgx_quote`, `${P}/sgx_quote_collateral.json`, at('2025-07-01T00:00:00Z'));
check('tdx_quote_outdated', `${P}/tdx_quote_outdated`, `${P}/tdx_quote_outdated_collateral.json`,
      at('2026-03-01T00:00:00Z'));

// the simulated TEE: quote and collateral it signs, its root pinned
const T = fs.mkdtempSync(path.join(os.tmpdir(), 'ra-dcap-qvl-'));
try {
  execFileSync(Q, ['sim', '--dir', `${T}/sim`, '--report-data', '00'.repeat(64), '--out',
                   `${T}/q.dat`, '--collateral-out', `${T}/c.json`]);
  check('sim', `${T}/q.dat`, `${T}/c.json`, Math.floor(Date.now() / 1000), `${T}/sim/root-ca.pem`);
} finally {
  fs.rmSync(T, { recursive: true, force: true });
}
if (fails) { console.log(`${fails} failure(s)`); process.exit(1); }
