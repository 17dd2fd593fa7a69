#!/usr/bin/env bash
# Run one command with the test servers up (PostgreSQL, an OCI registry, moto on 127.0.0.1, the
# ORCH_TEST_* variables exported) and stop them afterwards: the way to run a part of the suite.
#
#   scripts/with-services.sh cargo test -p orch --test it -- deploy::
#   (beside a running suite the servers take free ports by themselves)
set -euo pipefail
cd "$(dirname "$0")/.."
[ $# -gt 0 ] || { echo "usage: scripts/with-services.sh COMMAND [ARGS…]" >&2; exit 2; }
. scripts/lib/services.sh
. scripts/lib/venv.sh
start_services
trap stop_services EXIT
"$@"
