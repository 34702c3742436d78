#!/usr/bin/env bash
# bench/collateral_bench.sh [BUILD_DIR] [N]: full verification with Intel
# collateral (signatures, PCK chain, CRLs covering the chain, TCB info and QE
# identity signatures and issuer chains, TCB level, QE identity, TDX module
# identity), median per quote:
#   cold: a verifier without certificate cache (RA_VERIFIER_NO_CERT_CACHE:
#         it keeps no decoded certificate, validated path or key between
#         verifications), the collateral document parsed anew for each
#         verification (from its bytes in memory): every certificate, CRL
#         and body decoded and every signature verified anew, except that a
#         certificate byte-identical to a pinned root is the verifier's
#         pinned object (decoded once when pinned, as in any client: each
#         DER is decoded once);
#   warm: one verifier reusing its decoded certificates, the PCK path it
#         validated (while the time is inside every certificate's validity)
#         and the attestation key object, and one parsed collateral (whose
#         body signatures, issuer path and CRL signatures it verified once);
#         the quote signature is verified every time (the QE report's is
#         remembered for the same PCK certificate and exact bytes).
# In the same run, the same quote and collateral through @phala/dcap-qvl
# (pure JS, tests/node_modules) as the anchor. Targets (issue 11): <= 1 ms
# cold, <= 300 us warm. Reported, not a timed test.
set -euo pipefail
build=${1:-build}
n=${2:-2000}
here=$(cd "$(dirname "$0")/.." && pwd)
P=${RA_VECTORS:-$here/tests/vectors}/collateral/phala
q="$build/bin/ra-quote"
[ -x "$q" ] || { echo "no $q (build first)" >&2; exit 2; }
all=UpToDate,SWHardeningNeeded,ConfigurationNeeded,ConfigurationAndSWHardeningNeeded,OutOfDate,OutOfDateConfigurationNeeded
echo "== $(uname -m), $(nproc) CPU(s), $(openssl version), node $(node --version)"
grep -m1 "model name" /proc/cpuinfo || true
for s in tdx_quote sgx_quote; do
  echo "== ra-quote bench $s --collateral ${s}_collateral.json --at 2025-07-01 -n $n"
  "$q" bench "$P/$s" --collateral "$P/${s}_collateral.json" --at 2025-07-01 --accept-tcb "$all" -n "$n"
done
# issue 18's cold: root and intermediates decoded once per verifier, the
# collateral parsed once; every quote's own leaf, path and signatures anew
# (and the same quote again, and a verified-quote cache hit)
vb="$build/bin/ra-verify-bench"
if [ -x "$vb" ]; then
  for s in tdx_quote sgx_quote; do
    echo "== ra-verify-bench $s (cold: CA-only verifier; coldest = ra-quote's cold above)"
    "$vb" "$P/$s" "$P/${s}_collateral.json" "$(date -d 2025-07-01 +%s)" "$n"
  done
fi
echo "== @phala/dcap-qvl (JS), same quotes and collateral"
NODE_PATH="$here/tests/node_modules" node "$here/bench/collateral_bench.js" "$P" "$(date -d 2025-07-01 +%s)" \
  "$(( n < 500 ? n : 500 ))" tdx_quote sgx_quote
