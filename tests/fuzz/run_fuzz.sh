#!/usr/bin/env bash
# run_fuzz.sh FUZZER WORKDIR SEEDS REGRESS SECONDS
# Replays every regression input, then fuzzes from the seeds for SECONDS.
set -euo pipefail
fuzzer=$1 work=$2 seeds=$3 regress=$4 secs=$5
mkdir -p "$work"
if [ -d "$regress" ] && [ -n "$(ls -A "$regress" 2>/dev/null)" ]; then
  "$fuzzer" -runs=0 "$regress"/*
fi
dirs=("$work")
[ -d "$seeds" ] && dirs+=("$seeds")
exec "$fuzzer" -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 \
  -artifact_prefix="$work/" -print_final_stats=1 "${dirs[@]}"
