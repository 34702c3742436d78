#!/usr/bin/env bash
# SEV-SNP in the tunnel (issue 12): ra-hello serving simulated SEV-SNP
# evidence (--tee sim-snp; snp-file; configfs-tsm on a fake SNP guest tree)
# against ra-curl with an SNP policy: accepted; wrong measurement or
# host_data, debug guest, untrusted ARK refused with exit 60 and the step
# named; a TDX-only client refuses an SNP server and an SNP-only client a
# TDX server (step "tee"); the server_kx checked by an independent Node
# reimplementation of the reference client's SEV-SNP rules.
set -euo pipefail
: "${RA_BIN:?RA_BIN must point at the bin folder of the build}"
here=$(cd "$(dirname "$0")" && pwd)
. "$here/../../lib.sh"
sim="$tmp/sim"

# hello NAME ARGS...: starts ra-hello, sets NAME_port
hello() { local name=$1; shift; serve "$name" "" "$RA_BIN/ra-hello" --listen 127.0.0.1:0 "$@"; }
check_err() { # check_err NAME PATTERN: in the last check's stderr
  if grep -q -- "$2" "$tmp/check.err"; then echo "ok   $1"; else
    echo "FAIL $1: no '$2' in:"; cat "$tmp/check.err"; fails=$((fails+1)); fi
}
hex() { printf "$1%.0s" $(seq "$2"); }
curl=("$RA_BIN/ra-curl" --max-time 10)
meas=$(hex 5e 48) # the sim's default measurement

hello snp --tee sim-snp --sim-dir "$sim"
hello tdx --tee sim --sim-dir "$sim" # both sims in one directory: their files differ
snp="http://127.0.0.1:$snp_port" tdx="http://127.0.0.1:$tdx_port"
grep -q -- "--trust-snp-sim $sim" "$tmp/snp.err" && echo "ok   ra-hello names --trust-snp-sim" ||
  { echo "FAIL ra-hello does not name --trust-snp-sim"; cat "$tmp/snp.err"; fails=$((fails+1)); }

check_exit "SNP policy against the SNP sim: accepted" 0 "${curl[@]}" -v --trust-snp-sim "$sim" --sev-measurement "$meas" "$snp/hello"
grep -q "world" "$tmp/check.out" && echo "ok   body through the SNP tunnel" || { echo "FAIL no body"; cat "$tmp/check.out"; fails=$((fails+1)); }
check_err "-v shows the SEV-SNP verdict" "TEE: SEV-SNP"
check_err "-v: binding passed" "binding=pass"
check_exit "ra-quote's spellings (--snp-measurement, --snp-host-data)" 0 "${curl[@]}" -o /dev/null --trust-snp-sim "$sim" \
  --snp-measurement "$meas" --snp-host-data "$(hex 00 32)" "$snp/"
check_exit "wrong measurement: 60" 60 "${curl[@]}" --trust-snp-sim "$sim" --sev-measurement "$(hex 11 48)" "$snp/"
check_err "wrong measurement: the step is named" "RA_ERR_MEASUREMENT: measurements:"
check_exit "wrong host_data: 60" 60 "${curl[@]}" --trust-snp-sim "$sim" --sev-host-data "$(hex 01 32)" "$snp/"
check_err "wrong host_data: the step is named" "RA_ERR_MEASUREMENT: measurements:"
check_exit "AMD's ARKs only (the sim's not pinned): 60" 60 "${curl[@]}" --sev-measurement "$meas" "$snp/"
check_err "untrusted ARK: step chain" "RA_ERR_ROOT_UNTRUSTED: chain:"
check_exit "TDX-only client against the SNP server: 60" 60 "${curl[@]}" --trust-sim "$sim" "$snp/"
check_err "TDX-only client: step tee" "tee: the server presents SEV-SNP evidence"
check_exit "SNP-only client against the TDX server: 60" 60 "${curl[@]}" --trust-snp-sim "$sim" "$tdx/"
check_err "SNP-only client: step tee" "tee: the server presents an Intel TDX/SGX quote"
check_exit "client for both kinds: the SNP server" 0 "${curl[@]}" -o /dev/null --trust-sim "$sim" --trust-snp-sim "$sim" "$snp/"
check_exit "client for both kinds: the TDX server" 0 "${curl[@]}" -o /dev/null --trust-sim "$sim" --trust-snp-sim "$sim" "$tdx/"
check_exit "--sev-measurement of the wrong size: usage" 2 "${curl[@]}" --trust-snp-sim "$sim" --sev-measurement 00 "$snp/"

# the reference client's rules on our server_kx, and a session
check_exit "server_kx as the reference client checks it (Node, cbor-x)" 0 node "$here/snp_kx_check.js" "$snp" "$sim/snp-ark.pem"
sed 's/^/     /' "$tmp/check.out"

# a fixed debug report and its certificates (snp-file): debug is refused
# unless --allow-debug; the fixed report binds no key (--no-binding)
"$RA_BIN/ra-quote" sim --snp --dir "$sim" --report-data "$(hex 00 64)" --debug --out "$tmp/debug.bin" 2>"$tmp/sim.err"
cat "$sim/snp-vcek.pem" "$sim/snp-cert-chain.pem" >"$tmp/certs.pem"
hello dbg --tee "snp-file:$tmp/debug.bin,$tmp/certs.pem"
dbg="http://127.0.0.1:$dbg_port"
check_exit "debug guest: 60" 60 "${curl[@]}" --no-binding --trust-snp-sim "$sim" --sev-measurement "$meas" "$dbg/"
check_err "debug guest: step debug" "RA_ERR_DEBUG: debug:"
check_exit "debug guest with --allow-debug: accepted" 0 "${curl[@]}" -o /dev/null --no-binding --allow-debug --trust-snp-sim "$sim" \
  --sev-measurement "$meas" "$dbg/"
check_exit "a fixed report without --no-binding: 60 (binding)" 60 "${curl[@]}" --allow-debug --trust-snp-sim "$sim" "$dbg/"
check_err "fixed report: step binding" "binding:"

# configfs-tsm on a fake SEV-SNP guest: a process plays the kernel (the
# sim's "hardware" in $tmp/hw signs what inblob asks for)
root="$tmp/tsm"
python3 "$here/snp_fake_tsm.py" "$root/svc" "$RA_BIN/ra-quote" "$tmp/hw" &
pids+=($!)
for _ in $(seq 1 100); do [ -p "$root/svc/outblob" ] && break; sleep 0.05; done
hello tsm --tee "tsm:$root,svc"
check_exit "configfs-tsm SEV-SNP guest (fake tree) serves the tunnel" 0 "${curl[@]}" -o /dev/null -v --trust-snp-sim "$tmp/hw" \
  --sev-measurement "$meas" "http://127.0.0.1:$tsm_port/"
check_err "tsm: the certificates came from the auxblob table" "ARK: /CN=raloop Simulated ARK"

[ "$fails" = 0 ] && echo "all passed" || { echo "$fails failed"; exit 1; }
