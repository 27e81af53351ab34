"""A cluster across three hosts: bin/ scripts over real ssh, jps per host, and a host lost.

The hosts are network namespaces with their own sshd, name, processes and pid folder
(tests/netns/hosts.py). The scripts run here, in this machine's own namespace, as on an admin
box: the JobManager starts over ssh on host 1, TaskManagers over ssh on hosts 2 and 3 (host 3
twice). Needs root; elsewhere the module is skipped with the reason. No fixed sleeps.
"""

from __future__ import annotations

import os
import pwd
import signal
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

import psutil
import pytest
import yaml
from harness import REPO_ROOT, http_json, poll_for, python_env
from netns.hosts import NetnsHost, NetnsHosts, Unavailable

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
    env: dict[str, str] = field(default_factory=dict)

    @property
    def rest_url(self) -> str:
        return f"http://{self.hosts[0].address}:{self.rest_port}"

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

    def roles(self, host: NetnsHost) -> list[str]:
        return sorted(role_of(p.name(), p.cmdline()) or "" for p in self.processes(host))

    def pid_files(self, host: NetnsHost) -> list[str]:
        return sorted(
            path.name for path in host.private_path(self.pid_dir).glob("*.pid") if path.is_file()
        )

    def logs(self) -> str:
        if not self.log_dir.exists():
            return ""
        return "\n".join(
            f"--- {path.name}\n{path.read_text(errors='replace')[-3000:]}"
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
    rest_port = h1.free_port()
    config = {
        "jobmanager.rpc.address": h1.name,
        "jobmanager.rpc.port": h1.free_port(),
        "rest.port": rest_port,
        "taskmanager.numberOfTaskSlots": 2,
        "heartbeat.interval": "200 ms",
        "heartbeat.timeout": f"{HEARTBEAT_TIMEOUT_S:g} s",
        "cluster.registration.max-timeout": "500 ms",
    }
    (conf_dir / "strom-conf.yaml").write_text(yaml.safe_dump(config))
    (conf_dir / "masters").write_text(f"{h1.name}\n")
    (conf_dir / "slaves").write_text(f"{h2.name}\n{h3.name}\n{h3.name}\n")
    setup = Cluster(hosts, tmp_path, conf_dir, log_dir, pid_dir, rest_port)
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
