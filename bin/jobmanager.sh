#!/usr/bin/env bash
#
# Start or stop a Strom JobManager on this host.
#
#   jobmanager.sh (start|start-foreground|stop|stop-all) [args...]
#
# Extra arguments go to the Python process, e.g. `-D key=value`. See strom-daemon.sh.
set -euo pipefail

USAGE="Usage: jobmanager.sh (start|start-foreground|stop|stop-all) [args...]"

_src="${BASH_SOURCE[0]}"
while [ -L "$_src" ]; do
    _dir="$(cd -P "$(dirname "$_src")" && pwd)"
    _src="$(readlink "$_src")"
    case "$_src" in /*) ;; *) _src="$_dir/$_src" ;; esac
done
bin="$(cd -P "$(dirname "$_src")" && pwd)"

case "${1:-}" in
    start | start-foreground | stop | stop-all)
        exec "$bin/strom-daemon.sh" "$1" jobmanager "${@:2}"
        ;;
    *)
        echo "$USAGE" >&2
        exit 1
        ;;
esac
