# Put the project's Python virtual environment (made by scripts/install-deps.sh) first on PATH, so
# moto_server, cfn-lint, checkov and the python3 that runs pulumi2cfn.py and the fake pulumi are its own.
ORCH_VENV=${ORCH_VENV:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)/.venv}
export PATH="$ORCH_VENV/bin:$PATH"
# moto has its own (scripts/install-deps.sh says why); its server is called by this path.
ORCH_MOTO_VENV=${ORCH_MOTO_VENV:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)/.venv-moto}
ORCH_MOTO_SERVER="$ORCH_MOTO_VENV/bin/moto_server"
