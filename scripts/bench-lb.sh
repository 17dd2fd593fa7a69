#!/usr/bin/env bash
# Benchmark the local load balancer against HAProxy, same run, same backends, same certificate:
# wrk (HTTP/1.1) and, when installed, h2load (HTTP/2; Debian's nghttp2-client) over HTTPS through
# `orch`'s LB and through HAProxy (TLS, round robin, /healthz checks) in front of the instances
# `orch up --env local` started. Each proxy runs ROUNDS times (default 3), alternating with the
# other; prints the medians with their spread and the ratios, each proxy's own CPU time per request
# (user + system, from /proc/PID/stat), and the time from `orch up --env local` to healthy. Release
# builds; everything on 127.0.0.1.
#
#   scripts/bench-lb.sh            # 3 rounds of 10 s per run, 64 connections, 2 threads
#   DURATION=20 CONNS=128 PATH_=/healthz scripts/bench-lb.sh
#   PERF=/tmp/lb.perf scripts/bench-lb.sh   # also `perf record` the LB during its run
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
DURATION=${DURATION:-10}
CONNS=${CONNS:-64}
THREADS=${THREADS:-2}
BENCH_PATH=${PATH_:-/}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}

for tool in wrk haproxy; do
  command -v "$tool" >/dev/null || { echo "bench-lb: $tool is not installed (apt-get install $tool)" >&2; exit 2; }
done

echo "== building orch and app (release)" >&2
cargo build --release -q -p orch -p app
ORCH=$CARGO_TARGET_DIR/release/orch
export ORCH_APP_BIN=$CARGO_TARGET_DIR/release/app

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
HTTP=$(free_port); HTTPS=$(free_port); BASE=$(free_port); HAPORT=$(free_port)

WORK=$(mktemp -d)
mkdir -p "$WORK/app"
cp -r stacks "$WORK/"
cp -r app/pages "$WORK/app/"
sed -i "s/http_port: 8080/http_port: $HTTP/; s/https_port: 8443/https_port: $HTTPS/; s/port: 18080/port: $BASE/" "$WORK/stacks/local.yaml"
# Fixed capacity on both sides: without the scaling block orch keeps `desired` instances, the same set
# HAProxy is given (scaling would add instances to orch's pool only, halfway through its run).
python3 - "$WORK/stacks/local.yaml" <<'PY'
import re, sys
p = sys.argv[1]
s = open(p).read()
open(p, "w").write(re.sub(r"^scaling:\n(?:[ #].*\n)*", "", s, flags=re.M))
PY
grep -q '^scaling:' "$WORK/stacks/local.yaml" && { echo "bench-lb: could not drop the scaling block" >&2; exit 2; }
export ORCH_ROOT=$WORK

HAPID=""
cleanup() {
  [ -n "$HAPID" ] && kill "$HAPID" 2>/dev/null || true
  "$ORCH" down --env local >/dev/null 2>&1 || true
  rm -rf "$WORK"
}
trap cleanup EXIT

echo "== orch up --env local --detach" >&2
START=$(date +%s.%N)
"$ORCH" up --env local --detach -q >/dev/null
END=$(date +%s.%N)
UP_SECONDS=$(python3 -c "print(f'{$END - $START:.2f}')")

STATE=$WORK/.orch/local/state.json
TLS=$WORK/.orch/local/tls
cat "$TLS/cert.pem" "$TLS/key.pem" > "$WORK/haproxy.pem"
SERVERS=$(python3 -c "
import json
for i in json.load(open('$STATE'))['instances']:
    print(f\"    server {i['id']} {i['addr']} check inter 1s fall 2 rise 2\")")

# Same work on both sides: HAProxy gets as many threads as orch's tokio runtime has workers (one
# per core), the same certificate, TLS 1.2+ and ALPN h2,http/1.1 (as orch offers), keep-alive to the client and to the
# instances, and an access log line per request (HTTP log format, to a file, like orch's).
NTHREADS=$(nproc)
cat > "$WORK/haproxy.cfg" <<CFG
global
    maxconn 4096
    nbthread $NTHREADS
    ssl-default-bind-options ssl-min-ver TLSv1.2
    log stdout format raw local0
defaults
    mode http
    log global
    option httplog
    timeout connect 1s
    timeout client 30s
    timeout server 30s
    option http-keep-alive
    option forwardfor
    retries 1
    option redispatch
frontend https
    bind 127.0.0.1:$HAPORT ssl crt $WORK/haproxy.pem alpn h2,http/1.1
    http-request set-header X-Forwarded-Proto https
    default_backend app
backend app
    balance roundrobin
    option httpchk GET /healthz
$SERVERS
CFG
haproxy -f "$WORK/haproxy.cfg" -db >"$WORK/haproxy-access.log" 2>"$WORK/haproxy.log" &
HAPID=$!
sleep 2
kill -0 "$HAPID" 2>/dev/null || { echo "bench-lb: haproxy did not start:" >&2; cat "$WORK/haproxy.log" >&2; exit 2; }

run() { # url -> "rps p50_ms p99_ms"
  local out
  out=$(wrk -t"$THREADS" -c"$CONNS" -d"${DURATION}s" --latency -H 'Accept: application/json' "$1")
  echo "$out" > "$WORK/wrk-$2.txt"
  python3 - "$out" <<'PY'
import re, sys
out = sys.argv[1]
def ms(v):
    m = re.match(r"([\d.]+)(\w+)", v)
    if not m:
        sys.exit(f"cannot parse wrk output:\n{out}")
    n, u = m.groups()
    return float(n) * {"us": 0.001, "ms": 1, "s": 1000, "m": 60000}[u]
rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
p50 = ms(re.search(r"^\s+50%\s+(\S+)", out, re.M).group(1))
p99 = ms(re.search(r"^\s+99%\s+(\S+)", out, re.M).group(1))
errs = re.search(r"Non-2xx or 3xx responses: (\d+)|Socket errors: (.*)", out)
print(f"{rps:.0f} {p50:.2f} {p99:.2f} {errs.group(0) if errs else 'none'}")
PY
}

echo "== warming up" >&2
wrk -t1 -c8 -d2s "https://127.0.0.1:$HTTPS$BENCH_PATH" >/dev/null
wrk -t1 -c8 -d2s "https://127.0.0.1:$HAPORT$BENCH_PATH" >/dev/null

run_h2() { # url name -> "rps p50_ms p99_ms errors" from h2load's per-request log
  local log="$WORK/h2-$2.log"
  rm -f "$log"
  local out
  out=$(h2load -D "$DURATION" -c "$H2_CLIENTS" -m "$H2_STREAMS" -t "$THREADS" --log-file="$log" \
    -H 'Accept: application/json' "$1" 2>&1)
  echo "$out" > "$WORK/h2load-$2.txt"
  python3 - "$out" "$log" <<'PY'
import re, statistics, sys
out, log = sys.argv[1], sys.argv[2]
m = re.search(r"finished in [\d.]+\w+, ([\d.]+) req/s", out)
if not m:
    sys.exit(f"cannot parse h2load output:\n{out}")
lat = sorted(int(l.split()[2]) / 1000 for l in open(log) if l.strip())
pct = lambda q: lat[min(len(lat) - 1, int(q * len(lat)))]
bad = sum(1 for l in open(log) if l.strip() and not l.split()[1].startswith(("2", "3")))
print(f"{float(m.group(1)):.0f} {pct(0.5):.2f} {pct(0.99):.2f} {bad or 'none'}")
PY
}

H2_CLIENTS=${H2_CLIENTS:-16}
H2_STREAMS=${H2_STREAMS:-4}
ROUNDS=${ROUNDS:-3}
RESULTS=$WORK/results.txt
: > "$RESULTS"
echo "== load before the runs: $(uptime)" >&2
echo "== $ROUNDS alternating rounds: wrk -t$THREADS -c$CONNS -d${DURATION}s (HTTP/1.1)$(command -v h2load >/dev/null && echo ", h2load -c$H2_CLIENTS -m$H2_STREAMS (HTTP/2)") https://127.0.0.1:PORT$BENCH_PATH" >&2
LBPID=$(python3 -c "import json; print(json.load(open('$STATE'))['pid'])")
cpu() { awk '{print $14 + $15}' "/proc/$1/stat"; } # user + system CPU of a process, in ticks
measured() { # name pid run-function url -> "cpu_ticks rps p50 p99 errors"
  local before out
  before=$(cpu "$2")
  out=$("$3" "$4" "$1")
  echo "$(( $(cpu "$2") - before )) $out"
}
if [ -n "${PERF:-}" ]; then
  perf record -F 499 -g -p "$LBPID" -o "$PERF" -- sleep "$((DURATION - 1))" >/dev/null 2>&1 &
fi
for round in $(seq 1 "$ROUNDS"); do
  echo "h1 orch-lb $(measured "orch-$round" "$LBPID" run "https://127.0.0.1:$HTTPS$BENCH_PATH")" >> "$RESULTS"
  echo "h1 haproxy $(measured "haproxy-$round" "$HAPID" run "https://127.0.0.1:$HAPORT$BENCH_PATH")" >> "$RESULTS"
  if command -v h2load >/dev/null; then
    echo "h2 orch-lb $(measured "orch-$round" "$LBPID" run_h2 "https://127.0.0.1:$HTTPS$BENCH_PATH")" >> "$RESULTS"
    echo "h2 haproxy $(measured "haproxy-$round" "$HAPID" run_h2 "https://127.0.0.1:$HAPORT$BENCH_PATH")" >> "$RESULTS"
  fi
  echo "   round $round done: $(uptime | sed 's/.*load/load/')" >&2
done

python3 - "$RESULTS" "$DURATION" "$(getconf CLK_TCK)" <<'PY'
import statistics, sys
duration, tck = float(sys.argv[2]), float(sys.argv[3])
rows = {}
for line in open(sys.argv[1]):
    proto, proxy, ticks, rps, p50, p99, *err = line.split()
    # The proxy process's own CPU (user + system) per request, in microseconds.
    cpu_us = float(ticks) / tck * 1e6 / (float(rps) * duration)
    rows.setdefault((proto, proxy), []).append((float(rps), float(p50), float(p99), cpu_us, " ".join(err)))
print(f"\n{'protocol':<9}{'proxy':<9}{'req/s (median, min-max)':>28}{'p50 ms':>9}{'p99 ms (median, min-max)':>28}{'CPU µs/req':>12}  errors")
med = {}
for (proto, proxy), runs in sorted(rows.items()):
    rps, p50, p99, cpu_us = ([r[i] for r in runs] for i in range(4))
    med[(proto, proxy)] = (statistics.median(rps), statistics.median(p99))
    errs = sorted({r[4] for r in runs})
    print(f"{proto:<9}{proxy:<9}{statistics.median(rps):>12.0f} ({min(rps):.0f}-{max(rps):.0f}){'':>2}"
          f"{statistics.median(p50):>9.2f}{statistics.median(p99):>14.2f} ({min(p99):.2f}-{max(p99):.2f})"
          f"{statistics.median(cpu_us):>12.1f}  {','.join(errs)}")
for proto in sorted({p for p, _ in med}):
    (orps, op99), (hrps, hp99) = med[(proto, "orch-lb")], med[(proto, "haproxy")]
    print(f"{proto}: orch/haproxy medians: req/s {orps / hrps:.2f}x, p99 {op99 / hp99:.2f}x")
PY
echo "time from 'orch up --env local' to healthy (verified): ${UP_SECONDS} s"
echo "access log lines: orch $(cat "$WORK"/.orch/local/access.log* | wc -l) (the log rotates at 64 MiB), haproxy $(wc -l <"$WORK/haproxy-access.log"); $NTHREADS worker threads each; load after: $(uptime | sed 's/.*load/load/')"
