#!/usr/bin/env bash
# Install the servers the connector tests (tests/test_redis_connector.py, test_jdbc_connector.py,
# test_postgres_cdc.py) run against: Debian's redis-server and postgresql. The tests start their
# own instances on free ports in temporary folders; nothing here starts a service. Idempotent
# and quiet: it does nothing when both are there, runs `apt-get update` only when an install
# fails, and prints only errors. Needs root and apt-get; elsewhere it says what is missing.
#
#   bash tests/services/install-deps.sh
set -euo pipefail

missing=()
command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
if ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 && ! command -v initdb >/dev/null 2>&1; then
    missing+=(postgresql)
fi
if [ "${#missing[@]}" -eq 0 ]; then
    exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
    echo "install-deps.sh: missing ${missing[*]}; run this script as root to install them." >&2
    exit 1
fi
if ! command -v apt-get >/dev/null 2>&1; then
    echo "install-deps.sh: missing ${missing[*]} and there is no apt-get to install them." >&2
    exit 1
fi

export DEBIAN_FRONTEND=noninteractive
apt_install() {
    apt-get install -y -q -o DPkg::Lock::Timeout=120 --no-install-recommends "${missing[@]}" \
        >/dev/null
}
if ! apt_install 2>/dev/null; then
    apt-get update -q -o DPkg::Lock::Timeout=120 >/dev/null
    apt_install
fi
# Debian's packages start their services where a service manager runs; the tests need none.
