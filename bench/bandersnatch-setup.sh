#!/usr/bin/env bash
# Create an isolated Python 3.12 venv with bandersnatch 8.2.x for bench/bench_mirror.py.
#
#   bench/bandersnatch-setup.sh [VENV_DIR]      (default: bench/.bandersnatch-venv)
#
# The venv is separate from headwater's (.venv, Python 3.11) so neither tool's dependencies
# affect the other. pip runs isolated from any user/site pip configuration. If 8.2.x cannot be
# installed, the newest 8.x is installed instead and the script says so on stderr.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
venv="${1:-$here/.bandersnatch-venv}"
python="${BANDERSNATCH_PYTHON:-$HOME/.pyenv/versions/3.12.1/bin/python}"

if [ ! -x "$python" ]; then
    echo "error: $python not found; set BANDERSNATCH_PYTHON to a Python 3.12 interpreter" >&2
    exit 2
fi

if [ ! -x "$venv/bin/python" ]; then
    "$python" -m venv "$venv"
fi

export PIP_CONFIG_FILE=/dev/null PIP_DISABLE_PIP_VERSION_CHECK=1
if ! "$venv/bin/python" -m pip install --isolated --quiet 'bandersnatch==8.2.*'; then
    echo "warning: bandersnatch 8.2.x is not installable here; installing the newest 8.x" >&2
    "$venv/bin/python" -m pip install --isolated --quiet 'bandersnatch>=8,<9'
fi

"$venv/bin/python" -c 'import importlib.metadata as m; print("bandersnatch", m.version("bandersnatch"))'
echo "$venv/bin/bandersnatch"
