#!/usr/bin/env bash
#
# Start or stop a ZooKeeper peer of conf/zoo.cfg on this host, as Flink's bin/zookeeper.sh.
#
#   zookeeper.sh (start|start-foreground) peer-id
#   zookeeper.sh (stop|stop-all)
#
# peer-id is N of a server.N line of conf/zoo.cfg. See strom-daemon.sh for pid and log files.
set -euo pipefail

USAGE="Usage: zookeeper.sh (start|start-foreground) peer-id | zookeeper.sh (stop|stop-all)"

_src="${BASH_SOURCE[0]}"
while [ -L "$_src" ]; do
    _dir="$(cd -P "$(dirname "$_src")" && pwd)"
    _src="$(readlink "$_src")"
    case "$_src" in /*) ;; *) _src="$_dir/$_src" ;; esac
done
bin="$(cd -P "$(dirname "$_src")" && pwd)"

case "${1:-}" in
    start | start-foreground)
        if [ -z "${2:-}" ]; then
            echo "$USAGE" >&2
            exit 1
        fi
        exec "$bin/strom-daemon.sh" "$1" zookeeper --peer-id "$2" "${@:3}"
        ;;
    stop | stop-all)
        exec "$bin/strom-daemon.sh" "$1" zookeeper
        ;;
    *)
        echo "$USAGE" >&2
        exit 1
        ;;
esac
