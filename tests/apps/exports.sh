#!/usr/bin/env bash
# The shared libraries export the documented API and nothing else: every
# dynamic symbol of libraloop.so and libraloop-attest.so is an ra_ name
# declared RA_API in an installed header, every RA_API declaration is
# exported by one of them, and libraloop-attest exports nothing of the loop,
# HTTP, WebSocket or tunnel layers. llhttp's symbols stay inside.
set -euo pipefail
build=$1
. "$(dirname "$0")/../lib.sh"
install_build "$build"
libdir=$(dirname "$(find "$prefix" -name libraloop.so | head -1)")
inc="$prefix/include"
declared=$(grep -rhoE '^RA_API [^(]*\bra_[a-z0-9_]+(\(|\[)' "$inc" | grep -oE 'ra_[a-z0-9_]+(\(|\[)$' | tr -d '([' | sort -u)
unmarked=$(grep -rnE '^[a-z][a-z_0-9 ]*[ *]ra_[a-z0-9_]+\(' "$inc" | grep -vE ':(static|typedef|RA_API)' || true)
[ -z "$unmarked" ] || bad "installed headers declare functions without RA_API: $unmarked"
exported() { nm -D --defined-only "$1" | awk '$2 ~ /^[TDBR]$/ {print $3}' | sort -u; }
all=$( (exported "$libdir/libraloop.so"; exported "$libdir/libraloop-attest.so") | sort -u)
extra=$(comm -23 <(echo "$all") <(echo "$declared"))
missing=$(comm -13 <(echo "$all") <(echo "$declared"))
[ -z "$extra" ] || bad "exported but not declared RA_API in an installed header: $(echo $extra)"
[ -z "$missing" ] || bad "declared RA_API but not exported: $(echo $missing)"
leak=$(exported "$libdir/libraloop-attest.so" | grep -E '^ra_(loop|stream|http|ws|router|req|res|tunnel|listen)' || true)
[ -z "$leak" ] || bad "libraloop-attest exports framework symbols: $(echo $leak)"
if nm -D --defined-only "$libdir/libraloop.so" | grep -q llhttp; then bad "llhttp symbols exported"; fi
if readelf -d "$libdir/libraloop-attest.so" | grep -q 'libraloop\.so'; then bad "libraloop-attest needs libraloop"; fi
echo "exports: $(echo "$all" | wc -l) symbols, $(echo "$declared" | wc -l) declared"
[ "$fails" -eq 0 ] && echo "exports: OK" || exit 1
