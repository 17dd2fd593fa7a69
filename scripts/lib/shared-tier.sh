# The one local tier the tests share that only need something live to verify against (every deploy
# test's `url` output points at it). Sourced by scripts/test.sh, which runs each test in a process
# of its own (cargo-nextest): a tier started inside a test process would be one per test. The
# project is a scratch copy of this one with free ports and fixed capacity (what the tests'
# `Tier::scratch` makes); ORCH_TEST_SHARED_TIER="<dir> <http port> <https port>" tells the tests.

start_shared_tier() { # ORCH_BIN
  local orch=$1 sub http https base
  SHARED_TIER_DIR=$(mktemp -d /tmp/orch-shared-tier.XXXXXX)
  for sub in stacks pulumi app/pages schema data; do
    [ -d "$sub" ] || continue
    mkdir -p "$SHARED_TIER_DIR/$(dirname "$sub")"
    cp -r "$sub" "$SHARED_TIER_DIR/$sub"
  done
  http=$(free_port) https=$(free_port) base=$(free_port)
  # Free ports, and no `scaling:` block (the tests of other things must not see the group scale).
  awk -v http="$http" -v https="$https" -v base="$base" '
    /^scaling:/ { skip = 1; next }
    skip && /^[ #]/ { next }
    { skip = 0 }
    $0 == "  http_port: 8080" { $0 = "  http_port: " http }
    $0 == "  https_port: 8443" { $0 = "  https_port: " https }
    $0 == "  port: 18080" { $0 = "  port: " base }
    { print }' stacks/local.yaml >"$SHARED_TIER_DIR/stacks/local.yaml"
  SHARED_TIER_ORCH=$orch
  ORCH_ROOT=$SHARED_TIER_DIR ORCH_BUILD_PROFILE=dev "$orch" up --env local --detach >/dev/null
  export ORCH_TEST_SHARED_TIER="$SHARED_TIER_DIR $http $https"
  echo "shared tier: https://127.0.0.1:$https/ (project $SHARED_TIER_DIR)"
}

stop_shared_tier() {
  [ -n "${SHARED_TIER_DIR:-}" ] || return 0
  ORCH_ROOT=$SHARED_TIER_DIR "$SHARED_TIER_ORCH" down --env local >/dev/null 2>&1 || true
  rm -rf "$SHARED_TIER_DIR"
}
