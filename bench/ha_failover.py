"""Failover time of JobManager high availability: a leader SIGKILLed during a checkpointed
job → a standby elected → the job RUNNING again from its latest checkpoint.

Run: ``.venv/bin/python bench/ha_failover.py [--rounds N] [--session-timeout 6s]``. Each round
starts a real ZooKeeper (Debian's package, see tests/zookeeper/install-deps.sh), two
JobManagers and two TaskManagers with the default settings (the ZooKeeper session timeout,
heartbeats and registration back-off as shipped), submits a long checkpointed FileSink job,
SIGKILLs the leader after two completed checkpoints and reports

- election: until the standby logs that it leads (bounded by the session timeout, after
  which ZooKeeper drops the dead leader's candidacy),
- running: until the recovered job is RUNNING again (TaskManagers re-registered at the new
  leader and the job redeployed from its checkpoint).

Not a test: the numbers depend on the machine and its load.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from harness import http_json, poll_for  # noqa: E402
from test_checkpointing import completed_checkpoints  # noqa: E402
from test_ha_failover import HaCluster, job_states, kill_leader, strom_run  # noqa: E402
from zookeeper import ZooKeeperServer  # noqa: E402

from strom.configuration import OPTIONS  # noqa: E402

DEFAULTS = {
    key: OPTIONS[key].default
    for key in (
        "heartbeat.interval",
        "heartbeat.timeout",
        "cluster.registration.max-timeout",
        "high-availability.zookeeper.client.session-timeout",
    )
}


def one_round(folder: Path, session_timeout: str | None) -> tuple[float, float]:
    zookeeper = ZooKeeperServer()
    settings = dict(DEFAULTS)
    if session_timeout:
        settings["high-availability.zookeeper.client.session-timeout"] = session_timeout
    cluster = HaCluster(folder / "cluster", zookeeper, **settings)
    try:
        first = cluster.start_standby_capable_jobmanager()
        poll_for(lambda: cluster.leader_rest_port() == first, what="a leader")
        cluster.start_standby_capable_jobmanager()
        cluster.rest_port = first
        for _ in range(2):
            cluster.start_taskmanager()
        client, _, checkpoints = strom_run(cluster, folder, "-d", count=10_000_000)
        client.communicate(timeout=120)
        poll_for(lambda: completed_checkpoints(checkpoints) >= 2, timeout=120)
        killed = time.monotonic()
        _, election = kill_leader(cluster)
        poll_for(lambda: "RUNNING" in job_states(cluster), timeout=120, what="the job to run")
        running = time.monotonic() - killed
        for job in http_json(f"{cluster.rest_url}/jobs/overview")["jobs"]:
            cluster_cancel(cluster, job["jid"])
        return election, running
    finally:
        cluster.stop()
        zookeeper.stop()


def cluster_cancel(cluster: HaCluster, job_id: str) -> None:
    from client.gateway import ClusterClient

    leader = cluster.leader_rest_port()
    rpc = next(
        line.split("gRPC on ")[1].split(",")[0]
        for line in (cluster.log_dir / f"jobmanager-{leader}.log").read_text().splitlines()
        if "gRPC on " in line
    )
    with ClusterClient(rpc) as client:
        client.cancel(job_id)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--session-timeout", default=None, help="default: as shipped (6 s)")
    args = parser.parse_args()
    results = []
    for index in range(args.rounds):
        with tempfile.TemporaryDirectory(prefix="strom-ha-bench-") as folder:
            election, running = one_round(Path(folder), args.session_timeout)
        results.append((election, running))
        print(f"round {index + 1}: elected after {election:.1f} s, running after {running:.1f} s")
    print(
        f"median of {args.rounds}: elected after "
        f"{statistics.median(r[0] for r in results):.1f} s, job running after "
        f"{statistics.median(r[1] for r in results):.1f} s"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
