"""The leader's connection to ZooKeeper suspended, not (yet) expired: a real ZooKeeper, two
JobManagers and two TaskManagers, and the leader alone reaching ZooKeeper through a relay the
test can cut. While its connection is suspended the leader must not act as one (another may
be elected meanwhile): no checkpoint triggered, no command to a TaskManager. Back within the
session timeout it leads on with the same fencing token and its jobs where they were; back
after it, the session expired, the standby leads and recovers the job, and the old leader
stands by. The committed output of the FileSink job is exact either way."""

from __future__ import annotations

import re
import time
from pathlib import Path

from harness import http_json, poll_for
from test_checkpointing import committed_output, expected_output
from test_ha_failover import HaCluster, submit_detached, zookeeper_leader_rest_port
from test_ha_failover import zookeeper as zookeeper  # the fixture
from test_slot_processes import slot_processes_of
from zookeeper import CuttableRelay

SESSION_TIMEOUT = "8 s"


def newest_triggered(checkpoints: Path) -> int:
    """The id of the newest checkpoint any task started writing (0 if none)."""
    return max((int(p.name[4:]) for p in checkpoints.rglob("chk-*") if p.is_dir()), default=0)


def start(zookeeper, tmp_path):
    """The cluster, the relay, and the REST ports of the leader (through the relay) and of
    the standby."""
    relay = CuttableRelay(zookeeper.address)
    cluster = HaCluster(
        tmp_path / "cluster",
        zookeeper,
        **{"high-availability.zookeeper.client.session-timeout": SESSION_TIMEOUT},
    )
    leader = cluster.start_standby_capable_jobmanager(
        f"high-availability.zookeeper.quorum={relay.address}"
    )
    return relay, cluster, leader


def test_a_leader_whose_connection_comes_back_in_time_leads_on(zookeeper, tmp_path):
    """A subtask fails while the connection is suspended: the leader cancels and restarts
    nothing until the connection is back, then restarts the job from its latest checkpoint."""
    count = 100_000
    relay, cluster, first = start(zookeeper, tmp_path)
    admin = zookeeper.client()
    try:
        poll_for(lambda: zookeeper_leader_rest_port(admin) == first, what="the first to lead")
        cluster.start_standby_capable_jobmanager()
        cluster.rest_port = first
        for _ in range(2):
            cluster.start_taskmanager()
        job_id, output, checkpoints = submit_detached(cluster, tmp_path, count)
        log = cluster.log_dir / f"jobmanager-{first}.log"
        token = re.findall(r"fencing token (\d+)", log.read_text())[-1]

        relay.cut()
        poll_for(
            lambda: "connection to ZooKeeper is suspended" in log.read_text(errors="replace"),
            timeout=10,
            what="the leader to notice the suspension",
        )
        triggered = newest_triggered(checkpoints)
        cut_at = time.monotonic()
        victim = slot_processes_of(cluster.taskmanagers[0])[0]
        victim.kill()  # its TaskManager reports the subtasks there FAILED
        # Well under the session timeout, and 8 checkpoint intervals.
        poll_for(lambda: time.monotonic() - cut_at > 2.0, timeout=10, what="2 s to pass")
        # Nothing was triggered, cancelled or deployed meanwhile (at most the one trigger on
        # its way when the connection went).
        assert newest_triggered(checkpoints) <= triggered + 1
        assert f"deploying job {job_id} attempt 1" not in log.read_text(errors="replace")
        assert http_json(f"{cluster.rest_url}/jobs/{job_id}")["state"] == "RUNNING"
        relay.restore()

        poll_for(
            lambda: http_json(f"{cluster.rest_url}/jobs/{job_id}")["state"] == "FINISHED",
            timeout=120,
            what="the job to finish",
        )
        text = log.read_text(errors="replace")
        resumed = text.index(f"leads on (fencing token {token})")
        assert text.index(f"deploying job {job_id} attempt 1") > resumed
        assert "is SUSPENDED" not in text and "lost its leadership" not in text
        assert zookeeper_leader_rest_port(admin) == first
        assert committed_output(output) == expected_output(count)
    finally:
        admin.stop()
        admin.close()
        cluster.stop()
        relay.close()


def test_a_leader_whose_session_expired_stands_by_and_the_standby_recovers(zookeeper, tmp_path):
    count = 150_000
    relay, cluster, first = start(zookeeper, tmp_path)
    admin = zookeeper.client()
    try:
        poll_for(lambda: zookeeper_leader_rest_port(admin) == first, what="the first to lead")
        second = cluster.start_standby_capable_jobmanager()
        cluster.rest_port = first
        for _ in range(2):
            cluster.start_taskmanager()
        job_id, output, _ = submit_detached(cluster, tmp_path, count)
        log = cluster.log_dir / f"jobmanager-{first}.log"

        relay.cut()
        # Past the session timeout: ZooKeeper expires the session and the standby leads.
        poll_for(lambda: zookeeper_leader_rest_port(admin) == second, timeout=30, what="second")
        poll_for(
            lambda: "stands by" in log.read_text(errors="replace"),
            timeout=30,
            what="the first to stand by",
        )
        relay.restore()
        cluster.rest_port = second
        poll_for(
            lambda: http_json(f"{cluster.rest_url}/jobs/{job_id}")["state"] == "FINISHED",
            timeout=120,
            what="the recovered job to finish",
        )
        text = log.read_text(errors="replace")
        assert "not acting as leader" in text and "is SUSPENDED" in text
        assert cluster.jobmanagers[first].poll() is None  # it stands by, it did not exit
        assert committed_output(output) == expected_output(count)
    finally:
        admin.stop()
        admin.close()
        cluster.stop()
        relay.close()
