#!/usr/bin/env bash
# Benchmark the `app` web service against a bare hyper "hello" server.
#
# Builds release binaries, starts the bare server and the app (SQLite, plus
# Postgres when ORCH_TEST_PG_URL is set) on 127.0.0.1, runs
# `wrk -t2 -c32 -d10s --latency` against each and prints req/s, p50, p99
# and the app/bare throughput ratio of the medians (goal: >= 0.80). Each server runs
# ROUNDS times (default 3), alternating with the others.
#
# Env knobs: ROUNDS (3), BENCH_DURATION (10s), BENCH_CONNECTIONS (32), BENCH_THREADS (2),
# BENCH_LOG_LEVEL (info: one JSON access-log line per request, as in prod),
# CARGO_TARGET_DIR, ORCH_TEST_PG_URL.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
DURATION="${BENCH_DURATION:-10s}"
CONNS="${BENCH_CONNECTIONS:-32}"
THREADS="${BENCH_THREADS:-2}"
LOG_LEVEL_BENCH="${BENCH_LOG_LEVEL:-info}"
TARGET_DIR="${CARGO_TARGET_DIR:-$PWD/target}"
WORK="$(mktemp -d /tmp/bench-app.XXXXXX)"
PIDS=()

cleanup() {
  for pid in "${PIDS[@]}"; do
    kill "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  done
  rm -rf "$WORK"
}
trap cleanup EXIT INT TERM

if ! command -v wrk >/dev/null 2>&1; then
  echo "wrk not found; installing (Debian package 'wrk')" >&2
  if [ "$(id -u)" = 0 ]; then apt-get install -y wrk >/dev/null; else sudo apt-get install -y wrk >/dev/null; fi
fi

echo "== building release binaries" >&2
cargo build --release -p app --bin app --example bare >&2
APP="$TARGET_DIR/release/app"
BARE="$TARGET_DIR/release/examples/bare"

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'; }

wait_http() { # url
  for _ in $(seq 1 100); do
    if curl -fsS -o /dev/null "$1" 2>/dev/null; then return 0; fi
    sleep 0.1
  done
  echo "server at $1 did not become ready" >&2
  return 1
}

start_app() { # name database_url -> sets APP_PORT (no subshell: PIDS must persist)
  local name="$1" url="$2" port
  port="$(free_port)"
  PORT="$port" BIND=127.0.0.1 DATABASE_URL="$url" INSTANCE_ID="i-0bench0000000000$((RANDOM % 10))" \
    AVAILABILITY_ZONE=local-bench LOG_LEVEL="$LOG_LEVEL_BENCH" IMDS_ENDPOINT=http://127.0.0.1:9 \
    "$APP" >"$WORK/$name.log" 2>&1 &
  PIDS+=($!)
  wait_http "http://127.0.0.1:$port/readyz"
  APP_PORT="$port"
}

# run_wrk name url -> "req_s p50 p99"
run_wrk() {
  local name="$1" url="$2" out
  wrk -t"$THREADS" -c"$CONNS" -d2s "$url" >/dev/null 2>&1 || true # warm-up
  out="$(wrk -t"$THREADS" -c"$CONNS" -d"$DURATION" --latency "$url")"
  echo "$out" >"$WORK/$name.wrk"
  local rps p50 p99 errs
  rps="$(awk '/^Requests\/sec:/ {print $2}' <<<"$out")"
  p50="$(awk '$1=="50%" {print $2}' <<<"$out")"
  p99="$(awk '$1=="99%" {print $2}' <<<"$out")"
  errs="$(awk '/Non-2xx or 3xx responses:/ {print $NF}' <<<"$out")"
  if [ -n "$errs" ]; then echo "WARNING: $name had $errs non-2xx responses" >&2; fi
  echo "$rps $p50 $p99"
}

ROUNDS="${ROUNDS:-3}"
BARE_PORT="$(free_port)"
"$BARE" "$BARE_PORT" >"$WORK/bare.log" 2>&1 &
PIDS+=($!)
wait_http "http://127.0.0.1:$BARE_PORT/"
declare -A URL=([bare]="http://127.0.0.1:$BARE_PORT/")
ORDER=(bare)
start_app app-sqlite "sqlite://$WORK/bench.db?mode=rwc"
URL[app-sqlite]="http://127.0.0.1:$APP_PORT/"
ORDER+=(app-sqlite)
if [ -n "${ORCH_TEST_PG_URL:-}" ]; then
  start_app app-postgres "$ORCH_TEST_PG_URL"
  URL[app-postgres]="http://127.0.0.1:$APP_PORT/"
  ORDER+=(app-postgres)
else
  echo "(ORCH_TEST_PG_URL not set: skipping the Postgres run)" >&2
fi

# Every server runs throughout; each round measures them in turn (bare, app, bare, app, ...), so
# drift in the machine's load reaches all of them alike. Medians of the rounds, with the spread.
RESULTS="$WORK/results.txt"
: >"$RESULTS"
echo "== load before the runs: $(uptime | sed 's/.*load/load/')" >&2
for round in $(seq 1 "$ROUNDS"); do
  for name in "${ORDER[@]}"; do
    echo "$name $(run_wrk "$name-$round" "${URL[$name]}")" >>"$RESULTS"
  done
  echo "   round $round done: $(uptime | sed 's/.*load/load/')" >&2
done

echo
echo "wrk -t$THREADS -c$CONNS -d$DURATION --latency, $(nproc) CPU(s), LOG_LEVEL=$LOG_LEVEL_BENCH, $ROUNDS rounds"
python3 - "$RESULTS" "${ORDER[@]}" <<'PY2'
import re, statistics, sys
def ms(v):
    n, u = re.match(r"([\d.]+)(\w+)", v).groups()
    return float(n) * {"us": 0.001, "ms": 1, "s": 1000}[u]
runs = {}
for line in open(sys.argv[1]):
    name, rps, p50, p99 = line.split()
    runs.setdefault(name, []).append((float(rps), ms(p50), ms(p99)))
bare = statistics.median(r[0] for r in runs["bare"])
print(f"{'target':<14}{'req/s median (min-max)':>30}{'p50 ms':>9}{'p99 ms':>9}{'ratio':>8}")
for name in sys.argv[2:]:
    rps = [r[0] for r in runs[name]]
    med = statistics.median(rps)
    p50 = statistics.median(r[1] for r in runs[name])
    p99 = statistics.median(r[2] for r in runs[name])
    spread = f"({min(rps):.0f}-{max(rps):.0f})"
    ratio = "-" if name == "bare" else f"{med / bare:.2f}"
    print(f"{name:<14}{med:>14.0f} {spread:>15}{p50:>9.3f}{p99:>9.2f}{ratio:>8}")
print("ratio = the app's median req/s / bare hyper's median req/s (goal: >= 0.80, issue 29)")
PY2
echo "load after: $(uptime | sed 's/.*load/load/')"
