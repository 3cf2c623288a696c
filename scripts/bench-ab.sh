#!/bin/bash
# Alternates payrail-bench builds, round by round, so that each build meets
# the machine's spells as often as the other (the machine's speed drifts
# with its host's other work more than most changes move the figures):
#
#   scripts/bench-ab.sh OUT RECORDS SECONDS ROUNDS name=binary[:VAR=value] ...
#
# e.g. scripts/bench-ab.sh /tmp/ab.txt 100000 8 3 before=/tmp/bench-before after=target/release/payrail-bench
# Each build runs `--engines sqlite --rounds 1` once per round; OUT gets
# the req/s, CPU per request and ratio lines of every run.
set -euo pipefail
out=$1 records=$2 seconds=$3 rounds=$4
shift 4
: > "$out"
for round in $(seq "$rounds"); do
  for spec in "$@"; do
    name=${spec%%=*}
    rest=${spec#*=}
    binary=${rest%%:*}
    env=()
    if [ "$rest" != "$binary" ]; then env=("${rest#*:}"); fi
    echo "== $name round $round" >> "$out"
    env "${env[@]}" X=1 "$binary" --engines sqlite --records "$records" --seconds "$seconds" --rounds 1 2>&1 \
      | grep -E "req/s|ratio" >> "$out"
  done
done
echo done >> "$out"
