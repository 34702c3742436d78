# The preamble the shell integration tests share, so that each script holds
# only what it tests. Source it right after `set -euo pipefail` (or `set -u`):
#   . "$(dirname "$0")/../lib.sh"      (the path from the script to tests/)
# It gives:
#   $tmp      a fresh folder, removed on exit
#   pids      background processes to stop on exit (`pids+=($!)`): each gets
#             SIG$stop_signal (TERM unless the script sets it) and is waited
#             for, so that none outlives the test; a script may define
#             before_stop, run first (e.g. to tell a loop to end)
#   fails ok bad expect   a check's verdict: "ok   NAME" or "FAIL NAME...",
#             counted in $fails (a script ends with its own `exit` on it);
#             expect clips WANT and GOT to $expect_clip characters if set
#   check NAME CMD...   passes if CMD (a test, a grep...) succeeds
#   check_exit NAME WANT_EXIT CMD...   CMD's exit code; its output in
#             $tmp/check.out and .err, shown with "${check_show[@]}" on failure
#   free_port          a free TCP port on 127.0.0.1
#   wait_for FILE PATTERN PID NAME   until PATTERN is in FILE
#   await_port OUT ERR PID NAME [SED [TRIES]]   sets $port from OUT: SED
#             (ra-hello's line unless given) picks it out, TRIES x 50 ms (200)
#   install_build BUILD   `cmake --install` of BUILD into $prefix (in $tmp),
#             pkg-config pointed at it, as a program built outside would see it
#   serve NAME SED CMD...   CMD in the background (out and err in
#             $tmp/NAME.out, .err; in pids), waited for: sets NAME_port, $server_pid
# wait_for, await_port and serve exit the script if the process dies or is late:
# nothing after them could pass.

tmp=$(mktemp -d)
pids=()
stop_signal=TERM
cleanup() {
  if declare -F before_stop >/dev/null; then before_stop; fi
  for p in "${pids[@]}"; do kill -"$stop_signal" "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
  rm -rf "$tmp"
}
trap cleanup EXIT

fails=0
ok() { echo "ok   $1"; }
bad() { echo "FAIL $1"; fails=$((fails + 1)); }
expect_clip=
expect() { # expect NAME WANT GOT
  if [ "$2" = "$3" ]; then ok "$1"; else
    local want=$2 got=$3
    if [ -n "$expect_clip" ]; then want=${want:0:$expect_clip} got=${got:0:$expect_clip}; fi
    bad "$1: want '$want', got '$got'"
  fi
}
# A compound condition (A && B) is passed through eval so that check sees all
# of it: written bare, only A would be checked and B would run outside check.
check() { # check NAME COMMAND...
  local name=$1; shift
  if "$@"; then ok "$name"; else bad "$name"; fi
}
check_show=(cat)
check_exit() { # check_exit NAME EXPECTED_EXIT CMD...
  local name=$1 want=$2; shift 2
  local rc=0
  "$@" >"$tmp/check.out" 2>"$tmp/check.err" || rc=$?
  if [ "$rc" = "$want" ]; then ok "$name"; else
    bad "$name: exit $rc, want $want"; "${check_show[@]}" "$tmp/check.out" "$tmp/check.err"; fi
}

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_for() { # wait_for FILE PATTERN PID NAME
  for _ in $(seq 1 200); do
    grep -q "$2" "$1" 2>/dev/null && return 0
    kill -0 "$3" 2>/dev/null || { echo "$4 died" >&2; cat "$1" "$1.err" >&2 2>/dev/null; exit 1; }
    sleep 0.05
  done
  echo "$4 did not start" >&2; exit 1
}
# the port in ra-hello's line "listening on http://127.0.0.1:PORT", also in
# a log that has its stdout and stderr together
hello_port_sed='s|.*listening on http://127\.0\.0\.1:\([0-9][0-9]*\).*|\1|p'
await_port() { # await_port OUT ERR PID NAME [SED [TRIES]]
  local out=$1 err=$2 pid=$3 name=$4 pick=${5:-$hello_port_sed} tries=${6:-200}
  port=
  for _ in $(seq 1 "$tries"); do
    port=$(sed -n "$pick" "$out" 2>/dev/null || true)
    [ -n "$port" ] && return 0
    kill -0 "$pid" 2>/dev/null || { cat "$err" >&2; echo "$name died" >&2; exit 1; }
    sleep 0.05
  done
  echo "$name: no port" >&2; cat "$err" >&2; exit 1
}
serve() { # serve NAME SED CMD...: SED as for await_port ("" for ra-hello's)
  local name=$1 pick=${2:-$hello_port_sed}; shift 2
  "$@" >"$tmp/$name.out" 2>"$tmp/$name.err" &
  server_pid=$!
  pids+=("$server_pid")
  await_port "$tmp/$name.out" "$tmp/$name.err" "$server_pid" "$name" "$pick"
  printf -v "${name}_port" %s "$port"
}
install_build() { # install_build BUILD: sets $prefix
  prefix="$tmp/prefix"
  cmake --install "$1" --prefix "$prefix" >/dev/null
  export PKG_CONFIG_PATH="$prefix/lib/pkgconfig:$prefix/lib/$(gcc -print-multiarch 2>/dev/null)/pkgconfig"
}
