// tests/attest/pcs/pcs_server.js: a stand-in for Intel's PCS v4 API / a
// PCCS, on loopback only, for ra-quote collateral's tests.
//
// It serves the real Intel collateral of Phala dcap-qvl's samples
// (tests/vectors/collateral/phala/*_collateral.json) re-wrapped as PCS
// serves it: TCB info and QE identity as {"tcbInfo"|"enclaveIdentity":
// <the signed body, byte for byte>,"signature":"<hex>"} with the issuer
// chain URL-encoded in TCB-Info-Issuer-Chain (TDX; SGX gets the older
// SGX-TCB-Info-Issuer-Chain) / SGX-Enclave-Identity-Issuer-Chain; the PCK
// CRL as DER (encoding=der) with SGX-PCK-CRL-Issuer-Chain; the root CA CRL
// as hex text (as a PCCS does). Chunked transfer for the TCB info.
//
// Usage: node pcs_server.js VECTORS_DIR [CERT.pem KEY.pem]; prints "PORT <n>"
// when listening. With a certificate and key it serves HTTPS.
// With PCS_COLLATERAL=FILE in the environment (a dcap-qvl-shaped document,
// e.g. the simulated TEE's from `ra-quote sim --collateral-out`), that
// document is served instead for its TEE and FMSPC, its CRLs for every CA.
// Control (not PCS): GET /__ctl?mode=ok|404|garbled|nochain|slow|500 sets how
// the TCB info is answered; GET /__count returns the number of PCS
// requests served so far.
'use strict';
const http = require('http');
const https = require('https');
const fs = require('fs');
const path = require('path');

const dir = process.argv[2];
const byFmspc = {}; // "tdx:b0c06f000000" -> collateral
for (const [tee, file] of [['tdx', 'tdx_quote_collateral.json'], ['sgx', 'sgx_quote_collateral.json']]) {
  const c = JSON.parse(fs.readFileSync(path.join(dir, 'collateral/phala', file), 'utf8'));
  const fmspc = JSON.parse(c.tcb_info).fmspc.toLowerCase();
  byFmspc[`${tee}:${fmspc}`] = c;
}
let own = null;
if (process.env.PCS_COLLATERAL) {
  own = JSON.parse(fs.readFileSync(process.env.PCS_COLLATERAL, 'utf8'));
  const t = JSON.parse(own.tcb_info);
  byFmspc[`${t.id === 'TDX' ? 'tdx' : 'sgx'}:${t.fmspc.toLowerCase()}`] = own;
}
const byTee = (tee) => own || Object.entries(byFmspc).find(([k]) => k.startsWith(tee + ':'))[1];

let mode = 'ok';
let count = 0;

function send(res, status, headers, body) {
  res.writeHead(status, headers);
  res.end(body);
}

const handler = (req, res) => {
  const u = new URL(req.url, 'http://x');
  if (u.pathname === '/__ctl') {
    mode = u.searchParams.get('mode') || 'ok';
    return send(res, 200, {}, 'mode ' + mode);
  }
  if (u.pathname === '/__count') return send(res, 200, {}, String(count));
  count++;
  const m = u.pathname.match(/^\/(sgx|tdx)\/certification\/v4\/(tcb|qe\/identity|pckcrl|rootcacrl)$/);
  if (!m) return send(res, 404, {}, 'no such path');
  const [, tee, what] = m;
  if (what === 'tcb') {
    const c = byFmspc[`${tee}:${(u.searchParams.get('fmspc') || '').toLowerCase()}`];
    if (!c || mode === '404') return send(res, 404, {}, '');
    if (mode === '500') return send(res, 500, {}, 'oops');
    if (mode === 'slow') return; // never answers
    const hdr = tee === 'tdx' ? 'TCB-Info-Issuer-Chain' : 'SGX-TCB-Info-Issuer-Chain';
    const body = `{"tcbInfo":${c.tcb_info},"signature":"${c.tcb_info_signature}"}`;
    const headers = { 'Content-Type': 'application/json' };
    if (mode !== 'nochain') headers[hdr] = encodeURIComponent(c.tcb_info_issuer_chain);
    if (mode === 'garbled') {
      return send(res, 200, headers, body.slice(0, body.length - 40) + '<html>');
    }
    res.writeHead(200, headers); // no Content-Length: chunked
    const third = Math.floor(body.length / 3);
    res.write(body.slice(0, third));
    setTimeout(() => { res.write(body.slice(third, 2 * third)); res.end(body.slice(2 * third)); }, 20);
    return;
  }
  if (what === 'qe/identity') {
    const c = byTee(tee);
    return send(res, 200, {
      'Content-Type': 'application/json',
      'SGX-Enclave-Identity-Issuer-Chain': encodeURIComponent(c.qe_identity_issuer_chain),
    }, `{"enclaveIdentity":${c.qe_identity},"signature":"${c.qe_identity_signature}"}`);
  }
  if (tee !== 'sgx') return send(res, 404, {}, '');
  if (what === 'pckcrl') {
    const ca = u.searchParams.get('ca');
    // the CRL whose issuer chain names this CA
    const c = own || Object.values(byFmspc).find((x) =>
      x.pck_crl_issuer_chain.length && Buffer.from(x.pck_crl, 'hex').includes(
        ca === 'processor' ? 'Intel SGX PCK Processor CA' : 'Intel SGX PCK Platform CA'));
    if (!c || u.searchParams.get('encoding') !== 'der') return send(res, 404, {}, '');
    return send(res, 200, {
      'Content-Type': 'application/pkix-crl',
      'SGX-PCK-CRL-Issuer-Chain': encodeURIComponent(c.pck_crl_issuer_chain),
    }, Buffer.from(c.pck_crl, 'hex'));
  }
  return send(res, 200, { 'Content-Type': 'text/plain' }, byTee('tdx').root_ca_crl);
};
const server = process.argv[3]
  ? https.createServer({ cert: fs.readFileSync(process.argv[3]), key: fs.readFileSync(process.argv[4]) }, handler)
  : http.createServer(handler);
server.listen(0, '127.0.0.1', () => console.log('PORT ' + server.address().port));
process.on('SIGTERM', () => process.exit(0));
