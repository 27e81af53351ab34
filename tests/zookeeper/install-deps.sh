#!/usr/bin/env bash
# Install ZooKeeper for the high-availability tests (tests/test_ha_*.py) and for
# bin/start-zookeeper-quorum.sh: Debian's `zookeeper` package, which depends on default-jre
# (a Java 17 runtime on Debian 12). The tests start their own ZooKeeper on a free port in a
# temporary folder; nothing here starts a service. Idempotent and quiet: it does nothing when
# ZooKeeper is there, runs `apt-get update` only when an install fails, and prints only
# errors. Needs root and apt-get; elsewhere it says what is missing.
#
#   bash tests/zookeeper/install-deps.sh
set -euo pipefail

if [ -d /usr/share/zookeeper ] && command -v java >/dev/null 2>&1; then
    exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
    echo "install-deps.sh: missing zookeeper; run this script as root to install it." >&2
    exit 1
fi
if ! command -v apt-get >/dev/null 2>&1; then
    echo "install-deps.sh: missing zookeeper and there is no apt-get to install it." >&2
    exit 1
fi

export DEBIAN_FRONTEND=noninteractive
apt_install() {
    apt-get install -y -q -o DPkg::Lock::Timeout=120 --no-install-recommends zookeeper \
        >/dev/null
}
if ! apt_install 2>/dev/null; then
    apt-get update -q -o DPkg::Lock::Timeout=120 >/dev/null
    apt_install
fi
# Debian's package starts a ZooKeeper service where a service manager runs (none here); the
# tests and bin/start-zookeeper-quorum.sh run their own.
