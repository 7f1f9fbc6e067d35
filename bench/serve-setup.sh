#!/usr/bin/env bash
# Create the isolated venvs that bench/bench_serve.py compares headwater serve against.
#
#   bench/serve-setup.sh [DIR]      (default: bench/.serve-venvs)
#
# DIR/devpi       devpi-server (+ devpi-client, for devpi-init and user/index set-up)
# DIR/pypiserver  pypiserver with waitress (picked by its default --server auto) and watchdog
#                 (its cached-dir backend, which keeps listings and digests in memory)
# DIR/twine       twine: loads the same files into devpi, and drives `bench_serve.py uploads`
#
# Each tool has its own venv (Python 3.12 from pyenv, or $SERVE_BENCH_PYTHON) so none of their
# dependencies touch headwater's .venv or each other. pip runs isolated from user/site config.
# Re-running is cheap: existing venvs are reused and the pins re-checked.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
dir="${1:-$here/.serve-venvs}"
python="${SERVE_BENCH_PYTHON:-$HOME/.pyenv/versions/3.12.1/bin/python}"

if [ ! -x "$python" ]; then
    python="$(command -v python3.12 || true)"
fi
if [ -z "$python" ] || [ ! -x "$python" ]; then
    echo "error: no Python 3.12 found; set SERVE_BENCH_PYTHON to a Python 3.10-3.12 interpreter" >&2
    exit 2
fi

export PIP_CONFIG_FILE=/dev/null PIP_DISABLE_PIP_VERSION_CHECK=1

make_venv() {  # make_venv NAME REQUIREMENT...
    local name="$1"
    shift
    if [ ! -x "$dir/$name/bin/python" ]; then
        "$python" -m venv "$dir/$name"
    fi
    "$dir/$name/bin/python" -m pip install --isolated --disable-pip-version-check --quiet "$@"
}

make_venv devpi 'devpi-server>=6,<7' 'devpi-client>=7,<8'
make_venv pypiserver 'pypiserver[cache]>=2,<3' 'waitress>=3,<4'
make_venv twine 'twine>=5,<7'

for pair in devpi:devpi-server pypiserver:pypiserver twine:twine; do
    venv="${pair%%:*}"
    dist="${pair#*:}"
    "$dir/$venv/bin/python" -c "import importlib.metadata as m; print('$dist', m.version('$dist'))"
done
echo "$dir"
