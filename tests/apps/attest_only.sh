#!/usr/bin/env bash
# A verifier-only program links against libraloop-attest ALONE: installs the
# build into a temporary prefix, builds tests/apps/attest_only.c with
# `pkg-config --cflags --libs raloop-attest` (shared, then static), verifies
# a sample quote with both, and checks that neither the program nor
# libraloop-attest needs libraloop (no ra_loop_ symbol, no libraloop.so) or
# libsodium.
set -euo pipefail
build=$1
. "$(dirname "$0")/../lib.sh"
install_build "$build"
pkg-config --exists raloop-attest
libdir=$(pkg-config --variable=libdir raloop-attest)
src="$RA_SRC/tests/apps/attest_only.c"
quote="$RA_VECTORS/quotes/tdx-v4-tappd.dat"
at=1780000000 # 2026-05-28: inside the PCK leaf's validity (2024-08-02 .. 2031-08-02)
cflags=(-std=c11 -Wall -Wextra -Wno-unused-parameter -Werror)

fail() { echo "FAIL: $*" >&2; exit 1; }

# shared: libraloop-attest.so and what it needs, nothing of libraloop
cc "${cflags[@]}" "$src" -o "$prefix/attest-shared" $(pkg-config --cflags --libs raloop-attest)
LD_LIBRARY_PATH="$libdir" "$prefix/attest-shared" "$quote" "$at" | tee "$prefix/out"
grep -q "VALID OK: valid (signatures only: TCB not evaluated) (chain 3, root .*Intel SGX Root CA" "$prefix/out" || fail "verdict"
LD_LIBRARY_PATH="$libdir" ldd "$prefix/attest-shared" >"$prefix/ldd"
grep -q "libraloop-attest.so" "$prefix/ldd" || fail "not linked to libraloop-attest.so"
! grep -E "libraloop\.so|libsodium" "$prefix/ldd" || fail "needs libraloop or libsodium"
! nm -D --undefined-only "$prefix/attest-shared" | grep -w "U ra_loop_.*" || fail "needs ra_loop_"
# the library itself: every ra_ symbol it uses is its own, no loop, no sodium
! nm -D --undefined-only "$libdir/libraloop-attest.so" | grep -E " (ra_|sodium_|crypto_hash|randombytes)" ||
  fail "libraloop-attest.so needs symbols from elsewhere"
! nm -D --defined-only "$libdir/libraloop-attest.so" | grep -w "T ra_loop_.*" ||
  fail "libraloop-attest.so carries the loop"

# static: libraloop-attest.a and OpenSSL only
cc "${cflags[@]}" "$src" -o "$prefix/attest-static" $(pkg-config --cflags raloop-attest) \
  "$libdir/libraloop-attest.a" $(pkg-config --libs --static raloop-attest | sed -E 's/-lraloop-attest( |$)/ /g')
"$prefix/attest-static" "$quote" "$at" | grep -q "VALID OK" || fail "static verdict"
! nm "$prefix/attest-static" | grep -E " [TU] (ra_loop_|ra_http_|ra_ws_)" || fail "static build pulled the loop"
# a quote that does not verify (the time before its PCK leaf) says why, exit 1
rc=0
LD_LIBRARY_PATH="$libdir" "$prefix/attest-shared" "$quote" 1500000000 >"$prefix/out" || rc=$?
[ "$rc" = 1 ] && grep -q "INVALID RA_ERR_CERT_NOT_YET_VALID" "$prefix/out" || fail "not-yet-valid verdict (rc $rc)"
echo "attest-only build: shared and static OK, no libraloop"
