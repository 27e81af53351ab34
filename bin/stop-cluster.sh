#!/usr/bin/env bash
#
# Stop a Strom cluster: one TaskManager for each line of conf/slaves (or conf/workers), then
# the JobManager on each host of conf/masters. Local hosts directly, remote ones with ssh.
# Daemons that are already gone are reported and skipped; that is not an error.
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

status=0
for slave in "${SLAVES[@]}"; do
    strom_run_on_host "$slave" taskmanager.sh stop || status=1
done
strom_wait_remote || status=1

for master in "${MASTERS[@]}"; do
    strom_run_on_host "$master" jobmanager.sh stop || status=1
done
strom_wait_remote || status=1

exit "$status"
