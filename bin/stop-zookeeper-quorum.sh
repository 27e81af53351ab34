#!/usr/bin/env bash
#
# Stop the ZooKeeper quorum of conf/zoo.cfg, as Flink's stop-zookeeper-quorum.sh: the peers on
# the host of each server.N line (directly on this host, with ssh elsewhere).
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

hosts=()
while IFS= read -r line || [ -n "$line" ]; do
    line="${line%%#*}"
    case "$line" in
        server.*=*)
            address="${line#*=}"
            host="${address%%:*}"
            host="${host//[[:space:]]/}"
            # Each host once: stop-all there stops every peer it runs.
            case " ${hosts[*]-} " in *" $host "*) ;; *) hosts+=("$host") ;; esac
            ;;
    esac
done <"$ZOO_CFG"

status=0
for host in "${hosts[@]+"${hosts[@]}"}"; do
    strom_run_on_host "$host" zookeeper.sh stop-all || status=1
done
strom_wait_remote || status=1
exit "$status"
