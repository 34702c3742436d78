#!/usr/bin/env bash
# ra-quote: every sample quote's verdict, exit codes (0 valid, 1 invalid,
# 2 usage/unreadable), JSON output, hex/base64 input, the simulated TEE.
set -u
Q="$RA_BIN/ra-quote"
V="$RA_VECTORS/quotes"
. "$(dirname "$0")/exit_checks.sh"
# json_field FILE KEY VALUE: the JSON output parses and KEY (a.b path) == VALUE
json_is() {
  local what=$1 path=$2 want=$3
  local got
  got=$(node -e '
    const j = JSON.parse(require("fs").readFileSync(process.argv[1], "utf8"));
    let v = j; for (const k of process.argv[2].split(".")) v = v === undefined ? v : v[k];
    process.stdout.write(String(v));' "$T/out" "$path" 2>&1)
  if [ "$got" != "$want" ]; then
    echo "FAIL: $what: $path = '$got', want '$want'"; fails=$((fails + 1))
  else
    echo "ok: $what: $path = $want"
  fi
}

for f in tdx-v4-tappd.dat tdx-v4-phala.dat tdx-v5-trustee.dat sgx-occlum.dat sgx-tlsn-quotedev.dat; do
  # trustee's TD 1.5 report binds a service TD: refused unless allowed (issue 11)
  extra=(); [ "$f" = tdx-v5-trustee.dat ] && extra=(--allow-mr-servicetd)
  expect 0 "$f valid now" -- "$Q" verify "$V/$f" "${extra[@]}"
  expect 0 "$f show" -- "$Q" show "$V/$f"
done
expect 1 "trustee: MR_SERVICETD refused by default" -- "$Q" verify "$V/tdx-v5-trustee.dat" --json
json_is "trustee servicetd" error RA_ERR_TD_ATTRIBUTES
# without collateral the verdict says plainly what it did not do
expect 0 "tappd signatures only" -- "$Q" verify "$V/tdx-v4-tappd.dat"
grep -q "signatures only: TCB not evaluated" "$T/out" || { echo "FAIL: no 'TCB not evaluated'"; fails=$((fails + 1)); }
expect 0 "tappd signatures only --json" -- "$Q" verify "$V/tdx-v4-tappd.dat" --json
json_is "tappd no collateral" tcb_status "not evaluated"

# Intel collateral: Phala dcap-qvl's samples (real Intel collateral), at a
# time inside each collateral's window
P="$RA_VECTORS/collateral/phala"
expect 0 "phala tdx_quote with collateral" -- "$Q" verify "$P/tdx_quote" \
  --collateral "$P/tdx_quote_collateral.json" --at 2025-07-01 --json
json_is "phala tdx" tcb_status UpToDate
json_is "phala tdx" advisory_ids ""
json_is "phala tdx" checks.crl pass
json_is "phala tdx" chain.crls_applied 2
expect 1 "phala sgx_quote: ConfigurationAndSWHardeningNeeded not accepted by default" -- \
  "$Q" verify "$P/sgx_quote" --collateral "$P/sgx_quote_collateral.json" --at 2025-07-01 --json
json_is "phala sgx" error RA_ERR_TCB_STATUS
json_is "phala sgx" tcb_status ConfigurationAndSWHardeningNeeded
json_is "phala sgx" advisory_ids "INTEL-SA-00289,INTEL-SA-00615"
expect 0 "phala sgx_quote --accept-tcb" -- "$Q" verify "$P/sgx_quote" \
  --collateral "$P/sgx_quote_collateral.json" --at 2025-07-01 \
  --accept-tcb UpToDate,ConfigurationAndSWHardeningNeeded
expect 0 "phala sgx_quote --allow-advisory x2" -- "$Q" verify "$P/sgx_quote" \
  --collateral "$P/sgx_quote_collateral.json" --at 2025-07-01 \
  --allow-advisory INTEL-SA-00289 --allow-advisory INTEL-SA-00615
expect 1 "phala sgx_quote one advisory allowed of two" -- "$Q" verify "$P/sgx_quote" \
  --collateral "$P/sgx_quote_collateral.json" --at 2025-07-01 --allow-advisory INTEL-SA-00615
expect 1 "phala tdx_quote_outdated: no TCB level matches" -- "$Q" verify "$P/tdx_quote_outdated" \
  --collateral "$P/tdx_quote_outdated_collateral.json" --at 2026-03-01 --json
json_is "phala outdated" error RA_ERR_TCB_NOT_SUPPORTED
json_is "phala outdated" tcb_status NotSupported
expect 1 "phala tdx_quote after nextUpdate" -- "$Q" verify "$P/tdx_quote" \
  --collateral "$P/tdx_quote_collateral.json" --at 2025-08-15 --json
expect 0 "phala tdx_quote after nextUpdate, allowed by name" -- "$Q" verify "$P/tdx_quote" \
  --collateral "$P/tdx_quote_collateral.json" --at 2025-08-15 --allow-expired-collateral --json
json_is "phala expired allowed" collateral.expired_allowed true
expect 0 "phala tdx_quote show with collateral" -- "$Q" show "$P/tdx_quote" \
  --collateral "$P/tdx_quote_collateral.json" --at 2025-07-01 --json
json_is "phala show" platform.fmspc b0c06f000000
json_is "phala show" platform.tcb_level 0
json_is "phala show" platform.tcb_status UpToDate
expect 0 "show without collateral names FMSPC" -- "$Q" show "$V/tdx-v4-phala.dat" --json
json_is "show no collateral" platform.fmspc b0c06f000000
# Intel's SGX sample set as a directory of PCS responses (its own root;
# TCB info v2): UpToDate
cat "$V/sgx-collateral/pckCert.pem" "$V/sgx-collateral/pckSignChain.pem" >"$T/sgx-chain0.pem"
expect 0 "sgx-collateral directory" -- "$Q" verify "$V/sgx-collateral/quote.dat" \
  --root "$V/sgx-collateral/trustedRootCaCert.pem" --pck-chain "$T/sgx-chain0.pem" \
  --collateral "$V/sgx-collateral" --at 2025-06-01 --json
json_is "sgx-collateral dir" tcb_status UpToDate
# Intel's TDX sample TCB info has random SVNs such as 65473 (an SVN is a
# byte): malformed, refused
expect 2 "tdx-collateral directory (SVNs out of range)" -- "$Q" verify "$V/tdx-collateral/quote.dat" \
  --root "$V/tdx-collateral/trustedRootCaCert.pem" --collateral "$V/tdx-collateral" --at 2025-06-01
expect 2 "bad --accept-tcb" -- "$Q" verify "$P/tdx_quote" --collateral "$P/tdx_quote_collateral.json" \
  --accept-tcb UpToDate,Fine
expect 2 "--accept-tcb Revoked (never accepted)" -- "$Q" verify "$P/tdx_quote" \
  --collateral "$P/tdx_quote_collateral.json" --accept-tcb UpToDate,Revoked
expect 2 "missing collateral" -- "$Q" verify "$P/tdx_quote" --collateral "$T/nope.json"
echo '{"tcb_info": 1}' >"$T/bad.json"
expect 2 "malformed collateral" -- "$Q" verify "$P/tdx_quote" --collateral "$T/bad.json"

expect 0 "tappd --json" -- "$Q" verify "$V/tdx-v4-tappd.dat" --json
json_is "tappd" valid true
json_is "tappd" error OK
json_is "tappd" pck.fmspc b0c06f000000
json_is "tappd" pck.pcesvn 11
json_is "tappd" checks.quote_signature pass
json_is "tappd" chain.from_quote true
json_is "tappd" chain.root_sha256 44a0196b2b99f889b8e149e95b807a350e7424964399e885a7cbb8ccfab674d3

MRTD=c68518a0ebb42136c12b2275164f8c72f25fa9a34392228687ed6e9caeb9c0f1dbd895e9cf475121c029dc47e70e91fd
RD=7668c6b4eafb62301c72714ecc7d90ce9a0e04b52dc117720df2047b0a59f1dbd937243eef1410a3cdc524aad66d4554b4f18b54da2fc0608dac40d6dea5f1d4
expect 0 "tappd expected mrtd + report_data" -- "$Q" verify "$V/tdx-v4-tappd.dat" --mrtd $MRTD --report-data $RD
expect 1 "tappd wrong mrtd" -- "$Q" verify "$V/tdx-v4-tappd.dat" --mrtd ${MRTD/c6/c7} --json
json_is "tappd wrong mrtd" error RA_ERR_MEASUREMENT
expect 1 "tappd wrong binding key" -- "$Q" verify "$V/tdx-v4-tappd.dat" --x25519 $(printf '11%.0s' {1..32}) --json
json_is "tappd binding" error RA_ERR_BINDING
expect 1 "tappd before its PCK leaf" -- "$Q" verify "$V/tdx-v4-tappd.dat" --at 2024-08-01 --json
json_is "tappd not yet valid" error RA_ERR_CERT_NOT_YET_VALID
expect 1 "tappd after its PCK leaf" -- "$Q" verify "$V/tdx-v4-tappd.dat" --at 2031-08-03T00:00:00Z --json
json_is "tappd expired" error RA_ERR_CERT_EXPIRED
expect 0 "tappd show --json" -- "$Q" show "$V/tdx-v4-tappd.dat" --json
json_is "tappd show" td_report.mrtd $MRTD
json_is "tappd show" td_report.tee_tcb_svn 05010200000000000000000000000000
json_is "tappd show" header.version 4
expect 0 "trustee show --json" -- "$Q" show "$V/tdx-v5-trustee.dat" --json
json_is "trustee show" body_type 3
expect 0 "occlum show --json" -- "$Q" show "$V/sgx-occlum.dat" --json
json_is "occlum show" enclave_report.isv_prod_id 4000
json_is "occlum show" enclave_report.isv_svn 5000
json_is "occlum show" debug false

MRE=$(node -e 'const j=JSON.parse(require("fs").readFileSync(process.argv[1],"utf8"));process.stdout.write(j.enclave_report.mr_enclave)' "$T/out")
expect 0 "occlum mr_enclave + prod + svn" -- "$Q" verify "$V/sgx-occlum.dat" --mr-enclave $MRE --isv-prod-id 4000 --min-isv-svn 5000
expect 1 "occlum min svn too high" -- "$Q" verify "$V/sgx-occlum.dat" --mr-enclave $MRE --min-isv-svn 5001

# input encodings
od -An -v -tx1 "$V/tdx-v4-phala.dat" | tr -d ' \n' >"$T/phala.hex"
base64 "$V/tdx-v4-phala.dat" >"$T/phala.b64"
expect 0 "hex input" -- "$Q" verify "$T/phala.hex"
expect 0 "base64 input" -- "$Q" verify "$T/phala.b64"
expect 0 "stdin input" -- bash -c "\"$Q\" verify - < \"$V/tdx-v4-phala.dat\""

# Intel's samples: look-alike roots
expect 1 "tdx-collateral with the Intel root" -- "$Q" verify "$V/tdx-collateral/quote.dat" --json
json_is "tdx-collateral" error RA_ERR_ROOT_UNTRUSTED
expect 0 "tdx-collateral with its root + CRLs" -- "$Q" verify "$V/tdx-collateral/quote.dat" \
  --root "$V/tdx-collateral/trustedRootCaCert.pem" \
  --crl "$V/tdx-collateral/rootCaCrl.der" --crl "$V/tdx-collateral/intermediateCaCrl.der" --json
json_is "tdx-collateral" chain.crls_applied 2
expect 1 "sgx-collateral without a chain" -- "$Q" verify "$V/sgx-collateral/quote.dat" \
  --root "$V/sgx-collateral/trustedRootCaCert.pem" --at 2025-06-01 --json
json_is "sgx-collateral" error RA_ERR_NO_PCK_CHAIN
cat "$V/sgx-collateral/pckCert.pem" "$V/sgx-collateral/pckSignChain.pem" >"$T/sgx-chain.pem"
expect 0 "sgx-collateral with chain, root, 2025-06-01, CRLs" -- "$Q" verify "$V/sgx-collateral/quote.dat" \
  --root "$V/sgx-collateral/trustedRootCaCert.pem" --pck-chain "$T/sgx-chain.pem" --at 2025-06-01 \
  --crl "$V/sgx-collateral/rootCaCrl.pem" --crl "$V/sgx-collateral/intermediateCaCrl.der"
expect 1 "sgx-collateral now (leaf expired)" -- "$Q" verify "$V/sgx-collateral/quote.dat" \
  --root "$V/sgx-collateral/trustedRootCaCert.pem" --pck-chain "$T/sgx-chain.pem" --json
json_is "sgx-collateral now" error RA_ERR_CERT_EXPIRED
expect 1 "sgx-collateral with the Intel root" -- "$Q" verify "$V/sgx-collateral/quote.dat" \
  --pck-chain "$T/sgx-chain.pem" --at 2025-06-01 --json
json_is "sgx-collateral intel root" error RA_ERR_ROOT_UNTRUSTED

# damaged input: invalid (1), not usage (2)
head -c 1000 "$V/tdx-v4-tappd.dat" >"$T/trunc.dat"
expect 1 "truncated quote" -- "$Q" verify "$T/trunc.dat" --json
json_is "truncated" error RA_ERR_QUOTE_TRUNCATED
expect 1 "truncated quote show" -- "$Q" show "$T/trunc.dat"
cp "$V/tdx-v4-tappd.dat" "$T/flip.dat"
printf '\xff' | dd of="$T/flip.dat" bs=1 seek=200 conv=notrunc 2>/dev/null
expect 1 "flipped body byte" -- "$Q" verify "$T/flip.dat" --json
json_is "flipped" error RA_ERR_QUOTE_SIGNATURE
json_is "flipped" checks.qe_signature pass

# usage errors and unreadable input: 2
expect 2 "no arguments" -- "$Q"
expect 2 "unknown command" -- "$Q" frobnicate
expect 2 "unknown option" -- "$Q" verify "$V/tdx-v4-tappd.dat" --frob
expect 2 "missing file" -- "$Q" verify "$T/does-not-exist"
expect 2 "bad hex option" -- "$Q" verify "$V/tdx-v4-tappd.dat" --mrtd abc
expect 2 "bad --at" -- "$Q" verify "$V/tdx-v4-tappd.dat" --at yesterday
expect 2 "unreadable root" -- "$Q" verify "$V/tdx-v4-tappd.dat" --root "$T/nope.pem"
expect 2 "crl that is no CRL" -- "$Q" verify "$V/tdx-v4-tappd.dat" --crl "$V/tdx-v4-tappd.dat"
# a PEM CRL file whose second CRL is garbled: an error, not one CRL fewer
{ cat "$V/sgx-collateral/rootCaCrl.pem"; printf -- '-----BEGIN X509 CRL-----\nMIIBIjAN\n-----END X509 CRL-----\n'; } >"$T/crls.pem"
expect 2 "crl file with a garbled CRL" -- "$Q" verify "$V/tdx-v4-tappd.dat" --crl "$T/crls.pem"
expect 2 "sim without --out" -- "$Q" sim --dir "$T/sim" --report-data 00
expect 0 "help" -- "$Q" --help

# the simulated TEE
RDS=$(printf 'ab%.0s' {1..64})
expect 0 "sim quote" -- "$Q" sim --dir "$T/sim" --report-data $RDS --out "$T/sim.dat"
grep -q "root: $T/sim/root-ca.pem" "$T/out" || { echo "FAIL: sim does not print its root"; fails=$((fails + 1)); }
expect 1 "sim quote with the Intel root" -- "$Q" verify "$T/sim.dat" --json
json_is "sim intel root" error RA_ERR_ROOT_UNTRUSTED
expect 0 "sim quote with its root pinned" -- "$Q" verify "$T/sim.dat" --root "$T/sim/root-ca.pem" --report-data $RDS
expect 0 "sim quote + collateral" -- "$Q" sim --dir "$T/sim" --report-data $RDS --out "$T/sim2.dat" \
  --collateral-out "$T/sim-coll.json"
expect 0 "sim quote verified with its collateral" -- "$Q" verify "$T/sim2.dat" --root "$T/sim/root-ca.pem" \
  --collateral "$T/sim-coll.json" --json
json_is "sim collateral" tcb_status UpToDate
json_is "sim collateral" checks.tcb_level pass
expect 2 "a chain file as --root (not only self-signed CAs)" -- "$Q" verify "$T/sim.dat" --root "$T/sim/pck-chain.pem"
expect 1 "sim quote, other report_data" -- "$Q" verify "$T/sim.dat" --root "$T/sim/root-ca.pem" --report-data ${RDS/ab/ac}
expect 0 "sim debug TD quote" -- "$Q" sim --dir "$T/sim" --report-data $RDS --out "$T/simdbg.dat" --debug
expect 1 "sim debug TD refused" -- "$Q" verify "$T/simdbg.dat" --root "$T/sim/root-ca.pem" --json
json_is "sim debug" error RA_ERR_DEBUG
expect 0 "sim debug TD --allow-debug" -- "$Q" verify "$T/simdbg.dat" --root "$T/sim/root-ca.pem" --allow-debug

# key binding: report_data = SHA-512(val || iat || x25519 key)
VAL=0011223344556677 IAT=3132333435 PUB=$(printf '42%.0s' {1..32})
BRD=$(node -e 'const c=require("crypto");const h=c.createHash("sha512");for(const a of process.argv.slice(1))h.update(Buffer.from(a,"hex"));process.stdout.write(h.digest("hex"))' $VAL $IAT $PUB)
expect 0 "sim bound quote" -- "$Q" sim --dir "$T/sim" --report-data $BRD --out "$T/simbound.dat"
expect 0 "binding verifies" -- "$Q" verify "$T/simbound.dat" --root "$T/sim/root-ca.pem" --x25519 $PUB --binding-val $VAL --binding-iat $IAT --json
json_is "binding" checks.binding pass
expect 1 "binding, other key" -- "$Q" verify "$T/simbound.dat" --root "$T/sim/root-ca.pem" --x25519 ${PUB/42/43} --binding-val $VAL --binding-iat $IAT
expect 1 "binding without iat" -- "$Q" verify "$T/simbound.dat" --root "$T/sim/root-ca.pem" --x25519 $PUB --binding-val $VAL --json
json_is "binding without iat" error RA_ERR_BINDING

# bench runs (figures are reported, not asserted)
expect 0 "bench" -- "$Q" bench "$V/tdx-v4-tappd.dat" -n 20

if [ $fails -ne 0 ]; then echo "$fails failure(s)"; exit 1; fi
echo "all ra-quote checks passed"
