#!/usr/bin/env bash
# Install what orch's tests and local tier need on Debian/Ubuntu, idempotently.
set -euo pipefail
need_apt=()
command -v psql >/dev/null && ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || need_apt+=(postgresql)
command -v docker-registry >/dev/null || need_apt+=(docker-registry)
command -v skopeo >/dev/null || need_apt+=(skopeo)
command -v wrk >/dev/null || need_apt+=(wrk)
command -v haproxy >/dev/null || need_apt+=(haproxy)
command -v node >/dev/null || need_apt+=(nodejs npm)
command -v cc >/dev/null || need_apt+=(build-essential)   # C parts: bundled SQLite, mimalloc
if [ ${#need_apt[@]} -gt 0 ]; then
  echo "installing with apt: ${need_apt[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi
py_need=()
command -v moto_server >/dev/null || py_need+=('moto[server]')
command -v cfn-lint >/dev/null || py_need+=(cfn-lint)
command -v checkov >/dev/null || py_need+=(checkov)
python3 -c 'import yaml' 2>/dev/null || py_need+=(pyyaml)   # scripts/pulumi2cfn.py
if [ ${#py_need[@]} -gt 0 ]; then
  echo "installing with pip: ${py_need[*]}"
  python3 -m pip install -q "${py_need[@]}"
  hash -r
fi
