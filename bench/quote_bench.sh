#!/usr/bin/env bash
# bench/quote_bench.sh [BUILD_DIR] [N]: verification cost of one quote, cold
# (each verification parses the quote and decodes its certificates anew,
# but for one byte-identical to a pinned root, which is the pinned object;
# the verifier context with the pinned roots is reused, as a client does),
# next to OpenSSL's raw ECDSA P-256 verify rate on the same machine.
# Target (issue 4): <= 1 ms median for a TDX quote.
set -euo pipefail
build=${1:-build}
n=${2:-2000}
here=$(cd "$(dirname "$0")/.." && pwd)
vectors=${RA_VECTORS:-$here/tests/vectors}/quotes
q="$build/bin/ra-quote"
[ -x "$q" ] || { echo "no $q (build first)" >&2; exit 2; }
echo "== $(uname -m), $(nproc) CPU(s), $(openssl version)"
grep -m1 "model name" /proc/cpuinfo || true
for f in tdx-v4-tappd.dat tdx-v5-trustee.dat sgx-occlum.dat; do
  # trustee's TD 1.5 report binds a service TD (refused by default since issue 11)
  extra=(); [ "$f" = tdx-v5-trustee.dat ] && extra=(--allow-mr-servicetd)
  echo "== ra-quote bench $f -n $n"
  "$q" bench "$vectors/$f" -n "$n" "${extra[@]}"
done
echo "(with Intel collateral: bench/collateral_bench.sh)"
echo "== openssl speed -seconds 2 ecdsap256"
openssl speed -seconds 2 ecdsap256 2>/dev/null | tail -2
