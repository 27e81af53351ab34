#!/usr/bin/env bash
#
# Start or stop a Strom daemon on this host, the way Flink's flink-daemon.sh does.
#
#   strom-daemon.sh (start|start-foreground|stop|stop-all) (jobmanager|taskmanager|zookeeper)
#                   [args...]
#
# start      runs the daemon in the background with nohup. Its pid is appended to
#            $STROM_PID_DIR/strom-$USER-<role>.pid (one line per running instance); instance
#            n (the number of live instances before it) logs to
#            $STROM_LOG_DIR/strom-$USER-<role>-<n>-<host>.log and writes stdout/stderr to the
#            .out file of the same name. A daemon that exits at once fails the command, with
#            its output shown.
# stop       stops the instance started last (TERM, then KILL after $STROM_STOP_TIMEOUT s,
#            default 10) and removes its pid.
# stop-all   stops every instance of the role on this host.
# start-foreground  runs the daemon in this terminal, logging to stderr.
#
# Extra arguments go to the Python process, e.g. `-D taskmanager.numberOfTaskSlots=4`.
set -euo pipefail

USAGE="Usage: strom-daemon.sh (start|start-foreground|stop|stop-all) (jobmanager|taskmanager|zookeeper) [args...]"

if [ "$#" -lt 2 ]; then
    echo "$USAGE" >&2
    exit 1
fi

OPERATION="$1"
ROLE="$2"
shift 2

_src="${BASH_SOURCE[0]}"
while [ -L "$_src" ]; do
    _dir="$(cd -P "$(dirname "$_src")" && pwd)"
    _src="$(readlink "$_src")"
    case "$_src" in /*) ;; *) _src="$_dir/$_src" ;; esac
done
# shellcheck source-path=SCRIPTDIR source=config.sh
. "$(cd -P "$(dirname "$_src")" && pwd)/config.sh"

case "$ROLE" in
    jobmanager) MODULE="jobmanager" ;;
    taskmanager) MODULE="taskmanager" ;;
    zookeeper) MODULE="jobmanager.ha.zookeeper_server" ;;
    *)
        echo "Unknown daemon '$ROLE'. $USAGE" >&2
        exit 1
        ;;
esac

STOP_TIMEOUT="${STROM_STOP_TIMEOUT:-10}"
# How long a freshly started daemon is watched for an immediate failure (at most; the watch
# ends as soon as the daemon logs that it started).
START_CHECK_TIMEOUT="${STROM_START_CHECK_TIMEOUT:-2}"
POLL_INTERVAL=0.05
POLLS_PER_SECOND=20

PID_FILE="$STROM_PID_DIR/strom-$STROM_USER-$ROLE.pid"
LOCK_FILE="$PID_FILE.lock"

# Whether pid is a live (not zombie) process of this role, not some process that reused a pid.
is_daemon() {
    local pid="$1" stat args
    [ -n "$pid" ] || return 1
    kill -0 "$pid" 2>/dev/null || return 1
    stat="$(ps -p "$pid" -o stat= 2>/dev/null)" || return 1
    case "$stat" in *Z*) return 1 ;; esac
    args="$(ps -p "$pid" -o args= 2>/dev/null)" || return 1
    case " $args " in
        *" -m $MODULE "*) return 0 ;;
    esac
    return 1
}

# The pids of the pid file that are still running, in file order.
live_pids() {
    local pid
    [ -f "$PID_FILE" ] || return 0
    while IFS= read -r pid || [ -n "$pid" ]; do
        pid="${pid//[[:space:]]/}"
        if is_daemon "$pid"; then
            printf '%s\n' "$pid"
        fi
    done <"$PID_FILE"
}

# Rewrite the pid file with the given pids (removing it when there are none).
write_pids() {
    if [ "$#" -eq 0 ]; then
        rm -f "$PID_FILE"
    else
        printf '%s\n' "$@" >"$PID_FILE.tmp"
        mv -f "$PID_FILE.tmp" "$PID_FILE"
    fi
}

# Serialise pid-file updates of concurrent invocations (where flock exists).
lock_pid_file() {
    mkdir -p "$STROM_PID_DIR"
    if command -v flock >/dev/null 2>&1; then
        exec 200>"$LOCK_FILE"
        flock 200
    fi
}

# Keep the last few logs of an instance: x -> x.1 -> ... -> x.5.
rotate() {
    local file="$1" i
    [ -e "$file" ] || return 0
    for i in 4 3 2 1; do
        if [ -e "$file.$i" ]; then
            mv -f "$file.$i" "$file.$((i + 1))"
        fi
    done
    mv -f "$file" "$file.1"
}

# Whether a live instance writes its stdout to this .out file (Linux; elsewhere: never known).
out_file_in_use() {
    local out="$1" pid
    for pid in "${LIVE[@]+"${LIVE[@]}"}"; do
        if [ "$(readlink "/proc/$pid/fd/1" 2>/dev/null || true)" = "$out" ]; then
            return 0
        fi
    done
    return 1
}

start() {
    lock_pid_file
    mkdir -p "$STROM_LOG_DIR"
    local log_dir
    log_dir="$(cd -P "$STROM_LOG_DIR" && pwd)"

    LIVE=()
    local pid
    while IFS= read -r pid; do LIVE+=("$pid"); done < <(live_pids)
    write_pids "${LIVE[@]+"${LIVE[@]}"}"
    if [ "${#LIVE[@]}" -gt 0 ]; then
        echo "[INFO] ${#LIVE[@]} instance(s) of $ROLE are already running on $STROM_HOSTNAME."
    fi

    # Instance n: the number of live instances; skip an id still used by a live instance
    # (after an earlier one died, the count can point at a running instance's files).
    local n="${#LIVE[@]}" prefix
    while :; do
        prefix="$log_dir/strom-$STROM_USER-$ROLE-$n-$STROM_HOSTNAME"
        out_file_in_use "$prefix.out" || break
        n=$((n + 1))
    done
    local log="$prefix.log" out="$prefix.out"
    rotate "$log"
    rotate "$out"

    echo "Starting $ROLE daemon on host $STROM_HOSTNAME."
    STROM_LOG_FILE="$log" nohup "$PYTHON" -m "$MODULE" --conf-dir "$STROM_CONF_DIR" "$@" \
        >"$out" 2>&1 200>&- </dev/null &
    local daemon=$!
    write_pids "${LIVE[@]+"${LIVE[@]}"}" "$daemon"

    # Detect a daemon that dies at once (bad config key, port in use...): watch it until it
    # logs that it started, it exits, or START_CHECK_TIMEOUT passes.
    local started=0 polls=$((START_CHECK_TIMEOUT * POLLS_PER_SECOND))
    while is_daemon "$daemon"; do
        if [ -f "$log" ] && grep -q " started" "$log" 2>/dev/null; then
            started=1
            break
        fi
        polls=$((polls - 1))
        [ "$polls" -gt 0 ] || break
        sleep "$POLL_INTERVAL"
    done
    if [ "$started" -eq 0 ] && ! is_daemon "$daemon"; then
        write_pids "${LIVE[@]+"${LIVE[@]}"}"
        echo "Error: the $ROLE daemon on host $STROM_HOSTNAME exited right after starting." >&2
        echo "Its output ($out):" >&2
        cat "$out" >&2 || true
        exit 1
    fi
}

# Wait until none of the given pids is a live daemon, for at most $1 seconds.
wait_gone() {
    local polls=$(($1 * POLLS_PER_SECOND)) pid alive
    shift
    while :; do
        alive=0
        for pid in "$@"; do
            if is_daemon "$pid"; then
                alive=1
                break
            fi
        done
        [ "$alive" -eq 0 ] && return 0
        polls=$((polls - 1))
        [ "$polls" -gt 0 ] || return 1
        sleep "$POLL_INTERVAL"
    done
}

# Stop the given pids: TERM, then KILL what is left after STOP_TIMEOUT seconds.
stop_pids() {
    local pid
    for pid in "$@"; do
        echo "Stopping $ROLE daemon (pid: $pid) on host $STROM_HOSTNAME."
        kill -TERM "$pid" 2>/dev/null || true
    done
    if ! wait_gone "$STOP_TIMEOUT" "$@"; then
        for pid in "$@"; do
            if is_daemon "$pid"; then
                echo "The $ROLE daemon (pid: $pid) did not stop within $STOP_TIMEOUT s; killing it."
                kill -KILL "$pid" 2>/dev/null || true
            fi
        done
        wait_gone 5 "$@" || true
    fi
}

stop() {
    local all="$1"
    lock_pid_file
    LIVE=()
    local pid
    while IFS= read -r pid; do LIVE+=("$pid"); done < <(live_pids)
    if [ "${#LIVE[@]}" -eq 0 ]; then
        write_pids
        echo "No $ROLE daemon to stop on host $STROM_HOSTNAME."
        return 0
    fi
    if [ "$all" = all ]; then
        stop_pids "${LIVE[@]}"
        write_pids
    else
        local last="${LIVE[${#LIVE[@]} - 1]}"
        stop_pids "$last"
        unset 'LIVE[${#LIVE[@]}-1]'
        write_pids "${LIVE[@]+"${LIVE[@]}"}"
    fi
}

case "$OPERATION" in
    start)
        start "$@"
        ;;
    start-foreground)
        exec "$PYTHON" -m "$MODULE" --conf-dir "$STROM_CONF_DIR" "$@"
        ;;
    stop)
        stop one
        ;;
    stop-all)
        stop all
        ;;
    *)
        echo "Unknown operation '$OPERATION'. $USAGE" >&2
        exit 1
        ;;
esac
