#!/usr/bin/env bash
# Measures `orch up` on the no-op path against moto with the fake pulumi: one real deployment, then
# N reruns that must take the no-op path. Prints the wall time of each rerun and the pulumi/push
# figures. Starts its own moto on 127.0.0.1 (stopped on exit) unless ORCH_TEST_MOTO is set.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
RUNS=${RUNS:-5}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
cargo build --quiet --bin orch
ORCH=$CARGO_TARGET_DIR/debug/orch
WORK=$(mktemp -d /tmp/orch-bench.XXXXXX)
cleanup() { [ -n "${MOTO_PID:-}" ] && kill "$MOTO_PID" 2>/dev/null; [ -n "${WEB_PID:-}" ] && kill "$WEB_PID" 2>/dev/null; rm -rf "$WORK"; }
trap cleanup EXIT

if [ -z "${ORCH_TEST_MOTO:-}" ]; then
  PORT=${BENCH_MOTO_PORT:-55599}
  MOTO_ACM_VALIDATION_WAIT=1 moto_server -H 127.0.0.1 -p "$PORT" >"$WORK/moto.log" 2>&1 &
  MOTO_PID=$!
  for _ in $(seq 1 100); do (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null && break; sleep 0.1; done
  ORCH_TEST_MOTO=http://127.0.0.1:$PORT
fi
# The "live URL": a static server answering /healthz.
mkdir -p "$WORK/www" && echo ok >"$WORK/www/healthz"
WEB_PORT=${BENCH_WEB_PORT:-55598}
(cd "$WORK/www" && exec python3 -m http.server "$WEB_PORT" --bind 127.0.0.1) >/dev/null 2>&1 &
WEB_PID=$!
for _ in $(seq 1 100); do (exec 3<>"/dev/tcp/127.0.0.1/$WEB_PORT") 2>/dev/null && break; sleep 0.1; done

ID=bench$RANDOM
mkdir -p "$WORK/project/stacks" "$WORK/project/app"
cp -r pulumi "$WORK/project/" && cp -r app/pages "$WORK/project/app/"
sed -e "s#s3://orch-state-dev#s3://orch-state-$ID#" -e "s#dev.orch-demo.net#dev.$ID.net#" -e "s#parent_zone: orch-demo.net#parent_zone: $ID.net#" \
  stacks/dev.yaml >"$WORK/project/stacks/$ID.yaml"
export ORCH_ROOT=$WORK/project NO_COLOR=1
export AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing AWS_REGION=eu-west-1 AWS_ENDPOINT_URL=$ORCH_TEST_MOTO
export ORCH_PULUMI=$ROOT/tests/fake-pulumi/pulumi FAKE_PULUMI_STATE=$WORK/pulumi FAKE_PULUMI_LOG=$WORK/pulumi.log
export FAKE_PULUMI_URL=http://127.0.0.1:$WEB_PORT PULUMI_CONFIG_PASSPHRASE=bench
export ORCH_IMAGE=123456789012.dkr.ecr.eu-west-1.amazonaws.com/orch-app@sha256:$(printf 'c%.0s' $(seq 1 64))

start=$(date +%s.%N)
"$ORCH" up --env "$ID" >/dev/null 2>"$WORK/first.err" || { cat "$WORK/first.err"; exit 1; }
echo "first deployment (all steps, fake pulumi): $(echo "$(date +%s.%N) - $start" | bc) s"
ups_before=$(grep -c '^\["up"' "$WORK/pulumi.log")
worst=0
for i in $(seq 1 "$RUNS"); do
  s=$(date +%s.%N)
  "$ORCH" up --env "$ID" >/dev/null 2>"$WORK/noop.err"
  t=$(echo "$(date +%s.%N) - $s" | bc)
  grep -q "no changes since the last deployment" "$WORK/noop.err" || { echo "run $i did not take the no-op path:"; cat "$WORK/noop.err"; exit 1; }
  echo "no-op rerun $i: ${t} s"
  worst=$(echo "if ($t > $worst) $t else $worst" | bc)
done
ups_after=$(grep -c '^\["up"' "$WORK/pulumi.log")
pushed=$(grep -o '([0-9]* bytes pushed)' "$WORK/noop.err" || echo "(push skipped: 0 bytes)")
echo "worst no-op: ${worst} s (goal <= 2 s); pulumi up runs during no-op reruns: $((ups_after - ups_before)); image: $pushed"
