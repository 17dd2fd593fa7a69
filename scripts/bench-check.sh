#!/usr/bin/env bash
# How long `orch check --env ENV` takes (render + schema + policy), per AWS env: hyperfine if installed,
# else the best of 10 runs timed with date. Target: well under 100 ms per env (prod included). Uses a release build unless ORCH
# names a binary (e.g. ORCH=target/debug/orch for an upper bound without a release build).
set -euo pipefail
cd "$(dirname "$0")/.."
if [ -z "${ORCH:-}" ]; then
  cargo build --quiet --release --bin orch
  ORCH="${CARGO_TARGET_DIR:-target}/release/orch"
fi
for stack in stacks/*.yaml; do
  env=$(basename "$stack" .yaml)
  grep -qE '^target:[[:space:]]*aws' "$stack" || continue
  if command -v hyperfine >/dev/null; then
    hyperfine --warmup 2 --runs 20 --style basic "$ORCH check --env $env --quiet"
  else
    best=999999
    for _ in $(seq 10); do
      start=$(date +%s%N)
      "$ORCH" check --env "$env" --quiet >/dev/null
      ms=$(( ($(date +%s%N) - start) / 1000000 ))
      (( ms < best )) && best=$ms
    done
    echo "orch check --env $env: best of 10 = ${best} ms (target well under 100 ms)"
  fi
done
