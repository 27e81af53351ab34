#!/usr/bin/env bash
# Install Debian's chromium for the dashboard tests (tests/test_dashboard.py), if it is missing.
# Idempotent: does nothing when /usr/bin/chromium exists. Needs root (or sudo) and apt-get;
# without them it says so and exits non-zero, and the dashboard tests skip with the reason.
set -euo pipefail

if [ -x /usr/bin/chromium ]; then
    exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
    echo "install-chromium: no apt-get here; install chromium by hand" >&2
    exit 1
fi
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1; then
        SUDO="sudo -n"
    else
        echo "install-chromium: not root and no sudo; install chromium by hand" >&2
        exit 1
    fi
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -q >/dev/null
$SUDO apt-get install -y -q chromium fonts-dejavu-core >/dev/null
test -x /usr/bin/chromium
echo "install-chromium: $(/usr/bin/chromium --version 2>/dev/null || echo chromium installed)"
