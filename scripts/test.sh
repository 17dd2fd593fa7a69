#!/usr/bin/env bash
# The whole test suite: installs what it needs (idempotently), starts the servers the tests use on
# 127.0.0.1 (PostgreSQL, an OCI registry, moto), runs every test, and stops the servers on exit.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
export CARGO_TERM_COLOR=never
. scripts/lib/services.sh

scripts/install-deps.sh
. scripts/lib/venv.sh
start_services
trap stop_services EXIT

echo "== cargo fmt --check, cargo clippy -D warnings"
cargo fmt --all --check
cargo clippy --workspace --all-targets --locked -- -D warnings

echo "== fake pulumi self-test (tests/fake-pulumi/README.md names the source of each behaviour)"
tests/fake-pulumi/selftest.sh

echo "== cargo test (workspace)"
cargo test --workspace --locked --no-fail-fast -- --test-threads="${ORCH_TEST_THREADS:-2}"

if [ -x scripts/check-programs.sh ]; then
  echo "== rendered programs: orch check, cfn-lint, checkov"
  scripts/check-programs.sh
fi
echo "== all tests passed"
