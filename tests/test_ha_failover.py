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
from pathlib import Path

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

    def start_standby_capable_jobmanager(self, *overrides: str) -> int:
        """Start a JobManager on fresh ports (and ``key=value`` ``overrides`` of the
        configuration); returns its REST port."""
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
                *(arg for override in overrides for arg in ("-D", override)),
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

    def start_leader_and_standby(self, taskmanagers: int = 2) -> int:
        """A JobManager that leads, one that stands by, and ``taskmanagers`` TaskManagers;
        the leader's REST port (the cluster's REST port from now on)."""
        first = self.start_standby_capable_jobmanager()
        poll_for(lambda: self.leader_rest_port() == first, what="the first JobManager to lead")
        self.start_standby_capable_jobmanager()
        self.rest_port = first
        for _ in range(taskmanagers):
            self.start_taskmanager()
        return first

    def leader_rest_port(self) -> int | None:
        for rest in self.jobmanagers:
            log = (self.log_dir / f"jobmanager-{rest}.log").read_text(errors="replace")
            if "leads (fencing token" in log and self.jobmanagers[rest].poll() is None:
                return rest
        return None


#: JOB reading its numbers from a file, whose splits the JobManager hands out
FILE_JOB = JOB.replace(
    "from strom.datastream.connectors.number_seq import NumberSequenceSource",
    "from strom.datastream.connectors.file_system import FileSource, StreamFormat",
).replace(
    'numbers = env.from_source(NumberSequenceSource(1, count), None, "numbers").uid("numbers")',
    """path = checkpoints + '.numbers'
    with open(path, 'w') as lines:
        lines.write(''.join(f'{i:>63}\\n' for i in range(1, count + 1)))  # 10 splits
    source = FileSource.for_record_stream_format(StreamFormat.text_line_format(), path).build()
    numbers = env.from_source(source, None, 'numbers').uid('numbers').map(int).uid('int')""",
)


def strom_run(cluster: HaCluster, tmp_path, *flags: str, count: int = COUNT, job_text=JOB):
    job = tmp_path / "job" / "job.py"
    job.parent.mkdir(exist_ok=True)
    job.write_text(textwrap.dedent(job_text))
    output, checkpoints = tmp_path / "out", tmp_path / "checkpoints"
    client = subprocess.Popen(
        [sys.executable, "-m", "client.cli", "run", "-p", "2", *flags]
        + [str(job), str(output), str(checkpoints), str(count)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=str(REPO_ROOT),
        env=python_env(STROM_CONF_DIR=str(cluster.conf_dir)),
    )
    return client, output, checkpoints


def submit_detached(cluster: HaCluster, tmp_path, count: int):
    """``strom run -d`` the job; (job id, output, checkpoints) once 2 checkpoints completed."""
    client, output, checkpoints = strom_run(cluster, tmp_path, "-d", count=count)
    stdout, stderr = client.communicate(timeout=120)
    assert client.returncode == 0, stdout + stderr
    job_id = re.search(r"JobID (\w+)", stdout).group(1)
    poll_for(lambda: completed_checkpoints(checkpoints) >= 2, timeout=90)
    return job_id, output, checkpoints


def kill_leader(cluster: HaCluster) -> tuple[int, float]:
    """SIGKILL the leader, wait for the standby to lead; (new leader's REST port, seconds)."""
    old = cluster.leader_rest_port()
    process = cluster.jobmanagers.pop(old)
    killed_at = time.monotonic()
    process.send_signal(signal.SIGKILL)
    process.wait()
    new = poll_for(cluster.leader_rest_port, timeout=60, what="a standby to take over")
    cluster.rest_port = new
    return new, time.monotonic() - killed_at


def job_states(cluster: HaCluster) -> list[str]:
    return [j["state"] for j in http_json(f"{cluster.rest_url}/jobs/overview")["jobs"]]


def test_three_sigkills_of_the_leader_during_a_checkpointed_job_fail_over_exactly(
    zookeeper, tmp_path
):
    count = 60_000
    cluster = HaCluster(tmp_path / "cluster", zookeeper)
    try:
        first = cluster.start_standby_capable_jobmanager()
        poll_for(lambda: cluster.leader_rest_port() == first, what="the first JobManager to lead")
        cluster.start_standby_capable_jobmanager()
        assert cluster.leader_rest_port() == first  # the second stands by
        cluster.rest_port = first
        for _ in range(2):
            cluster.start_taskmanager()

        client, output, checkpoints = strom_run(cluster, tmp_path, count=count)
        failovers = []
        try:
            # Each time at another point of the job: after 2, 4 and 6 completed checkpoints.
            for moment in (2, 4, 6):
                poll_for(lambda m=moment: completed_checkpoints(checkpoints) >= m, timeout=120)
                if client.poll() is not None:
                    break
                _, election_s = kill_leader(cluster)
                elected_at = time.monotonic()
                poll_for(
                    lambda: "RUNNING" in job_states(cluster) or client.poll() is not None,
                    timeout=60,
                    what="the recovered job to run",
                )
                failovers.append(election_s + time.monotonic() - elected_at)
                cluster.start_standby_capable_jobmanager()  # the next standby
            stdout, stderr = client.communicate(timeout=300)
        finally:
            if client.poll() is None:
                client.kill()
                client.communicate()
        assert len(failovers) == 3, "the job ended before the third kill: make it longer"
        assert client.returncode == 0, stdout + stderr
        assert stderr.count("leads now") >= 3, stderr
        assert "recovered job" in cluster.logs()
        assert committed_output(output) == expected_output(count)
        print("failovers (leader killed -> job RUNNING):", [f"{s:.1f} s" for s in failovers])
    finally:
        cluster.stop()


def test_a_file_source_job_fails_over_exactly_once_with_its_splits(zookeeper, tmp_path):
    # The new leader knows nothing of the splits the old one handed out: the recovered
    # attempt's readers derive what is left from the checkpoint, and set its pool.
    count = 40_000
    cluster = HaCluster(tmp_path / "cluster", zookeeper)
    try:
        cluster.start_leader_and_standby()
        client, output, checkpoints = strom_run(cluster, tmp_path, count=count, job_text=FILE_JOB)
        try:
            poll_for(lambda: completed_checkpoints(checkpoints) >= 3, timeout=120)
            assert client.poll() is None, "the job ended before the kill: make it longer"
            kill_leader(cluster)
            stdout, stderr = client.communicate(timeout=300)
        finally:
            if client.poll() is None:
                client.kill()
                client.communicate()
        assert client.returncode == 0, stdout + stderr
        assert "leads now" in stderr, stderr
        assert committed_output(output) == expected_output(count)
    finally:
        cluster.stop()


def test_a_job_waiting_for_slots_survives_the_leaders_death(zookeeper, tmp_path):
    cluster = HaCluster(tmp_path / "cluster", zookeeper)
    try:
        first = cluster.start_standby_capable_jobmanager()
        poll_for(lambda: cluster.leader_rest_port() == first, what="the first JobManager to lead")
        cluster.start_standby_capable_jobmanager()
        cluster.rest_port = first
        client, output, _ = strom_run(cluster, tmp_path, "-d", count=3_000)
        stdout, stderr = client.communicate(timeout=120)
        assert client.returncode == 0, stdout + stderr
        job_id = re.search(r"JobID (\w+)", stdout).group(1)
        poll_for(lambda: job_states(cluster), timeout=30, what="the job to wait for slots")
        assert "RUNNING" not in job_states(cluster)

        kill_leader(cluster)
        poll_for(lambda: job_states(cluster), timeout=60, what="the job to be recovered")
        for _ in range(2):
            cluster.start_taskmanager()
        poll_for(
            lambda: http_json(f"{cluster.rest_url}/jobs/{job_id}")["state"] == "FINISHED",
            timeout=120,
            what="the recovered job to finish",
        )
        assert committed_output(output) == expected_output(3_000)
    finally:
        cluster.stop()


def test_taskmanagers_refuse_commands_with_a_deposed_leaders_fencing_token(zookeeper, tmp_path):
    import grpc

    from jobmanager.ha.fencing import METADATA_KEY
    from jobmanager.ha.leader_election import LeaderInfo
    from strom.rpc import cluster_pb2 as pb
    from strom.rpc import cluster_pb2_grpc

    cluster = HaCluster(tmp_path / "cluster", zookeeper)
    admin = zookeeper.client()
    try:
        cluster.rest_port = cluster.start_standby_capable_jobmanager()
        poll_for(cluster.leader_rest_port, what="a leader")
        cluster.start_taskmanager()
        leader = LeaderInfo.from_bytes(admin.get("/strom/default/leader")[0])
        address = http_json(f"{cluster.rest_url}/taskmanagers")["taskmanagers"][0]["address"]
        with grpc.insecure_channel(address) as channel:
            stub = cluster_pb2_grpc.TaskExecutorGatewayStub(channel)
            assert stub.Ping(pb.Empty(), metadata=[(METADATA_KEY, str(leader.token))], timeout=10)
            assert stub.Ping(pb.Empty(), timeout=10)  # without high availability: no token
            with pytest.raises(grpc.RpcError) as refused:
                stub.Ping(pb.Empty(), metadata=[(METADATA_KEY, str(leader.token - 1))], timeout=10)
        assert refused.value.code() == grpc.StatusCode.FAILED_PRECONDITION
        assert "deposed" in refused.value.details()
    finally:
        admin.stop()
        admin.close()
        cluster.stop()


def test_sigkill_of_the_leader_during_a_savepoint(zookeeper, tmp_path):
    count = 40_000
    cluster = HaCluster(tmp_path / "cluster", zookeeper)
    try:
        cluster.start_leader_and_standby()
        job_id, output, checkpoints = submit_detached(cluster, tmp_path, count)

        savepoints = tmp_path / "savepoints"
        savepoint = subprocess.Popen(
            [sys.executable, "-m", "client.cli", "savepoint", job_id, str(savepoints)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=str(REPO_ROOT),
            env=python_env(STROM_CONF_DIR=str(cluster.conf_dir)),
        )
        try:
            # The savepoint's folder appears when its first state is written.
            poll_for(lambda: savepoints.exists() or savepoint.poll() is not None, timeout=60)
            kill_leader(cluster)
            said, complaint = savepoint.communicate(timeout=120)
            print(f"savepoint client: exit {savepoint.returncode}: {said or complaint}")
        finally:
            if savepoint.poll() is None:
                savepoint.kill()
                savepoint.communicate()
        poll_for(
            lambda: http_json(f"{cluster.rest_url}/jobs/{job_id}")["state"] == "FINISHED",
            timeout=180,
            what="the recovered job to finish",
        )
        assert committed_output(output) == expected_output(count)
    finally:
        cluster.stop()


def test_a_standbys_rest_api_redirects_to_the_leader(zookeeper, tmp_path):
    import http.client

    cluster = HaCluster(tmp_path / "cluster", zookeeper)
    try:
        first = cluster.start_standby_capable_jobmanager()
        poll_for(lambda: cluster.leader_rest_port() == first, what="the first JobManager to lead")
        second = cluster.start_standby_capable_jobmanager()

        def ask():
            connection = http.client.HTTPConnection("127.0.0.1", second, timeout=10)
            connection.request("GET", "/jobs/overview?x=1")
            answer = connection.getresponse()
            answer.read()
            connection.close()
            return answer

        # Once the standby has seen the leader in ZooKeeper.
        answer = poll_for(lambda: (a := ask()).status == 307 and a, what="a redirect")
        assert answer.getheader("Location") == f"http://127.0.0.1:{first}/jobs/overview?x=1"
        # Clients that follow redirects (urllib, browsers) get the leader's answer.
        leader = http_json(f"http://127.0.0.1:{first}/overview")
        assert http_json(f"http://127.0.0.1:{second}/overview") == leader
    finally:
        cluster.stop()


def zookeeper_leader_rest_port(admin) -> int | None:
    """The REST port of the leader ZooKeeper publishes (None while there is none)."""
    from kazoo.exceptions import NoNodeError

    from jobmanager.ha.leader_election import LeaderInfo

    try:
        data, _ = admin.get("/strom/default/leader")
    except NoNodeError:
        return None
    return int(LeaderInfo.from_bytes(data).rest_address.rsplit(":", 1)[1])


def test_a_deposed_leader_stands_by_and_leads_again(zookeeper, tmp_path):
    """The leader loses its ZooKeeper session (its process is paused past the session
    timeout, as in a long GC pause or a partition): the standby leads and recovers the job; the
    deposed one suspends its jobs and stands by instead of exiting, and leads again — recovering
    the job once more — when the second is killed. The output is exact throughout, and the
    checkpoint each leader recovered from is deleted once newer ones subsume it."""
    count = 80_000
    cluster = HaCluster(tmp_path / "cluster", zookeeper)
    admin = zookeeper.client()
    try:
        first = cluster.start_standby_capable_jobmanager()
        poll_for(lambda: zookeeper_leader_rest_port(admin) == first, what="the first to lead")
        second = cluster.start_standby_capable_jobmanager()
        cluster.rest_port = first
        for _ in range(2):
            cluster.start_taskmanager()
        job_id, output, checkpoints = submit_detached(cluster, tmp_path, count)

        def log_of(rest: int) -> str:
            return (cluster.log_dir / f"jobmanager-{rest}.log").read_text(errors="replace")

        def recovered_from(rest: int) -> str:
            """Where the JobManager at ``rest`` last recovered the job from."""
            found = re.findall(
                rf"recovered job {job_id} .* from checkpoint \d+ at (\S+)", log_of(rest)
            )
            return found[-1] if found else ""

        def state_on(rest: int) -> str:
            return http_json(f"http://127.0.0.1:{rest}/jobs/{job_id}")["state"]

        # Partition the leader from ZooKeeper until its session expires and the standby leads.
        paused_at = time.monotonic()
        cluster.jobmanagers[first].send_signal(signal.SIGSTOP)
        try:
            poll_for(lambda: zookeeper_leader_rest_port(admin) == second, timeout=30)
        finally:
            cluster.jobmanagers[first].send_signal(signal.SIGCONT)
        poll_for(lambda: "stands by" in log_of(first), timeout=30, what="the first to stand by")
        assert f"job {job_id} (" in log_of(first) and "is SUSPENDED" in log_of(first)
        poll_for(lambda: state_on(second) == "RUNNING", timeout=60, what="the job on the second")
        takeover_s = time.monotonic() - paused_at
        restored = recovered_from(second)
        assert restored, log_of(second)
        # The first runs on as a standby: its REST API answers with the leader's.
        assert cluster.jobmanagers[first].poll() is None
        poll_for(lambda: state_on(first) == "RUNNING", timeout=30, what="a redirect to it")
        # The second's own checkpoints subsume the one it recovered from: it is deleted.
        poll_for(lambda: not Path(restored).exists(), timeout=30, what=f"{restored} to go")
        assert state_on(second) == "RUNNING", "the job ended before the second failover"

        killed_at = time.monotonic()
        cluster.jobmanagers.pop(second).send_signal(signal.SIGKILL)
        poll_for(lambda: zookeeper_leader_rest_port(admin) == first, timeout=30, what="re-lead")
        cluster.rest_port = first
        poll_for(
            lambda: state_on(first) in ("RUNNING", "FINISHED"), timeout=60, what="the job on first"
        )
        comeback_s = time.monotonic() - killed_at
        poll_for(
            lambda: state_on(first) == "FINISHED", timeout=120, what="the job to finish on first"
        )
        assert recovered_from(first), log_of(first)
        assert committed_output(output) == expected_output(count)
        print(
            f"leader paused -> job RUNNING on the standby: {takeover_s:.1f} s; "
            f"that one killed -> job running again on the deposed one: {comeback_s:.1f} s"
        )
    finally:
        admin.stop()
        admin.close()
        cluster.stop()
