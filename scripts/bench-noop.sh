#!/usr/bin/env bash
# Measures `orch up` on the no-op path against moto with the fake pulumi: one real deployment, then
# N reruns that must take the no-op path. Prints the wall time of each rerun and the pulumi/push
# figures. Starts its own moto on 127.0.0.1 (stopped on exit) unless ORCH_TEST_MOTO is set, and a
# local tier as the "live URL" the post-deploy verify suite runs against (stopped on exit).
# REGISTRY=host:port (e.g. a docker-registry): build the image and push it there instead of pinning
# ORCH_IMAGE, so each rerun includes the image build (cargo no-op + layer assembly) it does for real.
set -euo pipefail
. "$(dirname "$0")/lib/venv.sh"
cd "$(dirname "$0")/.."
ROOT=$PWD
RUNS=${RUNS:-5}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
cargo build --quiet --bin orch
ORCH=$CARGO_TARGET_DIR/debug/orch
WORK=$(mktemp -d /tmp/orch-bench.XXXXXX)
cleanup() {
  [ -n "${MOTO_PID:-}" ] && kill "$MOTO_PID" 2>/dev/null
  [ -d "$WORK/project" ] && ORCH_ROOT=$WORK/project "$ORCH" down --env local >/dev/null 2>&1
  rm -rf "$WORK"
}
trap cleanup EXIT

if [ -z "${ORCH_TEST_MOTO:-}" ]; then
  PORT=${BENCH_MOTO_PORT:-55599}
  MOTO_ACM_VALIDATION_WAIT=1 "$ORCH_MOTO_SERVER" -H 127.0.0.1 -p "$PORT" >"$WORK/moto.log" 2>&1 &
  MOTO_PID=$!
  for _ in $(seq 1 100); do (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null && break; sleep 0.1; done
  ORCH_TEST_MOTO=http://127.0.0.1:$PORT
fi
ID=bench$RANDOM
mkdir -p "$WORK/project/stacks" "$WORK/project/app"
cp -r pulumi "$WORK/project/" && cp -r app/pages "$WORK/project/app/"
# The live URL: a local tier (two zones behind the TLS load balancer) on its own ports.
HTTP_PORT=${BENCH_HTTP_PORT:-55596} HTTPS_PORT=${BENCH_HTTPS_PORT:-55597} BASE_PORT=${BENCH_BASE_PORT:-55580}
sed -e "s/http_port: 8080/http_port: $HTTP_PORT/" -e "s/https_port: 8443/https_port: $HTTPS_PORT/" -e "s/port: 18080/port: $BASE_PORT/" \
  stacks/local.yaml >"$WORK/project/stacks/local.yaml"
ORCH_ROOT=$WORK/project ORCH_BUILD_PROFILE=dev "$ORCH" up --env local --detach >/dev/null 2>"$WORK/tier.err" || { cat "$WORK/tier.err"; exit 1; }
sed -e "s#s3://orch-state-dev#s3://orch-state-$ID#" -e "s#dev.orch-demo.net#dev.$ID.net#" -e "s#parent_zone: orch-demo.net#parent_zone: $ID.net#" \
  stacks/dev.yaml >"$WORK/project/stacks/$ID.yaml"
export ORCH_ROOT=$WORK/project NO_COLOR=1
export AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing AWS_REGION=eu-west-1 AWS_ENDPOINT_URL=$ORCH_TEST_MOTO
export ORCH_PULUMI=$ROOT/tests/fake-pulumi/pulumi FAKE_PULUMI_STATE=$WORK/pulumi FAKE_PULUMI_LOG=$WORK/pulumi.log
export FAKE_PULUMI_URL=https://127.0.0.1:$HTTPS_PORT/ FAKE_PULUMI_HTTP_URL=http://127.0.0.1:$HTTP_PORT/ PULUMI_CONFIG_PASSPHRASE=bench
export ORCH_VERIFY_CA=$WORK/project/.orch/local/tls/ca.pem
if [ -n "${REGISTRY:-}" ]; then
  sed -i "s#  repository: orch-app#  repository: orch-bench-$ID\n  registry: $REGISTRY#" "$WORK/project/stacks/$ID.yaml"
  export ORCH_BUILD_PROFILE=dev
else
  export ORCH_IMAGE=123456789012.dkr.ecr.eu-west-1.amazonaws.com/orch-app@sha256:$(printf 'c%.0s' $(seq 1 64))
fi

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
