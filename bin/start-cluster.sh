#!/usr/bin/env bash
#
# Start a Strom cluster: a JobManager on each host of conf/masters (`host` or
# `host:webui-port`, the port overriding rest.port; with high-availability.type: zookeeper
# one leads and the others stand by) and a TaskManager for each line of
# conf/slaves (or conf/workers); a host listed twice gets two. Local hosts are started
# directly, remote ones with `ssh -n $STROM_SSH_OPTS host` and the same installation path.
set -euo pipefail

_src="${BASH_SOURCE[0]}"
while [ -L "$_src" ]; do
    _dir="$(cd -P "$(dirname "$_src")" && pwd)"
    _src="$(readlink "$_src")"
    case "$_src" in /*) ;; *) _src="$_dir/$_src" ;; esac
done
# shellcheck source-path=SCRIPTDIR source=config.sh
. "$(cd -P "$(dirname "$_src")" && pwd)/config.sh"

strom_read_masters
strom_read_slaves

# With high availability each JobManager publishes its own address in ZooKeeper (Flink's
# start-cluster.sh passes each master's host the same way).
HA_TYPE="$(strom_conf_value high-availability.type)"

status=0
echo "Starting cluster."
for i in "${!MASTERS[@]}"; do
    args=()
    if [ -n "${WEBUIPORTS[$i]}" ]; then
        args=(-D "rest.port=${WEBUIPORTS[$i]}")
    fi
    if [ "$HA_TYPE" = zookeeper ]; then
        args+=(-D "jobmanager.rpc.address=${MASTERS[$i]}")
    fi
    strom_run_on_host "${MASTERS[$i]}" jobmanager.sh start "${args[@]+"${args[@]}"}" || status=1
done
strom_wait_remote || status=1

for slave in "${SLAVES[@]}"; do
    strom_run_on_host "$slave" taskmanager.sh start || status=1
done
strom_wait_remote || status=1

exit "$status"
