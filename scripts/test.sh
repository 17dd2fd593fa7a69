#!/usr/bin/env bash
# The whole test suite: installs what it needs (idempotently), starts the servers the tests use on
# 127.0.0.1 (PostgreSQL, an OCI registry, moto), runs every test, and stops the servers on exit.
#
#   scripts/test.sh           # everything (what .ci/run runs)
#   scripts/test.sh --quick   # the edit loop: fmt, clippy, unit tests, and the integration tests
#                             # that need no server and start no tier (check, cli, config, cost,
#                             # render); no install, no servers
#
# Tests run under cargo-nextest (.config/nextest.toml): each in a process of its own, the ones that
# start a local tier one at a time, the rest beside them, and one that runs too long is killed and
# fails. ORCH_TEST_THREADS overrides how many run at once.
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
  echo "== unit tests, and the integration tests without servers: ${QUICK_MODULES[*]}"
  filter="kind(lib) | kind(bin)"
  for m in "${QUICK_MODULES[@]}"; do filter+=" | (binary(it) & test(/^${m%::}::/))"; done
  cargo nextest run --workspace --locked ${ORCH_TEST_THREADS:+--test-threads "$ORCH_TEST_THREADS"} -E "$filter"
  echo "== quick tests passed (the full suite: scripts/test.sh)"
  exit 0
fi

. scripts/lib/services.sh
scripts/install-deps.sh
. scripts/lib/venv.sh
start_services
trap stop_services EXIT

echo "== cargo fmt --check"
cargo fmt --all --check

echo "== fake pulumi self-test (tests/fake-pulumi/README.md names the source of each behaviour)"
tests/fake-pulumi/selftest.sh

echo "== build the tests, linted by clippy -D warnings, and start the tier the deploy tests share"
# One build for the lints and the tests: clippy-driver compiles the workspace's own crates (lib,
# bins, tests, examples) and lints them as `cargo clippy --all-targets` would; the dependencies, the
# AWS SDKs among them, are compiled once, by rustc, for both. The same variables stay set for the
# run, so nextest finds the build fresh (orch does not pass them to the app it builds for images).
export RUSTC_WORKSPACE_WRAPPER CLIPPY_ARGS
RUSTC_WORKSPACE_WRAPPER=$(rustup which clippy-driver)
CLIPPY_ARGS="-D__CLIPPY_HACKERY__warnings__CLIPPY_HACKERY__"
cargo nextest run --workspace --locked --no-run
cargo build --workspace --locked --examples
. scripts/lib/shared-tier.sh
start_shared_tier "$TARGET/debug/orch"
trap 'stop_shared_tier; stop_services' EXIT

echo "== cargo nextest run (workspace)"
cargo nextest run --workspace --locked ${ORCH_TEST_THREADS:+--test-threads "$ORCH_TEST_THREADS"}

if [ -x scripts/check-programs.sh ]; then
  echo "== rendered programs: orch check, cfn-lint, checkov"
  # The orch the tests just ran: building `--bin orch` alone would compile the AWS SDKs again with
  # other features (dev-dependencies unify features only in test builds).
  ORCH_BIN="$TARGET/debug/orch" scripts/check-programs.sh
fi
echo "== all tests passed"
