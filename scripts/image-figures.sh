#!/usr/bin/env bash
# Figures for `orch build` (issue 8): compressed image size (goal <= 15 MB), image assembly time from
# an already-built binary, and bytes + time of a no-change re-push (goal 0 bytes).
# Builds the release static app once (slow: several minutes on 2 cores), starts its own
# docker-registry on 127.0.0.1 (stopped on exit), and prints one figure per line.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
PORT=${FIGURES_REGISTRY_PORT:-55090}
WORK=$(mktemp -d /tmp/orch-image-figures.XXXXXX)
cleanup() { [ -n "${REG_PID:-}" ] && kill "$REG_PID" 2>/dev/null; rm -rf "$WORK"; }
trap cleanup EXIT

now() { date +%s.%N; }
secs() { echo "$2 - $1" | bc -l | xargs printf '%.2f'; }

cargo build --quiet --locked --bin orch
ORCH=$CARGO_TARGET_DIR/debug/orch

echo "== compiling the release static app (once)" >&2
t0=$(now)
"$ORCH" --root "$ROOT" --env local build >/dev/null
t1=$(now)
APP=$CARGO_TARGET_DIR/x86_64-unknown-linux-gnu/release/app

# A scratch project pushing to our own registry.
mkdir -p "$WORK/project" "$WORK/registry"
cp -r stacks "$WORK/project/"
[ -d app/pages ] && mkdir -p "$WORK/project/app" && cp -r app/pages "$WORK/project/app/"
[ -d app/certs ] && mkdir -p "$WORK/project/app" && cp -r app/certs "$WORK/project/app/"
sed -i "s|^  repository: .*|  repository: orch-figures\n  registry: 127.0.0.1:$PORT|" "$WORK/project/stacks/local.yaml"
cat > "$WORK/registry/config.yml" <<YAML
version: 0.1
log: {level: error}
storage: {filesystem: {rootdirectory: $WORK/registry/data}}
http: {addr: 127.0.0.1:$PORT}
YAML
docker-registry serve "$WORK/registry/config.yml" >"$WORK/registry/log" 2>&1 &
REG_PID=$!
for _ in $(seq 1 100); do (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null && break; sleep 0.1; done

export ORCH_APP_BINARY=$APP
t2=$(now)
"$ORCH" --root "$WORK/project" --env local build -q >/dev/null
t3=$(now)
LAYOUT=$WORK/project/build/local/image
MANIFEST=$LAYOUT/blobs/sha256/$(jq -r '.manifests[0].digest' "$LAYOUT/index.json" | cut -d: -f2)
BYTES=$(jq '[.layers[].size] | add' "$MANIFEST")

"$ORCH" --root "$WORK/project" --env local build -q --push >/dev/null
FIRST=$(jq .bytes_uploaded "$LAYOUT/pushed.json")
t4=$(now)
"$ORCH" --root "$WORK/project" --env local build -q --push >/dev/null
t5=$(now)
AGAIN=$(jq .bytes_uploaded "$LAYOUT/pushed.json")

echo "app binary (release, static, stripped): $(stat -c %s "$APP") bytes"
echo "compile + assemble (orch build, release): $(secs "$t0" "$t1") s"
echo "compressed image size (layers): $BYTES bytes ($(echo "$BYTES/1000000" | bc -l | xargs printf '%.1f') MB; goal <= 15 MB)"
echo "assembly time from a built binary: $(secs "$t2" "$t3") s"
echo "first push: $FIRST bytes"
echo "no-change rebuild + re-push: $AGAIN bytes in $(secs "$t4" "$t5") s (goal 0 bytes)"
