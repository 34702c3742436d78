#!/usr/bin/env bash
# Installs the build into a temporary prefix and builds an outside program
# against it with `pkg-config --cflags --libs raloop`, linked both to the
# shared library and statically (--static), then runs both.
set -euo pipefail
build=$1
. "$(dirname "$0")/../lib.sh"
install_build "$build"
pkg-config --exists raloop
test -f "$prefix/include/raloop.h"
test -f "$prefix/include/raloop/attest/tunnel/server.h"
# (`! cmd` never trips set -e: test the list instead)
internal=$(find "$prefix/include" -name '*_internal.h')
[ -z "$internal" ] || { echo "FAIL: internal headers installed: $internal"; exit 1; }
src="$RA_SRC/tests/apps/pkgconfig_app.c"
# The app is built without sanitizers even when the library was: use the
# plain toolchain flags only; skip the sanitized build trees.
cc -std=c11 -Wall -Wextra -Wno-unused-parameter -Werror "$src" -o "$prefix/app-shared" $(pkg-config --cflags --libs raloop)
libdir=$(pkg-config --variable=libdir raloop)
LD_LIBRARY_PATH="$libdir" "$prefix/app-shared"
cc -std=c11 -Wall -Wextra -Wno-unused-parameter -Werror "$src" -o "$prefix/app-static" \
  $(pkg-config --cflags raloop) "$libdir/libraloop.a" "$libdir/libraloop-attest.a" \
  $(pkg-config --libs --static raloop | sed -E 's/-lraloop(-attest)?( |$)/ /g')
"$prefix/app-static"
echo "pkg-config build: shared and static OK"
