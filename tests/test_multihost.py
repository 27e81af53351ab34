"""A cluster across three hosts: bin/ scripts over real ssh, jps per host, jobs whose records
cross the network, and hosts lost (crashed or partitioned) while a checkpointed job runs.

The hosts are network namespaces with their own sshd, name, processes and pid folder
(tests/netns/hosts.py). The scripts run here, in this machine's own namespace, as on an admin
box: the JobManager starts over ssh on host 1, TaskManagers over ssh on hosts 2 and 3 (host 3
twice). Jobs are submitted from here too (``bin/strom run -m``, or ``remote()`` from this
process), so their clients talk to the hosts over the bridge. All hosts share the file system:
job output and checkpoints go to folders of the test's tmp dir, as to a shared mount.
Needs root; elsewhere the module is skipped with the reason. No fixed sleeps.
"""

from __future__ import annotations

import json
import os
import pwd
import re
import signal
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import psutil
import pytest
import yaml
from harness import REPO_ROOT, http_json, poll_for, python_env
from jobs_support import remote
from netns.hosts import NetnsHost, NetnsHosts, Unavailable
from test_checkpointing import (
    KEYS,
    checkpointed_env,
    committed_output,
    completed_checkpoints,
    expected_output,
)

from client.gateway import ClusterClient
from strom.common import Encoder, RestartStrategies
from strom.datastream import MapFunction, SinkFunction, StreamExecutionEnvironment
from strom.datastream.connectors.file_system import FileSink
from strom.datastream.connectors.number_seq import NumberSequenceSource
from strom.process_identity import JOBMANAGER, TASKMANAGER, role_of

pytestmark = pytest.mark.timeout(120)

BIN = REPO_ROOT / "bin"
USER = pwd.getpwuid(os.getuid()).pw_name
HEARTBEAT_TIMEOUT_S = 2.0
SCRIPT_TIMEOUT_S = 60.0


@pytest.fixture(scope="module")
def hosts():
    try:
        made = NetnsHosts(3).start()
    except Unavailable as error:
        pytest.skip(f"multi-host tests need network namespaces and sshd: {error}")
    try:
        yield made
    finally:
        made.close()


def strom_processes_of(conf_dir: Path) -> list[psutil.Process]:
    """Live JobManagers and TaskManagers started with this conf dir, on any host."""
    found = []
    for process in psutil.process_iter():
        try:
            if process.status() == psutil.STATUS_ZOMBIE:
                continue
            if role_of(process.name(), process.cmdline()) is None:
                continue
            if process.environ().get("STROM_CONF_DIR") == str(conf_dir):
                found.append(process)
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            continue
    return found


@dataclass
class Cluster:
    """Conf, log and (per-host) pid folders of one test's cluster across the hosts."""

    hosts: NetnsHosts
    root: Path
    conf_dir: Path
    log_dir: Path
    pid_dir: Path
    rest_port: int
    rpc_port: int
    env: dict[str, str] = field(default_factory=dict)

    @property
    def rest_url(self) -> str:
        return f"http://{self.hosts[0].address}:{self.rest_port}"

    @property
    def jobmanager(self) -> str:
        """``host:port`` of the JobManager's RPC, as ``strom run -m`` takes it."""
        return f"{self.hosts[0].name}:{self.rpc_port}"

    def run(self, script: str, *args: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [str(BIN / script), *args],
            env=self.env,
            cwd=str(self.root),
            capture_output=True,
            text=True,
            timeout=SCRIPT_TIMEOUT_S,
            check=False,
        )

    def ok(self, script: str, *args: str) -> str:
        result = self.run(script, *args)
        assert result.returncode == 0, (
            f"{script} {' '.join(args)} failed ({result.returncode}):\n"
            f"{result.stdout}\n{result.stderr}\n{self.logs()}"
        )
        return result.stdout

    def overview(self) -> dict:
        return http_json(self.rest_url + "/overview", timeout=2)

    def taskmanagers(self) -> list[dict]:
        return http_json(self.rest_url + "/taskmanagers", timeout=2)["taskmanagers"]

    def wait_for_taskmanagers(self, count: int, timeout: float = 20.0) -> dict:
        def check():
            overview = self.overview()
            return overview if overview["taskmanagers"] == count else None

        return poll_for(check, timeout=timeout, what=f"{count} TaskManagers in /overview")

    def processes(self, host: NetnsHost | None = None) -> list[psutil.Process]:
        mine = strom_processes_of(self.conf_dir)
        if host is None:
            return mine
        on_host = set(host.pids())
        return [process for process in mine if process.pid in on_host]

    def taskmanager_processes(self, host: NetnsHost) -> list[psutil.Process]:
        """The host's TaskManagers (not their slot processes, which come and go with jobs)."""
        return [p for p in self.processes(host) if role_of(p.name(), p.cmdline()) == TASKMANAGER]

    def roles(self, host: NetnsHost) -> list[str]:
        return sorted(role_of(p.name(), p.cmdline()) or "" for p in self.processes(host))

    def pid_files(self, host: NetnsHost) -> list[str]:
        return sorted(
            path.name for path in host.private_path(self.pid_dir).glob("*.pid") if path.is_file()
        )

    def job(self, job_id: str) -> dict:
        return http_json(f"{self.rest_url}/jobs/{job_id}", timeout=5)

    def job_state(self, job_id: str) -> tuple[str, int]:
        """The job's state and restarts, from the JobManager's gRPC gateway. (Cheaper than
        REST while a TaskManager of the job is unreachable: REST's job views ask the job's
        TaskManagers for live metrics, waiting up to a second for each that does not answer.)
        """
        with ClusterClient(self.jobmanager, timeout=5) as client:
            details = client.job(job_id)
        return details.summary.state, details.restarts

    def subtasks(self, job_id: str) -> list[dict]:
        """Every subtask of the job's current attempt, with its vertex's name added."""
        job = self.job(job_id)
        found = []
        for vertex in job["vertices"]:
            view = http_json(f"{self.rest_url}/jobs/{job_id}/vertices/{vertex['id']}", timeout=5)
            found += [{**subtask, "vertex": vertex["name"]} for subtask in view["subtasks"]]
        return found

    def host_of(self, taskmanager_ids: dict[str, str], taskmanager_id: str) -> str:
        """The host name of a TaskManager (from ``taskmanager_ids``, else ``/taskmanagers``)."""
        if taskmanager_id not in taskmanager_ids:
            taskmanager_ids.update({tm["id"]: tm["hostname"] for tm in self.taskmanagers()})
        return taskmanager_ids[taskmanager_id]

    def running_on(self, job_id: str, taskmanager_ids: dict[str, str]) -> dict[str, set[str]]:
        """``{vertex name: host names}`` of the job's subtasks, once all of them run."""
        subtasks = self.subtasks(job_id)
        if not subtasks or any(s["status"] != "RUNNING" for s in subtasks):
            return {}
        hosts: dict[str, set[str]] = {}
        for subtask in subtasks:
            host = self.host_of(taskmanager_ids, subtask["taskmanager-id"])
            hosts.setdefault(subtask["vertex"], set()).add(host)
        return hosts

    def start_taskmanager(self, host: NetnsHost) -> None:
        """``bin/taskmanager.sh start`` on ``host`` over ssh, as an operator would."""
        command = " ".join(
            [
                f"STROM_CONF_DIR={self.conf_dir}",
                f"STROM_LOG_DIR={self.log_dir}",
                f"STROM_PID_DIR={self.pid_dir}",
                f"{BIN / 'taskmanager.sh'} start",
            ]
        )
        result = host.ssh(command, timeout=SCRIPT_TIMEOUT_S)
        assert result.returncode == 0, f"{command} on {host.name}: {result.stdout}{result.stderr}"

    def taskmanager_logs(self, host: NetnsHost) -> str:
        return "".join(
            path.read_text(errors="replace")
            for path in sorted(self.log_dir.glob(f"strom-{USER}-taskmanager-*-{host.name}.log"))
        )

    def logs(self, tail: int = 3000) -> str:
        if not self.log_dir.exists():
            return ""
        return "\n".join(
            f"--- {path.name}\n{path.read_text(errors='replace')[-tail:]}"
            for path in sorted(self.log_dir.iterdir())
            if path.is_file()
        )


@pytest.fixture
def cluster(hosts, tmp_path):
    h1, h2, h3 = hosts
    conf_dir, log_dir, pid_dir = tmp_path / "conf", tmp_path / "log", tmp_path / "pid"
    conf_dir.mkdir()
    # Every host has a pid folder of its own at this path, as each machine has its own /tmp.
    hosts.make_private(pid_dir)
    rest_port, rpc_port = h1.free_port(), h1.free_port()
    config = {
        "jobmanager.rpc.address": h1.name,
        "jobmanager.rpc.port": rpc_port,
        "rest.port": rest_port,
        "taskmanager.numberOfTaskSlots": 2,
        "heartbeat.interval": "200 ms",
        "heartbeat.timeout": f"{HEARTBEAT_TIMEOUT_S:g} s",
        "cluster.registration.max-timeout": "500 ms",
    }
    (conf_dir / "strom-conf.yaml").write_text(yaml.safe_dump(config))
    (conf_dir / "masters").write_text(f"{h1.name}\n")
    (conf_dir / "slaves").write_text(f"{h2.name}\n{h3.name}\n{h3.name}\n")
    setup = Cluster(hosts, tmp_path, conf_dir, log_dir, pid_dir, rest_port, rpc_port)
    setup.env = python_env(
        STROM_CONF_DIR=str(conf_dir),
        STROM_LOG_DIR=str(log_dir),
        STROM_PID_DIR=str(pid_dir),
        STROM_SSH_OPTS=hosts.ssh_opts,
        USER=USER,
    )
    try:
        yield setup
    finally:
        for host in hosts:
            host.link_up()
        try:
            setup.run("stop-cluster.sh")
        except Exception:  # the kills below clean up regardless
            pass
        for process in strom_processes_of(conf_dir):
            try:
                process.kill()
            except psutil.NoSuchProcess:
                pass


def jps_blocks(output: str) -> dict[str, dict[int, str]]:
    """``{header line: {pid: role}}`` of bin/jps output, in order."""
    blocks: dict[str, dict[int, str]] = {}
    current: dict[int, str] | None = None
    for line in output.splitlines():
        if line.startswith("==========="):
            current = blocks.setdefault(line, {})
            continue
        pid, _, role = line.partition(" ")
        assert current is not None and pid.isdigit(), f"unexpected jps line {line!r}"
        current[int(pid)] = role
    return blocks


def header(host: str) -> str:
    return f"===========     {USER}@{host} All Processes         ==========="


def test_start_jps_stop_across_three_hosts(cluster, hosts):
    h1, h2, h3 = hosts
    out = cluster.ok("start-cluster.sh")
    assert f"Starting jobmanager daemon on host {h1.name}." in out
    assert out.count(f"Starting taskmanager daemon on host {h2.name}.") == 1
    assert out.count(f"Starting taskmanager daemon on host {h3.name}.") == 2

    overview = cluster.wait_for_taskmanagers(3)
    assert overview["slots-total"] == 6
    taskmanagers = cluster.taskmanagers()
    hosts_of = sorted(tm["address"].rsplit(":", 1)[0] for tm in taskmanagers)
    assert hosts_of == sorted([h2.address, h3.address, h3.address])
    assert sorted(tm["hostname"] for tm in taskmanagers) == sorted([h2.name, h3.name, h3.name])

    # Each daemon runs on its own host (its PID namespace) and logs under the host's name.
    assert cluster.roles(h1) == [JOBMANAGER]
    assert cluster.roles(h2) == [TASKMANAGER]
    assert cluster.roles(h3) == [TASKMANAGER, TASKMANAGER]
    for role, n, host in [
        ("jobmanager", 0, h1),
        ("taskmanager", 0, h2),
        ("taskmanager", 0, h3),
        ("taskmanager", 1, h3),
    ]:
        assert (cluster.log_dir / f"strom-{USER}-{role}-{n}-{host.name}.log").is_file()
    assert cluster.pid_files(h1) == [f"strom-{USER}-jobmanager.pid"]
    assert cluster.pid_files(h3) == [f"strom-{USER}-taskmanager.pid"]
    h3_pids = (h3.private_path(cluster.pid_dir) / f"strom-{USER}-taskmanager.pid").read_text()
    assert len(h3_pids.split()) == 2

    # bin/jps ssh-es to every host and lists the host's own processes (its pids).
    listing = cluster.ok("jps")
    blocks = jps_blocks(listing)
    assert list(blocks) == [header(h1.name), header(h2.name), header(h3.name)]
    for host in hosts:
        expected = {
            host.ns_pid(p.pid): role_of(p.name(), p.cmdline()) for p in cluster.processes(host)
        }
        assert blocks[header(host.name)] == expected, listing

    out = cluster.ok("stop-cluster.sh")
    assert out.count("Stopping taskmanager daemon") == 3
    assert f"on host {h1.name}." in out.split("Stopping jobmanager daemon", 1)[1]
    assert cluster.processes() == []
    for host in hosts:
        assert cluster.pid_files(host) == []


def test_stop_cluster_after_a_taskmanager_on_host3_was_killed(cluster, hosts):
    h1, h2, h3 = hosts
    cluster.ok("start-cluster.sh")
    cluster.wait_for_taskmanagers(3)
    on_h3 = cluster.processes(h3)
    assert len(on_h3) == 2
    victim = max(on_h3, key=lambda process: process.create_time())
    victim.send_signal(signal.SIGKILL)
    poll_for(lambda: not victim.is_running() or victim.status() == psutil.STATUS_ZOMBIE,
             timeout=10, what="the killed TaskManager to be gone")  # fmt: skip

    out = cluster.ok("stop-cluster.sh")
    assert out.count("Stopping taskmanager daemon") == 2
    assert f"No taskmanager daemon to stop on host {h3.name}." in out
    assert "Stopping jobmanager daemon" in out
    assert cluster.processes() == []
    for host in hosts:
        assert cluster.pid_files(host) == []


def test_host_lost_and_back(cluster, hosts):
    h1, h2, h3 = hosts
    cluster.ok("start-cluster.sh")
    cluster.wait_for_taskmanagers(3)
    (on_h2,) = cluster.processes(h2)
    (before,) = [tm for tm in cluster.taskmanagers() if tm["hostname"] == h2.name]

    h2.link_down()
    overview = cluster.wait_for_taskmanagers(2, timeout=HEARTBEAT_TIMEOUT_S + 5)
    assert overview["slots-total"] == 4
    assert sorted(tm["hostname"] for tm in cluster.taskmanagers()) == [h3.name, h3.name]

    h2.link_up()
    cluster.wait_for_taskmanagers(3, timeout=30)
    (after,) = [tm for tm in cluster.taskmanagers() if tm["hostname"] == h2.name]
    # The same TaskManager process came back by itself (no restart), from host 2's address.
    assert on_h2.is_running() and cluster.processes(h2) == [on_h2]
    assert after["id"] == before["id"]
    assert after["address"].rsplit(":", 1)[0] == h2.address
    assert (
        "reconnecting"
        in (cluster.log_dir / f"strom-{USER}-taskmanager-0-{h2.name}.log").read_text()
    )

    cluster.ok("stop-cluster.sh")
    assert cluster.processes() == []


# ------------------------------------------------------------------ jobs across the hosts

WORD_COUNT_JOB = '''
"""A keyed count whose records cross the network: numbers -> words -> key_by -> running counts."""
import json
import sys

from strom.common import Encoder
from strom.datastream import StreamExecutionEnvironment
from strom.datastream.connectors.file_system import FileSink
from strom.datastream.connectors.number_seq import NumberSequenceSource

count, words, output, collected = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4]
env = StreamExecutionEnvironment.get_execution_environment()
numbers = env.from_source(NumberSequenceSource(1, count), None, "numbers")
counts = (
    numbers.map(lambda n: (f"w{n % words}", 1))
    .key_by(lambda pair: pair[0])
    .reduce(lambda a, b: (a[0], a[1] + b[1]))
)
counts.sink_to(FileSink.for_row_format(output, Encoder.simple_string_encoder()).build())
with counts.execute_and_collect("word count across hosts") as results:
    seen = [list(value) for value in results]
with open(collected, "w") as file:
    json.dump(seen, file)
'''


def running_counts(words: list[str]) -> Counter:
    """Every ``(word, n)`` a running count per word emits, as ``repr`` strings."""
    totals = Counter(words)
    return Counter(repr((word, n)) for word, total in totals.items() for n in range(1, total + 1))


def turn_on_internal_tls(cluster: Cluster, tmp_path: Path) -> None:
    """``bin/strom certs`` for the hosts of conf/masters and conf/slaves (and this machine,
    the client's), and the configuration lines it prints, shared by all hosts."""
    certs = cluster.ok("strom", "certs", str(tmp_path / "certs"))
    lines = [line for line in certs.splitlines() if line.startswith("security.ssl.internal.")]
    conf = cluster.conf_dir / "strom-conf.yaml"
    config = yaml.safe_load(conf.read_text())
    config.update(yaml.safe_load("\n".join(lines[:4])))
    assert "{host}" in config["security.ssl.internal.cert"]
    conf.write_text(yaml.safe_dump(config))


@pytest.mark.parametrize("tls", [False, True], ids=["plaintext", "mutual-tls"])
def test_job_across_hosts_with_exact_results(cluster, hosts, tmp_path, tls):
    h1, h2, h3 = hosts
    if tls:
        turn_on_internal_tls(cluster, tmp_path)
    cluster.ok("start-cluster.sh")
    cluster.wait_for_taskmanagers(3)
    taskmanager_ids = {tm["id"]: tm["hostname"] for tm in cluster.taskmanagers()}
    count, words = 20_000, 23
    job_file, output, collected = tmp_path / "job.py", tmp_path / "out", tmp_path / "collected.json"
    job_file.write_text(WORD_COUNT_JOB)

    # The client runs here (this machine's namespace) and reaches host 1 over the bridge; the
    # collect sinks on hosts 2 and 3 push their results back to it the same way.
    run = subprocess.run(
        [str(BIN / "strom"), "run", "-p", "4", "-m", cluster.jobmanager, str(job_file),
         str(count), str(words), str(output), str(collected)],
        env=cluster.env, cwd=str(tmp_path), capture_output=True, text=True,
        timeout=SCRIPT_TIMEOUT_S, check=False,
    )  # fmt: skip
    assert run.returncode == 0, f"strom run failed:\n{run.stdout}\n{run.stderr}\n{cluster.logs()}"
    (job_id,) = re.findall(r"Job has been submitted with JobID ([0-9a-f]{32})", run.stdout)
    assert f"Job with JobID {job_id} has finished." in run.stdout

    expected = running_counts([f"w{n % words}" for n in range(1, count + 1)])
    assert Counter(repr(tuple(value)) for value in json.loads(collected.read_text())) == expected
    assert committed_output(output) == expected

    # Every vertex ran 4 subtasks spread over the TaskManagers of hosts 2 and 3: each source
    # subtask emits every word, and the keyed subtasks on both hosts each own some words, so
    # records went from host to host over the network.
    assert cluster.job(job_id)["state"] == "FINISHED"
    subtasks = cluster.subtasks(job_id)
    by_vertex: dict[str, list[dict]] = {}
    for subtask in subtasks:
        by_vertex.setdefault(subtask["vertex"], []).append(subtask)
    assert len(by_vertex) >= 2, by_vertex  # the source chain and the keyed chain
    for vertex, its in by_vertex.items():
        assert len(its) == 4, (vertex, its)
        ran_on = Counter(taskmanager_ids[s["taskmanager-id"]] for s in its)
        assert set(ran_on) == {h2.name, h3.name}, (vertex, ran_on)
        assert len({s["taskmanager-id"] for s in its}) == 3, (vertex, its)  # all three TMs
        assert all(s["metrics"]["write-records"] > 0 or s["metrics"]["read-records"] > 0
                   for s in its), (vertex, its)  # fmt: skip
    keyed = [s for s in subtasks if "reduce" in s["vertex"].lower()]
    assert keyed and {taskmanager_ids[s["taskmanager-id"]] for s in keyed
                      if s["metrics"]["read-records"] > 0} == {h2.name, h3.name}  # fmt: skip
    warned = [p for p in cluster.log_dir.iterdir() if "Internal TLS is off" in p.read_text()]
    assert bool(warned) is not tls, warned


# ------------------------------------------------------------------ hosts lost while a job runs


class Paced(MapFunction):
    """``(value % KEYS, 1)``; about 1,000 records a second while the ``hold`` file exists (a
    source batch of 1,024 records a second), so a test can keep a job running, checkpointing,
    for as long as it needs, then let it finish at full speed."""

    def __init__(self, hold: str, first_attempt_hold: str | None = None) -> None:
        self.hold = hold
        self.first_attempt_hold = first_attempt_hold  # holds attempt 0 instead of ``hold``

    def open(self, runtime_context) -> None:
        self.held = True
        if self.first_attempt_hold and runtime_context.get_attempt_number() == 0:
            self.hold = self.first_attempt_hold

    def map(self, value: int) -> tuple:
        if self.held:
            if os.path.exists(self.hold):
                time.sleep(0.001)
            else:
                self.held = False
        return (value % KEYS, 1)


@dataclass
class HeldJob:
    """A checkpointed job at parallelism 2 writing exactly-once files, held mid-way."""

    client: object
    job_id: str
    count: int
    output: Path
    checkpoints: Path
    hold: Path
    first_attempt_hold: Path | None = None

    def release(self) -> None:
        self.hold.unlink()


def start_held_job(
    cluster: Cluster, tmp_path: Path, count: int = 200_000, hold_first_attempt: bool = False
) -> HeldJob:
    """Submit the job from here; ``hold_first_attempt`` gives attempt 0 a hold of its own."""
    output, checkpoints, hold = tmp_path / "out", tmp_path / "checkpoints", tmp_path / "hold"
    hold.touch()
    first = tmp_path / "hold-first-attempt" if hold_first_attempt else None
    if first:
        first.touch()
    # Checkpoints and output in folders every host sees (state.checkpoints.dir on a shared
    # mount): the job restarts on other hosts from what the lost one wrote.
    env = checkpointed_env(checkpoints)  # p=2, every 250 ms, fixed-delay restarts (20, 200 ms)
    numbers = env.from_source(NumberSequenceSource(1, count), None, "numbers").uid("numbers")
    counts = (
        numbers.map(Paced(str(hold), str(first) if first else None))
        .uid("paced")
        .key_by(lambda pair: pair[0])
        .reduce(lambda a, b: (a[0], a[1] + b[1]))
        .uid("counts")
    )
    sink = FileSink.for_row_format(str(output), Encoder.simple_string_encoder()).build()
    counts.sink_to(sink).uid("files")
    with remote(cluster.jobmanager):
        client = env.execute_async("held across hosts")
    return HeldJob(client, client.get_job_id(), count, output, checkpoints, hold, first)


def wait_until_running_with_a_checkpoint(
    cluster: Cluster, job: HeldJob, taskmanager_ids: dict[str, str]
) -> set[str]:
    """Wait for all subtasks running and a completed checkpoint; the hosts running subtasks."""
    placement = poll_for(
        lambda: cluster.running_on(job.job_id, taskmanager_ids),
        timeout=30,
        what="the job's subtasks to run",
    )
    poll_for(lambda: completed_checkpoints(job.checkpoints) > 0, timeout=30, what="a checkpoint")
    return set().union(*placement.values())


def wait_for_loss(cluster: Cluster, victim: NetnsHost, since: float) -> float:
    """Wait until no TaskManager of ``victim`` is registered; seconds since ``since``."""
    poll_for(
        lambda: all(tm["hostname"] != victim.name for tm in cluster.taskmanagers()),
        timeout=HEARTBEAT_TIMEOUT_S + 10,
        what=f"the JobManager to declare {victim.name}'s TaskManagers lost",
    )
    return time.monotonic() - since


def wait_for_restart_elsewhere(
    cluster: Cluster,
    job: HeldJob,
    victim: NetnsHost,
    taskmanager_ids: dict[str, str],
    timeout: float = 30,
) -> set[str]:
    def restarted() -> set[str] | None:
        state, restarts = cluster.job_state(job.job_id)
        if state != "RUNNING" or restarts < 1:
            return None
        placement = cluster.running_on(job.job_id, taskmanager_ids)
        hosts = set().union(*placement.values()) if placement else set()
        return hosts if hosts and victim.name not in hosts else None

    try:
        return poll_for(restarted, timeout=timeout, what="the job to run again on the other hosts")
    except TimeoutError as error:
        raise AssertionError(
            f"{error}\njob: {json.dumps(cluster.job(job.job_id), indent=1)[:6000]}\n"
            f"subtasks: {json.dumps(cluster.subtasks(job.job_id), indent=1)[:6000]}\n"
            f"{cluster.logs()}"
        ) from None


def give_own_heartbeat_timeout(cluster: Cluster, hosts: list[NetnsHost], timeout: str) -> None:
    """Give ``hosts`` a conf folder of their own (each machine its own copy of the conf) in
    which ``heartbeat.timeout`` is ``timeout``: their TaskManagers then wait that long for a
    silent JobManager, while the JobManager (host 1, the shared conf) still waits 2 s."""
    config = yaml.safe_load((cluster.conf_dir / "strom-conf.yaml").read_text())
    config["heartbeat.timeout"] = timeout
    for host in hosts:
        private = host.make_private(cluster.conf_dir)
        for name in ("masters", "slaves"):
            (private / name).write_text((cluster.conf_dir / name).read_text())
        (private / "strom-conf.yaml").write_text(yaml.safe_dump(config))


def pick_victim(hosts: NetnsHosts, used: set[str]) -> NetnsHost:
    """A host running some of the job's subtasks (host 3 if it does: it has two TaskManagers)."""
    h1, h2, h3 = hosts
    assert h1.name not in used and used <= {h2.name, h3.name}, used
    return h3 if h3.name in used else h2


def start_job_on_host3_only(
    cluster: Cluster, hosts: NetnsHosts, tmp_path: Path, hold_first_attempt: bool = False
) -> tuple[HeldJob, list[dict]]:
    """A held job whose first attempt runs on host 3 alone (its two TaskManagers); host 2's
    TaskManager is started after it, as the spare that its restart will run on. Returns the
    job and host 3's TaskManagers (from ``/taskmanagers``)."""
    h1, h2, h3 = hosts
    (cluster.conf_dir / "slaves").write_text(f"{h3.name}\n{h3.name}\n")
    cluster.ok("start-cluster.sh")
    cluster.wait_for_taskmanagers(2)
    on_host3 = cluster.taskmanagers()
    taskmanager_ids = {tm["id"]: tm["hostname"] for tm in on_host3}
    job = start_held_job(cluster, tmp_path, hold_first_attempt=hold_first_attempt)
    assert wait_until_running_with_a_checkpoint(cluster, job, taskmanager_ids) == {h3.name}
    cluster.start_taskmanager(h2)
    cluster.wait_for_taskmanagers(3)
    return job, on_host3


def test_host_crash_during_checkpointed_job_keeps_output_exactly_once(cluster, hosts, tmp_path):
    cluster.ok("start-cluster.sh")
    cluster.wait_for_taskmanagers(3)
    taskmanager_ids = {tm["id"]: tm["hostname"] for tm in cluster.taskmanagers()}
    job = start_held_job(cluster, tmp_path)
    victim = pick_victim(hosts, wait_until_running_with_a_checkpoint(cluster, job, taskmanager_ids))
    victim_taskmanagers = sum(1 for host in taskmanager_ids.values() if host == victim.name)

    # The host crashes: its cable is cut (nothing it could still send gets out) and every
    # process on it dies. Only heartbeats missing for heartbeat.timeout tell the JobManager.
    cut = time.monotonic()
    victim.link_down()
    assert victim.kill_all(keep_sshd=True)
    noticed = wait_for_loss(cluster, victim, cut)
    assert HEARTBEAT_TIMEOUT_S * 0.9 <= noticed <= HEARTBEAT_TIMEOUT_S + 3, noticed
    # It reboots, without Strom running: the job restarts on the remaining hosts meanwhile.
    victim.link_up()
    wait_for_restart_elsewhere(cluster, job, victim, taskmanager_ids)
    assert cluster.processes(victim) == []

    job.release()
    job.client.get_job_execution_result()
    assert cluster.job(job.job_id)["state"] == "FINISHED"
    assert committed_output(job.output) == expected_output(job.count)

    # Its TaskManagers are started again over ssh and the cluster uses them: a job needing
    # every slot of the cluster runs subtasks on them.
    for _ in range(victim_taskmanagers):
        cluster.start_taskmanager(victim)
    overview = cluster.wait_for_taskmanagers(3, timeout=30)
    assert overview["slots-total"] == 6
    env = StreamExecutionEnvironment.get_execution_environment()
    env.set_parallelism(6)
    count, output = 600, tmp_path / "all-slots"
    numbers = env.from_source(NumberSequenceSource(1, count), None, "numbers")
    sink = FileSink.for_row_format(str(output), Encoder.simple_string_encoder()).build()
    numbers.map(lambda n: n * 2).sink_to(sink)
    with remote(cluster.jobmanager):
        result = env.execute("all slots")
    assert Counter(committed_output(output)) == Counter(str(n * 2) for n in range(1, count + 1))
    ran_on = Counter(
        cluster.host_of(taskmanager_ids, s["taskmanager-id"])
        for s in cluster.subtasks(result.get_job_id())
    )
    assert ran_on[victim.name] == 2 * victim_taskmanagers, ran_on


@pytest.mark.parametrize("taskmanager_timeout", [None, "30 s"], ids=["same-timeout", "zombie"])
def test_partitioned_host_returning_late_commits_nothing(
    cluster, hosts, tmp_path, taskmanager_timeout
):
    h1, h2, victim = hosts
    if taskmanager_timeout:
        # Host 3's TaskManagers wait much longer for the JobManager than it waits for them:
        # cut off, they keep running their tasks, and learn they were declared lost only when
        # the link is back.
        give_own_heartbeat_timeout(cluster, [victim], taskmanager_timeout)
    job, _ = start_job_on_host3_only(cluster, hosts, tmp_path)
    taskmanager_ids = {tm["id"]: tm["hostname"] for tm in cluster.taskmanagers()}
    on_victim = cluster.taskmanager_processes(victim)
    assert len(on_victim) == 2
    cancel_line = re.compile(r"lost the JobManager session: cancelled (\d+) running task\(s\)")

    # Partition: the victim's TaskManagers live on, cut off from the JobManager and the rest.
    cut = time.monotonic()
    victim.link_down()
    noticed = wait_for_loss(cluster, victim, cut)
    assert HEARTBEAT_TIMEOUT_S * 0.9 <= noticed <= HEARTBEAT_TIMEOUT_S + 3, noticed
    wait_for_restart_elsewhere(cluster, job, victim, taskmanager_ids)
    assert job.client.get_job_status() == "RUNNING"
    if taskmanager_timeout:
        # Still waiting for their JobManager: their tasks of the old attempt run on.
        assert not cancel_line.search(cluster.taskmanager_logs(victim))
    else:
        # Their own heartbeat timeout ended the session: they cancelled their tasks already.
        poll_for(
            lambda: cancel_line.search(cluster.taskmanager_logs(victim)),
            timeout=10,
            what=f"{victim.name}'s TaskManagers to cancel their tasks while cut off",
        )

    # The host comes back while the job still runs elsewhere: its TaskManagers (the same
    # processes) have cancelled what they ran for the old attempt and register anew.
    victim.link_up()
    poll_for(
        lambda: (
            sorted(tm["hostname"] for tm in cluster.taskmanagers()).count(victim.name)
            == len(on_victim)
        ),
        timeout=30,
        what=f"{victim.name}'s TaskManagers to register again",
    )
    assert all(process.is_running() for process in on_victim)
    assert cluster.taskmanager_processes(victim) == on_victim
    cancelled = poll_for(
        lambda: cancel_line.findall(cluster.taskmanager_logs(victim)),
        timeout=10,
        what=f"{victim.name}'s TaskManagers to cancel their tasks of the old attempt",
    )
    assert all(int(n) > 0 for n in cancelled), cluster.taskmanager_logs(victim)
    for tm in cluster.taskmanagers():
        if tm["hostname"] == victim.name:
            assert tm["freeSlots"] == tm["slotsNumber"], tm
    assert job.client.get_job_status() == "RUNNING"

    # Nothing the old attempt wrote on the returned host after it was declared lost is
    # committed, and its late reports do not fail the job again.
    job.release()
    job.client.get_job_execution_result()
    details = cluster.job(job.job_id)
    assert details["state"] == "FINISHED"
    assert details["restarts"] == 1, details["failure"]
    assert committed_output(job.output) == expected_output(job.count)


class Discard(SinkFunction):
    def invoke(self, value, context) -> None:
        pass


def test_failover_cancels_a_producer_blocked_on_a_lost_host(cluster, hosts):
    h1, h2, h3 = hosts
    cluster.ok("start-cluster.sh")
    cluster.wait_for_taskmanagers(3)
    taskmanager_ids = {tm["id"]: tm["hostname"] for tm in cluster.taskmanagers()}
    # At full speed, p=4 (so subtasks on both worker hosts), many keys (so every keyed subtask
    # gets records): the producers on host 3 fill their channels to host 2 within
    # milliseconds of its link going down, and wait there for room.
    env = StreamExecutionEnvironment.get_execution_environment()
    env.set_parallelism(4)
    env.set_restart_strategy(RestartStrategies.fixed_delay_restart(20, 200))
    numbers = env.from_source(NumberSequenceSource(1, 10**10), None, "numbers")
    (
        numbers.map(lambda n: (n % 1000, 1))
        .key_by(lambda pair: pair[0])
        .reduce(lambda a, b: (a[0], a[1] + b[1]))
        .add_sink(Discard())
    )
    with remote(cluster.jobmanager):
        client = env.execute_async("endless across hosts")
    job_id = client.get_job_id()

    def tasks() -> tuple[int, dict[str, dict[str, int]]]:
        """Restarts, and each vertex's subtask count per state (cheap: gRPC, no REST)."""
        with ClusterClient(cluster.jobmanager, timeout=5) as gateway:
            details = gateway.job(job_id)
        return details.restarts, {v.name: dict(v.tasks) for v in details.vertices}

    def keyed_subtasks_on_both_hosts_read() -> bool:
        placement = cluster.running_on(job_id, taskmanager_ids)
        readers = {
            cluster.host_of(taskmanager_ids, s["taskmanager-id"])
            for s in cluster.subtasks(job_id)
            if "reduce" in s["vertex"].lower() and s["metrics"]["read-records"] > 0
        }
        return bool(placement) and readers == {h2.name, h3.name}

    def explained(condition, timeout: float, what: str) -> None:
        try:
            poll_for(condition, timeout=timeout, what=what)
        except TimeoutError as error:
            # Every thread's stack of host 3's TaskManagers, into their .out files.
            outs = sorted(cluster.log_dir.glob("*h3.out"))
            sizes = [p.stat().st_size for p in outs]
            for process in cluster.processes(h3):
                process.send_signal(signal.SIGUSR1)
            try:
                poll_for(
                    lambda: all(p.stat().st_size > s for p, s in zip(outs, sizes, strict=True)),
                    timeout=5,
                )
            except TimeoutError:
                pass
            raise AssertionError(f"{error}: {tasks()}\n{cluster.logs(20_000)}") from None

    stuck = False
    try:
        explained(keyed_subtasks_on_both_hosts_read, 30, "records between hosts")
        on_host3 = Counter(
            s["vertex"]
            for s in cluster.subtasks(job_id)
            if cluster.host_of(taskmanager_ids, s["taskmanager-id"]) == h3.name
        )
        (keyed,) = [vertex for vertex in on_host3 if "reduce" in vertex.lower()]
        (sources,) = [vertex for vertex in on_host3 if vertex.startswith("Source")]
        cut = time.monotonic()
        h2.link_down()  # host 3 keeps 4 slots: enough to run the job again
        wait_for_loss(cluster, h2, cut)

        def cancelled(vertex: str, count: int) -> bool:
            restarts, counts = tasks()
            return restarts >= 1 or counts[vertex].get("canceled", 0) >= count

        # The JobManager cancels the old attempt on host 3 (one TaskManager after the other,
        # so perhaps only after a 10 s CancelTasks call to the lost one): the keyed subtasks there,
        # which only wait for input, end at once, and so must the sources on the same
        # TaskManagers, blocked sending to host 2.
        stuck = True
        explained(lambda: cancelled(keyed, on_host3[keyed]), 15, "the cancel")
        explained(lambda: cancelled(sources, on_host3[sources]), 10, "the sources")
        stuck = False

        def restarted_on_host3() -> bool:
            state, restarts = cluster.job_state(job_id)
            if state != "RUNNING" or restarts < 1:
                return False
            placement = cluster.running_on(job_id, taskmanager_ids)
            return bool(placement) and set().union(*placement.values()) == {h3.name}

        explained(restarted_on_host3, 10, "the job to run again on host 3")
    finally:
        client.cancel()
        if stuck:  # those tasks would hold up stopping their TaskManagers for seconds
            for process in cluster.processes(h3):
                process.kill()


def old_attempt_tasks(host: NetnsHost, addresses: list[str], job_id: str) -> list[list]:
    """``[attempt, is_source, state, records_in]`` of the job's subtasks of attempt 0 on the
    TaskManagers at ``addresses``, asked from inside ``host`` (this machine cannot reach it
    while its link is down)."""
    code = (
        "import json, sys, grpc\n"
        "from strom.rpc import observability_pb2 as pb, observability_pb2_grpc as rpc\n"
        "found = []\n"
        "for address in sys.argv[2:]:\n"
        "    with grpc.insecure_channel(address) as channel:\n"
        "        metrics = rpc.TaskManagerObservabilityStub(channel).GetMetrics(\n"
        "            pb.ObservedMetricsRequest(job_id=sys.argv[1]), timeout=5)\n"
        "    found += [[s.attempt, s.is_source, s.state, s.records_in]\n"
        "              for s in metrics.subtasks if s.attempt == 0]\n"
        "print(json.dumps(found))\n"
    )
    result = host.run(
        [sys.executable, "-c", code, job_id, *addresses], env=python_env(), check=True
    )
    return json.loads(result.stdout)


def test_partitioned_host_finishing_its_old_attempt_commits_nothing(cluster, hosts, tmp_path):
    h1, h2, h3 = hosts
    # Host 3's TaskManagers wait 30 s for a silent JobManager: cut off, they run on.
    give_own_heartbeat_timeout(cluster, [h3], "30 s")
    job, taskmanagers = start_job_on_host3_only(cluster, hosts, tmp_path, hold_first_attempt=True)
    taskmanager_ids = {tm["id"]: tm["hostname"] for tm in cluster.taskmanagers()}

    cut = time.monotonic()
    h3.link_down()
    wait_for_loss(cluster, h3, cut)
    wait_for_restart_elsewhere(cluster, job, h3, taskmanager_ids)  # on host 2, held

    # Cut off, host 3 runs its old attempt to the end of the input.
    assert job.first_attempt_hold is not None
    job.first_attempt_hold.unlink()
    addresses = [tm["address"] for tm in taskmanagers]

    def old_attempt_done() -> bool:
        tasks = old_attempt_tasks(h3, addresses, job.job_id)
        running = [t for t in tasks if t[2] == "RUNNING"]
        read = sum(t[3] for t in tasks if not t[1])
        return not running or read >= job.count

    poll_for(old_attempt_done, timeout=30, what="host 3 to run its old attempt to the end")

    h3.link_up()
    poll_for(
        lambda: [tm["hostname"] for tm in cluster.taskmanagers()].count(h3.name) == 2,
        timeout=30,
        what="host 3's TaskManagers to register again",
    )
    job.release()
    job.client.get_job_execution_result()
    assert cluster.job_state(job.job_id) == ("FINISHED", 1)
    committed, expected = committed_output(job.output), expected_output(job.count)
    extra, missing = sum((committed - expected).values()), sum((expected - committed).values())
    assert (extra, missing) == (0, 0), f"{extra} line(s) too many, {missing} missing"
