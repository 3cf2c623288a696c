#!/usr/bin/env bash
# Schemathesis against a demo server, over every operation of the OpenAPI
# document the server serves (GET /openapi.json): `.ci/run` runs it after
# `cargo test --workspace`; run it by hand the same way.
#
#   scripts/schemathesis.sh [path/to/payrail]     (default: target/debug/payrail)
#
# The server is `payrail serve --demo --demo-transactions 100` on a fresh
# temporary data directory, with the bootstrap admin token from
# PAYRAIL_ADMIN_TOKEN so that every operator operation is exercised
# (money-moving ones included: it is a throwaway demo). Partner operations
# run as the demo's AOP-554, reachable from loopback without a token. The
# per-partner rate limit and the failed-authentication limit are off: with
# them on, most of the run would be answered 429 (documented, but it would
# test nothing else).
#
# Checks: all, except
#   positive_data_acceptance: a body the JSON Schema accepts may still be
#     refused (400/402/409/422) by rules no schema can state: an OTP or a
#     Stateresp payrail issued, a cursor it gave, a monthly limit, a wallet
#     balance, a state machine's move. Every refusal is still checked:
#     its status must be documented and its body must match the schema;
#   use_after_free, ensure_resource_availability: the document defines no
#     links between operations, so these stateful checks have nothing to follow.
# Bounded: --max-examples per operation, a fixed --seed, so a run is
# repeatable. One worker: with two, Hypothesis parses lambdas' source from
# two threads at once, which CPython 3.11 can fail ("AST constructor
# recursion depth mismatch", a schemathesis runtime error, not a finding).
set -euo pipefail
cd "$(dirname "$0")/.."

SCHEMATHESIS_VERSION=4.32.5
MAX_EXAMPLES=${SCHEMATHESIS_MAX_EXAMPLES:-50}
SEED=${SCHEMATHESIS_SEED:-20261204}
binary=${1:-${CARGO_TARGET_DIR:-target}/debug/payrail}

venv=$(realpath -m "${SCHEMATHESIS_VENV:-${TMPDIR:-/tmp}/payrail-schemathesis-$SCHEMATHESIS_VERSION}")
if [ ! -x "$venv/bin/st" ]; then
  echo "== installing schemathesis $SCHEMATHESIS_VERSION into $venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q "schemathesis==$SCHEMATHESIS_VERSION"
fi

data_dir=$(mktemp -d)
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
export PAYRAIL_ADMIN_TOKEN=${PAYRAIL_ADMIN_TOKEN:-schemathesis-admin-$RANDOM$RANDOM}
"$binary" serve --demo --demo-transactions 100 --data-dir "$data_dir" --listen "127.0.0.1:$port" \
  --auth-failure-limit 0 --rate-limit 0 >"$data_dir/server.log" 2>&1 &
server=$!
trap 'kill "$server" 2>/dev/null || true; wait "$server" 2>/dev/null || true; rm -rf "$data_dir"' EXIT

base="http://127.0.0.1:$port"
for _ in $(seq 1 60); do
  python3 -c "import urllib.request, sys; urllib.request.urlopen(sys.argv[1], timeout=2)" "$base/openapi.json" 2>/dev/null && break
  kill -0 "$server" 2>/dev/null || { cat "$data_dir/server.log"; exit 1; }
  sleep 0.5
done

# From the throwaway directory: schemathesis keeps a cache (crashes it
# found, to replay first) in its working directory.
run() {
  (cd "$data_dir" && "$venv/bin/st" run "$base/openapi.json" --url "$base" \
    -H "Authorization: Bearer $PAYRAIL_ADMIN_TOKEN" \
    --checks all --exclude-checks positive_data_acceptance,use_after_free,ensure_resource_availability \
    --max-examples "$MAX_EXAMPLES" --seed "$SEED" --workers 1 --no-color "$@")
}
started=$(date +%s)
# The partner API first, while AOP-554 is as the demo made it: the operator
# API's examples suspend partners, change allowlists and set keys, and
# schemathesis may try them on any partner id it has seen.
echo "== schemathesis $SCHEMATHESIS_VERSION, partner API: $MAX_EXAMPLES examples per operation, seed $SEED"
run --include-path-regex '^/(api|upstream)/' || { tail -n 40 "$data_dir/server.log"; exit 1; }
echo "== schemathesis $SCHEMATHESIS_VERSION, operator API: $MAX_EXAMPLES examples per operation, seed $SEED"
run --exclude-path-regex '^/(api|upstream)/' || { tail -n 40 "$data_dir/server.log"; exit 1; }
echo "== schemathesis passed in $(( $(date +%s) - started )) s"
