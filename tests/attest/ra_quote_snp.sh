#!/usr/bin/env bash
# ra-quote and AMD SEV-SNP reports: GCP's public reports (teekit's
# samples, tests/vectors/snp) verified with their VCEK at a fixed time,
# refusals with their step and exit codes (0 valid, 1 invalid, 2 usage or
# unreadable input), JSON fields, and the simulated SEV-SNP TEE trusted only
# when named with --trust-snp-sim.
set -u
Q="$RA_BIN/ra-quote"
V="$RA_VECTORS/snp"
. "$(dirname "$0")/exit_checks.sh"
AT=2026-01-15
json_is() {
  local what=$1 path=$2 want=$3 got
  got=$(python3 -c '
import json, sys
v = json.load(open(sys.argv[1]))
for k in sys.argv[2].split("."):
    v = v.get(k) if isinstance(v, dict) else None
print("true" if v is True else "false" if v is False else v, end="")' "$T/out" "$path" 2>&1)
  if [ "$got" != "$want" ]; then
    echo "FAIL: $what: $path = '$got', want '$want'"; fails=$((fails + 1))
  else
    echo "ok: $what: $path = $want"
  fi
}

GCP=(--vcek "$V/sev-gcp-vcek.pem" --ask "$V/sev-gcp-cert-chain.pem" --at "$AT")
M=b747d55452e0b9e9079770a49e397c5e6d9573581e246da7baac4f28b5cdc5b1b6d19251b8ee600fd16a3708f58406f3

expect 0 "gcp report verifies (VCEK + AMD chain)" -- "$Q" verify "$V/sev-gcp.bin" "${GCP[@]}" --json
json_is "gcp" valid true
json_is "gcp" tee SEV-SNP
json_is "gcp" error OK
json_is "gcp" checks.report_signature pass
json_is "gcp" checks.vcek_extensions pass
json_is "gcp" report.measurement $M
json_is "gcp" vcek.product_name Milan-B0
json_is "gcp" chain.root_sha256 69d063b45344d26a2e94e1f4210de49ef555308287d4c174445c95639a540bcd
expect 0 "VCEK alone: pinned Milan ASK and ARK" -- "$Q" verify "$V/sev-gcp.bin" --vcek "$V/sev-gcp-vcek.pem" --at "$AT"
python3 -c "import sys; open(sys.argv[2], 'w').write(open(sys.argv[1], 'rb').read().hex())" "$V/sev-gcp.bin" "$T/r.hex"
expect 0 "hex input" -- "$Q" verify "$T/r.hex" "${GCP[@]}"
expect 0 "stdin with --snp" -- sh -c "'$Q' verify - --snp ${GCP[*]} < '$V/sev-gcp.bin'"
expect 0 "measurement matches" -- "$Q" verify "$V/sev-gcp-reportdata.bin" "${GCP[@]}" --snp-measurement $M --snp-max-vmpl 1 --json
json_is "measurement" checks.measurements pass
json_is "measurement" report.vmpl 1
expect 1 "VMPL 1 above --snp-max-vmpl 0" -- "$Q" verify "$V/sev-gcp-reportdata.bin" "${GCP[@]}" --snp-max-vmpl 0 --json
json_is "vmpl" failed_check vmpl
expect 1 "other measurement" -- "$Q" verify "$V/sev-gcp.bin" "${GCP[@]}" --snp-measurement "$(printf '11%.0s' $(seq 48))" --json
json_is "other measurement" error RA_ERR_MEASUREMENT
json_is "other measurement" failed_check measurements
expect 0 "report_data as the reference states it" -- "$Q" verify "$V/sev-gcp-reportdata.bin" "${GCP[@]}" \
  --report-data 32fc4f6c1971cbf91566231f8d6153eeb9d093aa94306cb48d39bcc4861a3d395f149876a37bc91332fe493f46294fd135d5b95d363ae96352b8c45f906079f5
. "$V/sev-gcp-x25519-bound.txt"
expect 0 "X25519 binding SHA-512(nonce || key)" -- "$Q" verify "$V/sev-gcp-x25519-bound.bin" \
  --vcek "$V/sev-gcp-x25519-vcek.pem" --at "$AT" --x25519 "$X25519_KEY" --nonce "$NONCE" --json
json_is "binding" checks.binding pass
expect 1 "binding with another nonce" -- "$Q" verify "$V/sev-gcp-x25519-bound.bin" \
  --vcek "$V/sev-gcp-x25519-vcek.pem" --at "$AT" --x25519 "$X25519_KEY" --nonce "00${NONCE:2}" --json
json_is "binding refused" error RA_ERR_BINDING
expect 1 "expired at 2033" -- "$Q" verify "$V/sev-gcp.bin" --vcek "$V/sev-gcp-vcek.pem" --at 2033-06-01 --json
json_is "expired" error RA_ERR_CERT_EXPIRED
json_is "expired" failed_check chain
python3 -c "import sys; b=bytearray(open(sys.argv[1],'rb').read()); b[0x90]^=1; open(sys.argv[2],'wb').write(b)" "$V/sev-gcp.bin" "$T/flip.bin"
expect 1 "flipped measurement bit" -- "$Q" verify "$T/flip.bin" "${GCP[@]}" --json
json_is "flipped" error RA_ERR_QUOTE_SIGNATURE
json_is "flipped" failed_check report_signature
head -c 1000 "$V/sev-gcp.bin" > "$T/short.bin"
expect 1 "truncated report (with --snp)" -- "$Q" verify "$T/short.bin" --snp "${GCP[@]}" --json
json_is "truncated" error RA_ERR_QUOTE_TRUNCATED
# the certificate table an SNP guest gets with its report (configfs-tsm auxblob)
python3 - "$V" "$T/table.bin" <<'PY'
import ssl, struct, sys
v, out = sys.argv[1], sys.argv[2]
def ders(path):
    t = open(path).read()
    return [ssl.PEM_cert_to_DER_cert("-----BEGIN CERTIFICATE-----" + b) for b in t.split("-----BEGIN CERTIFICATE-----")[1:]]
vcek = ders(v + "/sev-gcp-vcek.pem")[0]
ask, ark = ders(v + "/sev-gcp-cert-chain.pem")
guids = {"vcek": "63da758de6644564adc5f4b93be8accd", "ask": "4ab7b379bbac4fe4a02f05aef327c782",
         "ark": "c0b406a4a80349529743" "3fb6014cd0ae"}
blobs = [("vcek", vcek), ("ask", ask), ("ark", ark)]
off = 24 * (len(blobs) + 1)
head, body = b"", b""
for name, d in blobs:
    head += bytes.fromhex(guids[name]) + struct.pack("<II", off + len(body), len(d))
    body += d
open(out, "wb").write(head + bytes(24) + body)
PY
expect 0 "certificate table (VCEK, ASK, ARK)" -- "$Q" verify "$V/sev-gcp.bin" --cert-table "$T/table.bin" --at "$AT" --json
json_is "table" valid true
json_is "table" chain.ask_builtin false
head -c 100 "$T/table.bin" > "$T/badtable.bin"
expect 2 "truncated certificate table" -- "$Q" verify "$V/sev-gcp.bin" --cert-table "$T/badtable.bin" --at "$AT"
expect 2 "no --vcek" -- "$Q" verify "$V/sev-gcp.bin"
expect 2 "unreadable VCEK" -- "$Q" verify "$V/sev-gcp.bin" --vcek "$T/nope.pem"
expect 2 "unreadable report" -- "$Q" verify "$T/nope.bin" --vcek "$V/sev-gcp-vcek.pem"
expect 2 "unknown option" -- "$Q" verify "$V/sev-gcp.bin" --vcek "$V/sev-gcp-vcek.pem" --bogus
expect 2 "bad hex" -- "$Q" verify "$V/sev-gcp.bin" "${GCP[@]}" --snp-measurement abc
expect 0 "show" -- "$Q" show "$V/sev-gcp-reportdata.bin" --json
json_is "show" tee SEV-SNP
json_is "show" report.version 5
json_is "show" report.vmpl 1
json_is "show" report.product Milan

# the simulated SEV-SNP TEE
S="$T/sim"
RD=$(printf 'ab%.0s' $(seq 64))
expect 0 "sim report" -- "$Q" sim --snp --dir "$S" --report-data "$RD" --out "$T/sim.bin"
SIM=(--vcek "$S/snp-vcek.pem" --ask "$S/snp-cert-chain.pem")
expect 1 "sim refused without --trust-snp-sim" -- "$Q" verify "$T/sim.bin" "${SIM[@]}" --json
json_is "sim untrusted" error RA_ERR_ROOT_UNTRUSTED
expect 0 "sim trusted by name" -- "$Q" verify "$T/sim.bin" "${SIM[@]}" --trust-snp-sim "$S" --report-data "$RD" --json
json_is "sim" valid true
json_is "sim" report.measurement "$(printf '5e%.0s' $(seq 48))"
expect 1 "wrong ARK (the sim's) for GCP's chain" -- "$Q" verify "$V/sev-gcp.bin" --vcek "$V/sev-gcp-vcek.pem" --at "$AT" --ark "$S/snp-ark.pem" --trust-snp-sim "$S" --json
json_is "wrong ARK" error RA_ERR_CHAIN_BROKEN
expect 0 "sim debug report" -- "$Q" sim --snp --dir "$S" --report-data "$RD" --out "$T/dbg.bin" --debug
expect 1 "debug refused" -- "$Q" verify "$T/dbg.bin" "${SIM[@]}" --trust-snp-sim "$S" --json
json_is "debug" error RA_ERR_DEBUG
json_is "debug" failed_check debug
expect 0 "debug allowed" -- "$Q" verify "$T/dbg.bin" "${SIM[@]}" --trust-snp-sim "$S" --allow-debug
expect 0 "Intel quotes still go the Intel way" -- "$Q" show "$RA_VECTORS/quotes/tdx-v4-tappd.dat" --json
json_is "intel show" header.tee_type TDX

[ "$fails" = 0 ] && echo "all passed" || echo "$fails failed"
[ "$fails" = 0 ]
