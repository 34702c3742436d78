# The checks the ra-quote command-line tests share (ra_quote_cli.sh,
# ra_quote_snp.sh, dstack/dstack_cli.sh, pcs/pcs_cli.sh): run a command,
# compare its exit code, read what it said. Source it after `set -u`:
#   . "$(dirname "$0")/exit_checks.sh"    (the path from the script)
# It gives:
#   $T      a fresh folder, removed on exit (a script that sets its own EXIT
#           trap removes it there)
#   fails ok fail   a verdict, "ok: ..." or "FAIL: ...", counted in $fails
#   expect CODE WHAT -- CMD...   CMD exits CODE; its stdout and stderr go to
#           $T/out and $T/err, their first $expect_shown lines shown on failure
#   says WHAT TEXT   the last command's stdout or stderr has TEXT
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
fails=0
ok() { echo "ok: $*"; }
fail() { echo "FAIL: $*"; fails=$((fails + 1)); }
shown() { sed 's/^/  | /' "$T/out" "$T/err" | head -"$expect_shown"; }
expect_shown=20
expect() {
  local want=$1 what=$2; shift 3
  "$@" >"$T/out" 2>"$T/err"
  local got=$?
  if [ "$got" != "$want" ]; then
    fail "$what: exit $got, want $want"; shown
  else
    ok "$what"
  fi
}
says() {
  if grep -qF -- "$2" "$T/out" "$T/err"; then ok "$1 says '$2'"; else
    fail "$1 does not say '$2'"; shown; fi
}
