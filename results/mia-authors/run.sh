#!/usr/bin/env bash
# The runs of results/mia-authors: every config of configs/mia-authors/ (MNIST and
# Fashion-MNIST in the FedPoisonMIA authors' protocol, 800 rounds each), two at a time on one
# thread each, then the report. A finished run (summary.json) is kept; a killed one continues
# from its checkpoint, so running this again after an interruption picks up where it stopped.
set -euo pipefail
cd "$(dirname "$0")/../.."
fl=${FL:-./target/debug/fl}
jobs=${JOBS:-2}
run() {
  local config=$1 name
  name=$(basename "$config" .toml)
  if [ -f "results/mia-authors/$name/summary.json" ]; then
    echo "$name: finished"
    return
  fi
  echo "$name: running"
  "$fl" attack mia --config "$config" --set threads=1 --out "results/mia-authors/$name" -q \
    > "results/mia-authors/$name.log" 2>&1 || { echo "$name failed: see results/mia-authors/$name.log"; return 1; }
  rm -f "results/mia-authors/$name.log"
}
export -f run
export fl
ls configs/mia-authors/*.toml | xargs -P "$jobs" -I{} bash -c 'run {}'
"$fl" experiment mia-report results/mia-authors
