#!/usr/bin/env bash
# Install Debian's chromium for the dashboard's browser test, when it is missing.
# Idempotent and quick when chromium is already there. Needs root (as on CI) or sudo;
# without either it says so and leaves the browser test to skip.
set -euo pipefail
if command -v chromium >/dev/null 2>&1 || [ -x /usr/bin/chromium ]; then
    exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
    echo "install-chromium: no apt-get on this machine; the dashboard's browser test will be skipped" >&2
    exit 0
fi
run=()
if [ "$(id -u)" != 0 ]; then
    if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
        run=(sudo -n)
    else
        echo "install-chromium: not root and no sudo; install it with 'apt-get install chromium' to run the browser test" >&2
        exit 0
    fi
fi
echo "install-chromium: installing Debian's chromium (for the dashboard's browser test)"
export DEBIAN_FRONTEND=noninteractive
"${run[@]}" apt-get update -qq
"${run[@]}" apt-get install -y -qq --no-install-recommends chromium >/dev/null
command -v chromium
