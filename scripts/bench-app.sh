#!/usr/bin/env bash
# Benchmark the `app` web service against a bare hyper "hello" server.
#
# Builds release binaries, starts the bare server and the app (SQLite, plus
# Postgres when ORCH_TEST_PG_URL is set) on 127.0.0.1, runs
# `wrk -t2 -c32 -d10s --latency` against each and prints req/s, p50, p99
# and the app/bare throughput ratio (goal: >= 0.70).
#
# Env knobs: BENCH_DURATION (10s), BENCH_CONNECTIONS (32), BENCH_THREADS (2),
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

stop_last() { # stop the most recently started server (graceful: SIGTERM)
  local pid="${PIDS[-1]}"
  kill -TERM "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  PIDS=("${PIDS[@]:0:${#PIDS[@]}-1}")
}

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

declare -A RESULT
BARE_PORT="$(free_port)"
"$BARE" "$BARE_PORT" >"$WORK/bare.log" 2>&1 &
PIDS+=($!)
wait_http "http://127.0.0.1:$BARE_PORT/"
echo "== bare hyper hello on :$BARE_PORT" >&2
RESULT[bare]="$(run_wrk bare "http://127.0.0.1:$BARE_PORT/")"
stop_last

start_app app-sqlite "sqlite://$WORK/bench.db?mode=rwc"
SQLITE_PORT="$APP_PORT"
echo "== app (sqlite) on :$SQLITE_PORT" >&2
RESULT[app-sqlite]="$(run_wrk app-sqlite "http://127.0.0.1:$SQLITE_PORT/")"
stop_last
ORDER=(bare app-sqlite)

if [ -n "${ORCH_TEST_PG_URL:-}" ]; then
  start_app app-postgres "$ORCH_TEST_PG_URL"
  PG_PORT="$APP_PORT"
  echo "== app (postgres) on :$PG_PORT" >&2
  RESULT[app-postgres]="$(run_wrk app-postgres "http://127.0.0.1:$PG_PORT/")"
  stop_last
  ORDER+=(app-postgres)
else
  echo "(ORCH_TEST_PG_URL not set: skipping the Postgres run)" >&2
fi

# Second bare run after the apps, so load drift on a shared machine
# affects both sides; the ratio uses the mean of the two bare runs.
"$BARE" "$BARE_PORT" >>"$WORK/bare.log" 2>&1 &
PIDS+=($!)
wait_http "http://127.0.0.1:$BARE_PORT/"
RESULT[bare-again]="$(run_wrk bare-again "http://127.0.0.1:$BARE_PORT/")"
stop_last
ORDER=(bare bare-again "${ORDER[@]:1}")
BARE_RPS="$(awk -v a="$(cut -d' ' -f1 <<<"${RESULT[bare]}")" -v b="$(cut -d' ' -f1 <<<"${RESULT[bare-again]}")" 'BEGIN { printf "%.2f", (a + b) / 2 }')"
echo
echo "wrk -t$THREADS -c$CONNS -d$DURATION --latency, $(nproc) CPU(s), LOG_LEVEL=$LOG_LEVEL_BENCH"
printf '%-14s %12s %10s %10s %8s\n' target req/s p50 p99 "ratio*"
for name in "${ORDER[@]}"; do
  read -r rps p50 p99 <<<"${RESULT[$name]}"
  ratio="$(awk -v a="$rps" -v b="$BARE_RPS" 'BEGIN { printf "%.2f", a / b }')"
  printf '%-14s %12s %10s %10s %8s\n' "$name" "$rps" "$p50" "$p99" "$ratio"
done
echo "* ratio = req/s / mean of the two bare runs ($BARE_RPS req/s)"
