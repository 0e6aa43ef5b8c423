#!/usr/bin/env bash
# Load test of the REST server: 1,000,000 generated plays in SQLite, `echostats serve`
# (release), and wrk with 100 connections on the overview and on history pages.
#
#   benches/serve_load.sh [ENTRIES] [SECONDS]      (defaults: 1000000, 20)
#   ECHOSTATS_EXPORT=/path/to/export benches/serve_load.sh   (reuse a generated export)
#
# Needs wrk (Debian package `wrk`). Prints requests/s and the latency percentiles wrk
# reports (p50, p75, p90, p99) for each route; the target on the 2-core CI machine is
# >= 10,000 requests/s on the overview with p99 < 20 ms.
set -euo pipefail
cd "$(dirname "$0")/.."
ENTRIES="${1:-1000000}"
SECONDS_PER_ROUTE="${2:-20}"
command -v wrk >/dev/null || { echo "wrk is required (apt-get install wrk)" >&2; exit 1; }
cargo build --release -q -p echostats-http
BIN="$PWD/target/release/echostats"
WORK="${ECHOSTATS_BENCH_DIR:-$PWD/bench-out/serve}"
mkdir -p "$WORK"
EXPORT="${ECHOSTATS_EXPORT:-$WORK/export}"
if [ ! -d "$EXPORT" ]; then
  "$BIN" generate-sample --entries "$ENTRIES" --out "$EXPORT"
fi
DB="$WORK/serve.db"
if [ ! -f "$DB" ]; then
  "$BIN" --database-url "sqlite://$DB" --user bench import "$EXPORT"
fi
PORT="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
JWT_SECRET="$(head -c 48 /dev/urandom | base64 | tr -d '\n')" ECHOSTATS_RATE_LIMIT=0 \
  "$BIN" --database-url "sqlite://$DB" --user bench serve --bind "127.0.0.1:$PORT" --dev-login \
  >"$WORK/server.log" 2>&1 &
SERVER_PID=$!
trap 'kill "$SERVER_PID" 2>/dev/null || true' EXIT
BASE="http://127.0.0.1:$PORT"
for _ in $(seq 1 60); do curl -fsS "$BASE/api/health" >/dev/null 2>&1 && break; sleep 0.5; done
TOKEN="$(curl -fsS -X POST "$BASE/api/v1/auth/dev-login" | python3 -c 'import json, sys; print(json.load(sys.stdin)["token"])')"

run() {
  local name="$1" path="$2"
  curl -fsS -o /dev/null -H "Authorization: Bearer $TOKEN" "$BASE$path" || { echo "$path failed" >&2; exit 1; }
  echo "== $name: GET $path (100 connections, ${SECONDS_PER_ROUTE}s)"
  wrk -t2 -c100 -d"${SECONDS_PER_ROUTE}s" --latency -H "Authorization: Bearer $TOKEN" "$BASE$path" \
    | grep -E "Requests/sec|^ +(50|75|90|99)%|Non-2xx|Socket errors"
}
run "overview (month)" "/api/v1/analytics/overview?period=month"
run "overview (all_time)" "/api/v1/analytics/overview?period=all_time"
run "history page" "/api/v1/history?page=3&limit=50"
