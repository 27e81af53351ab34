#!/usr/bin/env bash
#
# Start the ZooKeeper quorum of conf/zoo.cfg, as Flink's start-zookeeper-quorum.sh: a peer on
# the host of each server.N=host:peer-port:leader-port line, started directly on this host and
# with `ssh -n $STROM_SSH_OPTS host` elsewhere (same installation path). Needs Java and
# ZooKeeper on each host (Debian's zookeeper package: bash tests/zookeeper/install-deps.sh).
set -euo pipefail

_src="${BASH_SOURCE[0]}"
while [ -L "$_src" ]; do
    _dir="$(cd -P "$(dirname "$_src")" && pwd)"
    _src="$(readlink "$_src")"
    case "$_src" in /*) ;; *) _src="$_dir/$_src" ;; esac
done
# shellcheck source-path=SCRIPTDIR source=config.sh
. "$(cd -P "$(dirname "$_src")" && pwd)/config.sh"

ZOO_CFG="$STROM_CONF_DIR/zoo.cfg"
if [ ! -r "$ZOO_CFG" ]; then
    echo "No ZooKeeper configuration at $ZOO_CFG." >&2
    exit 1
fi

peers=0
status=0
while IFS= read -r line || [ -n "$line" ]; do
    line="${line%%#*}"
    case "$line" in
        server.*=*)
            id="${line%%=*}"
            id="${id#server.}"
            id="${id//[[:space:]]/}"
            address="${line#*=}"
            host="${address%%:*}"
            host="${host//[[:space:]]/}"
            peers=$((peers + 1))
            strom_run_on_host "$host" zookeeper.sh start "$id" || status=1
            ;;
    esac
done <"$ZOO_CFG"
strom_wait_remote || status=1

if [ "$peers" -eq 0 ]; then
    echo "No server.N=host:peer-port:leader-port lines in $ZOO_CFG." >&2
    exit 1
fi
exit "$status"
