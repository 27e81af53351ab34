#!/usr/bin/env bash
# shellcheck shell=bash
#
# Sourced by the other scripts of bin/ (the way Flink's bin/config.sh is). It sets and exports
#
#   STROM_HOME      the installation: the folder above this script's real location
#   STROM_BIN_DIR   $STROM_HOME/bin
#   STROM_CONF_DIR  $STROM_CONF_DIR, else $STROM_HOME/conf
#   STROM_LOG_DIR   $STROM_LOG_DIR, else env.log.dir of strom-conf.yaml, else $STROM_HOME/log
#   STROM_PID_DIR   $STROM_PID_DIR, else env.pid.dir of strom-conf.yaml, else /tmp
#   PYTHON          $STROM_PYTHON, else $STROM_HOME/.venv/bin/python if present, else python3
#   PYTHONPATH      $STROM_HOME first, so a fresh clone with its dependencies runs as it is
#
# (relative folders from the environment are made absolute, so they also hold over ssh) and
# defines strom_read_masters, strom_read_slaves, strom_host_part, strom_is_local_host and
# strom_run_on_host.
# Being sourced, it leaves the caller's shell options alone and works under `set -euo pipefail`.

# The real folder of a file, following symlinks one hop at a time (`readlink -f` is not on
# every system, and a relative link target is relative to the link's own folder).
strom_real_dir() {
    local target="$1" dir
    while [ -L "$target" ]; do
        dir="$(cd -P "$(dirname "$target")" && pwd)"
        target="$(readlink "$target")"
        case "$target" in
            /*) ;;
            *) target="$dir/$target" ;;
        esac
    done
    cd -P "$(dirname "$target")" && pwd
}

STROM_BIN_DIR="$(strom_real_dir "${BASH_SOURCE[0]}")"
STROM_HOME="$(cd -P "$STROM_BIN_DIR/.." && pwd)"
export STROM_HOME STROM_BIN_DIR

STROM_CONF_DIR="${STROM_CONF_DIR:-$STROM_HOME/conf}"
case "$STROM_CONF_DIR" in /*) ;; *) STROM_CONF_DIR="$PWD/$STROM_CONF_DIR" ;; esac
export STROM_CONF_DIR
STROM_CONF_FILE="$STROM_CONF_DIR/strom-conf.yaml"

# The value of a flat top-level key of strom-conf.yaml (`env.log.dir: /var/log/strom`), without
# quotes or a trailing comment; empty when absent. Nested maps are not read here: set the
# STROM_LOG_DIR / STROM_PID_DIR environment variables instead.
strom_conf_value() {
    local key="$1" line value=""
    [ -r "$STROM_CONF_FILE" ] || return 0
    while IFS= read -r line || [ -n "$line" ]; do
        case "$line" in
            "$key":*)
                value="${line#"$key":}"
                value="${value%%#*}"
                value="$(printf '%s' "$value" | sed -e 's/^[[:space:]]*//' -e 's/[[:space:]]*$//')"
                value="${value#[\"\']}"
                value="${value%[\"\']}"
                ;;
        esac
    done <"$STROM_CONF_FILE"
    printf '%s\n' "$value"
}

# A folder from the config file is relative to STROM_HOME when it is not absolute.
strom_conf_dir_value() {
    local value
    value="$(strom_conf_value "$1")"
    case "$value" in
        "") ;;
        /*) printf '%s\n' "$value" ;;
        "~"/*) printf '%s\n' "$HOME/${value#"~"/}" ;;
        *) printf '%s\n' "$STROM_HOME/$value" ;;
    esac
}

if [ -z "${STROM_LOG_DIR:-}" ]; then
    STROM_LOG_DIR="$(strom_conf_dir_value env.log.dir)"
    STROM_LOG_DIR="${STROM_LOG_DIR:-$STROM_HOME/log}"
fi
if [ -z "${STROM_PID_DIR:-}" ]; then
    STROM_PID_DIR="$(strom_conf_dir_value env.pid.dir)"
    STROM_PID_DIR="${STROM_PID_DIR:-/tmp}"
fi
case "$STROM_LOG_DIR" in /*) ;; *) STROM_LOG_DIR="$PWD/$STROM_LOG_DIR" ;; esac
case "$STROM_PID_DIR" in /*) ;; *) STROM_PID_DIR="$PWD/$STROM_PID_DIR" ;; esac
export STROM_LOG_DIR STROM_PID_DIR

if [ -n "${STROM_PYTHON:-}" ]; then
    PYTHON="$STROM_PYTHON"
elif [ -x "$STROM_HOME/.venv/bin/python" ]; then
    PYTHON="$STROM_HOME/.venv/bin/python"
else
    PYTHON="python3"
fi
export PYTHON
case "${PYTHONPATH:-}" in
    "$STROM_HOME" | "$STROM_HOME":*) ;;
    *) PYTHONPATH="$STROM_HOME${PYTHONPATH:+:$PYTHONPATH}" ;;
esac
export PYTHONPATH

# shellcheck disable=SC2034  # used by the scripts that source this file
STROM_USER="${USER:-$(id -un 2>/dev/null || echo unknown)}"
# shellcheck disable=SC2034
STROM_HOSTNAME="$(hostname 2>/dev/null || uname -n)"

# The lines of a hosts file without `#` comments, blank lines and surrounding whitespace.
strom_read_hosts_file() {
    local file="$1" line
    [ -r "$file" ] || return 0
    while IFS= read -r line || [ -n "$line" ]; do
        line="${line%%#*}"
        line="${line#"${line%%[![:space:]]*}"}"
        line="${line%"${line##*[![:space:]]}"}"
        [ -n "$line" ] && printf '%s\n' "$line"
    done <"$file"
    return 0
}

# The host of `host`, `host:port`, `[v6-address]:port` or a bare IPv6 address.
strom_host_part() {
    local entry="$1" rest
    case "$entry" in
        \[*\]*)
            entry="${entry#\[}"
            printf '%s\n' "${entry%%\]*}"
            ;;
        *:*)
            rest="${entry#*:}"
            case "$rest" in
                *:*) printf '%s\n' "$entry" ;;  # several colons: an IPv6 address
                *) printf '%s\n' "${entry%%:*}" ;;
            esac
            ;;
        *) printf '%s\n' "$entry" ;;
    esac
}

# The port of `host:port` / `[v6]:port`, or nothing.
strom_port_part() {
    local entry="$1" rest
    case "$entry" in
        \[*\]:*) printf '%s\n' "${entry##*\]:}" ;;
        \[*) ;;
        *:*)
            rest="${entry#*:}"
            case "$rest" in
                *:*) ;;
                *) printf '%s\n' "$rest" ;;
            esac
            ;;
    esac
}

# Fills MASTERS (hosts) and WEBUIPORTS (the port of each line, or empty) from conf/masters.
strom_read_masters() {
    local entry
    MASTERS=()
    WEBUIPORTS=()
    while IFS= read -r entry; do
        MASTERS+=("$(strom_host_part "$entry")")
        WEBUIPORTS+=("$(strom_port_part "$entry")")
    done < <(strom_read_hosts_file "$STROM_CONF_DIR/masters")
    if [ "${#MASTERS[@]}" -eq 0 ]; then
        echo "No masters in $STROM_CONF_DIR/masters." >&2
        return 1
    fi
}

# conf/slaves, or conf/workers when there is no slaves file.
strom_slaves_file() {
    if [ -e "$STROM_CONF_DIR/slaves" ] || [ ! -e "$STROM_CONF_DIR/workers" ]; then
        printf '%s\n' "$STROM_CONF_DIR/slaves"
    else
        printf '%s\n' "$STROM_CONF_DIR/workers"
    fi
}

# Fills SLAVES with one host per line of conf/slaves (a host listed twice appears twice).
strom_read_slaves() {
    local entry file
    file="$(strom_slaves_file)"
    SLAVES=()
    while IFS= read -r entry; do
        SLAVES+=("$(strom_host_part "$entry")")
    done < <(strom_read_hosts_file "$file")
    if [ "${#SLAVES[@]}" -eq 0 ]; then
        echo "No slaves in $file." >&2
        return 1
    fi
}

STROM_LOCAL_NAMES=""

# Sets STROM_LOCAL_NAMES to the names and addresses of this host, lower case, one a line.
strom_compute_local_names() {
    if [ -z "$STROM_LOCAL_NAMES" ]; then
        STROM_LOCAL_NAMES="$(
            {
                printf '%s\n' localhost ::1
                hostname 2>/dev/null
                hostname -f 2>/dev/null
                hostname -s 2>/dev/null
                hostname -I 2>/dev/null | tr ' ' '\n'
                if command -v ip >/dev/null 2>&1; then
                    ip -o addr 2>/dev/null | awk '{ split($4, a, "/"); print a[1] }'
                elif command -v ifconfig >/dev/null 2>&1; then
                    ifconfig 2>/dev/null | awk '$1 == "inet" || $1 == "inet6" { print $2 }'
                fi
            } | tr '[:upper:]' '[:lower:]' | sed -e 's/%.*//' -e '/^[[:space:]]*$/d' | sort -u
        )" || true
    fi
}

# Whether a host of the conf files is this host (then it is started directly, not with ssh).
strom_is_local_host() {
    local host
    host="$(printf '%s' "$1" | tr '[:upper:]' '[:lower:]')"
    case "$host" in
        "") return 1 ;;
        localhost | ::1 | 127.*) return 0 ;;
    esac
    strom_compute_local_names
    printf '%s\n' "$STROM_LOCAL_NAMES" | grep -Fxq -- "$host"
}

# Run a script of bin/ on a host of the conf files: directly when the host is this one, else
# with `ssh -n $STROM_SSH_OPTS host -- ...` and the same installation path, conf, log and pid
# folders there. A remote run goes to the background; strom_wait_remote collects the results.
STROM_REMOTE_JOBS=()
strom_run_on_host() {
    local host="$1" script="$2" command
    shift 2
    if strom_is_local_host "$host"; then
        "$STROM_BIN_DIR/$script" "$@"
        return
    fi
    local -a ssh_opts=()
    read -r -a ssh_opts <<<"${STROM_SSH_OPTS:-}"
    command="$(printf 'STROM_CONF_DIR=%q STROM_LOG_DIR=%q STROM_PID_DIR=%q %q' \
        "$STROM_CONF_DIR" "$STROM_LOG_DIR" "$STROM_PID_DIR" "$STROM_BIN_DIR/$script")"
    if [ "$#" -gt 0 ]; then
        command="$command$(printf ' %q' "$@")"
    fi
    ssh -n "${ssh_opts[@]+"${ssh_opts[@]}"}" "$host" -- "$command" &
    STROM_REMOTE_JOBS+=("$!:$host")
}

# Wait for the remote runs of strom_run_on_host; returns 1 when one of them failed.
strom_wait_remote() {
    local job status=0
    for job in "${STROM_REMOTE_JOBS[@]+"${STROM_REMOTE_JOBS[@]}"}"; do
        if ! wait "${job%%:*}"; then
            echo "Failed on host ${job#*:}." >&2
            status=1
        fi
    done
    STROM_REMOTE_JOBS=()
    return "$status"
}
