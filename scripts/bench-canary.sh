#!/usr/bin/env bash
# Time-to-abort and failed requests of the local canary (docs/local.md, "Canary releases"): a local
# tier of two instances judged against 99 % availability and 100 ms, steps of 10 % and 50 % baked
# BAKE seconds; under wrk load (HTTPS, CONNS connections), `orch up` ships a release that answers 5 %
# of its requests with 500, then one 200 ms slower. Prints per release: the exit of `orch up`, its
# wall time, the seconds the canary got traffic before the abort, the canary's requests, and the
# failed (non-2xx) requests among all wrk sent meanwhile. Release builds; everything on 127.0.0.1.
#
#   scripts/bench-canary.sh
#   BAKE=10 CONNS=32 scripts/bench-canary.sh
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
BAKE=${BAKE:-5}
CONNS=${CONNS:-16}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
command -v wrk >/dev/null || { echo "bench-canary: wrk is not installed (apt-get install wrk)" >&2; exit 2; }

echo "== building orch and app (release)" >&2
cargo build --release -q -p orch -p app
ORCH=$CARGO_TARGET_DIR/release/orch
export ORCH_APP_BIN=$CARGO_TARGET_DIR/release/app

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
HTTP=$(free_port); HTTPS=$(free_port); BASE=$(free_port)
WORK=$(mktemp -d)
mkdir -p "$WORK/app"
cp -r stacks "$WORK/"
cp -r app/pages "$WORK/app/"
export ORCH_ROOT=$WORK
cleanup() { "$ORCH" down --env local >/dev/null 2>&1 || true; rm -rf "$WORK"; }
trap cleanup EXIT

# The stack: fixed capacity of two, the objective and the canary; `env` gives the release its faults.
stack() {
  python3 - "$WORK/stacks/local.yaml" "$HTTP" "$HTTPS" "$BASE" "$BAKE" "$1" <<'PY'
import re, sys
path, http, https, base, bake, env = sys.argv[1:]
s = open(path).read()
s = re.sub(r"^scaling:\n(?:[ #].*\n)*", "", s, flags=re.M)
s = re.sub(r"^slo:\n(?:[ #].*\n)*", "", s, flags=re.M)
s = re.sub(r"^rollout:\n(?:[ #].*\n)*", "", s, flags=re.M)
s = re.sub(r"^  env:\n(?:    .*\n)*", "", s, flags=re.M)
s = re.sub(r"http_port: \d+", f"http_port: {http}", s)
s = re.sub(r"https_port: \d+", f"https_port: {https}", s)
s = re.sub(r"(?m)^  port: \d+", f"  port: {base}", s)
s = re.sub(r"desired: \d+", "desired: 2", s)
if env:
    k, v = env.split("=", 1)
    s = s.replace("instances:\n", f'instances:\n  env:\n    {k}: "{v}"\n', 1)
s += f"slo:\n  availability: 99\n  latency_p99_ms: 100\nrollout:\n  strategy: canary\n  steps: [10, 50]\n  bake_seconds: {bake}\n"
open(path, "w").write(s)
PY
}

stack ""
echo "== orch up --env local" >&2
"$ORCH" up --env local --detach >/dev/null 2>"$WORK/up.log" || { cat "$WORK/up.log" >&2; exit 2; }

printf '%-22s %5s %9s %14s %16s %22s\n' release exit "up (s)" "to abort (s)" "canary requests" "failed / sent"
for fault in FAULT_ERROR_PERCENT=5 FAULT_DELAY_MS=200; do
  stack "$fault"
  wrk -t2 -c"$CONNS" -d600s "https://127.0.0.1:$HTTPS/" >"$WORK/wrk.out" 2>&1 &
  WRK=$!
  sleep 1
  start=$(date +%s.%N)
  rc=0
  "$ORCH" up --env local --detach >/dev/null 2>"$WORK/up.log" || rc=$?
  end=$(date +%s.%N)
  kill -INT "$WRK"; wait "$WRK" || true
  python3 - "$WORK/.orch/local/releases.json" "$WORK/wrk.out" "$fault" "$rc" "$start" "$end" <<'PY'
import json, re, sys
releases, wrk, fault, rc, start, end = sys.argv[1:]
last = json.load(open(releases))[-1]
steps = last.get("analysis", [])
abort = steps[-1] if steps else {}
out = open(wrk).read()
sent = re.search(r"(\d+) requests in", out)
bad = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
sent = int(sent.group(1)) if sent else 0
bad = int(bad.group(1)) if bad else 0
share = f"{bad} / {sent} ({100 * bad / sent:.3f} %)" if sent else "-"
print(f"{fault:<22} {rc:>5} {float(end) - float(start):>9.1f} {abort.get('seconds', float('nan')):>14.2f} "
      f"{abort.get('canary', {}).get('requests', 0):>16} {share:>22}")
print(f"  {last['outcome']}: {last.get('reason', '')[:160]}")
PY
done
