#!/bin/bash
# Instructions per SQLite status lookup (token on), counted by callgrind in
# the server's threads: stable on a noisy machine, unlike req/s.
#
#   cargo build --release -p payrail-bench
#   crates/payrail-bench/callgrind-lookup.sh [binary] [outdir] [records] [seconds]
#
# It runs the bench under callgrind (one file per thread) and dumps the
# counts once when the bare server's phase ends and again at exit, then
# prints the payrail phase's instructions per request: the sum over every
# thread but the first three (main and the two load-generator workers,
# which start before the server's) divided by the requests payrail
# answered. The dump is timed from the "loaded" line, so it can fall a
# fraction of a second off the phase boundary; compare builds with the
# same settings. Valgrind runs SHA-256 in software (no SHA-NI), so the
# token's share is larger here than on the real CPU.
set -euo pipefail
BIN=${1:-target/release/payrail-bench}
OUT=${2:-/tmp/payrail-callgrind}
RECORDS=${3:-10000}
SECS=${4:-15}
rm -rf "$OUT"
mkdir -p "$OUT"
valgrind --tool=callgrind --separate-threads=yes --compress-strings=no --compress-pos=no \
  --callgrind-out-file="$OUT/cg.out" \
  "$BIN" --engines sqlite --records "$RECORDS" --seconds "$SECS" --rounds 1 --connections 8 \
  > "$OUT/bench.txt" 2> "$OUT/valgrind.txt" &
VPID=$!
until grep -q "loaded" "$OUT/bench.txt" 2>/dev/null; do sleep 1; done
sleep "$SECS"
callgrind_control -d "$VPID" > /dev/null
wait "$VPID"
requests=$(grep -m1 "payrail .*req/s" "$OUT/bench.txt" | sed -E 's/.*\(([0-9]+) requests.*/\1/')
total=0
for file in "$OUT"/cg.out-*; do
  thread=${file##*-}
  if [ "$((10#$thread))" -gt 3 ]; then
    total=$((total + $(grep -m1 '^summary:' "$file" | cut -d' ' -f2)))
  fi
done
cat "$OUT/bench.txt"
echo "payrail phase: $total instructions in server threads, $requests requests: $((total / requests)) per lookup"
echo "profile: callgrind_annotate --inclusive=yes $OUT/cg.out-04 (a server worker, payrail phase)"
