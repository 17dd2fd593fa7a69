#!/usr/bin/env bash
# Install what orch's tests and local tier need on Debian/Ubuntu, idempotently.
set -euo pipefail
# The Rust toolchain rust-toolchain.toml pins. rustup downloads a missing one; without network, a
# machine whose `stable` is that very release gets it linked under the pinned name instead
# (`rustup toolchain link` refuses names like 1.95.0, so a symlink in rustup's toolchains folder).
pinned=$(sed -n 's/^channel *= *"\(.*\)"/\1/p' "$(dirname "$0")/../rust-toolchain.toml")
if ! rustup run "$pinned" rustc --version >/dev/null 2>&1; then
  if rustup run stable rustc --version 2>/dev/null | grep -q "^rustc $pinned "; then
    echo "linking the installed stable toolchain (rustc $pinned) as $pinned"
    host=$(rustup run stable rustc -vV | sed -n 's/^host: //p')
    toolchains=${RUSTUP_HOME:-$HOME/.rustup}/toolchains
    ln -sfn "$toolchains/stable-$host" "$toolchains/$pinned-$host"
  else
    rustup toolchain install "$pinned" --profile minimal --component rustfmt,clippy
  fi
fi
# The test runner (scripts/test.sh, .config/nextest.toml); machines of this project's kind have it.
if ! cargo nextest --version >/dev/null 2>&1; then
  echo "installing cargo-nextest from crates.io"
  cargo install --locked cargo-nextest
fi
need_apt=()
command -v psql >/dev/null && ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || need_apt+=(postgresql)
command -v docker-registry >/dev/null || need_apt+=(docker-registry)
command -v skopeo >/dev/null || need_apt+=(skopeo)
command -v wrk >/dev/null || need_apt+=(wrk)
command -v haproxy >/dev/null || need_apt+=(haproxy)
command -v h2load >/dev/null || need_apt+=(nghttp2-client)   # HTTP/2 runs of scripts/bench-lb.sh
command -v curl >/dev/null || need_apt+=(curl)   # the HTTP/2 test (curl --http2)
command -v node >/dev/null || need_apt+=(nodejs npm)
command -v cc >/dev/null || need_apt+=(build-essential)   # C parts: bundled SQLite, mimalloc
if [ ${#need_apt[@]} -gt 0 ]; then
  echo "installing with apt: ${need_apt[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi
# The Python tools (moto, cfn-lint, checkov, PyYAML) go into a project-local virtual environment,
# never the system pip: stock Debian 12 and Ubuntu 24.04 refuse that (PEP 668), and where it works it
# changes global packages. Scripts put .venv/bin first on PATH (scripts/lib/venv.sh).
ROOT=$(cd "$(dirname "$0")/.." && pwd)
VENV=${ORCH_VENV:-$ROOT/.venv}
if ! python3 -c 'import venv, ensurepip' 2>/dev/null; then
  echo "installing with apt: python3-venv"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq python3-venv >/dev/null
fi
[ -x "$VENV/bin/python3" ] || python3 -m venv "$VENV"
# moto gets a virtual environment of its own: checkov pins boto3 (1.35.49 in checkov 3.3), whose
# botocore knows CloudWatch only by its query protocol, while the AWS SDK for Rust speaks
# smithy-rpc-v2-cbor to it — moto routes a protocol by the installed botocore's service model.
MOTO_VENV=${ORCH_MOTO_VENV:-$ROOT/.venv-moto}
[ -x "$MOTO_VENV/bin/python3" ] || python3 -m venv "$MOTO_VENV"
if [ ! -x "$MOTO_VENV/bin/moto_server" ]; then
  echo "installing into $MOTO_VENV: moto[server]"
  "$MOTO_VENV/bin/python3" -m pip install -q --disable-pip-version-check 'moto[server]>=5.1' 'botocore>=1.40'
fi
py_need=()
[ -x "$VENV/bin/cfn-lint" ] || py_need+=(cfn-lint)
[ -x "$VENV/bin/checkov" ] || py_need+=(checkov)
"$VENV/bin/python3" -c 'import yaml' 2>/dev/null || py_need+=(pyyaml)   # pulumi2cfn.py, the fake pulumi
if [ ${#py_need[@]} -gt 0 ]; then
  echo "installing into $VENV: ${py_need[*]}"
  "$VENV/bin/python3" -m pip install -q --disable-pip-version-check "${py_need[@]}"
fi
