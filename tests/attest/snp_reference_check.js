// tests/attest/snp_reference_check.js: SEV-SNP reports checked the way the
// reference client (canvasxyz/teekit, packages/qvl/src/parseSev.ts and
// verifySev.ts, packages/tunnel/src/client.ts) checks them, written here
// independently with Node's WebCrypto and X509Certificate, against what
// ra-quote says, on GCP's public reports and on the simulated SEV-SNP
// TEE's: body = bytes 0..671; r and s = the first 48 of their 72-byte
// little-endian fields, reversed; ECDSA P-384 / SHA-384 with the VCEK's
// key; VCEK signed by the ASK, ASK by the ARK; binding report_data ==
// SHA-512(nonce || x25519 key). This is what a teekit client will do with
// a raloop SNP server's report, so the sim's encoding must pass it.
//
// Usage: node snp_reference_check.js   (env: RA_BIN, RA_VECTORS)
'use strict';
const fs = require('fs'), os = require('os'), path = require('path');
const { spawnSync } = require('child_process');
const crypto = require('crypto');

const Q = path.join(process.env.RA_BIN, 'ra-quote');
const V = path.join(process.env.RA_VECTORS, 'snp');
let fails = 0;
const ok = (what, cond, detail) => {
  if (cond) console.log('ok: ' + what);
  else { console.log('FAIL: ' + what + (detail ? ': ' + detail : '')); fails++; }
};

function certs(pemText) {
  return pemText.split('-----BEGIN CERTIFICATE-----').slice(1)
    .map((b) => new crypto.X509Certificate('-----BEGIN CERTIFICATE-----' + b));
}

// teekit's convertSignatureComponent: trim trailing zero bytes, reverse,
// right-align in 48 bytes
function component(le72) {
  let end = le72.length;
  while (end > 0 && le72[end - 1] === 0) end--;
  const be = Buffer.from(le72.subarray(0, end)).reverse();
  const out = Buffer.alloc(48);
  if (be.length > 48) be.subarray(be.length - 48).copy(out); else be.copy(out, 48 - be.length);
  return out;
}

async function theirs(report, vcekPem, chainPem) {
  if (report.length !== 1184 || report.readUInt32LE(0) < 2) return 'parse';
  const vcek = certs(vcekPem)[0];
  const [ask, ark] = certs(chainPem);
  if (!vcek.verify(ask.publicKey) || !ask.verify(ark.publicKey) || !ark.verify(ark.publicKey)) return 'chain';
  const key = await crypto.webcrypto.subtle.importKey('spki', vcek.publicKey.export({ type: 'spki', format: 'der' }),
    { name: 'ECDSA', namedCurve: 'P-384' }, false, ['verify']);
  const sig = Buffer.concat([component(report.subarray(0x2a0, 0x2a0 + 72)), component(report.subarray(0x2e8, 0x2e8 + 72))]);
  const good = await crypto.webcrypto.subtle.verify({ name: 'ECDSA', hash: 'SHA-384' }, key, sig, report.subarray(0, 672));
  if (!good) return 'signature';
  if (report.readBigUInt64LE(8) & (1n << 19n)) return 'debug';
  return 'valid';
}

function ours(file, args) {
  const r = spawnSync(Q, ['verify', file, ...args, '--json'], { encoding: 'utf8' });
  try { return { code: r.status, j: JSON.parse(r.stdout) }; } catch { return { code: r.status, j: {} }; }
}

(async () => {
  const chain = fs.readFileSync(path.join(V, 'sev-gcp-cert-chain.pem'), 'utf8');
  for (const [rep, vcek] of [['sev-gcp.bin', 'sev-gcp-vcek.pem'], ['sev-gcp-reportdata.bin', 'sev-gcp-vcek.pem'],
                             ['sev-gcp-x25519-bound.bin', 'sev-gcp-x25519-vcek.pem']]) {
    const f = path.join(V, rep), vp = path.join(V, vcek);
    const t = await theirs(fs.readFileSync(f), fs.readFileSync(vp, 'utf8'), chain);
    const o = ours(f, ['--vcek', vp, '--ask', path.join(V, 'sev-gcp-cert-chain.pem'), '--at', '2026-01-15']);
    ok(`${rep}: reference says ${t}, ra-quote valid=${o.j.valid}`, t === 'valid' && o.code === 0 && o.j.valid === true);
  }
  // the binding of the x25519 sample, as the reference client computes it
  const kv = Object.fromEntries(fs.readFileSync(path.join(V, 'sev-gcp-x25519-bound.txt'), 'utf8')
    .trim().split('\n').map((l) => l.split('=')));
  const bound = fs.readFileSync(path.join(V, 'sev-gcp-x25519-bound.bin'));
  const want = crypto.createHash('sha512').update(Buffer.from(kv.NONCE, 'hex')).update(Buffer.from(kv.X25519_KEY, 'hex')).digest();
  ok('x25519 sample: report_data == SHA-512(nonce || key)', want.equals(bound.subarray(0x50, 0x90)));

  // the simulated SEV-SNP TEE: a report binding a key the way a raloop SNP
  // server will, judged by the reference's algorithm
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ra-snp-ref-'));
  try {
    const nonce = crypto.randomBytes(32), x25519 = crypto.randomBytes(32);
    const rd = crypto.createHash('sha512').update(nonce).update(x25519).digest('hex');
    const out = path.join(dir, 'r.bin');
    const s = spawnSync(Q, ['sim', '--snp', '--dir', path.join(dir, 'sim'), '--report-data', rd, '--out', out], { encoding: 'utf8' });
    ok('sim report made', s.status === 0, s.stderr);
    const vcekPem = fs.readFileSync(path.join(dir, 'sim', 'snp-vcek.pem'), 'utf8');
    const simChain = fs.readFileSync(path.join(dir, 'sim', 'snp-cert-chain.pem'), 'utf8');
    const rep = fs.readFileSync(out);
    ok('sim report: reference says valid', (await theirs(rep, vcekPem, simChain)) === 'valid');
    const simArgs = ['--vcek', path.join(dir, 'sim', 'snp-vcek.pem'), '--ask', path.join(dir, 'sim', 'snp-cert-chain.pem'),
                     '--trust-snp-sim', path.join(dir, 'sim')];
    const o = ours(out, [...simArgs, '--x25519', x25519.toString('hex'), '--nonce', nonce.toString('hex')]);
    ok('sim report: ra-quote valid with the binding', o.code === 0 && o.j.checks && o.j.checks.binding === 'pass');
    // one flipped bit of the body: both refuse
    const bad = Buffer.from(rep);
    bad[0x90] ^= 1;
    fs.writeFileSync(out, bad);
    const t2 = await theirs(bad, vcekPem, simChain), o2 = ours(out, simArgs);
    ok(`flipped bit: reference says ${t2}, ra-quote ${o2.j.failed_check}`, t2 === 'signature' && o2.code === 1 &&
       o2.j.failed_check === 'report_signature');
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
  console.log(fails ? `${fails} failed` : 'all passed');
  process.exit(fails ? 1 : 0);
})();
