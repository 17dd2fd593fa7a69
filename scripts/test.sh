#!/usr/bin/env bash
# The whole test suite: installs what it needs (idempotently), starts the servers the tests use on
# 127.0.0.1 (PostgreSQL, an OCI registry, moto), runs every test, and stops the servers on exit.
#
#   scripts/test.sh           # everything (what .ci/run runs)
#   scripts/test.sh --quick   # the edit loop: fmt, clippy, unit tests, and the integration tests
#                             # that need no server and start no tier (check, cli, config, cost,
#                             # render); no install, no servers
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
export CARGO_TERM_COLOR=never
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
QUICK_MODULES=(check:: cli:: config:: cost:: render::)

if [ "${1:-}" = "--quick" ]; then
  echo "== cargo fmt --check, cargo clippy -D warnings"
  cargo fmt --all --check
  cargo clippy --workspace --all-targets --locked -- -D warnings
  echo "== unit tests"
  cargo test --workspace --locked --lib --bins -- --test-threads="${ORCH_TEST_THREADS:-2}"
  echo "== integration tests without servers: ${QUICK_MODULES[*]}"
  cargo test --locked -p orch --test it -- --test-threads="${ORCH_TEST_THREADS:-2}" "${QUICK_MODULES[@]}"
  echo "== quick tests passed (the full suite: scripts/test.sh)"
  exit 0
fi

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
  # The orch the tests just ran: building `--bin orch` alone would compile the AWS SDKs again with
  # other features (dev-dependencies unify features only in test builds).
  ORCH_BIN="$TARGET/debug/orch" scripts/check-programs.sh
fi
echo "== all tests passed"
