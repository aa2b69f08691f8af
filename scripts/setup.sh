#!/usr/bin/env bash
# Create (or reuse) .venv with a Python >= 3.12 and install the project into it.
# Usage: scripts/setup.sh [extra]   e.g. scripts/setup.sh test
set -euo pipefail
cd "$(dirname "$0")/.."
extra="${1:-}"
venv=.venv

is_ok() {  # is "$1" a Python >= 3.12 that can make a venv?
    "$1" -c 'import sys, venv; sys.exit(sys.version_info < (3, 12))' >/dev/null 2>&1
}

find_python() {
    local c
    for c in "${LOYALTY_SIM_PYTHON:-}" python3.13 python3.12 python3 python; do
        [ -n "$c" ] && command -v "$c" >/dev/null 2>&1 && is_ok "$c" && { command -v "$c"; return; }
    done
    # pyenv installs that are not on PATH (pyenv shims only expose the global version)
    for c in "${PYENV_ROOT:-$HOME/.pyenv}"/versions/3.1[2-9]*/bin/python3 \
             /usr/local/bin/python3.1[2-9] /usr/bin/python3.1[2-9]; do
        [ -x "$c" ] && is_ok "$c" && { echo "$c"; return; }
    done
    return 1
}

if [ ! -x "$venv/bin/python" ] || ! is_ok "$venv/bin/python"; then
    py=$(find_python) || {
        echo "error: loyalty-sim needs Python >= 3.12 (Mesa 3.5 requires it) and none was found." >&2
        echo "       Install one (e.g. 'pyenv install 3.12') or point LOYALTY_SIM_PYTHON at it." >&2
        exit 1
    }
    echo "setup: creating $venv with $py ($("$py" --version 2>&1))"
    rm -rf "$venv"
    "$py" -m venv "$venv"
fi

stamp="$venv/.installed${extra:+-$extra}"
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check --upgrade pip
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check -e ".${extra:+[$extra]}"
    touch "$stamp"
fi

# Compile the engine's kernels once per version of the package's source (numba caches them on
# disk, in a folder named after the source: see sim/__init__.py), so that the first real run
# does not stall without a word.
cache=$("$venv/bin/python" -c 'import os, sim; print(os.environ.get("NUMBA_CACHE_DIR", ""))')
if [ -n "$cache" ] && [ -d "$cache" ] && [ -z "$(ls -A "$cache")" ]; then
    echo "setup: compiling the simulation engine (once per version of the code, about a minute)"
    "$venv/bin/python" -c 'from sim.api import load_scenario, run; run(load_scenario("scenarios/starter.yaml", {"market.population": 500, "market.steps": 3}))'
fi
