"""A recovered job's attempt numbers on a real cluster with ZooKeeper: after the leader is
SIGKILLed, the new leader deploys the job above every attempt an earlier leader deployed, so
none of the deposed leader's tasks (which may still run or be tearing down on the
TaskManagers) shares an attempt with the new execution; and the job's output stays exact."""

from __future__ import annotations

import re

from harness import http_json, poll_for
from test_checkpointing import committed_output, completed_checkpoints, expected_output
from test_ha_failover import HaCluster, kill_leader, submit_detached, zookeeper  # noqa: F401

COUNT = 60_000


def deployed_attempts(cluster: HaCluster, rest: int, job_id: str) -> list[int]:
    """The attempts of ``job_id`` the JobManager with REST port ``rest`` deployed (its log)."""
    log = (cluster.log_dir / f"jobmanager-{rest}.log").read_text(errors="replace")
    return [int(n) for n in re.findall(rf"deploying job {job_id} attempt (\d+)", log)]


def running_details(cluster: HaCluster, job_id: str) -> dict | None:
    """The job's details (REST) once the current leader runs it, else None."""
    details = http_json(f"{cluster.rest_url}/jobs/{job_id}")
    return details if details and details["state"] == "RUNNING" else None


def test_a_recovered_job_numbers_its_attempts_above_every_earlier_leaders(zookeeper, tmp_path):  # noqa: F811
    cluster = HaCluster(tmp_path / "cluster", zookeeper)
    try:
        first = cluster.start_leader_and_standby()
        job_id, output, checkpoints = submit_detached(cluster, tmp_path, COUNT)
        earlier = deployed_attempts(cluster, first, job_id)
        assert earlier == [0]

        leaders = [first]
        for moment in (3, 5):  # two failovers: each new leader above both before it
            poll_for(lambda m=moment: completed_checkpoints(checkpoints) >= m, timeout=60)
            leader, _ = kill_leader(cluster)
            # every attempt the earlier (now dead) leaders deployed, restarts included
            earlier = [a for rest in leaders for a in deployed_attempts(cluster, rest, job_id)]
            leaders.append(leader)
            details = poll_for(
                lambda: running_details(cluster, job_id), timeout=60, what="the job to run again"
            )
            attempt = details["attempt"]
            assert attempt > max(earlier), (attempt, earlier)
            # the job may have restarted here meanwhile (a TaskManager moving over to this
            # leader): every attempt this leader deployed is above the earlier leaders'
            mine = poll_for(
                lambda r=leader: deployed_attempts(cluster, r, job_id), what="its deployment"
            )
            assert min(mine) > max(earlier), (mine, earlier)
            cluster.start_standby_capable_jobmanager()  # the next standby

        poll_for(
            lambda: http_json(f"{cluster.rest_url}/jobs/{job_id}")["state"] == "FINISHED",
            timeout=120,
            what="the recovered job to finish",
        )
        assert committed_output(output) == expected_output(COUNT)
        assert f"recovered job {job_id}" in cluster.logs()
    finally:
        cluster.stop()
