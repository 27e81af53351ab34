"""JobManager failover with high-availability.type: zookeeper on a real cluster: a real
ZooKeeper, two JobManagers (one leads, one stands by) and TaskManagers that find the leader
in ZooKeeper. SIGKILL of the leader during an attached, checkpointed FileSink job: the standby
takes over, recovers the job from its latest checkpoint, the attached `strom run` follows it
and ends successfully, and the committed output is exactly the expected output."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import textwrap
import time

import pytest
from harness import REPO_ROOT, LocalCluster, free_port, http_json, poll_for, python_env
from test_checkpointing import committed_output, completed_checkpoints, expected_output
from test_jobmanager_loss import JOB
from zookeeper import ZooKeeperServer

COUNT = 30_000


@pytest.fixture
def zookeeper():
    server = ZooKeeperServer()
    yield server
    server.stop()


class HaCluster(LocalCluster):
    """LocalCluster with high availability: ``jobmanagers`` JobManagers on their own ports."""

    def __init__(self, tmp_path, zookeeper: ZooKeeperServer, **config) -> None:
        super().__init__(
            tmp_path,
            slots=2,
            **{
                "high-availability.type": "zookeeper",
                "high-availability.zookeeper.quorum": zookeeper.address,
                "high-availability.storageDir": str(tmp_path / "ha"),
                "high-availability.zookeeper.client.session-timeout": "2 s",
                **config,
            },
        )
        self.jobmanagers: dict[int, subprocess.Popen] = {}  # rest port → process

    def start_standby_capable_jobmanager(self) -> int:
        """Start a JobManager on fresh ports; returns its REST port."""
        rpc, rest = free_port(), free_port()
        self._count += 1
        log = open(self.log_dir / f"jobmanager-{rest}.log", "wb")  # noqa: SIM115
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "jobmanager",
                "--conf-dir",
                str(self.conf_dir),
                "-D",
                f"jobmanager.rpc.port={rpc}",
                "-D",
                f"rest.port={rest}",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=python_env(STROM_CONF_DIR=str(self.conf_dir)),
            cwd=str(REPO_ROOT),
        )
        log.close()
        self._all.append(process)
        self.jobmanagers[rest] = process
        poll_for(lambda: http_json(f"http://127.0.0.1:{rest}/overview"), what="its REST")
        return rest

    def leader_rest_port(self) -> int | None:
        for rest in self.jobmanagers:
            log = (self.log_dir / f"jobmanager-{rest}.log").read_text(errors="replace")
            if "leads (fencing token" in log and self.jobmanagers[rest].poll() is None:
                return rest
        return None


def test_sigkill_of_the_leader_during_a_checkpointed_job_fails_over_exactly(zookeeper, tmp_path):
    cluster = HaCluster(tmp_path / "cluster", zookeeper)
    try:
        first = cluster.start_standby_capable_jobmanager()
        poll_for(lambda: cluster.leader_rest_port() == first, what="the first JobManager to lead")
        second = cluster.start_standby_capable_jobmanager()
        cluster.rest_port = first
        for _ in range(2):
            cluster.start_taskmanager()
        assert (
            "stands by"
            not in (tmp_path / "cluster" / "log" / f"jobmanager-{second}.log").read_text()
        )

        job = tmp_path / "job" / "job.py"
        job.parent.mkdir()
        job.write_text(textwrap.dedent(JOB))
        output, checkpoints = tmp_path / "out", tmp_path / "checkpoints"
        client = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "client.cli",
                "run",
                "-p",
                "2",
                str(job),
                str(output),
                str(checkpoints),
                str(COUNT),
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=str(REPO_ROOT),
            env=python_env(STROM_CONF_DIR=str(cluster.conf_dir)),
        )
        try:
            poll_for(lambda: completed_checkpoints(checkpoints) >= 2, timeout=120)
            killed_at = time.monotonic()
            cluster.jobmanagers[first].send_signal(signal.SIGKILL)
            cluster.jobmanagers[first].wait()
            poll_for(lambda: cluster.leader_rest_port() == second, timeout=60, what="failover")
            cluster.rest_port = second
            poll_for(
                lambda: any(
                    j["state"] == "RUNNING"
                    for j in http_json(f"{cluster.rest_url}/jobs/overview")["jobs"]
                ),
                timeout=60,
                what="the recovered job to run",
            )
            failover_s = time.monotonic() - killed_at
            stdout, stderr = client.communicate(timeout=240)
        finally:
            if client.poll() is None:
                client.kill()
                client.communicate()
        assert client.returncode == 0, stdout + stderr
        assert "leads now" in stderr, stderr
        log = (cluster.log_dir / f"jobmanager-{second}.log").read_text()
        assert re.search(r"recovered job \w+ \(.*\) from checkpoint \d+", log), log
        assert committed_output(output) == expected_output(COUNT)
        print(f"failover (leader SIGKILLed -> job RUNNING on the standby): {failover_s:.1f} s")
    finally:
        cluster.stop()
