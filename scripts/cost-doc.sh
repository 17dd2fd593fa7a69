#!/usr/bin/env bash
# Regenerate the cost section of docs/programs.md (dev and prod side by side) from `orch cost --json`.
# `--check` changes nothing and fails when the section is stale (the test suite runs the same check).
set -euo pipefail
cd "$(dirname "$0")/.."
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
for env in dev prod; do
  cargo run --quiet --locked --bin orch -- --root . cost --env "$env" --json >"$tmp/$env.json"
done
python3 scripts/cost-doc.py "$@" --doc docs/programs.md "$tmp/dev.json" "$tmp/prod.json"
