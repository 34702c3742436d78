#!/usr/bin/env bash
# Installs what raloop needs to build, test and benchmark on Debian 12:
# Debian packages (apt-get; sudo when not root) and the npm packages the
# interop tests use (tests/package-lock.json). Idempotent: installs only
# what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

pkgs=(build-essential cmake pkg-config libsodium-dev libcbor-dev libssl-dev libjansson-dev
      libcmocka-dev node-llhttp clang libclang-rt-14-dev libfuzzer-14-dev curl wrk nginx-light
      nodejs npm procps util-linux chromium fonts-liberation librsvg2-bin python3 openssl
      haproxy python3-prometheus-client libnginx-mod-stream jq time)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
# Node.js may come from elsewhere than Debian: a working node+npm is enough.
if command -v node >/dev/null && command -v npm >/dev/null; then
  missing=("${missing[@]/nodejs}"); missing=("${missing[@]/npm}")
fi
read -r -a missing <<<"${missing[*]:-}"
if [ ${#missing[@]} -gt 0 ]; then
  sudo=""; [ "$(id -u)" -eq 0 ] || sudo=sudo
  echo "deps: installing ${missing[*]}"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# `npm install --no-save` installs the lock file's versions without rewriting
# it. (`npm ci` refuses this lock: cbor-x's optional native extractor lists
# per-platform packages the registry here does not serve; cbor-x runs without
# them, in JavaScript.)
if [ ! -d tests/node_modules ] || [ tests/package-lock.json -nt tests/node_modules ]; then
  echo "deps: npm install (tests/, from package-lock.json)"
  (cd tests && npm install --no-save --no-audit --no-fund --loglevel=error && touch node_modules)
fi
