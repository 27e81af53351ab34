"""Try a Strom cluster across several hosts on this one machine (as root).

    sudo .venv/bin/python tests/netns/demo.py            # 3 hosts: a JobManager, 2 workers
    sudo .venv/bin/python tests/netns/demo.py --hosts 4 --taskmanagers-per-host 2

It makes the hosts with tests/netns/hosts.py (network namespaces behind a bridge, each with
its own sshd, host name and processes), writes a conf folder (masters = host 1, slaves = the
other hosts), runs bin/start-cluster.sh, which starts the daemons over ssh, and prints how to
use bin/jps, bin/strom, curl and ssh with them from another shell. Ctrl-C (or SIGTERM) stops
the cluster with bin/stop-cluster.sh and removes the hosts. Nothing outside this machine is
contacted: the hosts have no route beyond the bridge.
"""

from __future__ import annotations

import argparse
import os
import shlex
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import yaml

HERE = Path(__file__).resolve().parent
REPO_ROOT = HERE.parent.parent
sys.path.insert(0, str(HERE.parent))  # tests/, for `netns` and `harness`

from harness import http_json, poll_for  # noqa: E402

from netns.hosts import NetnsHosts, Unavailable  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    parser.add_argument("--hosts", type=int, default=3, help="hosts to make (at least 2)")
    parser.add_argument("--taskmanagers-per-host", type=int, default=1)
    parser.add_argument("--slots", type=int, default=2, help="task slots per TaskManager")
    parser.add_argument("--rpc-port", type=int, default=6123)
    parser.add_argument("--rest-port", type=int, default=8081)
    args = parser.parse_args(argv)
    if args.hosts < 2:
        parser.error("--hosts must be at least 2 (one JobManager host, one worker)")

    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, lambda *_: stop.set())

    work = Path(tempfile.mkdtemp(prefix="strom-demo-"))
    conf_dir, log_dir, pid_dir = work / "conf", work / "log", work / "pid"
    conf_dir.mkdir()
    try:
        hosts = NetnsHosts(args.hosts).start()
    except Unavailable as error:
        print(f"Cannot make hosts here: {error}", file=sys.stderr)
        return 1
    try:
        master, workers = hosts[0], hosts[1:]
        hosts.make_private(pid_dir)  # every host has its own pid folder, like its own /tmp
        config = {
            "jobmanager.rpc.address": master.name,
            "jobmanager.rpc.port": args.rpc_port,
            "rest.port": args.rest_port,
            "taskmanager.numberOfTaskSlots": args.slots,
            "heartbeat.interval": "1 s",
            "heartbeat.timeout": "10 s",
        }
        (conf_dir / "strom-conf.yaml").write_text(yaml.safe_dump(config))
        (conf_dir / "masters").write_text(f"{master.name}\n")
        (conf_dir / "slaves").write_text(
            "".join(f"{host.name}\n" for host in workers for _ in range(args.taskmanagers_per_host))
        )
        env = {
            "STROM_CONF_DIR": str(conf_dir),
            "STROM_LOG_DIR": str(log_dir),
            "STROM_PID_DIR": str(pid_dir),
            "STROM_SSH_OPTS": hosts.ssh_opts,
        }
        full_env = dict(os.environ, **env)
        print(f"$ bin/start-cluster.sh   (conf: {conf_dir})")
        started = subprocess.run(
            [str(REPO_ROOT / "bin" / "start-cluster.sh")], env=full_env, timeout=120, check=False
        )
        if started.returncode != 0:
            print("start-cluster.sh failed; logs are in", log_dir, file=sys.stderr)
            return 1
        rest = f"http://{master.address}:{args.rest_port}"
        expected = len(workers) * args.taskmanagers_per_host
        poll_for(
            lambda: http_json(rest + "/overview")["taskmanagers"] == expected,
            timeout=30,
            what=f"{expected} TaskManagers",
        )

        print("\nHosts (names are in /etc/hosts while this runs):")
        print(f"  {'this machine':<20} {hosts.gateway:<15} the bridge; bin/ scripts run here")
        for host in hosts:
            role = (
                "JobManager"
                if host is master
                else "TaskManager"
                + (f" x{args.taskmanagers_per_host}" if args.taskmanagers_per_host > 1 else "")
            )
            print(f"  {host.name:<20} {host.address:<15} {role}")
        exports = " ".join(f"{key}={shlex.quote(value)}" for key, value in env.items())
        print(
            f"""
Cluster up: {expected} TaskManagers. In another shell, from {REPO_ROOT}:

  export {exports}
  bin/jps                                   # the Strom processes of each host, over ssh
  curl {rest}/overview
  curl {rest}/taskmanagers
  bin/strom run -p 2 examples/word_count.py --input "$PWD/README.md"
  ssh $STROM_SSH_OPTS {workers[0].name}     # a shell on a worker (its own name and processes)
  bin/stop-cluster.sh; bin/start-cluster.sh

Logs: {log_dir}   Dashboard: {rest}
Ctrl-C stops the cluster and removes the hosts."""
        )
        sys.stdout.flush()
        while not stop.wait(1.0):
            pass
        print("\n$ bin/stop-cluster.sh")
        subprocess.run(
            [str(REPO_ROOT / "bin" / "stop-cluster.sh")], env=full_env, timeout=120, check=False
        )
        return 0
    finally:
        started_at = time.monotonic()
        hosts.close()
        print(f"Hosts removed ({time.monotonic() - started_at:.1f} s); logs kept in {log_dir}.")


if __name__ == "__main__":
    sys.exit(main())
